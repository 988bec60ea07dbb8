"""PRNU: the renderer's sensor patterns and forgeries."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import camera_noise as cn

H, W = 192, 256
ISO = 200


@pytest.fixture(scope="module")
def db() -> cn.NoiseDatabase:
    path = cn.find_profiles()
    if not path.is_file():
        pytest.skip(f"{path} absent: run scripts/fetch_noise_profiles.sh (the set-up step) first")
    return cn.load_noise_profiles()


@pytest.fixture(scope="module")
def cameras(db) -> tuple[cn.CameraNoise, cn.CameraNoise]:
    return db.select(cn.DEMO_CAMERA)[0], db.select("Nikon D7000")[0]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cn.read_clean_image(cn.bundled_photo_path(*cn.BUNDLED_PHOTOS["astronaut"]), 2)  # 256x256


def test_render_without_prnu_is_unchanged_and_the_pattern_is_the_cameras_own(cameras, astronaut):
    a, b = cameras
    plain = cn.render(astronaut, a, ISO, np.random.default_rng(3))
    assert np.array_equal(cn.render(astronaut, a, ISO, np.random.default_rng(3), prnu=False), plain)
    with_prnu = cn.render(astronaut, a, ISO, np.random.default_rng(3), prnu=True)
    assert 0.1 < np.abs(with_prnu.astype(float) - plain).mean() < 2.0  # 1% of the signal: a level or so
    pattern = cn.prnu_pattern(a.name, H, W)
    assert pattern.shape == (H, W) and abs(pattern.std() - cn.PRNU_STD) < 0.001 and abs(pattern.mean() - 1) < 0.001
    cn.prnu_pattern.cache_clear()
    assert np.array_equal(pattern, cn.prnu_pattern(a.name, H, W))  # every render of this size, in any run
    assert abs(np.corrcoef(pattern.ravel(), cn.prnu_pattern(b.name, H, W).ravel())[0, 1]) < 0.02
    assert not pattern.flags.writeable
    half_size = dataclasses.replace(cn.typical_isp(ISO), scale=0.5)  # PRNU at the sensor's 512x512
    rendered = [cn.render(astronaut, a, ISO, np.random.default_rng(3), isp=half_size, prnu=p) for p in (False, True)]
    assert rendered[1].shape == astronaut.shape and not np.array_equal(*rendered)


def test_forgeries_keep_the_render_outside_the_region_and_replace_it_inside(cameras, astronaut):
    a, b = cameras
    rng = np.random.default_rng(4)  # what the forgeries draw, in their order: region, then renders
    mask = cn.random_region_mask(*astronaut.shape[:2], rng)
    genuine = cn.render(astronaut, a, ISO, rng, prnu=True)
    foreign = cn.render(astronaut, b, ISO, rng, prnu=True)
    image, got = cn.forge_from_camera(astronaut, a, b, ISO, np.random.default_rng(4))
    assert np.array_equal(got, mask) and 0.03 < mask.mean() < 0.4
    assert np.array_equal(image[~mask], genuine[~mask]) and np.array_equal(image[mask], foreign[mask])
    moved, got = cn.forge_copy_move(astronaut, a, ISO, np.random.default_rng(4))
    assert np.array_equal(got, mask) and np.array_equal(moved[~mask], genuine[~mask])
    assert np.abs(moved[mask].astype(int) - genuine[mask]).mean() > 5  # other content moved in
