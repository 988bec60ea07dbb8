"""Real labelled photos: a checkout -> the paper's layout split by camera, per-camera reports,
and adapting a model to one camera."""
from __future__ import annotations

import copy
import csv
import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import adapt_camera  # noqa: E402
import dataset  # noqa: E402
import image_io  # noqa: E402
import isonet  # noqa: E402
import real_photos
from conftest import DEVICES, assert_one_line_error, noise_image, run_script


def write_camera_jpeg(path: Path, iso: int | None, make: str = "Acme", model: str = "Cam One",
                      software: str | None = None, seed: int = 0, size: tuple[int, int] = (160, 128)) -> Path:
    """A JPEG with the EXIF a camera writes: make, model, ISO (and software when edited)."""
    rng = np.random.default_rng(seed)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    if software:
        exif[0x0131] = software
    if iso is not None:
        exif.get_ifd(0x8769)[0x8827] = iso
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise_image(rng, iso or 100, size[1], size[0])).save(path, quality=95, exif=exif)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository of camera files as public sample collections hold them."""
    root = tmp_path / "checkout"
    for k, (model, iso) in enumerate([("Cam One", 100), ("Cam One", 800), ("Cam Two", 400), ("Cam Three", 1600),
                                      ("Cam Three", 200)]):
        write_camera_jpeg(root / "jpg" / f"{model} ({k}).jpg", iso, model=model, seed=k)
    write_camera_jpeg(root / "jpg" / "edited.jpg", 200, model="Cam Two", software="Adobe Photoshop 7.0")
    write_camera_jpeg(root / "jpg" / "no_iso.jpg", None, model="Cam Two")
    (root / "jpg" / "metadata").mkdir()
    (root / "jpg" / "metadata" / "notes.txt").write_text("not an image")
    return root


def test_exif_layout_labels_by_camera_and_refuses_edited_files(checkout):
    photos, skipped = real_photos.find_real_photos(checkout, "exif")
    assert sorted((p.camera, p.iso) for p in photos) == [
        ("Acme Cam One", 100), ("Acme Cam One", 800), ("Acme Cam Three", 200), ("Acme Cam Three", 1600),
        ("Acme Cam Two", 400)]
    reasons = {p.name: r for p, r in skipped}
    assert "Photoshop" in reasons["edited.jpg"] and reasons["no_iso.jpg"] == "no EXIF ISO"


def test_a_header_declaring_absurd_pixels_stops_neither_the_labelling_nor_the_others(checkout):
    """Public sample collections hold fuzzing files (a TIFF declaring 2.4e12 pixels in one): EXIF is
    read without Pillow's pixel limit, since no pixel is decoded, and the batch goes on."""
    path = write_camera_jpeg(checkout / "fuzz" / "huge.jpg", 3200, model="Cam Huge")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65000).to_bytes(2, "big") * 2  # 4.2e9 pixels: Pillow refuses to open it
    path.write_bytes(bytes(data))
    photos, _ = real_photos.find_real_photos(checkout, "exif")
    assert ("Acme Cam Huge", 3200) in {(p.camera, p.iso) for p in photos} and len(photos) == 6
    assert image_io.read_exif_iso(path) == 3200 and image_io.read_exif_camera(path) == ("Acme Cam Huge", None)


def test_iso_folders_and_sidd_layouts(tmp_path):
    root = tmp_path / "crops"
    for iso in ("iso0100", "iso3200"):
        write_camera_jpeg(root / "sample_imgs" / iso / "a.jpg", None)
    write_camera_jpeg(root / "other" / "b.jpg", None)
    photos, skipped = real_photos.find_real_photos(root, "iso_folders", camera="Canon EOS 600D", include="sample_imgs")
    assert sorted((p.camera, p.iso) for p in photos) == [("Canon EOS 600D", 100), ("Canon EOS 600D", 3200)]
    sidd = tmp_path / "sidd"
    write_camera_jpeg(sidd / "noisy" / "0145_007_N6_03200_03200_4400_N_178.jpg", None)
    write_camera_jpeg(sidd / "gan" / "0145_007_N6_03200_03200_4400_N_178.jpg", None)  # a fake: not included
    photos, _ = real_photos.find_real_photos(sidd, "sidd", include="/noisy/")
    assert [(p.camera, p.iso) for p in photos] == [("Motorola Nexus 6", 3200)]
    with pytest.raises(isonet.ISONetError, match="needs the camera"):
        real_photos.find_real_photos(root, "iso_folders")


