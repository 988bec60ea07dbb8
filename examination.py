"""A questioned photo against a camera's photos: is it from that camera (PRNU PCE), and which of
its blocks lack the camera's PRNU (the forgery map, with the correlation predictor an ISO band
picks)? Files are read here, in the sensor's order; the maths is prnu.py's.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import image_io
import isonet
import reports
from isonet import ISONetError
from prnu import (
    BLOCK,
    FALSE_ALARM,
    PCE_THRESHOLD,
    CameraImage,
    CorrelationPredictor,
    Pce,
    WeightedPredictor,
    align_camera_images,
    best_turn,
    camera_prnu,
    describe_turn,
    measure_blocks,
    observe,
    turned,
)

# ---------------------------------------------------------------------------------------------
# A camera's photos: its fingerprint and predictors, in the sensor's orientation; then one probe
# ---------------------------------------------------------------------------------------------
BAND_CHOICES = ("isonet", "exif", "single", "isonet_weighted")
NEEDS_EXIF = ("exif", "isonet_weighted")  # band choices that need every fingerprint image's EXIF ISO


def read_camera_images(paths: Sequence[Path], size: tuple[int, int], net: isonet.ISONet | None, channels: str = "luma",
                       exif_needed_by: str | None = None) -> tuple[list[CameraImage], list[str]]:
    """Each image read in the sensor's order (EXIF orientation undone: photos held either way line
    up), checked to be of `size` either way round, observed, and read by `net` if given; (the
    usable, one line per image left out). With `exif_needed_by` (a band choice), an image
    without an EXIF ISO is left out too."""
    usable, failed = [], []
    for path in paths:
        try:
            img = image_io.read_image(path, sensor_order=True)
            if sorted(img.shape[:2]) != sorted(size):
                raise ISONetError(f"{path}: {img.shape[1]}x{img.shape[0]}, the probe is {size[1]}x{size[0]} "
                                  "(a fingerprint only matches photos of the same size)")
            exif_iso = image_io.read_exif_iso(path)
            if exif_needed_by and exif_iso is None:
                raise ISONetError(f"{path}: no EXIF ISO (--band {exif_needed_by} needs it in every fingerprint image; "
                                  "try --band isonet)")
            reading = None if net is None else isonet.global_metric(net, img)
            usable.append(CameraImage(path, observe(img, channels), exif_iso, reading))
        except ISONetError as e:
            failed.append(str(e))
    return usable, failed


@dataclass
class ProbeReport:
    probe: Path
    used: list[Path]  # the fingerprint images
    failed: list[str]  # one line per image left out
    turned_in: list[Path]  # fingerprint images stored turned against the others, turned back
    pce: Pce
    turn: int  # quarter turns from the probe's pixels in the sensor's order to the fingerprint's orientation
    pce_by_turn: dict[int, Pce]
    orientation: int  # the probe's EXIF orientation: how a viewer turns its pixels in the sensor's order
    isonet_metric: float
    exif_iso: int | None
    band: float | None  # the predictor's ISO band (metric), None: fitted on every band, or weighted
    predictor: CorrelationPredictor | WeightedPredictor
    rho: np.ndarray  # rows x cols, in the fingerprint's orientation
    predicted: np.ndarray
    forged: np.ndarray
    frame: tuple[int, int]  # the probe's height and width in the fingerprint's orientation
    block: int
    stride: int
    false_alarm: float

    @property
    def same_camera(self) -> bool:
        return self.pce.value > PCE_THRESHOLD

    @property
    def view(self) -> int:
        """The orientation code that turns the maps as a viewer shows the probe: the turn undone,
        then the probe's own orientation."""
        return image_io.compose_orientations(image_io.inverse_orientation(image_io.QUARTER_TURNS[self.turn]),
                                             self.orientation)


def analyse_probe(probe: str | os.PathLike, fingerprint_paths: Sequence[Path], net: isonet.ISONet,
                  band_by: str = "isonet", block: int = BLOCK, stride: int = BLOCK // 2,
                  false_alarm: float = FALSE_ALARM, channels: str = "luma") -> ProbeReport:
    """Is `probe` from the camera the fingerprint images come from (PCE), and which of its blocks
    lack that camera's PRNU? Everything is computed in the sensor's orientation, so photos held
    either way share one fingerprint; the probe is tried in every quarter turn its size allows
    (some phones store their photos turned upright). The predictors are fitted on the fingerprint
    images themselves (each against the others' fingerprint), one per ISO band chosen by
    `band_by`; the probe's band is chosen the same way. ISONetError naming the file when the probe
    is unreadable or fewer than two fingerprint images are usable."""
    probe = Path(probe)
    img = image_io.read_image(probe, sensor_order=True)
    reader = net if band_by.startswith("isonet") else None
    images, failed = read_camera_images(fingerprint_paths, img.shape[:2], reader, channels,
                                        band_by if band_by in NEEDS_EXIF else None)
    images, misaligned = align_camera_images(images)
    failed += misaligned
    if len(images) < 2:
        folder = Path(fingerprint_paths[0]).parent if fingerprint_paths else "--fingerprint_dir"
        first = f" (first left out: {failed[0]})" if failed else ""
        raise ISONetError(f"{folder}: {len(images)} usable fingerprint image(s) of the probe's size "
                          f"{img.shape[1]}x{img.shape[0]}; at least 2 are needed{first}")
    camera = camera_prnu(images, block, stride)
    turn, tried = best_turn(observe(img, channels), camera.fingerprint)
    obs = turned(observe(img, channels), turn)
    metric = isonet.global_metric(net, img)
    exif_iso = image_io.read_exif_iso(probe)
    if band_by == "exif" and exif_iso is None:
        raise ISONetError(f"{probe}: no EXIF ISO (--band exif needs it in the probe too; try --band isonet)")
    predictor, band = camera.predictor(band_by, metric, exif_iso)
    rho, features = measure_blocks(obs, camera.fingerprint, block, stride)
    return ProbeReport(probe, [i.path for i in images], failed, [i.path for i in images if i.turn], tried[turn], turn,
                       tried, image_io.read_orientation(probe), metric, exif_iso, band, predictor, rho,
                       predictor.predict(features), predictor.forged(rho, features, false_alarm), obs.shape, block,
                       stride, false_alarm)


