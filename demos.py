"""The embedded demos: what test_model.py, Fig4.py and Fig7.py run on when given no image."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camera_noise import (
    BUNDLED_PHOTOS,
    bundled_photo_path,
    encode_image,
    load_noise_profiles,
    read_clean_image,
    render,
    typical_isp,
)
from forgeries import render_splice
from image_io import atomic_path

DEMO_SOURCE = "chelsea"  # a Test-split source: the shipped models never trained on it
DEMO_CAMERA = "Canon EOS 5D Mark III"  # in the reference class, measured from ISO 50 to 102400


@dataclass
class Demo:
    path: Path  # the rendered image, written for the user to open
    iso: int  # the ISO of the image, or of its background for a splice
    camera: str
    region_iso: int | None = None
    mask: np.ndarray | None = None  # the spliced region


def write_demo(out_dir: str | os.PathLike, iso: int, jpeg_quality: int | None = None,
               region_iso: int | None = None, seed: int = 0, noise_profiles: str | None = None,
               camera_processing: bool = False) -> Demo:
    """Render the demo photo at `iso` (a splice when `region_iso` is given) into `out_dir`; with
    `camera_processing`, through one camera's ISP (typical_isp), as an in-camera JPEG is made.

    The clean source is used at full size (not downscaled), so the demo has more patches; its own
    faint noise sits far below the rendered noise."""
    camera = load_noise_profiles(noise_profiles).select(DEMO_CAMERA)[0]
    clean = read_clean_image(bundled_photo_path(*BUNDLED_PHOTOS[DEMO_SOURCE]), 1)
    rng = np.random.default_rng(seed)
    isp = typical_isp(iso) if camera_processing else None
    if region_iso is None:
        image, mask = render(clean, camera, iso, rng, isp=isp), None
    else:
        image, mask = render_splice(clean, camera, iso, region_iso, rng)
    name = f"demo_{DEMO_SOURCE}_iso{iso}" + (f"_splice{region_iso}" if region_iso else "")
    path = Path(out_dir) / f"{name}.{'png' if jpeg_quality is None else 'jpg'}"
    with atomic_path(path) as tmp:  # the camera's one JPEG compression
        tmp.write_bytes(encode_image(image, jpeg_quality, isp and isp.chroma_subsampling))
    return Demo(path, iso, camera.name, region_iso, mask)
