"""Scoring ISO estimates against known ISOs: accuracy figures, calibration, splice detection.

Everything here works on ISO metrics (log2(ISO/100)), so every error is in photographic stops.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import image_io
import isonet


# ---------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------
def accuracy(estimated: np.ndarray, true: np.ndarray) -> dict:
    """Image-level figures of a set of estimates, in stops."""
    from scipy.stats import spearmanr  # SciPy takes a second to import; the scripts that only read need none

    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    error = estimated - true
    # A rank correlation needs two ranks on each side: one true ISO, or a model that reads every
    # image the same (its floor), ranks nothing.
    ranked = len(np.unique(true)) > 1 and len(np.unique(estimated)) > 1
    rho = spearmanr(estimated, true).statistic if ranked else float("nan")
    return {
        "n": int(error.size),
        "mae": float(np.mean(np.abs(error))),
        "bias": float(np.mean(error)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "within_half_stop": float(np.mean(np.abs(error) <= 0.5)),
        "within_one_stop": float(np.mean(np.abs(error) <= 1.0)),
        "spearman": float(rho),
    }


def per_iso_table(estimated: np.ndarray, true_iso: np.ndarray) -> list[dict]:
    """One row per true ISO: count, MAE, bias and median estimate (as ISO)."""
    estimated, true_iso = np.asarray(estimated, float), np.asarray(true_iso)
    rows = []
    for iso in np.unique(true_iso):
        chosen = estimated[true_iso == iso]
        error = chosen - isonet.iso_to_metric(float(iso))
        rows.append({"iso": int(iso), "n": int(chosen.size), "mae": float(np.mean(np.abs(error))),
                     "bias": float(np.mean(error)),
                     "median_estimate_iso": float(isonet.metric_to_iso(float(np.median(chosen))))})
    return rows


def per_camera_table(estimated: np.ndarray, true_iso: np.ndarray, cameras: list[str]) -> list[dict]:
    """One row per camera: count, ISO range, MAE, bias and Spearman (where it has two ISOs)."""
    estimated, true_iso, cameras = np.asarray(estimated, float), np.asarray(true_iso), np.asarray(cameras)
    rows = []
    for camera in sorted(set(cameras.tolist())):
        chosen = cameras == camera
        figures = accuracy(estimated[chosen], isonet.iso_to_metric(true_iso[chosen].astype(float)))
        rows.append({"camera": camera, "iso_min": int(true_iso[chosen].min()), "iso_max": int(true_iso[chosen].max()),
                     **{k: figures[k] for k in ("n", "mae", "bias", "spearman")}})
    return rows


def confusion_of_full_stops(estimated: np.ndarray, true_iso: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Counts of (true full stop, estimated full stop), over the stops either side uses."""
    true_stops = [isonet.nearest_full_stop(float(i)) for i in true_iso]
    est_stops = [isonet.nearest_full_stop(float(isonet.metric_to_iso(m))) for m in estimated]
    stops = sorted(set(true_stops) | set(est_stops))
    index = {s: k for k, s in enumerate(stops)}
    counts = np.zeros((len(stops), len(stops)), int)
    for t, e in zip(true_stops, est_stops):
        counts[index[t], index[e]] += 1
    return stops, counts


# ---------------------------------------------------------------------------------------------
# Calibration: a monotone map from estimated to true metric, for a camera unlike the training data
# ---------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """Piecewise-linear and non-decreasing; flat beyond the fitted range."""

    x: np.ndarray  # estimated metrics, increasing
    y: np.ndarray  # calibrated metrics, non-decreasing
    model_sha256: str = ""  # isonet.weights_fingerprint of the model it was fitted for

    def __call__(self, metric: np.ndarray | float) -> np.ndarray:
        return np.interp(metric, self.x, self.y)

    def to_json(self) -> dict:
        return {"kind": "isotonic", "estimated_metric": self.x.tolist(), "true_metric": self.y.tolist(),
                "model_sha256": self.model_sha256}

    def check_model(self, net: isonet.ISONet, path: str | os.PathLike) -> None:
        check_fitted_for(self.model_sha256, net, path, "calibrate this model with evaluate.py --calibrate")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        import json

        if not Path(path).is_file():
            raise isonet.ISONetError(f"{path}: no such calibration file")
        try:
            data = json.loads(Path(path).read_text())
            x, y = np.asarray(data["estimated_metric"], float), np.asarray(data["true_metric"], float)
            fingerprint = str(data.get("model_sha256", ""))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise isonet.ISONetError(f"{path}: not a calibration file ({type(e).__name__})") from None
        if x.ndim != 1 or x.size < 1 or x.shape != y.shape or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise isonet.ISONetError(f"{path}: not a calibration file (knots must increase)")
        return cls(x, y, fingerprint)


