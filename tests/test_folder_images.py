"""A folder of a user's own images with the faults real folders have: a truncated or
non-image file, hidden folders and files, 16-bit grey PNGs, a single class. Each is
named in one line before work is lost, or read correctly."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from nasgep.cli import main
from nasgep.data import DataError, load_dataset, read_image, scan_class_folders

CLASSES = ("cat", "dog", "ship")
EXAMPLE_GENOME = Path(__file__).resolve().parents[1] / "examples" / "hand_genome.json"
TINY_SEARCH = {"population": 3, "reduction_population": 2, "gene_pool": 6, "gene_pool_max": 8, "genes_min": 1,
               "genes_max": 2, "max_epochs": 3, "max_generations": 2, "budget_hours": 1, "channels": 4,
               "cells_per_stage": 1, "batch_size": 16, "devices": ["cpu"], "dataset": "mine",
               "augment": {"autoaugment": False, "cutout_length": 8}}


def write_folder(root: Path, train: int = 12, val: int = 4, size: int = 16) -> Path:
    """root/{train,val}/<class>/*.png, each class its own colour."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        for part, n in (("train", train), ("val", val)):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.normal(60 + 60 * k, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels, "RGB").save(folder / f"{i:03d}.png")
    return root


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_config(tmp_path: Path, root: Path, **train) -> Path:
    config = {"name": "mine", "results_dir": str(tmp_path / "results"), "tracking": {"enabled": False},
              "datasets": {"mine": {"kind": "folder", "path": str(root), "val_fraction": 0.25}},
              "search": TINY_SEARCH,
              "train": {"epochs": 1, "channels": 4, "cells_per_stage": 1, "batch_size": 16, "num_workers": 0,
                        "augment": {"cutout_length": 8},
                        **train}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def only_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_hidden_folders_and_files_are_neither_classes_nor_images(tmp_path):
    from PIL import Image

    root = write_folder(tmp_path / "imgs")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (16, 16)).save(root / "train" / ".ipynb_checkpoints" / "x.png")
    (root / "train" / "cat" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")   # macOS metadata
    (root / "train" / "dog" / ".thumbs").mkdir()
    Image.new("RGB", (16, 16)).save(root / "train" / "dog" / ".thumbs" / "t.png")
    classes, samples = scan_class_folders(root / "train")
    assert classes == list(CLASSES) and len(samples) == 36
    data = load_dataset({"datasets": {"mine": {"kind": "folder", "path": str(root)}}}, "mine", "final")
    assert data.classes == CLASSES and len(data.train) == 36


def test_the_image_rule_is_torchvisions_and_a_flat_val_ignores_hidden_files(tmp_path):
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from nasgep.datafiles import IMAGE_EXTENSIONS

    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS
    root = write_folder(tmp_path / "imgs", val=0)
    for f in (root / "val").iterdir():
        f.rmdir()
    lines = []
    for k, name in enumerate(CLASSES):
        Image.new("RGB", (16, 16), (80 * k, 0, 0)).save(root / "val" / f"v{k}.png")
        lines.append(f"v{k}.png {name}")
    (root / "val" / ".ipynb_checkpoints").mkdir()                  # not a class folder
    (root / "val" / "._v0.png").write_bytes(b"\x00\x05\x16\x07")   # not an image to label
    (root / "val_labels.txt").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())   # with a BOM
    data = load_dataset({"datasets": {"mine": {"kind": "folder", "path": str(root)}}}, "mine", "final")
    assert len(data.eval) == 3 and sorted(data.eval.targets) == [0, 1, 2]


@pytest.mark.parametrize("separator", [",", "\t", "quoted"])
def test_a_labels_file_names_images_and_classes_with_spaces(tmp_path, separator):
    """A comma- or tab-separated labels file of names with spaces (a camera's 'IMG 0001.png',
    a class folder 'sea ship'): every line was split at the spaces too, and refused as
    "no image 'IMG'"."""
    from PIL import Image

    root = write_folder(tmp_path / "imgs", val=0)
    (root / "train" / "ship").rename(root / "train" / "sea ship")
    for f in (root / "val").iterdir():
        f.rmdir()
    rows = []
    for k, name in enumerate(("cat", "dog", "sea ship")):
        Image.new("RGB", (16, 16), (80 * k, 0, 0)).save(root / "val" / f"IMG {k}.png")
        rows.append((f"IMG {k}.png", name if k != 1 else "1"))
    if separator == "quoted":
        text = "image,class\n" + "".join(f'"{image}", "{label}"\n' for image, label in rows)
    else:
        text = "".join(f"{image}{separator}{label}{separator}extra column\n" for image, label in rows)
    (root / "val_labels.txt").write_text(text)
    data = load_dataset({"datasets": {"mine": {"kind": "folder", "path": str(root)}}}, "mine", "final")
    assert data.classes == ("cat", "dog", "sea ship")
    assert sorted(zip((Path(p).name for p, _ in data.eval.samples), data.eval.targets)) == \
        [("IMG 0.png", 0), ("IMG 1.png", 1), ("IMG 2.png", 2)]


@pytest.mark.parametrize("line", ["v0.png cat tench, Tinca tinca", "v,0.png cat", "\tv0.png\tcat"])
def test_a_space_separated_line_with_a_comma_is_still_read(tmp_path, line):
    """Lines read before comma lines became CSV rows (0852b78): a space-separated line with
    a comma in a further column or in its image's name, and a tab-separated one with a
    leading tab, were cut at the comma (or tab) and refused as "no image 'v0.png cat
    tench'"; the first line, taken for a header, left its image unlabelled."""
    from nasgep.data import read_val_labels

    image = "v,0.png" if "v,0" in line else "v0.png"
    images = {name: tmp_path / name for name in (image, "v1.png")}
    labels = tmp_path / "val_labels.txt"
    for text in (f"{line}\nv1.png dog\n", f"v1.png dog\n{line}\n"):     # first line, and not
        labels.write_text(text)
        assert sorted(read_val_labels(labels, images, ["cat", "dog"])) == \
            [(str(tmp_path / image), 0), (str(tmp_path / "v1.png"), 1)]


def test_class_folders_that_differ_only_in_unicode_form_are_said_to(tmp_path):
    """'café' composed in train/ and decomposed in val/ (a copy through macOS): the line
    named the same-looking folder as both missing and not in the training set."""
    import unicodedata

    root = write_folder(tmp_path / "imgs", train=2, val=1)
    (root / "train" / "cat").rename(root / "train" / unicodedata.normalize("NFC", "café"))
    (root / "val" / "cat").rename(root / "val" / unicodedata.normalize("NFD", "café"))
    with pytest.raises(DataError, match=r" differs from the training set's name only in its Unicode form"):
        load_dataset({"datasets": {"mine": {"kind": "folder", "path": str(root)}}}, "mine", "final")


def test_a_run_is_not_started_in_the_datasets_train_or_val_folder(tmp_path, capsys):
    """`search --out imgs/train/run0` made run0/ first, which the listing then took for an
    empty class folder ('no images in the class folder(s) run0', blaming the dataset); its
    drawings would have become images of the dataset. Refused before anything is made."""
    root = write_folder(tmp_path / "imgs", train=4, val=1)
    config = str(write_config(tmp_path, root))
    (tmp_path / "linked").symlink_to(root / "val")
    for argv, where in ((["search", "--config", config, "--out", str(root / "train" / "run0")], "train"),
                        (["train", "--genome", str(EXAMPLE_GENOME), "--config", config, "--out",
                          str(tmp_path / "linked" / "t0")], "val")):
        assert main(argv) == 2
        assert re.fullmatch(rf"nasgep \w+: error: --out \S+ lies in {root / where}, the {where}/ images of dataset "
                            r"'mine': the folder of a \w+ there would be listed as a class folder .*; choose an "
                            r"--out outside the dataset's train/ and val/", only_line(capsys))
    assert sorted(p.name for p in (root / "train").iterdir()) == list(CLASSES)
    assert sorted(p.name for p in (root / "val").iterdir()) == list(CLASSES)


def test_a_single_class_is_refused(tmp_path):
    root = write_folder(tmp_path / "imgs")
    for part in ("train", "val"):
        for name in CLASSES[1:]:
            for f in (root / part / name).iterdir():
                f.unlink()
            (root / part / name).rmdir()
    with pytest.raises(DataError, match=r"train: one class folder \(cat\); classification needs at least 2"):
        load_dataset({"datasets": {"mine": {"kind": "folder", "path": str(root)}}}, "mine", "final")


def test_16_bit_grey_pngs_are_scaled_not_clipped_to_white(tmp_path):
    from PIL import Image

    wide = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)      # 0 .. 65535
    path = tmp_path / "grey16.png"
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(read_image(path))
    assert rgb.shape == (16, 16, 3) and (rgb[..., 0] == np.arange(256).reshape(16, 16)).all()


def test_prepare_names_every_unreadable_image_and_can_skip_the_check(tmp_path, capsys):
    root = write_folder(tmp_path / "imgs")
    bad = root / "val" / "dog" / "002.png"
    truncate(bad)
    (root / "val" / "ship" / "001.png").write_text("not an image")
    config = write_config(tmp_path, root)
    argv = ["prepare", "--config", str(config), "--dataset", "mine", "--out", str(tmp_path / "mine.json"),
            "--workers", "2"]
    assert main(argv) == 2
    line = only_line(capsys)
    assert line.startswith("nasgep prepare: error: 2 unreadable image(s): ")
    assert f"{bad}: not a readable image" in line and "ship/001.png" in line
    assert not (tmp_path / "mine.json").exists()
    # the check is what found them: test images are read only after a training
    assert main([*argv, "--no-image-check"]) == 0
    # every training image is checked, also those max_train leaves out of the training
    # (the search's validation part is drawn from all of them)
    for f in (root / "val" / "dog" / "002.png", root / "val" / "ship" / "001.png"):
        f.unlink()
    entry = {"kind": "folder", "path": str(root), "val_fraction": 0.25, "max_train": 4}
    used = load_dataset({"datasets": {"mine": entry}}, "mine", "search").train
    assert sorted(set(used.targets)) == [0, 1, 2]     # a stratified draw, not the first class's images
    left_out = next(Path(used.samples[i][0]) for i in reversed(range(len(used.samples))) if i not in set(used.indices))
    truncate(left_out)
    small = ["--set", "datasets.mine.max_train=4", "--set", "search.batch_size=4", "--set", "train.batch_size=4"]
    assert main([*argv, *small]) == 2
    assert f"1 unreadable image(s): {left_out}" in only_line(capsys)
    # a training image is read for the mean/std already: named at load, with or without it
    left_out.unlink()
    truncate(root / "train" / "cat" / "000.png")
    assert main([*argv, "--no-image-check"]) == 2
    assert "train/cat/000.png: not a readable image (image file is truncated)" in only_line(capsys)


def test_a_search_stops_at_an_unreadable_image_and_resumes_once_it_is_fixed(tmp_path, capsys, monkeypatch):
    import nasgep.data

    monkeypatch.setattr(nasgep.data, "FOLDER_STATS_SAMPLES", 1)     # met in training, not at load
    root = write_folder(tmp_path / "imgs")
    bad = root / "train" / "ship" / "003.png"
    good = bad.read_bytes()
    truncate(bad)
    config = write_config(tmp_path, root)
    out = tmp_path / "search"
    argv = ["search", "--config", str(config), "--seed", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"nasgep search: error: {bad}: not a readable image" in err, err
    assert "`nasgep prepare` names every unreadable image of a dataset in one pass" in err   # not only the first
    assert "Traceback" not in err and "extinct" not in err
    bad.write_bytes(good)
    assert main([*argv, "--resume"]) == 0
    assert "data: mine (folder): 27 training + 9 val images, 3 classes, 3x16x16" in capsys.readouterr().err
    best = json.loads((out / "best.json").read_text())
    assert best["fitness"] > 0


def test_a_training_names_an_unreadable_test_image_read_by_a_worker(tmp_path, capsys):
    root = write_folder(tmp_path / "imgs")
    bad = root / "val" / "cat" / "001.png"
    truncate(bad)
    genome = Path(__file__).with_name("genomes.py")
    from genomes import GENOME

    (tmp_path / "g.json").write_text(json.dumps({"genome": GENOME}))
    config = write_config(tmp_path, root, num_workers=2)
    argv = ["train", "--genome", str(tmp_path / "g.json"), "--config", str(config), "--dataset", "mine",
            "--out", str(tmp_path / "final"), "--no-progress"]
    assert genome.is_file()
    assert main(argv) == 2
    err = capsys.readouterr().err
    # read before the first epoch, not found at the test after every epoch had run
    assert (f"nasgep train: error: 1 unreadable image(s) among the test images, read before training: {bad}: "
            "not a readable image") in err, err[-2000:]
    assert "Caught DataError" not in err and "Traceback" not in err
    assert not (tmp_path / "final" / "checkpoint.pt").exists()


def _cheap(device: str):
    from nasgep.search.evaluator import CheapEvaluator

    return CheapEvaluator()


def test_images_exported_again_at_another_size_are_other_data_when_image_size_is_unset(tmp_path):
    """With image_size unset the images are resized to the first one's shorter side: a
    search resumed after the folder was exported again at twice the size went on at 32x32
    after 16x16, without a word. An image_size set fixes the size, and a record made
    before the size was recorded still resumes."""
    from PIL import Image

    from nasgep import outdir
    from nasgep.config import load_config
    from nasgep.search.runner import SearchExists, run_search

    root = write_folder(tmp_path / "imgs")
    config = load_config(write_config(tmp_path, root))
    out = tmp_path / "search"
    run_search(config, dataset="mine", seed=0, out_dir=out, factory=_cheap, progress=False)
    assert json.loads((out / "settings.json").read_text())["settings"]["data_files"]["image_size"] == 16
    for path in (root / "train").rglob("*.png"):
        Image.open(path).resize((32, 32)).save(path)
    more = dict(config, search={**config["search"], "max_generations": 3})
    with pytest.raises(SearchExists, match=r"belongs to another search \(data_files.image_size differs\)"):
        run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)
    # recorded before the size was: it goes on, and records it
    settings = json.loads((out / "settings.json").read_text())["settings"]
    del settings["data_files"]["image_size"]
    (out / "settings.json").write_text(json.dumps({**outdir.fingerprint(settings), "kind": "search"}))
    assert run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False).finished
    assert json.loads((out / "settings.json").read_text())["settings"]["data_files"]["image_size"] == 32
    # a size set in the config: the setting is recorded, not the files' size
    fixed = {"kind": "folder", "path": str(root), "image_size": 16}
    from nasgep.datafiles import files_fingerprint

    assert "image_size" not in files_fingerprint(fixed)


def test_a_floating_point_image_is_named_not_read_as_black(tmp_path):
    """A 32-bit float TIFF of values 0..1 loaded as an all-black image (mean 0, std 1e-6),
    and a search would have trained on blank images without a word."""
    from PIL import Image

    path = tmp_path / "x.tif"
    Image.fromarray(np.random.default_rng(0).random((16, 16)).astype(np.float32)).save(path)
    assert Image.open(path).mode == "F"
    with pytest.raises(DataError, match=r"x.tif: a 32-bit floating-point image whose values are not whole "
                                        r"numbers 0..255 beyond 0 and 1.*8- or 16-bit"):
        read_image(path)
    # whole numbers 0..255 stored as floats are an 8-bit image in another type: read as such
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16))
    Image.fromarray(pixels.astype(np.float32)).save(path)
    assert np.array_equal(np.asarray(read_image(path, "L")), pixels)
    # but a float image of only 0 and 1 (a thresholded 0..1 image) would be near black
    Image.fromarray((pixels > 127).astype(np.float32)).save(path)
    with pytest.raises(DataError, match=r"x.tif: a 32-bit floating-point image whose values"):
        read_image(path)


def test_resume_on_other_images_is_refused_naming_the_change(tmp_path):
    """A search or training records what its folder or .npz held; resuming it after a
    class was added (or the .npz rewritten) would mix two datasets in one result."""
    from PIL import Image

    from nasgep.config import load_config
    from nasgep.search.runner import SearchExists, run_search

    root = write_folder(tmp_path / "imgs")
    config = load_config(write_config(tmp_path, root))
    out = tmp_path / "search"
    run_search(config, dataset="mine", seed=0, out_dir=out, factory=_cheap, progress=False)
    recorded = json.loads((out / "settings.json").read_text())["settings"]["data_files"]
    assert recorded["classes"] == 3 and recorded["images"] == 36      # train/ only: a search reads no val/
    # files the loader never reads change nothing
    (root / "train" / "cat" / "Thumbs.db").write_bytes(b"\0")
    (root / "train" / "dog" / ".DS_Store").write_bytes(b"\0")
    (root / "val" / "cat" / "9.png").write_bytes(b"")
    from nasgep.search.runner import result_settings

    assert result_settings(config, "mine", 0)["data_files"] == recorded
    more = dict(config, search={**config["search"], "max_generations": 3})
    (root / "train" / "frog").mkdir()
    Image.new("RGB", (16, 16)).save(root / "train" / "frog" / "0.png")
    with pytest.raises(SearchExists, match=r"belongs to another search \(data_files.classes, "
                                           r"data_files.images, data_files.sha256 differ\)"):
        run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)
    (root / "train" / "frog" / "0.png").unlink()
    (root / "train" / "frog").rmdir()
    assert run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap,
                      progress=False).finished       # the same images again: it goes on

    # a search recorded before data_files existed still resumes, and then records them
    from nasgep import outdir

    settings = json.loads((out / "settings.json").read_text())["settings"]
    del settings["data_files"]
    (out / "settings.json").write_text(json.dumps({**outdir.fingerprint(settings), "kind": "search"}))
    more["search"]["max_generations"] = 4
    run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)
    assert json.loads((out / "settings.json").read_text())["settings"]["data_files"] == recorded


def test_a_resume_on_changed_data_files_says_the_files_changed(tmp_path):
    """The same config on a rewritten .npz was refused with '(data_files.sha256 differs);
    use the same settings, another --out, or --restart': the settings were the same, and
    nothing said that the dataset's files had changed."""
    from nasgep.config import load_config
    from nasgep.search.runner import SearchExists, run_search

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(24) % 3,
              "x_test": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(6) % 3}
    np.savez(tmp_path / "my.npz", **arrays)
    path = write_config(tmp_path, tmp_path / "unused")
    doc = yaml.safe_load(path.read_text())
    doc["datasets"]["mine"] = {"kind": "npz", "path": str(tmp_path / "my.npz"), "val_fraction": 0.25}
    path.write_text(yaml.safe_dump(doc))
    config = load_config([path])
    out = tmp_path / "search"
    run_search(config, dataset="mine", seed=0, out_dir=out, factory=_cheap, progress=False)
    arrays["x_train"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "my.npz", **arrays)
    with pytest.raises(SearchExists) as caught:
        run_search(config, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)
    assert str(caught.value) == (f"{out} belongs to another search (data_files.sha256 differs): the dataset's files "
                                 "are not the ones it was made with; restore them, choose another --out, or "
                                 "--restart to start over (the old files are moved aside)")     # same size
    # a setting changed as well: the usual advice
    other = dict(config, search={**config["search"], "lr": 0.05})
    with pytest.raises(SearchExists, match=r"\(data_files.*search.lr differ\); use the same settings"):
        run_search(other, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)


def test_a_moved_data_folder_or_download_false_changes_no_run(tmp_path):
    """The dataset's path and download switch were part of a run's settings: a folder
    moved to another disk (same files) refused every resume, and the workflow's
    --restart-if-changed started every search and training over."""
    import shutil

    from nasgep import outdir
    from nasgep.config import load_config
    from nasgep.search.runner import SearchExists, run_search

    root = write_folder(tmp_path / "imgs")
    config = load_config(write_config(tmp_path, root))
    out = tmp_path / "search"
    run_search(config, dataset="mine", seed=0, out_dir=out, factory=_cheap, progress=False)
    before = (out / "history.parquet").read_bytes()
    moved = shutil.copytree(root, tmp_path / "elsewhere")
    entry = {**config["datasets"]["mine"], "path": str(moved), "download": False}
    more = dict(config, datasets={"mine": entry}, search={**config["search"], "max_generations": 3})
    state = run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)
    assert state.finished and state.generation == 2      # it ran generation 2 (its third)
    assert (out / "history.parquet").read_bytes() != before
    # a record made before 2026-12-07 holds the path: it is not compared with one that lacks it
    settings = json.loads((out / "settings.json").read_text())["settings"]
    settings["data"]["path"] = str(root)
    (out / "settings.json").write_text(json.dumps({**outdir.fingerprint(settings), "kind": "search"}))
    more["search"]["max_generations"] = 4
    assert run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap,
                      progress=False).generation == 3
    # what shapes the search's split still counts
    more["datasets"]["mine"]["val_fraction"] = 0.5
    with pytest.raises(SearchExists, match=r"belongs to another search \(data.val_fraction differs\)"):
        run_search(more, dataset="mine", seed=0, out_dir=out, resume=True, factory=_cheap, progress=False)


def _trained_on_folder(tmp_path):
    """A genome trained on a small folder dataset: (its root, the training's folder, the
    argv that trained it, the weights' bytes)."""
    from genomes import GENOME

    root = write_folder(tmp_path / "imgs")
    (tmp_path / "g.json").write_text(json.dumps({"genome": GENOME}))
    config = write_config(tmp_path, root)
    out = tmp_path / "final"
    argv = ["train", "--genome", str(tmp_path / "g.json"), "--config", str(config), "--dataset", "mine",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    weights = (out / "model.pt").read_bytes()
    return root, out, argv, weights


def test_a_training_goes_on_after_a_change_of_its_test_images_only(tmp_path, capsys):
    """A training's weights depend on its training images, not on val/ (its test set) nor
    on the search's split: a test image removed, or val_fraction changed, restarted a
    finished training (the workflow's --restart-if-changed) or refused it. Now it goes on,
    tested on the new set; a change of its training images is still another training."""
    from PIL import Image

    root, out, argv, weights = _trained_on_folder(tmp_path)
    capsys.readouterr()
    (root / "val" / "cat" / "000.png").unlink()
    assert main([*argv, "--set", "datasets.mine.val_fraction=0.5"]) == 0
    printed = capsys.readouterr().out
    assert "note: the test images changed since" in printed and "starting afresh" not in printed
    assert (out / "model.pt").read_bytes() == weights          # not trained again
    assert json.loads((out / "metrics.json").read_text())["test_images"] == 11
    # its old result is kept (test_a_training_tested_again_on_changed_test_images_keeps_its_old_metrics)
    assert sorted(p.name for p in out.glob(".previous-*/*")) == ["metrics.json", "settings.json"]
    Image.new("RGB", (16, 16)).save(root / "train" / "cat" / "999.png")
    assert main(argv) == 2
    assert "belongs to another training (data_files.images, data_files.sha256, train_files.images, " \
           "train_files.sha256 differ)" in capsys.readouterr().err


