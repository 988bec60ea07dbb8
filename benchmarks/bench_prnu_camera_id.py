"""Camera identification on real JPEGs: this project's prnu.py beside polimi-ispl/prnu-python.

    python benchmarks/bench_prnu_camera_id.py --data CHECKOUT/test/data [--reference CHECKOUT]

CHECKOUT is a checkout of https://github.com/polimi-ispl/prnu-python (kept outside this
repository; nothing of it is copied here). Its test images are real JPEGs of the Dresden image
database: flat fields (ff-jpg/) and natural photos (nat-jpg/) of six Nikon cameras, named
<device>_<number>.JPG. The protocol is that of its example.py: each device's fingerprint from its
flat fields, then the PCE of each natural photo's residual against every fingerprint, all on the
512x512 centre crops. With --reference, prnu-python itself runs the same protocol (it needs its
own dependencies, scikit-learn among them) in one process, as this project's code does.

Printed for each implementation: the ROC AUC of PCE over all (photo, device) pairs, the share of
photos whose highest PCE is their own device's, true and false positive rates of the usual
decision PCE > 60, and the wall time of fingerprints, residuals and PCEs together.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import evaluation  # noqa: E402
import image_io  # noqa: E402
import isonet  # noqa: E402
import prnu  # noqa: E402

CROP = 512


def centre_crop(img: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def read_set(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    """(device of each photo, its RGB centre crop as decoded: 8-bit for these JPEGs); unreadable
    files are named and skipped."""
    devices, crops = [], []
    for path in sorted(folder.glob("*.JPG")):
        try:
            img = image_io.decode_image_file(path)
        except isonet.ISONetError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        devices.append(path.stem.rsplit("_", 1)[0])
        crops.append(centre_crop(img))
    return devices, crops


def ours(flat: dict[str, list[np.ndarray]], natural: list[np.ndarray]) -> np.ndarray:
    """PCE matrix (devices x photos): W of each photo against I * K of each device."""
    fingerprints = [prnu.estimate_fingerprint(prnu.observe(img) for img in imgs) for imgs in flat.values()]
    observed = [prnu.observe(img) for img in natural]
    return np.array([[prnu.pce(obs.residual, prnu.expected_prnu(obs, k)).value for obs in observed]
                     for k in fingerprints])


# Runs in --reference_python, with prnu-python's own pins (NumPy 1: under NumPy 2 its intensity weights
# overflow), fed the same crops through an .npz, timed inside (interpreter start-up excluded).
REFERENCE_RUN = """
import importlib.util, sys, time
import numpy as np
root, data, out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("prnu_python", root + "/prnu/__init__.py",
                                              submodule_search_locations=[root + "/prnu"])
prnu = importlib.util.module_from_spec(spec)
sys.modules["prnu_python"] = prnu
spec.loader.exec_module(prnu)
arrays = np.load(data)
start = time.perf_counter()
flat = [list(arrays[name]) for name in sorted(n for n in arrays.files if n.startswith("flat_"))]
fingerprints = [prnu.extract_multiple_aligned(imgs, processes=1) for imgs in flat]
residuals = [prnu.extract_single(img) for img in arrays["natural"]]
pce = [[prnu.pce(prnu.crosscorr_2d(k, w))["pce"] for w in residuals] for k in fingerprints]
np.savez(out, pce=np.array(pce), seconds=time.perf_counter() - start)
"""


def reference(package_root: Path, python: str, flat: dict[str, list[np.ndarray]],
              natural: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The same matrix by prnu-python, as its example.py computes it (one process), and its time."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "crops.npz", Path(tmp) / "pce.npz"
        np.savez(data, natural=np.stack(natural),
                 **{f"flat_{k:03d}": np.stack(imgs) for k, imgs in enumerate(flat.values())})
        subprocess.run([python, "-c", REFERENCE_RUN, str(package_root), str(data), str(out)], check=True)
        result = np.load(out)
        return result["pce"], float(result["seconds"])


def report(name: str, pce: np.ndarray, devices: list[str], photo_devices: list[str], seconds: float) -> None:
    truth = np.array([[d == p for p in photo_devices] for d in devices])
    decided = pce > prnu.PCE_THRESHOLD
    top = np.array(devices)[np.argmax(pce, axis=0)] == np.array(photo_devices)
    print(f"{name:16} AUC {evaluation.pixel_auc(pce, truth):.3f}   top-1 {top.mean():6.1%}   "
          f"PCE > {prnu.PCE_THRESHOLD:g}: true positives {decided[truth].mean():6.1%}, "
          f"false positives {decided[~truth].mean():5.1%}   {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="prnu-python's test/data (ff-jpg/, nat-jpg/)")
    parser.add_argument("--reference", type=Path, help="a prnu-python checkout, to run it on the same images")
    parser.add_argument("--reference_python", default=sys.executable,
                        help="a Python with prnu-python's requirements (NumPy 1, SciPy, PyWavelets, scikit-learn, tqdm)")
    args = parser.parse_args()
    flat_devices, flat_crops = read_set(args.data / "ff-jpg")
    photo_devices, natural = read_set(args.data / "nat-jpg")
    if not flat_crops or not natural:
        raise SystemExit(f"{args.data}: no ff-jpg/*.JPG or nat-jpg/*.JPG images")
    flat = {d: [c for c, fd in zip(flat_crops, flat_devices) if fd == d] for d in sorted(set(flat_devices))}
    print(f"{len(flat)} devices, {len(flat_crops)} flat fields, {len(natural)} natural photos, "
          f"{CROP}x{CROP} centre crops")
    start = time.perf_counter()
    pce = ours(flat, natural)
    report("prnu.py (ours)", pce, list(flat), photo_devices, time.perf_counter() - start)
    if args.reference:
        pce, seconds = reference(args.reference, args.reference_python, flat, natural)
        report("prnu-python", pce, list(flat), photo_devices, seconds)

if __name__ == "__main__":
    main()