@pytest.mark.slow
def test_import_keeps_each_camera_in_one_split_and_writes_a_manifest(checkout, tmp_path):
    out = tmp_path / "real"
    proc = run_script("import_real_photos.py", "--source", checkout, "--layout", "exif", "--out", out,
                      "--test_cameras", "Acme Cam Three", "--test_fraction", "0", "--source_name", "samples",
                      "--commit", "abc123", "--licence", "CC0")
    # The edited and the unlabelled file are left out, each named on stderr, and the exit code says so.
    assert proc.returncode == 1 and proc.stderr.count("left out:") == 2 and "edited.jpg: edited with" in proc.stderr
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 5 and all(r["source"] == "samples" and r["commit"] == "abc123" for r in rows)
    assert {r["camera"] for r in rows if r["split"] == "Test"} == {"Acme Cam Three"}
    for r in rows:
        path = out / r["file"]
        assert path.is_file() and path.parent.name == r["iso"] and path.parts[-3] == r["split"]
        assert image_io.read_exif_iso(path) == int(r["iso"])  # the file is copied whole, EXIF included
    # The layout is the paper's: prepare_data and evaluate read it as they read any photo set.
    files = dataset.find_labelled_images(out / "Test", None)
    assert sorted(iso for _, iso in files) == [200, 1600]
    assert real_photos.cameras_of([f for f, _ in files], out) == ["Acme Cam Three"] * 2
    # Importing again replaces, never duplicates: Cam Three, no longer named, moves to Train.
    assert run_script("import_real_photos.py", "--source", checkout, "--layout", "exif", "--out", out,
                      "--test_fraction", "0").returncode == 1
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 5 and {r["split"] for r in rows} == {"Train"}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == sorted(r["file"] for r in rows)


def test_photos_of_the_same_name_from_two_series_both_keep_their_copy(tmp_path):
    """Lab series name their files by ISO (iso100.jpg ... in every series and repository): each
    photo keeps a copy and a row of its own, and importing again renames nothing."""
    series = [write_camera_jpeg(tmp_path / repo / "TP3" / "iso100.jpg", 100, seed=k)
              for k, repo in enumerate(["repo_a", "repo_b"])]
    out = tmp_path / "real"
    for _ in range(2):
        for repo in ("repo_a", "repo_b"):
            photos, _ = real_photos.find_real_photos(tmp_path / repo, "exif")
            assert real_photos.import_photos(photos, out, lambda photo: "Test", repo)[1] == []
        rows = list(csv.DictReader((out / "manifest.csv").open()))
        assert len(rows) == 2 and len({r["file"] for r in rows}) == 2
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == sorted(r["file"] for r in rows)
        for r in rows:  # each copy is its own original, byte for byte
            original = next(p for p in series if str(p.resolve()) == r["original"])
            assert (out / r["file"]).read_bytes() == original.read_bytes()


@pytest.mark.slow
def test_the_same_file_at_two_commits_or_under_two_names_is_imported_once(checkout, tmp_path):
    """A burst whose first 13 frames are at one commit and all 40 at a later one; a collection
    holding one photo under two names: each photo once, the copies left out with a line naming
    the file already in the set."""
    later = tmp_path / "later_commit"
    shutil.copytree(checkout, later)
    shutil.copyfile(checkout / "jpg" / "Cam One (0).jpg", later / "jpg" / "Cam One renamed.jpg")
    write_camera_jpeg(later / "jpg" / "Cam Two (9).jpg", 800, model="Cam Two", seed=9)  # new at that commit
    out = tmp_path / "real"
    for source in (checkout, later):  # files left out (the edited one, the copies): exit 1, the rest imported
        proc = run_script("import_real_photos.py", "--source", source, "--layout", "exif", "--out_dir", out)
        assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 6 and sum("Cam Two (9)" in r["file"] for r in rows) == 1
    assert len({(out / r["file"]).read_bytes() for r in rows}) == 6
    left_out = [line for line in proc.stderr.splitlines() if "the same file as" in line]
    assert len(left_out) == 6 and any("Cam One renamed.jpg" in line for line in left_out)
    # Importing the later checkout again replaces its own rows; it does not take them for copies.
    proc = run_script("import_real_photos.py", "--source", later, "--layout", "exif", "--out", out)
    assert proc.returncode == 1 and "Cam One renamed.jpg" in proc.stderr
    assert len(list(csv.DictReader((out / "manifest.csv").open()))) == 6


