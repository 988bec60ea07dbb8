"""ISONet: the network, its weights, and the ISO maps it computes from an image array.

The network, its layer names and its input convention (3x64x64 RGB in [0, 1]) are those of
Zeng et al., "ISONet: ISO Setting Estimation Based on Convolutional Neural Network and Its
Application in Image Forensics" (IWDW 2020), so the authors' published weights load unchanged.
The network regresses the ISO metric log2(ISO / 100) of a 64x64 patch. Reading image files is
image_io.py's; reports, figures and the scripts' shared plumbing are reports.py's.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PATCH = 64
# Both max-pools halve the resolution, so fully convolutional outputs lie on a 4-pixel grid.
DENSE_STEP = 4
BAND_PATCHES = 4096  # patches cut from the image at a time (48 MiB of float patches)
FULL_STOPS = tuple(100 * 2**k for k in range(-2, 10))  # ISO 25 ... 51200
# Inference precisions. bf16 (autocast) ran the stride-64 map of a 2 MP photo 3.3x faster on this
# project's AMX CPU; on 135 real photos its global estimates moved by 0.004 stop (median, at most
# 0.06), its patch values by up to 0.05 (median per photo, at most 0.36). fp32 matches the
# published procedure to 1e-4.
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
PROJECT = Path(__file__).resolve().parent  # shipped models are found from any working directory


class ISONetError(Exception):
    """A problem with an input file; str() is one line naming the file.

    Defined in the one module that imports none of this project's others, so every module can
    import it without a cycle."""


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
        self.precision = "fp32"  # of the maps (PRECISIONS); the weights themselves stay fp32

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


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "fp32") -> ISONet:
    """Load weights from a bare state dict or a training checkpoint (weights under "net"), for maps
    computed in `precision` (a key of PRECISIONS).

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
    net.precision = precision
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
# ISO maps
# ---------------------------------------------------------------------------------------------
def to_unit_float(img: np.ndarray) -> np.ndarray:
    """Pixels as the network reads them: integers divided by their type's maximum (255 for 8-bit,
    65535 for 16-bit) into float32 in [0, 1]; float images, already there, as they are."""
    if not np.issubdtype(img.dtype, np.integer):
        return img
    out = img.astype(np.float32)
    out /= np.float32(np.iinfo(img.dtype).max)  # in place: one float copy of a 100 MP image is 1.2 GB
    return out


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 float image -> 1x3xHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def grid_shape(height: int, width: int, stride: int) -> tuple[int, int]:
    """Rows and columns of 64x64 patches at `stride` that fit inside the image."""
    return (height - PATCH) // stride + 1, (width - PATCH) // stride + 1


