"""The network, weights loading, image reading and the ISO maps."""
import io
import json
import os
import stat

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import image_io
import isonet
import reports
from conftest import DEVICES, SHARED, make_labelled_folder, needs_shared, noisy_image, run_script, tiny_dng, write_rgb


def one_patch_at_a_time(net: isonet.ISONet, img: np.ndarray, stride: int) -> np.ndarray:
    """The published procedure: every patch cut out and evaluated alone."""
    rows, cols = isonet.grid_shape(*img.shape[:2], stride)
    out = np.empty((rows, cols), np.float32)
    with torch.no_grad():
        for i in range(rows):
            for j in range(cols):
                patch = img[i * stride:i * stride + 64, j * stride:j * stride + 64]
                out[i, j] = net(isonet.image_to_tensor(patch)).item()
    return out


# ---- the published weights and maps ------------------------------------------------------------
@needs_shared
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("weights", ["net_tif", "net_jpg"])
def test_patch_map_matches_published_procedure(weights, device):
    expected = json.loads((SHARED / "expected_maps.json").read_text())["two_noise_levels.png"][weights]
    net = isonet.load_model(SHARED / "authors_weights" / f"{weights}.pth", device)
    img = image_io.read_image(SHARED / "two_noise_levels.png")
    result = isonet.iso_map(net, img, batch_size=7)
    assert result.map.shape == np.array(expected["map"]).shape
    assert np.abs(result.map - np.array(expected["map"])).max() <= 1e-4
    assert abs(result.global_metric - expected["median"]) <= 1e-4
    dense = isonet.dense_map(net, img, 64)  # the fully convolutional path
    assert np.abs(dense - np.array(expected["map"])).max() <= 1e-4


def test_maps_run_their_convolutions_without_tf32(monkeypatch):
    """TF32 (PyTorch's default for cuDNN convolutions) moved CUDA maps by 5e-3: both map paths turn it
    off while they run, and give the setting back afterwards."""
    seen = []
    features = isonet.ISONet.features
    monkeypatch.setattr(isonet.ISONet, "features",
                        lambda self, x: seen.append(torch.backends.cudnn.allow_tf32) or features(self, x))
    net = isonet.ISONet().eval()
    img = np.random.default_rng(0).random((128, 128, 3), np.float32)
    isonet.iso_map(net, img), isonet.iso_map(net, img, stride=8)
    assert seen == [False, False] and torch.backends.cudnn.allow_tf32


@pytest.mark.slow
@needs_shared
def test_dense_map_of_published_weights_equals_patches_alone():
    net = isonet.load_model(SHARED / "authors_weights" / "net_tif.pth")
    img = image_io.read_image(SHARED / "two_noise_levels.png")[:140, :180]
    dense = isonet.iso_map(net, img, stride=4).map
    assert np.abs(dense - one_patch_at_a_time(net, img, 4)).max() <= 1e-4


# ---- the network ---------------------------------------------------------------------------------
def test_state_dict_keys_and_shapes_are_the_papers():
    shapes = {k: tuple(v.shape) for k, v in isonet.ISONet().state_dict().items()}
    assert shapes["conv1.weight"] == (32, 3, 3, 3)
    assert shapes["conv2.weight"] == (64, 32, 3, 3)
    assert shapes["conv7.weight"] == (8, 16, 3, 3)
    assert shapes["fc.weight"] == (64, 800)
    assert shapes["fc2.weight"] == (8, 64)
    assert shapes["fc3.weight"] == (1, 8)
    assert len(shapes) == 20


@pytest.mark.slow
@pytest.mark.parametrize("stride,tile", [(4, 128), (4, 5), (8, 3), (12, 4), (60, 2)])
def test_dense_map_equals_each_patch_alone(random_net, stride, tile):
    img = noisy_image(150, 203, 6).astype(np.float32) / 255
    dense = isonet.dense_map(random_net, img, stride, tile=tile)
    alone = one_patch_at_a_time(random_net, img, stride)
    assert dense.shape == alone.shape == isonet.grid_shape(150, 203, stride)
    assert alone.std() > 1e-3  # the random net does tell patches apart
    assert np.abs(dense - alone).max() <= 1e-4


