"""Profile one camera, or adapt ISONet to it, from 10-30 of its photos (EXIF ISO), in one command.

    python adapt_camera.py --photos my_camera/ --out profiles/my_camera     # a camera profile
    python test_model.py --profile profiles/my_camera --pic_path new_photo.jpg
    python adapt_camera.py --photos my_camera/ --out models/my_camera.pth   # the adapted model alone
    python test_model.py --model_path models/my_camera.pth --pic_path new_photo.jpg

A camera profile (camera_profile.py: --out names a folder) holds the reader that read the photos
best when each was left out, among the adapted ISONet below, a line through a classical noise
statistic and both; its held-out residuals, from which every reading's 80% interval comes; the
camera's make and model; and its PRNU fingerprint and correlation predictors (Fig7.py --profile).

ISONet's three fully connected layers have no activation between them, so the network's head is
one affine map of the 800 trunk features of a patch. Adaptation keeps the trunk and replaces that
map, either by the starting model's head followed by a straight-line calibration of its estimates
(two numbers) or by a ridge regression of the whole map on the camera's patches pulled towards
the starting head (every photo weighing the same, whatever its patch count). It takes seconds to
minutes, cannot forget what the trunk learnt, and its leave-one-out figures are honest: each
photo is estimated by a head fitted without it, the method and ridge strength chosen by a
cross-validation of the other photos alone. Where the photos are series of one scene at every ISO
(a folder each), --leave_out folder leaves out the whole series instead, since a scene's other
photos would flatter the figures. The adapted model is a normal ISONet state dict (the affine map
written into fc, fc2 and fc3).

Prints the leave-one-out estimate of every photo and the MAE, beside a constant guess's (each photo
read as the other photos' median ISO), and warns where the adaptation does no better than that
guess (photos of nearly one ISO teach a constant); writes --out (under --method auto the
starting weights, unchanged, when no adaptation reads the held-out photos better than they do),
and for a profile its readers' held-out figures and its interval.
Exit code: 0 done, 1 some photos could not be used, 2 bad arguments or fewer than --min_photos
usable photos.
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

import camera_profile
import cli
import dataset
import image_io
import isonet
import metrics
import prnu
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
# Under --method auto, a cheaper reader this close to the held-out truth (a sixth of a stop, half the
# step between EXIF ISOs) leaves the fine-tuning's many minutes nothing worth gaining.
FINETUNE_NEEDLESS_BELOW = 1 / 6
# Held-out MAEs this close count as equal: one leave-one-out figure is known to about this much
# (docs/experiments.md), and a float's last bits must not pass a constant's 1.00 for 0.99999.
MAE_TIE = 0.05
MODEL_SUFFIXES = (".pth", ".pt")  # an --out so named is the adapted model alone; any other, a profile folder


def photo_patches(img: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `limit` non-overlapping 64x64 patches of a decoded photo, as the map reads them
    (Nx3x64x64 uint8, or uint16 from a 16-bit file)."""
    patches, _ = dataset.cut_patches(img, isonet.PATCH, limit, rng)
    return patches


@isonet.exact_fp32_convolutions()  # the fitted head must see the features the map computes
@torch.no_grad()
def trunk_features(net: isonet.ISONet, patches: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """The 800 trunk features of each patch, float64 (N x 800), computed on the network's device in
    the map's batches (isonet.default_batch_size: larger ones spill the CPU's caches)."""
    device = next(net.parameters()).device
    batch_size = batch_size or isonet.default_batch_size(device)
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
    return scipy.linalg.solve(gram + strength * np.eye(len(prior)), moment + strength * prior, assume_a="pos")


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
    between the fitted and the scored photos; the calibration, which has the fewest parameters,
    where the photos are of one group and nothing can be held out to choose."""
    fold, count = group_folds(groups, folds)
    if count < 2:
        return "affine"

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
             seed: int, batch_size: int = 32, precision: str = "fp32") -> isonet.ISONet:
    """A copy of `net`, the whole network trained on these photos' patches (MSE to the photo's
    ISO metric, each photo weighing the same, random rotations and flips); the learning rate drops
    10x for the last epoch. For cameras whose noise the trunk does not tell apart (its features
    saturate, so no refit of the head can help). Trained on `net`'s device; the batches are drawn
    on the CPU, so a seed draws the same patches on any device. `precision` (a key of
    isonet.PRECISIONS) other than fp32 computes the passes in its type (autocast; the weights and
    the optimiser stay fp32)."""
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
            with isonet.autocast_to(precision, device):
                out = model(x.contiguous(memory_format=MEMORY_FORMAT)).flatten().float()
            loss = torch.nn.functional.mse_loss(out, torch.from_numpy(labels[rows]).to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def photo_estimates(net: isonet.ISONet, patches: list[np.ndarray]) -> np.ndarray:
    """Each photo's global ISO metric from these of its patches (median of the patch estimates)."""
    return np.array([np.median(isonet.predict_patches(net, dataset.to_unit_float(torch.from_numpy(p))))
                     for p in patches])


