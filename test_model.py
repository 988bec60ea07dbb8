"""Estimate the ISO setting of images: a patch map per image and the global ISO (its median).

    python test_model.py --pic_path photo.tif camera.jpg more_photos/
    python test_model.py --model_path models/net_tif.pth --pic_path photo.tif     # one model for every image
    python test_model.py        # the embedded demo: a photo rendered at ISO 1600, with models/net_tif.pth
    python test_model.py --pic_path seized/ --recursive --figures none --workers 2 --resume
    torchrun --nproc_per_node 4 test_model.py --pic_path seized/ --recursive --figures none --resume

Without --model_path, each file is read by the shipped model made for its kind: models/net_jpg.pth
for JPEGs (and other lossy files), models/net_tif.pth for the rest; with a --calibration or an
--intervals table, the shipped model it was fitted for reads every file.

For each image, writes <name>_iso_map.png, <name>_scatter.png (unless --figures none) and
<name>.json to --out_dir, where <name> is the image's path relative to the folder all the inputs
share (so IMG_0001.JPG of two folders never clash), and summary.csv for the whole run, rebuilt from
the records at the end. Each record is written whole or not at all, after its figures: with
--resume, an image whose record is complete and was made with the same model and settings is not
read again, so a killed run finishes where it stopped. Under torchrun the images are dealt out
between the processes (the same image always to the same rank), each on its own GPU or its share
of the CPU's cores, and rank 0 writes summary.csv once every process is done. Exit code: 0 all
images worked, 1 some failed, 2 bad arguments.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import camera_profile
import cli
import demos
import image_io
import isonet
import reports

SUMMARY_COLUMNS = ["file", "width", "height", "stride", "rows", "cols", "global_iso_metric",
                   "global_iso", "nearest_iso", "iso_metric_low", "iso_metric_high", "interval_level", "iqr",
                   "exif_iso", "camera", "file_kind", "model", "reader", "profile_photo", "clipped_share", "seconds",
                   "error"]


def output_names(paths: list[Path]) -> list[str]:
    """Each image's output name: its path relative to the folder all the images share, without its
    suffix (sub/IMG_0001); a name taken by an earlier image of the list gets _2, _3... (x.png and x.jpg)."""
    if not paths:
        return []
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    used, names = set(), []
    for path in paths:
        base = path.resolve().relative_to(root).with_suffix("").as_posix()
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names.append(name)
    return names


def collection(args: argparse.Namespace) -> list[Path]:
    """The images to read: --pic_path's files and folders (their subfolders too with --recursive)
    and the paths of --file_list, one a line (relative ones to the list's folder); or exit with one line."""
    listed = []
    if args.file_list:
        try:
            lines = Path(args.file_list).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            cli.fail(f"{args.file_list}: --file_list cannot be read ({type(e).__name__})")
        listed = [Path(args.file_list).parent / line.strip() for line in lines if line.strip()]
    images = image_io.list_images(args.pic_path or [], recursive=args.recursive) + listed
    if not images:
        cli.fail(f"no images found in {' '.join(map(str, args.pic_path or [args.file_list]))}")
    return images


def run_settings(args: argparse.Namespace, readers: dict) -> dict:
    """What decides an image's outputs besides the image: a record made with other settings is not
    complete for --resume (the files named by their contents' hashes, so a refitted table counts).
    `readers` are cli.setup_readers_by_kind's; where one model reads every kind, the model and the
    table are named as in a run of one model."""
    first = readers["uncompressed"]
    distinct = {kind: r for kind, r in readers.items() if kind == "uncompressed" or r is not first}
    models = {kind: isonet.weights_fingerprint(r.net) for kind, r in distinct.items()}
    tables = {kind: file_hash(r.table_path) for kind, r in distinct.items()}
    if len(distinct) == 1:
        models, tables = models["uncompressed"], tables["uncompressed"]
    return {"model_sha256": models, "stride": args.stride, "precision": args.precision,
            "figures": args.figures, "calibration": file_hash(args.calibration),
            "profiles": sorted(file_hash(Path(p.folder) / "profile.json") for p in first.all_profiles()),
            "intervals": tables}


def file_hash(path: str | os.PathLike | None) -> str | None:
    return None if path is None else image_io.file_sha256(path)


def complete_record(path: Path, image: Path, settings: dict) -> dict | None:
    """The record at `path` if it is whole, of `image`, and made with `settings`, else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    whole = isinstance(record, dict) and record.get("file") == str(image) and record.get("settings") == settings
    return record if whole else None


def describe(record: dict, profiles: bool = False, name_model: bool = False) -> str:
    """The image's printed lines; with `name_model` (models chosen by file kind), which model read it."""
    line = (f"{record['file']}: ISO metric {record['global_iso_metric']:.3f}, ISO {record['global_iso']:.0f} "
            f"(nearest {record['nearest_iso']}), IQR {record['iqr']:.2f} stops")
    line += cli.chosen_model_text(record, record["model"], name_model)
    interval = reports.interval_text(record)
    if record["exif_iso"] is not None and not interval:
        line += f", EXIF ISO {record['exif_iso']}"
    return "\n".join([line + reports.reader_text(record, profiles) + interval, *reports.reading_warnings(record)])


def summary_row(record: dict) -> dict:
    """The record's columns of summary.csv: its interval as two columns."""
    interval = record.get("iso_metric_interval") or (None, None)
    return record | {"iso_metric_low": interval[0], "iso_metric_high": interval[1]}


class Decoded(torch.utils.data.Dataset):
    """The images of the collection, decoded (in --workers processes, ahead of the network); an
    image that fails gives its one-line error instead."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> tuple[int, np.ndarray | str]:
        path = self.paths[k]
        try:
            return k, image_io.read_image(path)
        # One file that cannot be read never stops the batch (as in main's loop).
        except (isonet.ISONetError, OSError, MemoryError) as e:
            return k, str(e) if isinstance(e, isonet.ISONetError) else f"{path}: {type(e).__name__}: {e}"


def same_item(item):
    """The DataLoader's collate_fn: each item as it is (a function, not a lambda, so that it pickles)."""
    return item


def decoded(paths: list[Path], workers: int):
    """(index, image or error) of each path, in order; `workers` processes decode ahead."""
    if workers == 0:
        return map(Decoded(paths).__getitem__, range(len(paths)))
    return torch.utils.data.DataLoader(Decoded(paths), batch_size=None, num_workers=workers,
                                       collate_fn=same_item, prefetch_factor=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_inference_args(parser, None, "image files and/or folders of images")
    parser.add_argument("--calibration", help="a calibration file from evaluate.py --calibrate, applied to every map "
                                               "(without --model_path, the shipped model it was fitted for reads "
                                               "every image)")
    parser.add_argument("--figures", choices=["all", "none"], default="all",
                        help="none: write only the JSON and summary.csv, for batch runs (default all)")
    collections = parser.add_argument_group("large collections")
    collections.add_argument("--recursive", action="store_true", help="read the folders' subfolders too")
    collections.add_argument("--file_list", metavar="F", help="a file of image paths, one a line (relative ones to "
                                                             "its folder), read beside any --pic_path")
    collections.add_argument("--resume", action="store_true",
                             help="skip every image whose record in --out_dir is complete and made with the same "
                                  "model and settings")
    collections.add_argument("--workers", type=int, default=0,
                             help="processes decoding the next images while the network reads (default 0: none)")
    collections.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args()
    cli.keep_freed_memory()
    if args.workers < 0:
        cli.fail(f"--workers {args.workers}: must be 0 or more")
    models = cli.setup_models_by_kind(args)
    processes, device = cli.join_processes(next(models["uncompressed"][1].parameters()).device)
    models = {kind: (path, net.to(device)) for kind, (path, net) in models.items()}
    by_kind = cli.setup_readers_by_kind(args, models)
    if args.file_list is None:
        demo = cli.demo_if_no_pic(args, lambda out: demos.write_demo(out, 1600))
    else:
        demo = None
    calibration = None
    if args.calibration:
        import metrics  # imported here: its SciPy takes 0.7 s to import, and only a calibration needs it

        try:
            calibration = metrics.Calibration.load(args.calibration)
            calibration.check_model(models["uncompressed"][1], args.calibration)
        except isonet.ISONetError as e:
            cli.fail(str(e))
    images = collection(args)
    names = output_names(images)
    settings = run_settings(args, by_kind)
    out_dir = Path(args.out_dir)

    # This process's share: every world-th image from its rank on, the same for the same list.
    todo = [k for k in range(processes.rank, len(images), processes.world)
            if not (args.resume and complete_record(out_dir / f"{names[k]}.json", images[k], settings))]
    failed = {}
    name_model = not args.model_path  # each file's kind chose the model that reads it
    bar = reports.progress(decoded([images[k] for k in todo], args.workers), total=len(todo), unit="image",
                           desc=f"rank {processes.rank}" if processes.distributed else "images",
                           disable=True if args.quiet else None)
    for position, img in bar:
        k = todo[position]
        path, name = images[k], names[k]
        try:
            if isinstance(img, str):
                raise isonet.ISONetError(img)
            kind = cli.model_kind(path)
            img, result, record = reports.analyse_image(by_kind[kind], path, args.stride, args.batch_size,
                                                        calibration, img)
            record |= {"model": models[kind][0], "calibration": args.calibration, "settings": settings}
            if args.figures == "all":
                reports.save_map_figure(img, result, out_dir / f"{name}_iso_map.png", title=path.name)
                reports.save_scatter_figure(result, out_dir / f"{name}_scatter.png", title=path.name)
            reports.write_json(out_dir / f"{name}.json", record)  # last: a record on disk is a complete one
        # One bad file, or one output that cannot be written, never stops the batch; anything else
        # is a bug, and a traceback says where.
        except (isonet.ISONetError, OSError, MemoryError) as e:
            message = str(e) if isinstance(e, isonet.ISONetError) else f"{path}: {type(e).__name__}: {e}"
            print(f"error: {message}", file=sys.stderr)
            failed[k] = message
            continue
        print(describe(record, bool(by_kind[kind].profiles), name_model), flush=True)
        if demo:
            print(cli.describe_truth(demo, record["global_iso_metric"]))
    failed = cli.gather(processes, failed)  # and every process's records are written by now
    cli.leave_processes(processes)
    if processes.rank == 0:
        summary, by_profile = [], False
        for k, (path, name) in enumerate(zip(images, names)):
            record = complete_record(out_dir / f"{name}.json", path, settings)
            by_profile = by_profile or bool(record and record["reader"])
            summary.append(summary_row(record) if record else {"file": str(path),
                                                                "error": failed.get(k, "no complete record")})
        reports.write_csv(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
        if by_profile and args.profiles:  # matched by EXIF make and model, which cannot tell units apart
            print(f"note: {camera_profile.OTHER_UNITS}; Fig7.py --profile checks a photo's unit by its PRNU",
                  file=sys.stderr)
        done = sum(not row.get("error") for row in summary)
        print(f"{done} of {len(images)} images done; outputs in {out_dir}/")
        return 0 if done == len(images) else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
