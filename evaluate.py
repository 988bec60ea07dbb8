"""Score ISONet models on labelled photos, calibrate them, and measure splice localisation.

    python evaluate.py --model_path models/net_tif.pth --data DIR            # DIR/<ISO>/* or DIR/Test/<ISO>/*
    python evaluate.py --model_path M --data DIR --label_from exif           # flat folder, EXIF ISO as truth
    python evaluate.py --model_path M --data DIR --compare M2 --calibrate    # two models; fit a calibration
    python evaluate.py --model_path M --splice 40 --stride 16                # rendered splices, AUC and F1
    python evaluate.py --model_path M --splice 40 --stride 16 --data REAL    # splices of real photos, same metrics
    python evaluate.py --noise_stats --data REAL                             # real photos' noise vs the renders'

Labelled sets from import_real_photos.py are reported per camera (their manifest.csv); splices
are scored beside the classical baseline, Immerkaer's per-patch noise sigma, and with each model's
evidence and the sigma's added ("M + sigma", metrics.fused_splice_scores).

Writes per_image.csv, report.json, scatter.png and confusion.png (splice mode: splice.csv and
report.json; --noise_stats: noise_statistics.csv and .png) to --out_dir. Exit code: 0 every image
scored, 1 some could not be read or labelled (listed on stderr and in report.json; the rest are
scored) or none could, 2 bad arguments or no images.
"""
import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import camera_noise
import cli
import dataset
import forgeries
import image_io
import isonet
import metrics
import real_photos
import reports
from camera_profile import Profile


def labelled_images(data: list[str], label_from: str) -> list[tuple[Path, int | None]]:
    """The labelled images of every --data folder (DIR/<ISO>/*, DIR/Test/<ISO>/*, or flat with EXIF)."""
    found = []
    for folder in map(Path, data):
        root = folder / "Test" if label_from == "folder" and (folder / "Test").is_dir() else folder
        found += dataset.find_labelled_images(root, None, label_from)
    return found


def cameras_of(paths: list[Path], data: list[str]) -> list[str]:
    """Each photo's camera: from its photo set's manifest, else EXIF (real_photos.cameras_of); the
    manifest is looked for up to the folder above the --data folders, so that a set's split passed
    alone (data/real/Train) finds its set's."""
    return real_photos.cameras_of(paths, os.path.commonpath([str(Path(d).resolve().parent) for d in data]))


def print_model_table(model_reports: dict[str, dict], title: str) -> None:
    print(f"\n{title}")
    w = max(28, *map(len, model_reports))  # a name whole: two paths may end alike
    print(f"{'model':<{w}} {'n':>4} {'MAE':>6} {'bias':>6} {'RMSE':>6} {'<=1/2':>6} {'<=1':>6} {'rho':>6} "
          f"{'patchMAE':>8}")
    for name, r in model_reports.items():
        print(f"{name:<{w}} {r['n']:>4} {r['mae']:>6.3f} {r['bias']:>+6.3f} {r['rmse']:>6.3f} "
              f"{r['within_half_stop']:>6.0%} {r['within_one_stop']:>6.0%} {r['spearman']:>6.3f} "
              f"{r.get('patch_mae', float('nan')):>8.3f}")


def print_per_iso(model_reports: dict[str, dict]) -> None:
    names = list(model_reports)
    print("\nper ISO (MAE / bias in stops, median estimate as ISO)")
    widths = [max(22, len(n)) for n in names]
    print(f"{'ISO':>6} {'n':>4}" + "".join(f" | {n:>{w}}" for n, w in zip(names, widths)))
    for k, row in enumerate(model_reports[names[0]]["per_iso"]):
        rows = [r["per_iso"][k] for r in model_reports.values()]
        cells = "".join(f" | {r['mae']:>{w - 16}.2f} {r['bias']:>+6.2f} {r['median_estimate_iso']:>8.0f}"
                        for r, w in zip(rows, widths))
        print(f"{row['iso']:>6} {row['n']:>4}{cells}")


