"""A questioned photo against a camera's photos: is it from that camera (PRNU PCE), and which of
its blocks lack the camera's PRNU (the forgery map, with the correlation predictor an ISO band
picks)? Files are read here, in the sensor's order; the maths is prnu.py's.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import image_io
import isonet
import prnu
import reports
from isonet import ISONetError

if TYPE_CHECKING:
    from camera_profile import Profile

# ---------------------------------------------------------------------------------------------
# A camera's photos: its fingerprint and predictors, in the sensor's orientation; then one probe
# ---------------------------------------------------------------------------------------------
BAND_CHOICES = ("isonet", "exif", "single", "isonet_weighted")
NEEDS_EXIF = ("exif", "isonet_weighted")  # band choices that need every fingerprint image's EXIF ISO
PROBE_IN_FINGERPRINT = ("the photo is one of those the profile's fingerprint was built from, so its PCE and "
                        "forgery map compare it with itself: examine a photo the profile was not built from")
NOT_THIS_CAMERA_READING = ("by its PRNU the photo is not from the camera whose photos built the profile, so the "
                           "profile's reading and interval may not hold for it")
# A photo of another camera lacks the fingerprint in every block, so its map singles out nothing.
NOT_THIS_CAMERA_MAP = ("the photo does not match this camera as a whole, so the map cannot tell pasted blocks "
                       "from the rest")


def without_probe(probe: Path, paths: Sequence[Path]) -> list[Path]:
    """The fingerprint images but the probe (the same bytes under any name): a photo in its own
    fingerprint matches it whatever camera took it."""
    digest = image_io.file_sha256(probe)
    return [p for p in paths if image_io.file_sha256(p) != digest]


def read_camera_images(paths: Sequence[Path], size: tuple[int, int], net: isonet.ISONet | None, channels: str = "luma",
                       exif_needed_by: str | None = None) -> tuple[list[prnu.CameraImage], list[str]]:
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
            usable.append(prnu.CameraImage(path, prnu.observe(img, channels), exif_iso, reading))
        except ISONetError as e:
            failed.append(str(e))
    return usable, failed


@dataclass
class ProbeReport:
    probe: Path
    used: list[Path]  # the fingerprint images
    failed: list[str]  # one line per image left out
    turned_in: list[Path]  # fingerprint images stored turned against the others, turned back
    pce: prnu.Pce
    turn: int  # quarter turns from the probe's pixels in the sensor's order to the fingerprint's orientation
    pce_by_turn: dict[int, prnu.Pce]
    orientation: int  # the probe's EXIF orientation: how a viewer turns its pixels in the sensor's order
    reading: float  # the probe's global ISO metric, as ISONet or the profile's reader read it
    exif_iso: int | None
    band: float | None  # the predictor's ISO band (metric), None: fitted on every band, or weighted
    predictor: prnu.CorrelationPredictor | prnu.WeightedPredictor
    rho: np.ndarray  # rows x cols, in the fingerprint's orientation
    predicted: np.ndarray
    forged: np.ndarray
    frame: tuple[int, int]  # the probe's height and width in the fingerprint's orientation
    block: int
    stride: int
    false_alarm: float
    one_scene: bool = False  # every fingerprint image shows one scene (prnu.CameraPrnu.one_scene)

    @property
    def same_camera(self) -> bool:
        return self.pce.value > prnu.PCE_THRESHOLD

    @property
    def view(self) -> int:
        """The orientation code that turns the maps as a viewer shows the probe: the turn undone,
        then the probe's own orientation."""
        return image_io.compose_orientations(image_io.inverse_orientation(image_io.QUARTER_TURNS[self.turn]),
                                             self.orientation)


def folder_prnu(fingerprint_paths: Sequence[Path], shape: tuple[int, int], net: isonet.ISONet, band_by: str,
                block: int, stride: int, channels: str) -> tuple[prnu.CameraPrnu, list[prnu.CameraImage], list[str]]:
    """The PRNU of the camera whose images `fingerprint_paths` are (those of the probe's `shape`
    either way round, in one orientation), with the images used and one line per image left out.
    ISONetError naming the folder when fewer than two are usable."""
    reader = net if band_by.startswith("isonet") else None
    images, failed = read_camera_images(fingerprint_paths, shape, reader, channels,
                                        band_by if band_by in NEEDS_EXIF else None)
    images, misaligned = prnu.align_camera_images(images)
    failed += misaligned
    if len(images) < 2:
        folder = Path(fingerprint_paths[0]).parent if fingerprint_paths else "--fingerprint_dir"
        first = f" (first left out: {failed[0]})" if failed else ""
        raise ISONetError(f"{folder}: {len(images)} usable fingerprint image(s) of the probe's size "
                          f"{shape[1]}x{shape[0]}; at least 2 are needed{first}")
    return prnu.camera_prnu(images, block, stride), images, failed


