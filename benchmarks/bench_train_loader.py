"""Training-step throughput: the HDF5 patch set through a DataLoader vs the same patches as in-memory tensors.

    python benchmarks/bench_train_loader.py [--steps 20 --batch_size 128 --workers 0 2]

Also reports loader-only throughput (no training) for train.h5 and for the original scripts'
one-dataset-per-patch layout, to show how far the loader stays ahead of the network.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_prepare import make_images  # noqa: E402
from dataset import (  # noqa: E402
    CHUNK,
    LegacyPatchSet,
    PatchRuns,
    PatchSet,
    PrepareOptions,
    concat_runs,
    find_labelled_images,
    prepare_split,
    to_unit_float,
)
from isonet import ISONet  # noqa: E402


def hdf5_batches(dataset: PatchRuns, batch_size: int, workers: int):
    """Batches exactly as main_train.py builds them, repeated over epochs."""
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=batch_size // dataset.run, sampler=sampler, num_workers=workers,
                        collate_fn=concat_runs, persistent_workers=workers > 0,
                        prefetch_factor=4 if workers else None)
    for epoch in range(10**9):
        sampler.set_epoch(epoch)
        yield from loader


def memory_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """Random batches gathered from tensors already in memory: the loader-free ideal."""
    g = torch.Generator().manual_seed(0)
    while True:
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            yield x[idx], y[idx]


def patches_per_second(batches, steps: int, train: bool) -> float:
    net = ISONet()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    count, start = 0, 0.0
    for step, (x, y) in enumerate(batches):
        if step == 2:  # warm-up: worker start, allocator, oneDNN primitives
            count, start = 0, time.perf_counter()
        x = to_unit_float(x)
        if train:
            loss = F.mse_loss(net(x).flatten(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        count += len(y)
        if step == steps + 1:
            break
    return count / (time.perf_counter() - start)


def write_legacy_copy(src: Path, out: Path) -> None:
    with h5py.File(src) as h5, h5py.File(out / "train_rgb.h5", "w") as d, \
            h5py.File(out / "train_rgb_label.h5", "w") as lab:
        patches, labels = h5["patches"][:], h5["iso_metric"][:]
        for i, (p, y) in enumerate(zip(patches, labels)):
            d.create_dataset(str(i), data=p.astype(np.float32) / 255)
            lab.create_dataset(str(i), data=y)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=80)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--workdir", default="/tmp/isonet_bench_loader")
    args = p.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    make_images(work / "photos", args.images, 256, 384)
    files = find_labelled_images(work / "photos" / "Train", "png")
    path = work / "data" / "train.h5"
    prepare_split(files, path, PrepareOptions(), "train", work / "photos", {}, workers=os.cpu_count() or 1)
    write_legacy_copy(path, path.parent)
    run = CHUNK
    dataset = PatchSet(path, run)  # float tensors made in the workers
    with h5py.File(path) as h5:
        x = torch.from_numpy(h5["patches"][:]).float().div_(255)
        y = torch.from_numpy(h5["iso_metric"][:])
    print(f"{dataset.rows} patches, batch {args.batch_size}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")
    print(f"{'source':<40} {'train patches/s':>16} {'load-only patches/s':>20}")
    ideal = patches_per_second(memory_batches(x, y, args.batch_size), args.steps, True)
    print(f"{'in-memory tensors':<40} {ideal:>16.0f} {'-':>20}")
    uint8_set = PatchSet(path, run, keep_integers=True)  # as main_train.py reads it
    for workers in args.workers:
        trained = patches_per_second(hdf5_batches(uint8_set, args.batch_size, workers), args.steps, True)
        loaded = patches_per_second(hdf5_batches(uint8_set, args.batch_size, workers), 4 * args.steps, False)
        print(f"{f'train.h5, {workers} workers':<40} {trained:>16.0f} {loaded:>20.0f}   "
              f"({trained / ideal:.0%} of in-memory)")
        loaded = patches_per_second(hdf5_batches(dataset, args.batch_size, workers), 4 * args.steps, False)
        print(f"{f'train.h5, {workers} workers, float in workers':<40} {'-':>16} {loaded:>20.0f}")
    legacy = LegacyPatchSet(path.parent / "train_rgb.h5", path.parent / "train_rgb_label.h5", run, keep_integers=True)
    loaded = patches_per_second(hdf5_batches(legacy, args.batch_size, 0), 4 * args.steps, False)
    print(f"{'original layout (dataset/patch), 0 workers':<40} {'-':>16} {loaded:>20.0f}")


if __name__ == "__main__":
    main()
