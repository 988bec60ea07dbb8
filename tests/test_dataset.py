"""dataset.py and prepare_data.py: patch extraction, augmentation, the HDF5 format, readers and errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import ROOT, noise_image, run_script
from dataset import (
    CHUNK,
    FORMAT,
    LegacyPatchSet,
    PatchBlock,
    PatchSet,
    PatchSetWriter,
    PrepareOptions,
    add_augmented_copies,
    augment,
    concat_runs,
    cut_patches,
    find_labelled_images,
    open_patch_set,
    prepare_split,
    to_unit_float,
)
from image_io import read_image
from isonet import ISONetError
from prepare_data import parse_args

PREPARE = str(ROOT / "prepare_data.py")


def test_augment_matches_the_papers_eight_modes():
    img = np.arange(12).reshape(3, 4)
    expected = [img, np.flipud(img), np.rot90(img), np.flipud(np.rot90(img)), np.rot90(img, 2),
                np.flipud(np.rot90(img, 2)), np.rot90(img, 3), np.flipud(np.rot90(img, 3))]
    for mode, want in enumerate(expected):
        np.testing.assert_array_equal(augment(img, mode), want)
    # On N x C x H x W batches each patch and channel is transformed alike.
    batch = np.random.default_rng(0).integers(0, 255, (2, 3, 8, 8))
    np.testing.assert_array_equal(augment(batch, 3)[1, 2], np.flipud(np.rot90(batch[1, 2])))


def test_augmented_copies_are_distinct_non_identity_modes():
    rng = np.random.default_rng(1)
    patches = rng.integers(0, 255, (50, 3, 64, 64), dtype=np.uint8)
    out, modes = add_augmented_copies(patches, 3, rng)
    assert out.shape == (200, 3, 64, 64)
    modes = modes.reshape(50, 4)
    assert (modes[:, 0] == 0).all() and (modes[:, 1:] > 0).all()
    assert all(len(set(row[1:])) == 3 for row in modes)
    assert len(set(modes[:, 1:].ravel())) == 7  # every non-identity mode gets used
    for i in (0, 17, 49):
        for k in range(4):
            np.testing.assert_array_equal(out[4 * i + k], augment(patches[i], modes[i, k]))


def test_cut_patches_takes_windows_at_stride_and_limits_their_number():
    img = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    patches, origin = cut_patches(img, 48, 1000, np.random.default_rng(0))
    assert len(patches) == 3 * 5 and patches.dtype == np.uint8
    assert origin[:, 0].max() == 96 and origin[:, 1].max() == 192
    for p, (y, x) in zip(patches, origin):
        np.testing.assert_array_equal(p, img[y:y + 64, x:x + 64].transpose(2, 0, 1))
    few, few_origin = cut_patches(img, 48, 4, np.random.default_rng(0))
    assert len(few) == 4 and len({tuple(o) for o in few_origin}) == 4


@pytest.mark.slow
def test_prepare_data_writes_the_documented_format(tiny_data, tmp_path):
    out = tmp_path / "data"
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(out), "--pic_type", "png",
                   "--stride", "32", "--aug_times", "2", "--max_patches_per_image", "5", "--seed", "3")
    assert r.returncode == 0, r.stderr
    # Per-ISO table: 2 images x 5 patches x (1 + 2 copies) per ISO in train, no copies in test.
    assert [line.split()[:4] for line in r.stdout.splitlines()[1:3]] == [["train", "100", "2", "30"],
                                                                       ["train", "800", "2", "30"]]
    assert "test       800       2        10" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5"]  # no temp files left
    with h5py.File(out / "train.h5") as h5:
        assert h5.attrs["format"] == FORMAT and h5.attrs["split"] == "train"
        assert json.loads(h5.attrs["args"])["stride"] == 32
        assert h5["patches"].dtype == np.uint8 and h5["patches"].shape == (60, 3, 64, 64)
        assert h5["patches"].chunks[0] == 16
        sources = [s.decode() for s in h5["sources"][:]]
        metric, index = h5["iso_metric"][:], h5["source_index"][:]
        for row in range(60):
            iso = int(Path(sources[index[row]]).parent.name)
            assert metric[row] == pytest.approx(np.log2(iso / 100))
        for row in (0, 31, 59):  # each row is its source's window at `origin` in mode `aug_mode`
            img = cv2.imread(str(tiny_data / sources[index[row]]))[:, :, ::-1]
            y, x = h5["origin"][row]
            want = augment(img[y:y + 64, x:x + 64].transpose(2, 0, 1), int(h5["aug_mode"][row]))
            np.testing.assert_array_equal(h5["patches"][row], want)
    with h5py.File(out / "test.h5") as h5:
        assert (h5["aug_mode"][:] == 0).all() and len(h5["patches"]) == 20


def test_writer_shuffles_rows_across_images_keeping_each_row_whole(tmp_path):
    """Runs of CHUNK rows are what the loader reads: each must mix images (runs of one image
    made batches of one or two ISOs, and training stalled at the mean)."""
    sizes = [7, 40, 1, 25, 30]
    with h5py.File(tmp_path / "w.h5", "w") as h5, PatchSetWriter(tmp_path, seed=0) as writer:
        for source, n in enumerate(sizes):
            patches = np.empty((n, 3, 64, 64), np.uint8)
            patches[:] = np.arange(n, dtype=np.uint8)[:, None, None, None]  # row k of image i holds k
            origin = np.stack([np.full(n, source), np.arange(n)], 1).astype(np.int32)
            writer.append(PatchBlock(patches, origin, np.zeros(n, np.uint8)), float(source), source)
        writer.write(h5)
        index, origin, metric, patches = (h5[k][:] for k in ("source_index", "origin", "iso_metric", "patches"))
    assert writer.rows == len(index) == sum(sizes)
    assert sorted(zip(index, origin[:, 1])) == [(i, k) for i, n in enumerate(sizes) for k in range(n)]
    assert (origin[:, 0] == index).all() and (metric == index).all() and (patches[:, 0, 0, 0] == origin[:, 1]).all()
    assert all(len(set(index[r:r + CHUNK])) > 1 for r in range(0, 64, CHUNK))
    assert list(tmp_path.iterdir()) == [tmp_path / "w.h5"]  # the staged rows leave no file


def test_every_loader_run_mixes_the_whole_split(tmp_path):
    """Full-size photos give thousands of rows each, so shuffling within blocks of ~4096 rows
    left runs of one or two photos of one ISO folder. Each aligned run must look like CHUNK rows
    drawn at random from the whole split."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for iso in (100, 800):
        (root / "Train" / str(iso)).mkdir(parents=True)
        for i in range(4):  # 663 rows each at stride 16 with 2 augmented copies: 5,304 in all
            assert cv2.imwrite(str(root / "Train" / str(iso) / f"{i}.png"), noise_image(rng, iso, 256, 320))
    path = tmp_path / "train.h5"
    prepare_split(find_labelled_images(root / "Train", "png"), path, PrepareOptions(stride=16), "train", root, {})
    with h5py.File(path) as h5:
        index, metric = h5["source_index"][:], h5["iso_metric"][:]
    runs = len(index) // CHUNK
    distinct = np.mean([len(set(index[r * CHUNK:(r + 1) * CHUNK])) for r in range(runs)])
    single_iso = np.mean([len(set(metric[r * CHUNK:(r + 1) * CHUNK])) == 1 for r in range(runs)])
    # Distinct images among CHUNK rows drawn without replacement: sum over images of P(image drawn).
    n = len(index)
    expected = sum(1 - math.comb(n - count, CHUNK) / math.comb(n, CHUNK) for count in np.bincount(index))
    assert expected > 7  # 8 images of equal size
    assert abs(distinct - expected) < 0.15, (distinct, expected)
    assert single_iso < 0.01  # at random 2 * 2**-16 of runs are one ISO