@pytest.mark.parametrize("band_patches", [1, 7, 4096])  # a band of 1, 1 (7 < 5 x 2), whole image
def test_batched_map_equals_one_at_a_time_in_row_major_order(random_net, monkeypatch, band_patches):
    monkeypatch.setattr(isonet, "BAND_PATCHES", band_patches)
    img = noisy_image(200, 330, 8).astype(np.float32) / 255  # 3 x 5 patches, ragged edges dropped
    alone = one_patch_at_a_time(random_net, img, 64)
    for batch_size in (1, 4, 256):
        result = isonet.iso_map(random_net, img, batch_size=batch_size)
        assert result.map.shape == (3, 5)
        assert np.abs(result.map - alone).max() <= 1e-5


def test_image_to_patches_is_row_major():
    img = np.random.default_rng(1).random((130, 200, 3), dtype=np.float32)
    patches = isonet.image_to_patches(img)
    assert patches.shape == (2 * 3, 3, 64, 64)
    np.testing.assert_array_equal(patches[4], img[64:128, 64:128].transpose(2, 0, 1))


def test_global_estimate_is_median_with_iqr():
    result = isonet.IsoMap(np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 10.0]]), 64)
    assert result.global_metric == 2.5
    assert result.iqr == pytest.approx(3.75 - 1.25)
    assert result.global_iso == pytest.approx(100 * 2 ** 2.5)


def test_clipped_share_counts_patches_whose_noise_is_clipped_away():
    rng = np.random.default_rng(0)
    night = rng.integers(0, 3, (128, 256, 3)).astype(np.float32) / 255  # a black level at 0-2
    grey = (128 + rng.normal(0, 5, (128, 256, 3))).astype(np.float32) / 255
    assert isonet.clipped_share(night) == 1.0 and isonet.clipped_share(grey) == 0.0
    half = grey.copy()
    half[:, :128] = night[:, :128]  # the left two of four patch columns black
    assert isonet.clipped_share(half) == 0.5
    # Every 32 px: of 7 columns, those at x = 0, 32, 64 are black, the one at 96 only half (not more).
    assert isonet.clipped_share(half, stride=32) == pytest.approx(3 / 7)
    half[:40, 128:] = 1.0  # saturated over 40 of the top row's 64 lines on the right
    assert isonet.clipped_share(half) == 0.75
    assert isonet.clipped_share(half[:, :, 0]) == 0.75  # grey images too


def test_rejects_stride_off_the_dense_grid(random_net):
    with pytest.raises(ValueError):
        isonet.dense_map(random_net, np.zeros((64, 64, 3), np.float32), 6)


# ---- the ISO metric -----------------------------------------------------------------------------
def test_iso_metric_conversions():
    assert isonet.iso_to_metric(100) == 0
    assert isonet.iso_to_metric(800) == 3
    assert isonet.metric_to_iso(3) == 800
    np.testing.assert_allclose(isonet.metric_to_iso(isonet.iso_to_metric(np.array([64, 3200]))), [64, 3200])
    assert isonet.nearest_full_stop(1100) == 800
    assert isonet.nearest_full_stop(1200) == 1600
    assert isonet.nearest_full_stop(90) == 100


