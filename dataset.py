"""Training data for ISONet: labelled image folders -> one HDF5 patch set -> PyTorch Dataset.

Input layout (the paper's): DATA/Train/<ISO>/*.<pic_type> and DATA/Test/<ISO>/*.<pic_type>, the
folder name being the ISO; or flat folders DATA/Train/*.<pic_type> labelled by each file's EXIF ISO.

Output, one file per split in save_path (`train.h5`, `test.h5`):
  patches       uint8   N x 3 x 64 x 64  chunked CHUNK rows; rows in one random order over the whole split
                (uint16 if any source file is 16-bit; 8-bit sources then scaled by 257)
  iso_metric    float32 N                log2(ISO / 100)
  source_index  int32   N                row of `sources` the patch was cut from
  origin        int32   N x 2            (y, x) of the patch's top-left corner in that image
  aug_mode      uint8   N                the paper's rotation/flip mode 0..7 (0 = as cut)
  sources       str     S                every discovered file, relative to data_path
  source_iso    int32   S                its label
  attrs                                  format, split and every prepare argument

The original scripts' layout (train_rgb.h5 + train_rgb_label.h5, one dataset per patch) is read too.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from image_io import IMAGE_SUFFIXES, atomic_path, decode_image_file, read_exif_iso
from isonet import PATCH, ISONetError, grid_shape, iso_to_metric

FORMAT = "isonet-patches-v1"
CHUNK = 16  # rows per HDF5 chunk (192 KiB): also the longest contiguous run the loader reads
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}
FILE_NAMES = {"train": "train.h5", "test": "test.h5"}
LEGACY_STEMS = {"train": "train", "test": "val"}  # the original scripts called the test split "val"
AUG_MODES = 8


# ---------------------------------------------------------------------------------------------
# Discovery of labelled files
# ---------------------------------------------------------------------------------------------
ISO_FOLDER = re.compile(r"^(?:iso)?(\d+)$", re.IGNORECASE)


def iso_of_folder_name(name: str) -> int | None:
    """The ISO a folder's name says ('800', 'ISO800', 'iso0800'), or None."""
    match = ISO_FOLDER.match(name)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def parse_iso_folder(folder: Path) -> int:
    """A class folder's name is its ISO: '800' or 'ISO800'."""
    iso = iso_of_folder_name(folder.name)
    if iso is None:
        raise ISONetError(f"{folder}: class folder name is not an ISO (expected e.g. 100, 800, ISO3200)")
    return iso


def _has_type(path: Path, pic_type: str | None) -> bool:
    if pic_type is None:
        return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    return path.is_file() and path.suffix.lower() == "." + pic_type.lower().lstrip(".")


