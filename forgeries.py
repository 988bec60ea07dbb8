"""Forgeries for measuring detectors: random regions, ISO splices and PRNU forgeries (a region
from another camera, copy-move), of renders and of real photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import image_io
from camera_noise import CameraNoise, Isp, decode_image, encode_image, render
from isonet import ISONetError, iso_to_metric


def random_region_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of one random ellipse or polygon covering roughly 5-30% of the image."""
    mask = np.zeros((height, width), np.uint8)
    centre = (int(rng.uniform(0.3, 0.7) * width), int(rng.uniform(0.3, 0.7) * height))
    radii = rng.uniform(0.2, 0.33, 2) * (width, height)
    if rng.random() < 0.5:
        cv2.ellipse(mask, centre, tuple(int(r) for r in radii), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        corners = int(rng.integers(4, 9))
        # evenly spread angles, jittered: a star-shaped polygon, never a sliver
        angles = ((np.arange(corners) + rng.uniform(-0.3, 0.3, corners)) * 2 * np.pi / corners
                  + rng.uniform(0, 2 * np.pi))
        scale = rng.uniform(0.7, 1.0, corners)
        points = np.stack([centre[0] + radii[0] * scale * np.cos(angles),
                           centre[1] + radii[1] * scale * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    return mask.astype(bool)


def render_splice(clean: np.ndarray, camera: CameraNoise, iso_background: float, iso_region: float,
                  rng: np.random.Generator, jpeg_quality: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A splice that only the noise gives away: a region of `clean` rendered at `iso_region`
    pasted into the same scene rendered at `iso_background`. Returns (image, region mask)."""
    mask = random_region_mask(*clean.shape[:2], rng)
    background = render(clean, camera, iso_background, rng)
    region = render(clean, camera, iso_region, rng)
    spliced = np.where(mask[:, :, None], region, background)
    if jpeg_quality is not None:
        spliced = decode_image(encode_image(spliced, jpeg_quality))
    return spliced, mask


def copy_move(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              jpeg_quality: int | None = None) -> np.ndarray:
    """`image` with the region `mask` covered by content from elsewhere in it, moved by a quarter to
    three quarters of the image each way: the region carries the camera's pattern, but misaligned."""
    h, w = image.shape[:2]
    shift = (int(rng.integers(h // 4, 3 * h // 4 + 1)), int(rng.integers(w // 4, 3 * w // 4 + 1)))
    return compose_forgery(image, np.roll(image, shift, axis=(0, 1)), mask, jpeg_quality)


def compose_forgery(image: np.ndarray, pasted: np.ndarray, mask: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
    """`pasted` inside `mask`, `image` elsewhere, saved once as the forger saves it."""
    forged = np.where(mask[:, :, None], pasted, image)
    return forged if jpeg_quality is None else decode_image(encode_image(forged, jpeg_quality))


def forge_from_camera(clean: np.ndarray, camera: CameraNoise, donor: CameraNoise, iso: float,
                      rng: np.random.Generator, jpeg_quality: int | None = None,
                      isp: Isp | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A forgery only PRNU gives away: `clean` rendered by `camera` with its PRNU, a random region
    of it replaced by `donor`'s render of the same scene at the same ISO and processing (same
    content, same noise, another sensor's pattern). Returns (image, region mask)."""
    mask = random_region_mask(*clean.shape[:2], rng)
    genuine = render(clean, camera, iso, rng, isp=isp, prnu=True)
    foreign = render(clean, donor, iso, rng, isp=isp, prnu=True)
    return compose_forgery(genuine, foreign, mask, jpeg_quality), mask


def forge_copy_move(clean: np.ndarray, camera: CameraNoise, iso: float, rng: np.random.Generator,
                    jpeg_quality: int | None = None, isp: Isp | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A copy-move forgery of `camera`'s render with its PRNU (copy_move). Returns (image, region mask)."""
    mask = random_region_mask(*clean.shape[:2], rng)
    genuine = render(clean, camera, iso, rng, isp=isp, prnu=True)
    return copy_move(genuine, mask, rng, jpeg_quality), mask


@dataclass
class Splice:
    image: np.ndarray  # HxWx3 uint8 RGB
    mask: np.ndarray  # HxW bool, the pasted region
    gap: int  # stops between region and background
    camera: str


def random_splices(count: int, sources: list[np.ndarray], cameras: list, rng: np.random.Generator,
                   isos: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200, 6400)) -> list[Splice]:
    """`count` splices with ISO gaps cycling through 1..4 stops, the region's ISO above or below
    the background's at random, each from a camera measured at both ISOs."""
    splices = []
    for k in range(count):
        gap = k % 4 + 1
        low = int(rng.integers(0, len(isos) - gap))
        pair = [isos[low], isos[low + gap]]
        if rng.random() < 0.5:
            pair.reverse()
        usable = [c for c in cameras if c.supports(pair[0]) and c.supports(pair[1])]
        if not usable:
            raise ISONetError(f"no selected camera was measured at both ISO {pair[0]} and {pair[1]}")
        camera = usable[rng.integers(len(usable))]
        source = np.rot90(sources[k % len(sources)], int(rng.integers(4)))
        image, mask = render_splice(np.ascontiguousarray(source), camera, pair[0], pair[1], rng)
        splices.append(Splice(image, mask, gap, camera.name))
    return splices


def real_splices(photos: list[tuple[Path, int, str]], count: int,
                 rng: np.random.Generator) -> tuple[list[Splice], list[str]]:
    """`count` splices of real photos: a random region of one photo pasted at the same place into
    a photo of the same camera and size taken 1-4 stops apart (gaps cycling 1..4 where the
    photos allow). `photos` are (file, ISO, camera); unreadable files are passed over, and
    returned as one-line reasons beside the splices."""
    images: dict[Path, np.ndarray | None] = {}
    unreadable: list[str] = []

    def image(path: Path) -> np.ndarray | None:
        if path not in images:
            try:
                images[path] = image_io.decode_image_file(path)
            except ISONetError as e:
                images[path] = None
                unreadable.append(str(e))
        return images[path]

    pairs: dict[int, list[tuple[int, int]]] = {gap: [] for gap in range(1, 5)}
    for i, (_, iso_i, camera_i) in enumerate(photos):
        for j, (_, iso_j, camera_j) in enumerate(photos):
            gap = round(abs(float(iso_to_metric(iso_i) - iso_to_metric(iso_j))))
            if camera_i == camera_j and i != j and gap in pairs:
                pairs[gap].append((i, j))
    if not any(pairs.values()):
        raise ISONetError("no two photos of one camera 1-4 stops apart: no real splice can be made")
    splices, gaps = [], [g for g in range(1, 5) if pairs[g]]
    for _ in range(count * 20):
        if len(splices) == count:
            break
        gap = gaps[len(splices) % len(gaps)]
        i, j = pairs[gap][rng.integers(len(pairs[gap]))]
        background, region = image(photos[i][0]), image(photos[j][0])
        if background is None or region is None or background.shape != region.shape:
            continue
        mask = random_region_mask(*background.shape[:2], rng)
        splices.append(Splice(np.where(mask[:, :, None], region, background), mask, gap, photos[i][2]))
    if len(splices) < count:
        raise ISONetError(f"only {len(splices)} real splices could be made of same-sized photos (asked {count})")
    return splices, unreadable
