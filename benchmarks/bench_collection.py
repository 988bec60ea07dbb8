"""A collection of photos through test_model.py: decoding ahead, several processes, resuming.

    python benchmarks/bench_collection.py [--photos 100] [--photo_megapixels 2] [--repeat 2]

Whole processes, started as from a shell, each writing its records and summary.csv without
figures (--figures none), on --photos JPEGs of --photo_megapixels with the shipped net_jpg.pth:
- one process, as a plain run (the baseline);
- one process with --workers 1 and 2 (decoding the next images while the network reads);
- torchrun --nproc_per_node 2 (the images dealt between two processes, each with half the cores);
- --resume after a complete run (every record found complete: nothing read again).
Each runs --repeat times, alternating, keeping its best wall time (this machine's speed drifts
under load). Before a figure prints, every run's records are checked equal to the baseline's (floats
to 1e-6, or one unit of a map's sixth decimal: two processes with half the threads each sum in
another order, which moves the last digits), and --resume is checked to have rewritten no record.
"""
import argparse
import json
import math
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_large import ROOT, run_measured, write_test_image  # noqa: E402

MODEL = ROOT / "models" / "net_jpg.pth"


def commands(folder: Path, out: Path) -> dict[str, list[str]]:
    run = ["test_model.py", "--model_path", str(MODEL), "--pic_path", str(folder), "--figures", "none", "--quiet"]
    return {"one process": [sys.executable, *run, "--out_dir", str(out / "one")],
            "--workers 1": [sys.executable, *run, "--out_dir", str(out / "workers1"), "--workers", "1"],
            "--workers 2": [sys.executable, *run, "--out_dir", str(out / "workers2"), "--workers", "2"],
            "torchrun, 2 processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2", *run, "--out_dir", str(out / "torchrun")],
            "--resume after a complete run": [sys.executable, *run, "--out_dir", str(out / "one"), "--resume"]}


def records(out_dir: Path) -> dict[str, dict]:
    """Every record by file name, without the fields that vary from run to run."""
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in ("seconds", "settings")}
            for p in out_dir.glob("*.json")}


def same(a, b, rel: float = 1e-6) -> bool:
    """Equal records, floats within rel of each other or one unit of the sixth decimal the maps are saved to."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=rel, abs_tol=1.5e-6)
    return a == b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--photo_megapixels", type=float, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/isonet_bench_collection")
    args = parser.parse_args()
    work = Path(args.workdir)
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(args.photos):
        if not (folder / f"photo_{k:03d}.jpg").exists():
            write_test_image(folder / f"photo_{k:03d}.jpg", args.photo_megapixels, seed=k)
    cmds = commands(folder, work / "out")
    best = {name: float("inf") for name in cmds}
    for _ in range(args.repeat):
        for name, cmd in cmds.items():
            out_dir = Path(cmd[cmd.index("--out_dir") + 1])
            if "--resume" not in cmd:
                shutil.rmtree(out_dir, ignore_errors=True)
            written = {p: p.stat().st_mtime_ns for p in out_dir.glob("*.json")}
            wall, _, code = run_measured(cmd)
            if code:
                raise SystemExit(f"{name} failed with exit {code}")
            if "--resume" in cmd and any(p.stat().st_mtime_ns != t for p, t in written.items()):
                raise SystemExit(f"{name}: records were written again")
            best[name] = min(best[name], wall)
    baseline = records(work / "out" / "one")
    for name in ("workers1", "workers2", "torchrun"):
        if not same(records(work / "out" / name), baseline):
            raise SystemExit(f"{name}: other records than one process's")
    print(f"{args.photos} JPEGs of {args.photo_megapixels:g} MP, --figures none, best of {args.repeat}")
    for name, wall in best.items():
        print(f"  {name:32} {wall:7.1f} s  {args.photos / wall:6.1f} images/s  "
              f"{best['one process'] / wall:4.2f}x one process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
