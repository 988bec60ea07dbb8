"""The command-line conventions every script shares: one-line errors and exit codes (0 done, 1 an
input failed, 2 bad arguments), boolean flags in the original scripts' style, --device and
--out_dir, the inference scripts' common flags, model loading, the embedded demos' selection, and
the process's memory reuse.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from camera_profile import Readers, by_camera, load_profile, profile_folders
from image_io import file_kind
from isonet import (
    DENSE_STEP,
    PATCH,
    PRECISIONS,
    PROJECT,
    IsoMap,
    ISONet,
    ISONetError,
    iso_to_metric,
    load_model,
    metric_to_iso,
    resolve_device,
    weights_fingerprint,
)
from metrics import Calibration, IntervalTable
from reports import analyse_image

# Without --model_path, test_model.py, Fig4.py and Fig7.py read each file with the shipped model made
# for its kind: lossy files (JPEG, HEIC, lossy WebP) with the one trained on JPEGs, the rest with the
# one trained lossless.
MODELS_BY_KIND = {"uncompressed": "models/net_tif.pth", "lossy": "models/net_jpg.pth"}


# glibc's mallopt options, and the size up to which freed memory is kept for reuse.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 1 GiB for reuse instead of handing them back
    to the system; whether it took the setting. A map's bands of patches and a training step's
    activations are tens of MB, which glibc otherwise maps afresh each time: the page faults cost a
    fifth of the time of reading or fine-tuning (docs/benchmarks.md). Nothing where the C library
    has no mallopt (macOS, Windows) or refuses so high a threshold (glibc before 2.27 or so), where
    fixing the trim threshold alone would only stop glibc's own adjustment."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and a non-zero exit: no traceback for a user's mistake."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    sys.exit(code)


DEVICE_HELP = "auto (default: CUDA when present), cpu, cuda or cuda:N"


def device_name(value: str) -> str:
    """argparse type of --device: auto, cpu, cuda or cuda:N."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"'{value}': expected {DEVICE_HELP}")
    return value


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help=DEVICE_HELP)


def add_out_dir_arg(parser: argparse.ArgumentParser, default: str | None, *aliases: str, help: str = "") -> None:
    """--out_dir, where every script writes its outputs; `aliases` are other names it answers to
    (the paper's --save_path, say)."""
    parser.add_argument("--out_dir", *aliases, default=default, required=default is None,
                        help=help or f"where outputs go (default {default}/)")


def add_inference_args(parser: argparse.ArgumentParser, model_default: str | None, pic_help: str | None,
                       out_dir: str = "results", readers: bool = True) -> None:
    """The paper's flags (--model_path, --pic_path, --checkpoint) and ours; no --pic_path if no help;
    with `readers`, those that choose what reads each image and its interval (--profile, --profiles,
    --intervals) and --show. A `model_default` of None: each file's kind picks a shipped model
    (MODELS_BY_KIND)."""
    by_kind = ", ".join(f"{path} for {kind} files" for kind, path in reversed(MODELS_BY_KIND.items()))
    parser.add_argument("--model_path", default=model_default and str(PROJECT / model_default),
                        help="ISONet weights: state dict or training checkpoint, for every image (default: this "
                             f"project's {model_default or by_kind})")
    if pic_help:
        parser.add_argument("--pic_path", nargs="+", help=pic_help)
    parser.add_argument("--checkpoint", action="store_true",
                        help="accepted for compatibility: checkpoints are detected automatically")
    add_out_dir_arg(parser, out_dir)
    parser.add_argument("--stride", type=int, default=PATCH,
                        help="patch step in pixels: 64 = the paper's non-overlapping map; "
                             "a multiple of 4 below 64 gives a dense map (fully convolutional)")
    add_device_arg(parser)
    parser.add_argument("--batch_size", type=int, help="patches per forward pass (default 16 on CPU, 1024 on CUDA)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="fp32 (default): maps match the published procedure to 1e-4. bf16: about 3x "
                             "faster on CPUs with AMX or AVX-512 BF16 and on GPUs (slower on other CPUs); "
                             "on real photos the global estimate moves by 0.004 stop (median; at most 0.06), "
                             "patch values by up to a few tenths")
    if not readers:
        return
    parser.add_argument("--show", action="store_true", help="also open the figures in windows")
    trust = parser.add_argument_group("camera profiles and intervals")
    trust.add_argument("--profile", metavar="DIR",
                       help="a camera profile (adapt_camera.py --out DIR): its reader reads every image, with the "
                            "interval its held-out photos give")
    trust.add_argument("--profiles", metavar="DIR",
                       help="a folder of camera profiles: each image is read by the profile of its EXIF camera, "
                            "where one matches (it says which), else by the model")
    trust.add_argument("--intervals", metavar="PATH",
                       help="the model's interval table (default: MODEL.intervals.json beside the model, "
                            "where there is one; evaluate.py --fit_intervals writes one)")


