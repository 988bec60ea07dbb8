"""The paper's Fig. 7 scenario: the global ISO metric of a JPEG image (median of its patch map).

The global estimate picks the PRNU correlation predictor for tampering localisation. Prints the
global ISO metric and writes the map figure to <out_dir>/Fig7.png.

    python Fig7.py --model_path models/net_jpg.pth --pic_path photo.jpg
    python Fig7.py              # embedded demo: a camera JPEG (quality 90) rendered at ISO 800
"""
import argparse
import sys
from pathlib import Path

import camera_noise
import isonet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    isonet.add_inference_args(parser, "models/net_jpg.pth", "the (JPEG) image to estimate")
    args = parser.parse_args()
    net = isonet.setup_inference(args)
    demo = isonet.demo_if_no_pic(args, lambda out: camera_noise.write_demo(out, 800, jpeg_quality=90))
    path, img, result, record = isonet.map_one_image(args, net)
    out = Path(args.out_dir) / "Fig7.png"
    isonet.save_map_figure(img, result, out, title=f"{path.name} ({args.model_path})")
    print(f"Estimated ISO metric: {result.global_metric:.3f} (ISO {result.global_iso:.0f}, "
          f"nearest full stop {record['nearest_iso']}, IQR {result.iqr:.2f} stops)")
    if record["exif_iso"] is not None:
        print(f"EXIF ISO: {record['exif_iso']} (metric {isonet.iso_to_metric(record['exif_iso']):.3f})")
    if demo is not None:
        print(isonet.describe_truth(demo, result.global_metric))
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
