"""Shared helpers: tiny labelled photo folders made of noise whose strength grows with ISO."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def noise_image(rng: np.random.Generator, iso: int, h: int = 128, w: int = 160) -> np.ndarray:
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


def run_script(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_labelled_folder(tmp_path / "photos")
