"""Camera identification on real JPEGs: this project's prnu.py beside polimi-ispl/prnu-python,
each on the crops its own loader gives.

    python benchmarks/bench_prnu_camera_id.py --data CHECKOUT/test/data \
        [--reference CHECKOUT --reference_python VENV/bin/python]

CHECKOUT is a checkout of https://github.com/polimi-ispl/prnu-python (kept outside this
repository; nothing of it is copied here). Its test images are real JPEGs of the Dresden image
database: flat fields (ff-jpg/) and natural photos (nat-jpg/) of Nikon cameras, named
<device>_<number>.JPG. The protocol is that of its example.py: each device's fingerprint from its
flat fields, then each natural photo's residual against every fingerprint, on 512x512 centre crops.

Each tool reads the files its own way. prnu.py through image_io in the sensor's order (EXIF
orientation undone, as everything PRNU in this project does); for contrast, also as a viewer shows
them (orientation applied: most of these flat fields were shot held upright, so their crops lie
turned against the photos'). prnu-python, with --reference, runs its example.py's own steps in
its own Python (--reference_python: NumPy 1, which its intensity weights need): Pillow's pixels,
which are never turned, its flat-field checks, its NCC (aligned_cc) and PCE.

Printed for each: ROC AUC of NCC and of PCE over all (photo, device) pairs, the share of photos
whose highest PCE is their own device's, true and false positive rates of PCE > 60, and the wall
time of fingerprints, residuals and scores (interpreter start-up excluded).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import image_io  # noqa: E402
import isonet  # noqa: E402
import metrics  # noqa: E402
import prnu  # noqa: E402

CROP = 512


def device_of(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]


def centre_crop(img: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def ours(flat: list[Path], natural: list[Path],
         sensor_order: bool) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """(devices, photos' devices, {"ncc", "pce"}: devices x photos) by prnu.py: W of each photo against
    I * K of each device. Unreadable files are named and skipped."""
    def observed(paths: list[Path]) -> list[tuple[str, prnu.Observation]]:
        out = []
        for path in paths:
            try:
                img = image_io.decode_image_file(path, sensor_order=sensor_order)
            except isonet.ISONetError as e:
                print(f"skipped: {e}", file=sys.stderr)
                continue
            out.append((device_of(path), prnu.observe(centre_crop(img))))
        return out

    flats, photos = observed(flat), observed(natural)
    devices = sorted({d for d, _ in flats})
    fingerprints = [prnu.estimate_fingerprint(obs for d, obs in flats if d == device) for device in devices]
    scores = {"ncc": np.array([[prnu.ncc(obs.residual, prnu.expected_prnu(obs, k)) for _, obs in photos]
                               for k in fingerprints]),
              "pce": np.array([[prnu.pce(obs.residual, prnu.expected_prnu(obs, k)).value for _, obs in photos]
                               for k in fingerprints])}
    return devices, [d for d, _ in photos], scores


# prnu-python's example.py, step for step, in --reference_python; paths in, scores out.
REFERENCE_RUN = """
import importlib.util, json, os, sys, time
import numpy as np
from PIL import Image
root, request, out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("prnu_python", root + "/prnu/__init__.py",
                                              submodule_search_locations=[root + "/prnu"])
prnu = importlib.util.module_from_spec(spec)
sys.modules["prnu_python"] = prnu
spec.loader.exec_module(prnu)
paths = json.load(open(request))
device = lambda p: os.path.split(p)[1].rsplit("_", 1)[0]
start = time.perf_counter()
devices = sorted({device(p) for p in paths["flat"]})
k = []
for d in devices:
    imgs = []
    for p in [p for p in paths["flat"] if device(p) == d]:
        arr = np.asarray(Image.open(p))
        if arr.dtype != np.uint8 or arr.ndim != 3:
            continue
        imgs.append(prnu.cut_ctr(arr, (512, 512, 3)))
    k.append(prnu.extract_multiple_aligned(imgs, processes=1))
k = np.stack(k, 0)
w = np.stack([prnu.extract_single(prnu.cut_ctr(np.asarray(Image.open(p)), (512, 512, 3))) for p in paths["natural"]], 0)
ncc = prnu.aligned_cc(k, w)["cc"]
pce = np.array([[prnu.pce(prnu.crosscorr_2d(kk, ww))["pce"] for ww in w] for kk in k])
np.savez(out, ncc=ncc, pce=pce, seconds=time.perf_counter() - start, devices=np.array(devices),
         photo_devices=np.array([device(p) for p in paths["natural"]]))
"""


def reference(package_root: Path, python: str, flat: list[Path],
              natural: list[Path]) -> tuple[list[str], list[str], dict[str, np.ndarray], float]:
    with tempfile.TemporaryDirectory() as tmp:
        request, out = Path(tmp) / "paths.json", Path(tmp) / "scores.npz"
        request.write_text(json.dumps({"flat": list(map(str, flat)), "natural": list(map(str, natural))}))
        subprocess.run([python, "-c", REFERENCE_RUN, str(package_root), str(request), str(out)], check=True)
        result = np.load(out)
        return (list(result["devices"]), list(result["photo_devices"]),
                {"ncc": result["ncc"], "pce": result["pce"]}, float(result["seconds"]))


def report(name: str, devices: list[str], photo_devices: list[str], scores: dict[str, np.ndarray],
           seconds: float) -> None:
    truth = np.array([[d == p for p in photo_devices] for d in devices])
    pce = scores["pce"]
    decided = pce > prnu.PCE_THRESHOLD
    top = np.array(devices)[np.argmax(pce, axis=0)] == np.array(photo_devices)
    print(f"{name:34} AUC NCC {metrics.pixel_auc(scores['ncc'], truth):.3f}  PCE "
          f"{metrics.pixel_auc(pce, truth):.3f}   top-1 {top.mean():6.1%}   PCE > {prnu.PCE_THRESHOLD:g}: "
          f"true positives {decided[truth].mean():6.1%}, false positives {decided[~truth].mean():5.1%}   "
          f"{seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="prnu-python's test/data (ff-jpg/, nat-jpg/)")
    parser.add_argument("--reference", type=Path, help="a prnu-python checkout, to run it on the same files")
    parser.add_argument("--reference_python", default=sys.executable,
                        help="a Python with prnu-python's requirements (NumPy 1, SciPy, PyWavelets, scikit-learn, "
                             "tqdm, Pillow)")
    args = parser.parse_args()
    flat, natural = sorted((args.data / "ff-jpg").glob("*.JPG")), sorted((args.data / "nat-jpg").glob("*.JPG"))
    if not flat or not natural:
        raise SystemExit(f"{args.data}: no ff-jpg/*.JPG or nat-jpg/*.JPG images")
    print(f"{len({device_of(p) for p in flat})} devices, {len(flat)} flat fields, {len(natural)} natural photos, "
          f"{CROP}x{CROP} centre crops")
    for name, sensor_order in (("prnu.py, sensor's order", True), ("prnu.py, as a viewer shows them", False)):
        start = time.perf_counter()
        devices, photo_devices, scores = ours(flat, natural, sensor_order)
        report(name, devices, photo_devices, scores, time.perf_counter() - start)
    if args.reference:
        devices, photo_devices, scores, seconds = reference(args.reference, args.reference_python, flat, natural)
        report("prnu-python (Pillow, never turned)", devices, photo_devices, scores, seconds)


if __name__ == "__main__":
    main()