def print_per_camera(model_reports: dict[str, dict]) -> None:
    names = [n for n in model_reports if "per_camera" in model_reports[n]]
    print("\nper camera (MAE / bias in stops)")
    widths = [max(16, len(n)) for n in names]
    print(f"{'camera':<30} {'n':>4} {'ISO':>11}" + "".join(f" | {n:>{w}}" for n, w in zip(names, widths)))
    for k, row in enumerate(model_reports[names[0]]["per_camera"]):
        of_camera = [model_reports[n]["per_camera"][k] for n in names]
        cells = "".join(f" | {r['mae']:>{w - 10}.2f} {r['bias']:>+9.2f}" for r, w in zip(of_camera, widths))
        print(f"{row['camera'][:30]:<30} {row['n']:>4} {row['iso_min']:>5}-{row['iso_max']:<5}{cells}")


def print_clipped(scored: list[metrics.ScoredImage], cameras: list[str]) -> None:
    """Which images are mostly black or saturated: their estimates (in every figure above) say
    nothing of the ISO."""
    clipped = Counter(camera for s, camera in zip(scored, cameras) if s.clipped_share > isonet.CLIPPED_UNRELIABLE)
    if clipped:
        print(f"\n{sum(clipped.values())} image(s) have more than half their patches black or saturated, where "
              "clipping leaves no noise to read (clipped_share in per_image.csv): "
              + ", ".join(f"{camera} {n}" for camera, n in clipped.most_common()))


def save_figures(scored: list[metrics.ScoredImage], names: list[str], out_dir: Path) -> None:
    plt = reports.pyplot()
    true = np.array([s.true_metric for s in scored])
    fig, ax = plt.subplots(figsize=(6, 6))
    low, high = true.min() - 1, true.max() + 1
    ax.plot([low, high], [low, high], "k--", lw=1, label="identity")
    for name in names:
        ax.scatter(true, [s.estimate[name] for s in scored], s=14, alpha=0.7, label=Path(name).name)
    ax.set_xlabel("true ISO metric")
    ax.set_ylabel("estimated ISO metric (median of the map)")
    ax.legend()
    reports.save_figure(fig, out_dir / "scatter.png")

    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 5), squeeze=False)
    for ax, name in zip(axes[0], names):
        estimated = np.array([s.estimate[name] for s in scored])
        stops, counts = metrics.confusion_of_full_stops(estimated, [s.true_iso for s in scored])
        ax.imshow(counts, cmap="Blues")
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, str(c), ha="center", va="center")
        ax.set_xticks(range(len(stops)), stops, rotation=45)
        ax.set_yticks(range(len(stops)), stops)
        ax.set_xlabel("estimated full stop")
        ax.set_ylabel("true full stop")
        ax.set_title(Path(name).name)
    reports.save_figure(fig, out_dir / "confusion.png")


def map_readers(nets: dict[str, isonet.ISONet], profile: Profile | None) -> dict[str, metrics.MapReader]:
    """What reads each image, by name: each model's map, and a camera profile's reading in the first
    model's place (its map by its own network, or by the first model's)."""
    readers = {name: (lambda img, stride, batch, net=net: isonet.iso_map(net, img, stride, batch))
               for name, net in nets.items()}
    if profile is None:
        return readers
    first, net = next(iter(nets.items()))
    del readers[first]
    return {f"profile {profile.name}": lambda img, stride, batch: profile.read(img, net, stride, batch), **readers}


def warn_of_profile_photos(profile: Profile, files: list[Path]) -> None:
    """A warning on stderr where photos scored with `profile` are among those it was built from:
    its reading of them is not held out."""
    own = profile.photo_hashes()
    mine = [f for f in files if image_io.file_sha256(f) in own]
    if mine:
        print(f"warning: {len(mine)} of the {len(files)} photos (first {mine[0]}) are among those the profile "
              f"{profile.folder} was built from, so its figures on them are not held out (its held-out figures "
              "are in its profile.json)", file=sys.stderr)


