"""Train ISONet on patch sets from prepare_data.py (or the original scripts' train_rgb.h5 layout).

    python main_train.py --data_path data_64_64_aug3 --out_dir models
    python main_train.py --data_path data_64_64_aug3 --resume_training models/checkpoint/last.pth
    torchrun --nproc_per_node 4 main_train.py --data_path data_64_64_aug3      # DistributedDataParallel

Writes <out_dir>/<best_model_name> (bare state dict, lowest validation loss), <out_dir>/checkpoint/last.pth
(everything needed to resume) and TensorBoard curves in <out_dir>/runs. Under torchrun only rank 0
writes. --batch_size is per process. Exit code: 0 trained, 2 bad arguments (flags, data, checkpoint,
weights, device), 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from cli import add_bool_flag, add_device_arg, fail, join_processes, keep_freed_memory, leave_processes
from dataset import CHUNK, concat_runs, open_patch_set, to_unit_float
from image_io import atomic_path
from isonet import ISONet, ISONetError, load_model, resolve_device

# channels_last: tensor cores on GPU; on a 2-core CPU it measured ~1.25x faster too (oneDNN).
MEMORY_FORMAT = torch.channels_last


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=int, default=128, help="patches per step and process (default 128)")
    add_bool_flag(p, "--cuda", None, "train on CUDA (True) or CPU (False); overrides --device")
    p.add_argument("--milestones", type=int, nargs=2, default=[10, 30], help="epochs after which lr drops 10x")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--best_model_name", default="net.pth", help="file name of the best model in --out_dir")
    p.add_argument("--data_path", default="data_64_64_aug3", help="folder with train.h5/test.h5 (or train_rgb.h5 ...)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--resume_training", metavar="PATH", help="checkpoint to continue from (same schedule)")
    p.add_argument("--init_from", metavar="PATH",
                   help="start from these weights (any format test_model.py loads) with a fresh optimiser and "
                        "schedule: fine-tune a shipped model on your own camera")
    p.add_argument("--save_every_epochs", type=int, default=1, help="write checkpoint/last.pth every N epochs")
    add_device_arg(p)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out_dir", default="models", help="where the best model, checkpoint/ and runs/ go")
    args = p.parse_args(argv)
    if args.cuda is not None:
        args.device = "cuda" if args.cuda else "cpu"
    if args.init_from and args.resume_training:
        fail("--init_from starts a new run; --resume_training continues one: pass one of them")
    if args.batch_size <= 0 or args.epochs <= 0 or args.save_every_epochs <= 0:
        fail("--batch_size, --epochs and --save_every_epochs must be positive")
    return args


# Flags that may differ from the checkpoint's on resume: where and how often outputs are written,
# how data is loaded, the device, and how far to train. They change no epoch's weights (a device
# changes the arithmetic, not the run); every other flag defines the run, a new one too until listed here.
FREE_ON_RESUME = {"epochs", "workers", "device", "cuda", "out_dir", "best_model_name", "save_every_epochs",
                  "resume_training", "init_from"}


def init_weights(net: nn.Module) -> None:
    """The paper's init: Kaiming-normal convolutions, zero biases."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_atomically(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def bare_state_dict(net: nn.Module) -> dict:
    """CPU, contiguous, unprefixed: the format test_model.py and the authors' code load."""
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def load_checkpoint(path: str) -> dict:
    try:
        # Our own checkpoints hold numpy/python RNG states, which weights_only cannot unpickle.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ISONetError(f"{path}: no such checkpoint") from None
    except Exception as e:
        raise ISONetError(f"{path}: not a training checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or not {"net", "optimizer", "scheduler", "epoch", "rng"} <= set(ckpt):
        raise ISONetError(f"{path}: not a training checkpoint of main_train.py (a bare model cannot resume)")
    return ckpt


def comparable(name: str, value: object) -> object:
    """A flag's value as the run sees it: the same data folder may be spelled differently."""
    return os.path.realpath(value) if name == "data_path" else value


def check_resume(ckpt: dict, args: argparse.Namespace, path: str) -> None:
    """Refuse a resume that could not end with the uninterrupted run's weights."""
    saved = ckpt.get("args", {})
    changed = [f"--{name} {saved[name]} -> {value}" for name, value in sorted(vars(args).items())
               if name not in FREE_ON_RESUME and name in saved
               and comparable(name, saved[name]) != comparable(name, value)]
    if changed:
        raise ISONetError(f"{path}: flags differ from the checkpoint's run ({', '.join(changed)}); repeat them "
                          "to continue it, or start a new run with --init_from")
    if args.epochs <= ckpt["epoch"]:
        raise ISONetError(f"--epochs {args.epochs}: {path} has finished epoch {ckpt['epoch']} already")


@torch.no_grad()
def validate(net: nn.Module, loader: DataLoader, device: torch.device, autocast,
             distributed: bool) -> tuple[float, float]:
    """Mean squared error over all samples and mean absolute error in stops, summed across ranks."""
    net.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # squared error, absolute error, count
    for x, y in loader:
        x = to_unit_float(x.to(device, non_blocking=True)).contiguous(memory_format=MEMORY_FORMAT)
        with autocast:
            err = net(x).float().flatten() - y.to(device, non_blocking=True)
        sums += torch.stack([err.square().sum(), err.abs().sum(), err.new_tensor(len(y))]).double()
    if distributed:
        dist.all_reduce(sums)
    net.train()
    return (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()


class Progress:
    """tqdm (patches/s, ETA) on a terminal; a plain line every 30 s otherwise, so logs stay readable."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.tty = enabled and sys.stderr.isatty()
        self.enabled, self.total, self.desc = enabled, total, desc
        self.done, self.start, self.last_line = 0, time.monotonic(), time.monotonic()
        self.loss: float | None = None
        self.bar = tqdm(total=total, desc=desc, unit="patch", unit_scale=True, file=sys.stderr) if self.tty else None

    def update(self, n: int, loss: float | None = None) -> None:
        self.done += n
        self.loss = self.loss if loss is None else loss
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self.enabled and time.monotonic() - self.last_line > 30:
            self.last_line = time.monotonic()
            rate = self.done / (self.last_line - self.start)
            eta = (self.total - self.done) / max(rate, 1e-9)
            recent = "" if self.loss is None else f", loss {self.loss:.4f}"
            print(f"{self.desc}: {self.done}/{self.total} patches, {rate:.0f} patches/s, ETA {eta:.0f} s{recent}",
                  flush=True)

    def close(self) -> float:
        """Close the bar; return patches per second."""
        if self.bar is not None:
            self.bar.close()
        return self.done / max(time.monotonic() - self.start, 1e-9)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()
    ckpt = None
    if args.resume_training:  # checked first: a refused resume should cost nothing
        ckpt = load_checkpoint(args.resume_training)
        check_resume(ckpt, args, args.resume_training)

    # -- processes and device ------------------------------------------------------------
    processes, device = join_processes(resolve_device(args.device))
    distributed, rank, world = processes.distributed, processes.rank, processes.world
    master = rank == 0
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    # -- data: contiguous runs of rows, shuffled per epoch by a (seed, epoch)-seeded sampler --
    run = math.gcd(args.batch_size, CHUNK)  # runs tile every batch exactly and never straddle a chunk
    # Integers (uint8, or uint16 from 16-bit photos) until the device: 2-4x fewer bytes through
    # worker pipes, pinned memory and PCIe than float.
    train_set = open_patch_set(args.data_path, "train", run, keep_integers=True)
    val_set = open_patch_set(args.data_path, "test", run, keep_integers=True)
    # The same sampler serves one process (world 1) and DDP, so a resumed run shuffles identically.
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader_opts = dict(batch_size=args.batch_size // run, num_workers=args.workers, pin_memory=cuda,
                       collate_fn=concat_runs, persistent_workers=args.workers > 0,
                       prefetch_factor=4 if args.workers > 0 else None)
    train_loader = DataLoader(train_set, sampler=sampler, **loader_opts)
    val_loader = DataLoader(Subset(val_set, range(rank, len(val_set), world)), **loader_opts)

    # -- model, optimiser, schedule ----------------------------------------------------------
    net = ISONet()
    init_weights(net)
    if args.init_from:
        net.load_state_dict(load_model(args.init_from).state_dict())
    net = net.to(device, memory_format=MEMORY_FORMAT)
    model = net
    if distributed:
        model = DistributedDataParallel(net, device_ids=[device.index] if cuda else None)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.milestones, gamma=0.1)
    start_epoch, best_loss = 1, math.inf
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best_loss = ckpt["epoch"] + 1, ckpt["best_loss"]
        set_rng_states(ckpt["rng"])
        if master:
            print(f"resumed from {args.resume_training} after epoch {ckpt['epoch']}", flush=True)

    out_dir = Path(args.out_dir)
    best_path, ckpt_path = out_dir / args.best_model_name, out_dir / "checkpoint" / "last.pth"
    writer = None
    if master:
        from torch.utils.tensorboard import SummaryWriter  # slow import, rank 0 only

        writer = SummaryWriter(str(out_dir / "runs"))
        print(f"training on {device} x{world}: {train_set.rows} train / {val_set.rows} test patches, "
              f"epochs {start_epoch}..{args.epochs}", flush=True)

    # -- train -------------------------------------------------------------------------------
    for epoch in range(start_epoch, args.epochs + 1):
        sampler.set_epoch(epoch)
        lr = scheduler.get_last_lr()[0]
        progress = Progress(len(sampler) * run * world, f"epoch {epoch}/{args.epochs}", master)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        for step, (x, y) in enumerate(train_loader):
            x = to_unit_float(x.to(device, non_blocking=True)).contiguous(memory_format=MEMORY_FORMAT)
            y = y.to(device, non_blocking=True)
            with autocast:
                pred = model(x).float().flatten()
            loss = F.mse_loss(pred, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(y)
            seen += len(y)
            # Reading the loss synchronises with the GPU, so progress shows it only now and then.
            progress.update(len(y) * world, loss.item() if master and step % 20 == 0 else None)
        scheduler.step()
        rate = progress.close()
        if distributed:
            totals = torch.stack([loss_sum, torch.tensor(seen, dtype=torch.float64, device=device)])
            dist.all_reduce(totals)
            loss_sum, seen = totals[0], int(totals[1].item())
        train_loss = (loss_sum / seen).item()
        val_loss, val_mae = validate(net, val_loader, device, autocast, distributed)

        if master:
            improved = val_loss < best_loss
            best_loss = min(best_loss, val_loss)
            if improved:
                save_atomically(bare_state_dict(net), best_path)
            if epoch % args.save_every_epochs == 0 or epoch == args.epochs:
                save_atomically({"net": bare_state_dict(net), "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "epoch": epoch, "best_loss": best_loss,
                                 "args": vars(args), "rng": rng_states()}, ckpt_path)
            for tag, value in (("loss/train", train_loss), ("loss/val", val_loss), ("mae_stops/val", val_mae),
                               ("lr", lr)):
                writer.add_scalar(tag, value, epoch)
            writer.flush()
            print(f"epoch {epoch}/{args.epochs}  train loss {train_loss:.5f}  val loss {val_loss:.5f}  "
                  f"val MAE {val_mae:.3f} stops  lr {lr:.1e}  {rate:.0f} patches/s"
                  f"{'  * best, saved ' + str(best_path) if improved else ''}", flush=True)
        # Other ranks track the best loss too, so their state matches rank 0's.
        best_loss = min(best_loss, val_loss)

    if writer is not None:
        writer.close()
    leave_processes(processes)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ISONetError as e:  # every one names a flag's value: data, checkpoint, weights or device
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: continue with --resume_training <out_dir>/checkpoint/last.pth", file=sys.stderr)
        sys.exit(130)
