"""Tests of the camera-noise renderer against darktable's real database and real renders."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import camera_noise as cn  # noqa: E402
import forgeries
from image_io import read_image  # noqa: E402
from isonet import ISONetError  # noqa: E402


@pytest.fixture(scope="module")
def camera(db: cn.NoiseDatabase) -> cn.CameraNoise:
    """A reference-class camera measured from ISO 100 to 6400 (first by name: deterministic)."""
    return next(c for c in sorted(db.reference_cameras(), key=lambda c: c.name)
                if c.supports(100) and c.supports(6400))


def profile(iso, a, b, **extra) -> dict:
    return {"name": f"iso {iso}", "iso": iso, "a": a, "b": b, **extra}


def write_db(tmp_path: Path, makers: list[dict]) -> Path:
    path = tmp_path / "noiseprofiles.json"
    path.write_text(json.dumps({"version": 0, "noiseprofiles": makers}))
    return path


@pytest.fixture
def synthetic(tmp_path: Path) -> cn.NoiseDatabase:
    g = [1e-6, 1e-6, 1e-6]
    makers = [
        {"maker": "Acme", "models": [
            {"model": "One", "profiles": [
                profile(100, [2e-6, 1e-6, 3e-6], [1e-8, -5e-9, 2e-8]),
                profile(400, [8e-6, 4e-6, 12e-6], [4e-8, 2e-8, 8e-8]),
                profile(400, [8e-6, 6e-6, 12e-6], [4e-8, 4e-8, 8e-8]),  # repeated ISO: averaged
                profile(1600, [32e-6, 16e-6, 48e-6], [16e-8, 8e-8, 32e-8]),
                profile(3200, g, g, skip=True),
                profile(6400, [1e-3, -1e-6, 1e-3], [1e-7, 1e-7, 1e-7]),  # failed green fit
            ]},
            {"model": "Skipped", "skip": True, "profiles": [profile(100, g, g)]},
            {"model": "NoBlue", "profiles": [profile(100, [1e-6, 1e-6, 0.0], g), profile(200, [2e-6, 2e-6, 0.0], g)]},
        ]},
        {"maker": "Gone", "skip": True, "models": [{"model": "X", "profiles": [profile(100, g, g)]}]},
    ]
    return cn.load_noise_profiles(write_db(tmp_path, makers))


# ---------------------------------------------------------------------------------------------
# The real database
# ---------------------------------------------------------------------------------------------
def test_real_database_matches_the_published_facts(db: cn.NoiseDatabase) -> None:
    facts = db.summary()
    print(f"\n{db.path}: {facts}")
    # darktable 4.2: 374 cameras, 6,555 profiles; other versions differ a little.
    assert abs(facts["cameras"] / 374 - 1) < 0.25
    assert abs(facts["profiles"] / 6555 - 1) < 0.25
    assert facts["green_a100_median"] == pytest.approx(3.0e-6, rel=0.10)
    assert facts["green_a100_q1"] == pytest.approx(2.0e-6, rel=0.10)
    assert facts["green_a100_q3"] == pytest.approx(4.8e-6, rel=0.10)
    assert facts["green_slope_median"] == pytest.approx(0.92, abs=0.05)
    assert 0.4 * facts["cameras"] < facts["reference_cameras"] < 0.6 * facts["cameras"]


def test_real_cameras_interpolate_through_their_measurements(db: cn.NoiseDatabase) -> None:
    cameras = db.select("all")
    assert len(cameras) > 0.9 * len(db.cameras)
    for cam in cameras:
        lo, hi = cam.iso_range
        for c, curve in enumerate(cam.channels):
            for iso, a, b in zip(curve.iso, curve.a, curve.b):
                if lo <= iso <= hi:
                    got_a, got_b = cam.noise_params(iso)
                    assert got_a[c] == pytest.approx(a, rel=1e-9) and got_b[c] == pytest.approx(b, rel=1e-9, abs=1e-20)
        assert cam.supports(hi * 2) and not cam.supports(hi * 2.1), cam.name


def test_reference_class_is_the_interquartile_range(db: cn.NoiseDatabase) -> None:
    lo, hi = db.reference_bounds
    ref = db.select("reference")
    assert ref and all(c.renderable and lo <= c.green_fit[0] <= hi for c in ref)
    outside = [c for c in db.select("all") if c not in ref]
    assert outside and all(not lo <= c.green_fit[0] <= hi for c in outside)
    quieter, noisier = db.select("quieter"), db.select("noisier")
    assert all(c.green_fit[0] < lo for c in quieter) and all(c.green_fit[0] > hi for c in noisier)
    # every camera with a fit is in exactly one class
    assert sorted(c.name for c in quieter + ref + noisier) == sorted(c.name for c in outside + ref if c.green_fit)


def test_camera_by_exact_name_and_helpful_error(db: cn.NoiseDatabase) -> None:
    (cam,) = db.select("canon eos 5d mark iii")
    assert cam.name == "Canon EOS 5D Mark III"
    with pytest.raises(ISONetError, match="close matches: .*Canon EOS 5D Mark III") as err:
        db.select("Canon EOS 5D Mk III")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Parsing rules, on a small synthetic database
# ---------------------------------------------------------------------------------------------
def test_skip_at_every_level_is_ignored(synthetic: cn.NoiseDatabase) -> None:
    assert set(synthetic.cameras) == {"Acme One", "Acme NoBlue"}
    assert synthetic.n_profiles == 7
    one = synthetic.cameras["Acme One"]
    assert 3200 not in one.channels[0].iso


def test_negative_b_is_clipped_and_nonpositive_a_dropped(synthetic: cn.NoiseDatabase) -> None:
    one = synthetic.cameras["Acme One"]
    a, b = one.noise_params(100)
    assert b[cn.GREEN] == 0.0 and b[0] == pytest.approx(1e-8)
    assert list(one.channels[cn.GREEN].iso) == [100, 400, 1600]
    assert list(one.channels[0].iso) == [100, 400, 1600, 6400]
    assert one.channels[cn.GREEN].a[1] == pytest.approx(5e-6)  # the two ISO 400 fits averaged


def test_interpolation_is_exact_at_measurements_and_between_neighbours(synthetic: cn.NoiseDatabase) -> None:
    one = synthetic.cameras["Acme One"]
    assert one.iso_range == (100, 1600)
    for iso, expected_a in ((100, [2e-6, 1e-6, 3e-6]), (400, [8e-6, 5e-6, 12e-6]), (1600, [32e-6, 16e-6, 48e-6])):
        np.testing.assert_allclose(one.noise_params(iso)[0], expected_a, rtol=1e-12)
    a, b = one.noise_params(200)
    np.testing.assert_allclose(a, np.sqrt(np.array([2e-6, 1e-6, 3e-6]) * [8e-6, 5e-6, 12e-6]), rtol=1e-12)
    lo_a, lo_b = one.noise_params(100)
    hi_a, hi_b = one.noise_params(400)
    assert np.all((lo_a < a) & (a < hi_a)) and np.all((lo_b <= b) & (b <= hi_b))


def test_extrapolation_within_one_stop_only(synthetic: cn.NoiseDatabase) -> None:
    one = synthetic.cameras["Acme One"]
    a, _ = one.noise_params(3200)
    # Green is measured at 100, 400 (mean 5e-6), 1600: its end segments continue for a stop.
    assert a[cn.GREEN] == pytest.approx(16e-6 * np.sqrt(16 / 5), rel=1e-9)
    assert one.noise_params(50)[0][cn.GREEN] == pytest.approx(1e-6 / np.sqrt(5), rel=1e-9)
    for iso in (3300, 45, 0):
        outside = "Acme One: ISO [0-9]+ is more than 1 stop outside its measured ISO 100-1600"
        with pytest.raises(ISONetError, match=outside):
            one.noise_params(iso)


def test_camera_missing_a_channel_is_not_rendered(synthetic: cn.NoiseDatabase) -> None:
    assert [c.name for c in synthetic.select("all")] == ["Acme One"]
    with pytest.raises(ISONetError, match="Acme NoBlue: .* B channel"):
        synthetic.select("Acme NoBlue")


def test_unusable_files_give_one_line_errors(tmp_path: Path) -> None:
    missing = r"missing\.json: no darktable noise profile database \(run scripts/fetch_noise_profiles.sh"
    with pytest.raises(ISONetError, match=missing):
        cn.load_noise_profiles(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ISONetError, match="bad.json: not a darktable noiseprofiles.json"):
        cn.load_noise_profiles(bad)
    with pytest.raises(ISONetError, match="missing key 'profiles'"):
        cn.load_noise_profiles(write_db(tmp_path, [{"maker": "A", "models": [{"model": "B"}]}]))
    with pytest.raises(ISONetError, match="3 numbers"):
        cn.load_noise_profiles(write_db(tmp_path, [{"maker": "A", "models": [{"model": "B", "profiles": [
            profile(100, [1e-6], [0.0])]}]}]))


def test_setup_script_keeps_a_present_database(db: cn.NoiseDatabase, tmp_path: Path) -> None:
    dest = tmp_path / "noiseprofiles.json"
    shutil.copy(db.path, dest)
    before = dest.stat().st_mtime_ns
    script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_noise_profiles.sh"
    done = subprocess.run(["bash", str(script), str(dest)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "already present" in done.stdout
    assert dest.stat().st_mtime_ns == before


def test_clean_photo_script_keeps_present_photos_and_says_what_it_needs(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_clean_photos.sh"
    names = re.findall(r"^(\S+)\s+\S+\s+(?:backgrounds|wallpapers)/", script.read_text(), re.MULTILINE)
    assert len(names) == 23
    for name in names:
        (tmp_path / f"{name}.jpg").write_bytes(b"x")
    done = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "already present (23 photos)" in done.stdout
    # One photo missing on a machine without apt-get: one line that says what is needed, nothing written.
    (tmp_path / f"{names[0]}.jpg").unlink()
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("dirname", "awk", "mktemp", "chmod", "rm", "sort", "wc"):
        (bare / tool).symlink_to(shutil.which(tool))
    done = subprocess.run([shutil.which("bash"), str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env={"PATH": str(bare)})
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "needs apt-get and dpkg-deb" in done.stderr and not (tmp_path / f"{names[0]}.jpg").exists()


def fake_darktable_deb(path: Path, profiles: bytes) -> None:
    """A Debian package as ar lays it out, holding only data.tar.xz with noiseprofiles.json."""
    import io
    import tarfile

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/share/darktable/noiseprofiles.json")
        info.size = len(profiles)
        tar.addfile(info, io.BytesIO(profiles))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"), (b"data.tar.xz", tar_bytes.getvalue())]
    out = b"!<arch>\n"
    for name, data in members:
        out += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        out += str(len(data)).encode().ljust(10) + b"`\n" + data + b"\n" * (len(data) % 2)
    path.write_bytes(out)


def test_noise_profiles_without_apt_get_come_from_the_pinned_package(tmp_path: Path) -> None:
    profiles = json.dumps({"noiseprofiles": [{"maker": "X", "models": []}]}).encode()
    deb = tmp_path / "darktable.deb"
    fake_darktable_deb(deb, profiles)
    bare = tmp_path / "bin"  # bash, Python and coreutils, no apt-get
    bare.mkdir()
    for tool in ("bash", "dirname", "mktemp", "rm", "mv", "cp", "wc", "mkdir"):
        (bare / tool).symlink_to(shutil.which(tool))
    (bare / "python3").symlink_to(sys.executable)
    script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_noise_profiles.sh"
    sha = hashlib.sha256(deb.read_bytes()).hexdigest()

    def fetch(dest: Path, pinned: str) -> subprocess.CompletedProcess:
        env = {"PATH": str(bare), "DARKTABLE_DEB_URL": deb.as_uri(), "DARKTABLE_DEB_SHA256": pinned}
        return subprocess.run([shutil.which("bash"), str(script), str(dest)], capture_output=True, text=True,
                              timeout=60, env=env)

    done = fetch(tmp_path / "ok.json", sha)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ok.json").read_bytes() == profiles
    done = fetch(tmp_path / "bad.json", "0" * 64)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "SHA-256 is not the pinned" in done.stderr
    assert "put its noiseprofiles.json at" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "darktable.deb", "ok.json"]  # nothing half-written


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, cache = tmp_path / "system.json", tmp_path / "cache.json"
    monkeypatch.setattr(cn, "SYSTEM_PROFILES", system)
    monkeypatch.setattr(cn, "CACHE_PROFILES", cache)
    assert cn.find_profiles() == cache
    system.write_text("{}")
    assert cn.find_profiles() == system
    assert cn.find_profiles(tmp_path / "given.json") == tmp_path / "given.json"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def noise_std(img: np.ndarray) -> float:
    """Std of the green channel's high-pass residual (image minus its 5x5 Gaussian blur)."""
    g = img[:, :, 1].astype(np.float32)
    return float((g - cv2.GaussianBlur(g, (5, 5), 0))[8:-8, 8:-8].std())