def check_fitted_for(model_sha256: str, net: isonet.ISONet, path: str | os.PathLike, refit: str) -> None:
    """Refuse what was fitted to one model's readings (a calibration, an interval table) for
    another model: its readings have another distortion, and the result would be wrong."""
    if model_sha256 != isonet.weights_fingerprint(net):
        raise isonet.ISONetError(f"{path}: fitted for another model than the one loaded"
                                 + ("" if model_sha256 else " (no model fingerprint: refit it)") + f"; {refit}")


def fit_calibration(estimated: np.ndarray, true: np.ndarray, model_sha256: str = "") -> Calibration:
    """Isotonic regression of true on estimated metric, ties in the estimate averaged."""
    from scipy.optimize import isotonic_regression

    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    x, inverse = np.unique(estimated, return_inverse=True)
    weights = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, weights=true) / weights
    y = isotonic_regression(means, weights=weights, increasing=True).x
    return Calibration(x, y, model_sha256)


def cross_validated_calibration(estimated: np.ndarray, true: np.ndarray, folds: int = 5,
                                seed: int = 0) -> np.ndarray:
    """Each image calibrated by a mapping fitted on the other folds, so no figure fits itself."""
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    order = np.random.default_rng(seed).permutation(estimated.size)
    out = np.empty_like(estimated)
    for held_out in np.array_split(order, min(folds, estimated.size)):
        train = np.setdiff1d(order, held_out)
        out[held_out] = fit_calibration(estimated[train], true[train])(estimated[held_out])
    return out


