"""ISONet: the network and everything that turns an image into ISO maps.

The network, its layer names and its input convention (3x64x64 RGB in [0, 1]) are those of
Zeng et al., "ISONet: ISO Setting Estimation Based on Convolutional Neural Network and Its
Application in Image Forensics" (IWDW 2020), so the authors' published weights load unchanged.
The network regresses the ISO metric log2(ISO / 100) of a 64x64 patch.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, NoReturn

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PATCH = 64
# Both max-pools halve the resolution, so fully convolutional outputs lie on a 4-pixel grid.
DENSE_STEP = 4
FULL_STOPS = tuple(100 * 2**k for k in range(-2, 10))  # ISO 25 ... 51200
PROJECT = Path(__file__).resolve().parent  # shipped models are found from any working directory
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm", ".mpo",
                  ".heic", ".heif"}
# Camera RAW, developed by LibRaw: told by name, since OpenCV would read a TIFF-based RAW's preview.
RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
IMAGE_SUFFIXES |= RAW_SUFFIXES
# Larger declared sizes are refused before decoding: a few hundred bytes can claim 10 gigapixels,
# and read_image needs 12 bytes a pixel. The largest cameras' photos are ~200 MP.
MAX_PIXELS = 300_000_000

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # decoders' own chatter would break our one-line errors


class ISONetError(Exception):
    """A problem with an input file; str() is one line naming the file."""


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------
class ISONet(nn.Module):
    """The published ISONet: 7 valid 3x3 convolutions, 2 max-pools, 3 linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.conv5 = nn.Conv2d(64, 32, 3)
        self.conv6 = nn.Conv2d(32, 16, 3)
        self.conv7 = nn.Conv2d(16, 8, 3)
        self.fc = nn.Linear(8 * 10 * 10, 64)
        self.fc2 = nn.Linear(64, 8)
        self.fc3 = nn.Linear(8, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional trunk: (N,3,H,W) -> (N,8,((H-4)//2-10)//2,((W-4)//2-10)//2); 64x64 -> 8x10x10."""
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = F.max_pool2d(x, 2)
        for conv in (self.conv3, self.conv4, self.conv5, self.conv6, self.conv7):
            x = F.relu(conv(x))
        return F.max_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,64,64) patches -> (N,1) ISO metrics. The paper has no activation between fcs."""
        x = self.features(x).flatten(1)
        return self.fc3(self.fc2(self.fc(x)))

    def dense(self, x: torch.Tensor, step: int = 1) -> torch.Tensor:
        """Fully convolutional forward: (N,3,H,W) -> (N,1,rows,cols).

        Output [i, j] is the network on the 64x64 patch at input offset (4*step*i, 4*step*j):
        the fc layers become a 10x10 convolution and two 1x1 convolutions, so overlapping
        patches share the whole convolutional trunk.
        """
        fc = self.fc.weight.view(64, 8, 10, 10)
        y = F.conv2d(self.features(x), fc, self.fc.bias, stride=step)
        y = F.conv2d(y, self.fc2.weight[:, :, None, None], self.fc2.bias)
        return F.conv2d(y, self.fc3.weight[:, :, None, None], self.fc3.bias)


def strip_prefix(state: dict, prefix: str) -> dict:
    """DataParallel/DDP checkpoints prefix every key with 'module.'."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


# The function NumPy pickles arrays with (numpy.core... in NumPy 1, numpy._core... in NumPy 2).
_NUMPY_RECONSTRUCT = np.empty(0).__reduce__()[0]


def _checkpoint_globals() -> contextlib.AbstractContextManager:
    """Let weights_only unpickle what main_train.py's checkpoints hold besides tensors and plain
    Python: np.random.get_state()'s uint32 array. These globals only rebuild NumPy arrays (their
    contents still pass the restricted unpickler), so no file can run code.

    A torch too old for torch.serialization.safe_globals (2.1 has none) cannot allow them: there
    such checkpoints stay unreadable and bare weights load as before."""
    if not hasattr(torch.serialization, "safe_globals"):
        return contextlib.nullcontext()
    uint32 = type(np.dtype(np.uint32))  # the dtype's own class, which unpickling sets state on
    return torch.serialization.safe_globals([np.ndarray, np.dtype, uint32, _NUMPY_RECONSTRUCT])


def weights_fingerprint(net: ISONet) -> str:
    """SHA-256 of the weights themselves (names and values, not the file), so a calibration can
    name the model it was fitted for whatever the file's path or format."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ISONet:
    """Load weights from a bare state dict or a training checkpoint (weights under "net").

    Raises ISONetError with one line naming the file and the first mismatching key.
    """
    path = Path(path)
    if not path.is_file():
        raise ISONetError(f"{path}: no such model file")
    try:
        with _checkpoint_globals():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a non-weights file
        raise ISONetError(f"{path}: not a PyTorch weights file ({type(e).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("net"), dict):
        obj = obj["net"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ISONetError(f"{path}: not a state dict of ISONet weights")
    state = strip_prefix(dict(obj), "module.")
    net = ISONet()
    expected = net.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ISONetError(f"{path}: not ISONet weights (missing key '{key}')")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ISONetError(
                f"{path}: not ISONet weights (key '{key}' has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)})")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ISONetError(f"{path}: not ISONet weights (unexpected key '{extra[0]}')")
    net.load_state_dict(state)
    # channels_last runs this network ~1.5x faster on CPU (oneDNN) and uses tensor cores on GPU.
    return net.to(device, memory_format=torch.channels_last).eval()


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ISONetError(f"--device {name}: CUDA is not available on this machine")
    if name.startswith("cuda"):
        # TF32 convolutions are ~1e-3 off; maps must match the published procedure to 1e-4.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# ISO metric
# ---------------------------------------------------------------------------------------------
def iso_to_metric(iso: float | np.ndarray) -> float | np.ndarray:
    """The paper's ISO metric log2(ISO / 100): ISO 100 -> 0, ISO 800 -> 3."""
    return np.log2(np.asarray(iso, dtype=np.float64) / 100.0) if np.ndim(iso) else math.log2(iso / 100.0)


def metric_to_iso(metric: float | np.ndarray) -> float | np.ndarray:
    return 100.0 * np.power(2.0, metric) if np.ndim(metric) else 100.0 * 2.0 ** metric


def nearest_full_stop(iso: float) -> int:
    """The standard full-stop ISO (..., 100, 200, 400, ...) nearest in stops."""
    return min(FULL_STOPS, key=lambda s: abs(math.log2(s) - math.log2(iso)))


# ---------------------------------------------------------------------------------------------
# Images
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


def _refuse_huge(path: Path, data: bytes) -> None:
    """Refuse an image whose header declares more than MAX_PIXELS, reading only the header (Pillow
    opens lazily). Files Pillow cannot open are left to the decoders to judge."""
    Image = _pillow()
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our limit, not Pillow's lower one
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged tags are the decoders' to report, in one line
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except (OSError, SyntaxError, ValueError, EOFError):
        return
    finally:
        Image.MAX_IMAGE_PIXELS = saved
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
    return img if img.ndim == 2 else img[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped


def decode_image_file(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as RGB HxWx3, uint8 or uint16 as stored.

    Grayscale is replicated to three channels and alpha is dropped. EXIF orientation is honoured,
    so the map lines up with the picture as viewers show it. The format is told by content, except
    camera RAW (RAW_SUFFIXES), which is developed to 16-bit sRGB (see _decode_raw).
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
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB HxWx3 in [0, 1], as the paper feeds the network: 8-bit
    files divided by 255, 16-bit files by 65535 (see decode_image_file)."""
    img = decode_image_file(path)
    return img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max)


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


def read_exif_iso(path: str | os.PathLike) -> int | None:
    """The ISO the camera wrote in EXIF (see _iso_from_exif), or None. For comparison only.

    None also for files Pillow cannot read or whose EXIF is corrupt: the ISO map does not need it."""
    Image = _pillow()  # Pillow reads EXIF; OpenCV does not expose it
    # What Pillow raises for unreadable files and bad EXIF (UnidentifiedImageError is an OSError; a
    # bad TIFF header in PNG/WebP EXIF is a SyntaxError); it refuses huge images even to read tags.
    unreadable = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
    try:
        if Path(path).suffix.lower() in RAW_SUFFIXES:
            # TIFF-based RAWs (DNG, NEF, CR2, ARW, ...) are TIFF structures Pillow cannot open as
            # images but can parse as EXIF; CR3 and RAF are not TIFF and give None.
            exif = Image.Exif()
            with warnings.catch_warnings():  # Pillow warns of corrupt EXIF; None says it already
                warnings.simplefilter("ignore")
                exif.load(Path(path).read_bytes())
        else:
            with Image.open(path) as im:
                exif = im.getexif()
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except unreadable:
        return None
    return _iso_from_exif(exif, exif_ifd)


def progress(items, **kwargs):
    """A tqdm bar on stderr when it is a terminal; nothing in logs and tests."""
    from tqdm import tqdm

    return tqdm(items, disable=None, file=sys.stderr, **kwargs)


def list_images(paths: list[str]) -> list[Path]:
    """Expand files and folders (non-recursively, sorted) into image paths; files pass as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# ISO maps
# ---------------------------------------------------------------------------------------------
def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 float image -> 1x3xHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def grid_shape(height: int, width: int, stride: int) -> tuple[int, int]:
    """Rows and columns of 64x64 patches at `stride` that fit inside the image."""
    return (height - PATCH) // stride + 1, (width - PATCH) // stride + 1


def image_to_patches(img: np.ndarray) -> np.ndarray:
    """Non-overlapping 64x64 patches in row-major order: HxWx3 -> Nx3x64x64.

    One copy, laid out channels-last in memory (each patch HxWxC, as the image): that is the
    layout the network runs fastest in, so batches reach it without another copy.
    """
    rows, cols = grid_shape(*img.shape[:2], PATCH)
    blocks = img[: rows * PATCH, : cols * PATCH].reshape(rows, PATCH, cols, PATCH, 3)
    return blocks.transpose(0, 2, 1, 3, 4).reshape(rows * cols, PATCH, PATCH, 3).transpose(0, 3, 1, 2)


def default_batch_size(device: torch.device) -> int:
    """Measured on a 2-core CPU, 12-megapixel map: batch 16 is 2.3x the one-patch loop, 32 is
    2.0x, 256 is slower than the loop (activations leave the cache); a GPU wants large batches."""
    return 1024 if device.type == "cuda" else 16


@torch.inference_mode()
def predict_patches(net: ISONet, patches: np.ndarray | torch.Tensor, batch_size: int | None = None) -> np.ndarray:
    """ISO metric of each Nx3x64x64 patch, evaluated `batch_size` at a time."""
    device = next(net.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    out = []
    for start in range(0, len(patches), batch_size):
        batch = torch.as_tensor(patches[start:start + batch_size])  # keeps the array's strides
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        out.append(net(batch).flatten().float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@torch.inference_mode()
def dense_map(net: ISONet, img: np.ndarray, stride: int, tile: int = 64) -> np.ndarray:
    """ISO map of 64x64 patches every `stride` pixels (a multiple of 4), fully convolutionally.

    The image is cut into tiles of `tile` x `tile` output positions (each reading
    stride*(tile-1)+64 input pixels), so memory stays bounded for any image size; 64 was the
    fastest tile on a 2-core CPU (cache-sized activations).
    """
    if stride % DENSE_STEP or not 0 < stride:
        raise ValueError(f"stride must be a positive multiple of {DENSE_STEP}, got {stride}")
    step = stride // DENSE_STEP
    device = next(net.parameters()).device
    rows, cols = grid_shape(*img.shape[:2], stride)
    out = np.empty((rows, cols), np.float32)
    span = stride * (tile - 1) + PATCH  # input pixels that `tile` output positions read
    for r0 in range(0, rows, tile):
        for c0 in range(0, cols, tile):
            y, x = r0 * stride, c0 * stride
            crop = img[y:y + span, x:x + span]
            t = image_to_tensor(crop).to(device).contiguous(memory_format=torch.channels_last)
            block = net.dense(t, step)[0, 0].float().cpu().numpy()
            out[r0:r0 + tile, c0:c0 + tile] = block[: rows - r0, : cols - c0]
    return out


@dataclass
class IsoMap:
    """A patch map and the paper's global estimate (median of the map)."""

    map: np.ndarray  # rows x cols ISO metrics; [i, j] is the patch at (stride*i, stride*j)
    stride: int

    @property
    def global_metric(self) -> float:
        return float(np.median(self.map))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.map, [25, 75])
        return float(q3 - q1)

    @property
    def global_iso(self) -> float:
        return float(metric_to_iso(self.global_metric))


def iso_map(net: ISONet, img: np.ndarray, stride: int = PATCH, batch_size: int | None = None) -> IsoMap:
    """The ISO map of an HxWx3 image: batched patches at stride 64, fully convolutional below."""
    if stride == PATCH:
        rows, cols = grid_shape(*img.shape[:2], PATCH)
        values = predict_patches(net, image_to_patches(img), batch_size)
        return IsoMap(values.reshape(rows, cols), stride)
    return IsoMap(dense_map(net, img, stride), stride)


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


# ---------------------------------------------------------------------------------------------
# Reports and figures
# ---------------------------------------------------------------------------------------------
def analyse_image(net: ISONet, path: str | os.PathLike, stride: int = PATCH, batch_size: int | None = None,
                  calibration: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, IsoMap, dict]:
    """Read one image and compute its map; returns the image, the map and the JSON record.

    `calibration` maps the network's metrics to calibrated ones (evaluate.py --calibrate).
    """
    start = time.perf_counter()
    img = read_image(path)
    result = iso_map(net, img, stride, batch_size)
    if calibration is not None:
        result.map = calibration(result.map).astype(np.float32)
    rows, cols = result.map.shape
    record = {
        "file": str(path),
        "width": img.shape[1],
        "height": img.shape[0],
        "patch_size": PATCH,
        "stride": stride,
        "rows": rows,
        "cols": cols,
        "map": np.round(result.map.astype(np.float64), 6).tolist(),
        "global_iso_metric": result.global_metric,
        "global_iso": result.global_iso,
        "nearest_iso": nearest_full_stop(result.global_iso),
        "iqr": result.iqr,
        "exif_iso": read_exif_iso(path),
        "seconds": time.perf_counter() - start,
    }
    return img, result, record


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


def _iso_colorbar(fig, mappable, ax) -> None:
    """Colour bar in ISO metric, each tick also labelled with its ISO."""
    bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    bar.solids.set_alpha(1)
    low, high = mappable.get_clim()
    ticks = [t for t in bar.get_ticks() if low <= t <= high]
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{t:g} (ISO {metric_to_iso(t):.0f})" for t in ticks])
    bar.set_label("ISO metric log2(ISO/100)")


# A figure is ~800 px wide at dpi 100: a bigger background only costs time (resampling 12 MP took
# most of a figure's seconds) and shows nothing more.
FIGURE_MAX_SIDE = 1600


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
    ax.imshow(figure_background(img) * dim, extent=(0, img.shape[1], img.shape[0], 0))


def draw_map(ax, img: np.ndarray, result: IsoMap):
    """The map over a dimmed copy of the image; each cell is centred on its patch."""
    rows, cols = result.map.shape
    left = PATCH / 2 - result.stride / 2
    extent = (left, left + cols * result.stride, left + rows * result.stride, left)
    show_image(ax, img, dim=0.5)
    shown = ax.imshow(result.map, extent=extent, cmap="inferno", alpha=0.6, interpolation="nearest")
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    return shown


def save_figure(fig, path: str | os.PathLike) -> None:
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format=Path(path).suffix[1:])
    if os.environ.get("ISONET_SHOW") == "1":
        plt.show()
    plt.close(fig)


def save_map_figure(img: np.ndarray, result: IsoMap, path: str | os.PathLike, title: str = "",
                    side_by_side: bool = False, outline: np.ndarray | None = None) -> None:
    """The ISO map over the dimmed image; with side_by_side, the plain image on its left.

    `outline`, a boolean mask of the image's size (a known splice), is drawn on every panel."""
    plt = pyplot()
    panels = 2 if side_by_side else 1
    fig, axes = plt.subplots(1, panels, figsize=(8 * panels, 8 * img.shape[0] / img.shape[1] + 0.5),
                             squeeze=False)
    if side_by_side:
        show_image(axes[0, 0], img)
        axes[0, 0].set_title("image")
    ax = axes[0, -1]
    _iso_colorbar(fig, draw_map(ax, img, result), ax)
    ax.set_title(f"ISO map: global metric {result.global_metric:.2f} (ISO {result.global_iso:.0f})")
    if outline is not None:
        for panel in axes[0]:
            panel.contour(outline, levels=[0.5], colors="cyan", linewidths=1.5)
    fig.suptitle(title)
    save_figure(fig, path)


def save_scatter_figure(result: IsoMap, path: str | os.PathLike, title: str = "") -> None:
    """Patch index against ISO metric, as the paper's script plots it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    values = result.map.ravel()
    ax.scatter(np.arange(1, values.size + 1), values, s=8)
    ax.axhline(result.global_metric, color="red", lw=1, label=f"median {result.global_metric:.2f}")
    ax.set_xlabel("patch index (row-major)")
    ax.set_ylabel("ISO metric")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Command-line plumbing shared by test_model.py, Fig4.py and Fig7.py
# ---------------------------------------------------------------------------------------------
def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and a non-zero exit: no traceback for a user's mistake."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    sys.exit(code)


def add_inference_args(parser: argparse.ArgumentParser, model_default: str, pic_help: str | None) -> None:
    """The paper's flags (--model_path, --pic_path, --checkpoint) and ours; no --pic_path if no help."""
    parser.add_argument("--model_path", default=str(PROJECT / model_default),
                        help=f"ISONet weights: state dict or training checkpoint (default: this project's {model_default})")
    if pic_help:
        parser.add_argument("--pic_path", nargs="+", help=pic_help)
    parser.add_argument("--checkpoint", action="store_true",
                        help="accepted for compatibility: checkpoints are detected automatically")
    parser.add_argument("--out_dir", default="results", help="where outputs go (default results/)")
    parser.add_argument("--stride", type=int, default=PATCH,
                        help="patch step in pixels: 64 = the paper's non-overlapping map; "
                             "a multiple of 4 below 64 gives a dense map (fully convolutional)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch_size", type=int, help="patches per forward pass (default 16 on CPU, 1024 on CUDA)")
    parser.add_argument("--show", action="store_true", help="also open the figures in windows")


def setup_inference(args: argparse.Namespace, model_path: str | None = None) -> ISONet:
    """Validate the shared arguments and load the model (--model_path unless given), or exit with one line."""
    if not (0 < args.stride <= PATCH and args.stride % DENSE_STEP == 0):
        fail(f"--stride {args.stride}: must be a multiple of {DENSE_STEP} between 4 and {PATCH}")
    if args.batch_size is not None and args.batch_size < 1:
        fail(f"--batch_size {args.batch_size}: must be at least 1")
    if args.show:
        os.environ["ISONET_SHOW"] = "1"
    try:
        return load_model(model_path or args.model_path, resolve_device(args.device))
    except ISONetError as e:
        fail(str(e))


def map_one_image(args: argparse.Namespace, net: ISONet) -> tuple[Path, np.ndarray, IsoMap, dict]:
    """Fig4/Fig7: map the one --pic_path, or exit with one line."""
    path = _single_pic_path(args)
    try:
        return (path, *analyse_image(net, path, args.stride, args.batch_size))
    except ISONetError as e:
        fail(str(e), 1)


def demo_if_no_pic(args: argparse.Namespace, make_demo: Callable[[Path], object]):
    """Without --pic_path: render the embedded demo into --out_dir and map that instead.

    `make_demo(out_dir)` returns a camera_noise.Demo (passed in: camera_noise imports this module)."""
    if args.pic_path:
        return None
    try:
        demo = make_demo(Path(args.out_dir))
    except ISONetError as e:
        fail(f"no --pic_path, and the embedded demo could not be rendered: {e}")
    args.pic_path = [str(demo.path)]
    scene = f"ISO {demo.iso}" + (f" with a region spliced in from ISO {demo.region_iso}" if demo.region_iso else "")
    print(f"no --pic_path given: demo {demo.path}, rendered at {scene} with the noise of a {demo.camera}")
    return demo


def describe_truth(demo, estimate: float) -> str:
    truth = iso_to_metric(demo.iso)
    return (f"truth: ISO {demo.iso} (metric {truth:.3f}); estimate ISO {metric_to_iso(estimate):.0f} "
            f"(metric {estimate:.3f}), error {estimate - truth:+.2f} stops")


def _single_pic_path(args: argparse.Namespace) -> Path:
    if len(args.pic_path) > 1:
        fail(f"--pic_path takes one image here, got {len(args.pic_path)} (test_model.py maps many)")
    return Path(args.pic_path[0])
