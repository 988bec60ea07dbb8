"""The paper's Fig. 7 on real cameras: PRNU forgery maps of real photos, per band-choice scheme.

    python benchmarks/prnu_real_forgeries.py --real data/real --real_extra data/real_extra \
        --dresden CHECKOUT/test/data [--out_dir results/prnu_real]

The photo sets are those docs/data.md imports; CHECKOUT is polimi-ispl/prnu-python's, whose
test images are Dresden JPEGs of six Nikon bodies. For each camera, a fingerprint and its
correlation predictors come from some of its photos (each predictor fitted as Fig7.py
--fingerprint_dir fits it: every image against the fingerprint of the other scenes' images); its
other photos are the genuine probes, and each probe is forged twice, both saved once more as JPEG
quality 95: a random region replaced by the same place of another camera's photo (of the same size, or
centre-cropped from a larger one: never resampled, so it keeps that sensor's own pattern), and a
region copied from elsewhere in the probe. Every image is read in the sensor's order.

Cameras and splits (fingerprint photos / genuine probes), chosen so that no probe shares its scene
with a fingerprint photo, which would let the scene itself correlate:
- the Dresden bodies with two natural photos or more (four of the six): 8 flat fields and the
  body's other natural photos / one natural photo, a fold for each (flat fields alone cannot fit a
  predictor for natural scenes: their blocks hold no texture);
- the Canon EOS 50D's three series (one scene each, ISO 100-12800): two / the third, three folds;
- the Canon PowerShot S95's two tripod bursts (ISO 1600, 3200): one / the other, two folds;
- the Xiaomi Redmi Note 3's two night bursts (ISO 3153): one / the other, two folds;
- the Google Pixel 5's seven photos (ISO 50-1677, merged frames): six / the seventh, seven folds.
A fold uses at most --max_fingerprint fingerprint photos and --max_probes probes (evenly spaced in
name order), so that a burst of large photos stays within minutes.

Printed per camera and pooled, for each scheme (one predictor; bands of the EXIF ISO; bands of
ISONet's reading; the EXIF-ISO bands weighted by the reading): the measured false alarms on the
genuine probes' blocks at the nominal --false_alarm, detection of the forged blocks (75% or more
inside the region) at that threshold for each kind, and at one threshold that flags exactly
--false_alarm of the genuine blocks; the photos and blocks behind each; and the PCE of the genuine
probes and of the donor photos against the fingerprint. results: <out_dir>/prnu_real_forgeries.json,
and each fold's blocks in <out_dir>/folds/ as it ends: a rerun takes the folds already there and
runs the rest (--cameras picks some; the summary covers every fold on disk; delete the folder to
change the settings).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import forgeries  # noqa: E402
import image_io  # noqa: E402
import isonet  # noqa: E402
import prnu  # noqa: E402

SCHEMES = {"single": "single", "exif": "EXIF-ISO bands", "isonet": "ISONet bands",
           "isonet_weighted": "ISONet-weighted"}
KINDS = ("other camera", "copy-move")
FORGED_COVERAGE = 0.75
JPEG_QUALITY = 95
DRESDEN_FLATS = 8  # flat fields in a Dresden fold's fingerprint, beside the body's other natural photos


@dataclass
class Fold:
    camera: str
    fingerprint: list[Path]
    probes: list[Path]


def manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return [dict(row, path=root / row["file"]) for row in csv.DictReader(f)]


def evenly(paths: list[Path], most: int) -> list[Path]:
    """At most `most` of `paths`, evenly spaced in their order."""
    return paths if len(paths) <= most else [paths[i] for i in np.linspace(0, len(paths) - 1, most).round().astype(int)]


def folds(real: Path, extra: Path, dresden: Path) -> list[Fold]:
    rows = manifest(real) + manifest(extra)

    def photos(camera: str, key) -> dict[str, list[Path]]:
        groups: dict[str, list[Path]] = {}
        for row in sorted(rows, key=lambda r: r["original"]):
            if row["camera"] == camera:
                groups.setdefault(key(row["original"]), []).append(row["path"])
        return groups

    out = []
    for device in sorted({p.stem.rsplit("_", 1)[0] for p in (dresden / "ff-jpg").glob("*.JPG")}):
        natural = sorted((dresden / "nat-jpg").glob(f"{device}_*.JPG"))
        flats = evenly(sorted((dresden / "ff-jpg").glob(f"{device}_*.JPG")), DRESDEN_FLATS)
        out += [Fold(device, [*flats, *natural[:k], *natural[k + 1:]], [probe])
                for k, probe in enumerate(natural) if len(natural) > 1]
    for camera, key in (("Canon EOS 50D", lambda o: Path(o).parent.parent.name),
                        ("Canon PowerShot S95", lambda o: Path(o).parent.name),
                        ("Xiaomi Redmi Note 3", lambda o: Path(o).name.split("_BURST")[0]),
                        ("Google Pixel 5", lambda o: Path(o).name)):
        groups = photos(camera, key)
        for held_out, probes in groups.items():
            out.append(Fold(camera, [p for g, ps in groups.items() if g != held_out for p in ps], probes))
    return out


def centre_crop(img: np.ndarray, height: int, width: int) -> np.ndarray:
    y, x = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    return img[y:y + height, x:x + width]


def donor_for(shape: tuple[int, int], camera: str, donors: list[tuple[str, Path, tuple[int, int]]],
              rng: np.random.Generator) -> Path | None:
    """Another camera's photo that holds `shape` either way round, one of the same size where any is."""
    fits = [(path, size) for other, path, size in donors
            if other != camera and min(size) >= min(shape) and max(size) >= max(shape)]
    pool = [f for f in fits if sorted(f[1]) == sorted(shape)] or fits
    return pool[rng.integers(len(pool))][0] if pool else None


