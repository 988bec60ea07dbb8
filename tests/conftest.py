"""Shared helpers: images and labelled folders the tests make, weights, running the scripts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))

import camera_noise  # noqa: E402
import isonet  # noqa: E402

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                               reason="no CUDA device"))]


def run_script(*args, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python ARGS...` as a user would; a script name is relative to the repository."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """The contract for bad input: exit `code`, one line on stderr naming what is wrong, no traceback."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(f in lines[0] for f in fragments), lines[0]


def noisy_image(height: int, width: int, sigma: float, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient plus Gaussian noise of `sigma` (in 8-bit levels), as uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 120 * x / width, 80 + 100 * y / height, 140 - 60 * x / width], axis=2)
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


def write_rgb(path: Path, rgb: np.ndarray, params=()) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]), list(params))
    return path


def tiny_dng(path, level: float, orientation: int = 1, h: int = 96, w: int = 128):
    """A minimal valid DNG (uncompressed 12-bit RGGB mosaic, identity colour matrix, neutral white
    balance, ISO 3200 in the TIFF/EP tag) that LibRaw develops: a real RAW without a camera."""
    import tifffile

    mosaic = (level + np.random.default_rng(0).normal(0, 20, (h, w))).clip(0, 4095).astype(np.uint16)
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "ISONet test", True),
            (33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50717, "I", 1, 4095, True),
            (50721, "2i", 9, identity, True), (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),
            (34855, "H", 1, 3200, True), (274, "H", 1, orientation, True)]
    tifffile.imwrite(path, mosaic, photometric=32803, subfiletype=0, extratags=tags, metadata=None)
    return path


def noise_image(rng: np.random.Generator, iso: int, h: int = 128, w: int = 160) -> np.ndarray:
    """Flat grey with noise whose strength grows with ISO."""
    sigma = 2.0 * (iso / 100) ** 0.5
    return np.clip(128 + rng.normal(0, sigma, (h, w, 3)), 0, 255).astype(np.uint8)


def make_labelled_folder(root: Path, isos=(100, 800), per_iso: int = 2, ext: str = "png",
                         h: int = 128, w: int = 160, seed: int = 0) -> Path:
    """root/Train/<ISO>/i.<ext> and root/Test/<ISO>/i.<ext>."""
    rng = np.random.default_rng(seed)
    for split in ("Train", "Test"):
        for iso in isos:
            folder = root / split / str(iso)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_iso):
                assert cv2.imwrite(str(folder / f"{i}.{ext}"), noise_image(rng, iso, h, w))
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_labelled_folder(tmp_path / "photos")


@pytest.fixture(scope="session")
def random_net() -> isonet.ISONet:
    """An ISONet with the paper's Kaiming init and non-zero biases, so outputs vary per patch."""
    torch.manual_seed(0)
    net = isonet.ISONet()
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight)
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    return net.eval()


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory, random_net) -> Path:
    path = tmp_path_factory.mktemp("weights") / "net.pth"
    torch.save(random_net.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def db() -> camera_noise.NoiseDatabase:
    """darktable's noise profiles, as the set-up step fetches them."""
    path = camera_noise.find_profiles()
    if not path.is_file():
        pytest.skip(f"{path} absent: run scripts/fetch_noise_profiles.sh (the set-up step) first")
    return camera_noise.load_noise_profiles()


@pytest.fixture(scope="session")
def second_weights(tmp_path_factory) -> Path:
    """Other random weights than weights_file's: a second model to compare, or to refuse."""
    torch.manual_seed(1)
    net = isonet.ISONet()
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.bias, 0.5, 0.2)
    path = tmp_path_factory.mktemp("second") / "other.pth"
    torch.save(net.state_dict(), path)
    return path