def judge_probe(probe: Path, img: np.ndarray, camera: prnu.CameraPrnu, reading: float, band_by: str,
                false_alarm: float = prnu.FALSE_ALARM, channels: str = "luma", used: Sequence[Path] = (),
                failed: Sequence[str] = (), turned_in: Sequence[Path] = ()) -> ProbeReport:
    """`probe` (its pixels `img` in the sensor's order) against a camera's PRNU: tried in every
    quarter turn its size allows (some phones store their photos turned upright), its PCE, and its
    forgery map by the predictor `band_by` picks for its ISO `reading`. `used`, `failed` and
    `turned_in` say where the fingerprint came from, for the report."""
    turn, tried = prnu.best_turn(prnu.observe(img, channels), camera.fingerprint)
    obs = prnu.turned(prnu.observe(img, channels), turn)
    exif_iso = image_io.read_exif_iso(probe)
    if band_by == "exif" and exif_iso is None:
        raise ISONetError(f"{probe}: no EXIF ISO (--band exif needs it in the probe too; try --band isonet)")
    try:
        predictor, band = camera.predictor(band_by, reading, exif_iso)
    except ValueError as e:
        raise ISONetError(f"{probe}: {e}") from None
    rho, features = prnu.measure_blocks(obs, camera.fingerprint, camera.block, camera.stride)
    return ProbeReport(probe, list(used), list(failed), list(turned_in), tried[turn], turn, tried,
                       image_io.read_orientation(probe), reading, exif_iso, band, predictor, rho,
                       predictor.predict(features), predictor.forged(rho, features, false_alarm), obs.shape,
                       camera.block, camera.stride, false_alarm, camera.one_scene)


def analyse_probe(probe: str | os.PathLike, fingerprint_paths: Sequence[Path], net: isonet.ISONet,
                  band_by: str = "isonet", block: int = prnu.BLOCK, stride: int = prnu.BLOCK // 2,
                  false_alarm: float = prnu.FALSE_ALARM, channels: str = "luma",
                  reading: float | None = None) -> ProbeReport:
    """Is `probe` from the camera the fingerprint images come from (PCE), and which of its blocks
    lack that camera's PRNU? Everything is computed in the sensor's orientation, so photos held
    either way share one fingerprint. The predictors are fitted on the fingerprint images
    themselves (each against the fingerprint of the other scenes' images), one per ISO band chosen
    by `band_by`; the probe's band is chosen the same way. ISONetError naming the file when the probe is unreadable
    or fewer than two fingerprint images are usable."""
    probe = Path(probe)
    img = image_io.read_image(probe, sensor_order=True)
    camera, images, failed = folder_prnu(fingerprint_paths, img.shape[:2], net, band_by, block, stride, channels)
    reading = isonet.global_metric(net, img) if reading is None else reading
    return judge_probe(probe, img, camera, reading, band_by, false_alarm, channels,
                       [i.path for i in images], failed, [i.path for i in images if i.turn])


def probe_report_lines(report: ProbeReport) -> list[str]:
    decision = "same camera" if report.same_camera else "not this camera"
    band = ("one predictor for all bands" if report.band is None
            else f"ISO band {isonet.metric_to_iso(report.band):.0f} (metric {report.band:g})")
    if isinstance(report.predictor, prnu.WeightedPredictor):
        band = "ISO bands weighted by how ISONet read the fingerprint images of each EXIF ISO: " + ", ".join(
            "all bands" if b is None else f"{isonet.metric_to_iso(b):.0f} {w:.0%}"
            for b, w, _ in report.predictor.parts)
    exif = f", EXIF ISO {report.exif_iso}" if report.exif_iso is not None else ""
    forged = int(report.forged.sum())
    turned_in = (f" ({len(report.turned_in)} stored turned against the others, turned back)"
                 if report.turned_in else "")
    orientation = (f"; its EXIF orientation {report.orientation} undone, as for every image"
                   if report.orientation != 1 else "")
    tried = ", ".join(f"{prnu.describe_turn(t)} {p.value:.1f}" for t, p in report.pce_by_turn.items())
    lines = [f"fingerprint: {len(report.used)} images of {report.probe.name}'s size, in the sensor's orientation"
             f"{turned_in}",
             f"PCE of {report.probe.name} against the fingerprint: {report.pce.value:.1f} -> {decision} "
             f"(threshold {prnu.PCE_THRESHOLD:g})",
             f"the probe matches the fingerprint {prnu.describe_turn(report.turn)}{orientation} (PCE tried: {tried})",
             f"reading ISO {isonet.metric_to_iso(report.reading):.0f} (metric {report.reading:.2f})"
             f"{exif}; predictor: {band}, fitted on {report.predictor.samples} genuine blocks",
             f"forgery map: {forged} of {report.forged.size} {report.block}x{report.block} blocks (every "
             f"{report.stride} px) fall below their predicted correlation at {report.false_alarm:.0%} false alarm "
             + ("(on real cameras' photos it kept that rate and found a part of pasted regions, docs/prnu.md)"
                if report.same_camera else f"({NOT_THIS_CAMERA_MAP})")]
    if report.one_scene:
        lines.append(f"warning: {prnu.ONE_SCENE_WARNING}")
    return lines


