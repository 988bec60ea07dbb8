"""The paper's Fig. 4 scenario: the local ISO map of a spliced, uncompressed image.

A region pasted from a photo taken at another ISO stands out in the map. Writes the image and its
ISO map side by side to <out_dir>/Fig4.png.

    python Fig4.py --model_path models/net_tif.pth --pic_path spliced.tif
"""
import argparse
import sys
from pathlib import Path

import isonet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    isonet.add_inference_args(parser, "models/net_tif.pth", "the (uncompressed) image to map")
    args = parser.parse_args()
    path, img, result, record = isonet.map_one_image(args)
    out = Path(args.out_dir) / "Fig4.png"
    isonet.save_map_figure(img, result, out, title=f"{path.name} ({args.model_path})", side_by_side=True)
    print(f"{path}: {record['rows']}x{record['cols']} patch map, ISO metric from {result.map.min():.2f} "
          f"to {result.map.max():.2f}, median {result.global_metric:.3f}; figure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