# ---------------------------------------------------------------------------------------------
# Splice localisation
# ---------------------------------------------------------------------------------------------
def map_to_pixels(values: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Spread a patch map over the pixels: each pixel takes the patch centred nearest to it."""
    rows, cols = values.shape
    centre = isonet.PATCH / 2
    r = np.clip(np.round((np.arange(shape[0]) - centre + 0.5) / stride), 0, rows - 1).astype(int)
    c = np.clip(np.round((np.arange(shape[1]) - centre + 0.5) / stride), 0, cols - 1).astype(int)
    return values[np.ix_(r, c)]


def pixel_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of per-pixel scores against a boolean mask (ties counted half)."""
    from scipy.stats import rankdata

    scores, truth = np.ravel(scores), np.ravel(truth).astype(bool)
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_f1(scores: np.ndarray, truth: np.ndarray) -> float:
    """The highest F1 over every threshold on the scores."""
    scores, truth = np.ravel(scores), np.ravel(truth).astype(bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], truth[order]
    # only the last pixel of a run of equal scores is a threshold
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp = np.cumsum(hits)[last]
    predicted = (np.arange(1, scores.size + 1))[last]
    f1 = 2 * tp / (predicted + truth.sum())
    return float(f1.max()) if truth.any() else float("nan")


def splice_scores(values: np.ndarray) -> np.ndarray:
    """How far each patch's ISO metric lies from the image's median, in stops."""
    return np.abs(values - np.median(values))


def robust_splice_scores(values: np.ndarray) -> np.ndarray:
    """splice_scores in units of the median distance of the patches off the median (about the
    map's median absolute deviation), so that maps of different spreads (a model's ISO metric, a
    log noise sigma) weigh the same when added."""
    scores = splice_scores(values)
    # Patches at the median carry no scale, and where a map is clipped or floored (a model reading
    # clean patches at its lowest output) they are over half of it, so they are left out of the unit.
    moved = scores[scores > 0]
    return scores / float(np.median(moved)) if moved.size else scores


def fused_splice_scores(model_map: np.ndarray, sigma_map: np.ndarray) -> np.ndarray:
    """A model's and the classical noise sigma's evidence added, each in its own map's units: on
    real photos the two err on different patches (a model on texture it takes for noise, the sigma
    on texture it measures as noise and on noise reduction it cannot see past), so the sum
    localises better than either where both carry some signal; where the sigma carries none (on
    renders it ranks worse than chance) the sum is worse than the model alone."""
    return robust_splice_scores(model_map) + robust_splice_scores(sigma_map)


# ---------------------------------------------------------------------------------------------
# Scoring models on labelled images
# ---------------------------------------------------------------------------------------------
@dataclass
class ScoredImage:
    """One labelled image's estimates (median of the map) and patch errors, per model."""

    file: Path
    true_iso: int
    clipped_share: float = 0.0  # isonet.clipped_share: patches with no noise left to read
    estimate: dict[str, float] = field(default_factory=dict)
    patch_abs_errors: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = ""  # image_io.file_kind
    resaved_estimate: dict[str, float] = field(default_factory=dict)  # of the image re-saved as a plain JPEG

    @property
    def true_metric(self) -> float:
        return float(isonet.iso_to_metric(self.true_iso))


RESAVE_QUALITY = 90  # what an editor or a web service saves a photo at, and the interval tables assume


def resaved(img: np.ndarray, quality: int = RESAVE_QUALITY) -> np.ndarray:
    """`img` (floats in [0, 1]) as an editor re-saves it: 8 bits, JPEG at `quality`, no metadata."""
    import camera_noise

    eight = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return isonet.to_unit_float(camera_noise.decode_image(camera_noise.encode_image(eight, quality)))


MapReader = Callable[[np.ndarray, int, "int | None"], isonet.IsoMap]  # (image, stride, batch size) -> its map


def score_images(readers: dict[str, MapReader], labelled: list[tuple[Path, int | None]], stride: int,
                 batch_size: int, progress=lambda items: items,
                 resave: bool = False) -> tuple[list[ScoredImage], list[tuple[Path, str]]]:
    """Map every labelled image with every reader (a model's map, or a camera profile's reading);
    with `resave`, also the image re-saved as an editor saves it (resaved). Images that fail are
    returned with the reason."""
    scored, skipped = [], []
    for path, iso in progress(labelled):
        if iso is None:
            skipped.append((path, "no ISO label (no EXIF ISO)"))
            continue
        try:
            img = image_io.read_image(path)
        except isonet.ISONetError as e:
            skipped.append((path, str(e).removeprefix(f"{path}: ")))
            continue
        item = ScoredImage(path, iso, isonet.clipped_share(img, stride), kind=image_io.file_kind(path))
        for name, read in readers.items():
            result = read(img, stride, batch_size)
            item.estimate[name] = result.global_metric
            item.patch_abs_errors[name] = np.abs(result.map.ravel() - item.true_metric)
        if resave:
            again = resaved(img)
            item.resaved_estimate = {name: read(again, stride, batch_size).global_metric
                                     for name, read in readers.items()}
        scored.append(item)
    return scored, skipped


def model_report(scored: list[ScoredImage], name: str, cameras: list[str] | None = None) -> dict:
    """Everything a paper table shows about one model on a scored set (per camera too, when the
    images' `cameras` are given)."""
    estimated = np.array([s.estimate[name] for s in scored])
    true_iso = np.array([s.true_iso for s in scored])
    report = accuracy(estimated, isonet.iso_to_metric(true_iso))
    report["patch_mae"] = float(np.concatenate([s.patch_abs_errors[name] for s in scored]).mean())
    report["per_iso"] = per_iso_table(estimated, true_iso)
    if cameras is not None:
        report["per_camera"] = per_camera_table(estimated, true_iso, cameras)
    return report


# ---------------------------------------------------------------------------------------------
# Noise statistics of flat regions: do renders look like real photos?
# ---------------------------------------------------------------------------------------------
FLAT_BLOCK = 32
FLAT_PERCENTILE = 10  # the flattest tenth of the blocks: noise, little texture


def flat_noise_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Immerkaer's luma sigma (8-bit levels) of an image's flattest 32x32 blocks at 1x, 2x and 4x
    area downscale, and std / Immerkaer sigma there (about 1 for white noise, larger for the
    coarse noise that demosaicing and noise reduction leave)."""
    import cv2

    import camera_noise

    rgb8 = rgb.astype(np.float32) * (255.0 / np.iinfo(rgb.dtype).max)
    luma = rgb8 @ camera_noise.LUMA_WEIGHTS
    # A channel clipped at black or white is flat for want of noise, not of texture.
    clipped = ((rgb8 <= 2) | (rgb8 >= 253)).any(axis=2).astype(np.float32)
    stats = {}
    for factor in (1, 2, 4):
        planes = [p if factor == 1 else cv2.resize(p, (p.shape[1] // factor, p.shape[0] // factor),
                                                    interpolation=cv2.INTER_AREA) for p in (luma, clipped)]
        h, w = (planes[0].shape[0] // FLAT_BLOCK) * FLAT_BLOCK, (planes[0].shape[1] // FLAT_BLOCK) * FLAT_BLOCK
        if h == 0 or w == 0:
            stats[f"sigma_{factor}x"] = float("nan")
            continue
        blocks, clipped_blocks = (p[:h, :w].reshape(h // FLAT_BLOCK, FLAT_BLOCK, w // FLAT_BLOCK, FLAT_BLOCK)
                                  .transpose(0, 2, 1, 3).reshape(-1, FLAT_BLOCK, FLAT_BLOCK) for p in planes)
        sigma = np.asarray(camera_noise.immerkaer_sigma(blocks))
        exposed = clipped_blocks.mean(axis=(1, 2)) < 0.02
        if not exposed.any():
            stats[f"sigma_{factor}x"] = float("nan")
            continue
        flat = exposed & (sigma <= np.percentile(sigma[exposed], FLAT_PERCENTILE))
        stats[f"sigma_{factor}x"] = float(np.median(sigma[flat]))
        if factor == 1:
            stats["std_ratio"] = float(np.median(blocks[flat].std(axis=(1, 2)) / np.maximum(sigma[flat], 1e-6)))
    return stats


def rendered_noise_statistics(sources: list[np.ndarray], cameras: list, isos: list[int], rng: np.random.Generator,
                              isp: bool, renders: int = 2) -> dict[int, list[dict[str, float]]]:
    """flat_noise_statistics of `renders` renders of every source per ISO: plain development
    (lossless) or, with `isp`, random camera processing and a camera JPEG (quality 85-98)."""
    import camera_noise

    usable = camera_noise.cameras_by_iso(cameras, isos)
    out: dict[int, list[dict[str, float]]] = {iso: [] for iso in isos}
    for iso in isos:
        for source in sources:
            for _ in range(renders):
                camera = usable[iso][rng.integers(len(usable[iso]))]
                processing = camera_noise.random_isp(rng, iso) if isp else None
                quality = int(rng.integers(85, 99)) if isp else None
                render = camera_noise.render(source, camera, iso, rng, quality, processing)
                out[iso].append(flat_noise_statistics(render))
    return out


# ---------------------------------------------------------------------------------------------
# Splices rendered from held-out sources
# ---------------------------------------------------------------------------------------------


def noise_sigma_map(img: np.ndarray, stride: int) -> np.ndarray:
    """The classical baseline: log2 of Immerkaer's luma noise sigma of every 64x64 patch on the
    `stride` grid (the map's layout) of an HxWx3 image or an HxW luma, from one convolution and
    the integral image of its response."""
    import cv2

    import camera_noise

    pixels = np.asarray(img, np.float32)
    luma = pixels if pixels.ndim == 2 else cv2.transform(pixels, camera_noise.LUMA_WEIGHTS[None])
    response = cv2.filter2D(luma, cv2.CV_32F, camera_noise.IMMERKAER_MASK)
    sums = cv2.integral(np.abs(response, out=response), sdepth=cv2.CV_64F)
    rows, cols = isonet.grid_shape(*luma.shape, stride)
    top, left = np.arange(rows)[:, None] * stride, np.arange(cols)[None] * stride
    bottom, right = top + isonet.PATCH, left + isonet.PATCH
    mean = (sums[bottom, right] - sums[top, right] - sums[bottom, left] + sums[top, left]) / isonet.PATCH ** 2
    return np.log2(np.maximum(mean * camera_noise.IMMERKAER_SCALE, 1e-3))


def splice_score_maps(iso_map: np.ndarray, img: np.ndarray, stride: int) -> dict[str, np.ndarray]:
    """Each patch's evidence of a splice: its distance from the image's median in ISONet's map, in
    the classical noise sigma's, and both added (on real photos the sum localises best)."""
    sigma = noise_sigma_map(img, stride)
    return {"ISONet": robust_splice_scores(iso_map), "noise sigma (Immerkaer)": robust_splice_scores(sigma),
            "both added": fused_splice_scores(iso_map, sigma)}


def splice_quality(scores: np.ndarray, stride: int, mask: np.ndarray) -> dict:
    """Pixel AUC and best F1 of a map of splice scores (higher: more likely pasted in)."""
    pixels = map_to_pixels(scores, stride, mask.shape)
    return {"auc": pixel_auc(pixels, mask), "f1": best_f1(pixels, mask)}


# ---------------------------------------------------------------------------------------------
# Intervals: how far a reading may lie from the truth, from held-out residuals
# ---------------------------------------------------------------------------------------------
INTERVAL_LEVEL = 0.8


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value at which the weights' cumulative share reaches q."""
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, float)[order])
    index = min(int(np.searchsorted(cumulative, q * cumulative[-1] - 1e-12)), len(order) - 1)
    return float(np.asarray(values)[order][index])


