"""Inference speed on a 12-megapixel image: the published loop, our batched map, the dense map.

    python benchmarks/bench_inference.py [--megapixels 12] [--device cpu|cuda|all] [--batch_sizes 64 256]

The published procedure runs one 64x64 patch per forward pass (NCHW, torch.no_grad); ours cuts
the same patches with one reshape and runs them in batches in channels_last. The stride-4 dense
map evaluates the network fully convolutionally. Results are asserted equal before any figure
is printed. Random weights: speed does not depend on their values. Each timing is the best of
--repeat runs.
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import isonet  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def published_loop(net: isonet.ISONet, img: np.ndarray) -> np.ndarray:
    """One patch per forward, row-major, as the paper's test_model.py does."""
    device = next(net.parameters()).device
    rows, cols = isonet.grid_shape(*img.shape[:2], isonet.PATCH)
    chw = np.ascontiguousarray(img.transpose(2, 0, 1))
    out = np.empty(rows * cols, np.float32)
    for k in range(rows * cols):
        y, x = (k // cols) * 64, (k % cols) * 64
        out[k] = net(torch.from_numpy(chw[:, y:y + 64, x:x + 64]).unsqueeze(0).to(device)).item()
    return out.reshape(rows, cols)


def bench_device(device: torch.device, img: np.ndarray, batch_sizes: list[int], repeat: int) -> None:
    torch.manual_seed(0)
    published = isonet.ISONet().to(device).eval()  # as the paper's script builds it
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(published.state_dict(), Path(tmp) / "net.pth")
        ours = isonet.load_model(Path(tmp) / "net.pth", device)  # as test_model.py loads it
    methods = {"published loop": lambda: published_loop(published, img)}
    for batch_size in batch_sizes:
        methods[f"batched {batch_size}"] = lambda b=batch_size: isonet.iso_map(ours, img, batch_size=b).map
    methods["dense stride 4"] = lambda: isonet.iso_map(ours, img, stride=4).map
    warm = img[:256, :256]
    published_loop(published, warm), isonet.iso_map(ours, warm), isonet.iso_map(ours, warm, stride=4)

    # Rounds interleave the methods: this shared CPU slows down under sustained load, and running
    # one method's repeats back to back would hand the later methods a slower machine.
    best, results = {name: float("inf") for name in methods}, {}
    for _ in range(repeat):
        for name, run in methods.items():
            synchronize(device)
            start = time.perf_counter()
            results[name] = run()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - start)

    reference, t_loop = results["published loop"], best["published loop"]
    print(f"[{device}] published loop, stride 64 ({reference.size} patches): {t_loop:.2f} s")
    for batch_size in batch_sizes:
        name = f"batched {batch_size}"
        assert np.abs(results[name] - reference).max() <= 1e-4
        print(f"[{device}] batched, stride 64, batch {batch_size}: {best[name]:.2f} s = "
              f"{t_loop / best[name]:.1f}x the loop")
    dense = results["dense stride 4"]
    assert np.abs(dense[::16, ::16] - reference).max() <= 1e-4
    print(f"[{device}] dense, stride 4 ({dense.size} patches): {best['dense stride 4']:.2f} s = "
          f"{best['dense stride 4'] / t_loop:.2f}x the loop's time for stride 64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=12)
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best time counts")
    args = parser.parse_args()
    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    img = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    print(f"image {width}x{height}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"peak memory reported at the end")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("[cuda] not available, skipped")
            continue
        bench_device(torch.device(name), img, args.batch_sizes, args.repeat)
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