def test_camera_split_is_stable_and_follows_the_fraction():
    cameras = [f"Maker Model {k}" for k in range(400)]
    test = [c for c in cameras if real_photos.camera_split(c, [], 0.3) == "Test"]
    assert 0.22 < len(test) / len(cameras) < 0.38
    assert test == [c for c in cameras if real_photos.camera_split(c, [], 0.3) == "Test"]
    assert real_photos.camera_split("Maker Model 1", ["Maker Model 1"], 0.0) == "Test"
    assert real_photos.camera_split("Maker MODEL 1", ["maker model  1"], 0.0) == "Test"  # --test_cameras, any case


@pytest.mark.slow
def test_import_with_nothing_labelled_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_script("import_real_photos.py", "--source", tmp_path / "empty", "--layout", "exif",
                                     "--out", tmp_path / "out"), 2, "no labelled photo")


@pytest.mark.slow
def test_evaluate_reports_each_camera(checkout, tmp_path, weights_file):
    out = tmp_path / "real"
    run_script("import_real_photos.py", "--source", checkout, "--layout", "exif", "--out", out,
               "--test_fraction", "1")
    proc = run_script("evaluate.py", "--model_path", weights_file, "--data", out, "--out_dir", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    assert "per camera" in proc.stdout
    import json

    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    per_camera = {r["camera"]: r for r in report["models"][str(weights_file)]["per_camera"]}
    assert {c: r["n"] for c, r in per_camera.items()} == {"Acme Cam One": 2, "Acme Cam Three": 2, "Acme Cam Two": 1}
    rows = list(csv.DictReader((tmp_path / "ev" / "per_image.csv").open()))
    for camera, r in per_camera.items():
        errors = [float(row["error_stops"]) for row in rows if row["camera"] == camera]
        assert r["mae"] == pytest.approx(np.mean(np.abs(errors)), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Adapting a model to one camera
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_adapted_state_dict_is_the_fitted_affine_head(random_net, device):
    rng = np.random.default_rng(0)
    head = rng.normal(0, 0.05, 801)
    on_device = copy.deepcopy(random_net).to(device)
    net = isonet.ISONet()
    net.load_state_dict(adapt_camera.adapted_state_dict(on_device, head))
    patches = rng.integers(0, 256, (6, 3, 64, 64), dtype=np.uint8)
    features = adapt_camera.trunk_features(on_device, patches)
    with torch.no_grad():
        out = net(torch.from_numpy(patches).float() / 255).numpy().ravel()
    assert np.allclose(out, adapt_camera.with_bias(features) @ head, atol=1e-4)
    # head_affine of a network is what its head computes.
    with torch.no_grad():
        original = random_net(torch.from_numpy(patches).float() / 255).numpy().ravel()
    assert np.allclose(adapt_camera.with_bias(features) @ adapt_camera.head_affine(on_device), original, atol=1e-4)


def test_adapt_camera_reads_16_bit_photos_whole(tmp_path, random_net):
    """The adapted head must see what the map feeds the network: all 16 bits of a 16-bit file."""
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 65536, (128, 128, 3), dtype=np.uint16))
    patches = adapt_camera.photo_patches(image_io.decode_image_file(path), 4, np.random.default_rng(0))
    as_mapped = np.ascontiguousarray(isonet.image_to_patches(image_io.read_image(path)))  # the same 4 patches
    assert patches.dtype == np.uint16
    np.testing.assert_allclose(adapt_camera.trunk_features(random_net, patches),
                               adapt_camera.trunk_features(random_net, as_mapped), rtol=0, atol=1e-6)


