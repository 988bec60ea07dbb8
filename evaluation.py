"""Scoring ISO estimates against known ISOs: accuracy figures, calibration, splice detection.

Everything here works on ISO metrics (log2(ISO/100)), so every error is in photographic stops.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

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

        try:
            data = json.loads(open(path).read())
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
