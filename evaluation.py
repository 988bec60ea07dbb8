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

import isonet


# ---------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------
def accuracy(estimated: np.ndarray, true: np.ndarray) -> dict:
    """Image-level figures of a set of estimates, in stops."""
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    error = estimated - true
    rho = spearmanr(estimated, true).statistic if len(np.unique(true)) > 1 else float("nan")
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

    def __call__(self, metric: np.ndarray | float) -> np.ndarray:
        return np.interp(metric, self.x, self.y)

    def to_json(self) -> dict:
        return {"kind": "isotonic", "estimated_metric": self.x.tolist(), "true_metric": self.y.tolist()}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        import json

        if not Path(path).is_file():
            raise isonet.ISONetError(f"{path}: no such calibration file")
        try:
            data = json.loads(Path(path).read_text())
            x, y = np.asarray(data["estimated_metric"], float), np.asarray(data["true_metric"], float)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise isonet.ISONetError(f"{path}: not a calibration file ({type(e).__name__})") from None
        if x.ndim != 1 or x.size < 1 or x.shape != y.shape or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise isonet.ISONetError(f"{path}: not a calibration file (knots must increase)")
        return cls(x, y)


def fit_calibration(estimated: np.ndarray, true: np.ndarray) -> Calibration:
    """Isotonic regression of true on estimated metric, ties in the estimate averaged."""
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    x, inverse = np.unique(estimated, return_inverse=True)
    weights = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, weights=true) / weights
    y = isotonic_regression(means, weights=weights, increasing=True).x
    return Calibration(x, y)


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


# ---------------------------------------------------------------------------------------------
# Scoring models on labelled images
# ---------------------------------------------------------------------------------------------
@dataclass
class ScoredImage:
    """One labelled image's estimates (median of the map) and patch errors, per model."""

    file: Path
    true_iso: int
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
            img = isonet.read_image(path)
        except isonet.ISONetError as e:
            skipped.append((path, str(e).removeprefix(f"{path}: ")))
            continue
        item = ScoredImage(path, iso)
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
# Splices rendered from held-out sources
# ---------------------------------------------------------------------------------------------
@dataclass
class Splice:
    image: np.ndarray  # HxWx3 uint8 RGB
    mask: np.ndarray  # HxW bool, the pasted region
    gap: int  # stops between region and background
    camera: str


def random_splices(count: int, sources: list[np.ndarray], cameras: list, rng: np.random.Generator,
                   isos: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200, 6400)) -> list[Splice]:
    """`count` splices with ISO gaps cycling through 1..4 stops, the region's ISO above or below
    the background's at random, each from a camera measured at both ISOs."""
    import camera_noise

    splices = []
    for k in range(count):
        gap = k % 4 + 1
        low = int(rng.integers(0, len(isos) - gap))
        pair = [isos[low], isos[low + gap]]
        if rng.random() < 0.5:
            pair.reverse()
        usable = [c for c in cameras if c.supports(pair[0]) and c.supports(pair[1])]
        if not usable:
            raise isonet.ISONetError(f"no selected camera was measured at both ISO {pair[0]} and {pair[1]}")
        camera = usable[rng.integers(len(usable))]
        source = np.rot90(sources[k % len(sources)], int(rng.integers(4)))
        image, mask = camera_noise.render_splice(np.ascontiguousarray(source), camera, pair[0], pair[1], rng)
        splices.append(Splice(image, mask, gap, camera.name))
    return splices


def score_splice(net: isonet.ISONet, splice: Splice, stride: int, batch_size: int | None = None) -> dict:
    """Pixel AUC and best F1 of the distance of each patch's metric from the image's median."""
    values = isonet.iso_map(net, splice.image.astype(np.float32) / 255, stride, batch_size).map
    scores = map_to_pixels(splice_scores(values), stride, splice.mask.shape)
    return {"auc": pixel_auc(scores, splice.mask), "f1": best_f1(scores, splice.mask)}