def finetune_held_out(net: isonet.ISONet, patches: list[np.ndarray], metrics: np.ndarray, groups: np.ndarray,
                      folds: int, epochs: int, lr: float, seed: int, precision: str = "fp32") -> np.ndarray:
    """Each photo estimated by a network fine-tuned without its fold (folds of whole groups)."""
    fold, count = group_folds(groups, folds, np.random.default_rng(seed))
    estimates = np.empty(len(patches))
    for f in reports.progress(range(count), desc="fine-tuning, held-out folds"):
        train = np.flatnonzero(fold != f)
        model = finetune(net, [patches[i] for i in train], list(metrics[train]), epochs, lr, seed,
                         precision=precision)
        scored = np.flatnonzero(fold == f)
        estimates[scored] = photo_estimates(model, [patches[i] for i in scored])
    return estimates


def constant_held_out(metrics: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each photo guessed as the median ISO metric of the photos outside its group: what any
    adaptation must beat before its figures say that it reads the ISO, not the photos' usual ISO."""
    return np.array([np.median(metrics[groups != g]) for g in groups])


def no_better_than_constant(best_mae: float, constant_mae: float) -> bool:
    """Whether the best reader's held-out MAE fails to beat a constant guess's by more than MAE_TIE:
    then the figures do not show that it reads the ISO."""
    return best_mae > constant_mae - MAE_TIE


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


def finetune_needless(columns: dict[str, np.ndarray], truths: np.ndarray, photos: list[Photo],
                      groups: np.ndarray) -> str:
    """Why --method auto may skip fine-tuning ('' where it may not): the head, or for a profile the
    line through the noise statistic, already reads the held-out photos to FINETUNE_NEEDLESS_BELOW."""
    held_out = {name.split(" ")[0]: values for name, values in columns.items() if name != "before"}
    if all(p.statistic is not None for p in photos):
        statistics = np.array([p.statistic for p in photos])
        held_out["noise statistic's line"] = np.clip(held_out_fit(statistics[:, None], truths, groups),
                                                     *profile_clamp(truths))  # profile_readers' "statistic"
    mae = {name: float(np.abs(values - truths).mean()) for name, values in held_out.items()}
    best = min(mae, key=mae.get)
    if mae[best] >= FINETUNE_NEEDLESS_BELOW:
        return ""
    return (f"the {best} reads the held-out photos to {mae[best]:.2f} stop, under {FINETUNE_NEEDLESS_BELOW:.2f} "
            "(--method finetune fine-tunes all the same)")


def choose_column(mae: dict[str, float], method: str) -> str:
    """The adaptation with the lowest held-out MAE. Under --method auto the starting model
    ("before", fitted on none of the photos, so its figure is as honest) competes too: on a camera
    the model already reads well, an adaptation to a few photos can read new ones worse."""
    candidates = [name for name in mae if name != "before"] + (["before"] if method == "auto" else [])
    return min(candidates, key=mae.__getitem__)


@dataclass
class Photo:
    """One of the camera's photos, as adaptation and a profile use it."""

    path: Path
    metric: float  # its true ISO metric
    patches: np.ndarray
    features: np.ndarray  # the starting network's trunk features of the patches
    exif_iso: int | None
    camera: str | None  # EXIF make and model
    statistic: float | None = None  # camera_profile.noise_statistic, for a profile
    observation: prnu.Observation | None = None  # its PRNU view in the sensor's order, for a profile


def read_photo(path: Path, net: isonet.ISONet, limit: int, rng: np.random.Generator, profile: bool) -> Photo:
    """Decode `path` once (in the sensor's order for a profile: its PRNU needs it, and noise does not
    care) and take from it what adaptation needs, and a profile's noise statistic and PRNU view;
    ISONetError naming the file when it is unreadable or has no ISO."""
    img = image_io.decode_image_file(path, sensor_order=profile)
    exif_iso = image_io.read_exif_iso(path)
    iso = exif_iso or dataset.iso_of_folder_name(path.parent.name)
    if not iso:
        raise isonet.ISONetError(f"{path}: no EXIF ISO and no ISO folder (e.g. 800/)")
    patches = photo_patches(img, limit, rng)
    photo = Photo(path, float(isonet.iso_to_metric(iso)), patches, trunk_features(net, patches), exif_iso,
                  image_io.read_exif_camera(path)[0])
    if profile:
        photo.observation = prnu.observe(img)
        photo.statistic = camera_profile.luma_noise_statistic(photo.observation.intensity)
    return photo


def held_out_fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each photo's value of the least-squares line (plane) of y on the columns of x, fitted without
    its group."""
    design = np.column_stack([np.ones(len(y)), x])
    estimates = np.empty(len(y))
    for g in np.unique(groups):
        inside = groups == g
        coef = np.linalg.lstsq(design[~inside], y[~inside], rcond=None)[0]
        estimates[inside] = design[inside] @ coef
    return estimates


def profile_clamp(truths: np.ndarray) -> tuple[float, float]:
    """The range a profile holds its readings in: a stop beyond the photos' ISOs."""
    return float(truths.min() - camera_profile.CLAMP_STOPS), float(truths.max() + camera_profile.CLAMP_STOPS)


def profile_readers(truths: np.ndarray, network: np.ndarray, statistics: np.ndarray, groups: np.ndarray,
                    clamp: tuple[float, float]) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """For each reader a profile may hold (camera_profile.READERS): each photo's estimate by that
    reader fitted without its group, held in `clamp`, and its coefficients fitted on every photo.
    `network` holds the adapted network's held-out estimates: what it reads of a photo it never saw."""
    inputs = {"statistic": statistics[:, None], "combined": np.column_stack([network, statistics])}
    out = {"network": (np.clip(network, *clamp), ())}
    for kind, x in inputs.items():
        coef = np.linalg.lstsq(np.column_stack([np.ones(len(truths)), x]), truths, rcond=None)[0]
        out[kind] = (np.clip(held_out_fit(x, truths, groups), *clamp), tuple(float(c) for c in coef))
    return out


def profile_prnu(photos: list[Photo], readings: np.ndarray, block: int,
                 stride: int) -> tuple[prnu.CameraPrnu | None, list[Photo], str]:
    """The camera's PRNU from the photos of its sensor's size (the size most of them have, either way
    round; each photo's reading is the profile reader's held-out one, what a probe's will be like),
    the photos it used, and a note where it could not be built."""
    sizes = [tuple(sorted(p.observation.shape)) for p in photos]
    size = max(set(sizes), key=sizes.count)
    chosen = [(p, r) for p, r, s in zip(photos, readings, sizes) if s == size]
    for photo in (p for p, s in zip(photos, sizes) if s != size):
        height, width = photo.observation.shape
        print(f"left out of the fingerprint: {photo.path}: {width}x{height}, most photos {size[1]}x{size[0]} "
              "(either way round)", file=sys.stderr)
    images = [prnu.CameraImage(p.path, p.observation, p.exif_iso, float(r)) for p, r in chosen]
    images, misaligned = prnu.align_camera_images(images)
    for line in misaligned:
        print(f"left out of the fingerprint: {line}", file=sys.stderr)
    if len(images) < 2:
        return None, [], f"fewer than two photos of one size ({size[1]}x{size[0]})"
    used = {image.path for image in images}
    camera = prnu.camera_prnu(images, block, stride)
    warning = strangers_warning([images[k].path for k in camera.strangers()], len(images), camera.one_scene)
    if warning:
        print(warning, file=sys.stderr)
    return camera, [p for p, _ in chosen if p.path in used], ""


def strangers_warning(strangers: list[Path], photos: int, one_scene: bool) -> str:
    """The warning for the fingerprint photos that match the others' fingerprint at PCE_THRESHOLD or
    less ('' where none does): a few of them are likely another unit's photos; most of them, a
    fingerprint too weak to show the sensor (high ISOs, few photos of each scene)."""
    if not strangers:
        return ""
    head = (f"warning: {len(strangers)} of the {photos} fingerprint photos match "
            f"{'the others' if one_scene else 'the other scenes'}' fingerprint at PCE {prnu.PCE_THRESHOLD:g} or less")
    if 2 * len(strangers) > photos:
        return (f"{head}: the fingerprint is weak (high ISOs, few photos of each scene, dark or textured scenes, "
                "or photos of several units of this model), so its PCE and forgery map tell little; add one unit's "
                "photos of other scenes at low ISO")
    return (f"{head} (first {strangers[0]}): photos of another unit of this model, or too dark or textured to "
            "show it; profile one unit's photos")


def profile_camera(photos: list[Photo], given: str | None) -> str:
    """The profile's camera: `given` (--camera), else the make and model most of the photos' EXIF
    names, however spelt (warning where they name several); exit with one line where none names any."""
    named = Counter(image_io.one_spelling([p.camera for p in photos if p.camera]))
    if given:
        return given
    if not named:
        cli.fail("the photos name no camera in their EXIF: give the profile's camera with --camera")
    (camera, count), *others = named.most_common()
    if others:
        print(f"warning: the photos name {len(named)} cameras; the profile is of {camera} ({count} photos); "
              "--camera names it otherwise", file=sys.stderr)
    return camera


def build_profile(args: argparse.Namespace, camera: str, photos: list[Photo], groups: np.ndarray,
                  network_estimates: np.ndarray, network_state: Callable[[], dict], network_name: str,
                  mae: dict[str, float], constant_mae: float) -> dict:
    """Choose the profile's reader by the photos' held-out errors, fit its interval on them, build
    the camera's PRNU, and write the profile folder (camera_profile.save_profile); returns its summary."""
    truths = np.array([p.metric for p in photos])
    clamp = profile_clamp(truths)
    candidates = profile_readers(truths, network_estimates, np.array([p.statistic for p in photos]), groups, clamp)
    reader_mae = {kind: float(np.abs(estimates - truths).mean()) for kind, (estimates, _) in candidates.items()}
    kind = min(reader_mae, key=reader_mae.get)  # the network wins a tie: listed first
    estimates, coefficients = candidates[kind]
    residuals = truths - estimates
    camera_prnu, fingerprint_photos, note = profile_prnu(photos, estimates, args.block, args.block_stride)
    summary = {
        "camera": camera,
        "photos": [{"file": str(p.path), "sha256": image_io.file_sha256(p.path), "exif_iso": p.exif_iso,
                    "metric": p.metric, "camera": p.camera} for p in photos],
        "iso_range": [float(isonet.metric_to_iso(truths.min())), float(isonet.metric_to_iso(truths.max()))],
        "reader": {"kind": kind, "coefficients": list(coefficients), "clamp": list(clamp),
                   "network": network_name if kind != "statistic" else None},
        "held_out": {"leave_out": args.leave_out, "estimates": estimates.tolist(), "truths": truths.tolist(),
                     "residuals": residuals.tolist()},
        "mae": {"readers": reader_mae, "network candidates": mae, "constant guess": constant_mae},
        "interval_level": metrics.INTERVAL_LEVEL,
        "interval_offsets": list(metrics.conformal_offsets(residuals)),
        # Each photo judged by the interval the others' residuals give (each photo a group of its own).
        "interval_held_out_coverage": metrics.leave_camera_out_coverage(
            estimates, residuals, [str(p.path) for p in photos], ())["coverage"],
        "prnu": None if camera_prnu is None else {
            "photos": [str(p.path) for p in fingerprint_photos], "channels": "luma",
            "pce_against_the_others": [round(float(v), 1) for v in camera_prnu.matches],
            "one_scene": camera_prnu.one_scene,
            "height": int(camera_prnu.fingerprint.shape[0]), "width": int(camera_prnu.fingerprint.shape[1])},
        "prnu_note": note,
        "init_from": str(args.init_from),
    }
    camera_profile.save_profile(args.out, summary, network_state() if kind != "statistic" else None, camera_prnu)
    return summary


def profile_lines(summary: dict) -> list[str]:
    mae, kind = summary["mae"]["readers"], summary["reader"]["kind"]
    low, high = summary["interval_offsets"]
    fingerprint = summary["prnu"]
    return ["profile readers, MAE on held-out photos: " + ", ".join(f"{k} {v:.2f}" for k, v in mae.items())
            + f" stops; chose {kind}",
            f"{summary['interval_level']:.0%} interval: reading {low:+.2f} to {high:+.2f} stops; it covers "
            f"{summary['interval_held_out_coverage']:.0%} of the photos, each judged by the others' residuals",
            "PRNU fingerprint: " + (f"{len(fingerprint['photos'])} photos of {fingerprint['width']}x"
                                    f"{fingerprint['height']}, each matching the other scenes' at PCE "
                                    f"{min(fingerprint['pce_against_the_others']):.0f} or more"
                                    + (f"; warning: {prnu.ONE_SCENE_WARNING}" if fingerprint.get("one_scene") else "")
                                    if fingerprint else f"none: {summary['prnu_note']}")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, nargs="+",
                   help="the camera's photos: files and/or folders (with their ISO-named subfolders: DIR/800/); "
                        "the ISO from EXIF, else from an ISO folder name")
    p.add_argument("--out", required=True,
                   help="what to write: a camera profile folder (any name not ending .pth: the reader, its interval, "
                        "the PRNU fingerprint and predictors; --profile DIR reads with it), or an adapted model "
                        "(NAME.pth) alone")
    p.add_argument("--camera", help="the profile's camera, as EXIF names it (default: the photos' EXIF make and model)")
    p.add_argument("--init_from", default=str(isonet.PROJECT / "models" / "net_jpg.pth"),
                   help="starting weights (default: the shipped models/net_jpg.pth)")
    p.add_argument("--patches_per_photo", type=int, default=300, help="random patches read from each photo")
    p.add_argument("--min_photos", type=int, default=5, help="fewest usable photos to adapt from (default 5)")
    p.add_argument("--method", choices=["auto", "head", "finetune"], default="auto",
                   help="head: refit of the head or a calibration (seconds); finetune: the whole network "
                        "(minutes); auto (default): both, keeping the one with the lower held-out MAE, or the "
                        "starting model where neither reads the held-out photos better; it skips fine-tuning "
                        "where the head or a profile's noise statistic already reads them to under 1/6 stop")
    p.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS,
                   help=f"fine-tuning epochs, the last at lr / 10 (default {FINETUNE_EPOCHS})")
    p.add_argument("--lr", type=float, default=FINETUNE_LR, help=f"fine-tuning learning rate (default {FINETUNE_LR:g})")
    p.add_argument("--folds", type=int, default=5,
                   help="held-out folds of the fine-tuning figures (a network per fold; default 5)")
    p.add_argument("--leave_out", choices=["photo", "folder"], default="photo",
                   help="what each honest fit leaves out: the photo (default), or its whole folder, for "
                        "series that shoot one scene at every ISO (the scene's other photos would flatter it)")
    p.add_argument("--block", type=int, default=prnu.BLOCK, help="a profile's PRNU forgery-map blocks (default 128)")
    p.add_argument("--block_stride", type=int, default=prnu.BLOCK // 2, help="their step (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=list(isonet.PRECISIONS), default="fp32",
                   help="the fine-tuning's arithmetic: fp32 (default), or bf16, faster on CPUs with AVX-512 BF16 "
                        "or AMX and on GPUs (docs/benchmarks.md)")
    cli.add_device_arg(p)
    args = p.parse_args(argv)
    cli.keep_freed_memory()
    for flag, least in {"patches_per_photo": 1, "epochs": 1, "folds": 2, "block": 16, "block_stride": 1}.items():
        if getattr(args, flag) < least:
            cli.fail(f"--{flag} {getattr(args, flag)}: must be at least {least}")
    as_profile = Path(args.out).suffix.lower() not in MODEL_SUFFIXES
    if as_profile and Path(args.out).exists() and not (Path(args.out) / camera_profile.PROFILE_FILE).is_file() \
            and (not Path(args.out).is_dir() or any(Path(args.out).iterdir())):
        cli.fail(f"{args.out}: exists and is not a camera profile (a profile folder is new, empty, or a profile)")
    try:
        net = isonet.load_model(args.init_from, isonet.resolve_device(args.device))
    except isonet.ISONetError as e:
        cli.fail(str(e))
    net = net.to(memory_format=MEMORY_FORMAT).eval()
    rng = np.random.default_rng(args.seed)
    found = camera_photos(args.photos)
    if not found:
        cli.fail(f"{' '.join(args.photos)}: no image in it (of its subfolders only ISO-named ones such as 800/ are "
                 "read: give series folders one by one, --photos DIR/*/)")
    photos, failed = [], 0
    for path in reports.progress(found, desc="reading photos"):
        try:
            photos.append(read_photo(path, net, args.patches_per_photo, rng, as_profile))
        except isonet.ISONetError as e:
            print(f"skipped: {e}", file=sys.stderr)
            failed += 1
    if len(photos) < max(args.min_photos, 3):
        cli.fail(f"{len(photos)} usable photo(s): adaptation needs at least {max(args.min_photos, 3)}")
    camera = profile_camera(photos, args.camera) if as_profile else None
    paths = [p.path for p in photos]
    groups = np.array([str(p.parent) for p in paths] if args.leave_out == "folder" else [str(p) for p in paths])
    if len(set(groups)) < 2:
        cli.fail("--leave_out folder: the photos lie in one folder; give each series a folder of its own")
    prior = head_affine(net)
    fits = [PhotoFit.of(p.features, p.metric) for p in photos]
    patches = [p.patches for p in photos]
    truths = np.array([p.metric for p in photos])
    held_out = "leave-one-out" if args.leave_out == "photo" else "leave-folder-out"
    columns = {"before": np.array([photo_estimate(prior, f) for f in fits])}
    if args.method in ("auto", "head"):
        columns[f"head ({held_out})"] = held_out_estimates(fits, prior, groups)
    needless = finetune_needless(columns, truths, photos, groups) if args.method == "auto" else None
    if needless:
        print(f"fine-tuning skipped: {needless}", file=sys.stderr)
    elif args.method in ("auto", "finetune"):
        folds = held_out if len(set(groups)) <= args.folds else f"{args.folds}-fold"
        columns[f"fine-tune ({folds})"] = finetune_held_out(net, patches, truths, groups, args.folds, args.epochs,
                                                             args.lr, args.seed, args.precision)
    mae = {name: float(np.abs(values - truths).mean()) for name, values in columns.items()}
    constant_mae = float(np.abs(constant_held_out(truths, groups) - truths).mean())
    chosen = choose_column(mae, args.method)
    if chosen == "before":
        how = "no adaptation read the held-out photos better, so its weights are written unchanged"
    elif chosen.startswith("head"):
        method = choose_method(fits, prior, groups)
        how = "calibration" if method == "affine" else f"head refit, ridge {method:g}"
    else:
        how = f"whole network fine-tuned, {args.epochs} epoch(s) from lr {args.lr:g}"

    def adapted_state() -> dict:
        """The chosen network's weights, fitted on every photo: a profile whose reader is the noise
        statistic alone needs none, and skips a fine-tuning."""
        if chosen == "before":
            return bare_state_dict(net)
        if chosen.startswith("head"):
            return adapted_state_dict(net, fit(fits, prior, method))
        return bare_state_dict(finetune(net, patches, list(truths), args.epochs, args.lr, args.seed,
                                        precision=args.precision))

    if as_profile:
        summary = build_profile(args, camera, photos, groups, columns[chosen], adapted_state, chosen, mae,
                                constant_mae)
    else:
        save_atomically(adapted_state(), Path(args.out))
    print(f"{'photo':<40} {'EXIF ISO':>8} " + " ".join(f"{name:>26}" for name in columns))
    for k, (path, truth) in enumerate(zip(paths, truths)):
        print(f"{path.name[-40:]:<40} {isonet.metric_to_iso(truth):>8.0f} "
              + " ".join(f"{isonet.metric_to_iso(values[k]):>26.0f}" for values in columns.values()))
    low, high = isonet.metric_to_iso(truths.min()), isonet.metric_to_iso(truths.max())
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
    best = min(summary["mae"]["readers"].values()) if as_profile else mae[chosen]
    if as_profile:
        print("\n".join(profile_lines(summary)))
    if no_better_than_constant(best, constant_mae):
        print(f"warning: a constant guess reads the held-out photos as well ({constant_mae:.2f} against "
              f"{best:.2f} stops): their ISOs are too alike to show that the model reads the ISO; "
              "add photos taken at other ISOs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
