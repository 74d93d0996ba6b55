"""Datasets for search and full training, chosen by a config's ``datasets.<name>`` entry.

Small sets (CIFAR-10/100, ``.npz`` files, scikit-learn's digits) are held in memory as
uint8 NCHW tensors, so a trainer can move the whole training set to the GPU once and
augment it there in batches (:mod:`nasgep.augment`). A ``folder`` dataset (ImageNet) does
not fit in memory: it stays a :class:`torch.utils.data.Dataset` that decodes images on
demand, and the trainer streams it through a DataLoader.

Purposes (SPEC section 3):
  * ``"search"``: the training set minus a seeded, stratified validation split; the
    evaluation split is that validation split. The test set is never read.
  * ``"final"``: the whole training set; the evaluation split is the test set.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import schema
from .datafiles import (
    HEADER_SAMPLE,
    NPZ_KEYS,
    VAL_LABEL_FILES,
    DataError,
    all_grey,
    class_folders,
    hidden,
    image_files,
    is_image_name,
    layout_error,
    require_path,
    sample_headers,
)
from .errors import clip, read_user_text

Purpose = Literal["search", "final"]
#: the dataset kinds a config may name: the schema's list (``$defs.dataset.kind``)
KINDS: tuple[str, ...] = tuple(schema()["$defs"]["dataset"]["properties"]["kind"]["enum"])

#: Seed of the fixed 80/20 train/test split of scikit-learn's digits (no official split
#: exists); fixed so that every run of every seed tests on the same images.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
#: Images sampled to estimate a folder dataset's mean/std (decoding all of ImageNet
#: for two numbers per channel is not worth it).
FOLDER_STATS_SAMPLES = 1000
#: Seed of a folder dataset's stratified ``max_train`` subset: the same images for every
#: search and training seed.
FOLDER_MAX_TRAIN_SEED = 0


def batches(loader):
    """Iterate a DataLoader; a :class:`DataError` raised in one of its worker processes
    (an unreadable image) comes back as the worker's own one-line error. Its worker
    processes are stopped when the iteration ends or is abandoned, not later by the
    iterator's ``__del__``: after a SIGTERM to the whole process group (scancel) that
    reported the killed workers as an "Exception ignored" traceback below the verb's
    last line. Abandoned because the verb is ending (Ctrl-C), a second Ctrl-C while the
    workers stop is not reported either: it came as an "Exception ignored in: <generator
    object batches>" traceback after the verb's line (the workers got it too and end).
    Its worker processes end with this process however it ends (:mod:`nasgep.processes`)."""
    if loader.num_workers > 0 and loader.worker_init_fn is None:
        from .processes import loader_worker_init

        loader.worker_init_fn = loader_worker_init()
    it = iter(loader)
    abandoned = False
    try:
        yield from it
    except DataError as e:
        raise DataError.from_worker(e) from None
    except GeneratorExit:
        abandoned = True
        raise
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)     # a multi-process iterator's
        if shutdown is not None:
            try:
                shutdown()
            except RuntimeError:      # "worker killed by signal": we stop anyway
                pass
            except KeyboardInterrupt:
                if not abandoned:     # the first Ctrl-C, at the end of an iteration: the verb's to report
                    raise


@dataclass
class Split:
    """Images in memory: ``x`` uint8 (N, C, H, W) and ``y`` int64 (N,) labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(f"Split.x must be uint8 NCHW, got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"Split.y must have shape ({self.x.shape[0]},), got {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    @property
    def targets(self) -> list[int]:
        return self.y.tolist()


#: What a trainer reads: a :class:`Split` in memory, or a Dataset yielding
#: ``(uint8 CHW tensor, int label)`` that a DataLoader streams.
Source = Split | Dataset


@dataclass
class DataBundle:
    """A dataset ready for one purpose: the training images, the evaluation split
    (``eval_name`` says whether that is the validation or the test set) and what a
    network needs to know about them. ``mean``/``std`` (per channel, in [0, 1] units)
    come from the training images only."""

    name: str
    kind: str
    purpose: Purpose
    train: Source
    eval: Source
    eval_name: Literal["val", "test"]
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    _on_device: dict[str, DataBundle] = field(default_factory=dict, repr=False, compare=False)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, Split) and isinstance(self.eval, Split)

    def on(self, device: torch.device | str) -> DataBundle:
        """This bundle with its in-memory splits on ``device``, moved once and cached, so
        that every trainer of a search shares one copy of the training set on the GPU."""
        key = str(torch.device(device))
        if not self.in_memory or key == str(self.train.x.device):
            return self
        if key not in self._on_device:
            moved = DataBundle(self.name, self.kind, self.purpose, self.train.to(device),
                               self.eval.to(device), self.eval_name, self.num_classes,
                               self.in_channels, self.image_size, self.mean, self.std, self.classes)
            self._on_device[key] = moved
        return self._on_device[key]

    def summary(self) -> dict:
        """Counts, classes and statistics as plain JSON values (``nasgep prepare``)."""
        return {"dataset": self.name, "kind": self.kind, "purpose": self.purpose,
                "train": len(self.train), self.eval_name: len(self.eval),
                "num_classes": self.num_classes, "classes": list(self.classes),
                "in_channels": self.in_channels, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std)}

    def line(self) -> str:
        """One line for a log: counts, classes and the image shape the networks see."""
        return (f"{self.name} ({self.kind}): {len(self.train)} training + {len(self.eval)} {self.eval_name} "
                f"images, {self.num_classes} classes, {self.in_channels}x{self.image_size}x{self.image_size}")


# --------------------------------------------------------------------------- splits

def split_sizes(counts: np.ndarray, n_val: int) -> np.ndarray:
    """Validation images per class, proportional to the class counts (largest remainder,
    ties to the lower class index), summing exactly to ``n_val``."""
    total = int(counts.sum())
    quota = counts * (n_val / total)
    sizes = np.floor(quota).astype(np.int64)
    short = n_val - int(sizes.sum())
    if short:
        order = np.lexsort((np.arange(len(counts)), -(quota - sizes)))
        sizes[order[:short]] += 1
    return sizes