# ---- loading weights ----------------------------------------------------------------------------
def test_loads_state_dict_checkpoint_and_module_prefix(tmp_path, random_net):
    state = random_net.state_dict()
    x = torch.rand(2, 3, 64, 64)
    expected = random_net(x)
    variants = {
        "bare.pth": state,
        "checkpoint.cpth": {"net": state, "optimizer": {}, "epoch": 3},
        "ddp.pth": {f"module.{k}": v for k, v in state.items()},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        net = isonet.load_model(tmp_path / name)
        assert torch.allclose(net(x), expected), name


def test_bad_weights_name_the_file_and_first_mismatching_key(tmp_path, random_net):
    state = random_net.state_dict()
    state["fc.weight"] = torch.zeros(64, 900)
    torch.save(state, tmp_path / "wide.pth")
    with pytest.raises(isonet.ISONetError, match=r"wide\.pth: .*'fc\.weight' has shape \(64, 900\)"):
        isonet.load_model(tmp_path / "wide.pth")
    del state["fc.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(isonet.ISONetError, match=r"short\.pth: .*missing key 'fc\.weight'"):
        isonet.load_model(tmp_path / "short.pth")
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(isonet.ISONetError, match=r"notes\.pth: not a PyTorch weights file"):
        isonet.load_model(tmp_path / "notes.pth")
    with pytest.raises(isonet.ISONetError, match=r"absent\.pth: no such model file"):
        isonet.load_model(tmp_path / "absent.pth")


@pytest.mark.slow
def test_loads_the_checkpoint_main_train_writes(tmp_path):
    """checkpoint/last.pth also holds NumPy's RNG state, which a bare weights_only load refuses."""
    photos = make_labelled_folder(tmp_path / "photos", per_iso=1, h=64, w=64)
    prepared = run_script("prepare_data.py", "--data_path", photos, "--save_path", tmp_path / "data",
                          "--pic_type", "png", "--stride", "64", "--aug_times", "0")
    assert prepared.returncode == 0, prepared.stderr
    trained = run_script("main_train.py", "--data_path", tmp_path / "data", "--out_dir", tmp_path / "models",
                         "--epochs", "1", "--workers", "0", "--batch_size", "8", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "models" / "checkpoint" / "last.pth"
    assert isinstance(torch.load(checkpoint, weights_only=False)["rng"]["numpy"][1], np.ndarray)
    net = isonet.load_model(checkpoint)
    best = isonet.load_model(tmp_path / "models" / "net.pth")  # after one epoch: the same weights, bare
    for key, value in best.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


class RunsCodeWhenUnpickled:
    """Unpickling this opens (creates) a file: a stand-in for a checkpoint that runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_weights_that_would_run_code_are_refused_unrun(tmp_path, random_net):
    marker = tmp_path / "ran"
    torch.save({"net": random_net.state_dict(), "extra": RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.pth")
    with pytest.raises(isonet.ISONetError, match=r"evil\.pth: not a PyTorch weights file"):
        isonet.load_model(tmp_path / "evil.pth")
    assert not marker.exists()


# ---- reading images -----------------------------------------------------------------------------
def test_reads_rgb_in_paper_order_and_scales_8_and_16_bit(tmp_path):
    rgb = np.zeros((64, 70, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[..., 2] = 51
    img = image_io.read_image(write_rgb(tmp_path / "red.png", rgb))
    assert img.dtype == np.float32 and img.shape == (64, 70, 3)
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.2], atol=1e-6)
    deep = np.full((64, 64, 3), 65535, np.uint16)
    deep[..., 1] = 13107
    img16 = image_io.read_image(write_rgb(tmp_path / "deep.tif", deep))
    np.testing.assert_allclose(img16[5, 5], [1.0, 0.2, 1.0], atol=1e-6)


def test_gray_is_replicated_and_alpha_dropped(tmp_path):
    gray = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    img = image_io.read_image(tmp_path / "gray.png")
    assert img.shape == (64, 64, 3)
    np.testing.assert_allclose(img[..., 0], gray / 65535, atol=1e-6)
    assert (img[..., 0] == img[..., 2]).all()
    bgra = np.zeros((64, 64, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 255, 10  # blue, nearly transparent
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_allclose(image_io.read_image(tmp_path / "rgba.png")[0, 0], [0, 0, 1])


def test_exif_orientation_is_honoured_and_iso_read(tmp_path):
    rgb = noisy_image(64, 100, 2)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    exif.get_ifd(0x8769)[0x8827] = 1600
    image.save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    assert image_io.read_image(tmp_path / "portrait.jpg").shape == (100, 64, 3)
    assert image_io.read_exif_iso(tmp_path / "portrait.jpg") == 1600
    assert image_io.read_exif_iso(write_rgb(tmp_path / "plain.png", rgb)) is None


@pytest.mark.parametrize("tags,iso", [
    ({0x8827: 65535, 0x8830: 2, 0x8832: 102400}, 102400),  # ISO 102400: the old tag says 65535, REI holds it
    ({0x8827: 65535, 0x8830: 3, 0x8832: 102400, 0x8833: 204800}, 204800),  # SensitivityType names ISO speed
    ({0x8827: 65535, 0x8833: 102400}, 102400),  # no SensitivityType: whichever full value there is
    ({0x8830: 1, 0x8831: 3200}, 3200),  # no PhotographicSensitivity at all: SOS
    ({0x8827: 65535}, 65535),  # nothing better recorded
    ({0x8827: 1600, 0x8830: 2, 0x8832: 1250}, 1600),  # below 65535 the old tag is the answer
])
def test_exif_iso_above_65535_comes_from_the_exif_2_3_tags(tmp_path, tags, iso):
    image = Image.fromarray(noisy_image(64, 64, 2))
    exif = image.getexif()
    exif.get_ifd(0x8769).update(tags)
    image.save(tmp_path / "high.jpg", exif=exif)
    assert image_io.read_exif_iso(tmp_path / "high.jpg") == iso


def test_exif_iso_is_none_for_unreadable_files_and_corrupt_exif(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    Image.fromarray(noisy_image(64, 64, 2)).save(tmp_path / "bad_exif.png", exif=b"Exif\x00\x00XX\x00*junk")
    for name in ("notes.jpg", "bad_exif.png", "absent.jpg"):
        assert image_io.read_exif_iso(tmp_path / name) is None, name


def test_exif_iso_lets_programming_errors_through(tmp_path, monkeypatch):
    path = write_rgb(tmp_path / "plain.jpg", noisy_image(64, 64, 2))

    def broken(self, tag):
        raise TypeError("a bug, not a bad file")

    monkeypatch.setattr(Image.Exif, "get_ifd", broken)
    with pytest.raises(TypeError, match="a bug"):
        image_io.read_exif_iso(path)


@pytest.mark.parametrize("make,message", [
    (lambda p: write_rgb(p.with_suffix(".png"), noisy_image(63, 300, 1)), "63, smaller than one 64x64 patch"),
    (lambda p: (p.with_suffix(".png").write_bytes(b""), p.with_suffix(".png"))[1], "empty file"),
    (lambda p: (p.with_suffix(".png").write_text("hello"), p.with_suffix(".png"))[1], "not a readable image"),
    (lambda p: p.with_suffix(".tif"), "no such file"),
])
def test_bad_images_give_one_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path / "bad")
    with pytest.raises(isonet.ISONetError) as info:
        image_io.read_image(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_truncated_files_are_refused(tmp_path, suffix):
    whole = write_rgb(tmp_path / f"whole{suffix}", noisy_image(128, 128, 20))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(isonet.ISONetError, match="truncated"):
        image_io.read_image(cut)


def jpeg_bytes(rgb: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def with_thumbnail(jpeg: bytes) -> bytes:
    """`jpeg` with a whole small JPEG in a segment after SOI, as EXIF carries a thumbnail: an EOI
    that comes before the image's own data."""
    thumbnail = jpeg_bytes(noisy_image(16, 16, 5, seed=2))
    return jpeg[:2] + b"\xff\xfe" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail + jpeg[2:]


def motion_photo_video(size: int) -> bytes:
    """What a phone appends to a motion photo: an MP4 ("ftyp" box first); FF bytes galore, no EOI."""
    body = np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8).tobytes()
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + body.replace(b"\xff\xd9", b"\xff\x00")


JPEG_ENCODINGS = {"baseline": {}, "progressive": {"progressive": True}, "restart markers": {"restart_marker_blocks": 1}}
JPEG_EXTRAS = {
    "zero padding": lambda jpeg: jpeg + bytes(4096),  # a BlackBerry Z10 pads ~4 KB of zeros
    "motion photo": lambda jpeg: jpeg + motion_photo_video(8192),
    "second image (MPO)": lambda jpeg: jpeg + jpeg_bytes(noisy_image(64, 64, 9, seed=1)),
    "thumbnail": with_thumbnail,
    "fill bytes before EOI": lambda jpeg: jpeg[:-2] + b"\xff\xff\xff\xd9",  # FFs may pad before any marker
}


@pytest.mark.parametrize("encoding", JPEG_ENCODINGS)
@pytest.mark.parametrize("extra", JPEG_EXTRAS)
def test_jpeg_with_padding_trailers_or_thumbnail_decodes_as_the_clean_file(tmp_path, extra, encoding):
    clean = jpeg_bytes(noisy_image(96, 128, 12), **JPEG_ENCODINGS[encoding])
    (tmp_path / "clean.jpg").write_bytes(clean)
    (tmp_path / "camera.jpg").write_bytes(JPEG_EXTRAS[extra](clean))
    np.testing.assert_array_equal(image_io.decode_image_file(tmp_path / "camera.jpg"),
                                  image_io.decode_image_file(tmp_path / "clean.jpg"))


def test_progressive_and_restart_marker_jpegs_decode_as_their_baseline_twin(tmp_path):
    rgb = noisy_image(96, 128, 12)
    progressive, restarts = jpeg_bytes(rgb, progressive=True), jpeg_bytes(rgb, restart_marker_blocks=1)
    assert progressive.count(b"\xff\xda") > 1  # several scans, each ended by the next segment
    assert b"\xff\xd0" in restarts  # RST0 inside the scan
    (tmp_path / "baseline.jpg").write_bytes(jpeg_bytes(rgb))
    baseline = image_io.decode_image_file(tmp_path / "baseline.jpg")
    for name, data in (("progressive.jpg", progressive), ("restarts.jpg", restarts)):
        (tmp_path / name).write_bytes(data)
        np.testing.assert_array_equal(image_io.decode_image_file(tmp_path / name), baseline, err_msg=name)


@pytest.mark.parametrize("thumbnail", [False, True], ids=["plain", "thumbnail"])
@pytest.mark.parametrize("encoding", JPEG_ENCODINGS)
def test_jpeg_cut_inside_its_image_data_is_refused(tmp_path, encoding, thumbnail):
    image = jpeg_bytes(noisy_image(128, 128, 20), **JPEG_ENCODINGS[encoding])
    whole = with_thumbnail(image) if thumbnail else image
    sos = whole.index(b"\xff\xda", len(whole) - len(image))  # the image's first scan, not the thumbnail's
    data_start, eoi = sos + 2 + int.from_bytes(whole[sos + 2:sos + 4], "big"), len(whole) - 2
    assert whole[eoi:] == b"\xff\xd9"
    cuts = [data_start, *np.linspace(data_start, eoi, 5, dtype=int)[1:-1], eoi - 1]
    for cut in cuts:
        for tail in (b"", bytes(4096)):  # a write that failed midway may leave zeros behind
            path = tmp_path / f"cut_{cut}_{len(tail)}.jpg"
            path.write_bytes(whole[:cut] + tail)
            with pytest.raises(isonet.ISONetError) as info:
                image_io.decode_image_file(path)
            text = str(info.value)
            assert text.startswith(str(path)) and "truncated JPEG" in text and "\n" not in text


def test_list_images_expands_folders_sorted(tmp_path):
    for name in ["b.png", "a.JPG", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_io.list_images([str(tmp_path)])] == ["a.JPG", "b.png"]
    assert image_io.list_images([str(tmp_path / "notes.txt")]) == [tmp_path / "notes.txt"]


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with image_io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with image_io.atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_atomic_path_gives_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp makes owner-only files; outputs and models must be as readable as any other file."""
    (tmp_path / "plain.txt").write_text("x")
    with image_io.atomic_path(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    old = os.umask(0o022)
    try:
        with image_io.atomic_path(tmp_path / "shared.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("atomic.txt") == mode("plain.txt")
    assert mode("shared.txt") == 0o644


# ---- figures ------------------------------------------------------------------------------------
def test_figure_background_is_an_area_downsample_bounded_on_the_long_side():
    img = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    small = reports.figure_background(img, 1600)
    assert small.shape == (1200, 1600, 3)
    # Area interpolation averages 2.5x2.5 blocks: the noise shrinks, the mean stays.
    assert small.std() < 0.6 * img.std() and abs(small.mean() - img.mean()) < 1e-3
    tiny = img[:100, :130]
    assert reports.figure_background(tiny, 1600) is tiny


def test_a_bright_image_is_drawn_without_matplotlib_clipping_it(caplog):
    # Its area downsample overshoots 1 by a rounding; drawn as it is, matplotlib logs a warning.
    rng = np.random.default_rng(0)
    img = np.where(rng.random((3000, 2000, 3)) < 0.9, 1.0, 0.9).astype(np.float32)
    assert reports.figure_background(img).max() > 1
    plt = reports.pyplot()
    fig, ax = plt.subplots()
    with caplog.at_level("WARNING"):
        reports.show_image(ax, img)
    plt.close(fig)
    assert not caplog.records, caplog.text


def test_map_figure_of_a_large_image_draws_a_small_background_in_full_image_coordinates():
    plt = reports.pyplot()
    img = np.zeros((2000, 3000, 3), np.float32)
    result = isonet.IsoMap(np.zeros(isonet.grid_shape(2000, 3000, 64), np.float32), 64)
    fig, ax = plt.subplots()
    reports.draw_map(ax, img, result.map, result.stride)
    background, cells = ax.get_images()
    assert max(background.get_array().shape[:2]) <= reports.FIGURE_MAX_SIDE
    assert tuple(background.get_extent()) == (0, 3000, 2000, 0)  # so the map's cells stay on their patches
    assert tuple(cells.get_extent()) == (0, 46 * 64, 31 * 64, 0)
    plt.close(fig)


@pytest.mark.parametrize("height,width,side_by_side", [(1225, 1633, False), (1633, 1225, True), (300, 4900, False),
                                                      (3000, 200, False)])
def test_map_figures_keep_every_label_inside_without_a_layout_pass(height, width, side_by_side, monkeypatch, tmp_path):
    """The map figure is laid out by hand (no bbox_inches="tight", which draws it twice): whatever
    the image's shape, titles, tick labels and the colour bar's labels must still lie inside it."""
    plt = reports.pyplot()
    drawn = []
    monkeypatch.setattr(reports, "save_figure", lambda fig, path, tight=True: drawn.append((fig, tight)))
    img = np.full((height, width, 3), 0.5, np.float32)
    values = np.random.default_rng(0).normal(3, 1.5, isonet.grid_shape(height, width, 64)).astype(np.float32)
    reports.save_map_figure(img, isonet.IsoMap(values, 64), tmp_path / "m.png", title="a_long_file_name.jpg",
                            side_by_side=side_by_side)
    (fig, tight), = drawn
    assert not tight
    fig.canvas.draw()
    inside = fig.get_tightbbox(fig.canvas.get_renderer())
    width_in, height_in = fig.get_size_inches()
    assert inside.x0 >= 0 and inside.y0 >= 0, inside
    assert inside.x1 <= width_in and inside.y1 <= height_in, (inside, width_in, height_in)
    plt.close(fig)


def test_figure_titles_name_a_model_without_this_machines_project_path(tmp_path):
    assert reports.model_label(isonet.PROJECT / "models" / "net_tif.pth") == "models/net_tif.pth"
    elsewhere = tmp_path / "mine.pth"
    assert reports.model_label(elsewhere) == str(elsewhere)


# ---- formats ------------------------------------------------------------------------------------
def smooth_image(height: int = 64, width: int = 96) -> np.ndarray:
    """Smooth content, so lossy codecs keep it close and any wrong rotation or flip shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([2 * x, 3 * y, 255 - x - y], axis=2).clip(0, 255).astype(np.uint8)


def encoded(rgb: np.ndarray, fmt: str, orientation: int = 1, **options) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x8827] = 640
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif.tobytes(), **options)
    return buffer.getvalue()