def test_noise_grows_with_iso_as_the_profiles_say(camera: cn.CameraNoise) -> None:
    grey = np.full((256, 256, 3), 128, np.uint8)
    stds = {iso: noise_std(cn.render(grey, camera, iso, np.random.default_rng(7))) for iso in (100, 400, 1600, 6400)}
    print(f"\n{camera.name}: high-pass std {stds}")
    assert stds[100] < stds[400] < stds[1600] < stds[6400]
    x = cn.SRGB8_TO_LINEAR[128] * cn.EXPOSURE  # the green raw value: grey keeps R = G = B in camera RGB
    (a1, b1), (a2, b2) = cn.sensor_noise_params(camera, 1600), cn.sensor_noise_params(camera, 6400)
    expected = np.sqrt((a2[cn.GREEN] * x + b2[cn.GREEN]) / (a1[cn.GREEN] * x + b1[cn.GREEN]))
    assert stds[6400] / stds[1600] == pytest.approx(expected, rel=0.2)


# The renderer's documented scaling, restated here so that a change to it fails the test below:
# photosite variance = 10 x darktable's a*x + b (docs/rendering.md, "The noise model"), and ISO 12232's exposure
# puts an 18% grey card at 12.8% of raw clipping.
DOCUMENTED_PROFILE_SCALE = 10.0
DOCUMENTED_EXPOSURE = 0.128 / 0.18
# Variance kept by OpenCV's edge-aware demosaic of white noise, per output channel, pooled over a
# flat area. Green keeps its own half of the sites and elsewhere averages the two neighbours along
# the flatter direction (a Gaussian pair's mean is independent of its difference, so choosing the
# pair leaves the mean's variance at 1/2): (1 + 1/2) / 2. Red and blue keep their own quarter,
# average two neighbours on half the sites and four diagonals on the last quarter:
# 1/4 + 1/2 * 1/2 + 1/4 * 1/4.
DEMOSAIC_VARIANCE_KEPT = np.array([9 / 16, 3 / 4, 9 / 16])