@pytest.mark.slow
def test_prepare_data_depends_on_the_seed_not_on_the_worker_count(tiny_data, tmp_path):
    common = ["--data_path", str(tiny_data), "--pic_type", "png", "--stride", "32", "--no-test"]
    for name, seed, workers in (("a", "1", "1"), ("b", "1", "3"), ("c", "2", "1")):
        r = run_script(PREPARE, *common, "--save_path", str(tmp_path / name), "--seed", seed, "--workers", workers)
        assert r.returncode == 0, r.stderr
    rows = {n: h5py.File(tmp_path / n / "train.h5")["patches"][:] for n in "abc"}
    assert np.array_equal(rows["a"], rows["b"]) and not np.array_equal(rows["a"], rows["c"])
    assert not (tmp_path / "a" / "test.h5").exists()


def test_boolean_flags_accept_bare_negated_and_valued_forms():
    assert parse_args([]).train is True and parse_args([]).gray_mode is False
    assert parse_args(["--train", "False"]).train is False
    assert parse_args(["--no-train"]).train is False
    assert parse_args(["--gray_mode"]).gray_mode is True
    assert parse_args(["--gray_mode", "true"]).gray_mode is True
    with pytest.raises(SystemExit):
        parse_args(["--train", "maybe"])


@pytest.mark.slow
def test_gray_mode_replicates_luma(tiny_data, tmp_path):
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(tmp_path / "g"), "--pic_type", "png",
                   "--gray_mode", "--no-train")
    assert r.returncode == 0, r.stderr
    p = h5py.File(tmp_path / "g" / "test.h5")["patches"][:]
    assert np.array_equal(p[:, 0], p[:, 1]) and np.array_equal(p[:, 0], p[:, 2])


