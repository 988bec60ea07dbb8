"""Cut labelled photos into ISONet training patches: DATA/{Train,Test}/<ISO>/*.tif -> SAVE/{train,test}.h5.

    python prepare_data.py --data_path photos --out_dir data_64_64_aug3 --pic_type tif
    python prepare_data.py --data_path photos --out_dir data --label_from exif --pic_type jpg  # photos/Train/*.jpg
    python prepare_data.py --render --out_dir data_render --camera reference     # photos rendered from sensor noise
    python prepare_data.py --render --no-train --no-test --data_path photos --isos 800   # render only, no patches

Exit code: 0 every image was used, 1 some were skipped (named on stderr; the rest are written) or
every image of a split was, 2 bad arguments (options, folders, layout).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

import cli
from camera_noise import CAMERA_HELP, DEFAULT_ISOS, PROFILES_HELP, clean_images, load_noise_profiles, render_folder
from cli import add_bool_flag
from dataset import FILE_NAMES, SPLIT_FOLDERS, PrepareOptions, SplitSummary, find_labelled_images, prepare_split
from isonet import ISONetError
from reports import progress


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bool_flag(p, "--train", True, "write the training set (from DATA/Train)")
    add_bool_flag(p, "--test", True, "write the test/validation set (from DATA/Test), never augmented")
    p.add_argument("--stride", type=int, default=96, help="pixels between patches (default 96)")
    p.add_argument("--aug_times", type=int, default=2, help="random rotated/flipped copies per training patch")
    add_bool_flag(p, "--gray_mode", False, "read as grayscale, replicated to 3 channels")
    p.add_argument("--size", type=int, default=64, help="patch size (ISONet needs 64)")
    p.add_argument("--pic_type", default="tif",
                   help="image file extension to read (default tif; 'all': every image type)")
    p.add_argument("--data_path",
                   help="folder holding Train/ and Test/ (default isonet_tif; with --render OUT_DIR/renders)")
    cli.add_out_dir_arg(p, "data_64_64_aug3", "--save_path", help="folder for train.h5 and test.h5 (--save_path: the "
                        "paper's name; default data_64_64_aug3)")
    p.add_argument("--max_patches_per_image", type=int, default=1064, help="random subset above this (paper: 1064)")
    p.add_argument("--seed", type=int, default=0, help="seed for patch subsets, augmentation and row order")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes reading images (default: all cores)")
    p.add_argument("--label_from", choices=["folder", "exif"], default="folder",
                   help="ISO from the class folder name (DATA/Train/800/x.tif) or from EXIF (DATA/Train/x.jpg)")
    r = p.add_argument_group("rendering training photos from measured sensor noise (camera_noise.py)")
    r.add_argument("--render", action="store_true",
                   help="first render DATA/{Train,Test}/<ISO>/ from clean photos (DATA defaults to SAVE/renders)")
    r.add_argument("--camera", default="reference", help=CAMERA_HELP)
    r.add_argument("--isos", type=int, nargs="+", default=list(DEFAULT_ISOS), help="ISO stops to render")
    r.add_argument("--renders_per_image", type=int, default=8, help="renders of each clean photo per ISO")
    r.add_argument("--jpeg_quality", type=int, nargs=2, metavar=("LO", "HI"),
                   help="encode renders as JPEG of a quality drawn from LO..HI (default: lossless PNG)")
    add_bool_flag(r, "--jitter", True, "render each Train photo from a random variant of its source "
                  "(scale, exposure, orientation, colour order)")
    add_bool_flag(r, "--isp", True, "give each render a random camera's processing: demosaic, ISO-adaptive noise "
                  "reduction, tone curve, sharpening, output size, JPEG chroma subsampling (camera_noise.random_isp)")
    r.add_argument("--clean_dir", nargs="+", help="folders of clean photos to render; 'bundled' names the photos "
                   "scikit-image/matplotlib ship (the default), scripts/fetch_clean_photos.sh fetches 23 more")
    r.add_argument("--noise_profiles", help=PROFILES_HELP)
    args = p.parse_args(argv)
    if args.data_path is None:
        args.data_path = str(Path(args.out_dir) / "renders") if args.render else "isonet_tif"
    if args.render:
        args.pic_type = "png" if args.jpeg_quality is None else "jpg"
    return args


def render_photos(args: argparse.Namespace) -> None:
    """DATA/{Train,Test}/<ISO>/ rendered from disjoint clean sources, as the paper's layout."""
    if args.renders_per_image < 1:
        raise ISONetError(f"--renders_per_image {args.renders_per_image}: must be at least 1")
    if args.jpeg_quality and not 1 <= args.jpeg_quality[0] <= args.jpeg_quality[1] <= 100:
        raise ISONetError(f"--jpeg_quality {args.jpeg_quality[0]} {args.jpeg_quality[1]}: need 1 <= LO <= HI <= 100")
    if Path(args.data_path).exists() and any(Path(args.data_path).iterdir()):
        raise ISONetError(f"{args.data_path}: not empty; --render writes a fresh photo set there")
    cameras = load_noise_profiles(args.noise_profiles).select(args.camera)
    written = render_folder(args.data_path, clean_images(args.clean_dir), args.isos, cameras,
                            np.random.default_rng(args.seed), args.jpeg_quality, args.renders_per_image,
                            jitter_train=args.jitter, isp=args.isp)
    print(f"rendered {len(written)} photos into {args.data_path} ({len(cameras)} camera(s): {args.camera})")