def check_reader_args(args: argparse.Namespace) -> None:
    """Exit with one line where the flags that choose what reads each image conflict."""
    args.profiles, args.intervals = getattr(args, "profiles", None), getattr(args, "intervals", None)
    args.calibration = getattr(args, "calibration", None)
    if args.profile and args.profiles:
        fail("--profile and --profiles: pass one of them")
    if (args.profile or args.profiles) and args.calibration:
        fail("--calibration calibrates a model's readings; a camera profile brings its own reading: pass one of them")
    if args.calibration and args.intervals:
        fail("--intervals holds the model's own readings' intervals; a --calibration changes the readings")


def interval_table(args: argparse.Namespace, net: ISONet, model_path: str) -> tuple[IntervalTable | None, Path | None]:
    """The model's interval table (--intervals, else the one beside `model_path`) and its path; none
    under a --calibration, or where there is none; or exit with one line."""
    table_path = Path(args.intervals) if args.intervals else Path(model_path).with_suffix(".intervals.json")
    if args.calibration:
        return None, None
    if not (args.intervals or table_path.is_file()):
        return None, None
    try:
        table = IntervalTable.load(table_path)
        table.check_model(net, table_path)
        return table, table_path
    except ISONetError as e:
        if args.intervals:
            fail(str(e))
        print(f"note: {e}; readings get no interval", file=sys.stderr)
        return None, None


def setup_readers(args: argparse.Namespace, net: ISONet, with_prnu: bool = False,
                  model_path: str | None = None) -> Readers:
    """What reads each image (camera_profile.Readers): --profile, --profiles (with their PRNU where
    `with_prnu`) and the model (--model_path unless given) with its interval table; or exit with one line."""
    check_reader_args(args)
    table, table_path = interval_table(args, net, model_path or args.model_path)
    device = next(net.parameters()).device
    try:
        profile = load_profile(args.profile, device, args.precision, with_prnu) if args.profile else None
        profiles = by_camera([load_profile(folder, device, args.precision, with_prnu)
                              for folder in (profile_folders(args.profiles) if args.profiles else [])])
    except ISONetError as e:
        fail(str(e))
    if args.profiles and not profiles:
        fail(f"{args.profiles}: no camera profile in it (adapt_camera.py --out DIR builds one)")
    return Readers(net, table, table_path, profile, profiles)


def setup_models_by_kind(args: argparse.Namespace) -> dict[str, tuple[str, ISONet]]:
    """{kind of file: (model path, model)}, MODELS_BY_KIND's kinds: --model_path for every kind (without
    it, the shipped model that --calibration or --intervals was fitted for), else each kind's shipped
    model; or exit with one line."""
    check_reader_args(args)
    if (args.calibration or args.intervals) and not args.model_path:
        args.model_path = shipped_model_fitted_for(args)
    if args.model_path:
        net = setup_inference(args)
        return dict.fromkeys(MODELS_BY_KIND, (args.model_path, net))
    return {kind: (str(PROJECT / path), setup_inference(args, str(PROJECT / path)))
            for kind, path in MODELS_BY_KIND.items()}


def shipped_model_fitted_for(args: argparse.Namespace) -> str:
    """The shipped model that --calibration (else --intervals) was fitted for, which then reads every
    image (it says so); or exit with one line."""
    path = args.calibration or args.intervals
    try:
        fitted = (Calibration.load(path) if args.calibration else IntervalTable.load(path)).model_sha256
        shipped = next((str(PROJECT / m) for m in MODELS_BY_KIND.values()
                        if weights_fingerprint(load_model(PROJECT / m)) == fitted), None)
    except ISONetError as e:
        fail(str(e))
    if shipped is None:
        fail(f"{path}: fitted for none of the shipped models: name its model with --model_path")
    print(f"note: {path} was fitted for {shipped}, which reads every image", file=sys.stderr)
    return shipped


def setup_readers_by_kind(args: argparse.Namespace, models: dict[str, tuple[str, ISONet]]) -> dict[str, Readers]:
    """setup_readers for each kind's model (one Readers where one model reads every kind); the
    profiles are loaded once."""
    readers: dict[str, Readers] = {}
    for kind, (path, net) in models.items():
        first = next(iter(readers.values()), None)
        if first is None:
            readers[kind] = setup_readers(args, net, model_path=path)
        elif first.net is net:
            readers[kind] = first
        else:
            table, table_path = interval_table(args, net, path)
            readers[kind] = replace(first, net=net, table=table, table_path=table_path)
    return readers


def model_for_the_one_image(args: argparse.Namespace, demo_kind: str) -> bool:
    """Without --model_path, name in args.model_path the shipped model that --intervals was fitted
    for, else that of the one --pic_path's kind (of the demo's kind without one); whether the kind
    chose it."""
    check_reader_args(args)
    if args.model_path:
        return False
    if args.intervals:
        args.model_path = shipped_model_fitted_for(args)
        return False
    try:
        kind = model_kind(_single_pic_path(args)) if args.pic_path else demo_kind
    except OSError:
        kind = demo_kind  # the file's own one-line error comes when it is read
    args.model_path = str(PROJECT / MODELS_BY_KIND[kind])
    return True


