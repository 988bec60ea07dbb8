"""Turn a checkout of real labelled camera files into the paper's layout, split by camera.

    python import_real_photos.py --source CHECKOUT --layout exif --out_dir data/real \
        --source_name drewnoakes/metadata-extractor-images --commit 4beba64 --licence "see its README"
    python import_real_photos.py --source CHECKOUT --layout iso_folders --camera "Canon EOS 600D" \
        --include noiseVal_isoRecognizer --out_dir data/real --test_cameras "Canon EOS 600D"
    python import_real_photos.py --source CHECKOUT --layout sidd --include '/samples_noisy/' --out_dir data/real

Writes OUT/{Train,Test}/<ISO>/<camera>__<file> and OUT/manifest.csv (file, split, ISO, camera,
source, commit, licence, original path); several imports into one OUT add up. A camera's photos
all go to one split: --test_cameras names them, the others are split by a stable hash of the
camera's name (--test_fraction). prepare_data.py --data_path OUT and evaluate.py --data OUT read
the result; evaluate.py reports per camera from the manifest. Exit code: 0 done, 1 files left out
(each named on stderr; the rest are imported), 2 bad arguments or nothing found.
"""
import argparse
import sys
from collections import Counter

import cli
import isonet
import real_photos


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="folder holding the photos (searched recursively)")
    p.add_argument("--layout", required=True, choices=real_photos.REAL_LAYOUTS,
                   help="exif: EXIF ISO and camera; iso_folders: ISO from a folder name (needs --camera); "
                        "sidd: SIDD file names")
    cli.add_out_dir_arg(p, None, "--out", help="photo set to write (created, or added to)")
    p.add_argument("--camera", help="the camera's name (iso_folders), or one name for every photo")
    p.add_argument("--include", help="only files whose path under --source, written /dir/file.jpg, matches this "
                                      "regular expression")
    p.add_argument("--test_cameras", nargs="*", default=[], help="cameras whose photos all go to Test")
    p.add_argument("--test_fraction", type=float, default=0.5,
                   help="share of the other cameras sent to Test, by a hash of their names (default 0.5)")
    p.add_argument("--source_name", default="", help="where the photos come from, for the manifest")
    p.add_argument("--commit", default="", help="the source's commit, for the manifest")
    p.add_argument("--licence", default="", help="the source's licence, for the manifest")
    args = p.parse_args(argv)
    try:
        photos, skipped = real_photos.find_real_photos(args.source, args.layout, args.camera, args.include)
        rows, duplicates = real_photos.import_photos(
            photos, args.out_dir, lambda ph: real_photos.camera_split(ph.camera, args.test_cameras, args.test_fraction),
            args.source_name or args.source, args.commit, args.licence)
    except isonet.ISONetError as e:
        cli.fail(str(e))
    skipped += duplicates
    for path, reason in skipped:
        print(f"left out: {path}: {reason}", file=sys.stderr)
    cameras = Counter((row["split"], row["camera"]) for row in rows)
    for split in ("Train", "Test"):
        names = sorted(c for s, c in cameras if s == split)
        print(f"{split}: {sum(cameras[split, c] for c in names)} photos of {len(names)} camera(s)")
    print(f"{len(rows)} photos into {args.out_dir} ({len(skipped)} left out); "
          f"manifest: {args.out_dir}/{real_photos.MANIFEST}")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
