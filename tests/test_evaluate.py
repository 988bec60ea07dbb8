"""evaluate.py and the embedded demos, run as a user runs them."""
import csv
import json

import numpy as np
import pytest

import image_io
import isonet
import metrics
from conftest import assert_one_line_error, make_labelled_folder, run_script, write_rgb


@pytest.mark.slow
def test_labelled_accuracy_matches_figures_computed_here(tmp_path, weights_file, random_net, second_weights):
    photos = make_labelled_folder(tmp_path / "photos", isos=(100, 400, 1600), per_iso=2, h=128, w=192)
    (photos / "Test" / "400" / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "eval"
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", photos, "--compare", second_weights,
                      "--calibrate", "--folds", 3, "--out_dir", out)
    assert proc.returncode == 1, proc.stderr  # one image could not be read; the others are scored
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr

    files = sorted((photos / "Test").glob("*/[0-9].png"))
    true = np.array([isonet.iso_to_metric(int(f.parent.name)) for f in files])
    maps = [isonet.iso_map(random_net, image_io.read_image(f)).map for f in files]
    estimated = np.array([np.median(m) for m in maps])
    error = estimated - true
    report = json.loads((out / "report.json").read_text())
    ours = report["models"][str(weights_file)]
    assert ours["n"] == 6
    assert ours["mae"] == pytest.approx(np.abs(error).mean(), abs=1e-5)
    assert ours["bias"] == pytest.approx(error.mean(), abs=1e-5)
    assert ours["rmse"] == pytest.approx(np.sqrt((error**2).mean()), abs=1e-5)
    assert ours["within_one_stop"] == pytest.approx(np.mean(np.abs(error) <= 1))
    patch_errors = np.concatenate([np.abs(m.ravel() - t) for m, t in zip(maps, true)])
    assert ours["patch_mae"] == pytest.approx(patch_errors.mean(), abs=1e-5)
    assert [row["iso"] for row in ours["per_iso"]] == [100, 400, 1600]
    assert str(second_weights) in report["models"] and "calibrated (cross-validated)" in report["models"]
    printed = proc.stdout.splitlines()  # each model's row names it whole, however long its path
    assert all(any(line.startswith(f"{m} ") for line in printed) for m in (weights_file, second_weights))
    assert report["skipped"][0]["file"].endswith("broken.png")

    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"compare_estimated_metric", "calibrated_metric"} <= set(rows[0])
    for name in ["scatter.png", "confusion.png", "calibration.json"]:
        assert (out / name).stat().st_size > 0

    # the saved calibration, applied by test_model.py, moves every patch through the fitted curve
    calibration = metrics.Calibration.load(out / "calibration.json")
    proc = run_script("test_model.py", "--model_path", weights_file, "--pic_path", files[0],
                      "--calibration", out / "calibration.json", "--out_dir", tmp_path / "tm")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "tm" / f"{files[0].stem}.json").read_text())
    np.testing.assert_allclose(record["map"], calibration(maps[0]), atol=1e-5)
    # ...and only to the model it was fitted for: another model's estimates have another distortion.
    assert_one_line_error(run_script("test_model.py", "--model_path", second_weights, "--pic_path", files[0],
                                     "--calibration", out / "calibration.json", "--out_dir", tmp_path / "tm2"),
                          2, "calibration.json", "another model")


@pytest.mark.slow
def test_exif_labels_from_a_flat_folder(tmp_path, weights_file):
    from PIL import Image

    for iso in (200, 3200):
        image = Image.fromarray(np.full((64, 128, 3), 120, np.uint8))
        exif = image.getexif()
        exif.get_ifd(0x8769)[0x8827] = iso
        image.save(tmp_path / f"shot{iso}.jpg", exif=exif, quality=95)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "no_exif.jpg")
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", tmp_path, "--label_from", "exif",
                      "--out_dir", tmp_path / "o")
    assert proc.returncode == 1, proc.stderr  # one image has no label
    assert "no_exif.jpg: no ISO label" in proc.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [r["iso"] for r in report["models"][str(weights_file)]["per_iso"]] == [200, 3200]


@pytest.mark.slow
def test_black_images_are_counted_apart(tmp_path, weights_file):
    folder = tmp_path / "data" / "800"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_rgb(folder / "night.png", rng.integers(0, 3, (128, 128, 3)).astype(np.uint8))
    write_rgb(folder / "day.png", (120 + rng.normal(0, 4, (128, 128, 3))).clip(0, 255).astype(np.uint8))
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", tmp_path / "data",
                      "--out_dir", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert "1 image(s) have more than half their patches black or saturated" in proc.stdout
    with open(tmp_path / "o" / "per_image.csv") as f:
        shares = {r["file"].rsplit("/", 1)[-1]: float(r["clipped_share"]) for r in csv.DictReader(f)}
    assert shares == {"day.png": 0.0, "night.png": 1.0}


@pytest.mark.slow
def test_no_labelled_image_is_a_clear_error(tmp_path, weights_file):
    (tmp_path / "800").mkdir()
    (tmp_path / "800" / "bad.png").write_text("nope")
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", tmp_path)
    assert proc.returncode == 1 and "no labelled image could be read" in proc.stderr.splitlines()[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_script("evaluate.py", "--model_path", weights_file, "--data", empty), 2,
                          str(empty), "no images found")
    assert_one_line_error(run_script("evaluate.py", "--model_path", weights_file), 2, "--data", "--splice")


