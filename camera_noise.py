"""Camera-noise renderer: real cameras' ISO noise on clean photos, from measured sensor data.

The noise model is darktable's noise profile database (noiseprofiles.json): per camera, ISO and
colour channel, the variance of a raw value x normalised to [0, 1] is a*x + b (shot noise a*x,
read noise b). A clean sRGB photo is taken back to a raw Bayer mosaic, given that noise at the
chosen ISO, and developed again, so the noise has a real camera's level, its signal dependence
and the spatial and colour correlations that demosaicing and colour correction give it.

Get the database with scripts/fetch_noise_profiles.sh (Debian's darktable package, not
installed, only unpacked); it is never committed.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import cv2
import numpy as np

from image_io import atomic_path, list_images, read_image
from isonet import PATCH, ISONetError

SYSTEM_PROFILES = Path("/usr/share/darktable/noiseprofiles.json")
CACHE_PROFILES = Path(__file__).resolve().parent / ".cache" / "noiseprofiles.json"
SETUP_HINT = "run scripts/fetch_noise_profiles.sh to get it"
# Noise curves are smooth in log-log, so a short continuation past the last measurement is safe;
# further out the sensor may switch to another gain stage or to digital push.
MAX_EXTRAPOLATION_STOPS = 1.0
REFERENCE_ISO = 100
GREEN = 1
DEFAULT_ISOS = (100, 200, 400, 800, 1600, 3200, 6400)
CAMERA_HELP = ("'reference' (default: green ISO-100 noise in the database's interquartile range), "
               "'quieter' / 'noisier' (below / above it), 'all', one 'MAKER MODEL', or 'noiseless' "
               "(no sensor noise: what a model reads on the content alone)")
PROFILES_HELP = ("darktable's noiseprofiles.json (default: installed darktable's, else .cache/ from "
                 "scripts/fetch_noise_profiles.sh)")

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
CFA_SITES = ((0, 0), (0, 1), (1, 0), (1, 1))  # the order in which a pattern name lists its colours
# Edge-aware demosaic: less false colour at edges than bilinear (closer to cameras' own), and faster.
DEMOSAIC_CODES = {p: getattr(cv2, f"COLOR_Bayer{p}2RGB_EA") for p in CFA_PATTERNS}

# darktable measures its profiles on its own developed (demosaiced, white-balanced) output, where
# they give about ten times less variance than the sensors' photosites have: at base ISO 1/a
# should be the full-well capacity in electrons, and darktable's green a gives 640,000 e- for the
# Canon EOS 5D Mark III, 420,000 for the Nikon D7000 and about 1,000,000 for the Nikon D810, where
# photon-transfer measurements of those sensors give roughly 67,000, 49,000 and 78,000 e-.
# Renders at the profiles' own level come out 2-3x too clean (std 1.5 levels at ISO 6400 mid-grey,
# where such cameras' unprocessed output shows 4-6), so a and b are scaled by this ratio.
PROFILE_TO_PHOTOSITE_VARIANCE = 10.0
# ISO 12232's saturation-based speed puts an 18% grey card at 12.8% of raw clipping
# (H_sat / H_grey = 78 / 10); the camera's development gain brings it back to sRGB's 18% grey.
EXPOSURE = 0.128 / 0.18

# White-balance gains of daylight raw files lie roughly in these ranges (red and blue relative to
# green; Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019, sample the same).
RED_GAIN_RANGE = (1.9, 2.4)
BLUE_GAIN_RANGE = (1.5, 1.9)

# Colour: one real camera stands in for all. XYZ (D65) -> camera RGB of the Canon EOS 5D Mark II,
# Adobe's D65 ColorMatrix as published in dcraw's adobe_coeff table (values / 10000).
CAMERA_FROM_XYZ = np.array([[4716, 603, -830], [-7798, 15474, 2480], [-1496, 1937, 6651]]) / 10000.0
# Linear sRGB -> XYZ (D65), IEC 61966-2-1.
XYZ_FROM_SRGB = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def camera_from_srgb_matrix() -> np.ndarray:
    """Linear sRGB -> white-balanced camera RGB, rows scaled so that white stays (1, 1, 1).

    With white preserved, the white-balance gains alone carry the illuminant, as in a raw
    converter that applies the gains first and the colour matrix second.
    """
    m = CAMERA_FROM_XYZ @ XYZ_FROM_SRGB
    return m / m.sum(axis=1, keepdims=True)


CAMERA_FROM_SRGB = camera_from_srgb_matrix()


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding of values in [0, 1]."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding of values in [0, 1]."""
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


