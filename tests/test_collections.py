"""Large evidence sets with test_model.py: nested folders and file lists, resuming a killed run,
several processes through torchrun, decoding ahead of the network."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error, noisy_image, run_script, write_rgb

VARYING = {"seconds", "settings"}  # a record's fields that may differ between two runs of the same images


def make_collection(root: Path, count: int = 12) -> Path:
    """Nested folders of small images, names repeating across folders (IMG_0001.png in each)."""
    for k in range(count):
        folder = root / f"card{k % 3}" / ("DCIM" if k % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        write_rgb(folder / f"IMG_{k // 3:04d}.png", noisy_image(128, 160, 2 + k, seed=k))
    return root


def records(out_dir: Path) -> dict[str, dict]:
    """Every record under out_dir by its output name, without the fields that vary run to run."""
    return {p.relative_to(out_dir).as_posix(): {k: v for k, v in json.loads(p.read_text()).items() if k not in VARYING}
            for p in sorted(out_dir.rglob("*.json"))}


def summary(out_dir: Path) -> list[dict]:
    with (out_dir / "summary.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in VARYING} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_a_recursive_folder_gives_each_image_its_own_record(tmp_path, weights_file):
    images = make_collection(tmp_path / "seized")
    proc = run_script("test_model.py", "--model_path", weights_file, "--pic_path", images, "--recursive",
                      "--figures", "none", "--out_dir", tmp_path / "out", "--quiet")
    assert proc.returncode == 0, proc.stderr
    found = records(tmp_path / "out")
    assert len(found) == 12 and "card0/IMG_0000.json" in found and "card1/DCIM/IMG_0000.json" in found
    assert len({r["file"] for r in found.values()}) == 12 and len(summary(tmp_path / "out")) == 12
    # Without --recursive, a folder's own images only.
    proc = run_script("test_model.py", "--model_path", weights_file, "--pic_path", images / "card1", "--figures",
                      "none", "--out_dir", tmp_path / "top", "--quiet")
    assert proc.returncode == 0 and sorted(records(tmp_path / "top")) == ["IMG_0001.json", "IMG_0003.json"]


@pytest.mark.slow
def test_file_list_reads_the_listed_paths_and_says_when_it_cannot(tmp_path, weights_file):
    images = make_collection(tmp_path / "seized", 6)
    listing = tmp_path / "list.txt"
    listing.write_text("seized/card0/IMG_0000.png\n\n" + str(images / "card1" / "DCIM" / "IMG_0000.png") + "\n")
    proc = run_script("test_model.py", "--model_path", weights_file, "--file_list", listing, "--figures", "none",
                      "--out_dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert sorted(records(tmp_path / "out")) == ["card0/IMG_0000.json", "card1/DCIM/IMG_0000.json"]
    assert_one_line_error(run_script("test_model.py", "--model_path", weights_file, "--file_list",
                                     tmp_path / "nowhere.txt", "--out_dir", tmp_path / "o2"), 2, "nowhere.txt")


@pytest.mark.slow
def test_a_killed_run_resumed_ends_with_the_records_of_an_uninterrupted_one(tmp_path, weights_file):
    images = make_collection(tmp_path / "seized", 24)
    common = ["--model_path", weights_file, "--pic_path", images, "--recursive", "--figures", "all", "--quiet"]
    assert run_script("test_model.py", *common, "--out_dir", tmp_path / "whole").returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "test_model.py", *map(str, common), "--out_dir", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.rglob("*.json"))) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = records(out)  # every record on disk parses: none is half-written
    assert 6 <= len(written) < 24 and not (out / "summary.csv").exists()
    resumed = run_script("test_model.py", *common, "--out_dir", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert len(resumed.stdout.splitlines()) == 24 - len(written) + 1  # the others only, and the closing line
    assert records(out) == records(tmp_path / "whole") and summary(out) == summary(tmp_path / "whole")
    # A record made with other settings is not complete: it is read again.
    again = run_script("test_model.py", *common, "--out_dir", out, "--resume", "--stride", "32")
    assert again.returncode == 0 and len(again.stdout.splitlines()) == 25


@pytest.mark.slow
def test_two_processes_share_the_images_and_write_the_one_summary(tmp_path, weights_file):
    images = make_collection(tmp_path / "seized", 12)
    common = ["--model_path", weights_file, "--pic_path", images, "--recursive", "--figures", "none", "--quiet"]
    one = run_script("test_model.py", *common, "--out_dir", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = run_script("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2, "test_model.py",
                     *common, "--out_dir", tmp_path / "two", "--workers", 1)
    assert two.returncode == 0, two.stderr
    # Each image read once, by one of the two. Both write to one pipe, so a line may land inside
    # the other's: count the readings in the whole text, not line by line.
    read = re.findall(r"(\S+): ISO metric", two.stdout)
    assert len(read) == len(set(read)) == 12, two.stdout
    assert records(tmp_path / "two") == records(tmp_path / "one")
    assert summary(tmp_path / "two") == summary(tmp_path / "one")