def block_extent(report: ProbeReport) -> tuple[float, float, float, float]:
    """matplotlib's extent of the report's block maps as a viewer shows the probe: the maps are
    computed in the fingerprint's orientation and turned with the picture (report.view), each cell
    centred on its block."""
    rows, cols = report.rho.shape
    left = report.block / 2 - report.stride / 2
    x0, x1, y0, y1 = image_io.orient_box((left, left + cols * report.stride, left, left + rows * report.stride),
                                         *report.frame, report.view)
    return x0, x1, y1, y0


def draw_forgery_map(ax, img: np.ndarray, report: ProbeReport, in_fingerprint: bool = False) -> None:
    """The probe as a viewer shows it (`img`), dimmed, with the blocks that lack the camera's PRNU in
    red; its title says where the map tells nothing (another camera, or one of the fingerprint's own
    photos)."""
    reports.show_image(ax, isonet.to_unit_float(img), dim=0.5)
    overlay = np.zeros((*report.rho.shape, 4), np.float32)
    overlay[report.forged] = (1.0, 0.1, 0.1, 0.6)
    ax.imshow(image_io.orient(overlay, report.view), extent=block_extent(report), interpolation="nearest")
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    ax.set_title(f"blocks without the camera's PRNU ({report.false_alarm:.0%} false alarm): "
                 f"{int(report.forged.sum())} of {report.forged.size}; PCE {report.pce.value:.1f}"
                 + ("" if report.same_camera else "\n(not this camera: the map says nothing)")
                 + ("\n(one of the fingerprint's own photos: compared with itself)" if in_fingerprint else ""),
                 fontsize=10)


def save_forgery_figure(img: np.ndarray, report: ProbeReport, path: str | os.PathLike) -> None:
    """The probe as a viewer shows it (`img`, image_io.read_image's) with its flagged blocks, and
    each block's correlation minus its prediction."""
    plt = reports.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(16, 8 * img.shape[0] / img.shape[1] + 0.8))
    draw_forgery_map(axes[0], img, report)
    reports.show_image(axes[1], isonet.to_unit_float(img), dim=0.5)
    axes[1].set_xlim(0, img.shape[1])
    axes[1].set_ylim(img.shape[0], 0)
    margin = report.rho - report.predicted
    reach = float(np.abs(margin).max()) or 1.0  # symmetric, so white is "as predicted"
    shown = axes[1].imshow(image_io.orient(margin, report.view), extent=block_extent(report), cmap="coolwarm_r",
                           vmin=-reach, vmax=reach, alpha=0.8, interpolation="nearest")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04).set_label("measured - predicted correlation")
    axes[1].set_title(f"PCE {report.pce.value:.1f}; reading ISO {isonet.metric_to_iso(report.reading):.0f}")
    fig.suptitle(f"{report.probe.name}: PRNU forgery map")
    reports.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# One examination of a questioned photo against a camera profile
# ---------------------------------------------------------------------------------------------
@dataclass
class Examination:
    """Everything a camera profile says of one questioned photo: its ISO reading against the EXIF
    ISO, its ISO map and splice scores, and, where the profile holds the camera's PRNU, the PCE
    and the forgery map."""

    record: dict  # reports.analyse_image's record: reading, interval, EXIF ISO
    iso_map: isonet.IsoMap
    splice_scores: dict[str, np.ndarray]
    prnu: ProbeReport | None
    prnu_note: str  # why there is no PRNU verdict, where there is none
    probe_in_fingerprint: bool = False  # the photo is one the fingerprint was built from: its PCE is its own

    @property
    def exif_verdict(self) -> str:
        """'consistent' or 'inconsistent' (whether the EXIF ISO lies in the reading's interval), or
        'no EXIF ISO', or 'no interval'."""
        if self.record["exif_iso"] is None:
            return "no EXIF ISO"
        inside = reports.exif_in_interval(self.record)
        return "no interval" if inside is None else "consistent" if inside else "inconsistent"


