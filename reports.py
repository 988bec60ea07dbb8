"""What the scripts show and write: an image's analysis record, its printed line and warnings,
JSON/CSV outputs, the ISO-map figures and progress bars.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from image_io import atomic_path, read_exif_iso, read_image
from isonet import (
    CLIPPED_UNRELIABLE,
    PATCH,
    PROJECT,
    IsoMap,
    clipped_share,
    iso_to_metric,
    metric_to_iso,
    nearest_full_stop,
)

if TYPE_CHECKING:
    from camera_profile import Readers


# ---------------------------------------------------------------------------------------------
# Reports and figures
# ---------------------------------------------------------------------------------------------
def analyse_image(readers: Readers, path: str | os.PathLike, stride: int = PATCH, batch_size: int | None = None,
                  calibration: Callable[[np.ndarray], np.ndarray] | None = None,
                  img: np.ndarray | None = None) -> tuple[np.ndarray, IsoMap, dict]:
    """Read one image (unless `img` holds it, read_image's) and compute its map and global reading
    (camera_profile.Readers: a profile of its camera, or the model); returns the image, the map and
    the JSON record.

    `calibration` maps the network's metrics to calibrated ones (evaluate.py --calibrate).
    """
    start = time.perf_counter()
    img = read_image(path) if img is None else img
    result, reading = readers.read(img, path, stride, batch_size)
    if calibration is not None:
        result.map = calibration(result.map).astype(np.float32)
    rows, cols = result.map.shape
    record = {
        "file": str(path),
        "width": img.shape[1],
        "height": img.shape[0],
        "patch_size": PATCH,
        "stride": stride,
        "precision": readers.net.precision,
        "rows": rows,
        "cols": cols,
        "map": np.round(result.map.astype(np.float64), 6).tolist(),
        "global_iso_metric": result.global_metric,
        "global_iso": result.global_iso,
        "nearest_iso": nearest_full_stop(result.global_iso),
        "iqr": result.iqr,
        "exif_iso": read_exif_iso(path),
        "clipped_share": clipped_share(img, stride),
        **reading,
        "seconds": time.perf_counter() - start,
    }
    return img, result, record


# From this EXIF ISO up, models not adapted to a camera read its in-camera JPEGs far too low: its
# noise reduction leaves them as clean as base ISO (models/README.md, "Accuracy"), so a reading
# below the metadata proves little there. Where an interval is calibrated, it says as much for
# every reading; this warning stands for the models without one.
LOW_READING_FROM_EXIF_ISO = 800
LOW_READING_STOPS = 1.0
# An interval wider than this says nothing of the absolute ISO: only a profile of the camera can.
UNREADABLE_INTERVAL_STOPS = 3.0


def reader_text(record: dict, profiles: bool) -> str:
    """Which camera profile read the image, for the printed line; with `profiles` (--profiles), that
    none matched its camera when none did."""
    if record["reader"]:
        own = " (one of the photos it was built from: not a held-out reading)" if record.get("profile_photo") else ""
        return f"; read with the camera profile {record['reader']}{own}"
    return f"; no camera profile matched its camera ({record['camera'] or 'none in its EXIF'})" if profiles else ""


def exif_in_interval(record: dict) -> bool | None:
    """Whether the EXIF ISO lies in the reading's interval; None without either."""
    interval, exif = record.get("iso_metric_interval"), record["exif_iso"]
    if interval is None or exif is None:
        return None
    return bool(interval[0] <= float(iso_to_metric(exif)) <= interval[1])


def interval_text(record: dict) -> str:
    """The reading's interval and how the EXIF ISO stands against it, for the printed line; '' where
    nothing calibrates an interval for the reading."""
    interval = record.get("iso_metric_interval")
    if interval is None:
        return ""
    low, high = (metric_to_iso(v) for v in interval)
    text = f", {record['interval_level']:.0%} interval ISO {low:.0f}-{high:.0f}"
    inside = exif_in_interval(record)
    if inside is not None:
        text += f"; EXIF ISO {record['exif_iso']} {'lies within it: consistent' if inside else 'lies outside it'}"
    return text


def reading_warnings(record: dict) -> list[str]:
    """Warning lines for an estimate a user should not take at face value: most of the image's
    patches clipped (isonet.clipped_share); an interval too wide to read the absolute ISO; or,
    where no interval is calibrated, a reading well below a high EXIF ISO."""
    warnings = []
    if record["clipped_share"] > CLIPPED_UNRELIABLE:
        warnings.append(f"warning: {record['file']}: {record['clipped_share']:.0%} of its patches are mostly black or "
                        "saturated, where clipping leaves no noise to read: the estimate is unreliable")
    interval = record.get("iso_metric_interval")
    if interval is not None and interval[1] - interval[0] > UNREADABLE_INTERVAL_STOPS:
        warnings.append(f"warning: {record['file']}: its {record['interval_level']:.0%} interval spans "
                        f"{interval[1] - interval[0]:.1f} stops: the absolute ISO of such a photo cannot be read "
                        "without a profile of its camera (adapt_camera.py --photos ITS_PHOTOS --out PROFILE_DIR, "
                        "then --profile PROFILE_DIR); the map's relative evidence (splices) still holds")
    exif = record["exif_iso"]
    if interval is None and exif is not None and exif >= LOW_READING_FROM_EXIF_ISO:
        gap = float(iso_to_metric(exif)) - record["global_iso_metric"]
        if gap > LOW_READING_STOPS:
            warnings.append(
                f"warning: {record['file']}: read {gap:.1f} stops below its EXIF ISO {exif}. Models not adapted to a "
                f"camera read its in-camera JPEGs at ISO {LOW_READING_FROM_EXIF_ISO} and above low (models/README.md), "
                "so this gap alone does not show that the metadata lies: adapt a model to the camera first "
                "(adapt_camera.py)")
    return warnings


def write_json(path: str | os.PathLike, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj))