def test_patches_hold_what_inference_reads_from_8_and_16_bit_files(tmp_path):
    """Training must see the pixels image_io.read_image feeds the network: all 16 bits of a 16-bit
    file (rounding them to 8 moved estimates by up to 0.04 stop). An 8-bit file before a 16-bit one
    in the same split is widened exactly."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos" / "Test" / "100"
    folder.mkdir(parents=True)
    images = {"a8.png": rng.integers(0, 256, (70, 90, 3), dtype=np.uint8),
              "b16.png": rng.integers(0, 65536, (70, 90, 3), dtype=np.uint16)}
    images["b16.png"][0, :4, 0] = [1, 128, 65534, 65535]  # values 8 bits cannot hold
    for name, img in images.items():
        assert cv2.imwrite(str(folder / name), img)
    path = tmp_path / "test.h5"
    prepare_split(find_labelled_images(folder.parent, "png"), path, PrepareOptions(stride=16), "test",
                  tmp_path / "photos", {})
    ds = PatchSet(path, run=1)
    with h5py.File(path) as h5:
        assert h5["patches"].dtype == np.uint16
        index, origin = h5["source_index"][:], h5["origin"][:]
    assert sorted(set(index)) == [0, 1]
    read = [read_image(folder / name) for name in images]
    for row in range(ds.rows):
        (y, x), inference = origin[row], read[index[row]]
        expected = torch.from_numpy(np.ascontiguousarray(inference[y:y + 64, x:x + 64].transpose(2, 0, 1)))
        assert torch.equal(ds[row][0][0], expected), row


def one_error_line(r, code: int = 2) -> str:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_class_folder_name_is_a_one_line_error(tiny_data, tmp_path):
    (tiny_data / "Train" / "abc").mkdir()
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(tmp_path / "o"), "--pic_type", "png")
    line = one_error_line(r)
    assert "abc" in line and "not an ISO" in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["bare", "empty", "wrong_type"])
def test_no_images_is_a_one_line_error(tmp_path, layout):
    root = tmp_path / "photos"
    root.mkdir()
    if layout != "bare":
        (root / "Train" / "100").mkdir(parents=True)
        (root / "Test").mkdir()
    if layout == "wrong_type":
        cv2.imwrite(str(root / "Train" / "100" / "a.png"), noise_image(np.random.default_rng(0), 100))
    r = run_script(PREPARE, "--data_path", str(root), "--save_path", str(tmp_path / "o"))  # default pic_type tif
    line = one_error_line(r)
    assert ("no such folder" if layout == "bare" else "no images found") in line and "Train" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_unreadable_and_too_small_images_are_skipped_and_counted(tiny_data, tmp_path):
    (tiny_data / "Train" / "800" / "corrupt.png").write_bytes(b"\x89PNG not really")
    cv2.imwrite(str(tiny_data / "Train" / "100" / "tiny.png"), np.zeros((32, 500, 3), np.uint8))
    out = tmp_path / "o"
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(out), "--pic_type", "png", "--no-test")
    assert r.returncode == 1, r.stderr  # some inputs failed; the others are written
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 2
    assert any("corrupt.png" in w and "not a readable image" in w for w in warnings)
    assert any("tiny.png" in w and "smaller than" in w for w in warnings)
    assert "2 image(s) skipped" in r.stdout
    with h5py.File(out / "train.h5") as h5:  # the good images all made it
        assert len(set(h5["source_index"][:])) == 4


@pytest.mark.slow
def test_exif_labels_for_flat_folders(tmp_path):
    root = tmp_path / "flat"
    (root / "Train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, iso in (("a.jpg", 400), ("b.jpg", 1600), ("no_exif.jpg", None)):
        exif = Image.Exif()
        if iso:
            exif[0x8827] = iso
        Image.fromarray(noise_image(rng, iso or 100)).save(root / "Train" / name, exif=exif.tobytes(), quality=95)
    r = run_script(PREPARE, "--data_path", str(root), "--save_path", str(tmp_path / "o"), "--pic_type", "jpg",
                   "--label_from", "exif", "--no-test", "--aug_times", "0")
    assert r.returncode == 1, r.stderr  # one file skipped
    assert "no_exif.jpg" in r.stderr and "no ISO in EXIF" in r.stderr
    with h5py.File(tmp_path / "o" / "train.h5") as h5:
        assert sorted(set(np.round(h5["iso_metric"][:], 5))) == [2.0, 4.0]


@pytest.mark.parametrize("args,fragment", [
    (["--stride", "0"], "--stride"),
    (["--aug_times", "8"], "--aug_times 8"),
    (["--no-train", "--no-test"], "nothing to do"),
    (["--data_path", "nowhere"], "no such folder"),
])
@pytest.mark.slow
def test_bad_arguments_exit_2(tiny_data, tmp_path, args, fragment):
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(tmp_path / "o"), "--pic_type", "png",
                   *args)
    assert fragment in one_error_line(r, 2)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_every_image_skipped_exits_1(tiny_data, tmp_path):
    for image in (tiny_data / "Test").rglob("*.png"):
        image.write_bytes(b"not an image")
    r = run_script(PREPARE, "--data_path", str(tiny_data), "--save_path", str(tmp_path / "o"), "--pic_type", "png",
                   "--no-train")
    assert "every image was skipped" in r.stderr.strip().splitlines()[-1] and r.returncode == 1, r.stderr
    assert not (tmp_path / "o" / "test.h5").exists()


def test_an_interrupted_prepare_leaves_no_file(tiny_data, tmp_path):
    files = find_labelled_images(tiny_data / "Train", "png")

    def interrupt_after_one(items):
        for i, item in enumerate(items):
            if i == 1:
                raise KeyboardInterrupt
            yield item

    with pytest.raises(KeyboardInterrupt):
        prepare_split(files, tmp_path / "o" / "train.h5", PrepareOptions(stride=64), "train", tiny_data, {},
                      progress=interrupt_after_one)
    assert list((tmp_path / "o").iterdir()) == []


@pytest.fixture
def prepared(tiny_data, tmp_path) -> Path:
    files = find_labelled_images(tiny_data / "Train", "png")
    path = tmp_path / "d" / "train.h5"
    prepare_split(files, path, PrepareOptions(stride=32, aug_times=1), "train", tiny_data, {})
    return path


def test_patch_set_reads_float_runs_in_unit_range(prepared):
    with h5py.File(prepared) as h5:
        raw, metric = h5["patches"][:], h5["iso_metric"][:]
    ds = PatchSet(prepared, run=20)
    assert ds.rows == len(raw) == 96 and len(ds) == 5  # 4 full runs and one of 16
    x, y = ds[4]
    assert x.dtype == torch.float32 and x.shape == (16, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, torch.from_numpy(raw[80:]).float() / 255)
    assert torch.equal(y, torch.from_numpy(metric[80:]))
    with pytest.raises(IndexError):
        ds[5]
    raw_run, _ = PatchSet(prepared, run=20, keep_integers=True)[4]  # what main_train reads, converted on the device
    assert raw_run.dtype == torch.uint8 and torch.equal(raw_run, torch.from_numpy(raw[80:]))
    assert torch.equal(to_unit_float(raw_run), x)
    # Worker processes open the file themselves and deliver the same data.
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=concat_runs)
    xs, ys = zip(*loader)
    assert torch.equal(torch.cat(xs), torch.from_numpy(raw).float() / 255)
    assert torch.equal(torch.cat(ys), torch.from_numpy(metric))


def write_legacy(folder: Path, patches: np.ndarray, labels: np.ndarray, stem: str = "train") -> None:
    """The original scripts' layout, as their users have it on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{stem}_rgb.h5", "w") as d, h5py.File(folder / f"{stem}_rgb_label.h5", "w") as lab:
        for i, (p, y) in enumerate(zip(patches, labels)):
            d.create_dataset(str(i), data=p)
            lab.create_dataset(str(i), data=np.array(y, np.float32))


