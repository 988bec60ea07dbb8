"""PRNU maths: camera fingerprints, their detection, block correlation maps and the correlation
predictors that localise tampering (Zeng et al.'s Fig. 7). Pure functions of arrays: files are read
by examination.py, renders made by prnu_scenario.py.

A camera's photosites differ in sensitivity by about 1%; that pattern K survives in every photo
it takes, I * K, buried in random noise. It belongs to the sensor, so every array here is in the
sensor's pixel order (image_io's sensor_order); a photo stored turned is found by trying its
quarter turns (best_turn). Its pieces:

- noise_residual: what a wavelet denoiser removes (Mihcak et al.; Lukas, Fridrich and Goljan,
  IEEE TIFS 2006): db8, 4 levels, local Wiener variance from 3..9 windows, sigma0 = 3 levels.
- estimate_fingerprint: the maximum-likelihood K = sum(W_i I_i) / sum(I_i^2) from one camera's
  images, then zero-meaned by rows and columns and Wiener-filtered in the Fourier domain.
- ncc, pce: is K in this photo? PCE > 60 is the usual camera decision.
- block_correlation: correlation of W and I * K over every block of a grid, all blocks at once
  from block sums (block_sums).
- block_features, fit_predictor: Chen, Fridrich, Goljan and Lukas (IEEE TIFS 2008) predict the
  correlation a genuine block should show from its intensity, texture and flattening; a block
  far below its prediction (a Neyman-Pearson threshold at a chosen false-alarm rate) is forged.
  The correlation falls with ISO, so a predictor per ISO band, chosen by EXIF or by ISONet's
  global estimate, may predict better than one for all. ISONet's bands are bands of its readings
  (of the images the predictors are fitted on, and of the probe), never of the truth: a reader
  biased on this camera is biased on both alike. Or, where the fitted images' ISOs are known,
  ISONet's reading weighs the true-ISO predictors (WeightedPredictor, ReadingWeights): a block is
  flagged only where it is unlikely at every ISO that images read like the probe were shot at.
- camera_prnu: a camera's fingerprint and all those predictors from its images (CameraPrnu), each
  image's blocks measured against the fingerprint of the other scenes' images (scene_groups).
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pywt
import scipy.fft
from scipy.sparse.csgraph import connected_components
from scipy.special import log_ndtr, ndtri_exp
from scipy.stats import norm

from camera_noise import LUMA_WEIGHTS, in_levels, luma_levels  # 8-bit levels, where SIGMA0 is defined
from isonet import iso_to_metric

SIGMA0 = 3.0  # the denoiser's assumed noise std, in 8-bit levels (Lukas et al.)
WIENER_WINDOWS = (3, 5, 7, 9)
WAVELET = "db8"
LEVELS = 4

PCE_THRESHOLD = 60.0  # the usual camera-identification decision (Goljan, Fridrich and Filler 2009)
PCE_EXCLUDE = 5  # the peak's neighbourhood (11x11) left out of the correlation energy

# Chen et al. 2008's predictor features and their constants: the intensity attenuation's knee
# Ic and width tau (saturation destroys PRNU), and the "flat" test std(3x3) < c * I.
ATTENUATION_KNEE = 250.0
ATTENUATION_TAU = 6.0
FLAT_C = 0.03
BLOCK = 128  # Chen et al.'s block size
FALSE_ALARM = 0.01
MIN_TAIL_BLOCKS = 20  # genuine blocks beyond a threshold needed to read it off their own errors
# This process's share of the cores for the FFTs: torchrun's ranks on one machine split them.
FFT_WORKERS = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
ONE_SCENE_WARNING = ("every fingerprint photo shows one scene, so the predictors expect more correlation than a "
                     "new scene shows and the forgery map flags far more than its rate: add photos of other scenes")
THUMBNAIL = (32, 24)  # width, height of the thumbnails that tell one scene from another
SAME_SCENE = 0.9  # thumbnails of shots of one scene correlate above this; of other scenes, below


# ---------------------------------------------------------------------------------------------
# Noise residual
# ---------------------------------------------------------------------------------------------
def noise_kept_by_wiener(coeffs: np.ndarray, noise_var: float, windows: Sequence[int] = WIENER_WINDOWS) -> np.ndarray:
    """The part of `coeffs` a local Wiener filter takes for noise: c * s0^2 / (s^2 + s0^2).

    The signal variance s^2 is the smallest over the windows of max(0, local mean of c^2 - s0^2)
    (Mihcak et al.'s MAP estimate): the smallest window that still looks flat wins, so edges keep
    their detail out of the residual."""
    energy = coeffs * coeffs
    local = cv2.boxFilter(energy, -1, (windows[0], windows[0]), borderType=cv2.BORDER_REFLECT)
    for w in windows[1:]:
        np.minimum(local, cv2.boxFilter(energy, -1, (w, w), borderType=cv2.BORDER_REFLECT), out=local)
    signal_var = np.maximum(local - noise_var, 0.0)
    return coeffs * (noise_var / (signal_var + noise_var))


def noise_residual(grey: np.ndarray, sigma0: float = SIGMA0, wavelet: str = WAVELET,
                   levels: int = LEVELS) -> np.ndarray:
    """W = I - F(I) of an HxW image in 8-bit levels, F the wavelet-domain Wiener denoiser.

    The transform is linear and reconstructs perfectly, so W is the inverse transform of what the
    filter removes from each detail subband, with the approximation set to zero. Borders are
    mirrored (a wrap-around would put a false edge there). Fewer levels on images too small for
    `levels` (PyWavelets' maximum for the size)."""
    grey = np.asarray(grey, np.float32)
    h, w = grey.shape
    levels = max(1, min(levels, pywt.dwt_max_level(min(h, w), wavelet)))
    coeffs = pywt.wavedec2(grey, wavelet, mode="symmetric", level=levels)
    noise_var = sigma0 * sigma0
    details = [tuple(noise_kept_by_wiener(d, noise_var) for d in band) for band in coeffs[1:]]
    residual = pywt.waverec2([np.zeros_like(coeffs[0]), *details], wavelet, mode="symmetric")
    return residual[:h, :w].astype(np.float32)


@dataclass
class Observation:
    """One image as PRNU sees it: its luma I and its noise residual W (8-bit levels, HxW)."""

    intensity: np.ndarray
    residual: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.intensity.shape


def observe(img: np.ndarray, channels: str = "luma") -> Observation:
    """The residual of the luma ('luma', one denoising) or the luma-weighted sum of the three
    channels' residuals ('rgb', three denoisings: PRNU sits in every photosite, so each channel
    adds evidence)."""
    if channels not in ("luma", "rgb"):
        raise ValueError(f"channels must be 'luma' or 'rgb', got {channels!r}")
    intensity = luma_levels(img)
    if channels == "luma" or img.ndim == 2:
        return Observation(intensity, noise_residual(intensity))
    levels = in_levels(img)
    planes = [noise_residual(levels[:, :, c]) for c in range(3)]
    return Observation(intensity, sum(wc * p for wc, p in zip(LUMA_WEIGHTS, planes)).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Fingerprint
# ---------------------------------------------------------------------------------------------
def zero_mean_rows_and_columns(k: np.ndarray) -> np.ndarray:
    """Row and column means removed in each of the four 2x2 (Bayer) sub-lattices: readout
    artefacts and demosaicing's periodic traces are common to many cameras, not a sensor's own."""
    out = np.array(k, np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            lattice = out[dy::2, dx::2]
            lattice -= lattice.mean(axis=0, keepdims=True)
            lattice -= lattice.mean(axis=1, keepdims=True)
    return out


def flatten_spectrum(k: np.ndarray) -> np.ndarray:
    """Wiener filtering in the Fourier domain: spectral magnitudes standing above their
    neighbourhood (periodic patterns: JPEG blocks, demosaicing) are brought down to the flat
    level a white PRNU has, phases kept."""
    spectrum = scipy.fft.rfft2(k, workers=FFT_WORKERS)
    magnitude = (np.abs(spectrum) / math.sqrt(k.size)).astype(np.float32)
    flat_level = float(np.mean(np.square(k, dtype=np.float64)))  # Parseval: the mean of magnitude^2
    kept = noise_kept_by_wiener(magnitude, flat_level)
    gain = np.divide(kept, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
    return scipy.fft.irfft2(spectrum * gain, s=k.shape, workers=FFT_WORKERS).astype(np.float32)


def clean_fingerprint(k: np.ndarray) -> np.ndarray:
    return flatten_spectrum(zero_mean_rows_and_columns(k))


def fingerprint_sums(observations: Iterable[Observation]) -> tuple[np.ndarray, np.ndarray]:
    """(sum of W_i I_i, sum of I_i^2): the maximum-likelihood estimate's numerator and denominator."""
    numerator = denominator = None
    for obs in observations:
        if numerator is None:
            numerator, denominator = np.zeros(obs.shape, np.float64), np.zeros(obs.shape, np.float64)
        elif obs.shape != numerator.shape:
            raise ValueError(f"fingerprint images differ in size: {obs.shape} and {numerator.shape}")
        intensity = np.asarray(obs.intensity, np.float32)  # OpenCV's accumulators take one type
        cv2.accumulateProduct(np.asarray(obs.residual, np.float32), intensity, numerator)  # products in float64
        cv2.accumulateSquare(intensity, denominator)
    if numerator is None:
        raise ValueError("a fingerprint needs at least one image")
    return numerator, denominator


def fingerprint_from_sums(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """K = numerator / denominator (0 where every image was black), cleaned."""
    k = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return clean_fingerprint(k.astype(np.float32))


def estimate_fingerprint(observations: Iterable[Observation]) -> np.ndarray:
    """The camera's PRNU K (HxW float32) from observations of its images, all of one size."""
    return fingerprint_from_sums(*fingerprint_sums(observations))


def expected_prnu(obs: Observation, fingerprint: np.ndarray) -> np.ndarray:
    """I * K: the PRNU term the residual of a genuine image contains."""
    if obs.shape != fingerprint.shape:
        raise ValueError(f"image {obs.shape[1]}x{obs.shape[0]} and fingerprint "
                         f"{fingerprint.shape[1]}x{fingerprint.shape[0]} differ in size")
    return obs.intensity * fingerprint


# ---------------------------------------------------------------------------------------------
# Detection statistics
# ---------------------------------------------------------------------------------------------
def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two same-shaped signals (0 when either is constant)."""
    a0 = np.asarray(a, np.float64).ravel()
    b0 = np.asarray(b, np.float64).ravel()
    a0, b0 = a0 - a0.mean(), b0 - b0.mean()
    norm_ab = math.sqrt(float(a0 @ a0) * float(b0 @ b0))
    return float(a0 @ b0) / norm_ab if norm_ab > 0 else 0.0


@dataclass(frozen=True)
class Pce:
    value: float  # signed peak^2 / energy of the cross-correlation away from the peak
    shift: tuple[int, int]  # (dy, dx) of the peak: a is b moved by it, circularly
    peak: float


def circular_cross_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """c[s] = sum_x a[x] b[x - s] for every circular shift s, of the zero-meaned signals, by FFT."""
    a0 = np.asarray(a, np.float32) - np.float32(np.mean(a))
    b0 = np.asarray(b, np.float32) - np.float32(np.mean(b))
    spectra = scipy.fft.rfft2(a0, workers=FFT_WORKERS) * np.conj(scipy.fft.rfft2(b0, workers=FFT_WORKERS))
    return scipy.fft.irfft2(spectra, s=a0.shape, workers=FFT_WORKERS)


def pce(a: np.ndarray, b: np.ndarray, search: int = 0, exclude: int = PCE_EXCLUDE) -> Pce:
    """Peak-to-correlation energy: the peak of the circular cross-correlation among shifts
    |dy|, |dx| <= `search` (0: aligned images only), squared and signed, over the mean square of
    the correlation outside the (2*exclude+1)^2 square around the peak."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"PCE of differently shaped signals {np.shape(a)} and {np.shape(b)}")
    xc = circular_cross_correlation(a, b)
    h, w = xc.shape
    offsets = np.arange(-search, search + 1)
    window = xc[np.ix_(offsets % h, offsets % w)]
    iy, ix = np.unravel_index(np.argmax(window), window.shape)
    dy, dx = int(offsets[iy]), int(offsets[ix])
    peak = float(window[iy, ix])
    around = np.arange(-exclude, exclude + 1)
    near = xc[np.ix_(np.unique((dy + around) % h), np.unique((dx + around) % w))]
    total = float(np.sum(np.square(xc, dtype=np.float64)))
    energy = (total - float(np.sum(np.square(near, dtype=np.float64)))) / (xc.size - near.size)
    return Pce(math.copysign(peak * peak / energy, peak) if energy > 0 else 0.0, (dy, dx), peak)


# ---------------------------------------------------------------------------------------------
# Block maps
# ---------------------------------------------------------------------------------------------
def block_grid(height: int, width: int, block: int, stride: int) -> tuple[int, int]:
    """Rows and columns of `block` x `block` windows every `stride` pixels inside the image;
    [i, j] is the window whose top-left corner is (stride*i, stride*j), as in ISO maps."""
    if block < 2 or stride < 1:
        raise ValueError(f"block {block} and stride {stride} must be at least 2 and 1")
    if height < block or width < block:
        raise ValueError(f"a {width}x{height} image holds no {block}x{block} block")
    return (height - block) // stride + 1, (width - block) // stride + 1


def block_sums(plane: np.ndarray, block: int, stride: int) -> np.ndarray:
    """The sum of `plane` over every block of the grid (float64): from the sums of its stride x
    stride cells where the stride divides the block (the usual half-block step: half the work),
    else from an integral image of the whole plane."""
    rows, cols = block_grid(*plane.shape, block, stride)
    if block % stride == 0:
        k = block // stride
        height, width = (rows + k - 1) * stride, (cols + k - 1) * stride
        cells = np.asarray(plane, np.float32)[:height, :width].reshape(height // stride, stride, -1, stride)
        table = np.zeros((rows + k, cols + k))
        table[1:, 1:] = cells.sum(axis=(1, 3), dtype=np.float64).cumsum(0).cumsum(1)
        top, left = np.arange(rows), np.arange(cols)
        step = k
    else:
        table = cv2.integral(np.asarray(plane, np.float32), sdepth=cv2.CV_64F)
        top, left = np.arange(rows) * stride, np.arange(cols) * stride
        step = block
    return (table[np.ix_(top + step, left + step)] - table[np.ix_(top, left + step)]
            - table[np.ix_(top + step, left)] + table[np.ix_(top, left)])


def block_means(plane: np.ndarray, block: int, stride: int) -> np.ndarray:
    return block_sums(plane, block, stride) / (block * block)


def block_correlation(x: np.ndarray, y: np.ndarray, block: int = BLOCK, stride: int = BLOCK // 2) -> np.ndarray:
    """Pearson correlation of x and y over every block: (Sxy - Sx Sy / n) / sqrt((Sxx - Sx^2/n)
    (Syy - Sy^2/n)), each sum over every block at once (block_sums), so any stride costs five
    passes over the image. 0 where either is constant over the block."""
    n = block * block
    sx, sy = block_sums(x, block, stride), block_sums(y, block, stride)
    sxy = block_sums(x * y, block, stride) - sx * sy / n
    sxx = block_sums(x * x, block, stride) - sx * sx / n
    syy = block_sums(y * y, block, stride) - sy * sy / n
    denominator = np.sqrt(np.maximum(sxx, 0) * np.maximum(syy, 0))
    return np.divide(sxy, denominator, out=np.zeros_like(sxy), where=denominator > 1e-12 * n)


def block_coverage(mask: np.ndarray, block: int, stride: int) -> np.ndarray:
    """The share of each block inside a boolean mask (a known forged region)."""
    return block_means(mask.astype(np.float32), block, stride)


# ---------------------------------------------------------------------------------------------
# The correlation predictor (Chen, Fridrich, Goljan and Lukas 2008)
# ---------------------------------------------------------------------------------------------
FEATURES = ("intensity", "texture", "flattening", "texture x intensity")


def local_variance(x: np.ndarray, window: int) -> np.ndarray:
    mean = cv2.boxFilter(x, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(x * x, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    return np.maximum(mean_sq - mean * mean, 0.0)


def attenuation(intensity: np.ndarray) -> np.ndarray:
    """How much PRNU a pixel of this luma can show: I / Ic below the knee Ic (PRNU is
    multiplicative), then falling to nothing as it saturates."""
    below = intensity / np.float32(ATTENUATION_KNEE)
    above = np.exp(-np.square(intensity - np.float32(ATTENUATION_KNEE)) / np.float32(ATTENUATION_TAU))
    return np.where(intensity < ATTENUATION_KNEE, below, above).astype(np.float32)


def texture_weight(intensity: np.ndarray) -> np.ndarray:
    """1 / (1 + local variance (5x5) of the high-passed image, here the image minus its 3x3
    mean): texture leaks into the residual and drowns the PRNU there."""
    high_pass = intensity - cv2.boxFilter(intensity, -1, (3, 3), borderType=cv2.BORDER_REFLECT)
    return 1.0 / (1.0 + local_variance(high_pass, 5))


def flat_pixels(intensity: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 std is below FLAT_C of their value: flattened (saturated, or smoothed by
    the camera), where PRNU is lost."""
    return (np.sqrt(local_variance(intensity, 3)) < FLAT_C * intensity).astype(np.float32)


def block_features(intensity: np.ndarray, block: int = BLOCK, stride: int = BLOCK // 2) -> np.ndarray:
    """rows x cols x 4: each block's mean intensity attenuation, texture weight, share of flat
    pixels and attenuation x texture weight (FEATURES)."""
    intensity = np.asarray(intensity, np.float32)
    att, tex = attenuation(intensity), texture_weight(intensity)
    planes = (att, tex, flat_pixels(intensity), att * tex)
    return np.stack([block_means(p, block, stride) for p in planes], axis=-1)


@dataclass(frozen=True)
class CorrelationPredictor:
    """rho_hat = coef[0] + coef[1:] . features, and the spread of genuine blocks around it."""

    coef: np.ndarray  # intercept, then one weight per FEATURES entry
    residual_mean: float
    residual_std: float
    samples: int
    errors: np.ndarray = field(repr=False)  # the genuine blocks' rho - rho_hat, sorted

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.coef[0] + features @ self.coef[1:]

    def threshold(self, false_alarm: float = FALSE_ALARM) -> float:
        """Neyman-Pearson: flag a block when rho - rho_hat falls below this, which genuine blocks do
        with probability `false_alarm`. Read off the genuine blocks' errors (from photos left out
        of the fit, see fit_predictor) where at least MIN_TAIL_BLOCKS of them lie below it, else off
        a Gaussian fit: errors with a heavier tail than a Gaussian's get the rate asked for, not
        more."""
        if false_alarm * len(self.errors) >= MIN_TAIL_BLOCKS:
            return float(np.quantile(self.errors, false_alarm))
        return self.residual_mean + self.residual_std * float(norm.ppf(false_alarm))

    def forged(self, rho: np.ndarray, features: np.ndarray, false_alarm: float = FALSE_ALARM) -> np.ndarray:
        return rho - self.predict(features) < self.threshold(false_alarm)

    def standard_score(self, rho: np.ndarray, features: np.ndarray) -> np.ndarray:
        """rho - rho_hat in units of the spread of genuine errors, so that blocks judged by different
        predictors can share one threshold."""
        return (rho - self.predict(features) - self.residual_mean) / self.residual_std


def fit_predictor(features: np.ndarray, rho: np.ndarray, groups: np.ndarray | None = None) -> CorrelationPredictor:
    """Least squares of measured correlations of genuine blocks (n) on their features (n x 4).
    With `groups` (the photo, or scene, of each block: two or more) the errors behind the threshold
    are each block's under a predictor fitted without its group: a new photo's blocks stray further
    from the prediction than the fitted photos' own, and a threshold read off in-sample errors lets
    through more false alarms than it promises."""
    features = np.asarray(features, np.float64).reshape(-1, len(FEATURES))
    rho = np.asarray(rho, np.float64).ravel()
    if len(rho) <= features.shape[1] + 1:
        raise ValueError(f"{len(rho)} blocks cannot fit {features.shape[1] + 1} coefficients")
    design = np.column_stack([np.ones(len(rho)), features])
    coef, *_ = np.linalg.lstsq(design, rho, rcond=None)
    errors, ddof = rho - design @ coef, design.shape[1]
    if groups is not None and len(np.unique(groups)) > 1:
        errors, ddof = held_out_errors(design, rho, np.asarray(groups).ravel()), 0
    return CorrelationPredictor(coef, float(errors.mean()), float(errors.std(ddof=ddof)), len(rho), np.sort(errors))


def held_out_errors(design: np.ndarray, rho: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """rho - prediction of each block by the least-squares fit of the other groups' blocks, from the
    normal equations of all blocks less those of the group (one small solve per group)."""
    gram, moment = design.T @ design, design.T @ rho
    errors = np.empty_like(rho)
    for group in np.unique(groups):
        inside = groups == group
        part = design[inside]
        coef = np.linalg.lstsq(gram - part.T @ part, moment - part.T @ rho[inside], rcond=None)[0]
        errors[inside] = rho[inside] - part @ coef
    return errors


@dataclass
class BandedPredictors:
    """One predictor per ISO band (keyed by ISO metric) and one fitted on every band together."""

    bands: dict[float, CorrelationPredictor]
    single: CorrelationPredictor

    def band_for(self, metric: float | None) -> float | None:
        """The band nearest in stops to `metric` (an EXIF ISO's or ISONet's); None for the single
        predictor: no metric, or no band has a predictor of its own."""
        if metric is None or not self.bands:
            return None
        return nearest_band(self.bands, metric)

    def for_metric(self, metric: float | None) -> CorrelationPredictor:
        band = self.band_for(metric)
        return self.single if band is None else self.bands[band]

    def weighted(self, weights: dict[float, float]) -> WeightedPredictor:
        """The bands' predictors mixed by `weights` (ISO metric band: weight), renormalised over the
        bands that have a predictor; the single predictor where none has."""
        held = {band: w for band, w in weights.items() if band in self.bands and w > 0}
        total = sum(held.values())
        if not held:
            return WeightedPredictor([(None, 1.0, self.single)])
        return WeightedPredictor([(band, w / total, self.bands[band]) for band, w in sorted(held.items())])


@dataclass
class WeightedPredictor:
    """Predictors of several ISO bands at once, each weighted by the chance that the probe was shot
    at its ISO: where the ISO is uncertain, the expected correlation is their weighted mean, and a
    genuine block's error follows the mixture of their error laws (Gaussian, each with its band's
    spread), so a block is flagged only where it is unlikely under every ISO the probe may have."""

    parts: list[tuple[float | None, float, CorrelationPredictor]]  # (ISO band, weight, predictor); weights sum to 1

    @property
    def samples(self) -> int:
        return sum(predictor.samples for *_, predictor in self.parts)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return sum(weight * predictor.predict(features) for _, weight, predictor in self.parts)

    def standard_score(self, rho: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The normal quantile of the mixture's probability of an error this low: a single part's
        standard score, and comparable with one."""
        log_p = np.logaddexp.reduce([math.log(weight) + log_ndtr(predictor.standard_score(rho, features))
                                     for _, weight, predictor in self.parts], axis=0)
        return ndtri_exp(log_p)

    def forged(self, rho: np.ndarray, features: np.ndarray, false_alarm: float = FALSE_ALARM) -> np.ndarray:
        return self.standard_score(rho, features) < norm.ppf(false_alarm)


@dataclass
class ReadingWeights:
    """How ISONet read training images of known ISO: for each whole-stop band of its reading, how
    many images of each true ISO band it put there. A probe's reading then weighs the true-ISO
    predictors by how often images read like it were shot at each ISO."""

    counts: dict[float, dict[float, int]]  # reading band: {true ISO band: images}

    @classmethod
    def of(cls, pairs: Iterable[tuple[float, float]]) -> ReadingWeights:
        """From (true ISO band, as the predictors are keyed; ISONet's reading) of each training image."""
        counts: dict[float, dict[float, int]] = {}
        for truth, reading in pairs:
            band = counts.setdefault(reading_band(reading), {})
            band[truth] = band.get(truth, 0) + 1
        return cls(counts)

    def weights(self, metric: float) -> dict[float, float]:
        """Each true ISO band's share among the training images read in `metric`'s band (or the
        nearest band that holds any)."""
        held = self.counts[nearest_band(self.counts, reading_band(metric))]
        total = sum(held.values())
        return {band: n / total for band, n in held.items()}


def nearest_band(bands: Iterable[float], metric: float) -> float:
    return min(bands, key=lambda band: abs(band - metric))


Samples = dict[float | None, tuple[np.ndarray, np.ndarray, np.ndarray]]  # band: features, rho, photo of each block
MIN_BAND_BLOCKS = 50  # fewer genuine blocks than this and a band of readings gets no predictor of its own


def stack_samples(parts: dict[float | None, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> Samples:
    """Each band's (features, rho, photo) arrays of its images joined into one of each."""
    return {band: tuple(np.concatenate([part[i] for part in images]) for i in range(3))
            for band, images in parts.items()}


def reading_band(metric: float) -> float:
    """The whole-stop band of an ISO metric (an EXIF ISO's or ISONet's reading)."""
    return float(round(metric))


def fit_banded(samples: Samples, min_blocks: int = 0) -> BandedPredictors:
    """Predictors from genuine blocks' (features, rho, photo) per ISO metric band, and one from all
    of them, each threshold from scenes left out of its fit (fit_predictor); blocks under None, in
    a band with fewer than `min_blocks`, or in a band of one photo (no photo to leave out: its
    errors would be the fitted photo's own, and its threshold far too narrow for any other) only
    feed the single one."""
    features, rho, groups = (np.concatenate([part[k] for part in samples.values()]) for k in range(3))
    enough = max(min_blocks, len(FEATURES) + 2)
    bands = {band: fit_predictor(f, r, g) for band, (f, r, g) in samples.items()
             if band is not None and r.size >= enough and len(np.unique(g)) > 1}
    return BandedPredictors(bands, fit_predictor(features, rho, groups))


def measure_blocks(obs: Observation, fingerprint: np.ndarray, block: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(rho, features) of every block: the residual's correlation with I * K (rows x cols) and
    the predictor's features (rows x cols x 4)."""
    rho = block_correlation(obs.residual, expected_prnu(obs, fingerprint), block, stride)
    return rho, block_features(obs.intensity, block, stride)


# ---------------------------------------------------------------------------------------------
# A camera's images: turns, one orientation, the fingerprint and its predictors
# ---------------------------------------------------------------------------------------------
def turned(obs: Observation, turn: int) -> Observation:
    """`obs` turned by `turn` quarter turns anticlockwise (np.rot90's k)."""
    return Observation(np.ascontiguousarray(np.rot90(obs.intensity, turn)),
                       np.ascontiguousarray(np.rot90(obs.residual, turn)))


def turns_fitting(shape: tuple[int, int], target: tuple[int, int]) -> list[int]:
    """The quarter turns that give an HxW grid of `shape` the `target` shape (none: another size)."""
    return [turn for turn in range(4) if (shape if turn % 2 == 0 else shape[::-1]) == tuple(target)]


def best_turn(obs: Observation, fingerprint: np.ndarray,
              turns: Sequence[int] | None = None) -> tuple[int, dict[int, Pce]]:
    """The quarter turn of `obs` (among `turns`, else every one its shape allows) whose PCE against
    the fingerprint is highest, and the PCE of each turn tried. Photos are read in the sensor's
    order, but some phones store them turned upright and record no orientation."""
    tried = {turn: pce(t.residual, expected_prnu(t, fingerprint))
             for turn in (turns_fitting(obs.shape, fingerprint.shape) if turns is None else turns)
             for t in [turned(obs, turn)]}
    if not tried:
        raise ValueError(f"an image of {obs.shape[1]}x{obs.shape[0]} fits no turn of a "
                         f"{fingerprint.shape[1]}x{fingerprint.shape[0]} fingerprint")
    return max(tried, key=lambda turn: tried[turn].value), tried


def describe_turn(turn: int) -> str:
    return ("as stored", "turned 90 degrees anticlockwise", "turned 180 degrees", "turned 90 degrees clockwise")[turn]


@dataclass
class CameraImage:
    """One of a camera's images as its fingerprint and predictors use it."""

    path: Path
    observation: Observation  # in the fingerprint's orientation
    exif_iso: int | None
    reading: float | None  # ISONet's global ISO metric, where a band choice needs it
    turn: int = 0  # quarter turns from its pixels in the sensor's order to the fingerprint's orientation


def align_camera_images(images: Sequence[CameraImage]) -> tuple[list[CameraImage], list[str]]:
    """The images in one orientation, the shape most of them have: each of the other shape (stored
    turned upright, with no orientation recorded) turned a quarter either way, whichever the
    fingerprint of the others finds at the higher PCE, and left out, with a line, where neither
    reaches PCE_THRESHOLD. Square images are taken as they are."""
    shapes = [image.observation.shape for image in images]
    if len(set(shapes)) < 2:
        return list(images), []
    shape = max(set(shapes), key=lambda s: (shapes.count(s), s))
    kept = [image for image in images if image.observation.shape == shape]
    others = [image for image in images if image.observation.shape != shape]
    if len(kept) < 2:
        return kept, [f"{image.path}: stored turned against the other images, too few of which ({len(kept)}) "
                      "to tell which way" for image in others]
    reference = estimate_fingerprint(image.observation for image in kept)
    failed = []
    for image in others:
        turn, tried = best_turn(image.observation, reference, (1, 3))
        if tried[turn].value > PCE_THRESHOLD:
            kept.append(dataclasses.replace(image, observation=turned(image.observation, turn), turn=turn))
        else:
            failed.append(f"{image.path}: stored turned against the other images, and neither quarter turn matches "
                          f"their fingerprint (PCE {tried[1].value:.1f} / {tried[3].value:.1f})")
    return kept, failed


@dataclass
class CameraPrnu:
    """A camera's PRNU fingerprint and its correlation predictors, fitted on the same images (each
    against the fingerprint of the other scenes' images): banded by EXIF ISO (images without one
    feed the single predictor only) and by ISONet's readings, and the reading weights that let a
    reading weigh the EXIF-ISO bands."""

    fingerprint: np.ndarray
    by_exif: BandedPredictors
    by_reading: BandedPredictors | None
    reading_weights: ReadingWeights | None
    block: int
    stride: int
    matches: np.ndarray | None = None  # each fitted image's PCE against the other scenes' fingerprint
    one_scene: bool = False  # every fitted image shows one scene: its remnants inflate the predicted correlations

    def strangers(self) -> list[int]:
        """The fitted images whose PCE against the other scenes' fingerprint stays below PCE_THRESHOLD:
        of another sensor (another unit of the model, say), or too dark or textured to tell."""
        return [] if self.matches is None else [k for k, value in enumerate(self.matches) if value <= PCE_THRESHOLD]

    def predictor(self, band_by: str, reading: float | None,
                  exif_iso: int | None) -> tuple[CorrelationPredictor | WeightedPredictor, float | None]:
        """The predictor `band_by` picks for a probe ISONet read as `reading` (ISO metric) with EXIF
        ISO `exif_iso`, and its band (None: one predictor for all, or weighted bands)."""
        if band_by == "single":
            return self.by_exif.single, None
        if band_by == "exif":
            band = self.by_exif.band_for(None if exif_iso is None else iso_to_metric(exif_iso))
            return self.by_exif.for_metric(band), band
        if reading is None:
            raise ValueError(f"--band {band_by} needs ISONet's reading of the probe")
        if band_by == "isonet" and self.by_reading is not None:
            band = self.by_reading.band_for(reading)
            return self.by_reading.for_metric(band), band
        if band_by == "isonet_weighted" and self.reading_weights is not None:
            return self.by_exif.weighted(self.reading_weights.weights(reading)), None
        raise ValueError(f"--band {band_by}: the camera's images were not read by ISONet"
                         + (" with EXIF ISOs" if band_by == "isonet_weighted" else ""))

    def to_arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(the fingerprint, every predictor and setting as named arrays): what a profile stores."""
        arrays = {"block": np.array(self.block), "stride": np.array(self.stride)}
        if self.matches is not None:
            arrays["matches"] = self.matches
        arrays["one_scene"] = np.array(self.one_scene)
        for name, banded in (("exif", self.by_exif), ("reading", self.by_reading)):
            if banded is not None:
                for band, predictor in [("single", banded.single), *banded.bands.items()]:
                    arrays.update(predictor_arrays(f"{name}/{band}", predictor))
        if self.reading_weights is not None:
            arrays["reading_weights"] = np.array([(reading, truth, n) for reading, held in
                                                  self.reading_weights.counts.items() for truth, n in held.items()])
        return self.fingerprint, arrays

    @classmethod
    def from_arrays(cls, fingerprint: np.ndarray, arrays: dict[str, np.ndarray]) -> CameraPrnu:
        def banded(name: str) -> BandedPredictors | None:
            keys = {key.split("/")[1] for key in arrays if key.startswith(f"{name}/")}
            if not keys:
                return None
            bands = {float(band): array_predictor(arrays, f"{name}/{band}") for band in keys - {"single"}}
            return BandedPredictors(bands, array_predictor(arrays, f"{name}/single"))

        counts: dict[float, dict[float, int]] = {}
        for reading, truth, n in arrays.get("reading_weights", np.empty((0, 3))):
            counts.setdefault(float(reading), {})[float(truth)] = int(n)
        return cls(np.asarray(fingerprint, np.float32), banded("exif"), banded("reading"),
                   ReadingWeights(counts) if counts else None, int(arrays["block"]), int(arrays["stride"]),
                   arrays.get("matches"), bool(arrays.get("one_scene", False)))


def predictor_arrays(prefix: str, predictor: CorrelationPredictor) -> dict[str, np.ndarray]:
    return {f"{prefix}/coef": predictor.coef, f"{prefix}/errors": predictor.errors,
            f"{prefix}/stats": np.array([predictor.residual_mean, predictor.residual_std, predictor.samples])}


def array_predictor(arrays: dict[str, np.ndarray], prefix: str) -> CorrelationPredictor:
    mean, std, samples = arrays[f"{prefix}/stats"]
    return CorrelationPredictor(np.asarray(arrays[f"{prefix}/coef"], float), float(mean), float(std), int(samples),
                                np.asarray(arrays[f"{prefix}/errors"], float))


def scene_thumbnail(intensity: np.ndarray) -> np.ndarray:
    """The image shrunk to THUMBNAIL, zero-mean and of unit norm: its scene without its noise."""
    thumb = cv2.resize(np.asarray(intensity, np.float32), THUMBNAIL, interpolation=cv2.INTER_AREA).ravel()
    thumb -= thumb.mean()
    norm_ = float(np.linalg.norm(thumb))
    return thumb / norm_ if norm_ > 0 else thumb


def scene_groups(intensities: Sequence[np.ndarray]) -> np.ndarray:
    """A label per image, shared by images whose thumbnails correlate above SAME_SCENE (directly or
    through others): one scene shot several times, as a series on a tripod or a burst."""
    thumbs = np.stack([scene_thumbnail(i) for i in intensities])
    return connected_components(thumbs @ thumbs.T > SAME_SCENE, directed=False)[1]


def held_out_blocks(images: Sequence[CameraImage], numerator: np.ndarray, denominator: np.ndarray, scenes: np.ndarray,
                    block: int, stride: int) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[float]]:
    """Genuine blocks to fit predictors on, (features, rho, scene) of each image, measured against the
    fingerprint of the images of other scenes: with itself in it a block's correlation is biased up,
    and so it is with other shots of its scene in it (the scene's remnants in their residuals
    correlate with its own), more than a probe's ever is. Each image's PCE against that fingerprint
    says whether it shares the others' sensor at all."""
    blocks: list = [None] * len(images)
    matches = [0.0] * len(images)
    for scene in np.unique(scenes):
        members = np.flatnonzero(scenes == scene)
        own_numerator, own_denominator = fingerprint_sums(images[k].observation for k in members)
        others = fingerprint_from_sums(numerator - own_numerator, denominator - own_denominator)
        for k in members:
            obs = images[k].observation
            rho, features = measure_blocks(obs, others, block, stride)
            blocks[k] = (features.reshape(-1, len(FEATURES)), rho.ravel(), np.full(rho.size, scene))
            matches[k] = pce(obs.residual, expected_prnu(obs, others)).value
    return blocks, matches


def camera_prnu(images: Sequence[CameraImage], block: int = BLOCK, stride: int = BLOCK // 2) -> CameraPrnu:
    """The fingerprint of `images` (two or more, aligned) and predictors fitted on their blocks, each
    image's blocks against the fingerprint of the other scenes' images. Where they all show one
    scene, each image is left out alone, and the scene leaks into its correlations (one_scene)."""
    numerator, denominator = fingerprint_sums(image.observation for image in images)
    scenes = scene_groups([image.observation.intensity for image in images])
    one_scene = len(np.unique(scenes)) == 1
    blocks, matches = held_out_blocks(images, numerator, denominator, np.arange(len(images)) if one_scene else scenes,
                                      block, stride)
    exif_bands = [None if i.exif_iso is None else reading_band(iso_to_metric(i.exif_iso)) for i in images]
    by_exif: dict[float | None, list] = {}
    by_reading: dict[float | None, list] = {}
    for image, band, part in zip(images, exif_bands, blocks):
        by_exif.setdefault(band, []).append(part)
        by_reading.setdefault(None if image.reading is None else reading_band(image.reading), []).append(part)
    read = all(image.reading is not None for image in images)
    weighed = [(band, image.reading) for band, image in zip(exif_bands, images)
               if band is not None and image.reading is not None]
    return CameraPrnu(fingerprint_from_sums(numerator, denominator), fit_banded(stack_samples(by_exif)),
                      fit_banded(stack_samples(by_reading), MIN_BAND_BLOCKS) if read else None,
                      ReadingWeights.of(weighed) if weighed else None, block, stride, np.array(matches), one_scene)
