"""main_train.py end to end on CPU: training, the saved model, resume, DDP over gloo, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, assert_one_line_error, make_labelled_folder, run_script
from isonet import ISONet, load_model, predict_patches
from main_train import init_weights, parse_args

PREPARE, TRAIN = str(ROOT / "prepare_data.py"), str(ROOT / "main_train.py")


@pytest.fixture(scope="module")
def patch_data(tmp_path_factory) -> Path:
    """32 training patches (2 ISOs x 2 images x 4 patches x 2 with one augmented copy), 16 test patches."""
    root = tmp_path_factory.mktemp("train")
    photos = make_labelled_folder(root / "photos", h=128, w=128)
    r = run_script(PREPARE, "--data_path", str(photos), "--save_path", str(root / "data"), "--pic_type", "png",
                   "--stride", "64", "--aug_times", "1")
    assert r.returncode == 0, r.stderr
    return root / "data"


def train(data: Path, out: Path, *extra: str):
    return run_script(TRAIN, "--data_path", str(data), "--out_dir", str(out), "--batch_size", "8",
                      "--milestones", "1", "2", "--seed", "5", *extra)


def test_train_two_epochs_and_load_the_best_model(patch_data, tmp_path):
    out = tmp_path / "models"
    r = train(patch_data, out, "--epochs", "2", "--workers", "2", "--best_model_name", "iso.pth")
    assert r.returncode == 0, r.stderr
    epoch_lines = [l for l in r.stdout.splitlines() if l.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("val MAE" in l for l in epoch_lines)
    assert "lr 1.0e-03" in epoch_lines[0] and "lr 1.0e-04" in epoch_lines[1]  # MultiStepLR milestone 1
    # The best model is a bare state dict that isonet.load_model (and test_model.py) reads.
    state = torch.load(out / "iso.pth", weights_only=True)
    assert set(state) == set(ISONet().state_dict())
    net = load_model(out / "iso.pth")
    pred = predict_patches(net, np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32))
    assert pred.shape == (4,) and np.isfinite(pred).all()
    # ... and test_model.py maps an image with it, as a user would next
    image = make_labelled_folder(tmp_path / "img", isos=(100,), per_iso=1) / "Test" / "100" / "0.png"
    r = run_script("test_model.py", "--model_path", out / "iso.pth", "--pic_path", image, "--out_dir", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    assert "ISO metric" in r.stdout and (tmp_path / "res" / "0.json").exists()
    ckpt = torch.load(out / "checkpoint" / "last.pth", weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["args"]["batch_size"] == 8
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])
    assert list((out / "runs").glob("events.out.tfevents.*"))
    assert not list(out.rglob("*.part*"))


def test_interrupted_and_resumed_run_ends_with_the_same_weights(patch_data, tmp_path):
    straight = train(patch_data, tmp_path / "a", "--epochs", "3", "--workers", "0")
    assert straight.returncode == 0, straight.stderr
    first = train(patch_data, tmp_path / "b", "--epochs", "2", "--workers", "0")
    assert first.returncode == 0, first.stderr
    # Flags that do not define the run may change: more epochs, workers, the output folder, and
    # the data folder spelled another way.
    resumed = train(patch_data / ".." / patch_data.name, tmp_path / "c", "--epochs", "3", "--workers", "1",
                    "--resume_training", str(tmp_path / "b" / "checkpoint" / "last.pth"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout and "epoch 3/3" in resumed.stdout and "epoch 1/3" not in resumed.stdout
    a = torch.load(tmp_path / "a" / "checkpoint" / "last.pth", weights_only=False)
    b = torch.load(tmp_path / "c" / "checkpoint" / "last.pth", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["net"]:
        assert torch.equal(a["net"][key], b["net"][key]), key
    assert a["scheduler"] == b["scheduler"]
    # and the run actually trained: weights moved away from a fresh seeded init
    torch.manual_seed(5)
    fresh = ISONet()
    init_weights(fresh)
    assert not torch.equal(fresh.conv1.weight, a["net"]["conv1.weight"])


def test_resume_refuses_flags_that_change_the_run(patch_data, tmp_path):
    """A resumed run promises the uninterrupted run's weights: another batch size or seed breaks
    that silently, so it is refused, naming the flags (exit 2: bad arguments)."""
    first = train(patch_data, tmp_path / "r", "--epochs", "1", "--workers", "0")
    assert first.returncode == 0, first.stderr
    ckpt = str(tmp_path / "r" / "checkpoint" / "last.pth")
    r = run_script(TRAIN, "--data_path", str(patch_data), "--out_dir", str(tmp_path / "r"), "--batch_size", "16",
                   "--milestones", "1", "2", "--seed", "6", "--epochs", "2", "--resume_training", ckpt)
    assert_one_line_error(r, 2, "last.pth", "--batch_size 8 -> 16", "--seed 5 -> 6")
    assert "--milestones" not in r.stderr and "--epochs" not in r.stderr
    r = train(patch_data, tmp_path / "r", "--epochs", "2", "--lr", "0.01", "--resume_training", ckpt)
    assert_one_line_error(r, 2, "--lr 0.001 -> 0.01")
    r = train(patch_data, tmp_path / "r", "--epochs", "1", "--resume_training", ckpt)
    assert_one_line_error(r, 2, "--epochs 1", "finished epoch 1")
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1  # nothing was trained or written


def test_ddp_two_processes_on_gloo(patch_data, tmp_path):
    out = tmp_path / "ddp"
    r = run_script("-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", TRAIN,
                   "--data_path", str(patch_data), "--out_dir", str(out), "--batch_size", "8", "--epochs", "1",
                   "--workers", "0", "--device", "cpu", timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("training on cpu x2") == 1  # only rank 0 logs
    assert r.stdout.count("epoch 1/1") == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "net.pth", "runs"]
    assert len(list((out / "runs").iterdir())) == 1
    load_model(out / "net.pth")


def test_missing_data_and_bad_checkpoint_are_one_line_errors(patch_data, tmp_path):
    (tmp_path / "empty").mkdir()
    r = train(tmp_path / "empty", tmp_path / "o", "--epochs", "1", "--workers", "0")
    assert_one_line_error(r, 2, "no train patch set")
    bare = tmp_path / "bare.pth"
    torch.save(ISONet().state_dict(), bare)
    r = train(patch_data, tmp_path / "o", "--epochs", "1", "--workers", "0", "--resume_training", str(bare))
    assert_one_line_error(r, 2, "bare.pth")
    assert not (tmp_path / "o" / "net.pth").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--batch_size", "0"], "must be positive"),
    (["--init_from", "a.pth", "--resume_training", "b.pth"], "pass one of them"),
])
def test_bad_flags_are_one_line_errors(args, fragment):
    assert_one_line_error(run_script(TRAIN, *args), 2, fragment)


def test_paper_defaults_and_init():
    args = parse_args([])
    assert (args.lr, args.milestones, args.epochs, args.batch_size) == (1e-3, [10, 30], 50, 128)
    assert (args.best_model_name, args.save_every_epochs, args.out_dir) == ("net.pth", 1, "models")
    assert parse_args(["--cuda", "False"]).device == "cpu" and parse_args(["--cuda"]).device == "cuda"
    net = ISONet()
    init_weights(net)
    assert all((m.bias == 0).all() for m in (net.fc, net.fc2, net.fc3, net.conv1))
    std = net.conv2.weight.std().item()  # Kaiming normal: sqrt(2 / fan_in), fan_in = 32*3*3
    assert abs(std - (2 / 288) ** 0.5) < 0.1 * std


def test_init_from_starts_at_the_given_weights(patch_data, tmp_path, weights_file):
    # With lr 0 the optimiser cannot move: the saved model must be exactly the starting weights.
    r = train(patch_data, tmp_path / "ft", "--epochs", "1", "--workers", "0", "--lr", "0",
              "--init_from", str(weights_file))
    assert r.returncode == 0, r.stderr
    saved, start = torch.load(tmp_path / "ft" / "net.pth"), torch.load(weights_file)
    assert all(torch.equal(saved[k], start[k]) for k in start)
    bad = train(patch_data, tmp_path / "x", "--epochs", "1", "--init_from", str(tmp_path / "none.pth"))
    assert_one_line_error(bad, 2, "none.pth: no such model file")