def write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def pyplot():
    """matplotlib, headless unless a window was asked for (ISONET_SHOW=1 from --show)."""
    import matplotlib

    if os.environ.get("ISONET_SHOW") != "1":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _iso_colorbar(fig, mappable, cax) -> None:
    """Colour bar in ISO metric, each tick also labelled with its ISO."""
    bar = fig.colorbar(mappable, cax=cax)
    bar.solids.set_alpha(1)
    low, high = mappable.get_clim()
    ticks = [t for t in bar.get_ticks() if low <= t <= high]
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{t:g} (ISO {metric_to_iso(t):.0f})" for t in ticks])
    bar.set_label("ISO metric log2(ISO/100)")


# A map panel is at most 700 px at dpi 100: a bigger background only costs time (resampling 12 MP
# took most of a figure's seconds, a 1600 px copy still a third) and shows nothing more.
FIGURE_MAX_SIDE = 800


def figure_background(img: np.ndarray, max_side: int = FIGURE_MAX_SIDE) -> np.ndarray:
    """`img` shrunk (area interpolation, so noise averages rather than aliases) until its long side
    is at most `max_side`; smaller images are returned as they are."""
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def show_image(ax, img: np.ndarray, dim: float = 1.0) -> None:
    """Draw a downsampled copy of `img` in the full image's pixel coordinates, so overlays placed
    in those coordinates (map cells, outlines) line up with it."""
    # An area resize can overshoot 1 by a rounding, which matplotlib would warn of.
    ax.imshow(np.clip(figure_background(img) * dim, 0.0, 1.0), extent=(0, img.shape[1], img.shape[0], 0))


def draw_map(ax, img: np.ndarray, values: np.ndarray, stride: int, vmax: float | None = None):
    """A patch map over a dimmed copy of the image; each cell is centred on its patch."""
    rows, cols = values.shape
    left = PATCH / 2 - stride / 2
    extent = (left, left + cols * stride, left + rows * stride, left)
    show_image(ax, img, dim=0.5)
    low = None if vmax is None else 0.0  # scores start at 0; an ISO map keeps its own range
    shown = ax.imshow(values, extent=extent, cmap="inferno", alpha=0.6, interpolation="nearest", vmin=low, vmax=vmax)
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    return shown


def save_figure(fig, path: str | os.PathLike, tight: bool = True) -> None:
    """Write `fig` atomically. tight=False keeps the figure's own layout: bbox_inches="tight" draws
    the whole figure twice, which the per-image figures of a folder run cannot afford."""
    plt = pyplot()
    with atomic_path(path) as tmp:
        # PNG's fastest deflate level: files ~1.5x larger, written ~4x faster than the default 6.
        fig.savefig(tmp, dpi=100, bbox_inches="tight" if tight else None, format=Path(path).suffix[1:],
                    pil_kwargs={"compress_level": 1})
    if os.environ.get("ISONET_SHOW") == "1":
        plt.show()
    plt.close(fig)


# Fixed margins, in inches, around map panels: room for tick labels, titles and the colour bar's
# "1 (ISO 200)" labels, so the figure needs no layout pass at draw time. A panel's slot is at least
# as wide as its title, and the colour bar at least as tall as its label.
_PANEL_SIDE, _MIN_SLOT_WIDTH, _MARGIN_LEFT, _MARGIN_BOTTOM, _MARGIN_TOP, _GAP = 7.0, 5.0, 0.7, 0.45, 0.8, 0.9
_COLORBAR_GAP, _COLORBAR_WIDTH, _COLORBAR_LABELS, _COLORBAR_MIN_HEIGHT = 0.2, 0.25, 1.9, 3.2


