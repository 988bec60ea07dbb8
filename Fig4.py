"""The paper's Fig. 4 scenario: the local ISO map of a spliced, uncompressed image.

A region pasted from a photo taken at another ISO stands out in the map. Writes the image and its
ISO map side by side to <out_dir>/Fig4.png, and the splice scores of each patch to
<out_dir>/Fig4_splice.png: its distance from the image's median in ISONet's map, in the classical
noise sigma's, and both added (on real photos the sum localises best; docs/experiments.md, "Splices of real photos").

    python Fig4.py --pic_path spliced.tif    # or a JPEG: without --model_path, read by the shipped model of its kind
    python Fig4.py              # embedded demo: ISO 200 scene, a region spliced in from ISO 3200
"""
import argparse
import sys
from pathlib import Path

import cli
import demos
import metrics
import reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_inference_args(parser, None, "the image to map")
    args = parser.parse_args()
    cli.keep_freed_memory()
    by_kind = cli.model_for_the_one_image(args, "uncompressed")  # the demo splice is a PNG
    net = cli.setup_inference(args)
    readers = cli.setup_readers(args, net)
    demo = cli.demo_if_no_pic(args, lambda out: demos.write_demo(out, 200, region_iso=3200))
    path, img, result, record = cli.map_one_image(args, readers)
    out = Path(args.out_dir) / "Fig4.png"
    outline = None if demo is None else demo.mask
    reports.save_map_figure(img, result, out, title=f"{path.name} ({reports.model_label(args.model_path)})",
                            side_by_side=True, outline=outline)
    print(f"{path}: {record['rows']}x{record['cols']} patch map"
          f"{cli.chosen_model_text(record, args.model_path, by_kind)}, ISO metric from {result.map.min():.2f} "
          f"to {result.map.max():.2f}, global {result.global_metric:.3f}{reports.interval_text(record)}; "
          f"figure: {out}")
    scores = metrics.splice_score_maps(result.map, img, result.stride)
    splice_out = Path(args.out_dir) / "Fig4_splice.png"
    reports.save_splice_scores_figure(img, scores, result.stride, splice_out, outline=outline,
                                      title=f"{path.name}: splice scores ({reports.model_label(args.model_path)})")
    print(f"splice scores (each map's distance from its median; ISONet's, the noise sigma's, both added): {splice_out}")
    if demo is not None:
        for name, score in scores.items():
            quality = metrics.splice_quality(score, result.stride, demo.mask)
            print(f"splice detection by {name} against the true region: pixel AUC {quality['auc']:.3f}, "
                  f"best F1 {quality['f1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