def chosen_model_text(record: dict, model_path: str, by_kind: bool) -> str:
    """', by MODEL' for an image's printed line where its kind chose the model that read it."""
    return f", by {Path(model_path).name}" if by_kind and not record["reader"] else ""


def model_kind(path: str | os.PathLike) -> str:
    """Which of MODELS_BY_KIND's kinds the file is: 'uncompressed' (image_io.file_kind's), else 'lossy'."""
    return "uncompressed" if file_kind(path) == "uncompressed" else "lossy"


def setup_inference(args: argparse.Namespace, model_path: str | None = None) -> ISONet:
    """Validate the shared arguments and load the model (--model_path unless given), or exit with one line."""
    if not (0 < args.stride <= PATCH and args.stride % DENSE_STEP == 0):
        fail(f"--stride {args.stride}: must be a multiple of {DENSE_STEP} between 4 and {PATCH}")
    if args.batch_size is not None and args.batch_size < 1:
        fail(f"--batch_size {args.batch_size}: must be at least 1")
    if getattr(args, "show", False):
        os.environ["ISONET_SHOW"] = "1"
    try:
        return load_model(model_path or args.model_path, resolve_device(args.device), args.precision)
    except ISONetError as e:
        fail(str(e))


def map_one_image(args: argparse.Namespace, readers: Readers) -> tuple[Path, np.ndarray, IsoMap, dict]:
    """Fig4/Fig7: map the one --pic_path, or exit with one line."""
    path = _single_pic_path(args)
    try:
        return (path, *analyse_image(readers, path, args.stride, args.batch_size))
    except ISONetError as e:
        fail(str(e), 1)


def demo_if_no_pic(args: argparse.Namespace, make_demo: Callable[[Path], object]):
    """Without --pic_path: render the embedded demo into --out_dir and map that instead.

    `make_demo(out_dir)` returns a demos.Demo (passed in: each script renders its own demo)."""
    if args.pic_path:
        return None
    try:
        demo = make_demo(Path(args.out_dir))
    except ISONetError as e:
        fail(f"no --pic_path, and the embedded demo could not be rendered: {e}")
    args.pic_path = [str(demo.path)]
    scene = f"ISO {demo.iso}" + (f" with a region spliced in from ISO {demo.region_iso}" if demo.region_iso else "")
    print(f"no --pic_path given: demo {demo.path}, rendered at {scene} with the noise of a {demo.camera}")
    return demo


def describe_truth(demo, estimate: float) -> str:
    truth = iso_to_metric(demo.iso)
    return (f"truth: ISO {demo.iso} (metric {truth:.3f}); estimate ISO {metric_to_iso(estimate):.0f} "
            f"(metric {estimate:.3f}), error {estimate - truth:+.2f} stops")


def _single_pic_path(args: argparse.Namespace) -> Path:
    if len(args.pic_path) > 1:
        fail(f"--pic_path takes one image here, got {len(args.pic_path)} (test_model.py maps many)")
    return Path(args.pic_path[0])


def str2bool(value: str | bool) -> bool:
    """argparse type for flags that accept `--x`, `--x True` and `--x false` (the originals' style)."""
    if isinstance(value, bool):
        return value
    if value.lower() in {"1", "true", "yes", "y", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "n", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got '{value}'")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """--name, --name VALUE and --no-name, all meaning what they say."""
    dest = name.lstrip("-").replace("-", "_")
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, dest=dest,
                        help=f"{help} (default {default}; --no-{name.lstrip('-')} = False)")
    parser.add_argument(f"--no-{name.lstrip('-')}", action="store_false", dest=dest, help=argparse.SUPPRESS)


# ---------------------------------------------------------------------------------------------
# Several processes (torchrun), on one machine or several
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Processes:
    """Where this process stands among torchrun's: its rank of `world`, and of `local_world` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1


def join_processes(device: torch.device) -> tuple[Processes, torch.device]:
    """Under torchrun (RANK in the environment), join its process group (nccl on GPUs, gloo on the
    CPU) and take this process's own GPU; on the CPU, this process's share of the machine's cores.
    Without torchrun, the one process."""
    import torch.distributed as dist

    if "RANK" not in os.environ:
        return Processes(), device
    env = {k: int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0),
                                                      ("LOCAL_WORLD_SIZE", 1))}
    processes = Processes(env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes.local_world))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return processes, device


def gather(processes: Processes, part: dict) -> dict:
    """Every process's `part` merged into one dict (this process's alone when there is one)."""
    if not processes.distributed:
        return part
    import torch.distributed as dist

    parts = [None] * processes.world
    dist.all_gather_object(parts, part)
    return {k: v for p in parts for k, v in p.items()}


def leave_processes(processes: Processes) -> None:
    """Wait for every process, then leave the group: a rank that tears gloo down while another is
    still writing its files can abort ("terminate called without an active exception")."""
    import torch.distributed as dist

    if processes.distributed or dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
