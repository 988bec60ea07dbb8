"""Real labelled photos: a checkout of public camera files -> the paper's layout, split by camera,
with a manifest of where each photo came from (import_real_photos.py is the command).
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from camera_noise import camera_slug
from dataset import iso_of_folder_name
from image_io import (
    EDITOR_SOFTWARE,
    IMAGE_SUFFIXES,
    atomic_path,
    camera_key,
    file_sha256,
    one_spelling,
    read_exif_camera,
    read_exif_iso,
)
from isonet import ISONetError

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ["file", "split", "iso", "camera", "source", "commit", "licence", "original"]
REAL_LAYOUTS = ("exif", "iso_folders", "sidd")


# SIDD names its files SCENE_INSTANCE_PHONE_ISO_SHUTTER_TEMPERATURE_LIGHT...; its five phones.
SIDD_PHONES = {"GP": "Google Pixel", "IP": "Apple iPhone 7", "S6": "Samsung Galaxy S6 Edge",
               "N6": "Motorola Nexus 6", "G4": "LG G4"}


@dataclass(frozen=True)
class RealPhoto:
    path: Path
    camera: str
    iso: int


def label_real_photo(path: Path, root: Path, layout: str, camera: str | None) -> RealPhoto | str:
    """The photo's camera and ISO under `layout`, or the reason it cannot be used."""
    if layout == "exif":
        exif_camera, software = read_exif_camera(path)
        iso = read_exif_iso(path)
        if software and EDITOR_SOFTWARE.search(software):
            return f"edited with {software}, not a camera file"
        if iso is None or (exif_camera or camera) is None:
            return "no EXIF ISO" if iso is None else "no EXIF camera model"
        return RealPhoto(path, camera or exif_camera, iso)
    if layout == "iso_folders":
        isos = [iso for part in path.relative_to(root).parts[:-1] if (iso := iso_of_folder_name(part))]
        if not isos:
            return "no ISO folder (e.g. 800, ISO800, iso0800) on its path"
        return RealPhoto(path, camera, isos[-1])
    fields = path.stem.split("_")
    if len(fields) < 4 or fields[2] not in SIDD_PHONES or not fields[3].isdigit():
        return "not a SIDD file name (SCENE_INSTANCE_PHONE_ISO_...)"
    return RealPhoto(path, camera or SIDD_PHONES[fields[2]], int(fields[3]))


def find_real_photos(root: str | os.PathLike, layout: str, camera: str | None = None,
                     include: str | None = None) -> tuple[list[RealPhoto], list[tuple[Path, str]]]:
    """Every image under `root` (recursively) whose path below it, written '/a/b.jpg', matches
    the regular expression `include`, labelled by
    `layout`: 'exif' (EXIF ISO and make/model; edited files refused), 'iso_folders' (the ISO is a
    folder name on the path; all from `camera`) or 'sidd' (SIDD's file names). Returns the
    labelled photos and the (file, reason) pairs left out."""
    root = Path(root)
    if not root.is_dir():
        raise ISONetError(f"{root}: no such folder")
    if layout not in REAL_LAYOUTS:
        raise ISONetError(f"layout {layout!r}: expected one of {', '.join(REAL_LAYOUTS)}")
    if layout == "iso_folders" and not camera:
        raise ISONetError(f"{root}: the iso_folders layout needs the camera's name (--camera)")
    pattern = re.compile(include) if include else None
    photos, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        if pattern and not pattern.search("/" + path.relative_to(root).as_posix()):
            continue
        labelled = label_real_photo(path, root, layout, camera)
        if isinstance(labelled, RealPhoto):
            photos.append(labelled)
        else:
            skipped.append((path, labelled))
    if not photos:
        raise ISONetError(f"{root}: no labelled photo found with layout {layout}"
                          + (f" and --include {include}" if include else ""))
    return photos, skipped