def conformal_offsets(residuals: np.ndarray, level: float = INTERVAL_LEVEL, weights: np.ndarray | None = None,
                      units: int | None = None) -> tuple[float, float]:
    """(low, high) such that reading + [low, high] is a `level` interval of the truth, from held-out
    residuals (truth - reading): split conformal, each tail (1 - level) / 2 of the residuals'
    weight, widened by the finite-sample correction (units + 1) / units, where `units` is how many
    exchangeable units the residuals come from (photos; cameras when `weights` give each camera
    one share; the weights' sum when they count a camera's photos up to a cap). A tail the
    residuals cannot resolve takes the most extreme one."""
    residuals = np.asarray(residuals, float)
    weights = np.ones(len(residuals)) if weights is None else np.asarray(weights, float)
    units = len(residuals) if units is None else units
    upper = min(1.0, (1 - (1 - level) / 2) * (units + 1) / units)
    return weighted_quantile(residuals, weights, 1 - upper), weighted_quantile(residuals, weights, upper)


def camera_weights(cameras: list[str], cap: int = 1) -> np.ndarray:
    """Each photo's weight when every camera weighs as much as its count of photos up to `cap`
    (1: every camera the same, whatever its count)."""
    counts = Counter(cameras)
    return np.array([min(counts[c], cap) / counts[c] for c in cameras])