def foreign_region_source(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The donor photo in the sensor's order, turned a quarter if only then it holds `shape`, centre-cropped to it."""
    foreign = read_uint8(path)
    if foreign.shape[0] < shape[0] or foreign.shape[1] < shape[1]:
        foreign = np.rot90(foreign)
    return np.ascontiguousarray(centre_crop(foreign, *shape))


def read_uint8(path: Path) -> np.ndarray:
    img = image_io.decode_image_file(path, sensor_order=True)
    return img if img.dtype == np.uint8 else (img // 257).astype(np.uint8)


@dataclass
class Judged:
    kind: str  # "genuine" or one of KINDS
    scores: dict[str, np.ndarray]  # scheme: standard score of each block judged
    flagged: dict[str, np.ndarray]


def scheme_predictor(camera: prnu.CameraPrnu, scheme: str, reading: float, exif_iso: int | None):
    """The scheme's predictor; the single one where the camera's photos carry no EXIF ISO to band or weigh by."""
    try:
        return camera.predictor(scheme, reading, exif_iso)[0]
    except ValueError:
        return camera.by_exif.single


READINGS: dict[Path, float] = {}  # ISONet's reading of each photo, read once however many folds use it


def camera_images(paths: list[Path], net: isonet.ISONet) -> list[prnu.CameraImage]:
    """Each photo in the sensor's order, observed, with its EXIF ISO and ISONet's reading."""
    images = []
    for path in paths:
        img = image_io.read_image(path, sensor_order=True)
        if path not in READINGS:
            READINGS[path] = isonet.global_metric(net, img)
        images.append(prnu.CameraImage(path, prnu.observe(img), image_io.read_exif_iso(path), READINGS[path]))
    return images


def judge(img: np.ndarray, turn: int, mask: np.ndarray | None, kind: str, camera: prnu.CameraPrnu,
          net: isonet.ISONet, exif_iso: int | None, false_alarm: float) -> Judged:
    obs = prnu.turned(prnu.observe(img), turn)
    rho, features = prnu.measure_blocks(obs, camera.fingerprint, camera.block, camera.stride)
    keep = np.ones(rho.shape, bool) if mask is None else (
        prnu.block_coverage(np.rot90(mask, turn), camera.block, camera.stride) >= FORGED_COVERAGE)
    reading = isonet.global_metric(net, img)
    scores, flagged = {}, {}
    for scheme in SCHEMES:
        predictor = scheme_predictor(camera, scheme, reading, exif_iso)
        scores[scheme] = predictor.standard_score(rho, features)[keep]
        flagged[scheme] = predictor.forged(rho, features, false_alarm)[keep]
    return Judged(kind, scores, flagged)


def run_fold(fold: Fold, net: isonet.ISONet, donors, rng: np.random.Generator, block: int, stride: int,
             false_alarm: float) -> dict:
    images, misaligned = prnu.align_camera_images(camera_images(fold.fingerprint, net))
    for line in misaligned:
        print(f"left out: {line}", file=sys.stderr)
    camera = prnu.camera_prnu(images, block, stride)
    judged: list[Judged] = []
    genuine_pce, donor_pce, turns = [], [], []
    for path in fold.probes:
        img = read_uint8(path)
        turn, tried = prnu.best_turn(prnu.observe(img), camera.fingerprint)
        genuine_pce.append(tried[turn].value)
        turns.append(turn)
        exif_iso = image_io.read_exif_iso(path)
        judged.append(judge(img, turn, None, "genuine", camera, net, exif_iso, false_alarm))
        donor = donor_for(img.shape[:2], fold.camera, donors, rng)
        if donor is not None:
            foreign = foreign_region_source(donor, img.shape[:2])
            tried = prnu.best_turn(prnu.observe(foreign), camera.fingerprint)[1]
            donor_pce.append(max(p.value for p in tried.values()))
            mask = forgeries.random_region_mask(*img.shape[:2], rng)
            forged = forgeries.compose_forgery(img, foreign, mask, JPEG_QUALITY)
            judged.append(judge(forged, turn, mask, KINDS[0], camera, net, exif_iso, false_alarm))
        mask = forgeries.random_region_mask(*img.shape[:2], rng)
        forged = forgeries.copy_move(img, mask, rng, JPEG_QUALITY)
        judged.append(judge(forged, turn, mask, KINDS[1], camera, net, exif_iso, false_alarm))
    return {"camera": fold.camera, "fingerprint_photos": len(images), "probes": len(fold.probes),
            "fingerprint_scenes": len(np.unique(prnu.scene_groups([i.observation.intensity for i in images]))),
            "isos": sorted({i.exif_iso for i in images if i.exif_iso}), "judged": judged,
            "genuine_pce": genuine_pce, "donor_pce": donor_pce, "turns": turns}


def fold_file(out_dir: Path, index: int, fold: Fold) -> Path:
    return out_dir / "folds" / f"{index:02d}_{fold.camera.replace(' ', '_')}.json"


def save_fold(path: Path, result: dict) -> None:
    judged = [{"kind": j.kind, "scores": {k: v.tolist() for k, v in j.scores.items()},
               "flagged": {k: v.tolist() for k, v in j.flagged.items()}} for j in result["judged"]]
    with image_io.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dict(result, judged=judged)))