def examine(path: str | os.PathLike, img: np.ndarray, result: isonet.IsoMap, record: dict, profile: Profile,
            band_by: str = "isonet", false_alarm: float = prnu.FALSE_ALARM) -> Examination:
    """Examine `path` (`img`, `result` and `record`: its reading with `profile`, reports.analyse_image's)
    against the profile. The PRNU parts need the profile's fingerprint and a photo of its sensor's
    size; where they cannot be had, the examination says why and keeps the rest."""
    import metrics

    scores = metrics.splice_score_maps(result.map, img, result.stride)
    report, note = None, ""
    if profile.prnu is None:
        note = f"the profile {profile.folder} holds no PRNU fingerprint ({profile.summary.get('prnu_note') or 'none'})"
    else:
        sensor = image_io.read_image(path, sensor_order=True)
        if sorted(sensor.shape[:2]) != sorted(profile.prnu.fingerprint.shape):
            h, w = profile.prnu.fingerprint.shape
            note = (f"{path}: {sensor.shape[1]}x{sensor.shape[0]}, the profile's fingerprint {w}x{h}: a fingerprint "
                    "only matches photos of its size")
        else:
            try:
                report = judge_probe(Path(path), sensor, profile.prnu, result.global_metric, band_by, false_alarm,
                                     used=[Path(p) for p in profile.summary["prnu"]["photos"]])
            except ISONetError as e:
                note = str(e)
    return Examination(record, result, scores, report, note, report is not None and in_fingerprint(path, profile))


def in_fingerprint(path: str | os.PathLike, profile: Profile) -> bool:
    """Whether `path` is one of the photos the profile's fingerprint was built from (the same bytes)."""
    return image_io.file_sha256(path) in profile.photo_hashes(set(profile.summary["prnu"]["photos"]))


def examination_lines(exam: Examination) -> list[str]:
    line = f"EXIF ISO against the reading's interval: {exam.exif_verdict}"
    if exam.prnu is not None and not exam.prnu.same_camera:
        line += f" ({NOT_THIS_CAMERA_READING})"
    elif exam.exif_verdict == "inconsistent":
        level = exam.record["interval_level"]
        line += (f" (genuine photos fall outside the {level:.0%} interval {1 - level:.0%} of the time: "
                 "weigh it with the rest)")
    lines = [line]
    lines += probe_report_lines(exam.prnu) if exam.prnu is not None else [f"PRNU: not examined: {exam.prnu_note}"]
    if exam.probe_in_fingerprint:
        lines.append(f"warning: {PROBE_IN_FINGERPRINT}")
    return lines


def examination_json(exam: Examination) -> dict:
    """The examination as JSON: the reading's record, the EXIF verdict, the splice scores' maps and
    the PRNU verdict with its forgery map (in the fingerprint's orientation; `view` turns it as a
    viewer shows the photo)."""
    out = {"reading": exam.record, "exif_verdict": exam.exif_verdict,
           "splice_scores": {name: np.round(values, 4).tolist() for name, values in exam.splice_scores.items()}}
    if exam.prnu is None:
        return out | {"prnu": None, "prnu_note": exam.prnu_note}
    r = exam.prnu
    return out | {"prnu": {"probe_in_fingerprint": exam.probe_in_fingerprint, "pce": r.pce.value,
                           "same_camera": r.same_camera, "turn": r.turn, "view": r.view,
                           "band": r.band, "block": r.block, "stride": r.stride, "false_alarm": r.false_alarm,
                           "forged_blocks": int(r.forged.sum()), "blocks": int(r.forged.size),
                           "forged": r.forged.astype(int).tolist(),
                           "margin": np.round(r.rho - r.predicted, 5).tolist()}}


def save_examination_figure(img: np.ndarray, exam: Examination, path: str | os.PathLike) -> None:
    """The ISO map, the combined splice scores and, where examined, the PRNU forgery map, side by side."""
    plt = reports.pyplot()
    panels = 3 if exam.prnu is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 7 * img.shape[0] / img.shape[1] + 1.2))
    record = exam.record
    interval = reports.interval_text(record).lstrip(", ")
    reports.draw_map(axes[0], img, exam.iso_map.map, exam.iso_map.stride)
    axes[0].set_title(f"ISO map: reading ISO {record['global_iso']:.0f}\n{interval or 'no interval'}", fontsize=10)
    reports.draw_map(axes[1], img, np.minimum(exam.splice_scores["both added"]
                                               / (np.percentile(exam.splice_scores["both added"], 99) or 1.0), 1.0),
                     exam.iso_map.stride, vmax=1.0)
    axes[1].set_title("splice scores (ISONet and noise sigma added)", fontsize=10)
    if exam.prnu is not None:
        draw_forgery_map(axes[2], img, exam.prnu, exam.probe_in_fingerprint)
    fig.suptitle(f"{Path(record['file']).name}: examination against {record['reader']} ({exam.exif_verdict} with "
                 "its EXIF ISO)")
    reports.save_figure(fig, path)