ORIENTATION_FORMATS = {"JPEG": ("jpg", {"quality": 90}), "PNG": ("png", {}),
                       "WEBP": ("webp", {"lossless": True}), "TIFF": ("tif", {}), "HEIF": ("heic", {"quality": 90})}


@pytest.mark.parametrize("fmt", ORIENTATION_FORMATS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_pixels_pillow_shows(tmp_path, fmt, orientation):
    """Each file holds the same coded pixels as its orientation-1 twin, so the twin's decode turned
    by Pillow's exif_transpose is exactly what the oriented file must decode to."""
    suffix, options = ORIENTATION_FORMATS[fmt]
    rgb = smooth_image()
    (tmp_path / f"upright.{suffix}").write_bytes(encoded(rgb, fmt, 1, **options))
    (tmp_path / f"turned.{suffix}").write_bytes(encoded(rgb, fmt, orientation, **options))
    upright = Image.fromarray(image_io.decode_image_file(tmp_path / f"upright.{suffix}"))
    exif = upright.getexif()
    exif[0x0112] = orientation
    upright.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(upright))
    np.testing.assert_array_equal(image_io.decode_image_file(tmp_path / f"turned.{suffix}"), expected)
    if orientation == 1:  # and the upright decode is the picture, within the codec's loss
        assert np.abs(np.asarray(upright).astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("fmt", ORIENTATION_FORMATS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_sensor_order_undoes_every_orientation(tmp_path, fmt, orientation):
    """PRNU reads the pixels where the sensor put them: an oriented file decodes in sensor order to
    exactly its orientation-1 twin, and read_orientation turns that back into the viewer's picture."""
    suffix, options = ORIENTATION_FORMATS[fmt]
    rgb = smooth_image()
    upright = tmp_path / f"upright.{suffix}"
    turned = tmp_path / f"turned.{suffix}"
    upright.write_bytes(encoded(rgb, fmt, 1, **options))
    turned.write_bytes(encoded(rgb, fmt, orientation, **options))
    sensor = image_io.decode_image_file(turned, sensor_order=True)
    np.testing.assert_array_equal(sensor, image_io.decode_image_file(upright))
    assert image_io.read_orientation(turned) == orientation
    assert image_io.read_exif_iso(turned) == 640  # TIFF's too, whose EXIF sub-IFD is read from the open file
    np.testing.assert_array_equal(image_io.orient(sensor, orientation), image_io.decode_image_file(turned))


def test_orientation_codes_compose_invert_and_move_boxes_with_their_pixels():
    grid = np.arange(5 * 7).reshape(5, 7)
    for code in range(1, 9):
        np.testing.assert_array_equal(image_io.orient(image_io.orient(grid, code), image_io.inverse_orientation(code)),
                                      grid)
        for then in range(1, 9):
            np.testing.assert_array_equal(image_io.orient(grid, image_io.compose_orientations(code, then)),
                                          image_io.orient(image_io.orient(grid, code), then))
        # The box around one pixel lands on the pixel that orient moved there.
        turned = image_io.orient(grid, code)
        x0, x1, y0, y1 = image_io.orient_box((4, 5, 1, 2), *grid.shape, code)
        assert (x1 - x0, y1 - y0) == (1, 1) and turned[int(y0), int(x0)] == grid[1, 4]
    for k, code in image_io.QUARTER_TURNS.items():
        np.testing.assert_array_equal(np.rot90(grid, k), image_io.orient(grid, code))


def test_raw_sensor_order_and_orientation(tmp_path):
    portrait = tiny_dng(tmp_path / "portrait.dng", 400, orientation=6)
    assert image_io.read_orientation(portrait) == 6
    sensor = image_io.decode_image_file(portrait, sensor_order=True)
    np.testing.assert_array_equal(sensor, image_io.decode_image_file(tiny_dng(tmp_path / "landscape.dng", 400)))
    np.testing.assert_array_equal(image_io.orient(sensor, 6), image_io.decode_image_file(portrait))


def test_file_kind_tells_what_the_file_shows_of_its_history(tmp_path):
    rgb = smooth_image()

    def jpeg(name: str, **tags):
        image = Image.fromarray(rgb)
        exif = image.getexif()
        for tag, value in tags.items():
            exif[{"make": 0x010F, "model": 0x0110, "software": 0x0131, "orientation": 0x0112}[tag]] = value
        image.save(tmp_path / name, exif=exif, quality=90)
        return tmp_path / name

    assert image_io.file_kind(jpeg("camera.jpg", make="Canon", model="Canon EOS 50D")) == "in_camera_jpeg"
    assert image_io.file_kind(jpeg("edited.jpg", make="Canon", model="Canon EOS 50D",
                                   software="Adobe Photoshop CS6")) == "other_jpeg"
    assert image_io.file_kind(jpeg("turned.jpg", orientation=6)) == "other_jpeg"  # EXIF, but no camera in it
    assert image_io.file_kind(jpeg("stripped.jpg")) == "no_metadata"
    (tmp_path / "web.webp").write_bytes(encoded(rgb, "WEBP", quality=80))
    (tmp_path / "phone.heic").write_bytes(encoded(rgb, "HEIF", quality=90))
    (tmp_path / "lossless.webp").write_bytes(encoded(rgb, "WEBP", lossless=True))
    assert image_io.file_kind(tmp_path / "web.webp") == image_io.file_kind(tmp_path / "phone.heic") == "other_jpeg"
    assert image_io.file_kind(tmp_path / "lossless.webp") == "uncompressed"
    assert image_io.file_kind(write_rgb(tmp_path / "plain.png", rgb)) == "uncompressed"
    assert image_io.file_kind(tiny_dng(tmp_path / "shot.dng", 400)) == "uncompressed"


def test_heic_reads_its_exif_iso_and_16_bit_samples(tmp_path):
    import pillow_heif

    path = tmp_path / "phone.heic"
    path.write_bytes(encoded(smooth_image(), "HEIF", quality=90))
    assert image_io.read_exif_iso(path) == 640
    deep = (smooth_image().astype(np.uint16) * 257)
    pillow_heif.from_bytes(mode="RGB;16", size=(96, 64), data=deep.tobytes()).save(tmp_path / "deep.heic", quality=-1)
    img = image_io.decode_image_file(tmp_path / "deep.heic")
    assert img.dtype == np.uint16 and img.shape == (64, 96, 3)
    assert np.abs(img.astype(int) - deep).mean() < 3 * 257


def test_cmyk_jpeg_mpo_webp_and_16_bit_png_tiff_decode(tmp_path):
    rgb = smooth_image()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    cmyk = image_io.decode_image_file(tmp_path / "print.jpg")
    assert np.abs(cmyk.astype(int) - np.asarray(Image.open(tmp_path / "print.jpg").convert("RGB"))).max() <= 2
    Image.fromarray(rgb).save(tmp_path / "3d.mpo", "MPO", save_all=True, append_images=[Image.fromarray(255 - rgb)])
    with Image.open(tmp_path / "3d.mpo") as mpo:
        assert mpo.n_frames == 2
        left = np.asarray(mpo.convert("RGB"))
    assert np.abs(image_io.decode_image_file(tmp_path / "3d.mpo").astype(int) - left).max() <= 2
    (tmp_path / "web.webp").write_bytes(encoded(rgb, "WEBP", lossless=True))
    np.testing.assert_array_equal(image_io.decode_image_file(tmp_path / "web.webp"), rgb)
    deep = rgb.astype(np.uint16) * 257 + 3
    for suffix in ("png", "tif"):
        img = image_io.decode_image_file(write_rgb(tmp_path / f"deep.{suffix}", deep))
        assert img.dtype == np.uint16
        np.testing.assert_array_equal(img, deep)
    assert {".heic", ".heif", ".mpo"} <= image_io.IMAGE_SUFFIXES


def test_raw_is_developed_to_16_bit_without_auto_brightening_and_turned(tmp_path):
    dark = image_io.decode_image_file(tiny_dng(tmp_path / "dark.dng", 400))
    bright = image_io.decode_image_file(tiny_dng(tmp_path / "bright.dng", 1600))
    assert dark.dtype == np.uint16 and dark.shape == (96, 128, 3)
    # Auto-brightening would scale both to the same level; the exposure must survive.
    assert bright.mean() > 1.5 * dark.mean()
    assert dark.std() > 0  # the noise is kept (no noise reduction flattens it)
    assert image_io.decode_image_file(tiny_dng(tmp_path / "portrait.dng", 400, orientation=6)).shape == (128, 96, 3)
    assert image_io.read_exif_iso(tmp_path / "dark.dng") == 3200
    assert ".dng" in image_io.IMAGE_SUFFIXES and ".cr3" in image_io.IMAGE_SUFFIXES


@pytest.mark.parametrize("content", [b"", b"II*\x00 not a raw at all", b"\xff\xd8\xff\xd9"])
def test_unreadable_raw_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "shot.nef"
    path.write_bytes(content)
    with pytest.raises(isonet.ISONetError) as info:
        image_io.decode_image_file(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    assert image_io.read_exif_iso(path) is None
