"""An ImageNet-format folder at 224 px: the layouts users have (class folders, a flat
val/ with a labels file), the mobile setting's augmentation in the loader's workers, and
prepare -> transfer (ImageNet stem) -> Table III on it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nasgep.cli import main
from nasgep.config import load_config
from nasgep.data import DataError, FolderImages, load_dataset

WNIDS = ("n01440764", "n01443537", "n02102040")   # tench, goldfish, English springer
from genomes import GENOME  # noqa: E402 - shared test data


def _photo(rng: np.random.Generator, k: int, height: int, width: int):
    """A JPEG-able RGB image whose colour and stripes depend on its class."""
    from PIL import Image

    base = np.zeros((height, width, 3), dtype=np.float64)
    base[..., k % 3] = 160
    stripes = (np.arange(width)[None, :] // (8 + 8 * k)) % 2
    base += 60 * stripes[..., None] + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def write_imagenet(root: Path, train_per_class: int = 5, val_per_class: int = 2, flat_val: bool = False) -> Path:
    """train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (or a flat val/ with Kaggle's
    LOC_val_solution.csv), around 224 px, sizes and aspect ratios varying like ImageNet's."""
    rng = np.random.default_rng(0)
    solution = ["ImageId,PredictionString"]
    number = 0
    for k, wnid in enumerate(WNIDS):
        for part, n in (("train", train_per_class), ("val", val_per_class)):
            for i in range(n):
                height, width = 224 + 12 * i, 224 + 20 * ((i + k) % 3)
                if part == "train":
                    path = root / "train" / wnid / f"{wnid}_{i}.JPEG"
                else:
                    number += 1
                    name = f"ILSVRC2012_val_{number:08d}"
                    path = root / "val" / (f"{name}.JPEG" if flat_val else f"{wnid}/{name}.JPEG")
                    solution.append(f"{name},{wnid} 10 10 200 200")
                path.parent.mkdir(parents=True, exist_ok=True)
                _photo(rng, k, height, width).save(path, quality=90)
    if flat_val:
        (root / "LOC_val_solution.csv").write_text("\n".join(solution) + "\n")
    return root


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return write_imagenet(tmp_path_factory.mktemp("imagenet"))


def folder_config(root: Path, **entry) -> dict:
    """A validated config with the folder dataset ``imagenet`` beside the default ones."""
    dataset = json.dumps({"kind": "folder", "path": str(root), **entry})
    return load_config(None, [f"datasets={{cifar10: {{kind: cifar10}}, imagenet: {dataset}}}",
                              "workflow.search_datasets=[cifar10]"])


# --------------------------------------------------------------------------- layouts