# Look-up tables keep the transfer curves off the per-pixel path: 8-bit sRGB in, and a 16-bit
# linear index out (1/65535 steps are far below one 8-bit level even in the steep dark end).
SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
LINEAR16_TO_SRGB8 = np.round(linear_to_srgb(np.arange(65536) / 65535.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Noise profiles
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ChannelCurve:
    """One colour channel's measured noise: (a, b) at sorted distinct ISOs."""

    iso: np.ndarray
    a: np.ndarray
    b: np.ndarray


def channel_curve(iso: np.ndarray, a: np.ndarray, b: np.ndarray) -> ChannelCurve:
    """Sorted, one point per ISO (repeated measurements averaged), fits with a <= 0 dropped.

    darktable writes a = 0 for a channel it could not fit and a few fits came out negative;
    neither is a shot-noise gain, and log-log interpolation needs a > 0.
    """
    keep = a > 0
    levels, index = np.unique(iso[keep], return_inverse=True)
    counts = np.bincount(index, minlength=len(levels))
    return ChannelCurve(levels,
                        np.bincount(index, a[keep], len(levels)) / counts,
                        np.bincount(index, b[keep], len(levels)) / counts)


def interp_linear(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """Piecewise-linear through (xp, fp), continued along the end segments; exact at each xp.
    A single point gives a constant."""
    if len(xp) == 1:
        return float(fp[0])
    i = int(np.clip(np.searchsorted(xp, x, side="right") - 1, 0, len(xp) - 2))
    t = (x - xp[i]) / (xp[i + 1] - xp[i])
    return float(fp[i] + t * (fp[i + 1] - fp[i]))


@dataclass(frozen=True, eq=False)
class CameraNoise:
    """A camera's measured noise; noise_params() gives per-channel (a, b) at any nearby ISO."""

    name: str
    channels: tuple[ChannelCurve, ChannelCurve, ChannelCurve]  # R, G, B

    @property
    def renderable(self) -> bool:
        """All three channels measured (a few darktable entries lack one)."""
        return all(len(c.iso) for c in self.channels)

    @property
    def iso_range(self) -> tuple[float, float]:
        """The ISOs measured in every channel: (lowest, highest)."""
        return max(c.iso[0] for c in self.channels), min(c.iso[-1] for c in self.channels)

    def supports(self, iso: float) -> bool:
        """Measured in every channel, and `iso` at most MAX_EXTRAPOLATION_STOPS outside the range."""
        if not self.renderable or not iso > 0:
            return False
        lo, hi = self.iso_range
        return math.log2(lo / iso) <= MAX_EXTRAPOLATION_STOPS and math.log2(iso / hi) <= MAX_EXTRAPOLATION_STOPS

    def noise_params(self, iso: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (a, b) at `iso`, each shape (3,) in R, G, B order.

        a is interpolated linearly in log(a) against log(ISO), as the database's curves are
        close to straight lines there. b is interpolated linearly in b against log(ISO) because
        b is often 0 (clipped), where its logarithm does not exist; it is kept >= 0.
        Outside the measured range both continue along their end segments, at most
        MAX_EXTRAPOLATION_STOPS; further out is an ISONetError.
        """
        if not self.renderable:
            missing = "RGB"[next(i for i, c in enumerate(self.channels) if not len(c.iso))]
            raise ISONetError(f"{self.name}: darktable has no usable measurement of its {missing} channel")
        if not self.supports(iso):
            lo, hi = self.iso_range
            raise ISONetError(f"{self.name}: ISO {iso:g} is more than {MAX_EXTRAPOLATION_STOPS:g} stop "
                              f"outside its measured ISO {lo:g}-{hi:g}")
        stops = math.log2(iso)
        a = [2.0 ** interp_linear(stops, np.log2(c.iso), np.log2(c.a)) for c in self.channels]
        b = [max(interp_linear(stops, np.log2(c.iso), c.b), 0.0) for c in self.channels]
        return np.array(a), np.array(b)

    @cached_property
    def green_fit(self) -> tuple[float, float] | None:
        """(green a at ISO 100, slope) of a least-squares line log(a) = s*log(ISO) + c; None
        with fewer than two measured ISOs."""
        g = self.channels[GREEN]
        if len(g.iso) < 2:
            return None
        slope, intercept = np.polyfit(np.log(g.iso), np.log(g.a), 1)
        return float(np.exp(intercept + slope * math.log(REFERENCE_ISO))), float(slope)


def noiseless_camera() -> CameraNoise:
    """A camera without sensor noise at any ISO (a and b vanish: a must stay > 0 for log-log
    interpolation). Its renders keep the pipeline's demosaicing and 8-bit rounding, so a model's
    estimate on them is the floor the content sets: the lowest ISO it can read on that photo."""
    curve = ChannelCurve(np.array([1.0, 1e7]), np.array([1e-30, 1e-30]), np.zeros(2))
    return CameraNoise("noiseless", (curve, curve, curve))


NOISELESS = noiseless_camera()


@dataclass(eq=False)
class NoiseDatabase:
    """darktable's cameras by 'MAKER MODEL' name, with the file they came from."""

    path: Path
    cameras: dict[str, CameraNoise]
    n_profiles: int  # measurements used (not marked "skip")

    @cached_property
    def reference_bounds(self) -> tuple[float, float]:
        """Interquartile range of the cameras' green a at ISO 100."""
        a100 = [c.green_fit[0] for c in self.cameras.values() if c.green_fit]
        q1, q3 = np.percentile(a100, [25, 75])
        return float(q1), float(q3)

    def cameras_by_class(self, quartile_class: str) -> list[CameraNoise]:
        """Renderable cameras by green a at ISO 100: 'quieter' below the interquartile range,
        'reference' inside it (the default class: typical sensors), 'noisier' above it."""
        lo, hi = self.reference_bounds
        inside = {"quieter": lambda a: a < lo, "reference": lambda a: lo <= a <= hi, "noisier": lambda a: a > hi}
        return [c for c in self.cameras.values() if c.renderable and c.green_fit
                and inside[quartile_class](c.green_fit[0])]

    def reference_cameras(self) -> list[CameraNoise]:
        return self.cameras_by_class("reference")

    def select(self, spec: str = "reference") -> list[CameraNoise]:
        """'reference', 'quieter', 'noisier' (see cameras_by_class), 'all' (every renderable
        camera), one exact 'MAKER MODEL' (any case) or 'noiseless' (see noiseless_camera)."""
        if spec in ("reference", "quieter", "noisier"):
            return self.cameras_by_class(spec)
        if spec == "all":
            return [c for c in self.cameras.values() if c.renderable]
        if spec == "noiseless":
            return [NOISELESS]
        by_lower = {name.lower(): name for name in self.cameras}
        name = by_lower.get(spec.lower())
        if name is None:
            close = [by_lower[n] for n in difflib.get_close_matches(spec.lower(), by_lower, n=5, cutoff=0.6)]
            hint = (f"close matches: {', '.join(close)}" if close
                    else "give darktable's 'MAKER MODEL', e.g. 'Canon EOS 5D Mark III', or 'reference', 'quieter', "
                         "'noisier', 'all' or 'noiseless'")
            raise ISONetError(f"--camera {spec!r}: not in {self.path} ({hint})")
        camera = self.cameras[name]
        if not camera.renderable:
            camera.noise_params(REFERENCE_ISO)  # raises the one-line reason
        return [camera]

    def summary(self) -> dict[str, float]:
        """The database's headline numbers (for reports and tests)."""
        fits = [c.green_fit for c in self.cameras.values() if c.green_fit]
        a100 = np.array([f[0] for f in fits])
        q1, q3 = self.reference_bounds
        return {"cameras": len(self.cameras), "profiles": self.n_profiles,
                "renderable": sum(c.renderable for c in self.cameras.values()),
                "green_a100_median": float(np.median(a100)), "green_a100_q1": q1, "green_a100_q3": q3,
                "green_slope_median": float(np.median([f[1] for f in fits])),
                "reference_cameras": len(self.reference_cameras())}


def find_profiles(path: str | os.PathLike | None = None) -> Path:
    """--noise_profiles PATH, else an installed darktable's file, else the set-up script's copy."""
    if path is not None:
        return Path(path)
    return SYSTEM_PROFILES if SYSTEM_PROFILES.is_file() else CACHE_PROFILES


def parse_profiles(doc: dict) -> tuple[dict[str, CameraNoise], int]:
    """darktable's {"noiseprofiles": [{maker, models: [{model, profiles: [...]}]}]} -> cameras.

    "skip" may mark a maker, a model or a single profile; skipped entries are left out.
    Negative b (a fit artefact: a variance cannot be negative) is clipped to 0.
    """
    measured: dict[str, list[dict]] = {}
    for maker in doc["noiseprofiles"]:
        if maker.get("skip"):
            continue
        for model in maker["models"]:
            if model.get("skip"):
                continue
            profiles = [p for p in model["profiles"] if not p.get("skip")]
            if profiles:
                measured.setdefault(f"{maker['maker']} {model['model']}", []).extend(profiles)
    cameras = {name: camera_from_profiles(name, profiles) for name, profiles in measured.items()}
    return cameras, sum(map(len, measured.values()))


def camera_from_profiles(name: str, profiles: list[dict]) -> CameraNoise:
    iso = np.array([p["iso"] for p in profiles], dtype=np.float64)
    a = np.array([p["a"] for p in profiles], dtype=np.float64)
    b = np.clip(np.array([p["b"] for p in profiles], dtype=np.float64), 0.0, None)
    if a.shape != (len(profiles), 3) or b.shape != a.shape:
        raise ValueError(f"{name}: each profile's a and b must hold 3 numbers (R, G, B)")
    if not np.all(iso > 0):
        raise ValueError(f"{name}: ISO must be positive")
    return CameraNoise(name, tuple(channel_curve(iso, a[:, c], b[:, c]) for c in range(3)))


def load_noise_profiles(path: str | os.PathLike | None = None) -> NoiseDatabase:
    """Load darktable's noise profile database; one-line ISONetError naming the file if unusable."""
    path = find_profiles(path)
    if not path.is_file():
        raise ISONetError(f"{path}: no darktable noise profile database ({SETUP_HINT})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ISONetError(f"{path}: not a darktable noiseprofiles.json ({type(e).__name__}); {SETUP_HINT}") from None
    try:
        cameras, n_profiles = parse_profiles(doc)
    except KeyError as e:
        raise ISONetError(f"{path}: not a darktable noiseprofiles.json (missing key {e}); {SETUP_HINT}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise ISONetError(f"{path}: not a darktable noiseprofiles.json ({e}); {SETUP_HINT}") from None
    if not cameras:
        raise ISONetError(f"{path}: no camera has a usable noise profile")
    return NoiseDatabase(path, cameras, n_profiles)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def random_wb_gains(rng: np.random.Generator) -> np.ndarray:
    """(red, green, blue) white-balance gains of a plausible daylight shot, green = 1."""
    return np.array([rng.uniform(*RED_GAIN_RANGE), 1.0, rng.uniform(*BLUE_GAIN_RANGE)])


def pad_to_even(img: np.ndarray) -> np.ndarray:
    """A Bayer mosaic needs whole 2x2 cells; odd images get one reflected row/column."""
    h, w = img.shape[:2]
    return cv2.copyMakeBorder(img, 0, h % 2, 0, w % 2, cv2.BORDER_REFLECT_101)


def srgb8_to_camera(srgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> linear camera RGB before white balance (float32, clipped to [0, 1])."""
    linear = cv2.LUT(srgb, SRGB8_TO_LINEAR)
    m = (CAMERA_FROM_SRGB / gains[:, None]).astype(np.float32)
    return np.clip(cv2.transform(linear, m), 0.0, 1.0)


def mosaic(camera_rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Keep one colour per pixel as the colour filter array does: HxWx3 -> HxW."""
    raw = np.empty(camera_rgb.shape[:2], camera_rgb.dtype)
    for (dy, dx), colour in zip(CFA_SITES, pattern):
        raw[dy::2, dx::2] = camera_rgb[dy::2, dx::2, "RGB".index(colour)]
    return raw


def sensor_noise_params(camera: CameraNoise, iso: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel photosite (a, b) at `iso`: the darktable profile brought to sensor level."""
    a, b = camera.noise_params(iso)
    return a * PROFILE_TO_PHOTOSITE_VARIANCE, b * PROFILE_TO_PHOTOSITE_VARIANCE


def add_sensor_noise(raw: np.ndarray, pattern: str, a: np.ndarray, b: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Raw values plus zero-mean noise of variance a*x + b of each site's colour, clipped to [0, 1].

    Gaussian with the Poisson-Gaussian variance: at the photon counts of these profiles
    (1/a is thousands of electrons at base ISO) the Poisson part is Gaussian to within what
    8-bit output can show, and sampling it is several times faster.
    """
    std = np.empty_like(raw)
    for (dy, dx), colour in zip(CFA_SITES, pattern):
        c = "RGB".index(colour)
        std[dy::2, dx::2] = a[c] * raw[dy::2, dx::2] + b[c]
    np.sqrt(std, out=std)
    noisy = raw + std * rng.standard_normal(raw.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0, out=noisy)


def demosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """[0, 1] mosaic -> 16-bit camera RGB with OpenCV's edge-aware demosaic (16-bit keeps the
    noise of dark areas, which 8 bits would quantise away)."""
    raw16 = (raw * 65535.0 + 0.5).astype(np.uint16)
    return cv2.cvtColor(raw16, DEMOSAIC_CODES[pattern])


def camera16_to_srgb8(camera_rgb16: np.ndarray, gains: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """16-bit camera RGB -> white balance, colour matrix and the gain that undoes `exposure`
    -> 8-bit sRGB.

    cv2.transform on uint16 rounds and saturates, which is the clip to [0, 1] we need.
    """
    m = (np.linalg.inv(CAMERA_FROM_SRGB / gains[:, None]) / exposure).astype(np.float32)
    return LINEAR16_TO_SRGB8[cv2.transform(camera_rgb16, m)]


JPEG_SUBSAMPLING = {"4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                    "4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}


def encode_image(rgb: np.ndarray, jpeg_quality: int | None = None, subsampling: str | None = None) -> bytes:
    """PNG (lossless) or JPEG bytes of an 8-bit RGB image (chroma `subsampling` '4:2:0' by default)."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    jpeg_params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality or 0),
                   cv2.IMWRITE_JPEG_SAMPLING_FACTOR, JPEG_SUBSAMPLING[subsampling or "4:2:0"]]
    ok, buf = cv2.imencode(".png", bgr) if jpeg_quality is None else cv2.imencode(".jpg", bgr, jpeg_params)
    if not ok:
        raise ISONetError("OpenCV could not encode the rendered image")
    return buf.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    return np.ascontiguousarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])


# ---------------------------------------------------------------------------------------------
# PRNU: each sensor's fixed photo-response pattern
# ---------------------------------------------------------------------------------------------
# Photosites differ in sensitivity by about 1% (Lukas, Fridrich and Goljan, "Digital camera
# identification from sensor pattern noise", IEEE TIFS 2006): the multiplicative pattern that
# identifies a camera and that prnu.py estimates and looks for.
PRNU_STD = 0.01


@lru_cache(maxsize=4)
def prnu_pattern(camera_name: str, height: int, width: int, strength: float = PRNU_STD) -> np.ndarray:
    """The photo-response factor 1 + K of `camera_name`'s sensor at `height` x `width` photosites,
    K white Gaussian of std `strength`; read-only float32.

    Seeded from the name and the size, never from the render's rng: every render of one size by
    one camera shares it, and renders without PRNU draw exactly what they drew before.
    """
    seed = int.from_bytes(hashlib.sha256(camera_name.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, height, width])
    pattern = 1.0 + strength * rng.standard_normal((height, width), dtype=np.float32)
    pattern.setflags(write=False)
    return pattern


def apply_prnu(raw: np.ndarray, camera: CameraNoise, sensor_shape: tuple[int, int]) -> np.ndarray:
    """An even-padded mosaic of a `sensor_shape` sensor times the camera's PRNU pattern, which
    is padded as the mosaic was."""
    return raw * pad_to_even(prnu_pattern(camera.name, *sensor_shape))


# ---------------------------------------------------------------------------------------------
# Camera ISP: what a camera does between the sensor and its JPEG
# ---------------------------------------------------------------------------------------------
# Real camera JPEGs carry the camera's processing, not bare sensor noise: a colour-difference
# demosaic, noise reduction rising with ISO (it leaves 0.2-0.5 of the luma noise at high ISO),
# sharpening after it, a tone curve, an output size below the sensor's, 4:2:x chroma. A model
# trained on bare noise reads such photos several stops low; random_isp draws each render's
# processing from the ranges seen in real photos (docs/rendering.md, "Camera ISP").
ISP_DEMOSAICS = ("malvar", "colour_difference", "edge_aware")
ISP_LUMA_NR = ("off", "bilateral", "nlm", "wavelet")
ISP_OUTPUT_SCALES = (1.0, 0.7, 0.5, 0.4)  # full size and cameras' M/S sizes, linear
ISP_OUTPUT_SCALE_WEIGHTS = (0.45, 0.2, 0.2, 0.15)
# Cameras rate ISO by standard output sensitivity / recommended exposure index, which put raw
# mid-grey below ISO 12232's saturation-based point (ISO_EXPOSURE_STOPS, relative to EXPOSURE).
ISO_EXPOSURE_STOPS = (-0.8, 0.1)


@dataclass(frozen=True)
class Isp:
    """One rendered camera's processing (random_isp draws it)."""

    exposure_stops: float  # raw exposure relative to ISO 12232's saturation-based point
    demosaic: str  # one of ISP_DEMOSAICS
    tone: float  # S-curve strength over sRGB, 0 = none
    luma_nr: str  # one of ISP_LUMA_NR
    luma_strength: float  # luma NR threshold, in units of the image's own noise sigma
    luma_blend: float  # fraction of denoised luma in the output
    chroma_blur: float  # Gaussian sigma (pixels) of the chroma noise reduction, 0 = none
    sharpen: float  # unsharp-mask amount applied after the noise reduction
    scale: float  # output size / sensor size, linear
    chroma_subsampling: str  # of the JPEG, a JPEG_SUBSAMPLING key


def noise_reduction_ramp(iso: float) -> float:
    """How hard a camera's noise reduction works at `iso`: 0 at ISO 100 rising to 1 at ISO 6400."""
    return float(np.clip(math.log2(iso / REFERENCE_ISO) / 6.0, 0.0, 1.0))


def random_isp(rng: np.random.Generator, iso: float) -> Isp:
    """A plausible camera's processing at `iso`: noise reduction from nearly none at base ISO to
    strong at ISO 6400 and above, switched off in one render of five."""
    ramp = noise_reduction_ramp(iso)
    luma_nr = "off" if rng.random() < 0.2 else ISP_LUMA_NR[1 + rng.integers(len(ISP_LUMA_NR) - 1)]
    return Isp(exposure_stops=float(rng.uniform(*ISO_EXPOSURE_STOPS)),
               demosaic=ISP_DEMOSAICS[rng.integers(len(ISP_DEMOSAICS))],
               tone=float(rng.uniform(0.0, 0.6)),
               luma_nr=luma_nr,
               luma_strength=float(ramp * rng.uniform(0.5, 2.5)),
               luma_blend=float(rng.uniform(0.5, 1.0)),
               chroma_blur=float(ramp * rng.uniform(0.5, 3.0)) if luma_nr != "off" else 0.0,
               sharpen=float(rng.uniform(0.0, 1.2)),
               scale=float(rng.choice(ISP_OUTPUT_SCALES, p=ISP_OUTPUT_SCALE_WEIGHTS)),
               chroma_subsampling=("4:2:0", "4:2:2")[rng.integers(2)])


def typical_isp(iso: float) -> Isp:
    """One fixed camera's processing at `iso`: the middle of every range random_isp draws from,
    wavelet luma noise reduction, at full size (a PRNU fingerprint only matches photos of the
    sensor's own geometry). Its noise reduction rises with ISO as random_isp's does."""
    ramp = noise_reduction_ramp(iso)
    return Isp(exposure_stops=float(np.mean(ISO_EXPOSURE_STOPS)), demosaic="colour_difference", tone=0.3,
               luma_nr="wavelet", luma_strength=1.5 * ramp, luma_blend=0.75, chroma_blur=1.75 * ramp,
               sharpen=0.6, scale=1.0, chroma_subsampling="4:2:0")


# Malvar, He and Cutler (ICASSP 2004), gradient-corrected bilinear demosaicing, kernels x 8.
_MALVAR_G_AT_RB = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]])
_MALVAR_AT_G_ROW = np.array([[0, 0, .5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0],
                             [0, 0, .5, 0, 0]])
_MALVAR_RB_AT_BR = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0],
                             [0, 0, -1.5, 0, 0]])
_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, cv2.CV_32F, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def _site_mask(shape: tuple[int, int], site: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[site[0]::2, site[1]::2] = True
    return mask


def demosaic_malvar(raw: np.ndarray, pattern: str) -> np.ndarray:
    """[0, 1] float mosaic -> HxWx3 float camera RGB (Malvar-He-Cutler), vectorised: four
    convolutions of the whole mosaic, each site taking the one its position needs."""
    g_at_rb = _filter(raw, _MALVAR_G_AT_RB / 8)
    at_g_row, at_g_col = _filter(raw, _MALVAR_AT_G_ROW / 8), _filter(raw, _MALVAR_AT_G_ROW.T / 8)
    rb_at_br = _filter(raw, _MALVAR_RB_AT_BR / 8)
    out = np.empty(raw.shape + (3,), np.float32)
    sites = dict(zip(CFA_SITES, pattern))
    for (dy, dx), colour in sites.items():
        here = (slice(dy, None, 2), slice(dx, None, 2))
        row_colour = sites[(dy, 1 - dx)]  # a green site's row neighbour; its column neighbour is the other
        for c, channel in enumerate("RGB"):
            if channel == colour:
                plane = raw
            elif colour == "G":
                plane = at_g_row if channel == row_colour else at_g_col
            else:
                plane = g_at_rb if channel == "G" else rb_at_br
            out[here + (c,)] = plane[here]
    return out


def demosaic_colour_difference(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Green by Malvar's gradient-corrected interpolation, then R-G and B-G interpolated
    bilinearly and added back: the colour-difference scheme of most raw converters."""
    green = demosaic_malvar(raw, pattern)[:, :, GREEN]
    out = np.empty(raw.shape + (3,), np.float32)
    out[:, :, GREEN] = green
    for c, channel in ((0, "R"), (2, "B")):
        mask = _site_mask(raw.shape, CFA_SITES[pattern.index(channel)])
        difference = np.where(mask, raw - green, 0.0).astype(np.float32)
        out[:, :, c] = green + _filter(difference, _BILINEAR_RB)
    return out


def demosaic_float(raw: np.ndarray, pattern: str, method: str) -> np.ndarray:
    """[0, 1] mosaic -> HxWx3 float32 camera RGB with one of ISP_DEMOSAICS."""
    if method == "malvar":
        return demosaic_malvar(raw, pattern)
    if method == "colour_difference":
        return demosaic_colour_difference(raw, pattern)
    return demosaic(raw, pattern).astype(np.float32) / np.float32(65535)


LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as OpenCV's RGB2GRAY
# Immerkaer's difference of two Laplacians: it cancels smooth content; the mean absolute response
# times IMMERKAER_SCALE is the sigma of white Gaussian noise.
IMMERKAER_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
IMMERKAER_SCALE = math.sqrt(math.pi / 2) / 6


def in_levels(img: np.ndarray) -> np.ndarray:
    """Integers (8- or 16-bit, as decoded), or floats in [0, 1] as image_io.read_image gives ->
    float32 in 8-bit levels, the scale noise sigmas and the PRNU denoiser's SIGMA0 are given in."""
    scale = 255.0 / np.iinfo(img.dtype).max if np.issubdtype(img.dtype, np.integer) else 255.0
    return np.multiply(img, np.float32(scale), dtype=np.float32)


def luma_levels(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB or HxW (see in_levels) -> HxW float32 luma in 8-bit levels."""
    levels = in_levels(img)
    return levels if levels.ndim == 2 else cv2.transform(levels, LUMA_WEIGHTS[None])


def immerkaer_sigma(grey: np.ndarray) -> float | np.ndarray:
    """Immerkaer's fast noise sigma of a 2-D image (or of each HxW plane of a ...xHxW stack), from
    the mask's response inside each plane."""
    grey = np.asarray(grey, np.float32)
    planes = grey.reshape((-1,) + grey.shape[-2:])
    responses = np.stack([np.abs(cv2.filter2D(p, cv2.CV_32F, IMMERKAER_MASK)[1:-1, 1:-1]).mean() for p in planes])
    sigma = responses * IMMERKAER_SCALE
    return float(sigma[0]) if grey.ndim == 2 else sigma.reshape(grey.shape[:-2])


def tone_curve(srgb: np.ndarray, strength: float) -> np.ndarray:
    """A camera's contrast S-curve over sRGB values in [0, 1] (smoothstep blended in)."""
    return (1 - strength) * srgb + strength * srgb * srgb * (3 - 2 * srgb)


def reduce_luma_noise(y: np.ndarray, isp: Isp) -> np.ndarray:
    """The luma noise reduction of `isp` on a [0, 1] float plane, its threshold scaled by the
    plane's own noise sigma as a camera scales it by ISO."""
    if isp.luma_nr == "off" or isp.luma_strength <= 0:
        return y
    level = max(isp.luma_strength * immerkaer_sigma(y), 1e-4)
    if isp.luma_nr == "bilateral":
        denoised = cv2.bilateralFilter(y, 5, 2 * level, 1.5)
    elif isp.luma_nr == "nlm":
        y8 = np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)
        denoised = cv2.fastNlMeansDenoising(y8, None, h=float(level * 255), templateWindowSize=5,
                                            searchWindowSize=11).astype(np.float32) / 255
    else:
        import pywt

        coeffs = pywt.wavedec2(y, "db2", level=2)
        coeffs = [coeffs[0]] + [tuple(pywt.threshold(d, level, "soft") for d in band) for band in coeffs[1:]]
        denoised = pywt.waverec2(coeffs, "db2")[: y.shape[0], : y.shape[1]].astype(np.float32)
    return isp.luma_blend * denoised + (1 - isp.luma_blend) * y


def develop_like_camera(linear: np.ndarray, isp: Isp) -> np.ndarray:
    """Linear RGB in [0, 1] -> sRGB tone curve -> luma and chroma noise reduction -> sharpening,
    all in YCrCb as cameras do; float32 RGB in [0, 1] out."""
    srgb = tone_curve(linear_to_srgb(np.clip(linear, 0.0, 1.0)).astype(np.float32), isp.tone)
    ycc = cv2.cvtColor(srgb, cv2.COLOR_RGB2YCrCb)
    y = reduce_luma_noise(np.ascontiguousarray(ycc[:, :, 0]), isp)
    if isp.sharpen > 0:
        y = y + isp.sharpen * (y - cv2.GaussianBlur(y, (0, 0), 1.0))
    ycc[:, :, 0] = y
    if isp.chroma_blur > 0:
        ycc[:, :, 1:] = cv2.GaussianBlur(np.ascontiguousarray(ycc[:, :, 1:]), (0, 0), isp.chroma_blur)
    return np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), 0.0, 1.0)


def isp_render(clean: np.ndarray, pattern: str, gains: np.ndarray, a: np.ndarray, b: np.ndarray, isp: Isp,
               rng: np.random.Generator, prnu_of: CameraNoise | None = None) -> np.ndarray:
    """The ISP path of render(): the clean photo is brought to the sensor's size (1/isp.scale
    larger), exposed, given `prnu_of`'s PRNU (if given) and photosite noise, demosaiced and
    developed by `isp`, then resampled to the photo's size by area, as a camera writes its
    smaller output sizes."""
    h, w = clean.shape[:2]
    sensor = clean if isp.scale >= 1 else cv2.resize(clean, (round(w / isp.scale), round(h / isp.scale)),
                                                      interpolation=cv2.INTER_CUBIC)
    exposure = np.float32(EXPOSURE * 2.0 ** isp.exposure_stops)
    raw = mosaic(srgb8_to_camera(pad_to_even(sensor), gains), pattern) * exposure
    if prnu_of is not None:
        raw = apply_prnu(raw, prnu_of, sensor.shape[:2])
    camera_rgb = demosaic_float(add_sensor_noise(raw, pattern, a, b, rng), pattern, isp.demosaic)
    m = (np.linalg.inv(CAMERA_FROM_SRGB / gains[:, None]) / exposure).astype(np.float32)
    srgb = develop_like_camera(cv2.transform(camera_rgb, m), isp)[: sensor.shape[0], : sensor.shape[1]]
    if isp.scale < 1:
        srgb = cv2.resize(srgb, (w, h), interpolation=cv2.INTER_AREA)
    return (srgb * 255 + 0.5).astype(np.uint8)


def render(clean: np.ndarray, camera: CameraNoise, iso: float, rng: np.random.Generator,
           jpeg_quality: int | None = None, isp: Isp | None = None, prnu: bool = False) -> np.ndarray:
    """A clean 8-bit sRGB photo (HxWx3 RGB) as `camera` would have taken it at `iso`.

    sRGB -> linear -> inverse colour matrix and random white balance -> Bayer mosaic of random
    phase, exposed as ISO 12232 prescribes (EXPOSURE) -> photosite noise a*x + b per channel ->
    demosaic -> white balance, colour and development gain -> 8-bit sRGB, then JPEG at
    `jpeg_quality` if given. With an `isp` (see random_isp) the camera's own processing runs
    instead of the plain development: its exposure, demosaic, tone curve, noise reduction,
    sharpening, output size and JPEG chroma subsampling. With `prnu` the photosites respond with
    the camera's own PRNU pattern at the sensor's size (prnu_pattern) before the noise; without
    it the output is what it always was. The result has the input's shape and dtype uint8.
    """
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"render needs an HxWx3 uint8 RGB image, got {clean.dtype} {clean.shape}")
    a, b = sensor_noise_params(camera, iso)
    gains = random_wb_gains(rng)
    pattern = CFA_PATTERNS[rng.integers(len(CFA_PATTERNS))]
    h, w = clean.shape[:2]
    if isp is None:
        raw = mosaic(srgb8_to_camera(pad_to_even(clean), gains), pattern) * np.float32(EXPOSURE)
        if prnu:
            raw = apply_prnu(raw, camera, (h, w))
        out = camera16_to_srgb8(demosaic(add_sensor_noise(raw, pattern, a, b, rng), pattern), gains, EXPOSURE)
        out = out[:h, :w]
    else:
        out = isp_render(clean, pattern, gains, a, b, isp, rng, camera if prnu else None)
    if jpeg_quality is not None:
        subsampling = None if isp is None else isp.chroma_subsampling
        return decode_image(encode_image(out, jpeg_quality, subsampling))
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------------------------------------
# Clean sources and rendered sets
# ---------------------------------------------------------------------------------------------
# Photos that installed packages ship inside their wheels (no download): scikit-image's natural
# colour and grey photos (grey ones are replicated to RGB: they add textures: grass, gravel,
# brick...) and matplotlib's portrait. Their microscopy, astronomy, synthetic and text images
# are left out, and so are those scikit-image downloads on first use.
BUNDLED_PHOTOS = {"astronaut": ("skimage", "astronaut.png"), "chelsea": ("skimage", "chelsea.png"),
                  "coffee": ("skimage", "coffee.png"), "rocket": ("skimage", "rocket.jpg"),
                  "motorcycle": ("skimage", "motorcycle_left.png"), "camera": ("skimage", "camera.png"),
                  "grass": ("skimage", "grass.png"), "gravel": ("skimage", "gravel.png"),
                  "brick": ("skimage", "brick.png"), "coins": ("skimage", "coins.png"),
                  "moon": ("skimage", "moon.png"), "grace_hopper": ("matplotlib", "grace_hopper.jpg")}


def bundled_photo_path(package: str, file: str) -> Path:
    if package == "skimage":
        import skimage.data  # imported here: only the bundled sources need scikit-image

        return Path(skimage.data.__file__).parent / file
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / file


def read_clean_image(source: Path, factor: int) -> np.ndarray:
    """A clean source as HxWx3 uint8, area-averaged over `factor` x `factor` blocks (averaging
    suppresses the photo's own noise)."""
    img = read_image(source)
    h, w = img.shape[:2]
    if factor > 1:
        img = cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    if min(img.shape[:2]) < PATCH:
        raise ISONetError(f"{source}: {img.shape[1]}x{img.shape[0]} after {factor}x downscaling, "
                          f"smaller than one {PATCH}x{PATCH} patch")
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


BUNDLED = "bundled"  # names the bundled photos among --clean_dir's folders


def clean_sources(clean_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """(name, path) of every image in one folder (not recursive), named by file stem; or the
    bundled photos when `clean_dir` is "bundled"."""
    if str(clean_dir) == BUNDLED:
        return [(name, bundled_photo_path(*where)) for name, where in BUNDLED_PHOTOS.items()]
    if not Path(clean_dir).is_dir():
        raise ISONetError(f"{clean_dir}: --clean_dir is not a folder")
    sources = [(p.stem, p) for p in list_images([str(clean_dir)])]
    if not sources:
        raise ISONetError(f"{clean_dir}: no images in --clean_dir")
    return sources


def clean_images(clean_dirs: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                 downscale: int = 2) -> list[tuple[str, np.ndarray]]:
    """(name, HxWx3 uint8 RGB) clean sources, sorted by name, each downscaled `downscale` x.

    Without `clean_dirs`: the photos scikit-image and matplotlib ship, read from their packages
    (no network). With one folder or several: every image in them (not recursive), named by file
    stem; "bundled" among them adds the bundled photos. Names must differ across all of them.
    """
    if clean_dirs is None:
        clean_dirs = [BUNDLED]
    elif isinstance(clean_dirs, (str, os.PathLike)):
        clean_dirs = [clean_dirs]
    sources = [source for folder in clean_dirs for source in clean_sources(folder)]
    stems = [name for name, _ in sources]
    duplicate = next((s for s in stems if stems.count(s) > 1), None)
    if duplicate:
        raise ISONetError(f"{' '.join(map(str, clean_dirs))}: two images named {duplicate!r} "
                          f"(names must differ in more than the suffix and folder)")
    return [(name, read_clean_image(path, downscale)) for name, path in sorted(sources)]


def split_train_test(clean: Sequence[tuple[str, np.ndarray]], test_fraction: float = 0.2
                     ) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """Disjoint (Train, Test) sources, chosen by a hash of the names so the split is
    reproducible and independent of the names' alphabetical order. Both get at least one."""
    if len(clean) < 2:
        raise ISONetError(f"{len(clean)} clean image(s): Train and Test need different sources, so at least 2")
    ranked = sorted(clean, key=lambda item: hashlib.sha256(item[0].encode()).hexdigest())
    n_test = min(len(clean) - 1, max(1, round(len(clean) * test_fraction)))
    return sorted(ranked[n_test:], key=lambda i: i[0]), sorted(ranked[:n_test], key=lambda i: i[0])


def camera_slug(name: str) -> str:
    """A file-name-safe camera name: 'Pentax *ist DL' -> 'Pentax-ist-DL'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def cameras_by_iso(cameras: Sequence[CameraNoise], isos: Sequence[int]) -> dict[int, list[CameraNoise]]:
    """For each ISO, the cameras measured near enough to render it; an ISONetError if none is."""
    if not cameras:
        raise ISONetError("no camera selected")
    usable = {iso: [c for c in cameras if c.supports(iso)] for iso in isos}
    for iso, found in usable.items():
        if not found:
            which = cameras[0].name if len(cameras) == 1 else f"{len(cameras)} cameras"
            raise ISONetError(f"ISO {iso}: no selected camera ({which}) was measured within "
                              f"{MAX_EXTRAPOLATION_STOPS:g} stop of it")
    return usable


def brightness_lut(stops: float) -> np.ndarray:
    """8-bit sRGB -> 8-bit sRGB lookup table of an exposure change by `stops` in linear light."""
    linear = np.clip(SRGB8_TO_LINEAR * 2.0 ** stops, 0.0, 1.0)
    return np.round(linear_to_srgb(linear) * 255.0).astype(np.uint8)


def jitter_source(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new-looking variant of a clean photo: 1-2x smaller, exposure -1.5..+0.5 stop, rotated or
    flipped, colour channels permuted.

    With ten training photos the network learnt each photo's own texture energy and read new
    photos badly (validation loss three times the training loss); variants of scale, brightness
    and colour make the noise, not the texture, the thing to learn.
    """
    h, w = img.shape[:2]
    shrink = rng.uniform(1.0, min(2.0, min(h, w) / PATCH))
    img = cv2.resize(img, (round(w / shrink), round(h / shrink)), interpolation=cv2.INTER_AREA)
    img = cv2.LUT(img, brightness_lut(rng.uniform(-1.5, 0.5)))
    img = np.rot90(img, int(rng.integers(4)))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img[:, :, rng.permutation(3)])


def render_folder(out_root: str | os.PathLike, clean: Sequence[tuple[str, np.ndarray]], isos: Sequence[int],
                  cameras: Sequence[CameraNoise], rng: np.random.Generator,
                  jpeg_quality_range: tuple[int, int] | None = None, renders_per_image: int = 1,
                  test_fraction: float = 0.2, jitter_train: bool = True, isp: bool = False) -> list[Path]:
    """Write the paper's folder layout, out_root/{Train,Test}/<ISO>/<name>_<k>_<camera>.png|.jpg.

    Train and Test come from disjoint clean sources; with `jitter_train` each Train render starts
    from a random variant of its source (jitter_source), Test renders from the source as it is.
    Each render draws a camera (among those measured near that ISO), white balance, Bayer phase
    and noise from `rng`; with `jpeg_quality_range` (lo, hi) each file is a JPEG of quality drawn
    from lo..hi inclusive; with `isp` each render gets a camera's processing drawn by random_isp.
    Returns the written paths; each is written atomically.
    """
    usable = cameras_by_iso(cameras, isos)
    train, test = split_train_test(clean, test_fraction)
    written = []
    for split, sources in (("Train", train), ("Test", test)):
        for name, img in sources:
            for iso in isos:
                for k in range(renders_per_image):
                    camera = usable[iso][rng.integers(len(usable[iso]))]
                    quality = None if jpeg_quality_range is None else int(rng.integers(jpeg_quality_range[0],
                                                                                      jpeg_quality_range[1] + 1))
                    source = jitter_source(img, rng) if jitter_train and split == "Train" else img
                    processing = random_isp(rng, iso) if isp else None
                    data = encode_image(render(source, camera, iso, rng, isp=processing), quality,
                                        processing and processing.chroma_subsampling)
                    suffix = "png" if quality is None else "jpg"
                    path = Path(out_root) / split / str(iso) / f"{name}_{k}_{camera_slug(camera.name)}.{suffix}"
                    with atomic_path(path) as tmp:
                        tmp.write_bytes(data)
                    written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# Embedded demos: what test_model.py, Fig4.py and Fig7.py run on when given no image
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Command line: what the database holds, to choose --camera
# ---------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="List darktable's measured cameras usable by the noise renderer.")
    parser.add_argument("--noise_profiles", help=PROFILES_HELP)
    parser.add_argument("--camera", default="reference", help=CAMERA_HELP)
    args = parser.parse_args(argv)
    try:
        db = load_noise_profiles(args.noise_profiles)
        cameras = db.select(args.camera)
    except ISONetError as e:
        import cli  # the scripts' one-line errors; only this command line needs them

        cli.fail(str(e))
    facts = db.summary()
    lo, hi = db.reference_bounds
    print(f"{db.path}: {facts['cameras']} cameras, {facts['profiles']} profiles, {facts['renderable']} renderable; "
          f"green a at ISO 100: median {facts['green_a100_median']:.3g}, reference class {lo:.3g}-{hi:.3g} "
          f"({facts['reference_cameras']} cameras)")
    for cam in cameras:
        iso_lo, iso_hi = cam.iso_range
        print(f"{cam.name}\tISO {iso_lo:g}-{iso_hi:g}\tgreen a(100) {cam.green_fit[0]:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
