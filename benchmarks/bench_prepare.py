"""prepare_data throughput and file size: our uint8 chunked HDF5 vs the original one-dataset-per-patch float32 layout.

    python benchmarks/bench_prepare.py [--images 200 --height 256 --width 384 --format tif --workdir /tmp/isonet_bench]

Both sides decode the same generated images (uncompressed TIFF as cameras write them, the paper's
--pic_type; or PNG) with the same cutting and augmentation; the baseline then
writes the original scripts' layout: every patch (and every augmented copy) its own float32 dataset
in train_rgb.h5 plus a scalar dataset in train_rgb_label.h5.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dataset import PrepareOptions, augment, find_labelled_images, image_patch_block, prepare_split  # noqa: E402
from image_io import read_image  # noqa: E402
from isonet import PATCH, iso_to_metric  # noqa: E402


def make_images(root: Path, n: int, h: int, w: int, fmt: str) -> None:
    rng = np.random.default_rng(0)
    isos = (100, 200, 400, 800, 1600)
    for i in range(n):
        iso = isos[i % len(isos)]
        folder = root / "Train" / str(iso)
        folder.mkdir(parents=True, exist_ok=True)
        img = np.clip(rng.normal(128, 2 * (iso / 100) ** 0.5, (h, w, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:04d}.{fmt}"), img, [cv2.IMWRITE_TIFF_COMPRESSION, 1] if fmt == "tif" else [])


def legacy_prepare(files, out: Path, opts: PrepareOptions, per_patch_loops: bool) -> int:
    """The original layout: one float32 dataset per patch, one scalar dataset per label.

    per_patch_loops=True also processes the way the original scripts did (a float image, a Python
    loop over positions, each augmented copy made one by one); False reuses our vectorised cutting,
    so only the file layout differs.
    """
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with h5py.File(out / "train_rgb.h5", "w") as data, h5py.File(out / "train_rgb_label.h5", "w") as labels:

        def put(patch: np.ndarray, label: np.ndarray) -> None:
            nonlocal n
            data.create_dataset(str(n), data=patch)
            labels.create_dataset(str(n), data=label)
            n += 1

        for index, (path, iso) in enumerate(files):
            label = np.array(iso_to_metric(iso), np.float32)
            rng = np.random.default_rng([opts.seed, index])
            if not per_patch_loops:
                for patch in image_patch_block(path, opts, True, rng).patches:
                    put(patch.astype(np.float32) / 255, label)
                continue
            img = read_image(path).transpose(2, 0, 1)
            for y in range(0, img.shape[1] - PATCH + 1, opts.stride):
                for x in range(0, img.shape[2] - PATCH + 1, opts.stride):
                    patch = np.ascontiguousarray(img[:, y:y + PATCH, x:x + PATCH])
                    put(patch, label)
                    for _ in range(opts.aug_times):
                        put(np.ascontiguousarray(augment(patch, int(rng.integers(1, 8)))), label)
    return n


def size_mib(paths) -> float:
    return sum(p.stat().st_size for p in paths) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--format", choices=["tif", "png"], default="tif",
                   help="generated image format: uncompressed TIFF (the paper's data) or PNG (slower to decode)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="prepare_split's reading processes")
    p.add_argument("--workdir", default="/tmp/isonet_bench_prepare")
    args = p.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    make_images(work / "photos", args.images, args.height, args.width, args.format)
    files = find_labelled_images(work / "photos" / "Train", args.format)
    opts = PrepareOptions()  # paper defaults: stride 96, aug_times 2

    t = time.perf_counter()
    summary = prepare_split(files, work / "new" / "train.h5", opts, "train", work / "photos", {},
                            workers=args.workers)
    new_s = time.perf_counter() - t
    rows = sum(summary.patches.values())
    new_mib = size_mib([work / "new" / "train.h5"])
    print(f"{args.images} {args.format} images {args.width}x{args.height}, {rows} patches (stride 96, aug_times 2), "
          f"{os.cpu_count()} CPU cores, {args.workers} reading processes")
    print(f"{'prepare':<46} {'seconds':>8} {'patches/s':>10} {'MiB':>7} {'speed-up':>9} {'size':>6}")
    print(f"{'isonet: uint8 chunked train.h5':<46} {new_s:>8.2f} {rows / new_s:>10.0f} {new_mib:>7.1f}")
    for name, loops in (("original: per-patch loops, dataset per patch", True),
                        ("original layout only (our cutting)", False)):
        shutil.rmtree(work / "legacy", ignore_errors=True)
        t = time.perf_counter()
        legacy_rows = legacy_prepare(files, work / "legacy", opts, loops)
        legacy_s = time.perf_counter() - t
        assert legacy_rows == rows, (legacy_rows, rows)
        mib = size_mib((work / "legacy").iterdir())
        print(f"{name:<46} {legacy_s:>8.2f} {rows / legacy_s:>10.0f} {mib:>7.1f} "
              f"{legacy_s / new_s:>8.1f}x {new_mib / mib:>6.2f}")


if __name__ == "__main__":
    main()
