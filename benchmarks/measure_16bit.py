"""How much does rounding a 16-bit image to 8 bits move a model's estimate?

    python benchmarks/measure_16bit.py [--model models/net_tif.pth --isos 100 400 1600 6400 --workdir /tmp/isonet_16bit]

Renders the held-out clean photos (--all_sources: every one) as 16-bit PNGs (camera_noise's
pipeline, developed to 16-bit sRGB instead of 8-bit), then maps each file read two ways: all 16
bits (image_io.read_image, what inference feeds the network) and rounded to 8 bits
(round(x * 255 / 65535) / 255). Prints the difference of the global estimate (median of the map)
and of the patches, in stops.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import camera_noise as cn  # noqa: E402
from image_io import read_image  # noqa: E402
from isonet import iso_map, load_model  # noqa: E402

# Linear 16-bit -> 16-bit sRGB: camera_noise stops at 8 bits (LINEAR16_TO_SRGB8).
LINEAR16_TO_SRGB16 = np.round(cn.linear_to_srgb(np.arange(65536) / 65535.0) * 65535.0).astype(np.uint16)


def render16(clean: np.ndarray, camera: cn.CameraNoise, iso: float, rng: np.random.Generator) -> np.ndarray:
    """camera_noise.render's steps, developed to 16-bit sRGB (HxWx3 uint16 RGB)."""
    a, b = cn.sensor_noise_params(camera, iso)
    gains = cn.random_wb_gains(rng)
    pattern = cn.CFA_PATTERNS[rng.integers(len(cn.CFA_PATTERNS))]
    h, w = clean.shape[:2]
    raw = cn.mosaic(cn.srgb8_to_camera(cn.pad_to_even(clean), gains), pattern) * np.float32(cn.EXPOSURE)
    camera_rgb16 = cn.demosaic(cn.add_sensor_noise(raw, pattern, a, b, rng), pattern)
    m = (np.linalg.inv(cn.CAMERA_FROM_SRGB / gains[:, None]) / cn.EXPOSURE).astype(np.float32)
    return np.ascontiguousarray(LINEAR16_TO_SRGB16[cv2.transform(camera_rgb16, m)][:h, :w])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "models" / "net_tif.pth"))
    p.add_argument("--isos", type=int, nargs="+", default=[100, 400, 1600, 6400])
    p.add_argument("--camera", default="reference")
    p.add_argument("--workdir", default="/tmp/isonet_16bit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all_sources", action="store_true", help="every clean photo, not only the held-out ones")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    net = load_model(args.model)
    cameras = cn.cameras_by_iso(cn.load_noise_profiles().select(args.camera), args.isos)
    train, held_out = cn.split_train_test(cn.clean_images())
    sources = train + held_out if args.all_sources else held_out
    rng = np.random.default_rng(args.seed)
    print(f"model {args.model}, cameras '{args.camera}', 16-bit PNG renders of {[n for n, _ in sources]}")
    print(f"{'image':<16} {'ISO':>5} {'16-bit est':>10} {'8-bit est':>10} {'diff':>7} {'patch |diff|':>12}")
    global_diffs = []
    for name, clean in sources:
        for iso in args.isos:
            path = work / f"{name}_{iso}.png"
            camera = cameras[iso][rng.integers(len(cameras[iso]))]
            assert cv2.imwrite(str(path), render16(clean, camera, iso, rng)[:, :, ::-1])
            full = read_image(path)
            rounded = np.floor(full * 255 + 0.5) / 255  # what prepare_data's 8-bit patches hold
            m16, m8 = iso_map(net, full), iso_map(net, rounded.astype(np.float32))
            diff = m8.global_metric - m16.global_metric
            global_diffs.append(diff)
            print(f"{name:<16} {iso:>5} {m16.global_metric:>10.3f} {m8.global_metric:>10.3f} {diff:>+7.3f} "
                  f"{np.abs(m8.map - m16.map).mean():>12.3f}")
    print(f"global estimate, 8-bit minus 16-bit: mean {np.mean(global_diffs):+.3f}, "
          f"max |diff| {np.max(np.abs(global_diffs)):.3f} stops")


if __name__ == "__main__":
    main()
