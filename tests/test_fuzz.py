"""Damaged, misnamed and hostile files: each decodes or gives one ISONetError naming the file."""
import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import image_io
import isonet
from conftest import noisy_image, run_script, tiny_dng

FORMATS = {  # suffix: Pillow format and options, for real-looking files of each kind
    "baseline.jpg": ("JPEG", {"quality": 90}),
    "progressive.jpg": ("JPEG", {"quality": 90, "progressive": True}),
    "rgb8.png": ("PNG", {}),
    "rgb16.png": ("PNG", {}),
    "plain.tif": ("TIFF", {}),
    "web.webp": ("WEBP", {"quality": 80}),
    "phone.heic": ("HEIF", {"quality": 80}),
}


def real_file(name: str) -> bytes:
    image_io._pillow()  # registers the HEIF writer
    fmt, options = FORMATS[name]
    rgb = noisy_image(96, 128, 10)
    image = Image.fromarray(rgb)
    if name == "rgb16.png":  # Pillow writes 16-bit PNG only from single-channel images
        image = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def damaged(data: bytes) -> dict[str, bytes]:
    """Truncations at several offsets and flipped bytes at fixed, seeded places."""
    rng = np.random.default_rng(len(data))
    cases = {f"cut{fraction}": data[: int(len(data) * fraction)] for fraction in (0.01, 0.1, 0.5, 0.9, 0.99)}
    for k in range(6):
        flipped = bytearray(data)
        for at in rng.integers(0, len(data), 1 + 4 * k):
            flipped[at] ^= 0xFF
        cases[f"flip{k}"] = bytes(flipped)
    return cases


def huge_jpeg() -> bytes:
    """A real JPEG whose frame header claims 65000x65000 (JPEG's 16-bit fields allow no more)."""
    data = bytearray(real_file("baseline.jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65000).to_bytes(2, "big") * 2
    return bytes(data)


def libtiff_cut_in_half() -> bytes:
    """libtiff writes its tags after the pixels, so a cut TIFF's tag offsets point past the end."""
    data = cv2.imencode(".tif", noisy_image(128, 128, 20))[1].tobytes()
    return data[: len(data) // 2]


ODD_SAMPLE_TIFFS = ("int16.tif", "float64.tif")


def odd_sample_tiffs() -> dict[str, bytes]:
    """Colour TIFFs of sample types no camera writes (OpenCV decodes them as stored)."""
    rgb = noisy_image(96, 128, 10)
    return {name: cv2.imencode(".tif", rgb.astype(name[:-4]))[1].tobytes() for name in ODD_SAMPLE_TIFFS}


def corpus() -> dict[str, bytes]:
    files = {"empty.jpg": b"", "huge.jpg": huge_jpeg(), "libtiff_cut.tif": libtiff_cut_in_half(),
             **odd_sample_tiffs(),
             "jpeg_named.png": real_file("baseline.jpg"),
             "png_named.heic": real_file("rgb8.png"), "heic_named.jpg": real_file("phone.heic")}
    for name in FORMATS:
        stem, suffix = name.split(".")
        files.update({f"{stem}_{case}.{suffix}": data for case, data in damaged(real_file(name)).items()})
    with tempfile.TemporaryDirectory() as folder:  # tifffile writes the DNG to a file
        dng = tiny_dng(Path(folder) / "raw.dng", 800).read_bytes()
    files.update({f"raw_{case}.dng": data for case, data in damaged(dng).items()})
    return files


CORPUS = corpus()


@pytest.mark.parametrize("name", CORPUS)
def test_every_case_decodes_or_gives_one_line_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CORPUS[name])
    try:
        img = image_io.decode_image_file(path)
    except isonet.ISONetError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype in (np.uint8, np.uint16)


@pytest.mark.parametrize("name", ODD_SAMPLE_TIFFS)
def test_odd_sample_types_are_refused_in_one_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CORPUS[name])
    with pytest.raises(isonet.ISONetError, match=f"^{path}: unsupported sample type {name[:-4]}"):
        image_io.decode_image_file(path)


def test_huge_declared_size_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(huge_jpeg())
    with pytest.raises(isonet.ISONetError, match="65000x65000.*300 megapixels"):
        image_io.decode_image_file(path)


def test_misnamed_real_files_decode_by_content(tmp_path):
    for name in ("jpeg_named.png", "png_named.heic", "heic_named.jpg"):
        (tmp_path / name).write_bytes(CORPUS[name])
        assert image_io.decode_image_file(tmp_path / name).shape == (96, 128, 3), name


@pytest.mark.slow
def test_script_on_a_folder_of_damaged_files_exits_1_without_traceback(tmp_path, weights_file):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("empty.jpg", "huge.jpg", "baseline_cut0.5.jpg", "phone_cut0.5.heic", "web_flip5.webp",
                 "libtiff_cut.tif", "raw_cut0.5.dng", "jpeg_named.png"):
        (folder / name).write_bytes(CORPUS[name])
    proc = run_script("test_model.py", "--model_path", weights_file, "--pic_path", folder,
                      "--out_dir", tmp_path / "o", "--figures", "none")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in errors) and any("huge.jpg" in e for e in errors)
    assert (tmp_path / "o" / "jpeg_named.json").exists()
