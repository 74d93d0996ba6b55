"""Datasets (each kind, the stratified split, error messages) and the batched augmentations."""
from __future__ import annotations

import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasgep.augment import (
    AugmentSettings,
    AutoAugmentBatch,
    AutoAugmentDraw,
    BatchAugment,
    crop_flip,
    cutout,
    draw_crop_flip,
    draw_cutout,
)
from nasgep.config import load_config
from nasgep.data import DataError, Split, load_dataset, split_sizes, stratified_split

CUDA = torch.cuda.is_available()


def config_with(datasets: dict, **extra) -> dict:
    """A validated config whose datasets are ``datasets`` (search.dataset = the first)."""
    first = next(iter(datasets))
    overrides = {"datasets": datasets, "search": {"dataset": first}, "transfer": {"source": first},
                 "workflow": {"search_datasets": [first], "ablation_dataset": first}, **extra}
    from nasgep.config import deep_merge, validate
    return validate(deep_merge({}, overrides))


# --------------------------------------------------------------------------- fixtures

def images(n: int, seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """The official python layout: five training batches, a test batch and the meta file,
    images as rows of 3072 bytes (R plane, G plane, B plane)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for b in range(1, 6):
        x = images(per_batch, b)
        y = [(i + b) % 10 for i in range(per_batch)]
        xs.append(x)
        ys += y
        rows = x.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {b} of 5", "labels": y, "data": rows,
                         "filenames": [f"{i}.png" for i in range(per_batch)]}, f)
    x_test = images(n_test, 99)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"labels": [i % 10 for i in range(n_test)],
                     "data": x_test.transpose(0, 3, 1, 2).reshape(n_test, 3072)}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": per_batch}, f)
    return np.concatenate(xs), np.asarray(ys)


def write_cifar100(root: Path, n_train: int = 300, n_test: int = 100) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        x = images(n, seed)
        with open(folder / name, "wb") as f:
            pickle.dump({"fine_labels": [i % 100 for i in range(n)], "coarse_labels": [i % 20 for i in range(n)],
                         "data": x.transpose(0, 3, 1, 2).reshape(n, 3072)}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{k}" for k in range(100)],
                     "coarse_label_names": [f"super{k}" for k in range(20)]}, f)


def as_official(monkeypatch, official, folder: Path) -> None:
    """Make torchvision take the test's small stand-in files for the official ones: their
    MD5s become the expected checksums (the real files are 170 MB)."""
    from torchvision.datasets.utils import calculate_md5

    def md5s(entries):
        return [[name, calculate_md5(str(folder / name))] for name, _ in entries]

    monkeypatch.setattr(official, "train_list", md5s(official.train_list))
    monkeypatch.setattr(official, "test_list", md5s(official.test_list))
    monkeypatch.setattr(official, "meta", {**official.meta,
                                           "md5": calculate_md5(str(folder / official.meta["filename"]))})


# --------------------------------------------------------------------------- CIFAR

def test_cifar10_official_layout(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    x, y = write_cifar10(tmp_path)
    as_official(monkeypatch, CIFAR10, tmp_path / "cifar-10-batches-py")
    config = config_with({"c10": {"kind": "cifar10", "path": str(tmp_path), "download": False, "val_size": 20}})
    final = load_dataset(config, "c10", "final")
    assert final.train.x.shape == (100, 3, 32, 32) and final.train.x.dtype == torch.uint8
    assert torch.equal(final.train.x, torch.from_numpy(x).permute(0, 3, 1, 2))   # NHWC -> NCHW, official order
    assert final.train.y.tolist() == y.tolist()
    assert (final.eval_name, len(final.eval), final.num_classes) == ("test", 30, 10)
    assert final.classes[0] == "airplane" and final.in_channels == 3 and final.image_size == 32
    expected_mean = x.reshape(-1, 3).mean(0) / 255
    assert np.allclose(final.mean, expected_mean, atol=1e-6)
    search = load_dataset(config, "c10", "search", seed=3)
    assert (len(search.train), len(search.eval), search.eval_name) == (80, 20, "val")
    assert sorted(Counter(search.eval.y.tolist()).values()) == [2] * 10        # stratified


def test_cifar100_official_layout(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    write_cifar100(tmp_path)
    as_official(monkeypatch, CIFAR100, tmp_path / "cifar-100-python")
    config = config_with({"c100": {"kind": "cifar100", "path": str(tmp_path), "download": False, "val_size": 100}})
    search = load_dataset(config, "c100", "search")
    assert search.num_classes == 100 and search.classes[7] == "class7"
    assert (len(search.train), len(search.eval)) == (200, 100)
    assert sorted(set(Counter(search.eval.y.tolist()).values())) == [1]          # one per class
    final = load_dataset(config, "c100", "final")
    assert (len(final.train), len(final.eval)) == (300, 100)


def test_cifar_absent_without_download_says_where(tmp_path):
    config = config_with({"c10": {"kind": "cifar10", "download": False}}, data_dir=str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"d/cifar10/cifar-10-batches-py.*data_batch_1.*download is off"):
        load_dataset(config, "c10")


# a file as the path: 'lacks data_batch_1, ...' (download off) or the download's 'File exists'
@pytest.mark.parametrize("download", [False, True])
def test_a_cifar_path_that_is_a_file_is_named_as_one(tmp_path, download):
    (tmp_path / "cifar").write_text("not a folder")
    config = config_with({"c10": {"kind": "cifar10", "path": str(tmp_path / "cifar"), "download": download}})
    with pytest.raises(DataError, match=r"^cifar10: .*/cifar is a file, not a folder; the dataset's path is the "
                                        r"folder that holds .*/cifar/cifar-10-batches-py/\{data_batch_1"):
        load_dataset(config, "c10")
    assert (tmp_path / "cifar").read_text() == "not a folder"


def test_cifar_offline_download_says_where(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    config = config_with({"c100": {"kind": "cifar100", "path": str(tmp_path)}})
    expected = r"could not download.*no route to host.*cifar-100-python/\{train, test, meta\}"
    with pytest.raises(DataError, match=expected):
        load_dataset(config, "c100")


# --------------------------------------------------------------------------- npz

def test_npz_and_the_search_never_reads_the_test_set(tmp_path):
    path = tmp_path / "set.npz"
    x_train = images(50, 1, size=16)
    y_train = np.arange(50) % 5
    # a test set that cannot load: the search must not touch it
    np.savez(path, x_train=x_train, y_train=y_train, x_test=np.zeros((4, 16, 16, 3), np.float32), y_test=np.zeros(4))
    config = config_with({"s": {"kind": "npz", "path": str(path), "val_fraction": 0.2}})
    search = load_dataset(config, "s", "search")
    assert (len(search.train), len(search.eval), search.num_classes, search.image_size) == (40, 10, 5, 16)
    with pytest.raises(DataError, match=r"set\.npz:x_test: expected uint8"):
        load_dataset(config, "s", "final")


def test_npz_missing_key_names_file_and_key(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, x_train=images(4, 0), y_train=np.zeros(4, np.int64), x_test=images(2, 1))
    config = config_with({"b": {"kind": "npz", "path": str(path)}})
    with pytest.raises(DataError, match=r"broken\.npz: missing key 'y_test'"):
        load_dataset(config, "b")
    config = config_with({"b": {"kind": "npz", "path": str(tmp_path / "nope.npz")}})
    with pytest.raises(DataError, match=r"nope\.npz: no such \.npz file"):
        load_dataset(config, "b")


def test_shared_cifar10_npz_loads(shared_data):
    config = config_with({"c10": {"kind": "npz", "path": str(shared_data / "cifar10-lossless-5k.npz"),
                                  "val_size": 500}})
    search = load_dataset(config, "c10", "search", seed=0)
    assert (len(search.train), len(search.eval), search.num_classes) == (3500, 500, 10)
    assert search.train.x.shape[1:] == (3, 32, 32)
    assert all(0.4 < m < 0.55 for m in search.mean) and all(0.2 < s < 0.3 for s in search.std)
    final = load_dataset(config, "c10", "final")
    assert (len(final.train), len(final.eval)) == (4000, 1000)


# --------------------------------------------------------------------------- folder

def write_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 6, val_per_class: int = 2) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", per_class), ("val", val_per_class)):
        for k, name in enumerate(classes):
            (root / part / name).mkdir(parents=True)
            for i in range(n):
                h, w = 20 + 3 * i, 24 + 2 * k        # varied sizes and aspect ratios
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                mode = "L" if i == 0 else "RGB"      # a grey image is read as RGB
                image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
                image.save(root / part / name / f"{i}.png")


def test_folder_dataset(tmp_path):
    write_folder(tmp_path)
    config = config_with({"f": {"kind": "folder", "path": str(tmp_path), "image_size": 16, "val_size": 3}})
    search = load_dataset(config, "f", "search")
    assert not search.in_memory and search.classes == ("cat", "dog", "fox")
    assert (len(search.train), len(search.eval), search.num_classes, search.in_channels) == (15, 3, 3, 3)
    assert sorted(search.eval.targets) == [0, 1, 2]
    image, label = search.train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and label == 0
    final = load_dataset(config, "f", "final")
    assert (len(final.train), len(final.eval), final.eval_name) == (18, 6, "test")
    unsized = config_with({"f": {"kind": "folder", "path": str(tmp_path), "val_size": 3}})
    assert load_dataset(unsized, "f", "search").image_size == 20     # the first image's shorter side


def test_folder_errors(tmp_path):
    config = config_with({"f": {"kind": "folder", "path": str(tmp_path), "image_size": 16}})
    with pytest.raises(DataError, match=r"train: no such folder.*train/<class>/<image>"):
        load_dataset(config, "f")
    write_folder(tmp_path)
    (tmp_path / "val" / "emu").mkdir()
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "emu" / "0.png")
    with pytest.raises(DataError, match=r"val: class folder\(s\) emu not in the training set"):
        load_dataset(config, "f", "final")


# --------------------------------------------------------------------------- digits

def test_digits():
    config = load_config(Path(__file__).resolve().parents[1] / "config" / "demo.yaml")
    search = load_dataset(config, "cifar10", "search")
    assert search.kind == "digits" and search.train.x.shape[1:] == (1, 8, 8)
    assert (len(search.train), len(search.eval), search.num_classes) == (1150, 288, 10)
    assert int(search.train.x.max()) == 255 and int(search.train.x.min()) == 0
    final = load_dataset(config, "cifar10", "final")
    assert (len(final.train), len(final.eval)) == (1438, 359)
    # the fixed train/test split: the search's images all come from the training part
    train_set = {bytes(im.numpy()) for im in final.train.x}
    test_set = {bytes(im.numpy()) for im in final.eval.x}
    assert all(bytes(im.numpy()) in train_set for im in search.eval.x[:50])
    assert len(test_set - train_set) > 300  # (a few digits are pixel-identical)
    big = load_dataset(config, "imagenet", "search")
    assert big.train.x.shape[1:] == (1, 32, 32) and big.image_size == 32


def test_max_train_truncates_the_training_split_only():
    config = config_with({"d": {"kind": "digits", "val_fraction": 0.2, "max_train": 100}})
    search = load_dataset(config, "d", "search")
    assert (len(search.train), len(search.eval)) == (100, 288)


def test_unknown_dataset_name():
    config = config_with({"d": {"kind": "digits"}})
    with pytest.raises(DataError, match="unknown dataset 'x'"):
        load_dataset(config, "x")


# --------------------------------------------------------------------------- the split

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=300), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_stratified_split_properties(labels, fraction, seed):
    labels = np.asarray(labels)
    n_val = min(len(labels) - 1, max(1, round(fraction * len(labels))))
    train, val = stratified_split(labels, n_val, seed)
    assert len(val) == n_val and len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    counts = Counter(labels.tolist())
    held = Counter(labels[val].tolist())
    for k, c in counts.items():   # each class gives its proportional share, within one image
        assert abs(held.get(k, 0) - c * n_val / len(labels)) < 1
    again = stratified_split(labels, n_val, seed)
    assert np.array_equal(again[1], val)


def test_split_is_seeded():
    labels = np.arange(1000) % 10
    a = stratified_split(labels, 100, 0)[1]
    assert np.array_equal(a, stratified_split(labels, 100, 0)[1])
    assert not np.array_equal(a, stratified_split(labels, 100, 1)[1])
    assert split_sizes(np.array([5, 3, 2]), 5).tolist() == [3, 1, 1]
    with pytest.raises(DataError):
        stratified_split(labels, 1000, 0)


# --------------------------------------------------------------------------- augmentations

def batch(n: int = 16, size: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def naive_crop_flip(x, offsets, flips, pad):
    out = []
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    for img, (oy, ox), flip in zip(padded, offsets.tolist(), flips.tolist()):
        crop = img[:, oy:oy + h, ox:ox + w]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out)


def test_crop_flip_matches_a_per_image_loop():
    x = batch(64, size=12)
    offsets, flips = draw_crop_flip(64, 4, torch.Generator().manual_seed(1))
    assert torch.equal(crop_flip(x, offsets, flips, 4), naive_crop_flip(x, offsets, flips, 4))
    centre = torch.full((64, 2), 4)
    assert torch.equal(crop_flip(x, centre, torch.zeros(64, dtype=torch.bool), 4), x)
    assert torch.equal(crop_flip(x, centre, torch.ones(64, dtype=torch.bool), 4), x.flip(-1))


def test_cutout_zeroes_one_clipped_square():
    x = torch.ones(3, 2, 10, 10)
    out = cutout(x, torch.tensor([[5, 5], [0, 0], [9, 4]]), 4)
    assert (out[0, :, 3:7, 3:7] == 0).all() and out[0].sum() == 2 * (100 - 16)
    assert (out[1, :, :2, :2] == 0).all() and out[1].sum() == 2 * (100 - 4)     # clipped at a corner
    assert out[2].sum() == 2 * (100 - 3 * 4)                                     # rows 7..9 only
    assert torch.equal(cutout(x, torch.tensor([[5, 5]] * 3), 1), x)              # length 1: no hole
    centres = draw_cutout(500, 10, 12, torch.Generator().manual_seed(0))         # anywhere in the image
    assert centres[:, 0].min() == 0 and centres[:, 0].max() == 9
    assert centres[:, 1].min() == 0 and centres[:, 1].max() == 11


SWITCHES_OFF = dict(crop_flip=False, cutout=False, autoaugment=False, normalize=False)


def run_pipeline(x, seed=0, **switches) -> torch.Tensor:
    aug = BatchAugment(AugmentSettings(**{**SWITCHES_OFF, **switches}), [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    return aug(x, torch.Generator().manual_seed(seed))


def test_each_switch_changes_what_it_should_and_nothing_else():
    x = batch(32)
    plain = run_pipeline(x)
    assert torch.allclose(plain, x.float() / 255, rtol=1e-6, atol=0)            # all off: just scaling
    normalized = run_pipeline(x, normalize=True)
    mean, std = torch.tensor([0.4, 0.5, 0.6])[:, None, None], torch.tensor([0.2, 0.25, 0.3])[:, None, None]
    assert torch.allclose(normalized, (x.float() / 255 - mean) / std, rtol=1e-6, atol=1e-6)
    cropped = run_pipeline(x, crop_flip=True)
    assert not torch.equal(cropped, plain)
    offsets, flips = draw_crop_flip(32, 4, torch.Generator())  # shape check only
    assert offsets.shape == (32, 2) and flips.shape == (32,)
    # cutout differs from its input only inside a square of at most 16x16 zeros, per image
    holed = run_pipeline(x, crop_flip=True, cutout=True, cutout_length=16)
    diff = (holed != cropped).any(dim=1)
    for d, img in zip(diff, holed):
        rows, cols = d.any(1).nonzero(), d.any(0).nonzero()
        assert len(rows) <= 16 and len(cols) <= 16
        assert (img[:, d] == 0).all()
    assert diff.any()
    # switching AutoAugment or CutOut on leaves the crops where they were
    with_aa = run_pipeline(x, crop_flip=True, autoaugment=True)
    assert not torch.equal(with_aa, cropped)
    same_crop = run_pipeline(x, crop_flip=True, autoaugment=True, cutout=True, cutout_length=16)
    assert torch.equal(same_crop[~(same_crop == 0).all(1, keepdim=True).expand_as(same_crop)],
                       with_aa[~(same_crop == 0).all(1, keepdim=True).expand_as(same_crop)])
    # same seed, same result; another seed, another
    assert torch.equal(run_pipeline(x, 5, crop_flip=True, autoaugment=True, cutout=True),
                       run_pipeline(x, 5, crop_flip=True, autoaugment=True, cutout=True))
    assert not torch.equal(run_pipeline(x, 5, crop_flip=True), run_pipeline(x, 6, crop_flip=True))


def torchvision_draw(aa: AutoAugmentBatch, seed: int) -> AutoAugmentDraw:
    """Replay the global-RNG draws torchvision's AutoAugment.forward makes for one image."""
    torch.manual_seed(seed)
    policy = int(torch.randint(len(aa.policies), ()))
    apply, negate = [False, False], [False, False]
    for slot, (name, prob, _level) in enumerate(aa.policies[policy]):
        apply[slot] = bool(torch.rand(()) <= prob)
        if apply[slot]:
            _fn, signed = aa._space[name]
            if _fn(10, 32, 32) is not None and signed:
                negate[slot] = bool(torch.rand(()) <= 0.5)
    return AutoAugmentDraw(torch.tensor([policy]), torch.tensor([apply]), torch.tensor([negate]))


def test_autoaugment_is_torchvisions_cifar10_policy():
    from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy

    tv = AutoAugment(AutoAugmentPolicy.CIFAR10)
    aa = AutoAugmentBatch()
    assert aa.policies == tv._policies and len(aa.policies) == 25
    x = batch(1)
    changed = 0
    for seed in range(40):
        draw = torchvision_draw(aa, seed)
        torch.manual_seed(seed)
        expected = tv(x[0])
        assert torch.equal(aa.apply(x, draw)[0], expected), f"seed {seed}"
        changed += not torch.equal(expected, x[0])
    assert changed > 10


def test_autoaugment_in_groups_equals_one_image_at_a_time():
    aa = AutoAugmentBatch()
    x = batch(200)
    draw = aa.draw(200, torch.Generator().manual_seed(0))
    grouped = aa.apply(x, draw)
    for i in range(0, 200, 7):
        one = AutoAugmentDraw(draw.policy[i:i + 1], draw.apply[i:i + 1], draw.negate[i:i + 1])
        assert torch.equal(grouped[i:i + 1], aa.apply(x[i:i + 1], one))
    assert set(draw.policy.tolist()) == set(range(25))


def test_augment_grey_images():
    out = run_pipeline(batch(8, size=8, channels=1), crop_flip=True, autoaugment=True, cutout=True,
                       cutout_length=3, normalize=False)
    assert out.shape == (8, 1, 8, 8) and out.dtype == torch.float32


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_gpu_batches_match_cpu_batches():
    x = batch(256)
    kwargs = dict(crop_flip=True, cutout=True, normalize=True, cutout_length=16)
    cpu = run_pipeline(x, 3, **kwargs)
    gpu = run_pipeline(x.cuda(), 3, **kwargs)
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu())
    aa_cpu = run_pipeline(x, 3, autoaugment=True, **kwargs)
    aa_gpu = run_pipeline(x.cuda(), 3, autoaugment=True, **kwargs).cpu()
    # same draws; a few pixels of interpolating/blending ops may round differently
    assert (aa_cpu != aa_gpu).float().mean() < 0.01


