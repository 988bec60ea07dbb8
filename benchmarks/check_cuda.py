"""CUDA maps against the published per-patch maps and against the CPU, for both authors' weights.

    python benchmarks/check_cuda.py [--shared ../shared]

For each weights file: the stride-64 batched map of reference/two_noise_levels.png on the GPU
against reference/expected_maps.json (the published procedure's numbers), and the stride-4 dense
map on the GPU against the same map on the CPU. Each is run with PyTorch's TF32 setting for
convolutions at its default (on) and off: the maps must not depend on it (isonet turns TF32 off for
its own convolutions; TF32 moves the maps by up to 5e-3 on an H200).
Exit code 1 when a difference exceeds --tolerance (the project's 1e-4), 2 without a GPU.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import image_io  # noqa: E402
import isonet  # noqa: E402


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    reference = Path(args.shared) / "reference"
    img = image_io.read_image(reference / "two_noise_levels.png")
    expected = json.loads((reference / "expected_maps.json").read_text())["two_noise_levels.png"]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, image {img.shape[1]}x{img.shape[0]}")
    worst = 0.0
    for weights in ("net_tif", "net_jpg"):
        path = reference / "authors_weights" / f"{weights}.pth"
        cpu_dense = isonet.iso_map(isonet.load_model(path, "cpu"), img, stride=4).map
        gpu = isonet.load_model(path, "cuda")
        isonet.iso_map(gpu, img), isonet.iso_map(gpu, img, stride=4)  # warm-up: cuDNN picks its kernels
        for tf32 in (torch.backends.cudnn.allow_tf32, False):
            torch.backends.cudnn.allow_tf32 = tf32
            batched, t_batched = timed(lambda net=gpu: isonet.iso_map(net, img).map)
            dense, t_dense = timed(lambda net=gpu: isonet.iso_map(net, img, stride=4).map)
            published = np.asarray(expected[weights]["map"])
            d_published = float(np.abs(batched - published).max()) if batched.shape == published.shape else np.inf
            d_cpu = float(np.abs(dense - cpu_dense).max())
            worst = max(worst, d_published, d_cpu)
            print(f"{weights} TF32 {'on ' if tf32 else 'off'}: stride 64 vs published max |diff| {d_published:.2e} "
                  f"({t_batched * 1e3:.1f} ms); stride 4 vs CPU {d_cpu:.2e} ({t_dense * 1e3:.1f} ms)")
        torch.backends.cudnn.allow_tf32 = True
    print(f"worst difference {worst:.2e}: {'within' if worst <= args.tolerance else 'OVER'} {args.tolerance:g}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