def expected_flat_noise_std(camera: cn.CameraNoise, iso: float, grey: int, gains: np.ndarray) -> np.ndarray:
    """Closed-form per-channel std, in 8-bit levels, of a plain render of flat sRGB `grey`.

    Linear grey L sits at raw L * exposure / gain in each channel (white-balanced camera RGB of a
    neutral is neutral); there the photosites get variance 10 (a x + b); the demosaic keeps
    DEMOSAIC_VARIANCE_KEPT of it; the development undoes white balance, colour matrix and exposure
    (a linear map of independent channels); the sRGB curve multiplies std by its slope at L; and
    8-bit rounding adds 1/12 level^2. Small-noise linearisation: good while the std is well below
    the distance to the curve's bend and to clipping."""
    linear = ((grey / 255 + 0.055) / 1.055) ** 2.4
    a, b = camera.noise_params(iso)
    photosite_var = DOCUMENTED_PROFILE_SCALE * (a * linear * DOCUMENTED_EXPOSURE / gains + b)
    development = np.linalg.inv(cn.CAMERA_FROM_SRGB) * gains[None, :] / DOCUMENTED_EXPOSURE
    linear_var = development**2 @ (DEMOSAIC_VARIANCE_KEPT * photosite_var)
    srgb_slope = 255 * 1.055 / 2.4 * linear ** (1 / 2.4 - 1)
    return np.sqrt(srgb_slope**2 * linear_var + 1 / 12)


