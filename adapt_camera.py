"""Adapt ISONet to one camera from 10-30 of its photos (EXIF ISO), in one command.

    python adapt_camera.py --photos my_camera/ --out models/my_camera.pth
    python test_model.py --model_path models/my_camera.pth --pic_path new_photo.jpg

ISONet's three fully connected layers have no activation between them, so the network's head is
one affine map of the 800 trunk features of a patch. Adaptation keeps the trunk and replaces that
map, either by the starting model's head followed by a straight-line calibration of its estimates
(two numbers) or by a ridge regression of the whole map on the camera's patches pulled towards
the starting head (every photo weighing the same, whatever its patch count). It takes seconds to
minutes, cannot forget what the trunk learnt, and its leave-one-out figures are honest: each
photo is estimated by a head fitted without it, the method and ridge strength chosen by a
cross-validation of the other photos alone. Where the photos are series of one scene at every ISO
(a folder each), --leave_out folder leaves out the whole series instead, since a scene's other
photos would flatter the figures. The result is a normal ISONet state dict (the affine map written
into fc, fc2 and fc3).

Prints the leave-one-out estimate of every photo and the MAE, beside a constant guess's (each photo
read as the other photos' median ISO), and warns where the adaptation does no better than that
guess (photos of nearly one ISO teach a constant); writes --out (under --method auto the
starting weights, unchanged, when no adaptation reads the held-out photos better than they do).
Exit code: 0 done, 1 some photos could not be used, 2 bad arguments or fewer than --min_photos
usable photos.
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import cli
import dataset
import image_io
import isonet
import reports
from main_train import MEMORY_FORMAT, bare_state_dict, save_atomically

RIDGE_GRID = (0.01, 0.1, 1.0, 10.0)  # relative to the mean feature energy
# Candidates: a straight-line calibration of the starting model's estimates (2 numbers, for few or
# small photos) or a ridge refit of the whole head (800 numbers, for photos with many patches).
METHODS = ("affine", *RIDGE_GRID)
MIN_SLOPE = 0.05  # a calibration must stay increasing: more noise, higher ISO
INNER_FOLDS = 3  # the method of each leave-one-out fit is chosen by this cross-validation of the others
# 3 epochs read the held-out photos of two of three cameras better than 2 (docs/experiments.md).
FINETUNE_EPOCHS = 3
FINETUNE_LR = 3e-4


def photo_patches(path: Path, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `limit` non-overlapping 64x64 patches of a photo, as the map reads them (Nx3x64x64
    uint8, or uint16 from a 16-bit file)."""
    img = dataset.load_image(path, gray=False)
    patches, _ = dataset.cut_patches(img, isonet.PATCH, limit, rng)
    return patches


@isonet.exact_fp32_convolutions()  # the fitted head must see the features the map computes
@torch.no_grad()
def trunk_features(net: isonet.ISONet, patches: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The 800 trunk features of each patch, float64 (N x 800), computed on the network's device."""
    device = next(net.parameters()).device
    out = []
    for start in range(0, len(patches), batch_size):
        x = dataset.to_unit_float(torch.from_numpy(patches[start:start + batch_size]).to(device))
        out.append(net.features(x.contiguous(memory_format=MEMORY_FORMAT)).flatten(1).double().cpu().numpy())
    return np.concatenate(out)


def head_affine(net: isonet.ISONet) -> np.ndarray:
    """fc3(fc2(fc(x))) as one vector (w_1..w_800, bias)."""
    with torch.no_grad():
        w = net.fc3.weight @ net.fc2.weight @ net.fc.weight
        b = net.fc3.weight @ (net.fc2.weight @ net.fc.bias + net.fc2.bias) + net.fc3.bias
    return torch.cat([w.ravel(), b]).double().cpu().numpy()


def with_bias(features: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.ones((len(features), 1))])


@dataclass
class PhotoFit:
    """What a head fit needs of one photo: its patches' mean outer product and mean feature
    vector (so every photo weighs the same), its features and its true ISO metric."""

    gram: np.ndarray
    mean: np.ndarray
    features: np.ndarray
    metric: float

    @classmethod
    def of(cls, features: np.ndarray, metric: float) -> PhotoFit:
        x = with_bias(features)
        return cls(x.T @ x / len(x), x.mean(0), x, metric)


def fit_head(photos: list[PhotoFit], prior: np.ndarray, ridge: float) -> np.ndarray:
    """Affine head minimising the photos' mean patch squared error plus
    ridge * mean feature energy * ||head - prior||^2."""
    gram = sum(p.gram for p in photos)
    moment = sum(p.mean * p.metric for p in photos)
    strength = ridge * np.trace(gram) / len(prior)
    return np.linalg.solve(gram + strength * np.eye(len(prior)), moment + strength * prior)


