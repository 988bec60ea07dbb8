"""The paper's Fig. 7 on renders: does a PRNU correlation predictor chosen by ISO (by EXIF, by
ISONet's reading, or weighted by it) localise forgeries better than one for all?

A camera's fingerprint from flat fields; predictors fitted on renders of Train photos at every
ISO; genuine and forged renders of held-out photos judged by each scheme (run_scenario).
adapted_reader: the images that fit ISO-specific predictors come with their ISO, so they can
first adapt ISONet to the camera's processing (adapt_camera's fine-tune). The reading weights then
come from readers adapted without each image's photo (cross_fitted_readings): they must tell how a
photo the reader never saw, a probe, is read.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

import adapt_camera
import camera_noise
import dataset
import demos
import forgeries
import isonet
import reports
from isonet import ISONetError
from prnu import (
    BLOCK,
    FALSE_ALARM,
    FEATURES,
    MIN_BAND_BLOCKS,
    CameraPrnu,
    ReadingWeights,
    block_coverage,
    estimate_fingerprint,
    fit_banded,
    measure_blocks,
    observe,
    reading_band,
    stack_samples,
)


# ---------------------------------------------------------------------------------------------
# The Fig. 7 scenario on renders: predictors per ISO band against one for all
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioConfig:
    camera: str = demos.DEMO_CAMERA
    donor: str = "Nikon D7000"  # the camera whose render is pasted in: another reference sensor
    isos: tuple[int, ...] = camera_noise.DEFAULT_ISOS
    height: int = 384
    width: int = 512
    block: int = BLOCK
    stride: int = 32
    flat_fields: int = 32  # fingerprint images: featureless scenes, as forensic practice takes them
    test_renders: int = 1  # per held-out photo, ISO and kind (genuine, other camera, copy-move)
    jpeg_quality: int | None = 95  # the camera's own compression ("fine")
    # camera_noise.typical_isp (noise reduction rising with ISO); False: plain development
    camera_processing: bool = True
    false_alarm: float = FALSE_ALARM
    forged_coverage: float = 0.75  # a block this much inside the forged region counts as forged
    folds: int = 1  # 1: the renderer's Test photos give the probes; more: every bundled photo held out once
    adapt_reader: bool = True  # ISONet fine-tuned on each fold's Train renders before it reads (adapted_reader)
    seed: int = 0


GENUINE, OTHER_CAMERA, COPY_MOVE = "genuine", "other camera", "copy-move"
SINGLE, BY_TRUE_ISO, BY_ISONET, BY_ISONET_WEIGHTED = SCHEMES = ("single", "ISO (true)", "ISO (ISONet)",
                                                                "ISONet-weighted")
# Each scheme as the band choice (Fig7.py --band) that picks its predictor; the true ISO is what EXIF says.
BAND_OF_SCHEME = {SINGLE: "single", BY_TRUE_ISO: "exif", BY_ISONET: "isonet", BY_ISONET_WEIGHTED: "isonet_weighted"}


@dataclass
class Probe:
    """One suspect image's blocks, with what each band-selection scheme needs."""

    iso: int
    kind: str  # GENUINE, OTHER_CAMERA or COPY_MOVE
    isonet_metric: float
    rho: np.ndarray  # measured correlation of W and I * K per block
    features: np.ndarray  # n x 4
    coverage: np.ndarray  # share of each block inside the forged region (0 for genuine images)


@dataclass
class SchemeScore:
    scheme: str
    rmse_by_iso: dict[int, float]
    rmse: float
    detection_by_iso: dict[int, float]  # share of forged blocks flagged, both kinds of forgery
    detection: float
    detection_by_kind: dict[str, float]
    false_alarm_rate: float  # share of genuine test blocks flagged
    detection_at_measured_false_alarm: float  # at the threshold flagging config.false_alarm of the genuine test blocks
    predicted: np.ndarray  # genuine test blocks, for the figure
    measured: np.ndarray
    iso: np.ndarray


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    scores: list[SchemeScore]
    isonet_iso_by_iso: dict[int, float]  # median global ISO ISONet read on the probes of each ISO
    isonet_right_band: dict[int, float]  # share of probes whose ISONet band is the true one
    blocks: dict[str, int] = field(default_factory=dict)  # how many blocks each set has


