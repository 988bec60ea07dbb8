"""Camera profiles (adapt_camera.py --out DIR), reading with them, intervals on every reading, and
the examination of a questioned photo against a profile."""
from __future__ import annotations

import csv
import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import camera_noise as cn
import camera_profile
import demos
import examination
import Fig7
import forgeries
import image_io
import metrics
import prnu
import prnu_scenario
import reports
from conftest import assert_one_line_error, run_script

H, W = 192, 256
ISOS = (100, 200, 400, 800)  # where the camera's noise reduction leaves its PRNU to find


def write_camera_photo(path: Path, rgb: np.ndarray, iso: int, model: str) -> Path:
    """A camera JPEG: make, model and ISO in EXIF, pixels as the sensor gave them."""
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x010F], exif[0x0110] = "Acme", model
    exif.get_ifd(0x8769)[0x8827] = iso
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif, quality=95)
    return path


@pytest.fixture(scope="module")
def camera(db) -> cn.CameraNoise:
    return db.select(demos.DEMO_CAMERA)[0]


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    return [prnu_scenario.cover_fit(img, H, W) for _, img in cn.clean_images()]


def render(scene: np.ndarray, camera: cn.CameraNoise, iso: int, rng: np.random.Generator) -> np.ndarray:
    return cn.render(scene, camera, iso, rng, isp=cn.typical_isp(iso), prnu=True)


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory, weights_file, camera, scenes) -> Path:
    """A profile of one rendered camera from 16 of its photos at ISO 100-800, flat fields and one
    scene at each ISO (scenes 0, 2, 4 and 6: a probe of another shares none), held either way
    (EXIF orientation 1 and 6), and a 17th of another size (read, but not in the fingerprint), built
    with a head-only reader."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("profile")
    for k in range(16):
        iso = ISOS[k % len(ISOS)]
        scene = scenes[k // 5 * 2] if k % 5 == 0 else prnu_scenario.flat_field(H, W, rng)
        path = write_camera_photo(root / "photos" / f"p{k}.jpg", render(scene, camera, iso, rng), iso, "Cam One")
        if k % 3 == 0:  # held upright: the same sensor pixels, EXIF orientation 6
            image = Image.open(path)
            exif = image.getexif()
            exif[0x0112] = 6
            image.save(path, exif=exif, quality=95)
    small = prnu_scenario.flat_field(W // 2, H // 2, rng)  # portrait, and smaller
    write_camera_photo(root / "photos" / "small.jpg", render(small, camera, 400, rng), 400, "Cam One")
    out = root / "cam_one"
    proc = run_script("adapt_camera.py", "--photos", root / "photos", "--out", out, "--init_from", weights_file,
                      "--method", "head", "--patches_per_photo", "12", "--block", 64, "--block_stride", 32)
    assert proc.returncode == 0, proc.stderr
    assert "chose" in proc.stdout and "80% interval" in proc.stdout and "PRNU fingerprint: 16 photos" in proc.stdout
    left_out = f"left out of the fingerprint: {root / 'photos' / 'small.jpg'}: 96x128, most photos {W}x{H}"
    assert left_out + " (either way round)" in proc.stderr
    return out


@pytest.mark.slow
def test_profile_folder_holds_what_its_photos_tell(profile_dir):
    data = json.loads((profile_dir / "profile.json").read_text())
    assert data["format"] == camera_profile.FORMAT and data["version"] == camera_profile.VERSION
    assert data["camera"] == "Acme Cam One" and len(data["photos"]) == 17 and len(data["prnu"]["photos"]) == 16
    assert data["reader"]["kind"] in camera_profile.READERS
    assert set(data["mae"]["readers"]) == set(camera_profile.READERS)
    # The chosen reader is the one with the lowest held-out error, and its residuals are those errors.
    chosen = data["mae"]["readers"][data["reader"]["kind"]]
    assert chosen == min(data["mae"]["readers"].values())
    residuals = np.array(data["held_out"]["residuals"])
    assert np.isclose(np.abs(residuals).mean(), chosen)
    assert data["iso_range"] == [100.0, 800.0] and data["reader"]["clamp"] == [-1.0, 4.0]
    profile = camera_profile.load_profile(profile_dir)
    assert profile.prnu is not None and profile.prnu.fingerprint.shape == (H, W)
    assert camera_profile.load_profile(profile_dir, with_prnu=False).prnu is None  # reading alone needs none
    assert (profile.network is None) == (data["reader"]["kind"] == "statistic")
    low, high = profile.interval(3.0)
    assert low < 3.0 < high and (low, high) == (3.0 + data["interval_offsets"][0], 3.0 + data["interval_offsets"][1])


@pytest.mark.slow
def test_a_damaged_profile_is_refused_in_one_line(profile_dir, tmp_path):
    import shutil

    for name, damage in (("reader", lambda d: d["reader"].pop("clamp")),
                         ("prnu_photos", lambda d: d["prnu"].pop("photos")),
                         ("prnu_photos_text", lambda d: d["prnu"].update(photos="p1.jpg")),
                         ("photo_file", lambda d: d["photos"][0].pop("file"))):
        copy = tmp_path / name
        shutil.copytree(profile_dir, copy)
        data = json.loads((copy / "profile.json").read_text())
        damage(data)
        (copy / "profile.json").write_text(json.dumps(data))
        with pytest.raises(camera_profile.ISONetError, match=re.escape(f"{copy}: a damaged camera profile")):
            camera_profile.load_profile(copy)


def test_the_noise_statistic_is_the_log_sigma_of_the_quieter_patches():
    """log2 of the luma noise's sigma in 8-bit levels, whatever the image's type; a textured half of
    the image does not move it (the quieter quarter of the patches decides)."""
    rng = np.random.default_rng(4)
    for sigma in (1.0, 2.0, 4.0, 8.0):
        grey = np.clip(120 + np.repeat(rng.normal(0, sigma, (256, 256, 1)), 3, axis=2), 0, 255)  # luma noise
        assert camera_profile.noise_statistic(grey.astype(np.uint8)) == pytest.approx(np.log2(sigma), abs=0.1)
        assert camera_profile.noise_statistic((grey * 257).astype(np.uint16)) == pytest.approx(np.log2(sigma), abs=0.1)
        grey[:, :128] += 40 * np.sin(np.arange(128) / 1.5)[None, :, None]  # strong texture on the left half
        assert camera_profile.noise_statistic(np.clip(grey, 0, 255).astype(np.uint8)) == pytest.approx(
            np.log2(sigma), abs=0.1)


def test_an_exif_iso_outside_the_interval_is_called_inconsistent_with_the_interval_s_miss_rate():
    import examination

    def first_line(exif_iso: int | None) -> str:
        record = {"exif_iso": exif_iso, "iso_metric_interval": [3.8, 4.1], "interval_level": 0.8}
        return examination.examination_lines(examination.Examination(record, None, {}, None, "none"))[0]

    assert first_line(1600) == "EXIF ISO against the reading's interval: consistent"
    assert first_line(3200) == ("EXIF ISO against the reading's interval: inconsistent (genuine photos fall outside "
                                "the 80% interval 20% of the time: weigh it with the rest)")
    assert first_line(None).endswith(": no EXIF ISO")


def test_a_profile_fits_the_statistic_readings_compute():
    """A profile fits its line on the statistic of the luma its PRNU view already holds; a reading
    computes it from the image as read (floats in [0, 1]): both must be the same number."""
    rng = np.random.default_rng(5)
    photo = np.clip(rng.normal(100, 6, (200, 300, 3)) + np.linspace(0, 80, 300)[None, :, None], 0, 255).astype(np.uint8)
    fitted = camera_profile.luma_noise_statistic(prnu.observe(photo).intensity)
    assert camera_profile.noise_statistic(photo.astype(np.float32) / 255) == pytest.approx(fitted, abs=1e-5)
    assert camera_profile.noise_statistic(photo) == pytest.approx(fitted, abs=1e-5)
    deep = photo.astype(np.uint16) * 257  # a 16-bit file, decoded as stored: the same levels
    assert camera_profile.luma_noise_statistic(prnu.observe(deep).intensity) == pytest.approx(fitted, abs=1e-5)
    assert camera_profile.noise_statistic(deep) == pytest.approx(fitted, abs=1e-5)


@pytest.mark.slow
def test_reading_with_a_profile_gives_its_interval_and_refuses_other_versions(profile_dir, weights_file, camera,
                                                                              scenes, tmp_path):
    rng = np.random.default_rng(5)
    probe = write_camera_photo(tmp_path / "in" / "new.jpg", render(scenes[2], camera, 1600, rng), 1600, "Cam One")
    proc = run_script("test_model.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path", probe,
                      "--out_dir", tmp_path / "out", "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "out" / "new.json").read_text())
    assert record["reader"] == str(profile_dir) and record["interval_level"] == 0.8
    low, high = record["iso_metric_interval"]
    assert low < record["global_iso_metric"] < high
    assert "80% interval ISO" in proc.stdout and "EXIF ISO 1600 lies" in proc.stdout
    (row,) = csv.DictReader((tmp_path / "out" / "summary.csv").open())
    assert float(row["iso_metric_low"]) == pytest.approx(low) and row["file_kind"] == "in_camera_jpeg"
    # Another format version: one line, exit 2.
    stale = tmp_path / "stale"
    stale.mkdir()
    data = json.loads((profile_dir / "profile.json").read_text()) | {"version": 99}
    (stale / "profile.json").write_text(json.dumps(data))
    assert_one_line_error(run_script("test_model.py", "--model_path", weights_file, "--profile", stale,
                                     "--pic_path", probe, "--out_dir", tmp_path / "o2"), 2, "version 99")
    assert_one_line_error(run_script("test_model.py", "--model_path", weights_file, "--profile", tmp_path / "in",
                                     "--pic_path", probe, "--out_dir", tmp_path / "o3"), 2, "not a camera profile")


@pytest.mark.slow
def test_profiles_folder_picks_each_photos_camera_and_says_when_none_matched(profile_dir, weights_file, camera,
                                                                               scenes, tmp_path):
    rng = np.random.default_rng(6)
    ours = write_camera_photo(tmp_path / "in" / "ours.jpg", render(scenes[3], camera, 400, rng), 400, "Cam One")
    theirs = write_camera_photo(tmp_path / "in" / "theirs.jpg", render(scenes[3], camera, 400, rng), 400, "Cam Two")
    respelt = write_camera_photo(tmp_path / "in" / "respelt.jpg", render(scenes[3], camera, 400, rng), 400, "CAM one")
    proc = run_script("test_model.py", "--model_path", weights_file, "--profiles", profile_dir.parent,
                      "--pic_path", ours, theirs, respelt, "--out_dir", tmp_path / "out", "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    lines = {Path(line.split(":")[0]).name: line for line in proc.stdout.splitlines() if ": ISO metric" in line}
    assert f"read with the camera profile {profile_dir}" in lines["ours.jpg"]
    assert f"read with the camera profile {profile_dir}" in lines["respelt.jpg"]  # EXIF's case is not the camera
    assert "no camera profile matched its camera (Acme Cam Two)" in lines["theirs.jpg"]
    assert proc.stderr.count(camera_profile.OTHER_UNITS) == 1  # a model's EXIF name does not tell its units apart
    two = run_script("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2, "test_model.py",
                     "--model_path", weights_file, "--profiles", profile_dir.parent, "--pic_path", ours, respelt,
                     theirs, "--out_dir", tmp_path / "two", "--figures", "none")  # both processes read with it
    assert two.returncode == 0, two.stderr
    assert two.stderr.count(camera_profile.OTHER_UNITS) == 1  # once for the run, not once a process
    # Two profiles of one camera, however spelt, in one folder: which to read with is not guessed.
    ours = camera_profile.load_profile(profile_dir, with_prnu=False)
    respelt_twin = dataclasses.replace(ours, folder=tmp_path / "twin", camera="ACME cam  ONE")
    twins = re.escape(f"twin and {profile_dir}: two profiles of ACME cam  ONE")
    with pytest.raises(camera_profile.ISONetError, match=twins):
        camera_profile.by_camera([ours, respelt_twin])


@pytest.mark.slow
def test_examination_against_a_profile_finds_the_camera_and_a_pasted_region(profile_dir, weights_file, camera,
                                                                            scenes, tmp_path, db, monkeypatch):
    rng = np.random.default_rng(7)  # scenes[5] is in none of the profile's photos: no scene shared
    genuine = write_camera_photo(tmp_path / "genuine.jpg", render(scenes[5], camera, 200, rng), 200, "Cam One")
    proc = run_script("Fig7.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path", genuine,
                      "--out_dir", tmp_path / "a", "--false_alarm", "0.05")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "a" / "Fig7_examination.json").read_text())
    assert report["prnu"]["same_camera"] and report["exif_verdict"] in ("consistent", "inconsistent")
    assert (tmp_path / "a" / "Fig7_examination.png").stat().st_size > 0
    assert "PCE of genuine.jpg against the fingerprint" in proc.stdout and "-> same camera" in proc.stdout
    assert not report["prnu"]["probe_in_fingerprint"] and "built from" not in proc.stdout
    assert examination.NOT_THIS_CAMERA_MAP not in proc.stdout and examination.NOT_THIS_CAMERA_READING not in proc.stdout
    assert "fingerprint: 16 images" in proc.stdout  # the fingerprint's photos, not all 17 of the profile
    # A photo of another camera under the same EXIF model: its PRNU says so, and the EXIF verdict
    # says that the profile's reading and interval may not hold for it.
    other = write_camera_photo(tmp_path / "other.jpg", render(scenes[5], db.select("Nikon D7000")[0], 200, rng),
                               200, "Cam One")
    proc = run_script("Fig7.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path", other,
                      "--out_dir", tmp_path / "other")
    assert proc.returncode == 0 and "-> not this camera" in proc.stdout, proc.stdout
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("EXIF ISO against"))
    assert verdict.endswith(f"({examination.NOT_THIS_CAMERA_READING})"), verdict
    # One of the profile's own photos: its PCE is against itself, and the examination says so.
    proc = run_script("Fig7.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path",
                      profile_dir.parent / "photos" / "p1.jpg", "--out_dir", tmp_path / "own")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "own" / "Fig7_examination.json").read_text())["prnu"]["probe_in_fingerprint"]
    assert "warning: the photo is one of those the profile's fingerprint was built from" in proc.stdout
    assert "(one of the photos it was built from: not a held-out reading)" in proc.stdout
    # test_model.py says the same of a profile's own photo, and only of it.
    proc = run_script("test_model.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path",
                      profile_dir.parent / "photos" / "p1.jpg", genuine, "--out_dir", tmp_path / "tm",
                      "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    records = {f.stem: json.loads(f.read_text()) for f in (tmp_path / "tm").rglob("*.json")}
    assert [records[n]["profile_photo"] for n in ("p1", "genuine")] == [True, False]
    with open(tmp_path / "tm" / "summary.csv") as f:
        summary = {Path(r["file"]).stem: r["profile_photo"] for r in csv.DictReader(f)}
    assert summary == {"p1": "True", "genuine": "False"}
    assert proc.stdout.count("not a held-out reading") == 1
    # ...and so does the report's figure, in-process to read its titles.
    titles = {}
    monkeypatch.setattr(reports, "save_figure", lambda fig, path, **_: titles.update({Path(path).name: fig.axes}))
    monkeypatch.setattr(sys, "argv", ["Fig7.py", "--model_path", str(weights_file), "--profile", str(profile_dir),
                                      "--pic_path", str(profile_dir.parent / "photos" / "p1.jpg"),
                                      "--out_dir", str(tmp_path / "own_in_process")])
    assert Fig7.main() == 0
    assert "compared with itself" in titles["Fig7_examination.png"][2].get_title()
    # A profile that keeps no photo's hash: its photos are found where it lists them.
    profile = camera_profile.load_profile(profile_dir, "cpu", "fp32", with_prnu=True)
    for photo in profile.summary["photos"]:
        del photo["sha256"]
    assert examination.in_fingerprint(profile_dir.parent / "photos" / "p1.jpg", profile)
    assert not examination.in_fingerprint(genuine, profile)
    # A region from another camera's render of the same scene: its blocks fall further below their
    # prediction than the camera's own blocks do.
    donor = db.select("Nikon D7000")[0]
    forged, mask = forgeries.forge_from_camera(scenes[5], camera, donor, 200, rng, None, cn.typical_isp(200))
    path = write_camera_photo(tmp_path / "forged.jpg", forged, 200, "Cam One")
    proc = run_script("Fig7.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path", path,
                      "--out_dir", tmp_path / "b", "--false_alarm", "0.05", "--band", "exif")
    assert proc.returncode == 0, proc.stderr
    margin = np.array(json.loads((tmp_path / "b" / "Fig7_examination.json").read_text())["prnu"]["margin"])
    coverage = prnu.block_coverage(mask, 64, 32)
    inside, outside = margin[coverage > 0.75].mean(), margin[coverage == 0].mean()
    assert inside < outside - 0.01, (inside, outside)


@pytest.mark.slow
def test_evaluate_scores_the_profiles_reader_beside_the_model(profile_dir, weights_file, camera, scenes, tmp_path):
    rng = np.random.default_rng(8)
    for k, iso in enumerate((100, 400, 1600)):
        write_camera_photo(tmp_path / "set" / str(iso) / f"q{k}.jpg", render(scenes[2 * k + 1], camera, iso, rng),
                           iso, "Cam One")
    proc = run_script("evaluate.py", "--model_path", weights_file, "--profile", profile_dir, "--compare",
                      weights_file.with_name("missing.pth"), "--data", tmp_path / "set", "--out_dir", tmp_path / "ev")
    assert_one_line_error(proc, 2, "missing.pth")
    proc = run_script("evaluate.py", "--model_path", weights_file, "--profile", profile_dir, "--data",
                      tmp_path / "set", "--out_dir", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    (name,) = report["models"]
    assert name.startswith(f"profile {profile_dir}") and report["models"][name]["n"] == 3
    assert "built from" not in proc.stderr
    # One of the profile's own photos among them, under another name: said to be not held out.
    own = tmp_path / "set" / "200" / "own.jpg"
    own.parent.mkdir()
    own.write_bytes((profile_dir.parent / "photos" / "p1.jpg").read_bytes())
    proc = run_script("evaluate.py", "--model_path", weights_file, "--profile", profile_dir, "--data",
                      tmp_path / "set", "--out_dir", tmp_path / "ev2")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: 1 of the 4 photos (first {own}) are among those the profile" in proc.stderr
    assert_one_line_error(run_script("evaluate.py", "--model_path", weights_file, "--profile", profile_dir,
                                     "--data", tmp_path / "set", "--calibrate"), 2, "--calibrate")


@pytest.mark.slow
def test_fingerprint_dir_and_a_profile_are_one_or_the_other(profile_dir, weights_file, tmp_path):
    probe = next((profile_dir.parent / "photos").iterdir())
    assert_one_line_error(run_script("Fig7.py", "--model_path", weights_file, "--profile", profile_dir, "--pic_path",
                                     probe, "--fingerprint_dir", profile_dir.parent / "photos",
                                     "--out_dir", tmp_path), 2, "--fingerprint_dir and a camera profile")


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------
def test_conformal_offsets_keep_their_level_on_exchangeable_residuals():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(400):
        residuals = rng.normal(0.5, 1.0, 21)
        low, high = metrics.conformal_offsets(residuals[:20], 0.8)
        covered.append(low <= residuals[20] <= high)
    assert 0.76 <= np.mean(covered) <= 0.9
    # Camera-weighted: a camera with many photos counts once.
    many = np.r_[np.zeros(100), np.linspace(-3, 3, 9)]
    cameras = ["big"] * 100 + [f"c{k}" for k in range(9)]
    low, high = metrics.conformal_offsets(many, 0.8, metrics.camera_weights(cameras), len(set(cameras)))
    assert low <= -2 and high >= 2  # the nine small cameras' spread, not the big camera's zeros
    # Capped: the big camera counts as 60 photos, far more than the nine others together.
    weights = metrics.camera_weights(cameras, 60)
    assert weights[:100].sum() == pytest.approx(60) and weights[100:].sum() == pytest.approx(9)
    assert metrics.conformal_offsets(many, 0.8, weights, 69) == (0.0, 0.0)


def test_leave_camera_out_coverage_judges_each_camera_by_the_others():
    rng = np.random.default_rng(2)
    cameras = [f"c{k}" for k in range(12) for _ in range(10)]
    shifts = np.repeat(rng.normal(0, 1, 12), 10)
    residuals = shifts + rng.normal(0, 0.3, len(cameras))
    readings = rng.uniform(0, 6, len(cameras))
    fit = metrics.leave_camera_out_coverage(readings, residuals, cameras, ())
    assert fit["cameras"] == 12 and fit["photos"] == 120
    per_camera = fit["per_camera"]
    outlier = max(range(12), key=lambda k: abs(shifts[k * 10]))
    assert per_camera[f"c{outlier}"] < fit["coverage"]  # the camera furthest off is the least covered


def test_interval_ends_never_step_back_as_the_reading_rises():
    rows = [[1.0, -1.0, 3.0], [2.0, -1.5, 4.0], [np.inf, -2.5, 3.0]]  # bands whose offsets step back
    grid = np.linspace(-1, 5, 601)
    lows, highs = np.array([metrics.interval_of(rows, r) for r in grid]).T
    assert np.all(np.diff(lows) >= -1e-12) and np.all(np.diff(highs) >= -1e-12)
    assert metrics.interval_of(rows, 0.0) == (-1.0, 3.0)  # far from an edge: the band's own offsets
    assert metrics.interval_of(rows, 4.0) == (1.5, 7.0)
    assert metrics.interval_of(rows, 2.1) == pytest.approx((-0.4, 6.0))  # the upper end held at the band below's


def test_a_camera_spelt_two_ways_is_one_camera():
    names = ["RaspberryPi RP_ov5647"] * 3 + ["RaspberryPi  RP_OV5647", "Canon EOS 50D"]
    assert image_io.one_spelling(names) == ["RaspberryPi RP_ov5647"] * 4 + ["Canon EOS 50D"]


@pytest.mark.slow
def test_interval_table_from_evaluate_is_applied_beside_its_model_and_refused_for_others(
        tmp_path, weights_file, second_weights):
    """evaluate.py --fit_intervals fits a table on photos of several cameras; test_model.py applies it to
    the model it was fitted for, and refuses it, in one line, for another."""
    rng = np.random.default_rng(3)
    for k in range(6):
        for iso in (100, 800, 3200):
            rgb = np.clip(128 + rng.normal(0, 2 * (iso / 100) ** 0.5, (128, 160, 3)), 0, 255).astype(np.uint8)
            write_camera_photo(tmp_path / "set" / str(iso) / f"cam{k}_{iso}.jpg", rgb, iso, f"Model {k}")
    table_path = tmp_path / "net.intervals.json"
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", tmp_path / "set", "--fit_intervals",
                      table_path, "--out_dir", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    assert "leave-camera-out" in proc.stdout and "in-camera JPEG" in proc.stdout
    table = metrics.IntervalTable.load(table_path)
    assert set(table.kinds) == {"in_camera_jpeg", "other_jpeg", "no_metadata"}
    # Refitted from that run's readings, without reading the photos again: the same table.
    again = tmp_path / "again.intervals.json"
    proc = run_script("evaluate.py", "--model_path", weights_file, "--readings", tmp_path / "ev", "--fit_intervals",
                      again)
    assert proc.returncode == 0, proc.stderr
    assert metrics.IntervalTable.load(again).kinds == pytest.approx(table.kinds)
    assert_one_line_error(run_script("evaluate.py", "--model_path", second_weights, "--readings", tmp_path / "ev",
                                     "--fit_intervals", again), 2, "not of --model_path")
    assert_one_line_error(run_script("evaluate.py", "--model_path", weights_file, "--readings", tmp_path / "ev",
                                     tmp_path / "ev", "--fit_intervals", again), 2, "more than one of the --readings")
    assert table.summary["kinds"]["in_camera_jpeg"]["cameras"] == 6
    photo = tmp_path / "set" / "800" / "cam0_800.jpg"
    proc = run_script("test_model.py", "--model_path", weights_file, "--intervals", table_path, "--pic_path", photo,
                      "--out_dir", tmp_path / "out", "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "out" / "cam0_800.json").read_text())
    reading = record["global_iso_metric"]
    expected = table.interval(reading, "in_camera_jpeg")
    assert record["iso_metric_interval"] == pytest.approx(list(expected), abs=1e-4)
    assert "intervals.json (in-camera JPEG)" in record["interval_source"]
    assert_one_line_error(run_script("test_model.py", "--model_path", second_weights, "--intervals", table_path,
                                     "--pic_path", photo, "--out_dir", tmp_path / "o2"), 2,
                          "fitted for another model")


def test_a_wide_interval_says_the_absolute_iso_cannot_be_read_without_a_profile():
    import reports

    record = {"file": "x.jpg", "clipped_share": 0.0, "exif_iso": 1600, "global_iso_metric": 0.5,
              "iso_metric_interval": [-0.5, 4.0], "interval_level": 0.8}
    (warning,) = reports.reading_warnings(record)
    assert "cannot be read without a profile of its camera" in warning and "4.5 stops" in warning
    assert "lies within it: consistent" in reports.interval_text(record)
    narrow = record | {"iso_metric_interval": [0.0, 1.0]}
    assert reports.reading_warnings(narrow) == [] and "lies outside it" in reports.interval_text(narrow)
