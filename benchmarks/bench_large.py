"""Peak memory and time of test_model.py on one very large image (default 100 megapixels).

    python benchmarks/bench_large.py [--megapixels 100] [--stride 64] [--workdir /tmp/isonet_bench_large]

Writes a noisy uncompressed TIFF of that size (a photo's worth of pixels, random content), then
runs test_model.py on it as a user would, once with --figures none and once with the figures, each
in its own process, and reports each process's peak resident memory (os.wait4) and wall time.
The shipped net_tif.pth is used; the estimate itself is beside the point.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_test_image(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    """A 4:3 image of smooth gradients plus noise (format by suffix), built in row blocks."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 210, width, dtype=np.float32)
    img = np.empty((height, width, 3), np.uint8)
    for y in range(0, height, 1024):
        rows = min(1024, height - y)
        block = ramp[None, :, None] + rng.normal(0, 4, (rows, width, 3)).astype(np.float32)
        img[y:y + rows] = np.clip(block, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return width, height


def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GiB, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return wall, usage.ru_maxrss / 2**20, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=100)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/isonet_bench_large")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    image = work / f"large_{args.megapixels:g}mp.tif"
    if not image.exists():
        width, height = write_test_image(image, args.megapixels)
    else:
        height, width = cv2.imread(str(image), cv2.IMREAD_UNCHANGED).shape[:2]
    print(f"{image}: {width}x{height} ({width * height / 1e6:.0f} MP, {image.stat().st_size / 2**20:.0f} MiB)")
    for figures in ("none", "all"):
        cmd = [sys.executable, "test_model.py", "--pic_path", str(image), "--model_path", "models/net_tif.pth",
               "--stride", str(args.stride), "--figures", figures, "--out_dir", str(work / f"out_{figures}")]
        wall, peak, code = run_measured(cmd)
        print(f"stride {args.stride}, figures {figures}: {wall:.1f} s, peak resident memory {peak:.2f} GiB, "
              f"exit {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