def cover_fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """`img` scaled to cover height x width (area resampling when shrinking) and centre-cropped."""
    h, w = img.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])


def flat_field(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A featureless, smoothly shaded scene of random colour (sky, a wall), kept off saturation."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(90, 170, 3)
    slope_x, slope_y = rng.uniform(-40, 40, 3), rng.uniform(-40, 40, 3)
    scene = base + slope_x * (x / width)[:, :, None] + slope_y * (y / height)[:, :, None]
    return np.clip(scene + 0.5, 0, 255).astype(np.uint8)


def flipped_variant(img: np.ndarray, k: int) -> np.ndarray:
    """The k-th of four orientations (as shot, mirrored, upside down, both): the same photo puts
    other content over each photosite."""
    if k % 2:
        img = img[:, ::-1]
    if (k // 2) % 2:
        img = img[::-1]
    return np.ascontiguousarray(img)


def scenario_folds(config: ScenarioConfig) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """(Train, Test) photos of each fold, fitted to the scenario's image size: Train fits the
    predictors, Test gives the probes. One fold: the bundled photos split as the renderer splits
    them. More: every bundled photo held out once (dealt round the folds in name order), the others
    fitting that fold's predictors; two held-out photos alone make fragile figures."""
    named = [(name, cover_fit(img, config.height, config.width)) for name, img in camera_noise.clean_images()]
    if config.folds == 1:
        return [tuple([img for _, img in part] for part in camera_noise.split_train_test(named))]
    photos = [img for _, img in named]
    if not 2 <= config.folds <= len(photos):
        raise ISONetError(f"{config.folds} folds: between 1 and the {len(photos)} bundled photos")
    return [([img for k, img in enumerate(photos) if k % config.folds != fold], photos[fold::config.folds])
            for fold in range(config.folds)]


def scenario_isp(iso: int, config: ScenarioConfig) -> camera_noise.Isp | None:
    return camera_noise.typical_isp(iso) if config.camera_processing else None


def scenario_render(img: np.ndarray, camera: camera_noise.CameraNoise, iso: int, rng: np.random.Generator,
                    config: ScenarioConfig) -> np.ndarray:
    return camera_noise.render(img, camera, iso, rng, config.jpeg_quality, scenario_isp(iso, config), prnu=True)


ADAPT_PATCH_STRIDE = 32  # patches of each Train render the reader's fine-tune takes (165 of a 384x512 render)
ADAPT_PATCHES = 200  # at most, from one render


def training_renders(sources: Sequence[np.ndarray], camera: camera_noise.CameraNoise, config: ScenarioConfig,
                     rng: np.random.Generator) -> list[tuple[int, int, np.ndarray]]:
    """(ISO, photo index, genuine render) of every Train photo at every ISO."""
    return [(iso, k, scenario_render(img, camera, iso, rng, config))
            for iso in config.isos for k, img in enumerate(sources)]


def adapted_reader(net: isonet.ISONet, renders: Sequence[tuple[int, int, np.ndarray]],
                   config: ScenarioConfig) -> isonet.ISONet:
    """A copy of `net` fine-tuned on the Train renders at their true ISO, as adapt_camera.py adapts
    it to a user's photos. ISO-specific predictors need the camera's images at every ISO, with
    their ISO; the same images teach ISONet this camera's noise reduction, which the model as
    given reads as a range compressed towards the middle (ISO 100-6400 as ISO 520-1460)."""
    rng = np.random.default_rng(config.seed)
    patches = [dataset.cut_patches(render, ADAPT_PATCH_STRIDE, ADAPT_PATCHES, rng)[0] for *_, render in renders]
    metrics = [float(isonet.iso_to_metric(iso)) for iso, *_ in renders]
    return adapt_camera.finetune(net, patches, metrics, adapt_camera.FINETUNE_EPOCHS, adapt_camera.FINETUNE_LR,
                                 config.seed)


def scenario_fingerprint(camera: camera_noise.CameraNoise, config: ScenarioConfig,
                         rng: np.random.Generator) -> np.ndarray:
    """The camera's fingerprint from flat fields shot at its lowest ISO."""
    renders = (scenario_render(flat_field(config.height, config.width, rng), camera, config.isos[0], rng, config)
               for _ in range(config.flat_fields))
    return estimate_fingerprint(observe(img) for img in renders)


def cross_fitted_readings(net: isonet.ISONet, renders: Sequence[tuple[int, int, np.ndarray]],
                          config: ScenarioConfig) -> list[float]:
    """ISONet's reading of each Train render by a reader adapted without that render's photo: the
    photos dealt into two halves, each read by the reader fine-tuned on the other. A probe is a
    photo its reader never saw; the renders a reader learnt from it reads too well, and weights
    built on such readings trust ISONet more than its readings of a probe deserve."""
    half = {k: n % 2 for n, k in enumerate(sorted({k for _, k, _ in renders}))}
    readings = [0.0] * len(renders)
    for side in (0, 1):
        reader = adapted_reader(net, [r for r in renders if half[r[1]] != side], config)
        for n, (_, k, render) in enumerate(renders):
            if half[k] == side:
                readings[n] = isonet.global_metric(reader, render)
    return readings


def train_predictors(renders: Sequence[tuple[int, int, np.ndarray]], band_readings: Sequence[float],
                     weight_readings: Sequence[float], fingerprint: np.ndarray,
                     config: ScenarioConfig) -> CameraPrnu:
    """Predictors from the genuine Train renders (training_renders), banded by the true ISO (what
    EXIF says) and by ISONet's `band_readings` of them (the bands `Fig7.py --fingerprint_dir` fits
    with `--band isonet`: a probe gets the predictor of the renders ISONet read the same way, its
    reading's bias included), and one for all (each photo one group, at every ISO); the reading
    weights (`--band isonet_weighted`) from `weight_readings`. Where the reader was adapted on these renders, its
    bands take its own readings of them (a band is then the renders of an ISO as the reader knows
    it), but the weights must say how often a reading of a photo it never saw comes from each ISO,
    which only readings of renders of such photos tell (cross_fitted_readings)."""
    by_iso: dict[float, list] = {}
    by_reading: dict[float, list] = {}
    truths = [isonet.iso_to_metric(iso) for iso, *_ in renders]
    for (_, k, render), truth, reading in zip(renders, truths, band_readings):
        rho, features = measure_blocks(observe(render), fingerprint, config.block, config.stride)
        blocks = (features.reshape(-1, len(FEATURES)), rho.ravel(), np.full(rho.size, k))
        by_iso.setdefault(truth, []).append(blocks)
        by_reading.setdefault(reading_band(reading), []).append(blocks)
    return CameraPrnu(fingerprint, fit_banded(stack_samples(by_iso)),
                      fit_banded(stack_samples(by_reading), MIN_BAND_BLOCKS),
                      ReadingWeights.of(zip(truths, weight_readings)), config.block, config.stride)


def make_probe(img: np.ndarray, mask: np.ndarray | None, iso: int, kind: str, fingerprint: np.ndarray,
               net: isonet.ISONet, config: ScenarioConfig) -> Probe:
    rho, features = measure_blocks(observe(img), fingerprint, config.block, config.stride)
    coverage = np.zeros(rho.size) if mask is None else block_coverage(mask, config.block, config.stride).ravel()
    return Probe(iso, kind, isonet.global_metric(net, img), rho.ravel(), features.reshape(-1, len(FEATURES)), coverage)


def scenario_probes(sources: Sequence[np.ndarray], camera: camera_noise.CameraNoise, donor: camera_noise.CameraNoise,
                    fingerprint: np.ndarray, net: isonet.ISONet, config: ScenarioConfig,
                    rng: np.random.Generator) -> list[Probe]:
    """Genuine renders of the Test photos, the same photos with a region from the donor camera,
    and with a region copied from elsewhere in the image, at every ISO."""
    probes, quality = [], config.jpeg_quality
    for photo in sources:
        for iso in config.isos:
            isp = scenario_isp(iso, config)
            for k in range(config.test_renders):
                img = flipped_variant(photo, k)
                genuine = scenario_render(img, camera, iso, rng, config)
                probes.append(make_probe(genuine, None, iso, GENUINE, fingerprint, net, config))
                forged, mask = forgeries.forge_from_camera(img, camera, donor, iso, rng, quality, isp)
                probes.append(make_probe(forged, mask, iso, OTHER_CAMERA, fingerprint, net, config))
                forged, mask = forgeries.forge_copy_move(img, camera, iso, rng, quality, isp)
                probes.append(make_probe(forged, mask, iso, COPY_MOVE, fingerprint, net, config))
    return probes


def flagged_share(parts: Sequence[np.ndarray]) -> float:
    """The share of True among boolean arrays together; NaN when they hold nothing."""
    total = sum(p.size for p in parts)
    return float(sum(int(p.sum()) for p in parts) / total) if total else float("nan")


def score_scheme(scheme: str, judged: Sequence[tuple[CameraPrnu, Probe]],
                 config: ScenarioConfig) -> SchemeScore:
    """Prediction error on genuine probes' blocks, false alarms on them, and detection of the
    forged probes' blocks, each probe judged by the predictor its scheme chooses among the
    predictors paired with it (its fold's, fitted without its photo): at the
    predictors' own thresholds, and at the one threshold (on the standard score) that flags
    exactly the false-alarm rate of the genuine test blocks, which compares schemes at equal
    false alarms."""
    genuine: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # iso, rho, rho_hat, flagged, score
    detected: list[tuple[int, str, np.ndarray, np.ndarray]] = []  # iso, kind, flags and scores of the forged blocks
    for predictors, probe in judged:
        predictor, _ = predictors.predictor(BAND_OF_SCHEME[scheme], probe.isonet_metric, probe.iso)
        rho_hat = predictor.predict(probe.features)
        flagged = predictor.forged(probe.rho, probe.features, config.false_alarm)
        score = predictor.standard_score(probe.rho, probe.features)
        if probe.kind == GENUINE:
            genuine.append((probe.iso, probe.rho, rho_hat, flagged, score))
        else:
            forged = probe.coverage >= config.forged_coverage
            detected.append((probe.iso, probe.kind, flagged[forged], score[forged]))
    iso = np.concatenate([np.full(rho.shape, i) for i, rho, *_ in genuine])
    measured = np.concatenate([rho for _, rho, *_ in genuine])
    predicted = np.concatenate([rho_hat for _, _, rho_hat, *_ in genuine])
    error = measured - predicted
    equal_threshold = np.quantile(np.concatenate([s for *_, s in genuine]), config.false_alarm)
    return SchemeScore(
        scheme,
        rmse_by_iso={i: float(np.sqrt(np.mean(error[iso == i] ** 2))) for i in config.isos},
        rmse=float(np.sqrt(np.mean(error ** 2))),
        detection_by_iso={i: flagged_share([f for j, _, f, _ in detected if j == i]) for i in config.isos},
        detection=flagged_share([f for _, _, f, _ in detected]),
        detection_by_kind={kind: flagged_share([f for _, k, f, _ in detected if k == kind])
                           for kind in (OTHER_CAMERA, COPY_MOVE)},
        false_alarm_rate=flagged_share([f for _, _, _, f, _ in genuine]),
        detection_at_measured_false_alarm=flagged_share([s < equal_threshold for *_, s in detected]),
        predicted=predicted, measured=measured, iso=iso)


def run_scenario(net: isonet.ISONet, config: ScenarioConfig = ScenarioConfig(),
                 noise_profiles: str | os.PathLike | None = None,
                 say: Callable[[str], None] = lambda line: None) -> ScenarioResult:
    """Fig. 7 on renders: a fingerprint from flat fields, predictors fitted on Train photos (and,
    with config.adapt_reader, ISONet adapted to the camera on them), then genuine and forged renders
    of the held-out Test photos judged by each scheme. `say` is told each step as it starts."""
    db = camera_noise.load_noise_profiles(noise_profiles)
    camera, donor = db.select(config.camera)[0], db.select(config.donor)[0]
    camera_noise.cameras_by_iso([camera], config.isos)
    camera_noise.cameras_by_iso([donor], config.isos)
    rng = np.random.default_rng(config.seed)
    say(f"rendering {config.flat_fields} flat fields at ISO {config.isos[0]} for {camera.name}'s fingerprint")
    fingerprint = scenario_fingerprint(camera, config, rng)
    judged: list[tuple[CameraPrnu, Probe]] = []
    training = []
    for fold, (train, test) in enumerate(scenario_folds(config), 1):
        step = f"fold {fold}/{config.folds}: " if config.folds > 1 else ""
        say(f"{step}rendering {len(train)} Train photos at {len(config.isos)} ISOs")
        renders = training_renders(train, camera, config, rng)
        if config.adapt_reader:
            say(f"{step}fine-tuning three ISONet readers on the Train renders (the longest step)")
        reader = adapted_reader(net, renders, config) if config.adapt_reader else net
        say(f"{step}reading the renders and fitting the predictors")
        own = [isonet.global_metric(reader, render) for *_, render in renders]
        unseen = cross_fitted_readings(net, renders, config) if config.adapt_reader else own
        predictors = train_predictors(renders, own, unseen, fingerprint, config)
        training.append(predictors.by_exif.single.samples)
        say(f"{step}rendering and judging genuine and forged probes of {len(test)} held-out photos")
        probes = scenario_probes(test, camera, donor, fingerprint, reader, config, rng)
        judged += [(predictors, probe) for probe in probes]
    readings = {iso: [p.isonet_metric for _, p in judged if p.iso == iso] for iso in config.isos}
    right = {iso: float(np.mean([predictors.by_reading.band_for(p.isonet_metric) == isonet.iso_to_metric(iso)
                                 for predictors, p in judged if p.iso == iso])) for iso in config.isos}
    probes = [p for _, p in judged]
    forged = sum(int((p.coverage >= config.forged_coverage).sum()) for p in probes if p.kind != GENUINE)
    trained = "training" if len(training) == 1 else f"training (mean of {len(training)} folds)"
    blocks = {trained: round(np.mean(training)),
              "genuine test": sum(p.rho.size for p in probes if p.kind == GENUINE), "forged test": forged}
    return ScenarioResult(config, [score_scheme(s, judged, config) for s in SCHEMES],
                          {iso: float(isonet.metric_to_iso(np.median(ms))) for iso, ms in readings.items()}, right,
                          blocks)


def scenario_report(result: ScenarioResult) -> list[str]:
    """The scenario's tables as printed lines: RMSE and detection per ISO for each scheme."""
    config, scores = result.config, result.scores
    width = max(12, *(len(s.scheme) for s in scores))
    names = " ".join(f"{s.scheme:>{width}}" for s in scores)
    processing = ("camera processing (noise reduction rising with ISO)" if config.camera_processing
                  else "plain development")
    held_out = ("the renderer's Test photos" if config.folds == 1
                else f"every bundled photo held out once ({config.folds} folds)")
    reader = ("adapted to the camera on its Train renders (fine-tuned, as adapt_camera.py does)" if config.adapt_reader
              else "as given")
    lines = [f"PRNU scenario: {config.camera}, fingerprint from {config.flat_fields} flat fields; probes: {held_out}; "
             f"ISONet {reader}; "
             f"forgeries: a region "
             f"from a {config.donor} and copy-move; {config.height}x{config.width} renders, {processing}, JPEG "
             f"{config.jpeg_quality or 'off'}; {config.block}x{config.block} blocks every {config.stride} px; blocks: "
             + ", ".join(f"{n} {k}" for k, n in result.blocks.items()),
             f"{'':30}{'RMSE of the correlation prediction':<{len(names)}} | detection of forged blocks at "
             f"{config.false_alarm:.0%} false alarm",
             f"{'ISO':>5} {'ISONet reads':>12} {'right band':>10} {names} | {names}"]
    for iso in config.isos:
        rmse = " ".join(f"{s.rmse_by_iso[iso]:{width}.4f}" for s in scores)
        detection = " ".join(f"{s.detection_by_iso[iso]:{width}.1%}" for s in scores)
        lines.append(f"{iso:>5} {result.isonet_iso_by_iso[iso]:>12.0f} {result.isonet_right_band[iso]:>10.0%} "
                     f"{rmse} | {detection}")
    lines.append(f"{'all':>5} {'':>12} {'':>10} " + " ".join(f"{s.rmse:{width}.4f}" for s in scores) + " | "
                 + " ".join(f"{s.detection:{width}.1%}" for s in scores))
    for kind in (OTHER_CAMERA, COPY_MOVE):
        lines.append(f"detection, {kind} forgeries: "
                     + ", ".join(f"{s.scheme} {s.detection_by_kind[kind]:.1%}" for s in scores))
    lines.append("false alarms measured on genuine held-out blocks: "
                 + ", ".join(f"{s.scheme} {s.false_alarm_rate:.2%}" for s in scores))
    lines.append(f"detection at {config.false_alarm:.0%} measured false alarms (one threshold on each block's "
                 "standard score, "
                 "set on the genuine held-out blocks): "
                 + ", ".join(f"{s.scheme} {s.detection_at_measured_false_alarm:.1%}" for s in scores))
    return lines


def save_scenario_figure(result: ScenarioResult, path: str | os.PathLike) -> None:
    """Predicted against measured correlation for each scheme, and RMSE per ISO."""
    plt = reports.pyplot()
    scores, isos = result.scores, result.config.isos
    fig, axes = plt.subplots(1, len(scores) + 1, figsize=(5 * (len(scores) + 1), 4.6), layout="constrained")
    low = min(min(s.predicted.min(), s.measured.min()) for s in scores)
    high = max(max(s.predicted.max(), s.measured.max()) for s in scores)
    for ax, score in zip(axes, scores):
        shown = ax.scatter(score.predicted, score.measured, c=np.log2(score.iso / 100.0), s=4, cmap="viridis",
                           vmin=0, vmax=math.log2(max(isos) / 100.0))
        ax.plot([low, high], [low, high], color="black", lw=1)
        ax.set_title(f"{score.scheme}: RMSE {score.rmse:.4f}")
        ax.set_xlabel("predicted correlation")
        ax.set_ylabel("measured correlation")
    bar = fig.colorbar(shown, ax=list(axes[:-1]))
    bar.set_ticks(np.log2(np.array(isos) / 100.0))
    bar.set_ticklabels([str(i) for i in isos])
    bar.set_label("ISO")
    for score in scores:
        axes[-1].plot(isos, [score.rmse_by_iso[i] for i in isos], marker="o", label=score.scheme)
    axes[-1].set_xscale("log", base=2)
    axes[-1].set_xticks(isos, [str(i) for i in isos])
    axes[-1].set_xlabel("ISO")
    axes[-1].set_ylabel("RMSE of the prediction")
    axes[-1].legend()
    reader = "adapted to the camera" if result.config.adapt_reader else "as given"
    fig.suptitle(f"PRNU correlation predictors on held-out renders ({result.config.camera}, "
                 f"{result.config.block}x{result.config.block} blocks; ISONet {reader})")
    reports.save_figure(fig, path)
