"""PRNU, the paper's second application: camera fingerprints and tampering localisation with
correlation predictors chosen by ISO (Zeng et al.'s Fig. 7).

A camera's photosites differ in sensitivity by about 1%; that pattern K survives in every photo
it takes, I * K, buried in random noise. Its pieces:

- noise_residual: what a wavelet denoiser removes (Mihcak et al.; Lukas, Fridrich and Goljan,
  IEEE TIFS 2006): db8, 4 levels, local Wiener variance from 3..9 windows, sigma0 = 3 levels.
- estimate_fingerprint: the maximum-likelihood K = sum(W_i I_i) / sum(I_i^2) from one camera's
  images, then zero-meaned by rows and columns and Wiener-filtered in the Fourier domain.
- ncc, pce: is K in this photo? PCE > 60 is the usual camera decision.
- block_correlation: correlation of W and I * K over every block of a grid, all blocks at once
  from integral images.
- block_features, fit_predictor: Chen, Fridrich, Goljan and Lukas (IEEE TIFS 2008) predict the
  correlation a genuine block should show from its intensity, texture and flattening; a block
  far below its prediction (a Neyman-Pearson threshold at a chosen false-alarm rate) is forged.
  The correlation falls with ISO, so a predictor per ISO band, chosen by EXIF or by ISONet's
  global estimate, may predict better than one for all: run_scenario measures it on renders.
  ISONet's bands are bands of its readings (of the images the predictors are fitted on, and of
  the probe), never of the truth: a reader biased on this camera is biased on both alike.
  Or, where the fitted images' ISOs are known, ISONet's reading weighs the true-ISO predictors
  (WeightedPredictor, ReadingWeights): a block is flagged only where it is unlikely at every ISO
  that images read like the probe were shot at.
- adapted_reader: the images that fit ISO-specific predictors come with their ISO, so they can
  first adapt ISONet to the camera's processing (adapt_camera's fine-tune), as the scenario does.
  The reading weights then come from readers adapted without each image's photo
  (cross_fitted_readings): they must tell how a photo the reader never saw, a probe, is read.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import pywt
from scipy.special import log_ndtr, ndtri_exp
from scipy.stats import norm

import adapt_camera
import camera_noise
import dataset
import image_io
import isonet
import reports
from isonet import ISONetError

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


# ---------------------------------------------------------------------------------------------
# Noise residual
# ---------------------------------------------------------------------------------------------
def in_levels(img: np.ndarray) -> np.ndarray:
    """uint8, or float in [0, 1] as image_io.read_image gives -> float32 in 8-bit levels, where the
    denoiser's SIGMA0 is defined."""
    return img.astype(np.float32) * np.float32(1.0 if img.dtype == np.uint8 else 255.0)