def test_class_folders_at_224(imagenet):
    data = load_dataset(folder_config(imagenet, image_size=224), "imagenet", "final")
    assert data.classes == WNIDS and (len(data.train), len(data.eval)) == (15, 6)
    image, label = data.eval[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.uint8 and label == 0


@pytest.mark.parametrize("labels", ["kaggle", "names", "indices"])
def test_flat_val_with_a_labels_file(tmp_path, labels):
    root = write_imagenet(tmp_path, train_per_class=2, val_per_class=2, flat_val=True)
    entry = {"image_size": 224}
    if labels != "kaggle":   # a generic list: "<file> <wnid>" or "<id> <index in sorted wnids>"
        lines = (root / "LOC_val_solution.csv").read_text().splitlines()[1:]
        (root / "LOC_val_solution.csv").unlink()
        rows = [line.split(",") for line in lines]
        text = "".join(f"{name}.JPEG {pred.split()[0]}\n" if labels == "names"
                       else f"{name} {WNIDS.index(pred.split()[0])}\n" for name, pred in rows)
        (root / "my_labels.txt").write_text(text)
        entry["val_labels"] = "my_labels.txt"
    data = load_dataset(folder_config(root, **entry), "imagenet", "final")
    assert isinstance(data.eval, FolderImages) and len(data.eval) == 6
    assert data.eval.targets == [0, 0, 1, 1, 2, 2]       # ILSVRC2012_val_00000001.. in class order here


def test_flat_val_errors_name_the_layout(tmp_path):
    root = write_imagenet(tmp_path, train_per_class=2, val_per_class=1, flat_val=True)
    solution = root / "LOC_val_solution.csv"
    text = solution.read_text()
    config = folder_config(root, image_size=224)
    solution.unlink()
    with pytest.raises(DataError, match=r"no labels file.*train/<class>/<image>.*val_labels"):
        load_dataset(config, "imagenet", "final")
    solution.write_text(text.replace("n01443537", "n99999999"))
    with pytest.raises(DataError, match=r"LOC_val_solution.csv: line 3: class 'n99999999'"):
        load_dataset(config, "imagenet", "final")
    solution.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"1 image\(s\) of the validation folder have no label"):
        load_dataset(config, "imagenet", "final")
    with pytest.raises(DataError, match=r"no such labels file"):
        load_dataset(folder_config(root, val_labels="nope.txt"), "imagenet", "final")
    # an image labelled twice entered the test set twice (8 test images from 6); a
    # superscript digit passed isdigit() and failed int() in a traceback
    lines = text.splitlines()
    solution.write_text("\n".join([*lines, lines[1].replace("n01443537", "n01530575")]) + "\n")
    with pytest.raises(DataError, match=r"LOC_val_solution.csv: line \d+: 'ILSVRC2012_val_\d+' labelled again "
                                        r"\(line 2 labelled it\)"):
        load_dataset(config, "imagenet", "final")
    (root / "my_labels.txt").write_text("".join(f"{line.split(',')[0]} {'²' if k == 0 else 0}\n"
                                                for k, line in enumerate(lines[1:])))
    with pytest.raises(DataError, match=r"my_labels.txt: line 1: class '²' is not a training class folder or index"):
        load_dataset(folder_config(root, image_size=224, val_labels="my_labels.txt"), "imagenet", "final")
    for digit in ("١", "１"):     # Arabic-Indic and full-width one: int() reads them as 1
        (root / "my_labels.txt").write_text("".join(f"{line.split(',')[0]} {digit if k == 0 else 0}\n"
                                                    for k, line in enumerate(lines[1:])))
        with pytest.raises(DataError, match=rf"my_labels.txt: line 1: class '{digit}' is not a training class"):
            load_dataset(folder_config(root, image_size=224, val_labels="my_labels.txt"), "imagenet", "final")
    solution.write_bytes(text.encode("latin-1").replace(b"n01443537", b"n0144353\xe9", 1))
    with pytest.raises(DataError, match=r"LOC_val_solution.csv: not UTF-8 text \(byte 0xe9 at position \d+, line 3\)"):
        load_dataset(config, "imagenet", "final")


def test_the_devkits_ground_truth_is_refused_for_what_it_is(tmp_path):
    """The ILSVRC2012 devkit's ILSVRC2012_validation_ground_truth.txt named as val_labels
    (a class number per line, in image order): its lines were skipped as having one field,
    and the error said that every image 'has no label'; a line of one word (an image
    without its class) likewise."""
    root = write_imagenet(tmp_path, train_per_class=2, val_per_class=1, flat_val=True)
    (root / "LOC_val_solution.csv").unlink()
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n361\n171\n")
    config = folder_config(root, image_size=224, val_labels="ILSVRC2012_validation_ground_truth.txt")
    with pytest.raises(DataError, match=r"ILSVRC2012_validation_ground_truth.txt: line 1: '490' alone, not "
                                        r"'<image> <class>'; line 2: .* is not read: convert it to "
                                        r"'<image> <wnid>' lines"):
        load_dataset(config, "imagenet", "final")
    (root / "my_labels.txt").write_text("image class\nILSVRC2012_val_00000001 n01440764\nILSVRC2012_val_00000002\n"
                                        "ILSVRC2012_val_00000003 n02102040\n")
    with pytest.raises(DataError, match=r"my_labels.txt: line 3: 'ILSVRC2012_val_00000002' alone, not "
                                        r"'<image> <class>'$"):
        load_dataset(folder_config(root, image_size=224, val_labels="my_labels.txt"), "imagenet", "final")


# --------------------------------------------------------------------------- the transfer