def _map_panels(plt, panels: int, height: int, width: int):
    """A figure of `panels` image axes of the image's aspect side by side and a colour-bar axes,
    laid out by hand; the longer image side is _PANEL_SIDE inches."""
    scale = _PANEL_SIDE / max(height, width)
    pw, ph = width * scale, height * scale
    slot = max(pw, _MIN_SLOT_WIDTH)
    bar_height = max(ph, _COLORBAR_MIN_HEIGHT)
    right = _MARGIN_LEFT + panels * slot + (panels - 1) * _GAP - (slot - pw) / 2 + _COLORBAR_GAP
    fw = right + _COLORBAR_WIDTH + _COLORBAR_LABELS
    fh = _MARGIN_BOTTOM + bar_height + _MARGIN_TOP
    fig = plt.figure(figsize=(fw, fh))
    left, bottom = _MARGIN_LEFT + (slot - pw) / 2, _MARGIN_BOTTOM + (bar_height - ph) / 2
    axes = [fig.add_axes(((left + k * (slot + _GAP)) / fw, bottom / fh, pw / fw, ph / fh)) for k in range(panels)]
    cax = fig.add_axes((right / fw, _MARGIN_BOTTOM / fh, _COLORBAR_WIDTH / fw, bar_height / fh))
    return fig, axes, cax


def save_map_figure(img: np.ndarray, result: IsoMap, path: str | os.PathLike, title: str = "",
                    side_by_side: bool = False, outline: np.ndarray | None = None) -> None:
    """The ISO map over the dimmed image; with side_by_side, the plain image on its left.

    `outline`, a boolean mask of the image's size (a known splice), is drawn on every panel."""
    plt = pyplot()
    fig, axes, cax = _map_panels(plt, 2 if side_by_side else 1, *img.shape[:2])
    if side_by_side:
        show_image(axes[0], img)
        axes[0].set_title("image")
    ax = axes[-1]
    _iso_colorbar(fig, draw_map(ax, img, result.map, result.stride), cax)
    ax.set_title(f"ISO map: global metric {result.global_metric:.2f} (ISO {result.global_iso:.0f})")
    _finish_map_figure(fig, axes, title, outline, path)


def _finish_map_figure(fig, axes, title: str, outline: np.ndarray | None, path: str | os.PathLike) -> None:
    """`outline` (a known splice's mask) on every panel, the title above them, and the file written."""
    if outline is not None:
        for panel in axes:
            panel.contour(outline, levels=[0.5], colors="cyan", linewidths=1.5)
    fig.suptitle(title, y=1 - 0.15 / fig.get_figheight(), va="top")
    save_figure(fig, path, tight=False)


def save_splice_scores_figure(img: np.ndarray, scores: dict[str, np.ndarray], stride: int, path: str | os.PathLike,
                              title: str = "", outline: np.ndarray | None = None) -> None:
    """Splice-score maps side by side, each relative to its own 99th percentile: one map's few
    extreme patches (a model's reading of saturated colours) would leave the others black on a
    shared scale."""
    plt = pyplot()
    fig, axes, cax = _map_panels(plt, len(scores), *img.shape[:2])
    for ax, (name, values) in zip(axes, scores.items()):
        top = float(np.percentile(values, 99)) or 1.0
        shown = draw_map(ax, img, np.minimum(values / top, 1.0), stride, vmax=1.0)
        ax.set_title(name)
    bar = fig.colorbar(shown, cax=cax)
    bar.solids.set_alpha(1)
    bar.set_label("splice score / the map's 99th percentile")
    _finish_map_figure(fig, axes, title, outline, path)


def save_scatter_figure(result: IsoMap, path: str | os.PathLike, title: str = "") -> None:
    """Patch index against ISO metric, as the paper's script plots it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.91)
    values = result.map.ravel()
    ax.scatter(np.arange(1, values.size + 1), values, s=8)
    ax.axhline(result.global_metric, color="red", lw=1, label=f"median {result.global_metric:.2f}")
    ax.set_xlabel("patch index (row-major)")
    ax.set_ylabel("ISO metric")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path, tight=False)


def progress(items, disable: bool | None = None, **kwargs):
    """A tqdm bar on stderr (images a second, time left) when it is a terminal, or where `disable`
    is False; nothing in logs and tests, or where `disable` is True."""
    from tqdm import tqdm

    return tqdm(items, disable=disable, file=sys.stderr, **kwargs)


def model_label(path: str | os.PathLike) -> str:
    """A model as figure titles name it: relative to the project when it lies inside it (the
    default models), else as the user gave it; never this machine's absolute project path."""
    try:
        return Path(path).resolve().relative_to(PROJECT).as_posix()
    except ValueError:
        return str(path)