def band_offsets(readings: np.ndarray, residuals: np.ndarray, cameras: list[str], edges: tuple[float, ...],
                 level: float = INTERVAL_LEVEL, cap: int = 1) -> list[list[float]]:
    """[upper edge, low, high] for each band of reading (split at `edges`; the last band's edge is
    inf): the camera-weighted conformal offsets of the band's residuals (conformal_offsets, each
    camera counting at most `cap` photos), so that a burst of one camera's photos does not stand
    for as many cameras. A band no reading fell in takes every band's residuals."""
    rows = []
    bounds = (-np.inf, *edges, np.inf)
    for lower, upper in zip(bounds[:-1], bounds[1:]):
        inside = (readings >= lower) & (readings < upper)
        inside = inside if inside.any() else np.ones(len(readings), bool)
        weights = camera_weights([c for c, k in zip(cameras, inside) if k], cap)
        low, high = conformal_offsets(residuals[inside], level, weights, max(1, round(weights.sum())))
        rows.append([float(upper), low, high])
    return rows


def interval_of(rows: list[list[float]], metric: float) -> tuple[float, float]:
    """The interval a table's rows (band_offsets) give a reading `metric`. Its ends never step back
    as the reading rises: the upper end is at least that of any lower band's highest reading, the
    lower end at most that of any higher band's lowest reading."""
    band = next(k for k, row in enumerate(rows) if metric < row[0])
    _, low, high = rows[band]
    below = [edge + top for edge, _, top in rows[:band]]
    above = [rows[k - 1][0] + rows[k][1] for k in range(band + 1, len(rows))]
    return float(min([metric + low, *above])), float(max([metric + high, *below]))


def leave_camera_out_coverage(readings: np.ndarray, residuals: np.ndarray, cameras: list[str],
                              edges: tuple[float, ...], level: float = INTERVAL_LEVEL, cap: int = 1) -> dict:
    """How the intervals fare on cameras they never saw: each camera's photos judged by offsets
    fitted on the other cameras alone. The share of photos covered, per camera and over all, and
    the intervals' median width in stops."""
    per_camera, covered, widths = {}, [], []
    names = np.array(cameras)
    for camera in sorted(set(cameras)):
        mine = names == camera
        others = [c for c in cameras if c != camera]
        rows = band_offsets(readings[~mine], residuals[~mine], others, edges, level, cap)
        hits = []
        for reading, residual in zip(readings[mine], residuals[mine]):
            low, high = interval_of(rows, reading)
            hits.append(low <= reading + residual <= high)
            widths.append(high - low)
        per_camera[camera] = float(np.mean(hits))
        covered += hits
    return {"photos": len(covered), "cameras": len(per_camera), "coverage": float(np.mean(covered)),
            "camera_mean_coverage": float(np.mean(list(per_camera.values()))),
            "lowest_camera_coverage": float(min(per_camera.values())), "median_width": float(np.median(widths)),
            "per_camera": per_camera}


