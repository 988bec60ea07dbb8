"""The paper's Fig. 7 scenario: the global ISO metric of a JPEG image (median of its patch map)
picks the PRNU correlation predictor for tampering localisation.

Prints the global ISO metric and writes the map figure to <out_dir>/Fig7.png. Then:

    python Fig7.py              # embedded demo (a camera JPEG rendered at ISO 800), then the PRNU
                                # scenario on renders of held-out photos at ISO 100-6400, ISONet as
                                # given: predicted against measured correlation -> <out_dir>/Fig7_prnu.png
    python Fig7.py --adapt      # the full scenario: ISONet first adapted to the camera (minutes)
    python Fig7.py --adapt --scenario_folds 6   # each bundled photo held out once (steadier; longer)
    python Fig7.py --pic_path photo.jpg     # read by the shipped model of its kind, as in test_model.py
    python Fig7.py --pic_path probe.jpg --fingerprint_dir my_camera/
                                # PCE of the probe against my_camera/'s fingerprint, the ISO band
                                # ISONet picks, and the forgery map -> <out_dir>/Fig7_forgery.png
                                # (--band isonet_weighted: my_camera/'s images carry EXIF ISOs)
    python Fig7.py --pic_path questioned.jpg --profile my_camera_profile/
                                # the photo examined against its camera's profile (adapt_camera.py --out):
                                # ISO reading and interval against EXIF, ISO map and splice scores, PCE
                                # and forgery map -> <out_dir>/Fig7_examination.png and .json

Exit code: 0 done, 1 an input failed (unreadable probe, fingerprint images left out), 2 bad arguments.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import camera_noise
import cli
import demos
import examination
import image_io
import isonet
import prnu
import prnu_scenario
import reports

# Seconds a fold of the scenario takes on this project's 2-core CPU: ISONet as given, and adapted.
SCENARIO_SECONDS = {False: 25, True: 400}


def add_prnu_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fingerprint_dir", help="images of one camera, of the probe's size: its PRNU fingerprint "
                                                  "(and the predictor's training blocks)")
    parser.add_argument("--band", choices=examination.BAND_CHOICES, default="isonet",
                        help="what picks the correlation predictor's ISO band: ISONet's global estimate (default), "
                             "the EXIF ISO, one predictor for all, or isonet_weighted: the EXIF-ISO bands of the "
                             "fingerprint images (EXIF needed there, not in the probe) weighted by how often ISONet "
                             "read images of each ISO as it reads the probe")
    parser.add_argument("--block", type=int, default=prnu.BLOCK, help="block size of the forgery map (default 128)")
    parser.add_argument("--block_stride", type=int, default=prnu.BLOCK // 2, help="block step (default 64)")
    parser.add_argument("--false_alarm", type=float, default=prnu.FALSE_ALARM,
                        help="share of genuine blocks allowed to be flagged (default 0.01)")
    parser.add_argument("--channels", choices=("luma", "rgb"), default="luma",
                        help="noise residual of the luma, or of each colour channel combined (3x slower)")
    parser.add_argument("--plain", action="store_true",
                        help="scenario renders without the camera's processing (no noise reduction)")
    parser.add_argument("--adapt", action="store_true",
                        help="scenario: ISONet fine-tuned first on the camera's Train renders at their known ISOs, "
                             f"three readers a fold (about {round(SCENARIO_SECONDS[True] / 60)} min a fold on 2 cores)")
    parser.add_argument("--no_adapt", action="store_false", dest="adapt",
                        help="scenario: ISONet reads as given (the default)")
    parser.add_argument("--scenario_folds", type=int, default=1,
                        help=f"1 (default): the scenario's probes come from the renderer's two Test photos; 2-"
                             f"{len(camera_noise.BUNDLED_PHOTOS)}: every bundled photo held out once, in that many "
                             "folds: steadier figures")
    parser.add_argument("--scenario_seed", type=int, default=0,
                        help="the scenario's seed: its flat fields, renders, forgeries and readers (default 0)")


def check_prnu_args(args: argparse.Namespace) -> list[Path]:
    """The fingerprint images, or exit 2 with one line."""
    if args.block < 16 or args.block_stride < 1:
        cli.fail(f"--block {args.block} / --block_stride {args.block_stride}: at least 16 and 1")
    if not 0 < args.false_alarm < 0.5:
        cli.fail(f"--false_alarm {args.false_alarm}: must lie between 0 and 0.5")
    if not 1 <= args.scenario_folds <= len(camera_noise.BUNDLED_PHOTOS):
        cli.fail(f"--scenario_folds {args.scenario_folds}: between 1 and {len(camera_noise.BUNDLED_PHOTOS)}")
    if args.fingerprint_dir is None:
        return []
    if args.profile or args.profiles:
        cli.fail("--fingerprint_dir and a camera profile: the profile holds its camera's fingerprint; pass one")
    if not args.pic_path:
        cli.fail("--fingerprint_dir needs --pic_path, the probe to test against the fingerprint")
    if not Path(args.fingerprint_dir).is_dir():
        cli.fail(f"{args.fingerprint_dir}: --fingerprint_dir is not a folder")
    images = image_io.list_images([args.fingerprint_dir])
    if len(images) < 2:
        cli.fail(f"{args.fingerprint_dir}: {len(images)} image(s); a fingerprint needs at least 2 "
                 "(half a dozen or more is better)")
    return images


def report_scenario(args: argparse.Namespace, net: isonet.ISONet) -> None:
    config = dataclasses.replace(prnu_scenario.ScenarioConfig(), camera_processing=not args.plain,
                                 false_alarm=args.false_alarm, folds=args.scenario_folds, adapt_reader=args.adapt,
                                 seed=args.scenario_seed)
    expected = SCENARIO_SECONDS[args.adapt] * args.scenario_folds
    reader = "adapted" if args.adapt else "as given"
    print(f"PRNU scenario on renders ({args.scenario_folds} fold(s), ISONet {reader}): "
          f"about {expected // 60} min {expected % 60} s on 2 CPU cores", flush=True)
    try:
        result = prnu_scenario.run_scenario(net, config, say=lambda line: print(f"  {line}", flush=True))
    except isonet.ISONetError as e:
        cli.fail(f"the PRNU scenario could not be rendered: {e}", 1)
    print("\n".join(prnu_scenario.scenario_report(result)))
    out = Path(args.out_dir) / "Fig7_prnu.png"
    prnu_scenario.save_scenario_figure(result, out)
    print(f"figure: {out}")


def analyse_probe(args: argparse.Namespace, net: isonet.ISONet, path: Path, img, reading: float,
                  fingerprint_images: list[Path]) -> int:
    try:
        report = examination.analyse_probe(path, fingerprint_images, net, args.band, args.block, args.block_stride,
                                           args.false_alarm, args.channels, reading)
    except isonet.ISONetError as e:
        cli.fail(str(e), 1)
    for line in report.failed:
        print(f"error: {line}", file=sys.stderr)
    print("\n".join(examination.probe_report_lines(report)))
    out = Path(args.out_dir) / "Fig7_forgery.png"
    examination.save_forgery_figure(img, report, out)
    print(f"figure: {out}")
    return 1 if report.failed else 0


def examine_against_profile(args: argparse.Namespace, profile, path: Path, img, result, record: dict) -> int:
    """The questioned photo against its camera's profile: one report, Fig7_examination.png and .json."""
    if (args.block, args.block_stride, args.channels) != (prnu.BLOCK, prnu.BLOCK // 2, "luma"):
        cli.fail(f"--block, --block_stride and --channels: the profile {profile.folder} holds its own "
                 f"({profile.prnu.block if profile.prnu else prnu.BLOCK} blocks, luma residuals)")
    try:
        exam = examination.examine(path, img, result, record, profile, args.band, args.false_alarm)
    except isonet.ISONetError as e:
        cli.fail(str(e), 1)
    print("\n".join(examination.examination_lines(exam)))
    out = Path(args.out_dir) / "Fig7_examination"
    reports.write_json(out.with_suffix(".json"), examination.examination_json(exam))
    examination.save_examination_figure(img, exam, out.with_suffix(".png"))
    print(f"examination: {out}.png, {out}.json")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_inference_args(parser, None, "the image to estimate, and the PRNU probe")
    add_prnu_args(parser)
    args = parser.parse_args()
    cli.keep_freed_memory()
    by_kind = cli.model_for_the_one_image(args, "lossy")  # the demo is a camera JPEG
    net = cli.setup_inference(args)
    fingerprint_images = check_prnu_args(args)
    readers = cli.setup_readers(args, net, with_prnu=True)
    demo = cli.demo_if_no_pic(
        args, lambda out: demos.write_demo(out, 800, jpeg_quality=90, camera_processing=True))
    path, img, result, record = cli.map_one_image(args, readers)
    out = Path(args.out_dir) / "Fig7.png"
    reports.save_map_figure(img, result, out, title=f"{path.name} ({reports.model_label(args.model_path)})")
    print(f"Estimated ISO metric: {result.global_metric:.3f} (ISO {result.global_iso:.0f}, "
          f"nearest full stop {record['nearest_iso']}, IQR {result.iqr:.2f} stops{reports.interval_text(record)})"
          + cli.chosen_model_text(record, args.model_path, by_kind)
          + reports.reader_text(record, bool(readers.profiles)))
    if record["exif_iso"] is not None and record["iso_metric_interval"] is None:
        print(f"EXIF ISO: {record['exif_iso']} (metric {isonet.iso_to_metric(record['exif_iso']):.3f})")
    for warning in reports.reading_warnings(record):
        print(warning)
    if demo is not None:
        print(cli.describe_truth(demo, result.global_metric))
    print(f"figure: {out}")
    if demo is not None:
        report_scenario(args, net)
    if fingerprint_images:
        others = examination.without_probe(path, fingerprint_images)
        if len(others) < len(fingerprint_images):
            print(f"note: {path.name} lies in --fingerprint_dir: left out of the fingerprint it is tested against")
        return analyse_probe(args, net, path, img, result.global_metric, others)
    profile = readers.profile_for(path)
    if profile is not None and not demo:
        return examine_against_profile(args, profile, path, img, result, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