def print_table(summaries: dict[str, SplitSummary]) -> None:
    print(f"{'split':<6} {'ISO':>7} {'images':>7} {'patches':>9}")
    for split, s in summaries.items():
        for iso in sorted(s.images):
            print(f"{split:<6} {iso:>7} {s.images[iso]:>7} {s.patches[iso]:>9}")
        size_mib = s.path.stat().st_size / 2**20
        print(f"{split:<6} {'total':>7} {sum(s.images.values()):>7} {sum(s.patches.values()):>9}"
              f"   -> {s.path} ({size_mib:.1f} MiB), {len(s.skipped)} image(s) skipped")


def discover(args: argparse.Namespace, opts: PrepareOptions, splits: list[str]) -> dict[str, list]:
    """Check the options, render if asked, and list every split's labelled files. Its errors are
    about what the command line named, found before anything is written."""
    opts.check()
    if not splits and not args.render:
        raise ISONetError("nothing to do: both --train and --test are off")
    if args.render:
        render_photos(args)
    root = Path(args.data_path)
    pic_type = None if args.pic_type == "all" else args.pic_type
    return {s: find_labelled_images(root / SPLIT_FOLDERS[s], pic_type, args.label_from) for s in splits}


def prepare(args: argparse.Namespace) -> int:
    opts = PrepareOptions(args.size, args.stride, args.aug_times, args.max_patches_per_image, args.gray_mode, args.seed)
    splits = [s for s in ("train", "test") if getattr(args, s)]
    try:
        files = discover(args, opts, splits)
    except ISONetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not splits:  # --render --no-train --no-test: the photo set alone
        return 0
    summaries = {}
    try:
        for split in splits:
            bar = lambda it, s=split: progress(it, total=len(files[s]), desc=s, unit="img")
            warn = lambda msg: tqdm.write(f"warning: skipped {msg}", file=sys.stderr)
            summaries[split] = prepare_split(files[split], Path(args.out_dir) / FILE_NAMES[split], opts, split,
                                             Path(args.data_path), vars(args), on_skip=warn, progress=bar,
                                             workers=args.workers)
    except ISONetError as e:  # every image of a split was skipped
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_table(summaries)
    return 1 if any(s.skipped for s in summaries.values()) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.keep_freed_memory()
    try:
        return prepare(args)
    except KeyboardInterrupt:
        print("interrupted: the split being written was discarded", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