def find_labelled_images(split_dir: Path, pic_type: str | None,
                         label_from: str = "folder") -> list[tuple[Path, int | None]]:
    """(file, ISO) pairs, sorted; pic_type None takes every image type.
    With label_from='exif' the ISO is None where EXIF has none."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise ISONetError(f"{split_dir}: no such folder")
    if label_from == "folder":
        found: list[tuple[Path, int | None]] = []
        for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            iso = parse_iso_folder(folder)
            found += [(f, iso) for f in sorted(folder.iterdir()) if _has_type(f, pic_type)]
        layout = f"{split_dir}/<ISO>/*.{pic_type or '<image>'}"
    elif label_from == "exif":
        found = [(f, read_exif_iso(f)) for f in sorted(split_dir.iterdir()) if _has_type(f, pic_type)]
        layout = f"{split_dir}/*.{pic_type or '<image>'}"
    else:
        raise ValueError(f"label_from must be 'folder' or 'exif', got {label_from!r}")
    if not found:
        raise ISONetError(f"{split_dir}: no images found (expected {layout})")
    return found


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareOptions:
    size: int = PATCH
    stride: int = 96
    aug_times: int = 2
    max_patches_per_image: int = 1064
    gray_mode: bool = False
    seed: int = 0

    def check(self) -> None:
        if self.size != PATCH:
            raise ISONetError(f"--size {self.size}: ISONet takes {PATCH}x{PATCH} patches")
        if self.stride <= 0 or self.max_patches_per_image <= 0:
            raise ISONetError("--stride and --max_patches_per_image must be positive")
        if not 0 <= self.aug_times < AUG_MODES:
            raise ISONetError(f"--aug_times {self.aug_times}: must be 0..{AUG_MODES - 1} (distinct non-identity modes)")


def load_image(path: Path, gray: bool) -> np.ndarray:
    """HxWx3 RGB as stored, uint8 or uint16: inference (image_io.read_image) feeds a 16-bit file's
    16 bits, so training keeps them too. Gray mode converts to luma and replicates it (the net
    takes 3 channels). Integer all the way: a float copy of the image cost more than decoding it."""
    img = decode_image_file(path)
    if gray:
        img = np.repeat(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    return img


def cut_patches(img: np.ndarray, stride: int, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Patches every `stride` pixels (at most `limit`, a random subset): Nx3x64x64 and Nx2 (y, x)."""
    rows, cols = grid_shape(*img.shape[:2], stride)
    keep = np.arange(rows * cols)
    if len(keep) > limit:
        keep = np.sort(rng.choice(len(keep), limit, replace=False))
    r, c = np.divmod(keep, cols)
    # A strided view of every window: indexing it copies only the kept patches.
    windows = np.lib.stride_tricks.sliding_window_view(img, (PATCH, PATCH), axis=(0, 1))[::stride, ::stride]
    return np.ascontiguousarray(windows[r, c]), np.stack([r * stride, c * stride], 1).astype(np.int32)