def image_to_patches(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Non-overlapping 64x64 patches in row-major order: HxWx3 -> Nx3x64x64, on img's device.

    One copy, laid out channels-last in memory (each patch HxWxC, as the image): that is the
    layout the network runs fastest in, so batches reach it without another copy.
    """
    img = torch.as_tensor(img)
    rows, cols = grid_shape(*img.shape[:2], PATCH)
    blocks = img[: rows * PATCH, : cols * PATCH].reshape(rows, PATCH, cols, PATCH, 3)
    return blocks.permute(0, 2, 1, 3, 4).reshape(rows * cols, PATCH, PATCH, 3).permute(0, 3, 1, 2)


def default_batch_size(device: torch.device) -> int:
    """Measured on a 2-core CPU, 12-megapixel map: batch 16 is 2.3x the one-patch loop, 32 is
    2.0x, 256 is slower than the loop (activations leave the cache); a GPU wants large batches."""
    return 1024 if device.type == "cuda" else 16


# PyTorch lets cuDNN run fp32 convolutions in TF32 by default; on an H200 that moved the published
# weights' maps by up to 5e-3 against the published numbers (benchmarks/check_cuda.py), where they
# must agree to 1e-4. Without TF32 they agreed to 4e-6; the batched map ran at the same speed, the
# dense one 4.7x slower (0.22 -> 1.03 s for 12 MP).
exact_fp32_convolutions = functools.partial(torch.backends.cudnn.flags, enabled=True, allow_tf32=False)


def autocast_to(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to `precision` (a key of PRECISIONS): bf16 when asked for, else plain fp32."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def map_precision(net: ISONet, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to the net's map precision."""
    return autocast_to(net.precision, device)


@exact_fp32_convolutions()
@torch.inference_mode()
def predict_patches(net: ISONet, patches: np.ndarray | torch.Tensor, batch_size: int | None = None) -> np.ndarray:
    """ISO metric of each Nx3x64x64 patch, evaluated `batch_size` at a time."""
    device = next(net.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    out = []
    for start in range(0, len(patches), batch_size):
        batch = torch.as_tensor(patches[start:start + batch_size])  # keeps the array's strides
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        with map_precision(net, device):
            out.append(net(batch).flatten().float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@exact_fp32_convolutions()
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
            with map_precision(net, device):
                block = net.dense(t, step)[0, 0].float().cpu().numpy()
            out[r0:r0 + tile, c0:c0 + tile] = block[: rows - r0, : cols - c0]
    return out


@dataclass
class IsoMap:
    """A patch map and the paper's global estimate (median of the map), or a camera profile's
    reading where one read the image (camera_profile.Profile.read)."""

    map: np.ndarray  # rows x cols ISO metrics; [i, j] is the patch at (stride*i, stride*j)
    stride: int
    reading: float | None = None

    @property
    def global_metric(self) -> float:
        return float(np.median(self.map)) if self.reading is None else self.reading

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.map, [25, 75])
        return float(q3 - q1)

    @property
    def global_iso(self) -> float:
        return float(metric_to_iso(self.global_metric))


CLIPPED_BELOW, CLIPPED_ABOVE = 3 / 255, 252 / 255  # pixel levels (mean of the channels) black or saturated
CLIPPED_UNRELIABLE = 0.5  # more than this share of the patches clipped, and the global estimate is unreliable


def clipped_share(img: np.ndarray, stride: int = PATCH) -> float:
    """The share of the map's patches with more than half their pixels black or saturated. The
    camera's black level and highlights clip the noise away there, so those patches' estimates
    say nothing of the ISO: a night sky whose pixels sit at 0-3 reads as base ISO at any setting."""
    level = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    level = level.mean(-1) if level.ndim == 3 else level
    clipped = ((level <= CLIPPED_BELOW) | (level >= CLIPPED_ABOVE)).float()
    return float((F.avg_pool2d(clipped[None, None], PATCH, stride) > 0.5).float().mean())


def iso_map(net: ISONet, img: np.ndarray, stride: int = PATCH, batch_size: int | None = None) -> IsoMap:
    """The ISO map of an HxWx3 image: batched patches at stride 64, fully convolutional below."""
    if stride == PATCH:
        rows, cols = grid_shape(*img.shape[:2], PATCH)
        # Patches are cut a band of patch rows at a time (cutting a 100 MP image's all at once
        # copied the whole float image, 1.2 GB, a second time), on the network's device: cut on
        # the host, a 12 MP map on an H200 took 0.10 s whatever the batch size (256-4096), 15x
        # the loop, so the host's cutting and copying was the cost, not the network.
        device = next(net.parameters()).device
        band = max(1, BAND_PATCHES // cols) * PATCH
        bands = (torch.from_numpy(np.ascontiguousarray(img[y:y + band])).to(device)
                 for y in range(0, rows * PATCH, band))
        values = np.concatenate([predict_patches(net, image_to_patches(b), batch_size) for b in bands])
        return IsoMap(values.reshape(rows, cols), stride)
    return IsoMap(dense_map(net, img, stride), stride)


def global_metric(net: ISONet, img: np.ndarray) -> float:
    """ISONet's global ISO metric of an image (integers, or floats in [0, 1]): the median of its stride-64 map."""
    return iso_map(net, to_unit_float(img)).global_metric