def stratified_split(labels: np.ndarray | Sequence[int], n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified hold-out: returns sorted ``(train_idx, val_idx)``, disjoint, whose
    union is ``range(len(labels))``; each class gives its share of ``n_val`` images."""
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < n_val < n:
        raise DataError(f"a validation split of {n_val} images needs 0 < size < {n} (the training images)")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sizes = split_sizes(counts, n_val)
    val = []
    for k in range(len(classes)):
        members = np.flatnonzero(inverse == k)
        val.append(rng.permutation(members)[: sizes[k]])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def validation_size(entry: dict, n_train: int, name: str = "<name>") -> int:
    """``val_size`` images, or ``val_fraction`` of the training set when it is null
    (``name``: the dataset's, for the message)."""
    if entry.get("val_size") is not None:
        if not 0 < entry["val_size"] < n_train:
            raise DataError(f"datasets.{name}.val_size: {entry['val_size']} validation images cannot be held out "
                            f"of {n_train} training images; set 1 to {n_train - 1}, or null for val_fraction")
        return int(entry["val_size"])
    return max(1, int(round(entry.get("val_fraction", 0.1) * n_train)))     # (the schema's default, for raw dicts)


# --------------------------------------------------------------------------- statistics

def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 NCHW images, in [0, 1] units
    (float64 sums over chunks: exact enough and no float copy of the whole set)."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].to("cpu", torch.float64) / 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(max(v, 1e-6)) for v in std)


# --------------------------------------------------------------------------- in-memory kinds

@dataclass
class _Arrays:
    """Raw in-memory data as read from disk: uint8 NCHW tensors and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    classes: tuple[str, ...] | None


def _nhwc_to_nchw(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise DataError(f"{where}: expected uint8 images (0..255), got {x.dtype}")
    if x.ndim == 3:  # (N, H, W) grey
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{where}: expected images of shape (N, H, W, C) or (N, H, W), got {x.shape}")
    if x.shape[3] not in (1, 3):
        hint = ("; it looks channels-first (N, C, H, W): save x.transpose(0, 2, 3, 1)"
                if x.shape[1] in (1, 3) else "; RGBA? save x[..., :3]" if x.shape[3] == 4 else "")
        raise DataError(f"{where}: images of shape {x.shape} have {x.shape[3]} channels in the last axis; "
                        f"expected (N, H, W, C) with C = 1 (grey) or 3 (RGB){hint}")
    if 0 in x.shape[1:3]:
        raise DataError(f"{where}: images of {x.shape[1]}x{x.shape[2]} pixels hold nothing to learn from")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _labels(y: np.ndarray, n: int, where: str) -> torch.Tensor:
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:            # a (N, 1) column or a (1, N) row (MATLAB)
        y = y.reshape(-1)
    if y.ndim != 1:
        hint = "; one-hot? save the class indices, y.argmax(1)" if y.ndim == 2 and y.shape[0] == n else ""
        raise DataError(f"{where}: labels of shape {y.shape}; expected one class index per image, "
                        f"shape ({n},){hint}")
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels of type {y.dtype}; expected integer class indices "
                        f"(save them with .astype(np.int64))")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: negative label {int(y.min())}; classes are numbered 0, 1, 2, ...")
    if len(y) and int(y.max()) >= 2**31:         # (a uint64 above int64's range wrapped to negative)
        raise DataError(f"{where}: label {int(y.max())} is no class index; classes are numbered 0, 1, 2, ...")
    return torch.from_numpy(y.astype(np.int64))


def _cifar_root(config: dict, entry: dict) -> Path:
    return Path(entry["path"]) if entry.get("path") else Path(config.get("data_dir", "data")) / entry["kind"]


def _cifar_layout(kind: str, root: Path) -> str:
    if kind == "cifar10":
        return (f"{root}/cifar-10-batches-py/{{data_batch_1..data_batch_5, test_batch, batches.meta}} "
                f"(the extracted https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)")
    return (f"{root}/cifar-100-python/{{train, test, meta}} "
            f"(the extracted https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz)")


def _load_cifar(config: dict, entry: dict, need_test: bool) -> _Arrays:
    """CIFAR through torchvision: it downloads and verifies the official archive. The
    files are Python pickles, and unpickling runs code: a file whose MD5 differs from the
    official one is refused, never read (a legitimate variant converts to ``.npz``)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    kind = entry["kind"]
    official = CIFAR10 if kind == "cifar10" else CIFAR100
    root = _cifar_root(config, entry)
    folder = root / official.base_folder
    files = [f for f, _ in official.train_list + official.test_list] + [official.meta["filename"]]
    if root.exists() and not root.is_dir():    # else 'File exists' from the download, or 'lacks ...'
        raise DataError(f"{kind}: {root} is a file, not a folder; the dataset's path is the folder that holds "
                        f"{_cifar_layout(kind, root)}")
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and entry.get("download", True):
        try:
            official(str(root), train=True, download=True)
        except Exception as e:  # URLError, checksum mismatch, disk full...
            raise DataError(f"{kind}: could not download to {root} ({type(e).__name__}: {e}); without "
                            f"internet, put the files here: {_cifar_layout(kind, root)}") from None
        missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        hint = "" if entry.get("download", True) else " (download is off)"
        raise DataError(f"{kind}: {folder} lacks {', '.join(missing)}{hint}; put the files here: "
                        f"{_cifar_layout(kind, root)}")
    check_cifar_checksums(official, folder, kind)

    def read(train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        try:
            ds = official(str(root), train=train, download=False)  # verifies the MD5s again
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, RuntimeError) as e:
            raise DataError(f"{kind}: cannot read {folder} ({type(e).__name__}: {e}); expected "
                            f"{_cifar_layout(kind, root)}") from None
        x = _nhwc_to_nchw(np.asarray(ds.data), str(folder))
        return x, _labels(np.asarray(ds.targets), len(x), str(folder)), list(ds.classes)

    x_train, y_train, classes = read(True)
    x_test = y_test = None
    if need_test:
        x_test, y_test, _ = read(False)
    return _Arrays(x_train, y_train, x_test, y_test, tuple(classes))


def check_cifar_checksums(official, folder: Path, kind: str) -> None:
    """Refuse CIFAR files whose MD5 is not the official one, naming them: torchvision
    unpickles these files, so a tampered one could run code (issue 10, point 3)."""
    from torchvision.datasets.utils import check_integrity

    expected = official.train_list + official.test_list + [[official.meta["filename"], official.meta["md5"]]]
    bad = [f for f, md5 in expected if not check_integrity(str(folder / f), md5)]
    if bad:
        raise DataError(f"{kind}: {', '.join(bad)} in {folder} differ from the official files (MD5 checksum); "
                        f"refusing to read them, since CIFAR's Python pickles can run code. Delete them to "
                        f"download the official ones, or convert a variant you trust to an .npz dataset "
                        f"(keys {', '.join(NPZ_KEYS)})")


def _load_npz(entry: dict, need_test: bool) -> _Arrays:
    if not entry.get("path"):
        raise DataError("npz dataset: set its 'path' to the .npz file")
    path = Path(entry["path"])
    if path.is_dir():
        raise DataError(f"{path}: a folder, not an .npz file (a folder of class folders is kind: folder)")
    require_path(entry)
    if not zipfile.is_zipfile(path):   # numpy would take it for a pickle and advise allow_pickle
        raise DataError(f"{path}: not an .npz file, or a truncated one (no zip archive in it; numpy.savez "
                        f"writes one, keys {', '.join(NPZ_KEYS)})")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive with keys {', '.join(NPZ_KEYS)}")
    with npz:
        for key in NPZ_KEYS:
            if key not in npz.files:
                raise DataError(f"{path}: missing key {key!r} "
                                f"(has {', '.join(npz.files)}; needs {', '.join(NPZ_KEYS)})")
        x_train = _nhwc_to_nchw(_npz_array(npz, "x_train", path), f"{path}:x_train")
        y_train = _labels(_npz_array(npz, "y_train", path), len(x_train), f"{path}:y_train")
        x_test = y_test = None
        if need_test:  # the search never reads the test set
            x_test = _nhwc_to_nchw(_npz_array(npz, "x_test", path), f"{path}:x_test")
            if len(x_test) == 0:
                raise DataError(f"{path}:x_test: no test images (a final training reports its test accuracy)")
            y_test = _labels(_npz_array(npz, "y_test", path), len(x_test), f"{path}:y_test")
            if x_test.shape[1:] != x_train.shape[1:]:
                test_hwc, train_hwc = (tuple(x.permute(0, 2, 3, 1).shape[1:]) for x in (x_test, x_train))
                raise DataError(f"{path}: x_test images {test_hwc} (H, W, C) differ from x_train's {train_hwc}")
    return _Arrays(x_train, y_train, x_test, y_test, None)


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    """One array of an .npz file; Python objects inside (which only unpickling could
    read, and unpickling runs code) are refused, as are damaged members."""
    try:
        array = npz[key]
        if not isinstance(array, np.ndarray):     # a member that is no .npy: numpy hands its bytes
            raise DataError(f"{path}:{key}: not a .npy array (numpy.savez writes one per key)")
        return array
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{path}:{key}: holds Python objects (an object array); only plain numeric "
                            f"arrays are read, never pickles: save it as uint8 images / integer labels") from None
        raise DataError(f"{path}:{key}: not a readable array ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path}:{key}: damaged ({type(e).__name__}: {e})") from None


def _load_digits() -> _Arrays:
    """scikit-learn's 1,797 8x8 digits (values 0..16, scaled to 0..255), split once into
    train/test by a fixed seeded stratified 80/20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    y = digits.target.astype(np.int64)
    n_test = int(round(DIGITS_TEST_FRACTION * len(y)))
    train_idx, test_idx = stratified_split(y, n_test, DIGITS_SPLIT_SEED)
    x_t = torch.from_numpy(x[:, None])
    y_t = torch.from_numpy(y)
    return _Arrays(x_t[train_idx], y_t[train_idx], x_t[test_idx], y_t[test_idx],
                   tuple(str(k) for k in range(10)))


def resize_images(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 NCHW images resized to ``size`` x ``size`` (bilinear, antialiased)."""
    from torchvision.transforms.v2 import functional as TF

    if x.shape[-2:] == (size, size):
        return x
    parts = [TF.resize(x[s:s + chunk], [size, size], antialias=True) for s in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else x.new_zeros((0, x.shape[1], size, size))


def memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_resized_size(name: str, size: int, images: int, channels: int) -> None:
    """One line, before any work, when ``image_size`` would make the in-memory images take
    more than half of this machine's memory (the process was killed, or torch's allocator
    failed with a traceback)."""
    need, have = images * channels * size * size, memory_bytes()
    if have is not None and need > have // 2:
        raise DataError(f"datasets.{name}.image_size = {size}: {images} images of {channels}x{size}x{size} "
                        f"take {need / 2**30:,.1f} GiB in memory, more than half of this machine's "
                        f"{have / 2**30:,.1f} GiB; choose a smaller image_size")


def _in_memory_bundle(name: str, entry: dict, arrays: _Arrays, purpose: Purpose, seed: int) -> DataBundle:
    size = entry.get("image_size")
    x_train, y_train = arrays.x_train, arrays.y_train
    if size is not None:
        test = 0 if arrays.x_test is None or purpose != "final" else len(arrays.x_test)
        check_resized_size(name, size, len(x_train) + test, x_train.shape[1])
        x_train = resize_images(x_train, size)
    if x_train.shape[2] != x_train.shape[3]:
        raise DataError(f"{name}: images must be square, got {tuple(x_train.shape[2:])} (set image_size)")
    check_labels(y_train, arrays.y_test if purpose == "final" else None, name)
    labels = y_train
    if purpose == "search":
        train_idx, val_idx = stratified_split(y_train.numpy(), validation_size(entry, len(y_train), name), seed)
        train = Split(x_train[train_idx], y_train[train_idx])
        evaluation, eval_name = Split(x_train[val_idx], y_train[val_idx]), "val"
    elif purpose == "final":
        if arrays.x_test is None:
            raise DataError(f"{name}: no test set was loaded")
        x_test = arrays.x_test if size is None else resize_images(arrays.x_test, size)
        train, evaluation, eval_name = Split(x_train, y_train), Split(x_test, arrays.y_test), "test"
        labels = torch.cat([y_train, arrays.y_test])
    else:
        raise ValueError(f"purpose must be 'search' or 'final', not {purpose!r}")
    k = int(y_train.max()) + 1
    if purpose == "search":
        _check_split_kept(train.y, y_train, k, name, arrays.classes or ())
    if entry.get("max_train") is not None:
        train = Split(train.x[: entry["max_train"]], train.y[: entry["max_train"]])
        _check_classes_kept(train.y, k, name, _MAX_TRAIN_CAUSE.format(name=name, n=entry["max_train"]))
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    classes = arrays.classes or tuple(str(k) for k in range(num_classes))
    mean, std = channel_stats(train.x)
    return DataBundle(name, entry["kind"], purpose, train, evaluation, eval_name, max(num_classes, len(classes)),
                      int(train.x.shape[1]), int(train.x.shape[2]), mean, std, tuple(classes))


# --------------------------------------------------------------------------- validation

def _first_missing(present: Sequence[int], limit: int = 5) -> list[int]:
    """The first few of 0, 1, 2, ... absent from sorted ``present`` (without building
    the range: labels may run to 10**12)."""
    out, expected = [], 0
    for value in present:
        while expected < value and len(out) < limit:
            out.append(expected)
            expected += 1
        expected = max(expected, value + 1)
        if len(out) >= limit:
            break
    return out


def _listing(values: Sequence[int], total: int) -> str:
    shown = ", ".join(str(v) for v in values)
    return shown + (", ..." if total > len(values) else "")


def check_labels(y_train: torch.Tensor, y_test: torch.Tensor | None, where: str) -> int:
    """The number of classes K, after refusing label sets no one means: the training
    labels must number the classes 0..K-1 with every class present (a stray label of
    1,000,000 would otherwise build a million-class network), K >= 2, and the test set
    may hold only classes seen in training."""
    if len(y_train) == 0:
        raise DataError(f"{where}: no training images")
    present = torch.unique(y_train).tolist()
    if len(present) < 2:
        raise DataError(f"{where}: the training labels hold {len(present)} class{'es' if len(present) != 1 else ''} "
                        f"({_listing(present[:5], len(present))}); classification needs at least 2")
    k = present[-1] + 1
    if len(present) != k:
        missing = _first_missing(present)
        raise DataError(f"{where}: training labels run up to {present[-1]} but only {len(present)} classes have "
                        f"images (none of {_listing(missing, k - len(present))}); labels must number the classes "
                        f"0..K-1")
    if y_test is not None:
        unseen = sorted(set(torch.unique(y_test).tolist()) - set(present))
        if unseen:
            raise DataError(f"{where}: the test labels hold {len(unseen)} class{'es' if len(unseen) != 1 else ''} "
                            f"never seen in training ({_listing(unseen[:5], len(unseen))}; training has 0..{k - 1})")
    return k


_SPLIT_CAUSE = ("after the validation split; lower datasets.{name}.val_size (or val_fraction), or give "
                "more images")
_MAX_TRAIN_CAUSE = "within max_train = {n}; raise datasets.{name}.max_train"


def _check_classes_kept(y, num_classes: int, name: str, cause: str) -> None:
    """Every class keeps a training image (``y``: the labels left; ``cause``: what took
    the others and what to do, one of the messages above)."""
    kept = set(np.unique(np.asarray(y)).tolist())
    if len(kept) < num_classes:
        lost = sorted(set(range(num_classes)) - kept)
        raise DataError(f"{name}: no training image of class {_listing(lost[:5], len(lost))} is left {cause}")


def _check_split_kept(kept, labels, num_classes: int, name: str, classes: Sequence[str] = ()) -> None:
    """Every class keeps a training image after the search's validation split (``kept``:
    the labels left for training, ``labels``: all of them). A class of a single image
    loses it to any split: the line says that, and names every class of one image, not
    to lower a split that cannot be lower."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    lost = sorted(set(range(num_classes)) - set(np.unique(np.asarray(kept)).tolist()))
    if lost and all(counts[k] <= 1 for k in lost):
        single = [k for k in range(num_classes) if counts[k] <= 1]
        also = (f"; {len(single)} classes have a single image: {_shown_classes(single, classes)}"
                if len(single) > len(lost) else "")
        raise DataError(f"{name}: the search's validation split holds out the only training image of class "
                        f"{_shown_classes(lost, classes)}{also}; every class needs at least 2 training images "
                        "(one may go to validation): give more images")
    _check_classes_kept(kept, num_classes, name, _SPLIT_CAUSE.format(name=name))


def _shown_classes(indices: Sequence[int], classes: Sequence[str], most: int = 5) -> str:
    """``0 (cat), 2 (ship)``: class indices, with their names where the dataset has them."""
    shown = [f"{k} ({clip(classes[k], 40)})" if k < len(classes) else str(k) for k in indices[:most]]
    return ", ".join(shown) + (f" and {len(indices) - most} more" if len(indices) > most else "")


def check_batch(data: DataBundle, batch_size: int, key: str) -> None:
    """Refuse a training set smaller than one batch: every step would see the whole set
    and the configured batch size would mean nothing (``nasgep prepare`` checks it too,
    before a search or a training starts)."""
    if len(data.train) < batch_size:
        split = f" (after the {len(data.eval)} validation images held out)" if data.purpose == "search" else ""
        raise DataError(f"{data.name}: {len(data.train)} training images{split}, fewer than one batch ({key} = "
                        f"{batch_size}); lower {key} or give more images")


def check_augment(data: DataBundle, augment, key: str) -> None:
    """Refuse augmentation that can leave nothing of an image (``augment``: an
    AugmentSettings; ``key`` the config section it came from): a CutOut hole as large as
    the images (centred, it blanks a whole image, and at the default length 16 every image
    of an 8x8 dataset would train as holes), or a random crop whose zero padding is as wide
    as the images (a crop can then hold padding only: at 4x4 four crops in ten, at 2x2
    eight in nine; a training on 2x2 images diverged)."""
    side = data.image_size
    problems = []       # both at once, so that a fix of one does not meet the other next run
    if augment.crop_flip and side <= augment.padding:
        problems.append(f"{key}.crop_flip pads the {side}x{side} images of {data.name} by {augment.padding} "
                        f"pixels: a crop could hold padding only; set {key}.crop_flip: false, or use images of at "
                        f"least {augment.padding + 1}x{augment.padding + 1}")
    if augment.cutout and augment.cutout_length >= side:
        problems.append(f"{key}.cutout_length = {augment.cutout_length} is not smaller than the {side}x{side} "
                        f"images of {data.name}: a hole could blank a whole image; set it to about half the "
                        f"side ({max(1, side // 2)}; 16 for 32x32), or {key}.cutout: false")
    if problems:
        raise DataError("; and ".join(problems))


# --------------------------------------------------------------------------- folder kind

#: PIL modes of 16-bit (and 32-bit integer) grey images, which ``convert("RGB")`` would
#: clip to white instead of scaling.
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


#: What to do about an unreadable image, said once after the files it concerns.
_REPLACE = ("replace {it} with {one} (removing {it} from the training images changes the dataset: a run "
            "then starts over with --restart; a training goes on after a change of its test images)")


def _decode(path: str | Path, mode: str):
    """``(image, "")``, the file decoded to PIL ``mode`` ("RGB" or "L"), or ``(None, why)``
    with a short reason naming the file (:func:`read_image`)."""
    from PIL import Image

    from .datafiles import open_image

    try:
        with open_image(path) as image:
            image.load()
            if image.mode == "F":       # convert() clips to 0..255: values of 0..1 came out all black
                values = np.asarray(image, dtype=np.float64)
                if not (np.isfinite(values).all() and values.min() >= 0 and 1 < values.max() <= 255
                        and (values == np.rint(values)).all()):     # 0 and 1 alone: a 0..1 mask, or 0..255?
                    return None, (f"{path}: a 32-bit floating-point image whose values are not whole numbers "
                                  "0..255 beyond 0 and 1, so their range is unknown; convert the images to 8- or "
                                  "16-bit first")
                image = Image.fromarray(values.astype(np.uint8))
            if image.mode in _WIDE_GREY_MODES:
                wide = np.asarray(image, dtype=np.float64)
                image = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
            return image.convert(mode), ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return None, f"{path}: not a readable image ({e})"


def read_image(path: str | Path, mode: str = "RGB"):
    """An image file as a PIL image of ``mode`` (RGB, or L for a grey folder dataset); an
    unreadable, truncated or non-image file is a :class:`DataError` naming it. 16-bit grey
    (PNG mode ``I;16``, TIFF ``I``) is taken as spanning 0..65535 and scaled by 1/257
    (PIL's ``convert`` would clip it to white); 10- or 12-bit data stored in 16 bits
    therefore comes out dark: rescale it first."""
    image, problem = _decode(path, mode)
    if image is None:
        raise DataError(f"{problem}; {_REPLACE.format(it='it', one='a readable one')}; `nasgep prepare` "
                        "names every unreadable image of a dataset in one pass")
    return image


#: Unreadable files named in one error; the count says how many more there are.
UNREADABLE_SHOWN = 5


def unreadable_error(problems: Sequence[str], where: str = "") -> DataError:
    """One error for every unreadable image found in one pass (``problems``: the
    :meth:`FolderImages.unreadable` lines; ``where``: which images were read)."""
    more = f" (and {len(problems) - UNREADABLE_SHOWN} more)" if len(problems) > UNREADABLE_SHOWN else ""
    advice = _REPLACE.format(it="it" if len(problems) == 1 else "them",
                             one="a readable one" if len(problems) == 1 else "readable ones")
    return DataError(f"{len(problems)} unreadable image(s){where}: {'; '.join(problems[:UNREADABLE_SHOWN])}"
                     f"{more}; {advice}")


def scan_class_folders(root: Path, expected: Sequence[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """``root/<class>/**/<image>`` as (classes, [(path, label)]), as torchvision's
    ImageFolder scans it, but hidden folders and files (``.ipynb_checkpoints``, macOS's
    ``._x.png``) are neither classes nor images (:mod:`nasgep.datafiles`). Fewer than 2
    classes, or (test images) classes other than the training set's ``expected``, is a
    DataError naming the class folders missing or too many."""
    classes = class_folders(root)
    if not classes:
        raise FileNotFoundError(f"no class folders in {root}")
    if expected is not None and classes != list(expected):
        missing = [c for c in expected if c not in classes]
        extra = [c for c in classes if c not in expected]
        said = "; ".join([*([f"no class folder {_names(missing)}"] if missing else []),
                          *([f"class folder(s) {_names(extra)} not in the training set"] if extra else [])])
        raise DataError(f"{root}: {said} (the training set's classes: {_names(list(expected))}); the test images "
                        f"need a folder for each class of train/, of the same name{_unicode_forms(missing, extra)}")
    if len(classes) < 2:
        raise DataError(f"{root}: one class folder ({classes[0]}); classification needs at least 2")
    samples = [(path, label) for label, name in enumerate(classes) for path in image_files(root / name)]
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        raise FileNotFoundError(f"no images in the class folder(s) {', '.join(empty[:5])} of {root}")
    return classes, samples


def _unicode_forms(missing: Sequence[str], extra: Sequence[str]) -> str:
    """What to say when class folders of train/ and val/ differ only in their Unicode form
    ('café' composed in one, decomposed in the other, as a copy through macOS leaves it):
    the message named the same-looking name as both missing and extra."""
    import unicodedata

    def nfc(name: str) -> str:
        return unicodedata.normalize("NFC", name)

    same = [name for name in extra if nfc(name) in {nfc(m) for m in missing}]
    if not same:
        return ""
    return (f"; {_names(same)} differ{'s' if len(same) == 1 else ''} from the training set's name only in its "
            "Unicode form (composed vs decomposed accents, as a copy through macOS leaves them): rename the "
            "folder(s) in one of train/ and val/ to the other's spelling")


def _names(names: Sequence[str], most: int = 5) -> str:
    """``a, b, c and 4 more`` (folder names, as a message shows them)."""
    return ", ".join(clip(n, 40) for n in names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                                             else "")


class FolderImages(Dataset):
    """Images decoded on demand as ``mode`` (RGB, or L for grey; in the DataLoader's
    workers): shorter side resized to ``image_size`` then centre-cropped, yielding
    ``(uint8 (C, S, S) tensor, label)``.

    ``root/<class>/<image>`` folders (torchvision's ImageFolder scan), or explicit
    ``samples`` ``[(path, label), ...]`` (a flat ``val/`` with a labels file).
    ``indices`` selects a subset (the search's training or validation part);
    :meth:`augmented` gives a copy whose images go through a training transform instead
    (the mobile setting's random-resized crop, see :func:`nasgep.augment.mobile_transform`)."""

    def __init__(self, root: str | Path, image_size: int, indices: Sequence[int] | None = None,
                 classes: Sequence[str] | None = None,
                 samples: Sequence[tuple[str, int]] | None = None, mode: str = "RGB") -> None:
        from torchvision.transforms import v2

        self.root = Path(root)
        self.image_size = image_size
        self.mode = mode
        if samples is None:
            classes, samples = scan_class_folders(Path(root), classes)
        self.classes = tuple(classes or ())
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.transform = v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size),
                                     v2.PILToTensor()])
        self.indices = np.arange(len(self.samples)) if indices is None else np.asarray(indices, dtype=np.int64)
        labels = np.asarray([label for _, label in self.samples], dtype=np.int64)
        self.targets = labels[self.indices].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[int(self.indices[i])]
        return self.transform(read_image(path, self.mode)), label

    def decoded(self, i: int) -> tuple[torch.Tensor | None, str]:
        """``(image i, "")`` as :meth:`__getitem__` gives it, or ``(None, why)`` when it
        cannot be read (a line of :func:`unreadable_error`)."""
        image, problem = _decode(self.samples[int(self.indices[i])][0], self.mode)
        return (None, problem) if image is None else (self.transform(image), "")

    def unreadable(self, i: int) -> str:
        """Why image ``i`` cannot be read ('' when it can): :func:`check_images`."""
        return _decode(self.samples[int(self.indices[i])][0], self.mode)[1]

    def subset(self, indices: Sequence[int]) -> FolderImages:
        sub = copy.copy(self)
        sub.indices = self.indices[np.asarray(indices, dtype=np.int64)]
        labels = np.asarray([label for _, label in self.samples], dtype=np.int64)
        sub.targets = labels[sub.indices].tolist()
        return sub

    def augmented(self, transform) -> FolderImages:
        """The same images through ``transform`` (decoded PIL image in, uint8 CHW tensor out)."""
        out = copy.copy(self)
        out.transform = transform
        return out


class _Readability(Dataset):
    """Item ``i``: why image ``i`` of a :class:`FolderImages` is unreadable, or ''."""

    def __init__(self, images: FolderImages) -> None:
        self.images = copy.copy(images)
        self.images.indices = np.arange(len(images.samples))     # every file, not a subset

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> str:
        return self.images.unreadable(i)


def check_images(images: FolderImages, desc: str, workers: int = 0, progress: bool | None = None) -> list[str]:
    """Decode every image file of ``images`` (all of its folder, also those a subset such
    as ``max_train`` leaves out; ``workers`` processes, a progress bar): one line for
    each unreadable file. A search or training would otherwise stop at the first
    one, possibly after hours."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(_Readability(images), batch_size=64, num_workers=workers, collate_fn=list)
    problems: list[str] = []
    for found in tqdm(batches(loader), total=len(loader), desc=desc, unit="batch", leave=False,
                      disable=None if progress is None else not progress):  # None: a bar on a terminal only
        problems += [p for p in found if p]
    return problems


class AugmentedSplit(Dataset):
    """In-memory images through a per-image training transform (uint8 CHW tensor in and
    out), for a DataLoader: the mobile setting on a dataset small enough for memory."""

    def __init__(self, split: Split, transform) -> None:
        self.split = split.to("cpu")
        self.transform = transform
        self.targets = split.targets

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.split.x[i]), int(self.split.y[i])


def with_train_transform(data: DataBundle, transform) -> DataBundle:
    """``data`` whose training images go through a per-image ``transform`` in the
    DataLoader's workers (the evaluation images do not)."""
    train = data.train
    train = train.augmented(transform) if isinstance(train, FolderImages) else AugmentedSplit(train, transform)
    return dataclasses.replace(data, train=train, _on_device={})


#: Warnings already printed by this process: a dataset is loaded again for every
#: training of ``nasgep evaluate`` and twice by ``nasgep prepare``; one line is enough.
_WARNED: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        print(f"warning: {text}", file=sys.stderr, flush=True)


def _sampled_side(name: str, folder: Path, headers: Sequence[tuple[str, tuple[int, int], str]]) -> int:
    """A folder dataset's image size when ``image_size`` is unset: the shorter side of the
    first sampled image; a warning when the sampled images' shorter sides differ (every
    image is resized to that one size, however large it was)."""
    sides = [min(size) for _, size, _ in headers]
    if len(set(sides)) > 1:
        _warn_once(f"datasets.{name}: the {len(sides)} images sampled from {folder} have shorter sides of "
                   f"{min(sides)} to {max(sides)} pixels; every image is resized to the first one's, {sides[0]} "
                   f"(shorter side, then a centre crop to {sides[0]}x{sides[0]}); set datasets.{name}.image_size "
                   f"to choose the size")
    return sides[0]


def _image_files(folder: Path) -> dict[str, Path]:
    """Images directly in ``folder`` (and in ``folder/images``, Tiny ImageNet's place),
    keyed by file name and by name without extension."""
    found: dict[str, Path] = {}
    for place in (folder, folder / "images"):
        if place.is_dir():
            for path in place.iterdir():
                if path.is_file() and is_image_name(path.name):
                    found[path.name] = found[path.stem] = path
    return found


#: Said of a labels file of class numbers alone, such as the ILSVRC2012 devkit's.
DEVKIT_LABELS = ("; a file of class numbers alone, such as the ILSVRC2012 devkit's "
                 "ILSVRC2012_validation_ground_truth.txt (ILSVRC ids in image order, not sorted-wnid indices), "
                 "is not read: convert it to '<image> <wnid>' lines")


def read_val_labels(labels_file: Path, images: dict[str, Path], classes: Sequence[str]) -> list[tuple[str, int]]:
    """``[(path, label)]`` of a flat validation folder from a labels file whose lines are
    ``<image> <class>`` (comma, tab or space separated; further columns ignored: a line
    with a comma is a CSV row, one with a tab is split at tabs, so that image and class
    names may hold spaces there). The class is a class-folder name of the training set (a
    wnid) or its index in sorted order; a class field of several words whose whole is no
    class stands for its first word (Kaggle's ``n01440764 10 10 200 200``); a header line
    is skipped. Every image must be labelled once, with a known class; a line of one
    field is refused (a class number alone: the ILSVRC2012 devkit's ground truth, whose
    lines were skipped and every image said to have no label)."""
    index = {name: k for k, name in enumerate(classes)}
    samples, unknown = [], []
    first: dict[str, int] = {}       # image -> the line that labelled it
    devkit = ""
    lines = read_user_text(labels_file, "labels file (<image> <class> per line)", DataError).splitlines()
    for number, line in enumerate(lines, 1):
        fields = _label_fields(line, images)
        if len(fields) < 2:
            number_alone = bool(fields) and fields[0].isascii() and fields[0].isdigit()
            if fields and (number > 1 or number_alone):     # one word; a header is line 1
                unknown.append(f"line {number}: {clip(fields[0], 40)!r} alone, not '<image> <class>'")
                devkit = DEVKIT_LABELS if number_alone else devkit
            continue
        name, label = fields[0], fields[1]
        if label not in index and len(label.split()) > 1:
            label = label.split()[0]
        if name not in images:
            if number == 1:        # a header ("ImageId,PredictionString")
                continue
            unknown.append(f"line {number}: no image {name!r}")
            continue
        image = str(images[name])
        if image in first:          # it would enter the test set twice, once under a wrong class
            unknown.append(f"line {number}: {name!r} labelled again (line {first[image]} labelled it)")
            continue
        first[image] = number
        if label in index:
            k = index[label]
        elif label.isascii() and label.isdigit() and int(label) < len(classes):    # not '²' or '١'
            k = int(label)
        else:
            unknown.append(f"line {number}: class {label!r} is not a training class folder or index")
            continue
        samples.append((image, k))
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise DataError(f"{labels_file}: {'; '.join(unknown[:3])}{more}{devkit}")
    labelled = {path for path, _ in samples}
    missing = sorted({str(p) for p in images.values()} - labelled)
    if missing:
        raise DataError(f"{labels_file}: {len(missing)} image(s) of the validation folder have no label, "
                        f"e.g. {Path(missing[0]).name}")
    return sorted(samples)


def _label_fields(line: str, images: dict[str, Path]) -> list[str]:
    """A labels file's line as fields: the first of these splits whose first field names an
    image of ``images`` (else the first one): a CSV row (quotes allowed) when the line holds
    a comma, at tabs when it holds a tab, at commas and spaces, at spaces. So image and
    class names may hold spaces in a comma- or tab-separated file (``im 1.png,cat``: split
    at spaces too, every line was refused as 'no image 'im''), and a space-separated line
    with a comma further on (``v1.png cat tench, Tinca tinca``), in its image's name or a
    tab-separated one with a leading tab still reads."""
    splits = []
    if "," in line:
        import csv

        splits.append(next(csv.reader([line], skipinitialspace=True), []))
    if "\t" in line:
        splits.append(line.split("\t"))
    splits += [line.replace(",", " ").split(), line.split()]
    splits = [[f.strip() for f in s] if any(f.strip() for f in s) else [] for s in splits]
    return next((s for s in splits if len(s) >= 2 and s[0] in images), splits[0])


def _val_labels_file(entry: dict, root: Path) -> Path | None:
    if entry.get("val_labels"):
        path = Path(entry["val_labels"])
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DataError(f"{path}: no such labels file (dataset key val_labels)")
        return path
    return next((root / name for name in VAL_LABEL_FILES if (root / name).is_file()), None)


def _folder_eval(entry: dict, root: Path, size: int, classes: Sequence[str], mode: str) -> FolderImages:
    """The test images of a folder dataset: class folders under val/, or a flat val/ with
    a labels file; decoded as ``mode``, the training images' (colour ones made grey for a
    grey training set)."""
    val_root = root / "val"
    if not val_root.is_dir():
        raise layout_error(root, f"{val_root}: no such folder")
    has_class_folders = any(p.is_dir() and p.name != "images" and not hidden(p.name) for p in val_root.iterdir())
    if has_class_folders:
        try:
            return FolderImages(val_root, size, classes=classes, mode=mode)
        except (FileNotFoundError, RuntimeError) as e:
            raise layout_error(root, f"{val_root}: {e}") from None
    images = _image_files(val_root)
    if not images:
        raise layout_error(root, f"{val_root}: neither class folders nor images")
    labels_file = _val_labels_file(entry, root)
    if labels_file is None:
        raise layout_error(root, f"{val_root} holds images but no class folders, and no labels file was found")
    return FolderImages(val_root, size, classes=classes, samples=read_val_labels(labels_file, images, classes),
                        mode=mode)


def folder_images(name: str, entry: dict, test: bool = True) -> tuple[FolderImages, FolderImages | None]:
    """A folder dataset's training images (all of train/) and, with ``test``, its test
    images (val/), listed, not decoded. Their size is ``image_size``, else the first
    sampled image's shorter side; their channels 1 when every sampled image is grey
    (like a grey .npz), else 3 (:func:`nasgep.datafiles.sample_headers`, docs/decisions.md)."""
    if not entry.get("path"):
        raise DataError(f"{name}: a folder dataset needs 'path' (a folder with train/<class>/* and val/<class>/*)")
    require_path(entry)
    root = Path(entry["path"])
    train_root = root / "train"
    try:
        classes, samples = scan_class_folders(train_root)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders / no images
        raise layout_error(root, f"{train_root}: {e}") from None
    headers = sample_headers([path for path, _ in samples])
    if not headers:
        raise layout_error(root, f"{train_root}: no readable image among the {min(len(samples), HEADER_SAMPLE)} "
                                  f"sampled from its class folders")
    size = entry.get("image_size") or _sampled_side(name, train_root, headers)
    mode = "L" if all_grey(headers) else "RGB"
    full = FolderImages(train_root, size, classes=classes, samples=samples, mode=mode)
    return full, (_folder_eval(entry, root, size, full.classes, mode) if test else None)


def _folder_bundle(name: str, entry: dict, purpose: Purpose, seed: int, stats: bool = True) -> DataBundle:
    """A folder dataset's bundle for ``purpose``; ``stats=False`` lists and splits it
    without decoding any image (mean and std left empty: :func:`listed_folder_dataset`)."""
    if purpose not in ("search", "final"):
        raise ValueError(f"purpose must be 'search' or 'final', not {purpose!r}")
    full, test = folder_images(name, entry, test=purpose == "final")
    if purpose == "search":
        train_idx, val_idx = stratified_split(full.targets, validation_size(entry, len(full), name), seed)
        train, evaluation, eval_name = full.subset(train_idx), full.subset(val_idx), "val"
        _check_split_kept(train.targets, full.targets, len(full.classes), name, full.classes)
    else:
        train, evaluation, eval_name = full, test, "test"
    if entry.get("max_train") is not None:
        if entry["max_train"] < len(train):
            # a folder lists its images class by class: the first N would be the first
            # classes only; a stratified draw, the same for every seed, keeps them all
            _, kept = stratified_split(train.targets, entry["max_train"], FOLDER_MAX_TRAIN_SEED)
            train = train.subset(kept)
        _check_classes_kept(train.targets, len(full.classes), name,
                            _MAX_TRAIN_CAUSE.format(name=name, n=entry["max_train"]))
    if not stats:
        return DataBundle(name, "folder", purpose, train, evaluation, eval_name, len(full.classes),
                          1 if full.mode == "L" else 3, full.image_size, (), (), full.classes)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(train), size=min(FOLDER_STATS_SAMPLES, len(train)), replace=False)
    decoded = [train.decoded(int(i)) for i in np.sort(sample)]
    problems = [problem for _, problem in decoded if problem]
    if problems:        # every one of the sample, not only the first
        raise unreadable_error(problems, f" among the {len(sample)} training images read for the mean/std "
                                         f"('nasgep prepare' without --no-image-check reads every one)")
    mean, std = channel_stats(torch.stack([image for image, _ in decoded]))
    return DataBundle(name, "folder", purpose, train, evaluation, eval_name, len(full.classes),
                      1 if full.mode == "L" else 3, full.image_size, mean, std, full.classes)


# --------------------------------------------------------------------------- entry point

def dataset_entry(config: dict, name: str) -> dict:
    try:
        return config["datasets"][name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (the config's datasets: {sorted(config['datasets'])})") from None


def listed_folder_dataset(config: dict, name: str, purpose: Purpose, seed: int = 0) -> DataBundle:
    """:func:`load_dataset` of a folder dataset, listed and split but no image decoded (its
    mean and std are empty): what the quick checks of ``nasgep prepare`` need before it
    decodes every image."""
    return _folder_bundle(name, dataset_entry(config, name), purpose, seed, stats=False)


def load_dataset(config: dict, name: str, purpose: Purpose = "search", seed: int = 0) -> DataBundle:
    """Load ``config['datasets'][name]`` for ``purpose``; ``seed`` fixes the search's
    validation split. Raises :class:`DataError` with what to fix."""
    entry = dataset_entry(config, name)
    kind = entry["kind"]
    need_test = purpose == "final"
    if kind in ("cifar10", "cifar100"):
        arrays = _load_cifar(config, entry, need_test)
    elif kind == "npz":
        arrays = _load_npz(entry, need_test)
    elif kind == "digits":
        arrays = _load_digits()
    elif kind == "folder":
        return _folder_bundle(name, entry, purpose, seed)
    else:
        raise DataError(f"{name}: unknown dataset kind {kind!r} (kinds: {', '.join(KINDS)})")
    return _in_memory_bundle(name, entry, arrays, purpose, seed)


__all__ = ["AugmentedSplit", "DataBundle", "DataError", "batches", "check_batch", "check_images", "check_labels",
           "FolderImages", "folder_images", "KINDS", "read_image", "scan_class_folders", "unreadable_error",
           "read_val_labels", "with_train_transform", "Split", "Source", "channel_stats",
           "load_dataset", "resize_images", "stratified_split", "split_sizes", "validation_size"]