def evaluate_labelled(args: argparse.Namespace, nets: dict[str, isonet.ISONet],
                      readers: dict[str, metrics.MapReader], profile: Profile | None = None) -> int:
    try:
        labelled = labelled_images(args.data, args.label_from)
    except isonet.ISONetError as e:
        cli.fail(str(e))
    scored, skipped = metrics.score_images(readers, labelled, args.stride, args.batch_size, reports.progress,
                                           resave=bool(args.fit_intervals))
    for path, reason in skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    if not scored:
        cli.fail(f"{' '.join(args.data)}: no labelled image could be read ({len(skipped)} skipped)", 1)
    if profile is not None:
        warn_of_profile_photos(profile, [s.file for s in scored])
    names = list(readers)
    fingerprints = {name: isonet.weights_fingerprint(net) for name, net in nets.items()}
    cameras = cameras_of([s.file for s in scored], args.data)
    model_reports = {name: metrics.model_report(scored, name, cameras) for name in names}
    out_dir = Path(args.out_dir)

    rows = []
    for s, camera in zip(scored, cameras):
        row = {"file": str(s.file), "camera": camera, "kind": s.kind, "true_iso": s.true_iso,
               "true_metric": s.true_metric, "clipped_share": s.clipped_share}
        for k, name in enumerate(names):
            tag = "" if k == 0 else "compare_"
            row |= {f"{tag}estimated_metric": s.estimate[name],
                    f"{tag}estimated_iso": isonet.metric_to_iso(s.estimate[name]),
                    f"{tag}error_stops": s.estimate[name] - s.true_metric}
            if s.resaved_estimate:
                row[f"{tag}resaved_metric"] = s.resaved_estimate[name]
        rows.append(row)
    if args.calibrate and len(scored) < args.folds:
        cli.fail(f"{' '.join(args.data)}: --calibrate with --folds {args.folds} needs at least {args.folds} "
                 f"labelled images ({len(scored)} read)")
    if args.calibrate:
        estimated = np.array([s.estimate[names[0]] for s in scored])
        true = np.array([s.true_metric for s in scored])
        held_out = metrics.cross_validated_calibration(estimated, true, args.folds, args.seed)
        model_reports["calibrated (cross-validated)"] = metrics.accuracy(held_out, true)
        model_reports["calibrated (cross-validated)"]["per_iso"] = metrics.per_iso_table(
            held_out, np.array([s.true_iso for s in scored]))
        for row, value in zip(rows, held_out):
            row["calibrated_metric"] = float(value)
        calibration = metrics.fit_calibration(estimated, true, fingerprints[names[0]])
        reports.write_json(out_dir / "calibration.json", calibration.to_json() | {"model": names[0]})

    for row in rows:
        print(f"{row['file']}: true ISO {row['true_iso']}, estimated {row['estimated_metric']:.3f} "
              f"(ISO {row['estimated_iso']:.0f}), error {row['error_stops']:+.2f} stops")
    reports.write_csv(out_dir / "per_image.csv", rows, list(rows[0]))
    reports.write_json(out_dir / "report.json", {
        "data": args.data, "stride": args.stride, "models": model_reports,
        "weights_sha256": fingerprints,
        "skipped": [{"file": str(p), "reason": r} for p, r in skipped]})
    save_figures(scored, names, out_dir)
    print_model_table(model_reports, f"{len(scored)} images ({len(skipped)} skipped), errors in stops")
    print_per_iso(model_reports)
    if len(set(cameras)) > 1:
        print_per_camera(model_reports)
    print_clipped(scored, cameras)
    if args.fit_intervals:
        write_intervals(args, fingerprints[args.model_path], scored, cameras)
    if args.calibrate:
        print(f"\ncalibration of {names[0]} fitted on all {len(scored)} images: {out_dir / 'calibration.json'} "
              f"(apply with test_model.py --calibration); its figures above are {args.folds}-fold cross-validated")
    print(f"outputs in {out_dir}/")
    return 1 if skipped else 0


@dataclass
class Readings:
    """What an earlier `evaluate.py --fit_intervals` run read: its photos, their cameras, its
    --data and its stride."""

    scored: list[metrics.ScoredImage]
    cameras: list[str]
    data: list[str]
    stride: int