def transfer_config(tmp_path: Path, imagenet: Path, workers: int = 2) -> Path:
    """A one-seed study on digits whose transfer goes to the ImageNet folder at 224 px:
    tiny channels, one epoch, decoding in ``workers`` loader processes."""
    config = {
        "name": "inet", "results_dir": str(tmp_path / "results"), "seeds": [0], "device": "cpu",
        "datasets": {"cifar10": {"kind": "digits"},
                     "imagenet": {"kind": "folder", "label": "ImageNet (tiny)", "path": str(imagenet),
                                  "image_size": 224}},
        "workflow": {"search_datasets": ["cifar10"]},
        "train": {"channels": 4, "cells_per_stage": 1, "num_workers": workers},
        "transfer": {"dataset": "imagenet", "source": "cifar10", "epochs": 1, "channels": 4,
                     "batch_size": 4, "lr": 0.05},
    }
    path = tmp_path / "inet.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_mobile_setting_crops_in_the_loader_workers(tmp_path, imagenet):
    from torch import nn

    from nasgep.train import Trainer, training_settings

    config = load_config(transfer_config(tmp_path, imagenet))
    settings = training_settings(config, variant="cutout_aa", stem="imagenet")
    augment = settings.augment
    assert (augment.random_resized_crop, augment.color_jitter) == (True, 0.4)
    assert not (augment.crop_flip or augment.cutout or augment.autoaugment)   # no CIFAR pipeline at 224 px
    assert settings.num_workers == 2
    data = load_dataset(config, "imagenet", "final")
    trainer = Trainer(nn.Sequential(nn.Conv2d(3, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), data, settings,
                      progress=False)
    names = [type(t).__name__ for t in trainer.data.train.transform.transforms]
    assert names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    first, second = trainer.data.train[0][0], trainer.data.train[0][0]
    assert first.shape == (3, 224, 224) and not torch.equal(first, second)     # a new crop each time
    assert torch.equal(trainer.data.eval[0][0], trainer.data.eval[0][0])      # the test images: fixed


def test_prepare_transfer_table3_at_224(tmp_path, imagenet, capsys):
    cfg = transfer_config(tmp_path, imagenet)
    results = tmp_path / "results"
    genome = tmp_path / "best.json"
    genome.write_text(json.dumps({"genome": GENOME, "fitness": 60.0}))
    summary = results / "data" / "imagenet.json"
    assert main(["prepare", "--config", str(cfg), "--dataset", "imagenet", "--out", str(summary)]) == 0
    prepared = json.loads(summary.read_text())
    assert (prepared["train"], prepared["test"], prepared["image_size"], prepared["num_classes"]) == (15, 6, 224, 3)

    out = results / "transfer" / "imagenet"
    assert main(["train", "--genome", str(genome), "--config", str(cfg), "--dataset", "imagenet",
                 "--variant", "cutout_aa", "--stem", "imagenet", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["stem"], metrics["epochs"], metrics["dataset"]) == ("imagenet", 1, "imagenet")
    assert 0 <= metrics["test_error"] <= 100 and metrics["test_top5_error"] is None   # 3 classes: no top-5
    weights = torch.load(out / "model.pt", weights_only=True)
    stem = [v for k, v in weights.items() if k.startswith("stem") and v.dim() == 4]
    assert [tuple(w.shape[:2]) for w in stem] == [(2, 3), (4, 2), (4, 4)]      # 3 -> C/2 -> C -> C, C = 4

    tables = results / "tables"
    assert main(["tables", "--config", str(cfg), "--out", str(tables)]) == 0
    t3 = pd.read_csv(tables / "table3.csv")
    measured = t3[t3["source"] == "measured"].iloc[0]
    assert measured["status"] == "measured"
    assert measured["top1_error"] == pytest.approx(metrics["test_error"])
    # a transfer made under another schedule than the config's is not tabled as its result
    # (Snakemake's records lost; the seeds' check cannot see it: the transfer is one run)
    capsys.readouterr()
    assert main(["tables", "--config", str(cfg), "--set", "transfer.lr=0.1", "--out", str(tmp_path / "t2")]) == 2
    assert (f"{out} was trained with other settings than the config's (train.lr differs); rerun it with this "
            "config (snakemake --forcerun transfer") in capsys.readouterr().err
