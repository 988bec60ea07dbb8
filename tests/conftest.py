import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))

import isonet  # noqa: E402

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def noisy_image(height: int, width: int, sigma: float, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient plus Gaussian noise of `sigma` (in 8-bit levels), as uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 120 * x / width, 80 + 100 * y / height, 140 - 60 * x / width], axis=2)
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


def write_rgb(path: Path, rgb: np.ndarray, params=()) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]), list(params))
    return path


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