def earlier_readings(folder: Path, name: str, fingerprint: str) -> Readings:
    """The readings that an earlier `evaluate.py --fit_intervals` run of model `name` (weights
    `fingerprint`) wrote to its --out_dir `folder` (per_image.csv and report.json)."""
    import csv
    import json

    try:
        report = json.loads((folder / "report.json").read_text())
        first = next(iter(report["models"]))
        known = report.get("weights_sha256", {}).get(first)
        if known != fingerprint if known else Path(first).resolve() != Path(name).resolve():
            cli.fail(f"{folder}: readings of {first}, not of --model_path {name}'s weights")
        with open(folder / "per_image.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and "resaved_metric" not in rows[0]:
            cli.fail(f"{folder}: its per_image.csv has no resaved_metric: that run was not an --fit_intervals run")
        scored = [metrics.ScoredImage(Path(r["file"]), int(r["true_iso"]), float(r["clipped_share"]),
                                      {name: float(r["estimated_metric"])}, kind=r["kind"],
                                      resaved_estimate={name: float(r["resaved_metric"])}) for r in rows]
        return Readings(scored, [r["camera"] for r in rows], list(report["data"]), int(report["stride"]))
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as e:
        cli.fail(f"{folder}: not the --out_dir of an evaluate.py --fit_intervals run ({type(e).__name__}: {e})")


def refit_intervals(args: argparse.Namespace) -> int:
    """--readings: --model_path's interval table fitted on earlier runs' readings, no photo read."""
    given = [flag for flag in ("data", "compare", "calibrate", "profile", "splice", "noise_stats")
             if getattr(args, flag)]
    if given:
        cli.fail(f"--readings refits from earlier runs' readings: not with --{given[0]}")
    if not args.fit_intervals:
        cli.fail("--readings refits an interval table: pass --fit_intervals PATH")
    net = cli.setup_inference(args)
    fingerprint = isonet.weights_fingerprint(net)
    runs = [earlier_readings(Path(folder), args.model_path, fingerprint) for folder in args.readings]
    for folder, run in zip(args.readings, runs):
        if run.stride != args.stride:
            cli.fail(f"{folder}: readings at stride {run.stride}, not --stride {args.stride}")
    files = Counter(str(Path(s.file).resolve()) for run in runs for s in run.scored)
    twice = [f for f, n in files.items() if n > 1]
    if twice:
        cli.fail(f"{twice[0]}: read by more than one of the --readings runs ({len(twice)} such photos)")
    args.data = [d for run in runs for d in run.data]
    write_intervals(args, fingerprint, [s for run in runs for s in run.scored],
                    image_io.one_spelling([c for run in runs for c in run.cameras]))
    return 0


def write_intervals(args: argparse.Namespace, fingerprint: str, scored: list[metrics.ScoredImage],
                    cameras: list[str]) -> None:
    """The --model_path's interval table, fitted on these photos per file kind (metrics.interval_pools),
    written to --fit_intervals; and how it fares on each camera left out of the fit."""
    name = args.model_path
    table = metrics.fit_interval_table(scored, cameras, name, fingerprint)
    if not table.kinds:
        cli.fail(f"{args.fit_intervals}: not written: no kind of file has photos of two cameras or more", 1)
    table.summary["data"] = args.data
    table.save(args.fit_intervals)
    print(f"\n{table.level:.0%} intervals of the true ISO metric around {name}'s reading, per file kind, and "
          "their coverage of each camera's photos when that camera is left out of the fit (leave-camera-out)")
    print(f"{'kind':<34} {'photos':>6} {'cameras':>7} {'interval (stops)':>22} {'coverage':>8} {'camera mean':>11} "
          f"{'lowest':>6} {'median width':>12}")
    for kind, rows in table.kinds.items():
        fit = table.summary["kinds"][kind]
        offsets = "; ".join(f"[{low:+.2f}, {high:+.2f}]" + (f" below ISO {isonet.metric_to_iso(edge):.0f}"
                                                            if np.isfinite(edge) else " above" if len(rows) > 1 else "")
                            for edge, low, high in rows)
        print(f"{image_io.FILE_KIND_NAMES[kind]:<34} {fit['photos']:>6} {fit['cameras']:>7} {offsets:>22} "
              f"{fit['coverage']:>8.0%} {fit['camera_mean_coverage']:>11.0%} {fit['lowest_camera_coverage']:>6.0%} "
              f"{fit['median_width']:>12.2f}")
    for kind in (k for k in image_io.FILE_KINDS if k not in table.kinds):
        print(f"{image_io.FILE_KIND_NAMES[kind]}: photos of fewer than two cameras, no interval")
    print(f"interval table: {args.fit_intervals}")


def make_splices(args: argparse.Namespace) -> tuple[list[forgeries.Splice], list[str]]:
    """Rendered splices of held-out sources, or with --data real photos of one camera pasted
    into each other (their cameras from the photo set's manifest, else EXIF); and the reasons
    of the photos that could not be read."""
    rng = np.random.default_rng(args.seed)
    if args.data:
        labelled = [(p, iso) for p, iso in labelled_images(args.data, args.label_from) if iso]
        cameras = cameras_of([p for p, _ in labelled], args.data)
        return forgeries.real_splices([(p, iso, c) for (p, iso), c in zip(labelled, cameras)], args.splice, rng)
    cameras = camera_noise.load_noise_profiles(args.noise_profiles).select(args.camera)
    _, held_out = camera_noise.split_train_test(camera_noise.clean_images(args.clean_dir))
    return forgeries.random_splices(args.splice, [img for _, img in held_out], cameras, rng), []


def evaluate_splices(args: argparse.Namespace, readers: dict[str, metrics.MapReader]) -> int:
    try:
        splices, unreadable = make_splices(args)
    except isonet.ISONetError as e:
        cli.fail(str(e))
    for reason in unreadable:
        print(f"skipped: {reason}", file=sys.stderr)
    strides = sorted({isonet.PATCH, args.stride}, reverse=True)
    rows = []
    for k, splice in enumerate(reports.progress(splices)):
        image = image_io.to_unit_float(splice.image)
        for stride in strides:
            sigma = metrics.noise_sigma_map(splice.image, stride)
            scores = {NOISE_SIGMA_BASELINE: metrics.splice_scores(sigma)}
            for name, read in readers.items():
                values = read(image, stride, args.batch_size).map
                scores[name] = metrics.splice_scores(values)
                scores[fused_name(name)] = metrics.fused_splice_scores(values, sigma)
            rows += [{"splice": k, "gap_stops": splice.gap, "camera": splice.camera, "model": name, "stride": stride,
                      **metrics.splice_quality(score, stride, splice.mask)} for name, score in scores.items()]
    table = []
    kind = f"real splices ({' '.join(args.data)})" if args.data else "rendered splices"
    print(f"\n{len(splices)} {kind}: pixel AUC and best F1 of |patch value - image median| "
          f"('+ sigma': a model's and the noise sigma's, each in units of its map's median distance, added)")
    w = max(28, *map(len, [NOISE_SIGMA_BASELINE, *map(fused_name, readers)]))
    print(f"{'model':<{w}} {'stride':>6} {'gap':>4} {'n':>4} {'AUC':>6} {'F1':>6}")
    for name in [NOISE_SIGMA_BASELINE, *readers, *map(fused_name, readers)]:
        for stride in strides:
            for gap in ["all", 1, 2, 3, 4]:
                chosen = [r for r in rows if r["model"] == name and r["stride"] == stride
                          and (gap == "all" or r["gap_stops"] == gap)]
                if not chosen:
                    continue
                entry = {"model": name, "stride": stride, "gap_stops": gap, "n": len(chosen),
                         "auc": float(np.nanmean([r["auc"] for r in chosen])),
                         "f1": float(np.nanmean([r["f1"] for r in chosen]))}
                table.append(entry)
                print(f"{name:<{w}} {stride:>6} {gap:>4} {entry['n']:>4} {entry['auc']:>6.3f} {entry['f1']:>6.3f}")
    out_dir = Path(args.out_dir)
    reports.write_csv(out_dir / "splice.csv", rows, list(rows[0]))
    reports.write_json(out_dir / "report.json", {"splices": len(splices), "seed": args.seed, "table": table})
    print(f"outputs in {out_dir}/")
    return 1 if unreadable else 0


NOISE_SIGMA_BASELINE = "noise sigma (Immerkaer)"  # the classical per-patch estimate, scored beside the models
NOISE_STATISTICS = ("sigma_1x", "sigma_2x", "sigma_4x", "std_ratio")


def fused_name(model: str) -> str:
    """The row of a model's evidence and the noise sigma's added."""
    return f"{model} + sigma"


def evaluate_noise_statistics(args: argparse.Namespace) -> int:
    """Flat-region noise statistics of the labelled real photos against plain and ISP renders,
    per full stop: the check that the renderer's camera processing looks like real cameras'."""
    try:
        labelled = [(p, iso) for p, iso in labelled_images(args.data, args.label_from) if iso]
        cameras = camera_noise.load_noise_profiles(args.noise_profiles).select(args.camera)
        sources = [img for _, img in camera_noise.clean_images(args.clean_dir)]
    except isonet.ISONetError as e:
        cli.fail(str(e))
    real: dict[int, list[dict]] = {}
    skipped = 0
    for path, iso in reports.progress(labelled, desc="real photos"):
        try:
            real.setdefault(isonet.nearest_full_stop(iso), []).append(
                metrics.flat_noise_statistics(image_io.decode_image_file(path)))
        except isonet.ISONetError as e:
            print(f"skipped: {e}", file=sys.stderr)
            skipped += 1
    isos = sorted(iso for iso in real if camera_noise.DEFAULT_ISOS[0] <= iso <= camera_noise.DEFAULT_ISOS[-1])
    if not isos:
        cli.fail(f"{' '.join(args.data)}: no readable photo between ISO 100 and 6400", 1 if skipped else 2)
    rng = np.random.default_rng(args.seed)
    sets = {"real": real, "renders, plain": metrics.rendered_noise_statistics(sources, cameras, isos, rng, False),
            "renders, camera ISP": metrics.rendered_noise_statistics(sources, cameras, isos, rng, True)}
    rows = []
    for iso in isos:
        for name, stats in sets.items():
            values = {k: np.array([s.get(k, np.nan) for s in stats[iso]], float) for k in NOISE_STATISTICS}
            rows.append({"iso": iso, "set": name, "n": len(stats[iso]),
                         **{f"{k}_{q}": float(np.nanpercentile(v, p)) if np.isfinite(v).any() else float("nan")
                            for k, v in values.items() for q, p in (("p25", 25), ("median", 50), ("p75", 75))}})
    print("\nflat-region luma noise (8-bit levels), median [quartiles], per full stop")
    print(f"{'ISO':>5} {'set':<20} {'n':>4}" + "".join(f" {k:>19}" for k in NOISE_STATISTICS))
    for r in rows:
        print(f"{r['iso']:>5} {r['set']:<20} {r['n']:>4}" + "".join(
            f" {r[k + '_median']:>5.2f} [{r[k + '_p25']:>4.2f}-{r[k + '_p75']:>5.2f}]" for k in NOISE_STATISTICS))
    out_dir = Path(args.out_dir)
    reports.write_csv(out_dir / "noise_statistics.csv", rows, list(rows[0]))
    plt = reports.pyplot()
    fig, axes = plt.subplots(1, len(NOISE_STATISTICS), figsize=(4.5 * len(NOISE_STATISTICS), 4))
    for ax, key in zip(axes, NOISE_STATISTICS):
        for k, name in enumerate(sets):
            chosen = [r for r in rows if r["set"] == name]
            x = np.log2([r["iso"] / 100 for r in chosen]) + (k - 1) * 0.08
            median = np.array([r[key + "_median"] for r in chosen])
            ax.errorbar(x, median, yerr=[median - [r[key + "_p25"] for r in chosen],
                                         np.array([r[key + "_p75"] for r in chosen]) - median],
                        marker="o", capsize=3, label=name)
        ax.set_xticks(np.log2(np.array(isos) / 100), isos)
        ax.set_xlabel("ISO")
        ax.set_title(key.replace("_", " "))
        ax.set_yscale("log")
    axes[0].legend()
    fig.suptitle(f"flattest 10% of 32x32 blocks: real photos ({' '.join(args.data)}) vs renders")
    reports.save_figure(fig, out_dir / "noise_statistics.png")
    print(f"outputs in {out_dir}/")
    return 1 if skipped else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_inference_args(parser, "models/net_tif.pth", None, out_dir="results/evaluate", readers=False)
    parser.add_argument("--profile", metavar="DIR",
                        help="a camera profile (adapt_camera.py --out DIR): its reader is scored in --model_path's "
                             "place")
    parser.add_argument("--data", nargs="+", help="labelled photos, one or more folders: DIR/<ISO>/*, "
                                                   "DIR/Test/<ISO>/*, or flat folders with --label_from exif")
    parser.add_argument("--label_from", choices=["folder", "exif"], default="folder")
    parser.add_argument("--compare", help="a second model scored on the same images")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit a monotone estimated->true mapping, save calibration.json, report it cross-validated")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds for --calibrate")
    parser.add_argument("--fit_intervals", metavar="PATH",
                        help="fit the model's interval table on the --data photos of held-out cameras (each also read "
                             "re-saved as an editor saves it) and write it to PATH: MODEL.intervals.json beside "
                             "MODEL.pth is what test_model.py applies")
    parser.add_argument("--readings", nargs="+", metavar="DIR",
                        help="with --fit_intervals: fit on the readings earlier --fit_intervals runs of --model_path "
                             "wrote to their --out_dir DIRs (per_image.csv), instead of reading the photos again")
    parser.add_argument("--splice", type=int, metavar="N",
                        help="score splice localisation on N splices: rendered from held-out sources, or with --data "
                             "made of real photos (a region of one pasted into another of its camera 1-4 stops apart)")
    parser.add_argument("--camera", default="reference", help="splice cameras: " + camera_noise.CAMERA_HELP)
    parser.add_argument("--clean_dir", nargs="+", help="folders of clean photos for the splices ('bundled', the "
                        "default, names scikit-image's and matplotlib's photos; see prepare_data.py)")
    parser.add_argument("--noise_profiles", help=camera_noise.PROFILES_HELP)
    parser.add_argument("--noise_stats", action="store_true",
                        help="compare the flat-region noise of the --data photos with plain and camera-ISP renders")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cli.keep_freed_memory()
    if args.readings:
        return refit_intervals(args)
    if args.data is None and args.splice is None:
        cli.fail("pass --data DIR (labelled photos), --splice N (rendered splices) or both (real splices)")
    if args.fit_intervals and (args.splice or args.noise_stats):
        cli.fail("--fit_intervals fits on labelled --data photos: not with --splice or --noise_stats")
    if args.noise_stats:
        return evaluate_noise_statistics(args)
    if args.splice is not None and args.splice < 1:
        cli.fail(f"--splice {args.splice}: must be at least 1")
    if args.folds < 2:
        cli.fail(f"--folds {args.folds}: must be at least 2")
    if args.profile and (args.calibrate or args.fit_intervals):
        cli.fail("--calibrate and --fit_intervals fit --model_path's readings; a camera profile brings its own")
    nets = {args.model_path: cli.setup_inference(args)}
    profile = cli.setup_readers(args, nets[args.model_path]).profile
    if args.compare:
        if args.compare == args.model_path:
            cli.fail("--compare names the same file as --model_path")
        nets[args.compare] = cli.setup_inference(args, args.compare)
    readers = map_readers(nets, profile)
    return evaluate_splices(args, readers) if args.splice else evaluate_labelled(args, nets, readers, profile)


if __name__ == "__main__":
    sys.exit(main())
