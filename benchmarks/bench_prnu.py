"""PRNU speed on a 12-megapixel image: noise residual and the block correlation map.

    python benchmarks/bench_prnu.py [--megapixels 12] [--block 128] [--stride 64] [--repeat 3]

The image is a render (untimed) of a bundled photo scaled up to the size, by the demo camera with
its PRNU; the fingerprint is that camera's own pattern (the speed does not depend on how well it
was estimated). Timed, each the best of --repeat rounds: the luma residual (db8, 4 levels, Wiener
windows 3-9), the per-channel residual, the correlation map of W against I * K over every block,
the predictor's block features, and the PCE of the whole image.
"""
import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import camera_noise  # noqa: E402
import demos
import prnu  # noqa: E402
import prnu_scenario


def best_of(repeat: int, job) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = job()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=12)
    parser.add_argument("--block", type=int, default=prnu.BLOCK)
    parser.add_argument("--stride", type=int, default=prnu.BLOCK // 2)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each; the best time counts")
    args = parser.parse_args()
    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    camera = camera_noise.load_noise_profiles().select(demos.DEMO_CAMERA)[0]
    clean = prnu_scenario.cover_fit(dict(camera_noise.clean_images())["astronaut"], height, width)
    img = camera_noise.render(clean, camera, 400, np.random.default_rng(0), prnu=True)
    fingerprint = camera_noise.prnu_pattern(camera.name, height, width) - 1
    print(f"image {width}x{height} ({width * height / 1e6:.1f} MP), {args.block}x{args.block} blocks every "
          f"{args.stride} px")

    t_luma, obs = best_of(args.repeat, lambda: prnu.observe(img))
    t_map, rho = best_of(args.repeat, lambda: prnu.block_correlation(
        obs.residual, prnu.expected_prnu(obs, fingerprint), args.block, args.stride))
    t_rgb, _ = best_of(args.repeat, lambda: prnu.observe(img, "rgb"))
    t_features, _ = best_of(args.repeat, lambda: prnu.block_features(obs.intensity, args.block, args.stride))
    t_pce, score = best_of(args.repeat, lambda: prnu.pce(obs.residual, prnu.expected_prnu(obs, fingerprint)))
    rows = [("luma residual (luma + wavelet Wiener denoiser)", t_luma),
            (f"block correlation map, {rho.shape[0]}x{rho.shape[1]} blocks (I*K, 5 integral images)", t_map),
            ("residual + correlation map (the goal: under 10 s)", t_luma + t_map),
            ("per-channel residual (3 denoisings, luma-weighted)", t_rgb),
            ("predictor features of every block", t_features),
            (f"PCE of the whole image (FFT cross-correlation; here {score.value:.0f})", t_pce)]
    for name, seconds in rows:
        print(f"{name:<80} {seconds:7.2f} s")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
