"""test_model.py, Fig4.py and Fig7.py run as a user runs them."""
import csv
import json
import platform
import subprocess
import sys

import numpy as np
import pytest

import image_io
import isonet
import reports
from conftest import ROOT, SHARED, assert_one_line_error, needs_shared, noisy_image, write_rgb
from conftest import run_script as run


@pytest.fixture()
def batch(tmp_path):
    """A folder of two good images and a corrupt one, plus a good image elsewhere."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_rgb(folder / "calm.png", noisy_image(130, 200, 2))
    write_rgb(folder / "grainy.jpg", noisy_image(200, 140, 25, seed=3), [1, 95])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    single = write_rgb(tmp_path / "alone.tif", noisy_image(64, 64, 10))
    return folder, single


@pytest.mark.slow
def test_batch_writes_every_output_and_survives_a_bad_file(tmp_path, batch, weights_file, random_net):
    folder, single = batch
    out = tmp_path / "results"
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", folder, single, "--out_dir", out)
    assert proc.returncode == 1
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    for name in ["photos/calm", "photos/grainy", "alone"]:  # each under its path relative to the inputs' folder
        for suffix in [".json", "_iso_map.png", "_scatter.png"]:
            assert (out / f"{name}{suffix}").stat().st_size > 0
    assert not list(out.rglob("*.part*"))
    record = json.loads((out / "photos" / "calm.json").read_text())
    assert {"file", "model", "width", "height", "patch_size", "stride", "rows", "cols", "map",
            "global_iso_metric", "global_iso", "nearest_iso", "iqr", "exif_iso", "seconds"} <= set(record)
    assert (record["width"], record["height"], record["rows"], record["cols"]) == (200, 130, 2, 3)
    expected = isonet.iso_map(random_net, image_io.read_image(folder / "calm.png")).map
    assert np.abs(np.array(record["map"]) - expected).max() <= 1e-5
    assert record["global_iso_metric"] == pytest.approx(float(np.median(expected)), abs=1e-5)
    assert record["global_iso"] == pytest.approx(100 * 2 ** record["global_iso_metric"])
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["broken.png", "calm.png", "grainy.jpg", "alone.tif"]
    assert rows[0]["error"] and not rows[1]["error"]
    printed = [line for line in proc.stdout.splitlines() if "ISO metric" in line]
    assert len(printed) == 3 and f"{record['global_iso_metric']:.3f}" in printed[0]


@pytest.mark.slow
def test_a_clipped_photo_is_read_with_a_warning(tmp_path, weights_file):
    night = write_rgb(tmp_path / "night.png", np.random.default_rng(0).integers(0, 3, (128, 192, 3)).astype(np.uint8))
    day = write_rgb(tmp_path / "day.png", noisy_image(128, 192, 5))
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", night, day, "--out_dir", tmp_path / "out",
               "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "night.png: 100% of its patches are mostly black" in warnings[0]
    assert json.loads((tmp_path / "out" / "night.json").read_text())["clipped_share"] == 1.0
    with open(tmp_path / "out" / "summary.csv") as f:
        assert [r["clipped_share"] for r in csv.DictReader(f)] == ["1.0", "0.0"]


@pytest.mark.slow
def test_dense_stride_and_exif_iso(tmp_path, weights_file):
    from PIL import Image

    image = Image.fromarray(noisy_image(96, 128, 5))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0x8827] = 3200
    image.save(tmp_path / "shot.jpg", exif=exif, quality=97)
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", tmp_path / "shot.jpg",
               "--out_dir", tmp_path / "o", "--stride", 16, "--device", "cpu", "--batch_size", 3)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "o" / "shot.json").read_text())
    assert (record["stride"], record["rows"], record["cols"], record["exif_iso"]) == (16, 3, 5, 3200)
    assert "EXIF ISO 3200" in proc.stdout


@pytest.mark.parametrize("exif, metric, warned", [
    (3200, 0.5, True),  # ISO 141 for a photo that says 3200: what unadapted models do to in-camera JPEGs
    (3200, 4.2, False),
    (800, 1.9, True),  # 1.1 stops below
    (800, 2.1, False),  # 0.9 stops below: within the model's usual error
    (400, -1.0, False),  # below ISO 800 the models are not known to read low
    (None, 0.0, False),
])
def test_a_reading_well_below_a_high_exif_iso_is_flagged(exif, metric, warned):
    record = {"file": "shot.jpg", "clipped_share": 0.0, "exif_iso": exif, "global_iso_metric": metric}
    warnings = reports.reading_warnings(record)
    assert len(warnings) == warned
    if warned:
        assert warnings[0].startswith(f"warning: shot.jpg: read {isonet.iso_to_metric(exif) - metric:.1f} stops below "
                                      f"its EXIF ISO {exif}.")


@pytest.mark.slow
def test_a_clean_photo_that_says_iso_3200_is_read_with_a_warning(tmp_path):
    """The shipped net_jpg.pth reads a nearly noiseless JPEG near base ISO. With its interval table
    the line says that EXIF ISO 3200 lies outside the reading's interval (ISO 200 inside), and the
    interval is too wide to read the absolute ISO; the same weights without a table warn of the gap
    to ISO 3200 instead, and of nothing at ISO 200."""
    import shutil

    from PIL import Image

    pixels = Image.fromarray(noisy_image(192, 256, 1))
    for iso in (3200, 200):
        exif = pixels.getexif()
        exif.get_ifd(0x8769)[0x8827] = iso
        pixels.save(tmp_path / f"iso{iso}.jpg", exif=exif, quality=95)
    shipped = isonet.PROJECT / "models" / "net_jpg.pth"
    shutil.copy(shipped, tmp_path / "no_table.pth")
    for model, out in ((shipped, "with_table"), (tmp_path / "no_table.pth", "without")):
        proc = run("test_model.py", "--model_path", model, "--pic_path", tmp_path / "iso3200.jpg",
                   tmp_path / "iso200.jpg", "--out_dir", tmp_path / out, "--figures", "none")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        warnings = [line for line in lines if line.startswith("warning:")]
        if out == "with_table":
            readings = [line for line in lines if "80% interval ISO" in line]
            assert len(readings) == 2 and "EXIF ISO 3200 lies outside it" in readings[0]
            assert "outside" not in readings[1]
            assert len(warnings) == 2 and all("cannot be read without a profile" in w for w in warnings)
        else:
            assert len(warnings) == 1 and "iso3200.jpg: read" in warnings[0]
            assert "below its EXIF ISO 3200" in warnings[0]
        assert json.loads((tmp_path / out / "iso3200.json").read_text())["global_iso_metric"] < 4


@pytest.mark.slow
def test_same_names_in_two_folders_do_not_overwrite(tmp_path, weights_file):
    for sub in ["a", "b"]:
        (tmp_path / sub).mkdir()
        write_rgb(tmp_path / sub / "x.png", noisy_image(64, 64, 3))
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", tmp_path / "a", tmp_path / "b",
               "--out_dir", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "a" / "x.json").exists() and (tmp_path / "o" / "b" / "x.json").exists()


@pytest.mark.slow
def test_checkpoint_flag_still_accepted(tmp_path, weights_file):
    import torch

    torch.save({"net": torch.load(weights_file), "epoch": 1}, tmp_path / "ckpt.cpth")
    image = write_rgb(tmp_path / "i.png", noisy_image(64, 128, 3))
    for extra in ([], ["--checkpoint"]):
        proc = run("test_model.py", "--model_path", tmp_path / "ckpt.cpth", "--pic_path", image,
                   "--out_dir", tmp_path / "o", *extra)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("args,fragments", [
    (["--stride", "6"], ["--stride 6"]),
    (["--stride", "128"], ["--stride 128"]),
    (["--model_path", "nowhere.pth"], ["nowhere.pth", "no such model file"]),
    (["--device", "cuda"], ["cuda"]),
])
@pytest.mark.slow
def test_bad_arguments_exit_2_with_one_line(tmp_path, weights_file, args, fragments):
    if args[:2] == ["--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    image = write_rgb(tmp_path / "i.png", noisy_image(64, 64, 3))
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", image, *args, "--out_dir", tmp_path / "o")
    assert_one_line_error(proc, 2, *fragments)


def test_lossy_files_go_to_the_jpeg_model_and_the_rest_to_the_lossless_one(tmp_path):
    import cv2

    import cli

    img = noisy_image(64, 64, 3)
    kinds = {name: cli.model_kind(write_rgb(tmp_path / name, img, params)) for name, params in (
        ("a.png", []), ("a.jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]), ("lossless.webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
        ("lossy.webp", [cv2.IMWRITE_WEBP_QUALITY, 80]))}
    assert kinds == {"a.png": "uncompressed", "a.jpg": "lossy", "lossless.webp": "uncompressed", "lossy.webp": "lossy"}


@pytest.mark.slow
def test_without_model_path_each_file_is_read_by_the_shipped_model_of_its_kind(tmp_path):
    """JPEGs by models/net_jpg.pth, the rest by models/net_tif.pth (test_model.py, Fig4.py, Fig7.py):
    the same maps and intervals as each model named for the file alone gives. A calibration is one
    model's: the shipped model it was fitted for reads every image; one fitted for neither is refused."""
    jpeg = write_rgb(tmp_path / "camera.jpg", noisy_image(128, 192, 12, seed=3), [1, 95])
    png = write_rgb(tmp_path / "scan.png", noisy_image(128, 192, 12, seed=3))
    proc = run("test_model.py", "--pic_path", jpeg, png, "--out_dir", tmp_path / "auto", "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    for image, model in ((jpeg, "net_jpg.pth"), (png, "net_tif.pth")):
        shipped = isonet.PROJECT / "models" / model
        proc = run("test_model.py", "--model_path", shipped, "--pic_path", image, "--out_dir", tmp_path / model,
                   "--figures", "none")
        assert proc.returncode == 0, proc.stderr
        auto = json.loads((tmp_path / "auto" / f"{image.stem}.json").read_text())
        alone = json.loads((tmp_path / model / f"{image.stem}.json").read_text())
        assert auto["model"] == str(shipped) and auto["map"] == alone["map"]
        assert auto["iso_metric_interval"] == alone["iso_metric_interval"] is not None
    # Fig4.py's and Fig7.py's one image too (their defaults were a model each, whatever the file).
    # An --intervals table instead picks the model it was fitted for.
    table = isonet.PROJECT / "models" / "net_jpg.intervals.json"
    for script, image, model, flags in (("Fig4.py", jpeg, "net_jpg.pth", ()), ("Fig7.py", png, "net_tif.pth", ()),
                                        ("Fig4.py", png, "net_jpg.pth", ("--intervals", table))):
        readings = [run(script, *named, *flags, "--pic_path", image, "--out_dir", tmp_path / f"{script}{k}").stdout
                    for k, named in enumerate([(), ("--model_path", isonet.PROJECT / "models" / model)])]
        readings = [text.split("; figure")[0].split("\nfigure")[0] for text in readings]
        by_kind = f", by {model}" if not flags else ""  # the printed line names a model the file's kind chose
        assert "ISO" in readings[0] and by_kind in readings[0] and readings[0].replace(by_kind, "") == readings[1]
    with open(tmp_path / "auto" / "summary.csv") as f:
        assert [row["model"] for row in csv.DictReader(f)] == [str(isonet.PROJECT / "models" / name)
                                                               for name in ("net_jpg.pth", "net_tif.pth")]
    import metrics

    for name, model in (("tif.json", "net_tif.pth"), ("other.json", None)):
        fingerprint = isonet.weights_fingerprint(isonet.load_model(isonet.PROJECT / "models" / model)) if model else ""
        calibration = metrics.fit_calibration(np.array([0.0, 4.0]), np.array([1.0, 5.0]), fingerprint)
        (tmp_path / name).write_text(json.dumps(calibration.to_json()))
    proc = run("test_model.py", "--pic_path", jpeg, "--calibration", tmp_path / "tif.json", "--out_dir", tmp_path / "c",
               "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    tif = str(isonet.PROJECT / "models" / "net_tif.pth")
    assert json.loads((tmp_path / "c" / "camera.json").read_text())["model"] == tif
    proc = run("test_model.py", "--pic_path", png, "--calibration", tmp_path / "other.json",
               "--out_dir", tmp_path / "d")
    assert_one_line_error(proc, 2, "other.json", "fitted for none of the shipped models", "--model_path")


@pytest.mark.slow
def test_no_images_in_folder_is_an_error(tmp_path, weights_file):
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", tmp_path)
    assert_one_line_error(proc, 2, "no images found", str(tmp_path))


def test_weights_of_another_network_named(tmp_path):
    import torch

    torch.save({"conv1.weight": torch.zeros(16, 3, 3, 3)}, tmp_path / "other.pth")
    image = write_rgb(tmp_path / "i.png", noisy_image(64, 64, 3))
    proc = run("test_model.py", "--model_path", tmp_path / "other.pth", "--pic_path", image)
    assert_one_line_error(proc, 2, "other.pth", "conv1.weight")


@pytest.mark.slow
def test_fig4_and_fig7_write_their_figures(tmp_path, weights_file):
    image = write_rgb(tmp_path / "splice.png", noisy_image(128, 192, 4))
    proc = run("Fig4.py", "--model_path", weights_file, "--pic_path", image, "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "Fig4.png").stat().st_size > 0 and "2x3 patch map" in proc.stdout
    assert (tmp_path / "Fig4_splice.png").stat().st_size > 0 and "splice scores" in proc.stdout
    proc = run("Fig7.py", "--model_path", weights_file, "--pic_path", image, "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "Fig7.png").stat().st_size > 0 and "Estimated ISO metric:" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["Fig4.py", "Fig7.py"])
def test_figures_refuse_bad_images_and_second_images(tmp_path, weights_file, script):
    image = write_rgb(tmp_path / "i.png", noisy_image(64, 64, 3))
    proc = run(script, "--model_path", weights_file, "--pic_path", image, image, "--out_dir", tmp_path)
    assert_one_line_error(proc, 2, "--pic_path takes one image")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = run(script, "--model_path", weights_file, "--pic_path", tmp_path / "bad.jpg", "--out_dir", tmp_path)
    assert_one_line_error(proc, 1, "bad.jpg", "truncated")


@needs_shared
def test_published_weights_through_the_script(tmp_path):
    expected = json.loads((SHARED / "expected_maps.json").read_text())["two_noise_levels.png"]["net_jpg"]
    proc = run("test_model.py", "--model_path", SHARED / "authors_weights" / "net_jpg.pth",
               "--pic_path", SHARED / "two_noise_levels.png", "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "two_noise_levels.json").read_text())
    assert np.abs(np.array(record["map"]) - np.array(expected["map"])).max() <= 1e-4


@pytest.mark.slow
def test_figures_none_writes_the_json_and_summary_but_no_png(tmp_path, weights_file):
    image = write_rgb(tmp_path / "i.png", noisy_image(64, 128, 3))
    proc = run("test_model.py", "--model_path", weights_file, "--pic_path", image, "--out_dir", tmp_path / "o",
               "--figures", "none")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["i.json", "summary.csv"]
    assert json.loads((tmp_path / "o" / "i.json").read_text())["cols"] == 2


def test_test_model_reports_bad_files_but_lets_bugs_surface(tmp_path, weights_file, monkeypatch):
    """A bad file is one line and the batch goes on; a programming error is not a 'bad file'."""
    import test_model

    good = write_rgb(tmp_path / "good.png", noisy_image(96, 96, 3.0))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    monkeypatch.setattr(sys, "argv", ["test_model.py", "--model_path", str(weights_file), "--pic_path",
                                      str(tmp_path / "bad.png"), str(good), "--out_dir", str(tmp_path / "out"),
                                      "--figures", "none"])
    assert test_model.main() == 1
    assert (tmp_path / "out" / "good.json").is_file()

    def broken(*args, **kwargs):
        raise TypeError("a bug in the code, not in the file")

    monkeypatch.setattr(reports, "analyse_image", broken)
    with pytest.raises(TypeError, match="a bug in the code"):
        test_model.main()


FAULTS_OF_LARGE_BUFFERS = """
import resource
import numpy as np
import cli
taken = cli.keep_freed_memory() if {keep} else True
np.ones(64 << 20, np.uint8)  # the first buffer is mapped either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    np.ones(64 << 20, np.uint8)  # 64 MiB written, then freed
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before if taken else "refused")
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_scripts_reuse_freed_buffers_instead_of_mapping_them_afresh():
    faults = {keep: subprocess.run([sys.executable, "-c", FAULTS_OF_LARGE_BUFFERS.format(keep=keep)], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout.strip()
              for keep in (False, True)}
    if faults[True] == "refused":
        pytest.skip("this glibc refuses a 1 GiB mmap threshold: the scripts keep its own settings")
    faults = {keep: int(count) for keep, count in faults.items()}
    assert faults[True] < 10 <= faults[False]  # glibc alone maps each buffer afresh: a fault at least each