def camera_split(camera: str, test_cameras: Iterable[str], test_fraction: float) -> str:
    """'Test' or 'Train' for every photo of `camera`: the named test cameras (however spelt), else a
    stable hash of the name as EXIF spells it (split by camera, never by image: a camera's photos
    share its processing)."""
    if camera_key(camera) in {camera_key(c) for c in test_cameras}:
        return "Test"
    digest = int(hashlib.sha256(camera.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "Test" if digest < test_fraction else "Train"


def read_manifest(root: str | os.PathLike) -> list[dict]:
    """The rows of `root`/manifest.csv, [] when there is none or it is another tool's (no file and
    camera columns)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader) if {"file", "camera"} <= set(reader.fieldnames or ()) else []


def import_photos(photos: list[RealPhoto], out_dir: str | os.PathLike, split_of: Callable[[RealPhoto], str],
                       source: str, commit: str = "", licence: str = "") -> tuple[list[dict], list[tuple[Path, str]]]:
    """Copy `photos` into out_dir/{Train,Test}/<ISO>/<camera>__<name> and add them to the
    manifest (file, split, iso, camera, source, commit, licence, original). Importing a photo
    again replaces its row and its copy, wherever the new split puts it (a photo must never sit
    in both splits); a photo whose bytes another original already brought in (the same file at two
    commits of a repository, or under two names) is left out, since it would count twice. Every
    file and the manifest are written atomically. Returns the rows added and the (file, reason)
    pairs left out."""
    out_dir = Path(out_dir)
    rows = {row["original"]: row for row in read_manifest(out_dir)}
    owners = {row["file"]: original for original, row in rows.items()}
    by_size: dict[int, list[str]] = {}  # copies' sizes, so that only same-size files are hashed
    for original, row in rows.items():
        if (out_dir / row["file"]).is_file():
            by_size.setdefault((out_dir / row["file"]).stat().st_size, []).append(original)
    digests: dict[str, str] = {}

    def same_bytes_as(path: Path, original: str) -> str | None:
        """The original of another row whose copy has the bytes of `path`, if any."""
        others = [o for o in by_size.get(path.stat().st_size, []) if o != original]
        if not others:
            return None
        digest = file_sha256(path)
        for other in others:
            if other not in digests:
                digests[other] = file_sha256(out_dir / rows[other]["file"])
            if digests[other] == digest:
                return other
        return None

    added, duplicates = [], []
    for photo in photos:
        original = str(photo.path.resolve())
        if twin := same_bytes_as(photo.path, original):
            duplicates.append((photo.path, f"the same file as {rows[twin]['file']} (from {twin}), already in the set"))
            continue
        split = split_of(photo)
        relative = Path(split) / str(photo.iso) / f"{camera_slug(photo.camera)}__{photo.path.name}"
        if owners.get(relative.as_posix(), original) != original:
            # Another original already has this name (series1/iso100.jpg and series2/iso100.jpg,
            # or two repositories' TP3/iso100.jpg): a name of its own, the same on every import.
            tag = hashlib.sha1(original.encode()).hexdigest()[:8]
            relative = relative.with_name(f"{relative.stem}-{tag}{relative.suffix}")
        with atomic_path(out_dir / relative) as tmp:
            shutil.copyfile(photo.path, tmp)
        if original in rows and rows[original]["file"] != relative.as_posix():
            (out_dir / rows[original]["file"]).unlink(missing_ok=True)
        rows[original] = {"file": relative.as_posix(), "split": split, "iso": photo.iso, "camera": photo.camera,
                          "source": source, "commit": commit, "licence": licence, "original": original}
        owners[relative.as_posix()] = original
        by_size.setdefault((out_dir / relative).stat().st_size, []).append(original)
        digests.pop(original, None)
        added.append(rows[original])
    with atomic_path(out_dir / MANIFEST) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(rows.values(), key=lambda r: r["file"]))
    return added, duplicates


def cameras_of(paths: Iterable[Path], data_root: str | os.PathLike) -> list[str]:
    """Each file's camera: from the manifest of the photo set it lies in (searched upwards from
    its folder to `data_root`), else EXIF make and model, else 'unknown'."""
    root = Path(data_root).resolve()
    manifests: dict[Path, dict[str, str]] = {}

    def manifest_camera(path: Path) -> str | None:
        for folder in path.resolve().parents:
            if folder not in manifests:
                manifests[folder] = {(folder / r["file"]).as_posix(): r["camera"] for r in read_manifest(folder)}
            camera = manifests[folder].get(path.resolve().as_posix())
            if camera or folder == root or root not in folder.parents:
                return camera
        return None

    return one_spelling([manifest_camera(p) or read_exif_camera(p)[0] or "unknown" for p in map(Path, paths)])