def load_fold(path: Path) -> dict:
    result = json.loads(path.read_text())
    result["judged"] = [Judged(j["kind"], {k: np.array(v) for k, v in j["scores"].items()},
                               {k: np.array(v, bool) for k, v in j["flagged"].items()}) for j in result["judged"]]
    return result


def summarise(results: list[dict], false_alarm: float) -> dict:
    judged = [j for r in results for j in r["judged"]]
    genuine_pce = np.concatenate([r["genuine_pce"] for r in results])
    out = {"folds": len(results), "fingerprint_photos": sum(r["fingerprint_photos"] for r in results),
           "fingerprint_scenes": sum(r.get("fingerprint_scenes", 0) for r in results),
           "genuine_probes": sum(r["probes"] for r in results),
           "genuine_blocks": int(sum(j.flagged["single"].size for j in judged if j.kind == "genuine")),
           "forged_blocks": {k: int(sum(j.flagged["single"].size for j in judged if j.kind == k)) for k in KINDS},
           "genuine_pce_above_60": float(np.mean(genuine_pce > prnu.PCE_THRESHOLD)),
           "genuine_pce_median": float(np.median(genuine_pce)),
           "donor_pce_max": float(max((max(r["donor_pce"]) for r in results if r["donor_pce"]), default=float("nan"))),
           "schemes": {}}
    for scheme in SCHEMES:
        genuine = [j for j in judged if j.kind == "genuine"]
        threshold = np.quantile(np.concatenate([j.scores[scheme] for j in genuine]), false_alarm)
        row = {"false_alarms": float(np.mean(np.concatenate([j.flagged[scheme] for j in genuine])))}
        for kind in KINDS:
            forged = [j for j in judged if j.kind == kind]
            row[f"detection {kind}"] = (float(np.mean(np.concatenate([j.flagged[scheme] for j in forged])))
                                        if forged else float("nan"))
            row[f"detection {kind} at measured"] = (float(np.mean(np.concatenate([j.scores[scheme] for j in forged])
                                                                  < threshold)) if forged else float("nan"))
        out["schemes"][scheme] = row
    return out