def test_a_training_recorded_before_the_image_size_goes_on_after_a_change_of_its_test_images(tmp_path, capsys):
    """A training recorded with train_files but before the folder's image size was (no
    ``image_size`` in either fingerprint) whose test images then changed is tested again,
    not trained afresh: its train_files were compared with ``==``, so the image size
    recorded now made every change of val/ one of its training images (a finished
    training restarted by the workflow's --restart-if-changed, or refused)."""
    from nasgep import outdir

    root, out, argv, weights = _trained_on_folder(tmp_path)
    doc = json.loads((out / "settings.json").read_text())
    settings = doc["settings"]
    for key in ("data_files", "train_files"):      # as recorded before the size was
        del settings[key]["image_size"]
    (out / "settings.json").write_text(json.dumps({**doc, **outdir.fingerprint(settings)}))
    capsys.readouterr()
    (root / "val" / "cat" / "000.png").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "note: the test images changed since" in printed and "starting afresh" not in printed
    assert (out / "model.pt").read_bytes() == weights          # not trained again
    assert sorted(p.name for p in out.glob(".previous-*/*")) == ["metrics.json", "settings.json"]


def test_a_training_tested_again_on_changed_test_images_keeps_its_old_metrics(tmp_path, capsys):
    """A finished training whose test images changed is tested again on the new ones: its
    metrics.json, the test error measured on the old ones, was overwritten (a user's
    result lost without being asked). It is moved into .previous-<time>/ with a copy of the
    settings.json it was made under, the note says where, and the folder is still one
    training that resumes, a workflow's study reading the new metrics.json only."""
    from nasgep import outdir

    root, out, argv, weights = _trained_on_folder(tmp_path)
    old_metrics, old_settings = (out / "metrics.json").read_bytes(), (out / "settings.json").read_bytes()
    capsys.readouterr()
    (root / "val" / "cat" / "000.png").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    kept = list(out.glob(".previous-*"))
    assert len(kept) == 1 and sorted(p.name for p in kept[0].iterdir()) == ["metrics.json", "settings.json"]
    assert (kept[0] / "metrics.json").read_bytes() == old_metrics
    assert (kept[0] / "settings.json").read_bytes() == old_settings      # which test images it was measured on
    note = next(line for line in printed.splitlines() if line.startswith("note: the test images changed"))
    assert note.endswith(f"its metrics on the old ones are kept in {kept[0] / 'metrics.json'}")
    assert json.loads(old_metrics)["test_images"] == 12
    assert json.loads((out / "metrics.json").read_text())["test_images"] == 11
    assert (out / "model.pt").read_bytes() == weights
    # still one training, of nasgep's, in a folder of its own
    assert outdir.recorded_kind(out) == "training" and outdir.another_run(out, "training") is None
    assert outdir.foreign_entries(out) == [] and outdir.nested_runs(out) == []
    assert outdir.nested_runs(tmp_path) == ["final/"]
    # run again on the same images: it goes on, keeps nothing more (no change), and the
    # earlier kept result stays as it is
    now = (out / "metrics.json").read_bytes()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "note: the test images changed" not in printed and "resuming from" in printed
    assert list(out.glob(".previous-*")) == kept and (kept[0] / "metrics.json").read_bytes() == old_metrics
    assert json.loads((out / "metrics.json").read_bytes()) | {"seconds": 0} == json.loads(now) | {"seconds": 0}
    # --restart moves the run into a new .previous folder, beside the kept one
    assert main([*argv, "--restart"]) == 0
    assert len(list(out.glob(".previous-*"))) == 2 and (kept[0] / "metrics.json").read_bytes() == old_metrics


