"""A camera profile: what one camera's reference photos tell, kept in one folder, and how readings
use it. adapt_camera.py --out PROFILE_DIR builds one; test_model.py, Fig4.py, Fig7.py and
evaluate.py read with one (--profile DIR, or --profiles DIR to pick by the photo's EXIF camera).

A profile holds the camera's reader (the adapted ISONet, a line through a classical noise
statistic, or their combination: whichever read the photos best when each was left out), the
reader's held-out residuals (the 80% interval of every reading comes from them), the ISO range
the photos cover (readings are held within a stop of it), the camera's make and model, and its
PRNU fingerprint with the correlation predictors fitted on the same photos (prnu.CameraPrnu), in
the sensor's orientation. The folder (format FORMAT, version VERSION):

    profile.json     camera, photos, reader, residuals, figures, PRNU settings
    reader.pth       the reader's ISONet weights (a plain state dict), where the reader uses it
    fingerprint.npy  the PRNU fingerprint (float32, sensor orientation), where the photos share a size
    predictors.npz   the PRNU correlation predictors (prnu.CameraPrnu.to_arrays)

Building needs training code (adapt_camera.py); reading with a profile does not.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import isonet
import metrics
from camera_noise import luma_levels
from image_io import atomic_path, camera_key, file_sha256, read_exif_camera
from isonet import ISONetError

if TYPE_CHECKING:
    import prnu

FORMAT = "isonet-camera-profile"
VERSION = 1
PROFILE_FILE, READER_FILE, FINGERPRINT_FILE, PREDICTORS_FILE = ("profile.json", "reader.pth", "fingerprint.npy",
                                                                "predictors.npz")
READERS = ("network", "statistic", "combined")
CLAMP_STOPS = 1.0  # readings are held within this many stops of the ISO range the photos cover
# A profile's reader and residuals come from its photos' unit(s): another unit of the model has its
# own noise, and a one-unit profile's narrow interval can miss it (docs/experiments.md).
OTHER_UNITS = ("a profile's reading and interval are those of the unit(s) its photos came from, and may not hold "
               "for another unit of the same model: a profile built from several units' photos, a folder each "
               "(adapt_camera.py --leave_out folder), reads a new unit with an interval that holds, though its "
               "PRNU fingerprint is best built from one unit's")


def noise_statistic(img: np.ndarray) -> float:
    """The classical reading: log2 of the 25th percentile of the 64x64 patches' Immerkaer luma noise
    sigma, in 8-bit levels (the quieter patches: texture only adds to a patch's sigma). `img` is
    an image as decoded (integers) or as read (floats in [0, 1])."""
    return luma_noise_statistic(luma_levels(img))


def luma_noise_statistic(luma: np.ndarray) -> float:
    """noise_statistic of an HxW luma already in 8-bit levels (prnu.Observation.intensity)."""
    return float(np.percentile(metrics.noise_sigma_map(luma, isonet.PATCH), 25))


@dataclass(frozen=True)
class Reader:
    """How a profile turns a photo into its global ISO metric: `kind` 'network' (the ISONet map's
    median), 'statistic' (a line through noise_statistic) or 'combined' (a plane through both), held
    within `clamp`."""

    kind: str
    coefficients: tuple[float, ...]  # network: (); statistic: (intercept, slope); combined: (c0, c_net, c_stat)
    clamp: tuple[float, float]

    @property
    def uses_network(self) -> bool:
        return self.kind in ("network", "combined")

    def estimate(self, network_metric: float | None, statistic: float | None) -> float:
        if self.kind == "network":
            value = network_metric
        elif self.kind == "statistic":
            value = self.coefficients[0] + self.coefficients[1] * statistic
        else:
            value = self.coefficients[0] + self.coefficients[1] * network_metric + self.coefficients[2] * statistic
        return float(np.clip(value, *self.clamp))


@dataclass
class Profile:
    folder: Path
    camera: str
    reader: Reader
    residuals: np.ndarray  # truth - held-out estimate of each photo, in stops
    summary: dict  # what profile.json says of the photos and the figures
    network: isonet.ISONet | None = None
    prnu: prnu.CameraPrnu | None = None
    level: float = metrics.INTERVAL_LEVEL
    offsets: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.offsets = metrics.conformal_offsets(self.residuals, self.level)

    @property
    def name(self) -> str:
        return f"{self.folder} ({self.camera})"

    def photo_hashes(self, files: set[str] | None = None) -> set[str]:
        """The SHA-256 of the photos the profile was built from (of those listed in `files` alone,
        where given): as profile.json keeps them, or for a profile that keeps none, of its photos
        still found where it lists them."""
        photos = [p for p in self.summary.get("photos", []) if files is None or p["file"] in files]
        return {p["sha256"] if "sha256" in p else file_sha256(p["file"]) for p in photos
                if "sha256" in p or Path(p["file"]).is_file()}

    @functools.cached_property
    def own_photos(self) -> set[str]:
        """photo_hashes() of every photo, hashed once."""
        return self.photo_hashes()

    def interval(self, metric: float) -> tuple[float, float]:
        """The `level` interval of the true ISO metric of a photo this profile reads as `metric`."""
        return metric + self.offsets[0], metric + self.offsets[1]

    def read(self, img: np.ndarray, fallback: isonet.ISONet, stride: int = isonet.PATCH,
             batch_size: int | None = None) -> isonet.IsoMap:
        """`img`'s ISO map by the profile's network (by `fallback` where the reader needs none: the
        map's relative evidence still shows splices) and its global reading by the profile's reader."""
        result = isonet.iso_map(self.network or fallback, img, stride, batch_size)
        network_metric = result.global_metric if self.network is not None else None
        statistic = noise_statistic(img) if self.reader.kind != "network" else None
        result.reading = self.reader.estimate(network_metric, statistic)
        return result


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ISONetError(f"{path}: not a readable camera profile ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ISONetError(f"{path.parent}: not a camera profile (its {PROFILE_FILE} has no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ISONetError(f"{path.parent}: camera profile of format version {data.get('version')}; this ISONet reads "
                          f"version {VERSION} (build it again with adapt_camera.py --out)")
    return data


def load_profile(folder: str | os.PathLike, device: str | object = "cpu", precision: str = "fp32",
                 with_prnu: bool = True) -> Profile:
    """The profile in `folder`, its reader network on `device`, and its PRNU unless `with_prnu` is
    False (reading alone needs none); an ISONetError in one line for a folder that is not a profile
    of this version."""
    folder = Path(folder)
    if not (folder / PROFILE_FILE).is_file():
        raise ISONetError(f"{folder}: not a camera profile (no {PROFILE_FILE}; adapt_camera.py --out DIR builds one)")
    data = _read_json(folder / PROFILE_FILE)
    try:
        r = data["reader"]
        reader = Reader(r["kind"], tuple(float(c) for c in r["coefficients"]), tuple(float(c) for c in r["clamp"]))
        residuals = np.asarray(data["held_out"]["residuals"], float)
        camera, level = str(data["camera"]), float(data.get("interval_level", metrics.INTERVAL_LEVEL))
        if reader.kind not in READERS or residuals.ndim != 1 or residuals.size < 2:
            raise ValueError(reader.kind)
        if not all(isinstance(photo, dict) and isinstance(photo.get("file"), str) for photo in data.get("photos", [])):
            raise ValueError("photos")  # Profile.photo_hashes reads them
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ISONetError(f"{folder}: a damaged camera profile ({type(e).__name__} in {PROFILE_FILE})") from None
    network = isonet.load_model(folder / READER_FILE, device, precision) if reader.uses_network else None
    camera_prnu = None
    if with_prnu and data.get("prnu"):
        import prnu  # only a profile's PRNU needs it (and its SciPy)

        try:
            fingerprint = np.load(folder / FINGERPRINT_FILE)
            with np.load(folder / PREDICTORS_FILE) as arrays:
                camera_prnu = prnu.CameraPrnu.from_arrays(fingerprint, dict(arrays))
            photos = data["prnu"]["photos"]  # the examination names them
            if not (isinstance(photos, list) and len(photos) >= 2 and all(isinstance(p, str) for p in photos)):
                raise ValueError("prnu photos")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ISONetError(f"{folder}: a damaged camera profile ({type(e).__name__} in its PRNU files)") from None
    return Profile(folder, camera, reader, residuals, data, network, camera_prnu, level)


def save_profile(folder: str | os.PathLike, summary: dict, network_state: dict | None,
                 camera_prnu: prnu.CameraPrnu | None) -> None:
    """Write a profile folder: `summary` (camera, photos, reader, held_out, figures) as profile.json,
    with the reader's weights and the PRNU arrays. profile.json goes first (a profile being
    replaced stops being one) and comes back last, each file atomically, and files the new profile
    lacks are removed: a folder with a profile.json is a whole profile."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROFILE_FILE).unlink(missing_ok=True)
    for name in (READER_FILE, FINGERPRINT_FILE, PREDICTORS_FILE):
        (folder / name).unlink(missing_ok=True)
    if network_state is not None:
        with atomic_path(folder / READER_FILE) as tmp:
            torch.save(network_state, tmp)
    if camera_prnu is not None:
        fingerprint, arrays = camera_prnu.to_arrays()
        with atomic_path(folder / FINGERPRINT_FILE) as tmp, open(tmp, "wb") as f:
            np.save(f, fingerprint)
        with atomic_path(folder / PREDICTORS_FILE) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    document = {"format": FORMAT, "version": VERSION, **summary, "prnu": summary.get("prnu") if camera_prnu else None}
    with atomic_path(folder / PROFILE_FILE) as tmp:
        tmp.write_text(json.dumps(document, indent=1))


def profile_folders(root: str | os.PathLike) -> list[Path]:
    """The profile folders in `root` (each a folder holding a profile.json), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ISONetError(f"{root}: --profiles is not a folder")
    return sorted(p for p in root.iterdir() if (p / PROFILE_FILE).is_file())


def by_camera(profiles: list[Profile]) -> dict[str, Profile]:
    """The profiles keyed by their camera however spelt (image_io.camera_key); ISONetError naming
    both folders where two are of one camera."""
    keyed: dict[str, Profile] = {}
    for profile in profiles:
        key = camera_key(profile.camera)
        if key in keyed:
            raise ISONetError(f"{profile.folder} and {keyed[key].folder}: two profiles of {profile.camera}; keep one")
        keyed[key] = profile
    return keyed


def matching_profile(path: str | os.PathLike, profiles: dict[str, Profile]) -> Profile | None:
    """The profile whose camera is the photo's EXIF make and model, None when none is (`profiles`
    as by_camera keys them)."""
    camera, _ = read_exif_camera(Path(path))
    return profiles.get(camera_key(camera)) if camera else None


@dataclass
class Readers:
    """What reads each photo's global ISO, and with what interval: the profile given (--profile),
    else the profile of the photo's EXIF camera among those given (--profiles), else the model with
    its interval table (none for a model that has no table)."""

    net: isonet.ISONet
    table: metrics.IntervalTable | None = None
    table_path: Path | None = None
    profile: Profile | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)

    def all_profiles(self) -> list[Profile]:
        return ([self.profile] if self.profile else []) + list(self.profiles.values())

    def profile_for(self, path: str | os.PathLike) -> Profile | None:
        return self.profile or matching_profile(path, self.profiles)

    def read(self, img: np.ndarray, path: str | os.PathLike, stride: int = isonet.PATCH,
             batch_size: int | None = None) -> tuple[isonet.IsoMap, dict]:
        """`img`'s map and global reading, and what the record says of them: the reader, the file's
        kind, and the interval of the true ISO metric (None where nothing calibrates one)."""
        from image_io import FILE_KIND_NAMES, file_kind

        profile = self.profile_for(path)
        kind = file_kind(path)
        if profile is not None:
            result = profile.read(img, self.net, stride, batch_size)
            interval, level, source = profile.interval(result.global_metric), profile.level, f"profile {profile.folder}"
        else:
            result = isonet.iso_map(self.net, img, stride, batch_size)
            interval = None if self.table is None else self.table.interval(result.global_metric, kind)
            level = None if interval is None else self.table.level
            source = None if interval is None else f"{self.table_path} ({FILE_KIND_NAMES[kind]})"
        return result, {"camera": read_exif_camera(Path(path))[0],
                        "reader": None if profile is None else str(profile.folder),
                        # its reading is then not held out, however well it agrees
                        "profile_photo": None if profile is None else file_sha256(path) in profile.own_photos,
                        "file_kind": kind,
                        "iso_metric_interval": None if interval is None else [round(v, 4) for v in interval],
                        "interval_level": level, "interval_source": source}
