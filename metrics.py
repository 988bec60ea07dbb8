"""Scoring ISO estimates against known ISOs: accuracy figures, calibration, splice detection.

Everything here works on ISO metrics (log2(ISO/100)), so every error is in photographic stops.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.stats import spearmanr

import image_io
import isonet


# ---------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------
def accuracy(estimated: np.ndarray, true: np.ndarray) -> dict:
    """Image-level figures of a set of estimates, in stops."""
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
        """Refuse to apply a calibration to a model it was not fitted for: another model's
        estimates have another distortion, and the 'corrected' ISO would be wrong."""
        if self.model_sha256 != isonet.weights_fingerprint(net):
            raise isonet.ISONetError(f"{path}: fitted for another model than the one loaded"
                                     + ("" if self.model_sha256 else " (no model fingerprint: refit it)")
                                     + "; calibrate this model with evaluate.py --calibrate")

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


def fit_calibration(estimated: np.ndarray, true: np.ndarray, model_sha256: str = "") -> Calibration:
    """Isotonic regression of true on estimated metric, ties in the estimate averaged."""
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

    @property
    def true_metric(self) -> float:
        return float(isonet.iso_to_metric(self.true_iso))


def score_images(nets: dict[str, isonet.ISONet], labelled: list[tuple[Path, int | None]], stride: int,
                 batch_size: int, progress=lambda items: items) -> tuple[list[ScoredImage], list[tuple[Path, str]]]:
    """Map every labelled image with every model; images that fail are returned with the reason."""
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
        item = ScoredImage(path, iso, isonet.clipped_share(img, stride))
        for name, net in nets.items():
            values = isonet.iso_map(net, img, stride, batch_size).map
            item.estimate[name] = float(np.median(values))
            item.patch_abs_errors[name] = np.abs(values.ravel() - item.true_metric)
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
    `stride` grid (the map's layout), from one convolution and a box filter."""
    import cv2

    import camera_noise

    luma = img.astype(np.float32) @ camera_noise.LUMA_WEIGHTS
    response = np.abs(cv2.filter2D(luma, cv2.CV_32F, camera_noise.IMMERKAER_MASK))
    window = cv2.boxFilter(response, -1, (isonet.PATCH, isonet.PATCH), anchor=(0, 0), normalize=True,
                           borderType=cv2.BORDER_CONSTANT)
    rows, cols = isonet.grid_shape(*luma.shape, stride)
    sigma = window[: rows * stride : stride, : cols * stride : stride] * camera_noise.IMMERKAER_SCALE
    return np.log2(np.maximum(sigma, 1e-3))


def splice_quality(scores: np.ndarray, stride: int, mask: np.ndarray) -> dict:
    """Pixel AUC and best F1 of a map of splice scores (higher: more likely pasted in)."""
    pixels = map_to_pixels(scores, stride, mask.shape)
    return {"auc": pixel_auc(pixels, mask), "f1": best_f1(pixels, mask)}

