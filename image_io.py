"""Image files in, as ISONet reads them: decoding every supported format (EXIF orientation
honoured, or undone for PRNU), the EXIF ISO, folder listing, and atomic writes of outputs.

decode_image_file gives RGB uint8/uint16 as stored; read_image the network's float input in [0, 1].
Both turn the pixels as a viewer shows them, or, with sensor_order=True, leave them in the order the
sensor gave them (read_orientation says how a viewer turns them).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from isonet import PATCH, ISONetError, to_unit_float

if TYPE_CHECKING:
    from PIL.Image import Exif


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm", ".mpo",
                  ".heic", ".heif"}
# Camera RAW, developed by LibRaw: told by name, since OpenCV would read a TIFF-based RAW's preview.
RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
IMAGE_SUFFIXES |= RAW_SUFFIXES
# Larger declared sizes are refused before decoding: a few hundred bytes can claim 10 gigapixels,
# and read_image needs 12 bytes a pixel. The largest cameras' photos are ~200 MP.
MAX_PIXELS = 300_000_000

# The decoders' own chatter would break our one-line errors.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """libjpeg/libpng write warnings straight to fd 2; we report one line of our own instead.

    fd 2 belongs to the whole process, so concurrent readers take turns (or one thread's restore
    could leave stderr pointing at /dev/null)."""
    with _STDERR_LOCK, open(os.devnull, "w") as null:
        saved = os.dup(2)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# A JPEG marker: FF and a code that is not 00 (a stuffed FF byte in entropy-coded data), D0-D7
# (restart markers, which belong to the scan around them) or FF (fill before the real code).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_EOI = 0xD9
_JPEG_NO_LENGTH = (0xD8, 0x01)  # SOI and TEM: the only other markers without a length field


def jpeg_reaches_eoi(data: bytes) -> bool:
    """Whether a JPEG's marker structure runs from SOI to an end-of-image marker.

    Segments are stepped over by their lengths, so an EOI inside one (an EXIF thumbnail's) is never
    taken for ours; a scan's entropy-coded data is searched for the marker that ends it, which is
    how progressive files' later scans are reached. Stray bytes between segments are skipped, as
    libjpeg skips them. Nothing after EOI is read: cameras pad with zeros or append trailers, a
    second image (MPO) or a whole video (motion photos). Each search runs in C: a few ms for 10 MB.
    """
    pos = 2  # after SOI
    while (found := _JPEG_MARKER.search(data, pos)) is not None:
        pos = found.start()
        code = data[pos + 1]
        if code == _JPEG_EOI:
            return True
        # A segment cut short sends pos to (or past) the end, where the next search finds nothing.
        pos += 2 if code in _JPEG_NO_LENGTH else 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def _pillow():
    """PIL.Image, able to open HEIC/HEIF too."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    return Image


@contextlib.contextmanager
def _pillow_headers() -> Iterator:
    """PIL.Image for reading headers and tags only: Pillow's pixel limit lifted (no pixel is
    decoded; MAX_PIXELS is this tool's limit, not Pillow's lower one) and its warnings of damaged
    tags silenced (the decoders report those, in one line)."""
    Image = _pillow()
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Image
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _refuse_huge(path: Path, data: bytes) -> None:
    """Refuse an image whose header declares more than MAX_PIXELS, reading only the header (Pillow
    opens lazily). Files Pillow cannot open are left to the decoders to judge."""
    try:
        with _pillow_headers() as Image, Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except (OSError, SyntaxError, ValueError, EOFError):
        return
    if width * height > MAX_PIXELS:
        raise ISONetError(f"{path}: declares {width}x{height} pixels, more than the {MAX_PIXELS // 10**6} "
                          f"megapixels this tool reads (corrupt, or a decompression bomb)")


def _is_heif(data: bytes) -> bool:
    """An ISO-BMFF 'ftyp' box naming a HEIF brand: what libheif reads and OpenCV cannot."""
    import pillow_heif

    return pillow_heif.is_supported(data[:64])


def _decode_heif(path: Path, data: bytes) -> np.ndarray:
    """HEIC/HEIF through libheif (pillow-heif), as RGB(A) or gray, 16-bit where the file has more than 8
    bits (scaled to the full uint16 range). libheif applies the container's rotation and mirror,
    which is where HEIF keeps orientation."""
    import pillow_heif

    try:
        return np.asarray(pillow_heif.open_heif(data, convert_hdr_to_8bit=False))
    except (ValueError, RuntimeError, OSError) as e:  # what libheif's errors arrive as
        raise ISONetError(f"{path}: not a readable HEIF image ({e})".splitlines()[0]) from None


def _decode_raw(path: Path) -> np.ndarray:
    """Develop a camera RAW as net_tif.pth's training TIFFs were: camera white balance, sRGB,
    16-bit, no brightening and no noise reduction (which would erase the noise ISO is read from).
    LibRaw turns the image as the camera's orientation flag says."""
    import rawpy

    try:  # LibRaw prints its own complaints on fd 2; ours is the one line
        with _quiet_stderr(), rawpy.imread(str(path)) as raw:
            return raw.postprocess(output_bps=16, no_auto_bright=True, use_camera_wb=True,
                                   output_color=rawpy.ColorSpace.sRGB, median_filter_passes=0,
                                   fbdd_noise_reduction=rawpy.FBDDNoiseReductionMode.Off)
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise ISONetError(f"{path}: not a readable RAW image ({type(e).__name__})") from None


def _decode_opencv(path: Path, data: bytes) -> np.ndarray:
    """Everything else through OpenCV, which honours EXIF orientation in JPEG, PNG, WebP and TIFF."""
    if data[:2] == b"\xff\xd8" and not jpeg_reaches_eoi(data):
        # libjpeg pads a truncated file with grey and only warns; that grey would look like ISO 0.
        raise ISONetError(f"{path}: truncated JPEG (the data ends before its end-of-image marker)")
    try:
        with _quiet_stderr():
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error:  # OpenCV asserts on sizes over its own limit, where Pillow could not read the header
        img = None
    if img is None:
        raise ISONetError(f"{path}: not a readable image (unknown format, truncated or corrupt)")
    if img.ndim == 2 or img.dtype not in (np.uint8, np.uint16):  # other types: refused by decode_image_file
        return img
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # IMREAD_ANYCOLOR drops alpha


def decode_image_file(path: str | os.PathLike, sensor_order: bool = False) -> np.ndarray:
    """Decode an image file as RGB HxWx3, uint8 or uint16 as stored.

    Grayscale is replicated to three channels and alpha is dropped. EXIF orientation is honoured,
    so the map lines up with the picture as viewers show it; with `sensor_order` it is undone
    (read_orientation), leaving the pixels where the sensor's photosites put them, as PRNU needs.
    The format is told by content, except camera RAW (RAW_SUFFIXES), which is developed to 16-bit
    sRGB (see _decode_raw).
    """
    path = Path(path)
    if not path.is_file():
        raise ISONetError(f"{path}: no such file")
    data = path.read_bytes()
    if not data:
        raise ISONetError(f"{path}: empty file")
    if path.suffix.lower() in RAW_SUFFIXES:
        img = _decode_raw(path)
    else:
        _refuse_huge(path, data)
        img = _decode_heif(path, data) if _is_heif(data) else _decode_opencv(path, data)
    if img.dtype not in (np.uint8, np.uint16):
        raise ISONetError(f"{path}: unsupported sample type {img.dtype} (8- or 16-bit expected)")
    img = img.reshape(*img.shape[:2], -1)
    # Gray (with or without alpha) is replicated to three channels; colour alpha is dropped.
    img = np.repeat(img[:, :, :1], 3, axis=2) if img.shape[2] < 3 else img[:, :, :3]
    h, w = img.shape[:2]
    if h < PATCH or w < PATCH:
        raise ISONetError(f"{path}: image is {w}x{h}, smaller than one {PATCH}x{PATCH} patch")
    if sensor_order:
        # Each decoder turns the picture as its orientation says (OpenCV ignores IMREAD_IGNORE_ORIENTATION
        # for TIFF), so the turn is undone here, the same way for every format.
        img = np.ascontiguousarray(orient(img, inverse_orientation(_read_orientation(path, data))))
    return img


def read_image(path: str | os.PathLike, sensor_order: bool = False) -> np.ndarray:
    """Read an image as float32 RGB HxWx3 in [0, 1], as the paper feeds the network: 8-bit
    files divided by 255, 16-bit files by 65535 (see decode_image_file)."""
    return to_unit_float(decode_image_file(path, sensor_order))


# ---------------------------------------------------------------------------------------------
# Orientation: EXIF's eight codes, each a turn or mirror of the pixel grid
# ---------------------------------------------------------------------------------------------
_ORIENTATION = 0x0112
# Code -> how a viewer turns the stored HxW grid: (transpose first, then flip rows, flip columns).
_ORIENTATION_STEPS = {1: (False, False, False), 2: (False, False, True), 3: (False, True, True),
                      4: (False, True, False), 5: (True, False, False), 6: (True, False, True),
                      7: (True, True, True), 8: (True, True, False)}
# np.rot90's k (quarter turns anticlockwise) as orientation codes.
QUARTER_TURNS = {0: 1, 1: 8, 2: 3, 3: 6}


def orient(img: np.ndarray, code: int) -> np.ndarray:
    """The HxW[xC] pixel grid `img` as a viewer shows it under EXIF orientation `code` (a view)."""
    transpose, flip_rows, flip_columns = _ORIENTATION_STEPS[code]
    if transpose:
        img = img.swapaxes(0, 1)
    return img[::-1 if flip_rows else 1, ::-1 if flip_columns else 1]


def inverse_orientation(code: int) -> int:
    """The code that undoes `code`: the two quarter turns undo each other, the rest undo themselves."""
    return {6: 8, 8: 6}.get(code, code)


def compose_orientations(first: int, then: int) -> int:
    """The one code that turns a grid as `first` and then `then` do."""
    probe = np.arange(6).reshape(2, 3)
    both = orient(orient(probe, first), then)
    return next(c for c in _ORIENTATION_STEPS if orient(probe, c).shape == both.shape
                and np.array_equal(orient(probe, c), both))


def orient_box(box: tuple[float, float, float, float], height: int, width: int,
               code: int) -> tuple[float, float, float, float]:
    """A rectangle (x0, x1, y0, y1) in the pixel coordinates of a `height` x `width` grid, in those of
    the grid turned by `code`, as (x0, x1, y0, y1) with x0 < x1, y0 < y1: what matplotlib's extent
    needs to draw an overlay turned with its image."""
    transpose, flip_rows, flip_columns = _ORIENTATION_STEPS[code]
    x0, x1, y0, y1 = box
    if transpose:
        x0, x1, y0, y1, height, width = y0, y1, x0, x1, width, height
    if flip_rows:
        y0, y1 = height - y1, height - y0
    if flip_columns:
        x0, x1 = width - x1, width - x0
    return x0, x1, y0, y1


def _heif_orientation(data: bytes) -> int:
    """The code of the rotations and mirrors libheif applies (the container's irot and imir boxes, in
    their order); 1 for files pillow-heif cannot open (the decoder reports those)."""
    import pillow_heif

    steps = {("irot", 90): 8, ("irot", 180): 3, ("irot", 270): 6, ("imir", 0): 4, ("imir", 1): 2}
    try:
        transformations = pillow_heif.open_heif(data)[0]._c_image.transformations  # no public accessor
    except (ValueError, RuntimeError, OSError, AttributeError):
        return 1
    code = 1
    for step in transformations:
        code = compose_orientations(code, steps.get(tuple(step), 1))  # clap (a crop) cannot be undone
    return code


def _raw_orientation(path: Path) -> int:
    """The code of LibRaw's turn (its flip: 3, 5 or 6); 1 for files LibRaw cannot open."""
    import rawpy

    try:
        with _quiet_stderr(), rawpy.imread(str(path)) as raw:
            flip = raw.sizes.flip
    except (rawpy.LibRawError, OSError, ValueError):
        return 1
    return {3: 3, 5: 8, 6: 6}.get(flip, 1)


def _read_orientation(path: Path, data: bytes) -> int:
    if path.suffix.lower() in RAW_SUFFIXES:
        return _raw_orientation(path)
    if _is_heif(data):
        return _heif_orientation(data)
    exif = read_exif(path)
    code = None if exif is None else _first_int(exif.get(_ORIENTATION))
    return code if code in _ORIENTATION_STEPS else 1


def read_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation code (1-8) that turns the file's pixels, in the sensor's order
    (decode_image_file(sensor_order=True)), as a viewer shows them: EXIF's Orientation in JPEG,
    PNG, WebP and TIFF, the container's rotations in HEIF, LibRaw's in RAW; 1 when none is recorded."""
    path = Path(path)
    return _read_orientation(path, path.read_bytes())


_EXIF_IFD = 0x8769
_PHOTOGRAPHIC_SENSITIVITY = 0x8827  # ISOSpeedRatings before Exif 2.3
_SENSITIVITY_TYPE = 0x8830
_SOS, _REI, _ISO_SPEED = 0x8831, 0x8832, 0x8833  # the ISO 12232 values Exif 2.3 records in full
# SensitivityType: which of those the camera recorded. Where it names several they differ little;
# we take them in one fixed order, REI, ISO speed, SOS.
_SENSITIVITY_TAGS = {1: (_SOS,), 2: (_REI,), 3: (_ISO_SPEED,), 4: (_REI, _SOS), 5: (_ISO_SPEED, _SOS),
                     6: (_REI, _ISO_SPEED), 7: (_REI, _ISO_SPEED, _SOS)}


def _first_int(value: object) -> int | None:
    """A tag's value as a positive int: the first of a sequence; None when absent, zero or not a number."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _iso_from_exif(exif: Mapping[int, object], exif_ifd: Mapping[int, object]) -> int | None:
    """The ISO in a file's EXIF: PhotographicSensitivity, unless absent or 65535, the value Exif 2.3
    writes for 'ISO 65535 or more'; then the full value of the parameter SensitivityType names
    (REI, ISO speed or SOS), else of any of them: each beats a clipped 65535."""
    iso = _first_int(exif_ifd.get(_PHOTOGRAPHIC_SENSITIVITY, exif.get(_PHOTOGRAPHIC_SENSITIVITY)))
    if iso is not None and iso != 65535:
        return iso
    named = _SENSITIVITY_TAGS.get(_first_int(exif_ifd.get(_SENSITIVITY_TYPE)), ())
    order = named + tuple(tag for tag in (_REI, _ISO_SPEED, _SOS) if tag not in named)
    full = (_first_int(exif_ifd.get(tag)) for tag in order)
    return next((value for value in full if value is not None), iso)


def read_exif(path: str | os.PathLike) -> Exif | None:
    """A file's EXIF (Pillow's Exif: IFD0's tags, get_ifd for the others), or None for files Pillow
    cannot read or whose EXIF is corrupt. Only tags are read, never pixels, so neither Pillow's
    pixel limit nor a header's absurd size refuses it."""
    # What Pillow raises for unreadable files and bad EXIF (UnidentifiedImageError is an OSError; a
    # bad TIFF header in PNG/WebP EXIF is a SyntaxError), and the pixel limit's error, should another
    # thread restore that limit meanwhile. Pillow reads EXIF; OpenCV does not expose it.
    unreadable = (OSError, SyntaxError, ValueError, EOFError, _pillow().DecompressionBombError)
    try:
        with _pillow_headers() as Image:
            if Path(path).suffix.lower() in RAW_SUFFIXES:
                # TIFF-based RAWs (DNG, NEF, CR2, ARW, ...) are TIFF structures Pillow cannot open
                # as images but can parse as EXIF; CR3 and RAF are not TIFF and give None.
                exif = Image.Exif()
                exif.load(Path(path).read_bytes())
                exif.get_ifd(_EXIF_IFD)  # parsed now, so that a corrupt sub-IFD is caught here
            else:
                with Image.open(path) as im:
                    exif = im.getexif()
                    exif.get_ifd(_EXIF_IFD)  # while the file is open: a TIFF's sub-IFD is read from it
    except unreadable:
        return None
    return exif


def read_exif_iso(path: str | os.PathLike) -> int | None:
    """The ISO the camera wrote in EXIF (see _iso_from_exif), or None. For comparison only.

    None also for files Pillow cannot read or whose EXIF is corrupt: the ISO map does not need it."""
    exif = read_exif(path)
    return None if exif is None else _iso_from_exif(exif, exif.get_ifd(_EXIF_IFD))


# Software that rewrites pixels: such files carry the editor's processing, not the camera's.
EDITOR_SOFTWARE = re.compile(r"photoshop|lightroom|gimp|noise ?ninja|picasa|paint|digikam|darktable|capture one|"
                             r"aperture|acdsee|snapseed|affinity", re.IGNORECASE)


def read_exif_camera(path: Path) -> tuple[str | None, str | None]:
    """(make + model, software) from EXIF; None where absent."""
    exif = read_exif(path)
    if exif is None:
        return None, None

    def text(tag: int) -> str:
        value = exif.get(tag)
        return " ".join(value.replace("\x00", " ").split()) if isinstance(value, str) else ""

    make, model, software = text(0x010F), text(0x0110), text(0x0131)
    if make and model.lower().startswith(make.split()[0].lower()):
        make = ""
    camera = " ".join(part for part in (make, model) if part)
    return camera or None, software or None


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes: what tells the same file under another name."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def camera_key(camera: str) -> str:
    """What tells two cameras' names apart: not case or spacing (EXIF spells one model both
    'RP_OV5647' and 'RP_ov5647')."""
    return " ".join(camera.casefold().split())


def one_spelling(cameras: list[str]) -> list[str]:
    """The cameras, each named by the commonest of its spellings (camera_key), so that one model
    spelt two ways counts as one camera."""
    commonest: dict[str, str] = {}
    for name, _ in Counter(cameras).most_common():
        commonest.setdefault(camera_key(name), name)
    return [commonest[camera_key(name)] for name in cameras]


# What a file shows of its history, which decides how far a reading of it can be trusted (the
# shipped models' intervals are calibrated per kind): LOSSLESS formats keep the sensor's noise as
# developed; a lossy file with a camera's EXIF is most likely the camera's own JPEG, with its noise
# reduction; another lossy file has been edited or re-saved; one without any EXIF could be either.
FILE_KINDS = ("uncompressed", "in_camera_jpeg", "other_jpeg", "no_metadata")
FILE_KIND_NAMES = {"uncompressed": "uncompressed or RAW-developed image", "in_camera_jpeg": "in-camera JPEG",
                   "other_jpeg": "edited or re-saved JPEG", "no_metadata": "JPEG without metadata"}


def _webp_image_chunk(data: bytes) -> bytes | None:
    """The fourcc of a WebP's image chunk: 'VP8 ' (lossy) or 'VP8L' (lossless); None if not a WebP."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    pos = 12
    while pos + 8 <= len(data):
        fourcc, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc
        pos += 8 + size + size % 2
    return None


def _is_lossy(data: bytes) -> bool:
    """JPEG, HEIF, or WebP in its lossy (VP8) coding."""
    return data[:2] == b"\xff\xd8" or _is_heif(data) or _webp_image_chunk(data) == b"VP8 "


def file_kind(path: str | os.PathLike) -> str:
    """One of FILE_KINDS, from the file's coding and its EXIF: RAW and lossless formats are
    'uncompressed'; a lossy file is an 'in_camera_jpeg' where EXIF names a camera and no editor,
    'no_metadata' where it has no EXIF at all, and an 'other_jpeg' otherwise."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(4096)
        data = head + f.read() if head[:4] == b"RIFF" else head  # a WebP's image chunk can lie further in
    if path.suffix.lower() in RAW_SUFFIXES or not _is_lossy(data):
        return "uncompressed"
    exif = read_exif(path)
    if exif is None or not len(exif):
        return "no_metadata"
    camera, software = read_exif_camera(path)
    return "in_camera_jpeg" if camera and not (software and EDITOR_SOFTWARE.search(software)) else "other_jpeg"


def list_images(paths: list[str], recursive: bool = False) -> list[Path]:
    """Expand files and folders (sorted; with `recursive`, their subfolders too) into image paths;
    files pass as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            out.extend(sorted(f for f in found if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name beside `path`; rename it to `path` only if the block succeeds.

    The file gets the permissions a plain open() would give it (mkstemp's are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