@pytest.mark.parametrize("iso", [100, 400, 1600])
def test_plain_render_of_mid_grey_has_the_profiles_absolute_noise(camera: cn.CameraNoise, iso: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The absolute noise level, not only its ratios: a renderer off by a factor in variance
    (profile scale, exposure, gains, development) trains a model on the wrong ISOs."""
    gains = np.array([2.15, 1.0, 1.7])  # the middle of the daylight ranges, fixed so the closed form knows them
    monkeypatch.setattr(cn, "random_wb_gains", lambda rng: gains)
    grey = 118  # sRGB 118 is linear 0.18, an 18% grey card
    out = cn.render(np.full((512, 512, 3), grey, np.uint8), camera, iso, np.random.default_rng(iso))
    measured = out[32:-32, 32:-32].reshape(-1, 3).astype(np.float64).std(axis=0)
    expected = expected_flat_noise_std(camera, iso, grey, gains)
    print(f"\n{camera.name} ISO {iso}: measured RGB std {measured.round(3)}, closed form {expected.round(3)}")
    # Measured within 0.3% of the closed form at ISO 100-400 and 5% at 1600 (red, the noisiest
    # channel, starts to feel the sRGB curve's bend); 10% leaves room for other database versions.
    np.testing.assert_allclose(measured, expected, rtol=0.10)


def test_render_shape_dtype_and_determinism(camera: cn.CameraNoise) -> None:
    clean = cn.clean_images()[0][1][:101, :77]  # odd sizes exercise the padding
    out = cn.render(clean, camera, 800, np.random.default_rng(3))
    assert out.shape == clean.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, cn.render(clean, camera, 800, np.random.default_rng(3)))
    assert not np.array_equal(out, cn.render(clean, camera, 800, np.random.default_rng(4)))
    assert np.abs(out.astype(int) - clean).mean() < 15  # the picture survives


def test_noise_free_pipeline_preserves_flat_colours() -> None:
    """Colour matrix, white balance and demosaic invert exactly: every Bayer phase, random gains."""
    rng = np.random.default_rng(0)
    for pattern in cn.CFA_PATTERNS:
        for colour in ((128, 128, 128), (200, 80, 40), (40, 120, 200), (10, 10, 10)):
            flat = np.full((32, 32, 3), colour, np.uint8)
            gains = cn.random_wb_gains(rng)
            raw = cn.mosaic(cn.srgb8_to_camera(flat, gains), pattern)
            out = cn.camera16_to_srgb8(cn.demosaic(raw, pattern), gains)
            assert np.abs(out.astype(int) - flat).max() <= 1, (pattern, colour)


def test_jpeg_variant_decodes(camera: cn.CameraNoise) -> None:
    clean = dict(cn.clean_images())["chelsea"]
    png = cn.render(clean, camera, 400, np.random.default_rng(5))
    jpg = cn.render(clean, camera, 400, np.random.default_rng(5), jpeg_quality=80)
    assert jpg.shape == png.shape and jpg.dtype == np.uint8
    assert np.array_equal(jpg, cn.decode_image(cn.encode_image(png, 80)))
    assert 0 < np.abs(jpg.astype(int) - png).mean() < 8  # quality 80 smooths the noise, keeps the picture


def test_render_refuses_far_extrapolation(camera: cn.CameraNoise) -> None:
    lo, _ = camera.iso_range
    with pytest.raises(ISONetError, match="more than 1 stop outside"):
        cn.render(np.zeros((64, 64, 3), np.uint8), camera, lo / 4, np.random.default_rng(0))


def test_splice_differs_from_its_background_only_in_noise(camera: cn.CameraNoise) -> None:
    grey = np.full((192, 256, 3), 128, np.uint8)
    image, mask = forgeries.render_splice(grey, camera, 100, 6400, np.random.default_rng(2))
    assert image.shape == grey.shape and mask.shape == grey.shape[:2] and 0.05 < mask.mean() < 0.35
    residual = image[:, :, 1].astype(np.float32) - cv2.GaussianBlur(image[:, :, 1].astype(np.float32), (5, 5), 0)
    inside = cv2.erode(mask.astype(np.uint8), np.ones((7, 7))).astype(bool)
    outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((7, 7))).astype(bool)
    assert residual[inside].std() > 2 * residual[outside].std()
    assert abs(image[inside].mean() - image[outside].mean()) < 2  # same scene: no visible seam


def test_region_masks_are_sizeable_blobs() -> None:
    rng = np.random.default_rng(0)
    areas = [forgeries.random_region_mask(250, 370, rng).mean() for _ in range(50)]
    assert 0.05 < min(areas) and max(areas) < 0.35


# ---------------------------------------------------------------------------------------------
# Clean sources and rendered sets
# ---------------------------------------------------------------------------------------------
def test_bundled_photos_load_offline_downscaled(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("clean_images() tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    clean = cn.clean_images()
    assert [name for name, _ in clean] == sorted(cn.BUNDLED_PHOTOS)
    astronaut = dict(clean)["astronaut"]
    assert astronaut.shape == (256, 256, 3) and astronaut.dtype == np.uint8  # 512x512 shipped
    assert all(img.ndim == 3 and img.shape[2] == 3 for _, img in clean)
    assert dict(clean)["coffee"].std(axis=2).mean() > 5  # colour photos stay in colour
    assert dict(clean)["grass"].std(axis=2).max() == 0  # grey textures are replicated


def test_clean_dir(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), rng.integers(0, 256, (160, 130, 3), np.uint8))
    clean = cn.clean_images(tmp_path)
    assert [n for n, _ in clean] == ["a", "b"] and clean[0][1].shape == (80, 65, 3)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((160, 130, 3), np.uint8))
    with pytest.raises(ISONetError, match="two images named 'a'"):
        cn.clean_images(tmp_path)
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(ISONetError, match="smaller than one 64x64 patch"):
        cn.clean_images(tmp_path, downscale=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ISONetError, match="no images"):
        cn.clean_images(tmp_path / "empty")


def test_clean_dirs_add_up_with_the_bundled_photos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, name in (("one", "a"), ("two", "b")):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / f"{name}.png"), rng.integers(0, 256, (160, 130, 3), np.uint8))
    names = [n for n, _ in cn.clean_images([tmp_path / "one", "bundled", tmp_path / "two"])]
    assert names == sorted(["a", "b", *cn.BUNDLED_PHOTOS])
    cv2.imwrite(str(tmp_path / "two" / "chelsea.png"), rng.integers(0, 256, (160, 130, 3), np.uint8))
    with pytest.raises(ISONetError, match="two images named 'chelsea'"):
        cn.clean_images(["bundled", tmp_path / "two"])


def test_train_test_split_is_disjoint_and_deterministic() -> None:
    clean = [(f"img{i}", np.zeros(1)) for i in range(10)]
    train, test = cn.split_train_test(clean)
    assert len(test) == 2 and len(train) == 8
    assert not {n for n, _ in train} & {n for n, _ in test}
    assert [n for n, _ in cn.split_train_test(clean[::-1])[1]] == [n for n, _ in test]
    with pytest.raises(ISONetError, match="at least 2"):
        cn.split_train_test(clean[:1])


def test_render_folder_writes_the_paper_layout(tmp_path: Path, db: cn.NoiseDatabase) -> None:
    clean = [(name, img[:96, :96]) for name, img in cn.clean_images()]
    cameras = db.select("reference")
    written = cn.render_folder(tmp_path, clean, (100, 3200), cameras, np.random.default_rng(0))
    assert len(written) == 2 * len(clean) and all(p.is_file() for p in written)
    sources = {split: {p.name.split("_")[0] for p in (tmp_path / split).rglob("*.png")} for split in ("Train", "Test")}
    assert sources["Train"] and sources["Test"] and not sources["Train"] & sources["Test"]
    assert {p.parent.name for p in written} == {"100", "3200"}
    shapes = {split: {read_image(p).shape for p in written if p.parts[-3] == split} for split in ("Train", "Test")}
    assert shapes["Test"] == {(96, 96, 3)}  # held-out sources as they are
    assert len(shapes["Train"]) > 1 and all(64 <= h <= 96 and w == h and c == 3 for h, w, c in shapes["Train"])
    assert not list(tmp_path.rglob("*.part*"))

    jpgs = cn.render_folder(tmp_path / "jpeg", clean[:2], (800,), cameras, np.random.default_rng(0), (75, 98),
                            jitter_train=False)
    assert all(p.suffix == ".jpg" and read_image(p).shape == (96, 96, 3) for p in jpgs)


def test_jitter_varies_scale_exposure_orientation_and_colour() -> None:
    clean = dict(cn.clean_images())["coffee"]  # 300x200, colourful
    variants = [cn.jitter_source(clean, np.random.default_rng(seed)) for seed in range(12)]
    assert all(v.dtype == np.uint8 and v.shape[2] == 3 and min(v.shape[:2]) >= 64 for v in variants)
    areas = [v.shape[0] * v.shape[1] / (clean.shape[0] * clean.shape[1]) for v in variants]
    assert all(0.25 - 0.01 <= a <= 1.0 for a in areas) and max(areas) - min(areas) > 0.2
    assert {v.shape[0] > v.shape[1] for v in variants} == {True, False}  # some turned 90 degrees
    means = [v.mean(axis=(0, 1)) for v in variants]
    assert np.ptp([m.mean() for m in means]) > 30  # exposure
    assert len({int(np.argmax(m)) for m in means}) > 1  # colour order
    np.testing.assert_array_equal(variants[0], cn.jitter_source(clean, np.random.default_rng(0)))


def test_brightness_lut_is_an_exposure_change_in_linear_light() -> None:
    assert np.array_equal(cn.brightness_lut(0.0), np.arange(256))
    lut = cn.brightness_lut(-1.0)
    np.testing.assert_allclose(cn.SRGB8_TO_LINEAR[lut], cn.SRGB8_TO_LINEAR / 2, atol=0.004)
    assert cn.brightness_lut(1.0)[200] == 255  # clipped like an overexposed highlight


def test_noiseless_camera_renders_the_content_alone(db: cn.NoiseDatabase) -> None:
    (noiseless,) = db.select("noiseless")
    (canon,) = db.select("Canon EOS 5D Mark III")
    grey = np.full((64, 64, 3), 118, np.uint8)
    for iso in (100, 6400, 102400):
        assert noiseless.supports(iso)
        flat = cn.render(grey, noiseless, iso, np.random.default_rng(0)).astype(float)
        assert flat.std(axis=(0, 1)).max() < 0.5  # white balance and rounding only
    assert cn.render(grey, canon, 100, np.random.default_rng(0)).astype(float).std(axis=(0, 1)).min() > 0.5


def test_render_folder_refuses_isos_no_camera_covers(db: cn.NoiseDatabase) -> None:
    (cam,) = db.select("Canon EOS 5D Mark III")
    unmeasured = r"ISO 3: no selected camera \(Canon EOS 5D Mark III\) was measured within 1 stop"
    with pytest.raises(ISONetError, match=unmeasured):
        cn.render_folder("unused", [("a", None), ("b", None)], (3,), [cam], np.random.default_rng(0))


def test_command_line_lists_cameras(db: cn.NoiseDatabase, capsys: pytest.CaptureFixture) -> None:
    assert cn.main(["--noise_profiles", str(db.path), "--camera", "Canon EOS 5D Mark III"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{db.path}: ") and out[1].startswith("Canon EOS 5D Mark III\tISO 100-102400")
    with pytest.raises(SystemExit) as exit_code:  # a bad --camera: one line, exit 2
        cn.main(["--noise_profiles", str(db.path), "--camera", "Canon EOS 5D Mk III"])
    assert exit_code.value.code == 2 and capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# Camera ISP
# ---------------------------------------------------------------------------------------------
def smooth_scene(h: int = 64, w: int = 64) -> np.ndarray:
    """A linear colour ramp in each channel: every bilinear-type demosaic reproduces it exactly
    away from the border."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.2 + 0.004 * x, 0.3 + 0.003 * y, 0.25 + 0.002 * (x + y)], axis=2)


@pytest.mark.parametrize("method", ["malvar", "colour_difference"])
@pytest.mark.parametrize("pattern", cn.CFA_PATTERNS)
def test_demosaics_rebuild_a_smooth_scene_from_its_mosaic(method, pattern):
    scene = smooth_scene()
    out = cn.demosaic_float(cn.mosaic(scene, pattern), pattern, method)
    assert np.abs(out - scene)[4:-4, 4:-4].max() < 1e-5


def test_malvar_keeps_each_sites_own_sample(camera):
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.1, 0.9, (32, 32)).astype(np.float32)
    out = cn.demosaic_malvar(raw, "GRBG")
    assert np.array_equal(cn.mosaic(out, "GRBG"), raw)