def luma_levels(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB or HxW (see in_levels) -> HxW float32 luma in 8-bit levels."""
    levels = in_levels(img)
    return levels if levels.ndim == 2 else cv2.transform(levels, camera_noise.LUMA_WEIGHTS[None])


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


def noise_residual(grey: np.ndarray, sigma0: float = SIGMA0, wavelet: str = WAVELET, levels: int = LEVELS) -> np.ndarray:
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
    return Observation(intensity, sum(wc * p for wc, p in zip(camera_noise.LUMA_WEIGHTS, planes)).astype(np.float32))


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
    spectrum = np.fft.rfft2(k)
    magnitude = (np.abs(spectrum) / math.sqrt(k.size)).astype(np.float32)
    flat_level = float(np.mean(np.square(k, dtype=np.float64)))  # Parseval: the mean of magnitude^2
    kept = noise_kept_by_wiener(magnitude, flat_level)
    gain = np.divide(kept, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
    return np.fft.irfft2(spectrum * gain, s=k.shape).astype(np.float32)


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
        numerator += obs.residual * obs.intensity
        denominator += np.square(obs.intensity, dtype=np.float64)
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
    return np.fft.irfft2(np.fft.rfft2(a0) * np.conj(np.fft.rfft2(b0)), s=a0.shape)


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
    """The sum of `plane` over every block of the grid, from one integral image (float64)."""
    rows, cols = block_grid(*plane.shape, block, stride)
    table = cv2.integral(np.asarray(plane, np.float32), sdepth=cv2.CV_64F)
    top = np.arange(rows) * stride
    left = np.arange(cols) * stride
    return (table[np.ix_(top + block, left + block)] - table[np.ix_(top, left + block)]
            - table[np.ix_(top + block, left)] + table[np.ix_(top, left)])


def block_means(plane: np.ndarray, block: int, stride: int) -> np.ndarray:
    return block_sums(plane, block, stride) / (block * block)


def block_correlation(x: np.ndarray, y: np.ndarray, block: int = BLOCK, stride: int = BLOCK // 2) -> np.ndarray:
    """Pearson correlation of x and y over every block: (Sxy - Sx Sy / n) / sqrt((Sxx - Sx^2/n)
    (Syy - Sy^2/n)), each sum from an integral image, so any stride costs five passes over the
    image. 0 where either is constant over the block."""
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
    With `groups` (the photo of each block, two photos or more) the errors behind the threshold
    are each block's under a predictor fitted without its photo: a new photo's blocks stray further
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
    of them, each threshold from photos left out of its fit (fit_predictor); blocks under None, in
    a band with fewer than `min_blocks`, or in a band of one photo (no photo to leave out: its
    errors would be the fitted photo's own, and its threshold far too narrow for any other) only
    feed the single one."""
    features, rho, groups = (np.concatenate([part[k] for part in samples.values()]) for k in range(3))
    enough = max(min_blocks, len(FEATURES) + 2)
    bands = {band: fit_predictor(f, r, g) for band, (f, r, g) in samples.items()
             if band is not None and r.size >= enough and len(np.unique(g)) > 1}
    return BandedPredictors(bands, fit_predictor(features, rho, groups))


# ---------------------------------------------------------------------------------------------
# The Fig. 7 scenario on renders: predictors per ISO band against one for all
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioConfig:
    camera: str = camera_noise.DEMO_CAMERA
    donor: str = "Nikon D7000"  # the camera whose render is pasted in: another reference sensor
    isos: tuple[int, ...] = camera_noise.DEFAULT_ISOS
    height: int = 384
    width: int = 512
    block: int = BLOCK
    stride: int = 32
    flat_fields: int = 32  # fingerprint images: featureless scenes, as forensic practice takes them
    test_renders: int = 1  # per held-out photo, ISO and kind (genuine, other camera, copy-move)
    jpeg_quality: int | None = 95  # the camera's own compression ("fine")
    camera_processing: bool = True  # camera_noise.typical_isp (noise reduction rising with ISO); False: plain development
    false_alarm: float = FALSE_ALARM
    forged_coverage: float = 0.75  # a block this much inside the forged region counts as forged
    folds: int = 1  # 1: the renderer's Test photos give the probes; more: every bundled photo held out once
    adapt_reader: bool = True  # ISONet fine-tuned on each fold's Train renders before it reads (adapted_reader)
    seed: int = 0


GENUINE, OTHER_CAMERA, COPY_MOVE = "genuine", "other camera", "copy-move"
SINGLE, BY_TRUE_ISO, BY_ISONET, BY_ISONET_WEIGHTED = SCHEMES = ("single", "ISO (true)", "ISO (ISONet)",
                                                                "ISONet-weighted")


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


def isonet_metric_of(net: isonet.ISONet, img: np.ndarray) -> float:
    """ISONet's global ISO metric of an image: the median of its stride-64 map."""
    return isonet.iso_map(net, image_io.to_unit_float(img)).global_metric


def measure_blocks(obs: Observation, fingerprint: np.ndarray, block: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(rho, features) of every block: the residual's correlation with I * K (rows x cols) and
    the predictor's features (rows x cols x 4)."""
    rho = block_correlation(obs.residual, expected_prnu(obs, fingerprint), block, stride)
    return rho, block_features(obs.intensity, block, stride)


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


def scenario_fingerprint(camera: camera_noise.CameraNoise, config: ScenarioConfig, rng: np.random.Generator) -> np.ndarray:
    """The camera's fingerprint from flat fields shot at its lowest ISO."""
    renders = (scenario_render(flat_field(config.height, config.width, rng), camera, config.isos[0], rng, config)
               for _ in range(config.flat_fields))
    return estimate_fingerprint(observe(img) for img in renders)


@dataclass
class ScenarioPredictors:
    """The scenario's predictors, fitted on the same Train renders: per band of the true ISO (what
    EXIF says) and per band of ISONet's reading of each render, the bands `Fig7.py --fingerprint_dir`
    fits with `--band isonet`: a probe read by ISONet gets the predictor of the renders ISONet read
    the same way, its reading's bias included. `reading_weights` (how ISONet read the renders of
    each ISO) lets a reading weigh the true-ISO predictors instead (`--band isonet_weighted`)."""

    by_iso: BandedPredictors
    by_reading: BandedPredictors
    reading_weights: ReadingWeights

    def for_probe(self, scheme: str, probe: Probe) -> CorrelationPredictor | WeightedPredictor:
        if scheme == SINGLE:
            return self.by_iso.single
        if scheme == BY_TRUE_ISO:
            return self.by_iso.for_metric(isonet.iso_to_metric(probe.iso))
        if scheme == BY_ISONET:
            return self.by_reading.for_metric(probe.isonet_metric)
        return self.by_iso.weighted(self.reading_weights.weights(probe.isonet_metric))


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
                readings[n] = isonet_metric_of(reader, render)
    return readings


def train_predictors(renders: Sequence[tuple[int, int, np.ndarray]], band_readings: Sequence[float],
                     weight_readings: Sequence[float], fingerprint: np.ndarray,
                     config: ScenarioConfig) -> ScenarioPredictors:
    """Predictors from the genuine Train renders (training_renders), banded by the true ISO and by
    ISONet's `band_readings` of them, and one for all (each photo one group, at every ISO); the
    reading weights from `weight_readings`. Where the reader was adapted on these renders, its
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
    return ScenarioPredictors(fit_banded(stack_samples(by_iso)), fit_banded(stack_samples(by_reading), MIN_BAND_BLOCKS),
                              ReadingWeights.of(zip(truths, weight_readings)))


def make_probe(img: np.ndarray, mask: np.ndarray | None, iso: int, kind: str, fingerprint: np.ndarray,
               net: isonet.ISONet, config: ScenarioConfig) -> Probe:
    rho, features = measure_blocks(observe(img), fingerprint, config.block, config.stride)
    coverage = np.zeros(rho.size) if mask is None else block_coverage(mask, config.block, config.stride).ravel()
    return Probe(iso, kind, isonet_metric_of(net, img), rho.ravel(), features.reshape(-1, len(FEATURES)), coverage)


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
                forged, mask = camera_noise.forge_from_camera(img, camera, donor, iso, rng, quality, isp)
                probes.append(make_probe(forged, mask, iso, OTHER_CAMERA, fingerprint, net, config))
                forged, mask = camera_noise.forge_copy_move(img, camera, iso, rng, quality, isp)
                probes.append(make_probe(forged, mask, iso, COPY_MOVE, fingerprint, net, config))
    return probes


def flagged_share(parts: Sequence[np.ndarray]) -> float:
    """The share of True among boolean arrays together; NaN when they hold nothing."""
    total = sum(p.size for p in parts)
    return float(sum(int(p.sum()) for p in parts) / total) if total else float("nan")


def score_scheme(scheme: str, judged: Sequence[tuple[ScenarioPredictors, Probe]], config: ScenarioConfig) -> SchemeScore:
    """Prediction error on genuine probes' blocks, false alarms on them, and detection of the
    forged probes' blocks, each probe judged by the predictor its scheme chooses among the
    predictors paired with it (its fold's, fitted without its photo): at the
    predictors' own thresholds, and at the one threshold (on the standard score) that flags
    exactly the false-alarm rate of the genuine test blocks, which compares schemes at equal
    false alarms."""
    genuine: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # iso, rho, rho_hat, flagged, score
    detected: list[tuple[int, str, np.ndarray, np.ndarray]] = []  # iso, kind, flags and scores of the forged blocks
    for predictors, probe in judged:
        predictor = predictors.for_probe(scheme, probe)
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
        detection_by_kind={kind: flagged_share([f for _, k, f, _ in detected if k == kind]) for kind in (OTHER_CAMERA, COPY_MOVE)},
        false_alarm_rate=flagged_share([f for _, _, _, f, _ in genuine]),
        detection_at_measured_false_alarm=flagged_share([s < equal_threshold for *_, s in detected]),
        predicted=predicted, measured=measured, iso=iso)


def run_scenario(net: isonet.ISONet, config: ScenarioConfig = ScenarioConfig(),
                 noise_profiles: str | os.PathLike | None = None) -> ScenarioResult:
    """Fig. 7 on renders: a fingerprint from flat fields, predictors fitted on Train photos (and,
    with config.adapt_reader, ISONet adapted to the camera on them), then genuine and forged renders
    of the held-out Test photos judged by each scheme."""
    db = camera_noise.load_noise_profiles(noise_profiles)
    camera, donor = db.select(config.camera)[0], db.select(config.donor)[0]
    camera_noise.cameras_by_iso([camera], config.isos)
    camera_noise.cameras_by_iso([donor], config.isos)
    rng = np.random.default_rng(config.seed)
    fingerprint = scenario_fingerprint(camera, config, rng)
    judged: list[tuple[ScenarioPredictors, Probe]] = []
    training = []
    for train, test in reports.progress(scenario_folds(config), desc="PRNU scenario, folds"):
        renders = training_renders(train, camera, config, rng)
        reader = adapted_reader(net, renders, config) if config.adapt_reader else net
        own = [isonet_metric_of(reader, render) for *_, render in renders]
        unseen = cross_fitted_readings(net, renders, config) if config.adapt_reader else own
        predictors = train_predictors(renders, own, unseen, fingerprint, config)
        training.append(predictors.by_iso.single.samples)
        judged += [(predictors, probe) for probe in scenario_probes(test, camera, donor, fingerprint, reader, config, rng)]
    readings = {iso: [p.isonet_metric for _, p in judged if p.iso == iso] for iso in config.isos}
    right = {iso: float(np.mean([predictors.by_reading.band_for(p.isonet_metric) == isonet.iso_to_metric(iso)
                                 for predictors, p in judged if p.iso == iso])) for iso in config.isos}
    probes = [p for _, p in judged]
    forged = sum(int((p.coverage >= config.forged_coverage).sum()) for p in probes if p.kind != GENUINE)
    blocks = {"training" if len(training) == 1 else f"training (mean of {len(training)} folds)": round(np.mean(training)),
              "genuine test": sum(p.rho.size for p in probes if p.kind == GENUINE), "forged test": forged}
    return ScenarioResult(config, [score_scheme(s, judged, config) for s in SCHEMES],
                          {iso: float(isonet.metric_to_iso(np.median(ms))) for iso, ms in readings.items()}, right,
                          blocks)


def scenario_report(result: ScenarioResult) -> list[str]:
    """The scenario's tables as printed lines: RMSE and detection per ISO for each scheme."""
    config, scores = result.config, result.scores
    width = max(12, *(len(s.scheme) for s in scores))
    names = " ".join(f"{s.scheme:>{width}}" for s in scores)
    processing = "camera processing (noise reduction rising with ISO)" if config.camera_processing else "plain development"
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
    lines.append(f"detection at {config.false_alarm:.0%} measured false alarms (one threshold on each block's standard score, "
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


# ---------------------------------------------------------------------------------------------
# A camera's photos: its fingerprint and predictors, in the sensor's orientation; then one probe
# ---------------------------------------------------------------------------------------------
BAND_CHOICES = ("isonet", "exif", "single", "isonet_weighted")
NEEDS_EXIF = ("exif", "isonet_weighted")  # band choices that need every fingerprint image's EXIF ISO


def turned(obs: Observation, turn: int) -> Observation:
    """`obs` turned by `turn` quarter turns anticlockwise (np.rot90's k)."""
    return Observation(np.ascontiguousarray(np.rot90(obs.intensity, turn)),
                       np.ascontiguousarray(np.rot90(obs.residual, turn)))


def turns_fitting(shape: tuple[int, int], target: tuple[int, int]) -> list[int]:
    """The quarter turns that give an HxW grid of `shape` the `target` shape (none: another size)."""
    return [turn for turn in range(4) if (shape if turn % 2 == 0 else shape[::-1]) == tuple(target)]


def best_turn(obs: Observation, fingerprint: np.ndarray, turns: Sequence[int] | None = None) -> tuple[int, dict[int, Pce]]:
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
            reading = None if net is None else isonet_metric_of(net, img)
            usable.append(CameraImage(path, observe(img, channels), exif_iso, reading))
        except ISONetError as e:
            failed.append(str(e))
    return usable, failed


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
    against the fingerprint of the others): banded by EXIF ISO (images without one feed the single
    predictor only) and by ISONet's readings, and the reading weights that let a reading weigh the
    EXIF-ISO bands."""

    fingerprint: np.ndarray
    by_exif: BandedPredictors
    by_reading: BandedPredictors | None
    reading_weights: ReadingWeights | None
    block: int
    stride: int

    def predictor(self, band_by: str, reading: float | None,
                  exif_iso: int | None) -> tuple[CorrelationPredictor | WeightedPredictor, float | None]:
        """The predictor `band_by` picks for a probe ISONet read as `reading` (ISO metric) with EXIF
        ISO `exif_iso`, and its band (None: one predictor for all, or weighted bands)."""
        if band_by == "single":
            return self.by_exif.single, None
        if band_by == "exif":
            band = self.by_exif.band_for(None if exif_iso is None else reading_band(isonet.iso_to_metric(exif_iso)))
            return self.by_exif.for_metric(band), band
        if reading is None:
            raise ValueError(f"--band {band_by} needs ISONet's reading of the probe")
        if band_by == "isonet" and self.by_reading is not None:
            band = self.by_reading.band_for(reading_band(reading))
            return self.by_reading.for_metric(band), band
        if band_by == "isonet_weighted" and self.reading_weights is not None:
            return self.by_exif.weighted(self.reading_weights.weights(reading)), None
        raise ValueError(f"--band {band_by}: the camera's images were not read by ISONet"
                         + (" with EXIF ISOs" if band_by == "isonet_weighted" else ""))


def leave_one_out_blocks(images: Sequence[CameraImage], numerator: np.ndarray, denominator: np.ndarray,
                         block: int, stride: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Genuine blocks to fit predictors on, (features, rho, image index) of each image, measured
    against the fingerprint of the others: with itself in it, its correlation would be biased up."""
    blocks = []
    for k, image in enumerate(images):
        obs = image.observation
        others = fingerprint_from_sums(numerator - obs.residual * obs.intensity,
                                       denominator - np.square(obs.intensity, dtype=np.float64))
        rho, features = measure_blocks(obs, others, block, stride)
        blocks.append((features.reshape(-1, len(FEATURES)), rho.ravel(), np.full(rho.size, k)))
    return blocks


def camera_prnu(images: Sequence[CameraImage], block: int = BLOCK, stride: int = BLOCK // 2) -> CameraPrnu:
    """The fingerprint of `images` (two or more, aligned) and predictors fitted on their blocks."""
    numerator, denominator = fingerprint_sums(image.observation for image in images)
    blocks = leave_one_out_blocks(images, numerator, denominator, block, stride)
    exif_bands = [None if i.exif_iso is None else reading_band(isonet.iso_to_metric(i.exif_iso)) for i in images]
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
                      ReadingWeights.of(weighed) if weighed else None, block, stride)


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
    metric = isonet_metric_of(net, img)
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
            "all bands" if b is None else f"{isonet.metric_to_iso(b):.0f} {w:.0%}" for b, w, _ in report.predictor.parts)
    exif = f", EXIF ISO {report.exif_iso}" if report.exif_iso is not None else ""
    forged = int(report.forged.sum())
    turned_in = (f" ({len(report.turned_in)} stored turned against the others, turned back)"
                 if report.turned_in else "")
    orientation = (f"; its EXIF orientation {report.orientation} undone, as for every image"
                   if report.orientation != 1 else "")
    tried = ", ".join(f"{describe_turn(t)} {p.value:.1f}" for t, p in report.pce_by_turn.items())
    return [f"fingerprint: {len(report.used)} images of {report.probe.name}'s size, in the sensor's orientation{turned_in}",
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
        reports.show_image(ax, image_io.to_unit_float(img), dim=0.5)
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