def augment(patches: np.ndarray, mode: int) -> np.ndarray:
    """The paper's mode on ...xHxW arrays: rotate 90 degrees (mode // 2) times, then flip up-down if odd."""
    out = np.rot90(patches, k=mode // 2, axes=(-2, -1))
    return out[..., ::-1, :] if mode % 2 else out


def add_augmented_copies(patches: np.ndarray, aug_times: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each patch followed by `aug_times` copies in distinct random non-identity modes.

    Returns (N*(1+aug_times))x3x64x64 patches and their modes.
    """
    n = len(patches)
    modes = np.zeros((n, 1 + aug_times), np.uint8)
    choices = np.tile(np.arange(1, AUG_MODES, dtype=np.uint8), (n, 1))
    modes[:, 1:] = rng.permuted(choices, axis=1)[:, :aug_times]
    out = np.empty((n, 1 + aug_times) + patches.shape[1:], patches.dtype)
    for mode in range(AUG_MODES):  # one vectorised transform per mode, not per patch
        rows, copies = np.nonzero(modes == mode)
        if len(rows):
            out[rows, copies] = augment(patches[rows], mode)
    return out.reshape((-1,) + patches.shape[1:]), modes.reshape(-1)


@dataclass
class PatchBlock:
    """All rows that one source image contributes, in the file's column order."""

    patches: np.ndarray
    origin: np.ndarray
    aug_mode: np.ndarray


def image_patch_block(path: Path, opts: PrepareOptions, augment_copies: bool, rng: np.random.Generator) -> PatchBlock:
    """Read, cut and augment one image's patches (PatchSetWriter shuffles rows across images)."""
    patches, origin = cut_patches(load_image(path, opts.gray_mode), opts.stride, opts.max_patches_per_image, rng)
    aug_times = opts.aug_times if augment_copies else 0
    patches, modes = add_augmented_copies(patches, aug_times, rng)
    return PatchBlock(patches, np.repeat(origin, 1 + aug_times, axis=0), modes)


# ---------------------------------------------------------------------------------------------
# Writing a patch set
# ---------------------------------------------------------------------------------------------
PATCH_SHAPE = (3, PATCH, PATCH)
BLOCK_ROWS = 4096  # rows per copy of staged patches and per HDF5 write: 48 MiB of 8-bit patches
WIDEN_8_TO_16 = 257  # 255 * 257 = 65535: an 8-bit value scaled to 16 bits exactly


class StagedPatches:
    """Patches appended to an anonymous temporary file (gone on close, even after a crash), read
    back by row number.

    One sample type for all rows: 8-bit until a 16-bit image arrives, then 16-bit (the rows
    staged so far are rewritten once, scaled by 257), so a split may mix 8- and 16-bit files.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.file = tempfile.TemporaryFile(dir=directory)
        self.dtype = np.dtype(np.uint8)
        self.rows = 0

    def append(self, patches: np.ndarray) -> None:
        if patches.dtype.itemsize > self.dtype.itemsize:
            self._widen(patches.dtype)
        elif patches.dtype != self.dtype:
            patches = patches.astype(self.dtype) * WIDEN_8_TO_16
        self.file.write(np.ascontiguousarray(patches))
        self.rows += len(patches)

    def _widen(self, dtype: np.dtype) -> None:
        narrow = self.reader()
        self.file.close()  # the map keeps the data readable until it is dropped
        self.file, self.dtype = tempfile.TemporaryFile(dir=self.directory), np.dtype(dtype)
        for start in range(0, self.rows, BLOCK_ROWS):
            self.file.write(narrow[start:start + BLOCK_ROWS].astype(dtype) * WIDEN_8_TO_16)

    def reader(self) -> np.ndarray:
        """Every staged row, memory-mapped (indexing one reads only those rows)."""
        self.file.flush()
        if self.rows == 0:
            return np.empty((0,) + PATCH_SHAPE, self.dtype)
        return np.memmap(self.file, self.dtype, "r", shape=(self.rows,) + PATCH_SHAPE)

    def close(self) -> None:
        self.file.close()


class PatchSetWriter:
    """Writes a split's rows in one uniformly random order over the whole split, in bounded memory.

    The loader reads contiguous runs of CHUNK rows and a batch is a few such runs, so rows must be
    mixed across the whole split: runs of one image (one ISO, one scene) made batches of one or two
    ISOs, and training stalled at the mean. Shuffling within blocks of ~4096 rows was not enough
    for full-size photos (3,192 rows each at the paper's defaults: a block held 1-2 photos of one
    ISO folder). So `append` stages the patches in input order in a temporary file beside the
    output, and `write` draws a permutation of all rows and writes the file BLOCK_ROWS rows at a
    time, each block gathered from the staged rows (HDF5 sees only contiguous slab writes).

    RAM: one block of patches, plus the permutation and the small columns (about 40 bytes a row,
    0.3% of a 12 KiB patch). Disk: the staged patches, as much again as the output, until `close`.
    """

    def __init__(self, scratch_dir: Path, seed: int) -> None:
        self.seed = seed
        self.patches = StagedPatches(scratch_dir)
        self.columns: dict[str, list[np.ndarray]] = {"iso_metric": [], "source_index": [], "origin": [], "aug_mode": []}

    @property
    def rows(self) -> int:
        return self.patches.rows

    def append(self, block: PatchBlock, metric: float, source_index: int) -> None:
        n = len(block.patches)
        self.patches.append(block.patches)
        for name, values in (("iso_metric", np.full(n, metric, np.float32)),
                             ("source_index", np.full(n, source_index, np.int32)),
                             ("origin", block.origin), ("aug_mode", block.aug_mode)):
            self.columns[name].append(values)

    def write(self, h5: h5py.File) -> None:
        """Every staged row into `h5`, in the seed's random order."""
        order = np.random.default_rng([self.seed, 1]).permutation(self.rows)
        # maxshape None lets a set of fewer than CHUNK rows keep CHUNK-row chunks.
        for name, parts in self.columns.items():
            values = np.concatenate(parts)[order]
            h5.create_dataset(name, data=values, maxshape=(None,) + values.shape[1:],
                              chunks=(CHUNK,) + values.shape[1:])
        patches = h5.create_dataset("patches", (self.rows,) + PATCH_SHAPE, self.patches.dtype,
                                    maxshape=(None,) + PATCH_SHAPE, chunks=(CHUNK,) + PATCH_SHAPE)
        staged = self.patches.reader()
        for start in range(0, self.rows, BLOCK_ROWS):
            patches[start:start + BLOCK_ROWS] = staged[order[start:start + BLOCK_ROWS]]

    def close(self) -> None:
        self.patches.close()

    def __enter__(self) -> PatchSetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """map(fn, items) on `workers` processes, in order, with at most 2*workers results in flight.

    Processes, not threads: decode_image_file silences libjpeg by redirecting the process's stderr, which
    threads would share (and could leave redirected).
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def load_block(job: tuple[int, tuple[Path, int | None]], opts: PrepareOptions,
               augment_copies: bool) -> tuple[int, int | None, PatchBlock | str]:
    """One file's patches, or the one-line reason it was skipped (a worker must not raise for one bad file)."""
    index, (path, iso) = job
    try:
        if iso is None:
            raise ISONetError(f"{path}: no ISO in EXIF")
        return index, iso, image_patch_block(path, opts, augment_copies, np.random.default_rng([opts.seed, index]))
    except ISONetError as e:
        return index, iso, str(e)


@dataclass
class SplitSummary:
    path: Path
    images: Counter = field(default_factory=Counter)  # ISO -> images used
    patches: Counter = field(default_factory=Counter)  # ISO -> rows written
    skipped: list[str] = field(default_factory=list)  # one line per skipped file


def prepare_split(files: list[tuple[Path, int | None]], out_path: Path, opts: PrepareOptions, split: str,
                  root: Path, attrs: dict, on_skip: Callable[[str], None] = lambda msg: None,
                  progress: Callable[[Iterable], Iterable] = lambda it: it, workers: int = 1) -> SplitSummary:
    """Write one split's patch set to `out_path` atomically; unreadable images are skipped and reported.

    Each file has its own random stream (seed, index), so neither skipped files nor the number of
    `workers` (processes reading images) change the result.
    """
    opts.check()
    summary = SplitSummary(Path(out_path))
    load = partial(load_block, opts=opts, augment_copies=split == "train")

    with (atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5,
          PatchSetWriter(tmp.parent, opts.seed) as writer):
        for index, iso, block in progress(ordered_map(load, enumerate(files), workers)):
            if isinstance(block, str):
                summary.skipped.append(block)
                on_skip(block)
                continue
            writer.append(block, float(iso_to_metric(iso)), index)
            summary.images[iso] += 1
            summary.patches[iso] += len(block.patches)
        if writer.rows == 0:
            raise ISONetError(f"{root}: no patches written for the {split} split (every image was skipped)")
        writer.write(h5)
        h5.create_dataset("sources", data=[os.path.relpath(p, root) for p, _ in files], dtype=h5py.string_dtype())
        h5.create_dataset("source_iso", data=[iso or 0 for _, iso in files], dtype=np.int32)
        h5.attrs.update({"format": FORMAT, "split": split, "args": json.dumps(attrs), **asdict(opts)})
    return summary


# ---------------------------------------------------------------------------------------------
# Reading patch sets
# ---------------------------------------------------------------------------------------------
INTEGER_MAX = {torch.uint8: 255, torch.uint16: 65535}


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Patches as float in [0, 1]: our files' uint8 or uint16 divided by 255 or 65535, as
    image_io.read_image does; float patches (the original layout) as they are."""
    return x.float().div_(INTEGER_MAX[x.dtype]) if x.dtype in INTEGER_MAX else x.float()


class PatchRuns(Dataset):
    """Item i is the contiguous run of rows [i*run, (i+1)*run) as (run x 3 x 64 x 64 float in [0, 1], run labels).

    Reading runs keeps HDF5 access sequential; shuffle the runs (prepare_split already shuffled
    the rows over the whole split) and concatenate them with `concat_runs`. Files are opened lazily in each
    worker process, since an h5py handle must not cross a fork. With keep_integers, uint8 or uint16
    patches stay as stored (2-4x fewer bytes between worker processes and to the GPU); see `to_unit_float`.
    """

    def __init__(self, run: int = 1, keep_integers: bool = False) -> None:
        self.run = run
        self.keep_integers = keep_integers
        self.rows = 0
        self._handles: tuple | None = None
        self._pid = -1

    def _open(self) -> tuple:
        raise NotImplementedError

    def _read(self, handles: tuple, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        return -(-self.rows // self.run)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self._pid != os.getpid():
            self._handles, self._pid = self._open(), os.getpid()
        x, y = self._read(self._handles, i * self.run, min((i + 1) * self.run, self.rows))
        x = torch.from_numpy(x)
        return (x if self.keep_integers else to_unit_float(x)), torch.from_numpy(np.asarray(y, np.float32))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": None, "_pid": -1}


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError:
        raise ISONetError(f"{path}: not a readable HDF5 file") from None


class PatchSet(PatchRuns):
    """A patch set written by prepare_split."""

    def __init__(self, path: str | os.PathLike, run: int = 1, keep_integers: bool = False) -> None:
        super().__init__(run, keep_integers)
        self.path = Path(path)
        with _open_h5(self.path) as h5:
            if h5.attrs.get("format") != FORMAT or "patches" not in h5:
                raise ISONetError(f"{self.path}: not an ISONet patch set (format {FORMAT})")
            self.rows = len(h5["patches"])

    def _open(self) -> tuple:
        h5 = h5py.File(self.path, "r")
        return h5["patches"], h5["iso_metric"], h5

    def _read(self, handles: tuple, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return handles[0][start:stop], handles[1][start:stop]


class LegacyPatchSet(PatchRuns):
    """The original scripts' layout: datasets '0', '1', ... of float32 3x64x64 patches in one file,
    labels in another."""

    def __init__(self, data_path: str | os.PathLike, label_path: str | os.PathLike, run: int = 1,
                 keep_integers: bool = False) -> None:
        super().__init__(run, keep_integers)
        self.data_path, self.label_path = Path(data_path), Path(label_path)
        with _open_h5(self.data_path) as data, _open_h5(self.label_path) as labels:
            self.rows = len(data)
            if len(labels) != self.rows or (self.rows and "0" not in data):
                raise ISONetError(f"{self.data_path}: {self.rows} patches but {len(labels)} labels in "
                                  f"{self.label_path}")

    def _open(self) -> tuple:
        return h5py.File(self.data_path, "r"), h5py.File(self.label_path, "r")

    def _read(self, handles: tuple, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        data, labels = handles
        keys = [str(k) for k in range(start, stop)]
        return np.stack([data[k][()] for k in keys]), np.array([labels[k][()] for k in keys], np.float32)


def open_patch_set(data_path: str | os.PathLike, split: str, run: int = 1, keep_integers: bool = False) -> PatchRuns:
    """The split's patch set in data_path: `train.h5`/`test.h5`, else the original `train_rgb.h5` (or gray) pair."""
    data_path = Path(data_path)
    new = data_path / FILE_NAMES[split]
    if new.is_file():
        return PatchSet(new, run, keep_integers)
    stem = LEGACY_STEMS[split]
    for kind in ("rgb", "gray"):
        data, labels = data_path / f"{stem}_{kind}.h5", data_path / f"{stem}_{kind}_label.h5"
        if data.is_file() and labels.is_file():
            return LegacyPatchSet(data, labels, run, keep_integers)
    raise ISONetError(f"{data_path}: no {split} patch set (expected {new.name}, or {stem}_rgb.h5 "
                      f"and {stem}_rgb_label.h5); run prepare_data.py first")


def concat_runs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """DataLoader collate_fn for PatchRuns: one batch from several runs."""
    xs, ys = zip(*batch)
    return torch.cat(xs), torch.cat(ys)


# ---------------------------------------------------------------------------------------------
# Real labelled photos: a checkout of public camera files -> the paper's layout, split by camera
# ---------------------------------------------------------------------------------------------