def test_a_finished_training_re_tested_on_an_unreadable_test_image_keeps_its_metrics_in_place(tmp_path, capsys):
    """A finished training whose test images changed and include an unreadable one stops
    with the one line naming the image before anything moves: its metrics.json was moved
    into .previous-<time>/ first and the test then failed, leaving the folder without it.
    Once the image is fixed, it is tested again and keeps the old metrics as usual."""
    root, out, argv, weights = _trained_on_folder(tmp_path)
    old_metrics, old_settings = (out / "metrics.json").read_bytes(), (out / "settings.json").read_bytes()
    bad = root / "val" / "cat" / "000.png"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])     # its header reads, its pixels do not
    (root / "val" / "cat" / "001.png").unlink()  # (the set changed: the folder's record lists names)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "000.png" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "among the test images, read before testing" in err
    assert (out / "metrics.json").read_bytes() == old_metrics and not list(out.glob(".previous-*"))
    assert (out / "settings.json").read_bytes() == old_settings
    bad.write_bytes(good)
    assert main(argv) == 0
    kept = list(out.glob(".previous-*"))
    assert len(kept) == 1 and (kept[0] / "metrics.json").read_bytes() == old_metrics
    assert (out / "model.pt").read_bytes() == weights


def test_an_interrupted_training_resumed_on_changed_test_images_has_no_metrics_to_keep(tmp_path, capsys,
                                                                                         monkeypatch):
    """A training stopped before its test has no metrics.json: resumed after its test
    images changed, it goes on with the note, keeps nothing (no .previous folder) and
    writes its metrics.json of the new images."""
    from genomes import GENOME

    from nasgep.train import Trainer

    root = write_folder(tmp_path / "imgs")
    (tmp_path / "g.json").write_text(json.dumps({"genome": GENOME}))
    config = write_config(tmp_path, root, epochs=2)
    out = tmp_path / "final"
    argv = ["train", "--genome", str(tmp_path / "g.json"), "--config", str(config), "--dataset", "mine",
            "--out", str(out), "--no-progress"]

    class Killed(Exception):
        pass

    real = Trainer.train_epoch

    def one_epoch_only(self):
        if self.epoch >= 1:
            raise Killed
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", one_epoch_only)
        with pytest.raises(Killed):
            main(argv)
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    capsys.readouterr()
    (root / "val" / "cat" / "000.png").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    note = next(line for line in printed.splitlines() if line.startswith("note: the test images changed"))
    assert note.endswith("it goes on, and is tested on the new ones") and "kept" not in note
    assert "resuming from" in printed and "after epoch 1/2" in printed
    assert not list(out.glob(".previous-*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_images"] == 11 and metrics["epochs"] == 2


def test_one_listing_gives_a_trainings_two_fingerprints(tmp_path):
    """A training records its training images alone and with its test images; both come
    from one listing of the folder (ImageNet's train/ was listed twice, about 3 s), and are
    the fingerprints a listing of each would give, so older records still match."""
    from PIL import Image

    from nasgep.datafiles import files_fingerprint, files_fingerprints

    root = write_folder(tmp_path / "imgs")
    entry = {"kind": "folder", "path": str(root)}
    train, both = files_fingerprints(entry, ("train", "val"))
    assert train == files_fingerprint(entry, ("train",)) and both == files_fingerprint(entry, ("train", "val"))
    assert train != both and both["images"] > train["images"] and both["classes"] == train["classes"]
    for name in ("000", "001"):      # grey training images: both say so
        for cls in ("cat", "dog"):
            Image.new("L", (16, 16)).save(root / "train" / cls / f"{name}.png")
    grey = files_fingerprints(entry, ("train", "val"))
    assert grey == [files_fingerprint(entry, ("train",)), files_fingerprint(entry, ("train", "val"))]


def test_the_fingerprints_of_a_dataset_that_must_be_there_name_a_missing_one(tmp_path):
    """A search and a sample list their dataset's files through one helper: a folder or
    .npz file that is not there is the loader's one line (no fingerprint of None, which
    would be taken for data that changed), one that is there gives the plain fingerprints."""
    from nasgep.datafiles import files_fingerprints, required_fingerprints

    with pytest.raises(DataError, match=r"imgs/train: no such folder"):
        required_fingerprints({"kind": "folder", "path": str(tmp_path / "imgs")}, ("train", "val"))
    with pytest.raises(DataError, match=r"gone.npz: no such .npz file"):
        required_fingerprints({"kind": "npz", "path": str(tmp_path / "gone.npz")})
    entry = {"kind": "folder", "path": str(write_folder(tmp_path / "imgs"))}
    assert required_fingerprints(entry, ("train", "val")) == files_fingerprints(entry, ("train", "val"))
    assert required_fingerprints({"kind": "cifar10"}) == [None]      # built in: nothing to require

def test_file_and_class_names_that_are_not_utf8_are_read_and_fingerprinted(tmp_path):
    """Names from a Windows share or an old Latin-1 disk: the search and the training
    ended in a UnicodeEncodeError traceback while fingerprinting the folder."""
    import os

    from nasgep.config import load_config
    from nasgep.datafiles import files_fingerprint
    from nasgep.search.runner import run_search

    root = write_folder(tmp_path / "imgs")
    os.rename(root / "train" / "cat" / "000.png", os.fsencode(root / "train" / "cat") + b"/\xff\xfe.png")
    for part in ("train", "val"):
        os.rename(root / part / "ship", os.fsencode(root / part) + b"/b\xe5t")
    config = load_config(write_config(tmp_path, root))
    state = run_search(config, dataset="mine", seed=0, out_dir=tmp_path / "s", factory=_cheap, progress=False)
    assert state.finished
    recorded = json.loads((tmp_path / "s" / "settings.json").read_text())["settings"]["data_files"]
    assert recorded["classes"] == 3 and recorded["images"] == 36
    # another undecodable name is another folder of images
    cat = os.fsencode(root / "train" / "cat")
    os.rename(cat + b"/\xff\xfe.png", cat + b"/\xfe.png")
    assert files_fingerprint(config["datasets"]["mine"])["sha256"] != recorded["sha256"]


def test_an_npz_rewritten_with_other_images_is_another_dataset(tmp_path):
    from nasgep.datafiles import files_fingerprint

    path = tmp_path / "d.npz"
    x = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
    before = files_fingerprint({"kind": "npz", "path": str(path)})
    np.savez(path, x_train=x + 1, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
    after = files_fingerprint({"kind": "npz", "path": str(path)})
    assert before["bytes"] == after["bytes"] and before["sha256"] != after["sha256"]
    assert files_fingerprint({"kind": "cifar10"}) is None


class _FailsOnOneJob:
    """An evaluator whose third job meets an unreadable image (picklable: spawned workers)."""

    def __init__(self, device: str) -> None:
        pass

    def train(self, job):
        from nasgep.search.evaluator import TrainResult

        if job.individual == "i2":
            raise DataError("/data/imgs/train/cat/7.png: not a readable image (image file is truncated)")
        return TrainResult(job.individual, job.epoch, 50.0, 1000)


def test_an_unreadable_image_met_in_a_worker_process_stops_the_search_with_its_line():
    from genomes import GENOME

    from nasgep.search.evaluator import ProcessExecutor, TrainJob
    from nasgep.space import Genome

    genome = Genome.from_dict(GENOME)
    executor = ProcessExecutor(_FailsOnOneJob, ["cpu", "cpu"])
    try:
        jobs = [TrainJob(f"i{k}", genome, 1, seed=k) for k in range(4)]
        with pytest.raises(DataError, match=r"^/data/imgs/train/cat/7.png: not a readable image"):
            executor.map(jobs, lambda: True)
    finally:
        executor.close()


# --------------------------------------------------------------------------- a researcher's own folder
# (a user-journey review: image size, grey images, batch size, many unreadable files)

def write_sized(root: Path, sides: dict[str, int], mode: str = "RGB", per_class: int = 4) -> Path:
    """root/{train,val}/<class>/*.png, class ``name`` of side ``sides[name]``, in ``mode``."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for name, side in sides.items():
        for part in ("train", "val"):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (side, side + 4), dtype=np.uint8)
                image = Image.fromarray(pixels, "L")
                (image if mode == "L" else image.convert(mode)).save(folder / f"{i:03d}.png")
    return root


def test_images_of_several_sizes_warn_once_naming_the_size_chosen_and_the_key(tmp_path, capsys):
    root = write_sized(tmp_path / "imgs", {"cat": 20, "dog": 40, "ship": 24})
    entry = {"kind": "folder", "path": str(root), "val_fraction": 0.25}
    config = {"datasets": {"mine": entry}}
    assert load_dataset(config, "mine", "final").image_size == 20        # the first image's shorter side
    assert load_dataset(config, "mine", "search").image_size == 20
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"warning: datasets.mine: the 12 images sampled from {root / 'train'} have shorter sides of "
                     f"20 to 40 pixels; every image is resized to the first one's, 20 (shorter side, then a centre "
                     f"crop to 20x20); set datasets.mine.image_size to choose the size"]     # once, not per load
    # chosen, or all alike: nothing to say
    assert load_dataset({"datasets": {"mine": {**entry, "image_size": 32}}}, "mine", "search").image_size == 32
    same = write_sized(tmp_path / "same", {"cat": 20, "dog": 20})
    load_dataset({"datasets": {"same": {"kind": "folder", "path": str(same)}}}, "same", "search")
    assert capsys.readouterr().err == ""


def test_the_size_and_colour_sample_is_bounded_and_spread_over_the_classes(tmp_path):
    from nasgep.datafiles import HEADER_SAMPLE, sample_headers

    root = write_sized(tmp_path / "imgs", {"cat": 8, "dog": 9, "ship": 10}, per_class=30)
    _, samples = scan_class_folders(root / "train")
    headers = sample_headers([path for path, _ in samples])
    assert len(samples) == 90 and len(headers) == HEADER_SAMPLE == 50
    assert headers[0][0] == samples[0][0]                                # the first image first
    assert {Path(path).parent.name for path, _, _ in headers} == set(("cat", "dog", "ship"))
    assert len(sample_headers([path for path, _ in samples], limit=3)) == 3


@pytest.mark.parametrize("modes, channels", [(("L", "L"), 1), (("L", "I;16"), 1), (("L", "RGB"), 3)])
def test_a_grey_folder_loads_as_one_channel_like_a_grey_npz(tmp_path, modes, channels):
    """Every sampled image grey (8- or 16-bit): 1 channel, as an .npz of (N, H, W) images;
    grey and colour mixed: RGB. A colour test image of a grey set is made grey."""
    from PIL import Image

    from nasgep.datafiles import files_fingerprint

    root = write_sized(tmp_path / "imgs", {"cat": 12}, mode=modes[0])
    write_sized(root, {"dog": 12}, mode="L" if modes[1] == "I;16" else modes[1])
    if modes[1] == "I;16":
        for f in (root / "train" / "dog").iterdir():
            wide = np.asarray(Image.open(f), dtype=np.uint16) * 257
            Image.fromarray(wide).save(f)
            assert Image.open(f).mode.startswith("I")
    Image.new("RGB", (12, 16), (200, 10, 10)).save(root / "val" / "cat" / "000.png")
    entry = {"kind": "folder", "path": str(root), "val_size": 2}
    for purpose in ("search", "final"):
        data = load_dataset({"datasets": {"mine": entry}}, "mine", purpose)
        assert data.in_channels == channels and len(data.mean) == len(data.std) == channels
        assert data.train[0][0].shape == data.eval[0][0].shape == (channels, 12, 12)
    # a grey folder's networks have another shape: its fingerprint says so (a search of it
    # made before grey folders loaded as one channel does not resume); a colour one's is as before
    assert ("channels" in files_fingerprint(entry)) == (channels == 1)
    if channels == 1:
        assert files_fingerprint(entry)["channels"] == 1


def test_prepare_refuses_fewer_training_images_than_a_batch_naming_the_key(tmp_path, capsys, monkeypatch):
    root = write_folder(tmp_path / "imgs")          # 36 training images; 27 after the validation split
    config = write_config(tmp_path, root)
    argv = ["prepare", "--config", str(config), "--dataset", "mine", "--no-progress"]
    assert main([*argv, "--set", "search.batch_size=32"]) == 2
    assert only_line(capsys) == ("nasgep prepare: error: mine: 27 training images (after the 9 validation images "
                                 "held out), fewer than one batch (search.batch_size = 32); lower search.batch_size "
                                 "or give more images")
    assert main([*argv, "--set", "train.batch_size=40"]) == 2
    assert only_line(capsys) == ("nasgep prepare: error: mine: 36 training images, fewer than one batch "
                                 "(train.batch_size = 40); lower train.batch_size or give more images")
    assert main([*argv, "--set", "search.batch_size=27", "--set", "train.batch_size=36"]) == 0
    # checked before every image is decoded (many minutes on a large folder): an unreadable
    # image does not hide it, and no image is decoded for it
    truncate(root / "train" / "dog" / "000.png")
    import nasgep.data

    decodes, real = [], nasgep.data._decode
    monkeypatch.setattr(nasgep.data, "_decode", lambda path, mode: decodes.append(path) or real(path, mode))
    assert main([*argv, "--workers", "0", "--set", "train.batch_size=40"]) == 2     # decoded here, if at all
    assert "fewer than one batch (train.batch_size = 40)" in only_line(capsys) and decodes == []


def test_prepare_names_all_unreadable_training_images_in_one_line(tmp_path, capsys):
    """Before, the mean/std sample stopped at the first one, and the next run at the next."""
    root = write_folder(tmp_path / "imgs")
    bad = sorted((root / "train" / "dog").iterdir())[:7]
    for f in bad:
        truncate(f)
    config = write_config(tmp_path, root)
    argv = ["prepare", "--config", str(config), "--dataset", "mine", "--no-progress"]
    assert main(argv) == 2
    line = only_line(capsys)
    assert line.startswith("nasgep prepare: error: 7 unreadable image(s): ")
    assert all(f"{f}: not a readable image" in line for f in bad[:5]) and str(bad[5]) not in line
    assert line.endswith("(and 2 more); replace them with readable ones (removing them from the training images "
                         "changes the dataset: a run then starts over with --restart; a training goes on after a "
                         "change of its test images)")
    # without the full check, loading reads a sample for the mean/std (here every training
    # image): all that sample's unreadable files, in one line
    assert main([*argv, "--no-image-check"]) == 2
    line = only_line(capsys)
    assert line.startswith("nasgep prepare: error: 7 unreadable image(s) among the 36 training images read for "
                           "the mean/std ('nasgep prepare' without --no-image-check reads every one): ")
    assert "(and 2 more); replace them" in line


def test_a_link_back_into_the_dataset_is_refused_naming_it(tmp_path, capsys):
    """A link to a class folder elsewhere is followed; one leading back up (train/a/loop -> ..)
    counted every class's images again under class a, 40 levels deep, and prepare said nothing."""
    root = write_folder(tmp_path / "images")
    elsewhere = write_folder(tmp_path / "other") / "train" / CLASSES[1]
    (root / "train" / CLASSES[0] / "more").symlink_to(elsewhere)       # outside the dataset: followed
    classes, samples = scan_class_folders(root / "train")
    assert len(samples) == 12 * len(CLASSES) + 12
    loop = root / "train" / CLASSES[0] / "loop"
    loop.symlink_to("..")
    config = write_config(tmp_path, root)
    assert main(["prepare", "--config", str(config), "--dataset", "mine", "--out", str(tmp_path / "d.json")]) == 2
    line = only_line(capsys)
    assert f"{loop}: a link back to {root / 'train'}, which the dataset lists already" in line
    assert not (tmp_path / "d.json").exists()


@pytest.mark.timeout(120)
def test_a_pipe_named_like_an_image_is_an_unreadable_image_not_a_hang(tmp_path, capsys):
    """A FIFO `train/cat/999.png` blocked `prepare` for good, --no-image-check too (the
    size and colour sample opened it), and a search with it."""
    import os

    root = write_folder(tmp_path / "imgs")
    os.mkfifo(root / "train" / "cat" / "999.png")
    config = write_config(tmp_path, root)
    argv = ["prepare", "--config", str(config), "--dataset", "mine", "--out", str(tmp_path / "mine.json")]
    assert main(argv) == 2
    line = only_line(capsys)
    assert "999.png: not a readable image (not a regular file (a pipe, socket or device)" in line, line
    assert main([*argv, "--no-image-check"]) == 2      # the mean/std reads every training image
    assert "999.png: not a readable image" in only_line(capsys)


def test_a_class_folder_that_cannot_be_listed_is_one_line_not_changed_data(tmp_path, capsys, monkeypatch):
    """A class folder that cannot be listed (permission denied, a stale network mount) was
    skipped without a word by the listing: the class had 'no images', and the dataset's
    fingerprint changed, so the workflow's --restart-if-changed moved a finished search
    aside as made on other data before loading failed. It is one line naming the folder,
    and the search is left as it was."""
    import errno
    import os

    root = write_folder(tmp_path / "imgs")
    out = tmp_path / "search"
    argv = ["search", "--config", str(write_config(tmp_path, root)), "--seed", "0", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    best = (out / "best.json").read_bytes()
    capsys.readouterr()
    locked = root / "train" / "ship"
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main([*argv, "--resume", "--restart-if-changed"]) == 2
    assert only_line(capsys) == (f"nasgep search: error: {locked}: cannot be listed (Permission denied); check its "
                                 "permissions and the disk it lies on")
    assert (out / "best.json").read_bytes() == best and not list(out.glob(".previous-*"))
    with pytest.raises(DataError, match=f"{re.escape(str(locked))}: cannot be listed"):
        scan_class_folders(root / "train")
