"""Estimate the ISO setting of images: a patch map per image and the global ISO (its median).

    python test_model.py --model_path models/net_tif.pth --pic_path photo.tif more_photos/
    python test_model.py        # the embedded demo: a photo rendered at ISO 1600, with models/net_tif.pth

For each image, writes <stem>_iso_map.png, <stem>_scatter.png (unless --figures none) and
<stem>.json to --out_dir, and summary.csv for the whole run. Exit code: 0 all images worked, 1 some
failed, 2 bad arguments.
"""
import argparse
import sys
from pathlib import Path

import cli
import demos
import image_io
import isonet
import reports

SUMMARY_COLUMNS = ["file", "width", "height", "stride", "rows", "cols", "global_iso_metric",
                   "global_iso", "nearest_iso", "iso_metric_low", "iso_metric_high", "interval_level", "iqr",
                   "exif_iso", "camera", "file_kind", "reader", "clipped_share", "seconds", "error"]


def unique_stem(path: Path, used: set[str]) -> str:
    """Two inputs called a/x.png and b/x.png must not overwrite each other's outputs."""
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}_{n}"
    used.add(stem)
    return stem


def describe(record: dict, profiles: bool = False) -> str:
    line = (f"{record['file']}: ISO metric {record['global_iso_metric']:.3f}, ISO {record['global_iso']:.0f} "
            f"(nearest {record['nearest_iso']}), IQR {record['iqr']:.2f} stops")
    interval = reports.interval_text(record)
    if record["exif_iso"] is not None and not interval:
        line += f", EXIF ISO {record['exif_iso']}"
    if record["reader"]:
        line += f"; read with the camera profile {record['reader']}"
    elif profiles:
        line += f"; no camera profile matched its camera ({record['camera'] or 'none in its EXIF'})"
    return "\n".join([line + interval, *reports.reading_warnings(record)])


def summary_row(record: dict) -> dict:
    """The record's columns of summary.csv: its interval as two columns."""
    interval = record.get("iso_metric_interval") or (None, None)
    return record | {"iso_metric_low": interval[0], "iso_metric_high": interval[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_inference_args(parser, "models/net_tif.pth", "image files and/or folders of images")
    parser.add_argument("--calibration", help="a calibration file from evaluate.py --calibrate, applied to every map")
    parser.add_argument("--figures", choices=["all", "none"], default="all",
                        help="none: write only the JSON and summary.csv, for batch runs (default all)")
    args = parser.parse_args()
    net = cli.setup_inference(args)
    readers = cli.setup_readers(args, net)
    demo = cli.demo_if_no_pic(args, lambda out: demos.write_demo(out, 1600))
    calibration = None
    if args.calibration:
        import metrics  # imported here: its SciPy takes 0.7 s to import, and only a calibration needs it

        try:
            calibration = metrics.Calibration.load(args.calibration)
            calibration.check_model(net, args.calibration)
        except isonet.ISONetError as e:
            cli.fail(str(e))
    images = image_io.list_images(args.pic_path)
    if not images:
        cli.fail(f"no images found in {' '.join(args.pic_path)}")

    out_dir, used, summary, failed = Path(args.out_dir), set(), [], 0
    for path in images:
        try:
            img, result, record = reports.analyse_image(readers, path, args.stride, args.batch_size, calibration)
            stem = unique_stem(path, used)
            record["model"] = str(args.model_path)
            record["calibration"] = args.calibration
            reports.write_json(out_dir / f"{stem}.json", record)
            if args.figures == "all":
                reports.save_map_figure(img, result, out_dir / f"{stem}_iso_map.png", title=path.name)
                reports.save_scatter_figure(result, out_dir / f"{stem}_scatter.png", title=path.name)
        # One bad file, or one output that cannot be written, never stops the batch; anything else
        # is a bug, and a traceback says where.
        except (isonet.ISONetError, OSError, MemoryError) as e:
            message = str(e) if isinstance(e, isonet.ISONetError) else f"{path}: {type(e).__name__}: {e}"
            print(f"error: {message}", file=sys.stderr)
            summary.append({"file": str(path), "error": message})
            failed += 1
            continue
        print(describe(record, bool(readers.profiles)))
        if demo:
            print(cli.describe_truth(demo, record["global_iso_metric"]))
        summary.append(summary_row(record))
    reports.write_csv(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    print(f"{len(images) - failed} of {len(images)} images done; outputs in {out_dir}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