def test_fit_head_recovers_a_linear_relation_and_ridge_pulls_to_the_prior():
    """Photos whose patches all have their photo's metric under a known affine head (patch
    features vary only orthogonally to it): the fit finds that head; a huge ridge keeps the prior."""
    rng = np.random.default_rng(1)
    truth = rng.normal(0, 1, 801)
    direction = truth[:800] / np.linalg.norm(truth[:800])
    photos = []
    for _ in range(40):
        spread = rng.normal(0, 1, (30, 800))
        spread -= np.outer(spread @ direction, direction)
        features = rng.normal(0, 1, 800) + spread
        metric = float((adapt_camera.with_bias(features[:1]) @ truth)[0])
        photos.append(adapt_camera.PhotoFit.of(features, metric))
    loose = adapt_camera.fit_head(photos, np.zeros(801), 1e-9)
    assert np.allclose(loose, truth, atol=1e-4)
    assert all(abs(adapt_camera.photo_estimate(loose, p) - p.metric) < 1e-4 for p in photos)
    prior = rng.normal(0, 1, 801)
    assert np.allclose(adapt_camera.fit_head(photos, prior, 1e9), prior, atol=1e-3)


def test_held_out_estimates_never_fit_a_photo_of_the_scored_group(monkeypatch):
    """--leave_out folder: no head that scores a photo was fitted, or had its method chosen, on a
    photo of that photo's group."""
    rng = np.random.default_rng(0)
    photos = [adapt_camera.PhotoFit.of(rng.normal(size=(20, 4)), float(k % 4)) for k in range(9)]
    groups = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c"])
    group_of = {id(p): g for p, g in zip(photos, groups)}
    fitted = []
    real_fit = adapt_camera.fit
    monkeypatch.setattr(adapt_camera, "fit", lambda used, prior, method: fitted.append(
        {group_of[id(p)] for p in used}) or real_fit(used, prior, method))
    estimates = adapt_camera.held_out_estimates(photos, np.zeros(5), groups)
    assert np.isfinite(estimates).all()
    # Per group left out: the inner folds (the 2 other groups) and the final fit on both.
    assert len(fitted) == 3 * (len(adapt_camera.METHODS) * 2 + 1)
    per_group = np.split(np.array(fitted, dtype=object), 3)
    for left_out, fits in zip("abc", per_group):
        assert all(left_out not in used for used in fits)
        assert fits[-1] == set("abc") - {left_out}


def test_two_folders_left_out_in_turn_fit_each_on_the_other_alone():
    """--leave_out folder with two series: each is read by a calibration fitted on the other, as no
    third series is left to choose a method on."""
    rng = np.random.default_rng(2)
    photos = [adapt_camera.PhotoFit.of(rng.normal(size=(20, 4)), float(k % 3)) for k in range(6)]
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    assert adapt_camera.choose_method(photos[3:], np.zeros(5), groups[3:]) == "affine"
    estimates = adapt_camera.held_out_estimates(photos, np.zeros(5), groups)
    for scored, fitted in ((slice(0, 3), photos[3:]), (slice(3, 6), photos[:3])):
        head = adapt_camera.fit(fitted, np.zeros(5), "affine")
        assert np.allclose(estimates[scored], [adapt_camera.photo_estimate(head, p) for p in photos[scored]])