def probe_report_lines(report: ProbeReport) -> list[str]:
    decision = "same camera" if report.same_camera else "not this camera"
    band = ("one predictor for all bands" if report.band is None
            else f"ISO band {isonet.metric_to_iso(report.band):.0f} (metric {report.band:g})")
    if isinstance(report.predictor, WeightedPredictor):
        band = "ISO bands weighted by how ISONet read the fingerprint images of each EXIF ISO: " + ", ".join(
            "all bands" if b is None else f"{isonet.metric_to_iso(b):.0f} {w:.0%}"
            for b, w, _ in report.predictor.parts)
    exif = f", EXIF ISO {report.exif_iso}" if report.exif_iso is not None else ""
    forged = int(report.forged.sum())
    turned_in = (f" ({len(report.turned_in)} stored turned against the others, turned back)"
                 if report.turned_in else "")
    orientation = (f"; its EXIF orientation {report.orientation} undone, as for every image"
                   if report.orientation != 1 else "")
    tried = ", ".join(f"{describe_turn(t)} {p.value:.1f}" for t, p in report.pce_by_turn.items())
    return [f"fingerprint: {len(report.used)} images of {report.probe.name}'s size, in the sensor's orientation"
            f"{turned_in}",
            f"PCE of {report.probe.name} against the fingerprint: {report.pce.value:.1f} -> {decision} "
            f"(threshold {PCE_THRESHOLD:g})",
            f"the probe matches the fingerprint {describe_turn(report.turn)}{orientation} (PCE tried: {tried})",
            f"ISONet reads ISO {isonet.metric_to_iso(report.isonet_metric):.0f} (metric {report.isonet_metric:.2f})"
            f"{exif}; predictor: {band}, fitted on {report.predictor.samples} genuine blocks",
            f"forgery map: {forged} of {report.forged.size} {report.block}x{report.block} blocks (every "
            f"{report.stride} px) fall below their predicted correlation at {report.false_alarm:.0%} false alarm"]


def save_forgery_figure(img: np.ndarray, report: ProbeReport, path: str | os.PathLike) -> None:
    """The probe as a viewer shows it (`img`, image_io.read_image's) with its flagged blocks, and
    each block's correlation minus its prediction; the maps, computed in the fingerprint's
    orientation, are turned with the picture, each cell centred on its block."""
    plt = reports.pyplot()
    rows, cols = report.rho.shape
    left = report.block / 2 - report.stride / 2
    x0, x1, y0, y1 = image_io.orient_box((left, left + cols * report.stride, left, left + rows * report.stride),
                                         *report.frame, report.view)
    extent = (x0, x1, y1, y0)

    def viewed(values: np.ndarray) -> np.ndarray:
        return image_io.orient(values, report.view)

    fig, axes = plt.subplots(1, 2, figsize=(16, 8 * img.shape[0] / img.shape[1] + 0.8))
    for ax in axes:
        reports.show_image(ax, isonet.to_unit_float(img), dim=0.5)
        ax.set_xlim(0, img.shape[1])
        ax.set_ylim(img.shape[0], 0)
    overlay = np.zeros((rows, cols, 4), np.float32)
    overlay[report.forged] = (1.0, 0.1, 0.1, 0.6)
    axes[0].imshow(viewed(overlay), extent=extent, interpolation="nearest")
    axes[0].set_title(f"blocks without the camera's PRNU ({report.false_alarm:.0%} false alarm): "
                      f"{int(report.forged.sum())} of {report.forged.size}")
    margin = report.rho - report.predicted
    reach = float(np.abs(margin).max()) or 1.0  # symmetric, so white is "as predicted"
    shown = axes[1].imshow(viewed(margin), extent=extent, cmap="coolwarm_r", vmin=-reach, vmax=reach, alpha=0.8,
                           interpolation="nearest")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04).set_label("measured - predicted correlation")
    axes[1].set_title(f"PCE {report.pce.value:.1f}; ISONet ISO {isonet.metric_to_iso(report.isonet_metric):.0f}")
    fig.suptitle(f"{report.probe.name}: PRNU forgery map")
    reports.save_figure(fig, path)
