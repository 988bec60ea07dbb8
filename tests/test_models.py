"""The shipped models: authors' format, and close to the truth on renders they never trained on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import camera_noise as cn
import isonet
from conftest import ROOT, run_script

MODELS = ROOT / "models"
HELD_OUT = ("chelsea", "gravel")  # the Test-split sources: see camera_noise.split_train_test


@pytest.fixture(scope="module")
def demo_camera() -> cn.CameraNoise:
    return cn.load_noise_profiles().select(cn.DEMO_CAMERA)[0]


@pytest.fixture(scope="module")
def held_out() -> dict[str, np.ndarray]:
    clean = dict(cn.clean_images())
    assert {name for name, _ in cn.split_train_test(list(clean.items()))[1]} == set(HELD_OUT)
    return {name: clean[name] for name in HELD_OUT}


@pytest.mark.parametrize("name", ["net_tif.pth", "net_jpg.pth"])
def test_shipped_models_are_bare_state_dicts_in_the_authors_format(name):
    state = torch.load(MODELS / name, map_location="cpu", weights_only=True)
    reference = isonet.ISONet().state_dict()
    assert list(state) == list(reference)
    assert all(state[k].shape == reference[k].shape and state[k].dtype == torch.float32 for k in state)


@pytest.mark.parametrize("name,jpeg_quality,tolerance", [("net_tif.pth", None, 0.5), ("net_jpg.pth", 90, 0.75)])
def test_shipped_models_read_held_out_renders(name, jpeg_quality, tolerance, demo_camera, held_out):
    """Image-level estimates (median of the map) of held-out photos across the whole ISO range."""
    net = isonet.load_model(MODELS / name, torch.device("cpu"))
    rng = np.random.default_rng(11)
    errors = {}
    for source, clean in held_out.items():
        for iso in (100, 400, 1600, 6400):
            img = cn.render(clean, demo_camera, iso, rng, jpeg_quality).astype(np.float32) / 255.0
            errors[source, iso] = isonet.iso_map(net, img).global_metric - isonet.iso_to_metric(iso)
    print(f"\n{name}: errors in stops {errors}")
    assert max(abs(e) for e in errors.values()) <= tolerance, errors


def test_readme_first_command_estimates_the_demo(tmp_path):
    """`python test_model.py` with no arguments: the shipped net_tif.pth on the embedded ISO 1600 demo."""
    proc = run_script("test_model.py", "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "truth: ISO 1600" in proc.stdout
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("demo_*.json")]
    assert abs(record["global_iso_metric"] - isonet.iso_to_metric(1600)) <= 0.5, record["global_iso_metric"]