def test_colour_difference_demosaic_leaves_more_luma_noise_than_opencvs(camera):
    """The reason the ISP draws it: OpenCV's edge-aware demosaic smooths luma noise away."""
    grey = np.full((256, 256, 3), 118, np.uint8)
    sigma = {}
    for method in cn.ISP_DEMOSAICS:
        isp = cn.Isp(0.0, method, 0.0, "off", 0.0, 1.0, 0.0, 0.0, 1.0, "4:2:0")
        out = cn.render(grey, camera, 1600, np.random.default_rng(1), isp=isp).astype(np.float32)
        sigma[method] = cn.immerkaer_sigma(out.mean(axis=2))
    assert sigma["malvar"] > 2 * sigma["edge_aware"]
    assert sigma["colour_difference"] > 2 * sigma["edge_aware"]


def isp(**changes) -> cn.Isp:
    base = cn.Isp(0.0, "malvar", 0.0, "off", 0.0, 1.0, 0.0, 0.0, 1.0, "4:2:0")
    return cn.Isp(**{**base.__dict__, **changes})


@pytest.mark.parametrize("nr", ["bilateral", "nlm", "wavelet"])
def test_isp_noise_reduction_lowers_the_noise_and_more_with_strength(camera, nr):
    grey = np.full((256, 256, 3), 118, np.uint8)

    def sigma(processing):
        out = cn.render(grey, camera, 3200, np.random.default_rng(2), isp=processing)
        return cn.immerkaer_sigma(out.astype(np.float32).mean(axis=2))

    off = sigma(isp())
    mild, strong = sigma(isp(luma_nr=nr, luma_strength=0.7)), sigma(isp(luma_nr=nr, luma_strength=2.5))
    assert strong < mild < off
    assert strong < 0.7 * off