def test_split_holds_uint8_nchw():
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))


def test_a_second_ctrl_c_while_abandoned_workers_stop_is_not_a_traceback(monkeypatch):
    """Ctrl-C twice in quick succession during a training with DataLoader workers: the
    second one landed while `batches` stopped the workers of the iteration the first one
    had abandoned, and came out as an 'Exception ignored in: <generator object batches>'
    traceback after 'nasgep train: interrupted'. One that ends an iteration normally is
    still raised."""
    import sys

    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    from nasgep.data import batches

    real = _MultiProcessingDataLoaderIter._shutdown_workers

    def interrupted(self):        # the workers stop, and a Ctrl-C arrives meanwhile (once)
        once = not getattr(self, "_interrupted", False)
        self._interrupted = True
        real(self)
        if once:
            raise KeyboardInterrupt

    monkeypatch.setattr(_MultiProcessingDataLoaderIter, "_shutdown_workers", interrupted)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=2, num_workers=1)
    abandoned = batches(loader)
    next(abandoned)
    del abandoned                       # closed as the first Ctrl-C unwinds the training loop
    assert unraisable == []
    with pytest.raises(KeyboardInterrupt):
        for _ in batches(loader):       # at the end of an iteration: the verb's to report
            pass


class _ParentDeathSignal:
    """A dataset whose items are the parent-death signal of the process that reads them."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        import ctypes

        sig = ctypes.c_int(0)
        ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig))     # PR_GET_PDEATHSIG
        return sig.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_dataloader_workers_end_with_the_process_that_reads_them():
    """A search worker ended by SIGTERM left a DataLoader worker running for minutes
    (PyTorch's own check missed a parent that died while the worker started): every
    DataLoader read through data.batches now has workers that the kernel kills with it."""
    import signal

    from torch.utils.data import DataLoader

    from nasgep.data import batches

    seen = [int(v) for batch in batches(DataLoader(_ParentDeathSignal(), batch_size=1, num_workers=2))
            for v in batch]
    assert seen == [signal.SIGKILL, signal.SIGKILL]


class _Pid:
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        import os

        return os.getpid()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a fork server is POSIX's")
def test_dataloader_workers_started_by_a_fork_server_read():
    """The fork server (Python 3.14's default start method on Linux) is the kernel's parent
    of the workers it starts, not the process that reads the loader: the parent-death
    set-up took that for its parent's death and ended every worker at once ('DataLoader
    worker (pid(s) N) exited unexpectedly')."""
    from torch.utils.data import DataLoader

    from nasgep.data import batches

    loader = DataLoader(_Pid(), batch_size=1, num_workers=2, multiprocessing_context="forkserver")
    assert len([int(v) for batch in batches(loader) for v in batch]) == 2


def _sigterm_disposition(pid: int) -> tuple[bool, bool]:
    """(ignored, caught) for SIGTERM in process ``pid``, as the kernel has it."""
    import signal

    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    bit = 1 << (signal.SIGTERM - 1)
    return bool(int(fields["SigIgn"], 16) & bit), bool(int(fields["SigCgt"], 16) & bit)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/status is Linux's")
@pytest.mark.parametrize("sigterm", ["unwinds", "ignored"])
def test_dataloader_workers_of_a_search_worker_end_on_pytorchs_terminate(sigterm, monkeypatch):
    """A DataLoader worker forked by a search worker inherits its SIGTERM handler
    (:func:`nasgep.processes.unwind_on_sigterm`), or SIG_IGN once the search worker's first
    SIGTERM came: Python's ``signal.getsignal`` in the worker still says so. The kernel does
    not: PyTorch puts its own SIGTERM handler in every DataLoader worker before
    ``worker_init_fn`` runs, and it ends the worker (exit 0) on the loader's own terminate
    (which it sends to a worker that does not stop within 5 s). Should PyTorch stop doing
    that, ``nasgep.processes.loader_worker_init`` has to reset SIGTERM itself."""
    import signal

    from torch.utils.data import DataLoader

    from nasgep.processes import loader_worker_init, unwind_on_sigterm

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)      # unwind_on_sigterm sets it
    before = signal.getsignal(signal.SIGTERM)
    try:
        unwind_on_sigterm()
        if sigterm == "ignored":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        it = iter(DataLoader(_Pid(), batch_size=1, num_workers=1, worker_init_fn=loader_worker_init()))
        next(it)                            # the worker is past its set-up
    finally:
        signal.signal(signal.SIGTERM, before)
    worker = it._workers[0]
    try:
        assert _sigterm_disposition(worker.pid) == (False, True)
        worker.terminate()
        worker.join(60)
        assert worker.exitcode == 0
    finally:
        if worker.exitcode is None:
            worker.kill()
        it._shutdown_workers()