def test_legacy_layout_is_read_by_open_patch_set(tmp_path):
    rng = np.random.default_rng(0)
    patches = rng.random((5, 3, 64, 64), dtype=np.float32)
    labels = np.array([0, 1, 2, 3, 4], np.float32)
    write_legacy(tmp_path, patches, labels, stem="val")
    for keep_integers in (False, True):  # float patches stay float either way
        ds = open_patch_set(tmp_path, "test", run=2, keep_integers=keep_integers)
        assert isinstance(ds, LegacyPatchSet) and ds.rows == 5 and len(ds) == 3
        x, y = concat_runs([ds[i] for i in range(3)])
        assert torch.equal(to_unit_float(x), torch.from_numpy(patches)) and torch.equal(y, torch.from_numpy(labels))


def test_new_format_wins_over_legacy_and_missing_sets_are_errors(prepared, tmp_path):
    write_legacy(prepared.parent, np.zeros((1, 3, 64, 64), np.float32), np.zeros(1))
    assert isinstance(open_patch_set(prepared.parent, "train"), PatchSet)
    with pytest.raises(ISONetError, match="no test patch set"):
        open_patch_set(prepared.parent, "test")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.h5").write_bytes(b"not hdf5")
    with pytest.raises(ISONetError, match="not a readable HDF5 file"):
        open_patch_set(tmp_path / "bad", "train")