@pytest.mark.slow
def test_splice_scores_for_both_strides(tmp_path, weights_file):
    proc = run_script("evaluate.py", "--model_path", weights_file, "--splice", 4, "--stride", 32,
                      "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "splice.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 2 * 3  # splices x strides x (model, classical noise-sigma baseline, both added)
    assert {r["model"] for r in rows} == {str(weights_file), "noise sigma (Immerkaer)", f"{weights_file} + sigma"}
    assert sorted({int(r["gap_stops"]) for r in rows}) == [1, 2, 3, 4]
    assert {int(r["stride"]) for r in rows} == {32, 64}
    assert all(0 <= float(r["auc"]) <= 1 and 0 <= float(r["f1"]) <= 1 for r in rows)
    table = json.loads((tmp_path / "report.json").read_text())["table"]
    overall = [t for t in table if t["gap_stops"] == "all"]
    assert len(overall) == 6 and all(t["n"] == 4 for t in overall)


@pytest.mark.slow
def test_real_splices_from_a_photo_set(tmp_path, weights_file):
    """--splice with --data: splices of real photos of one camera, the region's noise 1-4 stops
    off; a noise sigma that rises with ISO localises them."""
    photos = make_labelled_folder(tmp_path / "photos", isos=(100, 400, 1600), per_iso=2, h=192, w=192)
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", photos, "--splice", 6,
                      "--out_dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "real splices" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "out" / "splice.csv").open()))
    assert len(rows) == 6 * 3 and {int(r["gap_stops"]) for r in rows} <= {2, 4}  # model, sigma, both added
    assert np.mean([float(r["auc"]) for r in rows if r["model"].startswith("noise sigma")]) > 0.8


@pytest.mark.slow
def test_prepare_data_renders_a_training_set(tmp_path):
    import h5py

    proc = run_script("prepare_data.py", "--render", "--save_path", tmp_path / "set", "--isos", 200, 1600,
                      "--renders_per_image", 1, "--stride", 128, "--aug_times", 0, "--jpeg_quality", 80, 95)
    assert proc.returncode == 0, proc.stderr
    renders = tmp_path / "set" / "renders"
    train = {p.name.split("_")[0] for p in (renders / "Train").rglob("*.jpg")}
    test = {p.name.split("_")[0] for p in (renders / "Test").rglob("*.jpg")}
    assert train and test and not train & test  # disjoint clean sources
    with h5py.File(tmp_path / "set" / "test.h5") as h5:
        assert sorted(set(np.round(h5["iso_metric"][:], 4))) == [1.0, 4.0]
    proc = run_script("prepare_data.py", "--render", "--save_path", tmp_path / "set", "--isos", 200)
    assert_one_line_error(proc, 2, "not empty")


@pytest.mark.slow
def test_render_only_writes_the_photo_set_and_no_patches(tmp_path):
    proc = run_script("prepare_data.py", "--render", "--no-train", "--no-test", "--data_path", tmp_path / "photos",
                      "--save_path", tmp_path / "set", "--isos", 400, "--renders_per_image", 1, "--no-isp")
    assert proc.returncode == 0, proc.stderr
    assert {p.parent.name for p in (tmp_path / "photos").rglob("*.png")} == {"400"}
    assert not (tmp_path / "set").exists()


@pytest.mark.slow
@pytest.mark.parametrize("script,expected,extra", [
    ("test_model.py", "truth: ISO 1600", ()),
    ("Fig7.py", "truth: ISO 800", ()),
    ("Fig4.py", "pixel AUC", ()),
])
def test_embedded_demos_run_without_an_image(tmp_path, weights_file, script, expected, extra):
    proc = run_script(script, "--model_path", weights_file, "--out_dir", tmp_path, *extra)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout and "no --pic_path given: demo" in proc.stdout
    assert list(tmp_path.glob("demo_chelsea_*"))
    if script == "Fig7.py":  # the quick scenario by default, saying what it does as it goes
        assert "ISONet as given): about" in proc.stdout and "fine-tuning" not in proc.stdout
        assert "rendering and judging genuine and forged probes" in proc.stdout


@pytest.mark.slow
def test_calibrate_with_fewer_images_than_folds_is_one_line(tmp_path, weights_file):
    photos = make_labelled_folder(tmp_path / "photos", isos=(100,), per_iso=1)
    assert_one_line_error(run_script("evaluate.py", "--model_path", weights_file, "--data", photos, "--calibrate"),
                          2, "--calibrate", "at least 5 labelled images")


def test_a_split_passed_alone_finds_its_sets_manifest(tmp_path):
    """`--data data/real/Train` names each photo's camera as the set's manifest does, not as
    'unknown' (crops carry no EXIF)."""
    import evaluate
    import real_photos

    photo = tmp_path / "real" / "Train" / "800" / "crop.png"
    photo.parent.mkdir(parents=True)
    write_rgb(photo, np.full((64, 64, 3), 128, np.uint8))
    with (tmp_path / "real" / real_photos.MANIFEST).open("w", newline="") as f:
        writer = csv.DictWriter(f, real_photos.MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerow({"file": "Train/800/crop.png", "split": "Train", "iso": 800, "camera": "Named Phone"})
    assert evaluate.cameras_of([photo], [str(tmp_path / "real" / "Train")]) == ["Named Phone"]