def interval_pools(scored: list[ScoredImage], cameras: list[str],
                   name: str) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """(readings, residuals truth - reading, cameras) behind each file kind's intervals: the photos
    of that kind as they are, for 'uncompressed' and 'in_camera_jpeg'; every photo re-saved as an
    editor saves it (ScoredImage.resaved_estimate) for 'other_jpeg'; and for 'no_metadata', a lossy
    file that could be either, the in-camera JPEGs and the re-saved photos together."""
    truth = np.array([s.true_metric for s in scored])
    as_read = np.array([s.estimate[name] for s in scored])
    again = np.array([s.resaved_estimate[name] for s in scored])
    kinds = np.array([s.kind for s in scored])

    def pool(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        readings = np.concatenate([values[mask] for values, mask in parts])
        residuals = np.concatenate([truth[mask] - values[mask] for values, mask in parts])
        return readings, residuals, [c for _, mask in parts for c, k in zip(cameras, mask) if k]

    everything = np.ones(len(scored), bool)
    in_camera = kinds == "in_camera_jpeg"
    return {"uncompressed": pool((as_read, kinds == "uncompressed")), "in_camera_jpeg": pool((as_read, in_camera)),
            "other_jpeg": pool((again, everything)), "no_metadata": pool((as_read, in_camera), (again, everything))}


# Per file kind: the reading-band edges (none: one band) and the most photos a camera counts as in
# a band. In-camera JPEGs: how far a reading may lie below the truth depends on the reading (a low
# one may hide a denoised high ISO), and a camera's photos at several ISOs show several of its
# noise reductions, so it counts up to 5.
INTERVAL_EDGES: dict[str, tuple[float, ...]] = {"in_camera_jpeg": (1.0, 2.0)}
INTERVAL_CAPS: dict[str, int] = {"in_camera_jpeg": 5}


@dataclass
class IntervalTable:
    """A model's intervals: for each file kind (image_io.FILE_KINDS), rows [upper edge of a band of
    readings, low, high]: a reading in that band has its true ISO metric in reading + [low, high]
    at `level`, widened where a neighbouring band's end reaches further (interval_of). Tied to the
    model's weights by their fingerprint."""

    kinds: dict[str, list[list[float]]]
    level: float
    model_sha256: str
    summary: dict = field(default_factory=dict)

    def interval(self, metric: float, kind: str) -> tuple[float, float] | None:
        rows = self.kinds.get(kind)
        return interval_of(rows, metric) if rows else None

    def check_model(self, net: isonet.ISONet, path: str | os.PathLike) -> None:
        check_fitted_for(self.model_sha256, net, path, "fit its table with evaluate.py --fit_intervals")

    def save(self, path: str | os.PathLike) -> None:
        import json

        with image_io.atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"kind": "isonet-intervals", "level": self.level,
                                       "model_sha256": self.model_sha256, "kinds": self.kinds,
                                       "summary": self.summary}, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> IntervalTable:
        import json

        try:
            data = json.loads(Path(path).read_text())
            kinds = {str(k): [[float(v) for v in row] for row in rows] for k, rows in data["kinds"].items()}
            return cls(kinds, float(data["level"]), str(data["model_sha256"]), data.get("summary", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise isonet.ISONetError(f"{path}: not an interval table ({type(e).__name__})") from None


def fit_interval_table(scored: list[ScoredImage], cameras: list[str], name: str, model_sha256: str,
                       level: float = INTERVAL_LEVEL) -> IntervalTable:
    """Model `name`'s interval table from labelled photos of cameras it never trained on, each kind's
    offsets camera-weighted and conformal (band_offsets), with their leave-camera-out coverage."""
    kinds, summary = {}, {}
    for kind, (readings, residuals, owners) in interval_pools(scored, cameras, name).items():
        if len(set(owners)) < 2:
            continue
        edges, cap = INTERVAL_EDGES.get(kind, ()), INTERVAL_CAPS.get(kind, 1)
        kinds[kind] = band_offsets(readings, residuals, owners, edges, level, cap)
        summary[kind] = leave_camera_out_coverage(readings, residuals, owners, edges, level, cap)
    return IntervalTable(kinds, level, model_sha256, {"kinds": summary})