def photo_estimate(head: np.ndarray, photo: PhotoFit) -> float:
    """The global ISO metric: median of the patch estimates."""
    return float(np.median(photo.features @ head))


def fit_affine(photos: list[PhotoFit], prior: np.ndarray) -> np.ndarray:
    """The prior head followed by the straight line (slope kept positive) that best maps its
    image estimates to the photos' truths: a calibration, written into the head."""
    before = np.array([photo_estimate(prior, p) for p in photos])
    slope, intercept = np.polyfit(before, [p.metric for p in photos], 1) if np.ptp(before) > 0 else (1.0, 0.0)
    slope = max(slope, MIN_SLOPE)
    intercept = np.mean([p.metric for p in photos]) - slope * before.mean()
    head = slope * prior
    head[-1] += intercept
    return head


def fit(photos: list[PhotoFit], prior: np.ndarray, method: str | float) -> np.ndarray:
    """A head by `method`: 'affine' (fit_affine) or a ridge strength (fit_head)."""
    return fit_affine(photos, prior) if method == "affine" else fit_head(photos, prior, method)


def group_folds(groups: np.ndarray, folds: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """(each photo's fold, how many folds there are): whole groups dealt round the folds, in
    sorted order or, with `rng`, shuffled; never more folds than groups."""
    names = np.unique(groups)
    order = np.arange(len(names)) if rng is None else rng.permutation(len(names))
    fold_of = dict(zip(names, order % folds))
    return np.array([fold_of[g] for g in groups]), min(folds, len(names))


def choose_method(photos: list[PhotoFit], prior: np.ndarray, groups: np.ndarray,
                  folds: int = INNER_FOLDS) -> str | float:
    """The METHODS entry with the lowest cross-validated MAE on these photos, a group never split
    between the fitted and the scored photos."""
    fold, count = group_folds(groups, folds)

    def mae(method: str | float) -> float:
        errors = []
        for f in range(count):
            head = fit([p for p, k in zip(photos, fold) if k != f], prior, method)
            errors += [abs(photo_estimate(head, p) - p.metric) for p, k in zip(photos, fold) if k == f]
        return float(np.mean(errors))

    return min(METHODS, key=mae)


def held_out_estimates(photos: list[PhotoFit], prior: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each photo estimated by a head fitted without its group (the photo alone, or its whole
    series), the method chosen without that group too."""
    estimates = np.empty(len(photos))
    for g in np.unique(groups):
        rest = [p for p, k in zip(photos, groups) if k != g]
        head = fit(rest, prior, choose_method(rest, prior, groups[groups != g]))
        for i in np.flatnonzero(groups == g):
            estimates[i] = photo_estimate(head, photos[i])
    return estimates


def finetune(net: isonet.ISONet, patches: list[np.ndarray], metrics: list[float], epochs: int, lr: float,
             seed: int, batch_size: int = 32) -> isonet.ISONet:
    """A copy of `net`, the whole network trained on these photos' patches (MSE to the photo's
    ISO metric, each photo weighing the same, random rotations and flips); the learning rate drops
    10x for the last epoch. For cameras whose noise the trunk does not tell apart (its features
    saturate, so no refit of the head can help). Trained on `net`'s device; the batches are drawn
    on the CPU, so a seed draws the same patches on any device."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(net).train()
    device = next(model.parameters()).device
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    sizes = np.array([len(p) for p in patches])
    weights = np.repeat(1.0 / sizes, sizes) / len(sizes)  # sums to 1
    pool, labels = np.concatenate(patches), np.repeat(np.float32(metrics), sizes)
    steps = max(1, len(pool) // batch_size)
    for epoch in range(epochs):
        for group in optimiser.param_groups:
            group["lr"] = lr / 10 if epoch == epochs - 1 and epochs > 1 else lr
        for _ in range(steps):
            rows = rng.choice(len(pool), batch_size, p=weights)
            x = dataset.augment(pool[rows], int(rng.integers(dataset.AUG_MODES)))
            x = dataset.to_unit_float(torch.from_numpy(np.ascontiguousarray(x)).to(device))
            loss = torch.nn.functional.mse_loss(model(x.contiguous(memory_format=MEMORY_FORMAT)).flatten(),
                                                torch.from_numpy(labels[rows]).to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def photo_estimates(net: isonet.ISONet, patches: list[np.ndarray]) -> np.ndarray:
    """Each photo's global ISO metric from these of its patches (median of the patch estimates)."""
    return np.array([np.median(isonet.predict_patches(net, dataset.to_unit_float(torch.from_numpy(p))))
                     for p in patches])


def finetune_held_out(net: isonet.ISONet, patches: list[np.ndarray], metrics: np.ndarray, groups: np.ndarray,
                      folds: int, epochs: int, lr: float, seed: int) -> np.ndarray:
    """Each photo estimated by a network fine-tuned without its fold (folds of whole groups)."""
    fold, count = group_folds(groups, folds, np.random.default_rng(seed))
    estimates = np.empty(len(patches))
    for f in reports.progress(range(count), desc="fine-tuning, held-out folds"):
        train = np.flatnonzero(fold != f)
        model = finetune(net, [patches[i] for i in train], list(metrics[train]), epochs, lr, seed)
        scored = np.flatnonzero(fold == f)
        estimates[scored] = photo_estimates(model, [patches[i] for i in scored])
    return estimates


def constant_held_out(metrics: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each photo guessed as the median ISO metric of the photos outside its group: what any
    adaptation must beat before its figures say that it reads the ISO, not the photos' usual ISO."""
    return np.array([np.median(metrics[groups != g]) for g in groups])


def adapted_state_dict(net: isonet.ISONet, head: np.ndarray) -> dict:
    """`net`'s weights with its head replaced by the affine map `head`, kept in ISONet's layers:
    fc's first unit carries the map, fc2 and fc3 pass that unit through."""
    state = bare_state_dict(net)
    w = torch.as_tensor(head, dtype=torch.float32)
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.weight"][0] = w[:-1]
    state["fc.bias"] = torch.zeros_like(state["fc.bias"])
    state["fc.bias"][0] = w[-1]
    for layer in ("fc2", "fc3"):
        state[f"{layer}.weight"] = torch.zeros_like(state[f"{layer}.weight"])
        state[f"{layer}.weight"][0, 0] = 1.0
        state[f"{layer}.bias"] = torch.zeros_like(state[f"{layer}.bias"])
    return state


def camera_photos(paths: list[str]) -> list[Path]:
    """The files and folders given, as test_model.py reads them, and within a folder its ISO-named
    subfolders too (DIR/800/, the layout prepare_data.py and import_real_photos.py write)."""
    expanded = []
    for path in map(Path, paths):
        expanded.append(str(path))
        if path.is_dir():
            expanded += [str(d) for d in sorted(path.iterdir()) if d.is_dir() and dataset.iso_of_folder_name(d.name)]
    return image_io.list_images(expanded)


def choose_column(mae: dict[str, float], method: str) -> str:
    """The adaptation with the lowest held-out MAE. Under --method auto the starting model
    ("before", fitted on none of the photos, so its figure is as honest) competes too: on a camera
    the model already reads well, an adaptation to a few photos can read new ones worse."""
    candidates = [name for name in mae if name != "before"] + (["before"] if method == "auto" else [])
    return min(candidates, key=mae.__getitem__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, nargs="+",
                   help="the camera's photos: files and/or folders (with their ISO-named subfolders: DIR/800/); "
                        "the ISO from EXIF, else from an ISO folder name")
    p.add_argument("--out", required=True, help="the adapted model to write (.pth)")
    p.add_argument("--init_from", default=str(isonet.PROJECT / "models" / "net_jpg.pth"),
                   help="starting weights (default: the shipped models/net_jpg.pth)")
    p.add_argument("--patches_per_photo", type=int, default=300, help="random patches read from each photo")
    p.add_argument("--min_photos", type=int, default=5, help="fewest usable photos to adapt from (default 5)")
    p.add_argument("--method", choices=["auto", "head", "finetune"], default="auto",
                   help="head: refit of the head or a calibration (seconds); finetune: the whole network "
                        "(minutes); auto (default): both, keeping the one with the lower held-out MAE, or the "
                        "starting model where neither reads the held-out photos better")
    p.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS,
                   help=f"fine-tuning epochs, the last at lr / 10 (default {FINETUNE_EPOCHS})")
    p.add_argument("--lr", type=float, default=FINETUNE_LR, help=f"fine-tuning learning rate (default {FINETUNE_LR:g})")
    p.add_argument("--folds", type=int, default=5,
                   help="held-out folds of the fine-tuning figures (a network per fold; default 5)")
    p.add_argument("--leave_out", choices=["photo", "folder"], default="photo",
                   help="what each honest fit leaves out: the photo (default), or its whole folder, for "
                        "series that shoot one scene at every ISO (the scene's other photos would flatter it)")
    p.add_argument("--seed", type=int, default=0)
    cli.add_device_arg(p)
    args = p.parse_args(argv)
    for flag, least in {"patches_per_photo": 1, "epochs": 1, "folds": 2}.items():
        if getattr(args, flag) < least:
            cli.fail(f"--{flag} {getattr(args, flag)}: must be at least {least}")
    try:
        net = isonet.load_model(args.init_from, isonet.resolve_device(args.device))
    except isonet.ISONetError as e:
        cli.fail(str(e))
    net = net.to(memory_format=MEMORY_FORMAT).eval()
    rng = np.random.default_rng(args.seed)
    paths, patches, features, metrics, failed = [], [], [], [], 0
    for path in reports.progress(camera_photos(args.photos), desc="reading photos"):
        try:
            cut = photo_patches(path, args.patches_per_photo, rng)  # a missing or bad file says so first
            iso = image_io.read_exif_iso(path) or dataset.iso_of_folder_name(path.parent.name)
            if not iso:
                raise isonet.ISONetError(f"{path}: no EXIF ISO and no ISO folder (e.g. 800/)")
            features.append(trunk_features(net, cut))
        except isonet.ISONetError as e:
            print(f"skipped: {e}", file=sys.stderr)
            failed += 1
            continue
        paths.append(path)
        patches.append(cut)
        metrics.append(float(isonet.iso_to_metric(iso)))
    if len(paths) < max(args.min_photos, 3):
        cli.fail(f"{len(paths)} usable photo(s): adaptation needs at least {max(args.min_photos, 3)}")
    groups = np.array([str(p.parent) for p in paths] if args.leave_out == "folder" else [str(p) for p in paths])
    if len(set(groups)) < 2:
        cli.fail("--leave_out folder: the photos lie in one folder; give each series a folder of its own")
    prior = head_affine(net)
    photos = [PhotoFit.of(f, m) for f, m in zip(features, metrics)]
    metrics = np.array(metrics)
    held_out = "leave-one-out" if args.leave_out == "photo" else "leave-folder-out"
    columns = {"before": np.array([photo_estimate(prior, p) for p in photos])}
    if args.method in ("auto", "head"):
        columns[f"head ({held_out})"] = held_out_estimates(photos, prior, groups)
    if args.method in ("auto", "finetune"):
        folds = held_out if len(set(groups)) <= args.folds else f"{args.folds}-fold"
        columns[f"fine-tune ({folds})"] = finetune_held_out(net, patches, metrics, groups, args.folds, args.epochs,
                                                             args.lr, args.seed)
    mae = {name: float(np.abs(values - metrics).mean()) for name, values in columns.items()}
    constant_mae = float(np.abs(constant_held_out(metrics, groups) - metrics).mean())
    chosen = choose_column(mae, args.method)
    if chosen == "before":
        state = bare_state_dict(net)
        how = "no adaptation read the held-out photos better, so its weights are written unchanged"
    elif chosen.startswith("head"):
        method = choose_method(photos, prior, groups)
        state = adapted_state_dict(net, fit(photos, prior, method))
        how = "calibration" if method == "affine" else f"head refit, ridge {method:g}"
    else:
        state = bare_state_dict(finetune(net, patches, list(metrics), args.epochs, args.lr, args.seed))
        how = f"whole network fine-tuned, {args.epochs} epoch(s) from lr {args.lr:g}"
    save_atomically(state, Path(args.out))
    print(f"{'photo':<40} {'EXIF ISO':>8} " + " ".join(f"{name:>26}" for name in columns))
    for k, (path, truth) in enumerate(zip(paths, metrics)):
        print(f"{path.name[-40:]:<40} {isonet.metric_to_iso(truth):>8.0f} "
              + " ".join(f"{isonet.metric_to_iso(values[k]):>26.0f}" for values in columns.values()))
    low, high = isonet.metric_to_iso(metrics.min()), isonet.metric_to_iso(metrics.max())
    print(f"{len(paths)} photos, ISO {low:.0f}-{high:.0f}: "
          + ", ".join(f"MAE {name} {value:.2f} stops" for name, value in mae.items())
          + f"; a constant guess (the other photos' median ISO) {constant_mae:.2f}")
    if chosen == "before":
        print(f"kept the starting model ({how}); wrote {args.out}")
    else:
        print(f"adapted by {chosen.split(' ')[0]} ({how}); wrote {args.out}")
        if mae[chosen] > mae["before"]:
            print(f"warning: the held-out photos were read better before adapting ({mae['before']:.2f} against "
                  f"{mae[chosen]:.2f} stops); --method auto keeps the starting model in that case")
    if mae[chosen] >= constant_mae:
        print(f"warning: a constant guess reads the held-out photos as well ({constant_mae:.2f} against "
              f"{mae[chosen]:.2f} stops): their ISOs are too alike to show that the model reads the ISO; "
              "add photos taken at other ISOs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
