"""Whole processes, start-up to exit: test_model.py against the published procedure.

    python benchmarks/bench_whole_run.py [--megapixels 12] [--photos 100] [--photo_megapixels 2]

Case 1: one JPEG of --megapixels. Case 2: a folder of --photos JPEGs of --photo_megapixels. Each
case runs, as separate processes started from the shell as a user would:
- the published procedure: Python starts, imports torch, loads the weights, then for each image
  reads it, evaluates one 64x64 patch per forward pass (benchmarks/bench_inference.py's
  published_loop) and prints the median; no figures;
- test_model.py with its figures (map and scatter per image) and with --figures none, each in the
  default fp32 (the published maps to 1e-4) and with --precision bf16.
Each configuration runs --repeat times, alternating, and keeps its best wall time (this machine's
speed drifts under load). The shipped net_jpg.pth is used throughout.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_large import ROOT, run_measured, write_test_image  # noqa: E402

MODEL = ROOT / "models" / "net_jpg.pth"
PUBLISHED = """
import sys, cv2, numpy as np, torch
sys.path[:0] = [{root!r}, {bench!r}]
import isonet
from bench_inference import published_loop
torch.set_grad_enabled(False)
net = isonet.ISONet()
net.load_state_dict(torch.load({model!r}, map_location="cpu"))
net.eval()
for path in sys.argv[1:]:
    img = cv2.imread(path)[:, :, ::-1].astype(np.float32) / 255
    print(path, float(np.median(published_loop(net, img))))
"""


def commands(images: list[Path], out_dir: Path) -> dict[str, list[str]]:
    code = PUBLISHED.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), model=str(MODEL))
    ours = [sys.executable, "test_model.py", "--model_path", str(MODEL), "--out_dir", str(out_dir),
            "--pic_path", str(images[0] if len(images) == 1 else images[0].parent)]
    bf16 = ours + ["--precision", "bf16"]
    return {"published procedure": [sys.executable, "-c", code, *map(str, images)],
            "test_model.py, figures": ours,
            "test_model.py, --figures none": ours + ["--figures", "none"],
            "--precision bf16, figures": bf16,
            "--precision bf16, --figures none": bf16 + ["--figures", "none"]}


def bench(label: str, images: list[Path], out_dir: Path, repeat: int) -> None:
    cmds = commands(images, out_dir)
    best = {name: float("inf") for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            wall, _, code = run_measured(cmd)
            if code:
                raise SystemExit(f"{name} failed with exit {code}")
            best[name] = min(best[name], wall)
    base = best["published procedure"]
    print(label)
    for name, wall in best.items():
        print(f"  {name:32} {wall:7.1f} s  {base / wall:4.1f}x the published procedure")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=12)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--photo_megapixels", type=float, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/isonet_bench_whole_run")
    args = parser.parse_args()
    work = Path(args.workdir)
    big = work / "one" / f"photo_{args.megapixels:g}mp.jpg"
    folder = work / "folder"
    big.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    if not big.exists():
        write_test_image(big, args.megapixels)
    photos = [folder / f"photo_{k:03d}.jpg" for k in range(args.photos)]
    for k, photo in enumerate(photos):
        if not photo.exists():
            write_test_image(photo, args.photo_megapixels, seed=k)
    bench(f"one {args.megapixels:g} MP JPEG", [big], work / "out_one", args.repeat)
    if photos:  # --photos 0: the one image only
        bench(f"{args.photos} JPEGs of {args.photo_megapixels:g} MP", photos, work / "out_folder", args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