def print_summary(name: str, s: dict) -> None:
    print(f"\n{name}: {s['folds']} folds, {s['fingerprint_photos']} fingerprint photos of "
          f"{s['fingerprint_scenes']} scenes, {s['genuine_probes']} genuine probes "
          f"({s['genuine_blocks']} blocks; PCE > 60: {s['genuine_pce_above_60']:.0%}, "
          f"median {s['genuine_pce_median']:.0f}), "
          f"forged blocks: " + ", ".join(f"{k} {n}" for k, n in s["forged_blocks"].items())
          + f"; donors' highest PCE {s['donor_pce_max']:.1f}")
    print(f"  {'scheme':16} {'false alarms':>12} {'other camera':>13} {'copy-move':>10} | at a measured 1%: "
          f"{'other camera':>12} {'copy-move':>10}")
    for scheme, row in s["schemes"].items():
        print(f"  {SCHEMES[scheme]:16} {row['false_alarms']:12.2%} {row['detection other camera']:13.1%} "
              f"{row['detection copy-move']:10.1%} | {'':17}{row['detection other camera at measured']:12.1%} "
              f"{row['detection copy-move at measured']:10.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=Path("data/real"))
    parser.add_argument("--real_extra", type=Path, default=Path("data/real_extra"))
    parser.add_argument("--dresden", type=Path, required=True, help="prnu-python's test/data (ff-jpg/, nat-jpg/)")
    parser.add_argument("--model_path", default=str(isonet.PROJECT / "models/net_jpg.pth"))
    parser.add_argument("--block", type=int, default=prnu.BLOCK)
    parser.add_argument("--block_stride", type=int, default=prnu.BLOCK // 2)
    parser.add_argument("--false_alarm", type=float, default=prnu.FALSE_ALARM)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_fingerprint", type=int, default=12, help="fingerprint photos per fold, at most")
    parser.add_argument("--max_probes", type=int, default=6, help="genuine probes per fold, at most")
    parser.add_argument("--cameras", nargs="+", help="run only the folds of cameras whose name holds one of these")
    parser.add_argument("--out_dir", type=Path, default=Path("results/prnu_real"))
    args = parser.parse_args()
    net = isonet.load_model(args.model_path, isonet.resolve_device("auto"))
    all_folds = [Fold(f.camera, evenly(f.fingerprint, args.max_fingerprint), evenly(f.probes, args.max_probes))
                 for f in folds(args.real, args.real_extra, args.dresden)]
    donors = []
    for fold in all_folds:
        for path in fold.probes:
            donors.append((fold.camera, path, image_io.decode_image_file(path, sensor_order=True).shape[:2]))
    results = []
    for index, fold in enumerate(all_folds):
        path = fold_file(args.out_dir, index, fold)
        if path.is_file():
            results.append(load_fold(path))
            continue
        if args.cameras and not any(c in fold.camera for c in args.cameras):
            continue
        start = time.perf_counter()
        rng = np.random.default_rng([args.seed, index])
        results.append(run_fold(fold, net, donors, rng, args.block, args.block_stride, args.false_alarm))
        save_fold(path, results[-1])
        print(f"{fold.camera}: {len(fold.fingerprint)} fingerprint / {len(fold.probes)} probes, genuine PCE "
              + ", ".join(f"{p:.0f}" for p in results[-1]["genuine_pce"])
              + f"; turns {results[-1]['turns']}; {time.perf_counter() - start:.0f} s", flush=True)
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault("Dresden's Nikon bodies" if result["camera"].startswith("Nikon_") else result["camera"],
                          []).append(result)
    summary = {}
    for name, group in groups.items():
        summary[name] = summarise(group, args.false_alarm)
        print_summary(name, summary[name])
    summary["all"] = summarise(results, args.false_alarm)
    print_summary("all cameras", summary["all"])
    with image_io.atomic_path(args.out_dir / "prnu_real_forgeries.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