def grey_noise_patches(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    return (128 + rng.normal(0, sigma, (n, 3, 64, 64))).clip(0, 255).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("device", DEVICES)
def test_finetune_learns_the_cameras_noise_and_leaves_the_start_untouched(random_net, device, precision):
    rng = np.random.default_rng(0)
    isos = [100, 400, 1600, 6400]
    patches = [grey_noise_patches(rng, 2 * (iso / 100) ** 0.5, 32) for iso in isos]
    metrics = [float(isonet.iso_to_metric(iso)) for iso in isos]
    start_net = copy.deepcopy(random_net).to(device)
    start = {k: v.clone() for k, v in start_net.state_dict().items()}
    before = adapt_camera.photo_estimates(start_net, patches)
    tuned = adapt_camera.finetune(start_net, patches, metrics, epochs=4, lr=1e-3, seed=0, batch_size=8,
                                  precision=precision)
    assert next(tuned.parameters()).device.type == device
    after = adapt_camera.photo_estimates(tuned, patches)
    assert np.abs(after - metrics).mean() < 0.5 * np.abs(before - metrics).mean(), (before, after)
    assert np.all(np.diff(after) > 0), after  # it reads the noise, not just the labels' mean
    assert all(torch.equal(v, start_net.state_dict()[k]) for k, v in start.items())


def test_finetune_held_out_never_trains_on_a_scored_group(random_net, monkeypatch):
    rng = np.random.default_rng(1)
    patches = [grey_noise_patches(rng, 4.0, 2) for _ in range(6)]
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    trained_on = []

    def fake_finetune(net, used, metrics, epochs, lr, seed, precision):
        trained_on.append({id(p) for p in used})
        return net

    monkeypatch.setattr(adapt_camera, "finetune", fake_finetune)
    estimates = adapt_camera.finetune_held_out(random_net, patches, np.zeros(6), groups, folds=5, epochs=1,
                                               lr=1e-3, seed=0)
    assert np.isfinite(estimates).all() and len(trained_on) == 3  # one network per group: 3 < 5 folds
    for used in trained_on:
        left_out = [g for g in "abc" if not any(id(patches[i]) in used for i in np.flatnonzero(groups == g))]
        assert len(left_out) == 1 and len(used) == 4


@pytest.mark.slow
def test_adapt_camera_end_to_end_writes_a_model_test_model_reads(tmp_path, weights_file):
    photos = tmp_path / "my_camera"
    for k, iso in enumerate([100, 200, 400, 800, 1600, 3200]):
        write_camera_jpeg(photos / f"p{k}.jpg", iso, seed=k, size=(192, 192))
    write_camera_jpeg(photos / "no_iso.jpg", None)
    out = tmp_path / "adapted.pth"
    proc = run_script("adapt_camera.py", "--photos", photos, "--out", out, "--init_from", weights_file,
                      "--patches_per_photo", "9")
    assert proc.returncode == 1, proc.stderr  # one photo had no ISO: reported, the others used
    assert "no_iso.jpg" in proc.stderr and "leave-one-out" in proc.stdout and out.is_file()
    assert "a constant guess (the other photos' median ISO) 2.00" in proc.stdout  # 3, 2, 1, 1, 2, 3 stops off
    result = run_script("test_model.py", "--model_path", out, "--pic_path", photos / "p5.jpg",
                        "--out_dir", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    # The adapted model reads the photos of its training set closer to their ISO than the start.
    before = isonet.load_model(weights_file)
    after = isonet.load_model(out)
    errors = {name: [] for name in ("before", "after")}
    for k, iso in enumerate([100, 200, 400, 800, 1600, 3200]):
        img = image_io.read_image(photos / f"p{k}.jpg")
        for name, net in (("before", before), ("after", after)):
            errors[name].append(abs(isonet.iso_map(net, img).global_metric - isonet.iso_to_metric(iso)))
    assert np.mean(errors["after"]) < np.mean(errors["before"])


def test_a_reader_must_beat_the_constant_guess_by_more_than_a_tie():
    # one series a folder, one ISO each: every reader's held-out MAE is the constant's but for the last bits
    assert adapt_camera.no_better_than_constant(0.9999999999999954, 1.0)
    assert adapt_camera.no_better_than_constant(0.97, 1.0) and adapt_camera.no_better_than_constant(1.2, 1.0)
    assert not adapt_camera.no_better_than_constant(0.9, 1.0)


def test_constant_guess_reads_each_photo_from_the_other_groups_only():
    metrics = np.array([0.0, 0.0, 5.0, 5.0, 5.0, 10.0])
    groups = np.array(["a", "a", "b", "b", "b", "c"])
    np.testing.assert_array_equal(adapt_camera.constant_held_out(metrics, groups), [5, 5, 0, 0, 0, 5])


@pytest.mark.slow
def test_adapt_camera_warns_when_the_photos_are_nearly_of_one_iso(tmp_path, weights_file):
    """Photos of one ISO teach a constant: the figures must not pass that off as reading the ISO."""
    photos = tmp_path / "one_iso"
    for k, iso in enumerate([200, 200, 200, 200, 200, 250]):
        write_camera_jpeg(photos / f"p{k}.jpg", iso, seed=k, size=(192, 192))
    proc = run_script("adapt_camera.py", "--photos", photos, "--out", tmp_path / "m.pth", "--init_from", weights_file,
                      "--patches_per_photo", "9", "--method", "head")
    assert proc.returncode == 0, proc.stderr
    assert "a constant guess (the other photos' median ISO) 0.05" in proc.stdout
    assert "warning: a constant guess reads the held-out photos as well" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_adapt_camera_without_cuda_says_so_in_one_line(tmp_path, weights_file):
    photos = tmp_path / "cam"
    for k, iso in enumerate([100, 400, 1600]):
        write_camera_jpeg(photos / f"p{k}.jpg", iso, seed=k)
    assert_one_line_error(run_script("adapt_camera.py", "--photos", photos, "--out", tmp_path / "m.pth",
                                     "--init_from", weights_file, "--device", "cuda"), 2, "--device cuda",
                          "CUDA is not available")
    assert not (tmp_path / "m.pth").exists()


@pytest.mark.slow
def test_adapt_camera_needs_enough_photos(tmp_path, weights_file):
    photos = tmp_path / "few"
    write_camera_jpeg(photos / "a.jpg", 100)
    assert_one_line_error(run_script("adapt_camera.py", "--photos", photos, "--out", tmp_path / "m.pth",
                                     "--init_from", weights_file), 2, "usable photo")
    # Photos in series folders below the one given: said so, with how to pass them.
    assert_one_line_error(run_script("adapt_camera.py", "--photos", tmp_path, "--out", tmp_path / "m.pth",
                                     "--init_from", weights_file), 2, f"{tmp_path}: no image in it", "DIR/*/")


def test_fit_affine_calibrates_the_prior_estimates_and_keeps_them_increasing():
    rng = np.random.default_rng(2)
    prior = rng.normal(0, 0.1, 801)
    photos = [adapt_camera.PhotoFit.of(rng.normal(0, 1, (25, 800)), 0.0) for _ in range(12)]
    before = np.array([adapt_camera.photo_estimate(prior, p) for p in photos])
    truth = 2.0 * before + 0.5
    photos = [adapt_camera.PhotoFit(p.gram, p.mean, p.features, float(t)) for p, t in zip(photos, truth)]
    head = adapt_camera.fit_affine(photos, prior)
    assert np.allclose([adapt_camera.photo_estimate(head, p) for p in photos], truth, atol=1e-9)
    # Truths that fall as the estimates rise: the calibration stays (barely) increasing.
    reversed_photos = [adapt_camera.PhotoFit(p.gram, p.mean, p.features, float(-t)) for p, t in zip(photos, truth)]
    flat = adapt_camera.fit_affine(reversed_photos, prior)
    after = np.array([adapt_camera.photo_estimate(flat, p) for p in reversed_photos])
    assert np.all(np.diff(after[np.argsort(before)]) > 0)


def test_auto_keeps_the_starting_model_when_no_adaptation_reads_held_out_photos_better():
    mae = {"before": 0.36, "head (leave-one-out)": 0.44, "fine-tune (5-fold)": 0.40}
    assert adapt_camera.choose_column(mae, "auto") == "before"
    # Asked for one method, the user gets it (main warns that it read the photos worse).
    assert adapt_camera.choose_column(mae, "finetune") == "fine-tune (5-fold)"
    assert adapt_camera.choose_column({**mae, "head (leave-one-out)": 0.2}, "auto") == "head (leave-one-out)"


def test_adapt_camera_auto_writes_the_start_unchanged_when_it_reads_best(tmp_path, weights_file, monkeypatch,
                                                                          capsys):
    photos = tmp_path / "my_camera"
    for k, iso in enumerate([100, 400, 1600, 6400]):
        write_camera_jpeg(photos / f"p{k}.jpg", iso, seed=k, size=(128, 128))
    # Held-out figures far worse than the start's, as on a camera the model already reads well.
    monkeypatch.setattr(adapt_camera, "held_out_estimates", lambda photos, prior, groups: np.full(len(photos), 9.0))
    monkeypatch.setattr(adapt_camera, "finetune_held_out", lambda net, patches, *rest: np.full(len(patches), 9.0))
    common = ["--photos", str(photos), "--init_from", str(weights_file), "--patches_per_photo", "4",
              "--min_photos", "3"]
    start = torch.load(weights_file)
    assert adapt_camera.main([*common, "--out", str(tmp_path / "kept.pth")]) == 0
    assert "kept the starting model" in capsys.readouterr().out
    kept = torch.load(tmp_path / "kept.pth")
    assert kept.keys() == start.keys() and all(torch.equal(kept[k], start[k]) for k in start)
    # Asked for the head, the user gets a refitted head, with a warning.
    assert adapt_camera.main([*common, "--method", "head", "--out", str(tmp_path / "head.pth")]) == 0
    assert "warning: the held-out photos were read better before adapting" in capsys.readouterr().out
    head = torch.load(tmp_path / "head.pth")
    assert not all(torch.equal(head[k], start[k]) for k in start)


def test_auto_skips_fine_tuning_where_a_cheaper_reader_already_reads_the_held_out_photos(
        tmp_path, weights_file, monkeypatch, capsys):
    photos = tmp_path / "my_camera"
    isos = [100, 400, 1600, 6400]
    for k, iso in enumerate(isos):
        write_camera_jpeg(photos / f"p{k}.jpg", iso, seed=k, size=(128, 128))
    truths = np.log2(np.array(isos) / 100.0)
    tuned = []
    monkeypatch.setattr(adapt_camera, "finetune_held_out", lambda net, patches, *rest: tuned.append(1) or truths)
    common = ["--photos", str(photos), "--init_from", str(weights_file), "--patches_per_photo", "4",
              "--min_photos", "3"]
    monkeypatch.setattr(adapt_camera, "held_out_estimates", lambda photos, prior, groups: truths + 0.1)
    assert adapt_camera.main([*common, "--out", str(tmp_path / "a.pth")]) == 0
    assert "fine-tuning skipped: the head reads the held-out photos to 0.10 stop" in capsys.readouterr().err
    assert not tuned
    assert adapt_camera.main([*common, "--method", "finetune", "--out", str(tmp_path / "b.pth")]) == 0
    assert len(tuned) == 1  # asked for, it runs
    monkeypatch.setattr(adapt_camera, "held_out_estimates", lambda photos, prior, groups: truths + 0.3)
    assert adapt_camera.main([*common, "--out", str(tmp_path / "c.pth")]) == 0
    assert len(tuned) == 2 and "fine-tuning skipped" not in capsys.readouterr().err


def test_a_profiles_noise_statistic_can_make_fine_tuning_needless():
    truths = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    photos = [adapt_camera.Photo(Path(f"{k}.jpg"), t, np.empty(0), np.empty(0), None, None, statistic=0.5 * t - 1)
              for k, t in enumerate(truths)]
    groups = np.arange(6).astype(str)
    far = {"before": truths + 2, "head (leave-one-out)": truths + 0.4}
    assert "noise statistic's line reads the held-out photos to 0.00 stop" in adapt_camera.finetune_needless(
        far, truths, photos, groups)
    noisy = [dataclasses.replace(p, statistic=p.statistic + d) for p, d in zip(photos, [0.3, -0.3] * 3)]
    assert adapt_camera.finetune_needless(far, truths, noisy, groups) == ""


def test_fingerprint_strangers_are_blamed_on_another_unit_alone_only_when_few():
    assert adapt_camera.strangers_warning([], 20, False) == ""
    few = adapt_camera.strangers_warning([Path("b.jpg"), Path("c.jpg")], 20, False)
    assert few.startswith("warning: 2 of the 20 fingerprint photos match the other scenes' fingerprint at PCE 60")
    assert "b.jpg" in few and "another unit" in few
    most = adapt_camera.strangers_warning([Path(f"{k}.jpg") for k in range(16)], 20, True)
    assert "the others' fingerprint" in most and "the fingerprint is weak" in most and "another unit" not in most
    assert "several units" in most


def test_adapt_camera_reads_a_folder_of_iso_subfolders(tmp_path):
    """The paper's layout, DIR/<ISO>/, as prepare_data.py and import_real_photos.py write it."""
    for iso in (100, 800):
        write_camera_jpeg(tmp_path / "cam" / str(iso) / f"p{iso}.jpg", None, seed=iso)
    write_camera_jpeg(tmp_path / "cam" / "top.jpg", 200)
    write_camera_jpeg(tmp_path / "cam" / "notes" / "not_an_iso.jpg", 400)  # not an ISO folder: left alone
    found = adapt_camera.camera_photos([str(tmp_path / "cam")])
    found = sorted(p.relative_to(tmp_path / "cam").as_posix() for p in found)
    assert found == ["100/p100.jpg", "800/p800.jpg", "top.jpg"]