def test_isp_sharpening_and_smaller_output_size_change_the_noise_as_cameras_do(camera):
    grey = np.full((192, 192, 3), 118, np.uint8)

    def render(processing):
        out = cn.render(grey, camera, 1600, np.random.default_rng(3), isp=processing)
        assert out.shape == grey.shape and out.dtype == np.uint8
        return out.astype(np.float32)

    def sigma(processing):  # fine-grain noise, what sharpening raises
        return cn.immerkaer_sigma(render(processing).mean(axis=2))

    def std(processing):  # all of the noise, whatever its grain
        return render(processing).std(axis=(0, 1)).sum()

    assert sigma(isp(sharpen=1.0)) > 1.3 * sigma(isp())
    # Area resampling averages photosites (less noise, though demosaiced noise is too coarse to
    # fall by the factor 2 that white noise would).
    assert std(isp(scale=0.5)) < 0.85 * std(isp())
    # Exposure below ISO 12232's point needs more gain: more noise in the output.
    assert std(isp(exposure_stops=-0.8)) > 1.2 * std(isp())


def test_random_isp_noise_reduction_rises_with_iso():
    rng = np.random.default_rng(0)
    draws = {iso: [cn.random_isp(rng, iso) for _ in range(400)] for iso in (100, 800, 6400)}
    strength = {iso: np.mean([d.luma_strength for d in ds]) for iso, ds in draws.items()}
    assert strength[100] == 0 < strength[800] < strength[6400]
    assert all(d.demosaic in cn.ISP_DEMOSAICS and d.scale in cn.ISP_OUTPUT_SCALES for ds in draws.values() for d in ds)
    assert 0.1 < np.mean([d.luma_nr == "off" for d in draws[6400]]) < 0.3
    assert {d.chroma_subsampling for d in draws[800]} == {"4:2:0", "4:2:2"}


