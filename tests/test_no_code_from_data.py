"""No code runs from data files (issue 10, point 3): CIFAR pickles whose checksum is not
the official one are refused unread, ``.npz`` files never unpickle, checkpoints load with
``weights_only=True``, YAML only through the safe loader. A grep over the sources keeps
each rule; the behavioural tests show the refusal."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from nasgep.cli import main
from nasgep.config import deep_merge, validate
from nasgep.data import DataError, load_dataset

SRC = Path(__file__).resolve().parents[1] / "src" / "nasgep"
WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


def sources() -> list[tuple[Path, str]]:
    files = list(SRC.rglob("*.py")) + list(WORKFLOW.rglob("*.smk")) + list(WORKFLOW.glob("Snakefile"))
    files += list(WORKFLOW.rglob("*.py"))
    return [(p, p.read_text()) for p in files]


def calls(pattern: str) -> list[tuple[Path, str]]:
    """Every call matching ``pattern`` (calls may span lines: up to the closing paren)."""
    found = []
    for path, text in sources():
        for m in re.finditer(pattern, text):
            depth, end = 0, m.end()
            while end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
                if depth == 0:
                    break
            found.append((path, text[m.start():end]))
    return found


def test_every_torch_load_is_weights_only():
    loads = calls(r"torch\.load\s*(?=\()")
    assert loads, "the pattern finds nothing: update the test"
    for path, call in loads:
        assert "weights_only=True" in call, f"{path}: {call}"


def test_every_numpy_load_refuses_pickles():
    for path, call in calls(r"\bnp\.load\s*(?=\()"):
        assert "allow_pickle=False" in call, f"{path}: {call}"


def test_yaml_only_through_safe_loaders():
    for path, text in sources():
        for m in re.finditer(r"yaml\.(load|unsafe_load|full_load|load_all)\s*\(([^)]*)\)", text):
            assert m.group(1) == "load" and "Loader=_Loader" in m.group(2), f"{path}: {m.group(0)}"
    import yaml

    from nasgep.config import _Loader
    assert issubclass(_Loader, yaml.SafeLoader)


def test_no_pickle_or_unsafe_deserialisation_in_sources():
    for path, text in sources():
        unsafe = r"\bpickle\.loads?\(|\bmarshal\.loads?\(|\bshelve\.open\(|(?<![.\w])(?<!def )(eval|exec)\("
        assert not re.search(unsafe, text), path


class Payload:
    """Unpickling this runs ``open(marker, 'w')``: what a tampered CIFAR batch could do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_tampered_cifar_batch_is_refused_unread(tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(Payload(str(marker))))
    config = tmp_path / "c.yaml"
    config.write_text(f"datasets: {{c10: {{kind: cifar10, path: '{tmp_path}', download: false}}}}\n"
                      "search: {dataset: c10}\ntransfer: {source: c10}\n"
                      "workflow: {search_datasets: [c10], ablation_dataset: c10}\n")
    rc = main(["prepare", "--config", str(config), "--dataset", "c10"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "data_batch_1" in err and "checksum" in err and "npz" in err
    assert not marker.exists()


def test_an_npz_with_an_object_array_is_refused(tmp_path, capsys):
    path = tmp_path / "d.npz"
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(path, x_train=np.array([x[0], "evil", None], dtype=object), y_train=np.zeros(3, np.int64),
             x_test=x, y_test=np.zeros(4, np.int64))
    entry = {"d": {"kind": "npz", "path": str(path)}}
    config = validate(deep_merge({}, {"datasets": entry, "search": {"dataset": "d"}, "transfer": {"source": "d"},
                                      "workflow": {"search_datasets": ["d"], "ablation_dataset": "d"}}))
    with pytest.raises(DataError, match=r"d.npz:x_train: holds Python objects"):
        load_dataset(config, "d", "search")


def test_a_checkpoint_that_is_not_tensors_is_refused(tmp_path):
    """A training checkpoint holding a pickled object: nasgep's reader (``nasgep train``'s
    resume) refuses it with an error naming the file, and the object's code never runs."""
    from nasgep.train import StateFileError, read_state

    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "x", "state": Payload(str(marker))}, path)
    assert not marker.exists()   # saving does not run the payload
    with pytest.raises(StateFileError, match=r"checkpoint\.pt: not a readable trainer state \(UnpicklingError"):
        read_state(path)
    assert not marker.exists()