def test_jpeg_chroma_subsampling_is_written_as_asked():
    import io

    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for subsampling, layer in (("4:2:0", 2), ("4:2:2", 1), ("4:4:4", 0)):
        with Image.open(io.BytesIO(cn.encode_image(rgb, 90, subsampling))) as im:
            from PIL import JpegImagePlugin
            assert JpegImagePlugin.get_sampling(im) == layer


def test_immerkaer_sigma_reads_white_noise_and_ignores_a_ramp():
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(200.0), np.arange(200.0)).astype(np.float32)
    assert cn.immerkaer_sigma(ramp) < 1e-3
    noisy = ramp + rng.normal(0, 3.0, ramp.shape).astype(np.float32)
    assert abs(cn.immerkaer_sigma(noisy) - 3.0) < 0.1
    stack = np.stack([noisy, ramp])
    assert np.allclose(cn.immerkaer_sigma(stack), [cn.immerkaer_sigma(noisy), cn.immerkaer_sigma(ramp)])


def test_render_folder_with_isp_writes_jpegs_of_the_drawn_subsampling(tmp_path, camera):
    clean = [("a", np.full((96, 96, 3), 120, np.uint8)), ("b", np.full((96, 96, 3), 90, np.uint8))]
    written = cn.render_folder(tmp_path, clean, [800], [camera], np.random.default_rng(0), (90, 90),
                               renders_per_image=3, test_fraction=0.5, jitter_train=False, isp=True)
    assert len(written) == 6 and all(p.suffix == ".jpg" and p.is_file() for p in written)
    assert all(read_image(p).shape == (96, 96, 3) for p in written)

