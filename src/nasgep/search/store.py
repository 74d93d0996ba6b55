"""The weight store of weight inheritance (paper III-D, SPEC section 3).

A module is stored under the key that says what it is and where it sits (see
``Network.inheritance_units``). After a generation, every module of a living individual
whose fitness beats the best recorded for its key is saved; a new individual loads every
key that exists with matching shapes, the rest keeps its Kaiming initialisation.

Files are never overwritten: ``weights/<key digest>/g<generation>-<individual>.pt``. The
*index* (key -> file, fitness, the file's sha256) lives in the search state, so each checkpoint pins the
store as it was at that generation and a resumed search inherits exactly the same
tensors as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_write_bytes
from ..train import load_tensors


class StoreFileError(UserError):
    """A weight-store file that is damaged or not one; names the file."""


def read_unit(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of one stored module, read with ``weights_only=True``; a damaged file,
    or one that holds something else, is a :class:`StoreFileError` naming it."""
    saved = load_tensors(path, StoreFileError, "weight-store file")
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping):
        raise StoreFileError(f"{path}: not a weight-store file of nasgep")
    return saved["state"]


def key_dir(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


class WeightStore:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def save(self, winners: Mapping[str, tuple[nn.Module, float, str]], index: Mapping[str, dict],
             generation: int) -> dict[str, dict]:
        """Save ``key -> (module, fitness, individual)`` where fitness beats the index;
        return the new index (``index`` itself is left untouched)."""
        new = {k: dict(v) for k, v in index.items()}
        for key, (module, fitness, individual) in winners.items():
            if key in new and fitness <= new[key]["fitness"]:
                continue
            rel = f"{key_dir(key)}/g{generation}-{individual}.pt"
            buf = io.BytesIO()
            torch.save({"key": key, "state": {k: v.detach().cpu() for k, v in module.state_dict().items()}}, buf)
            atomic_write_bytes(self.dir / rel, buf.getvalue())
            new[key] = {"fitness": fitness, "file": rel, "individual": individual, "generation": generation,
                        "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
        return new

    def load_into(self, units: Mapping[str, nn.Module], index: Mapping[str, dict]) -> tuple[int, int]:
        """Load every stored key whose shapes match; return (inherited, total) parameter
        counts. A stored file that is missing or damaged raises (it stops the search)."""
        inherited = 0
        total = sum(p.numel() for m in units.values() for p in m.parameters())
        for key, module in units.items():
            entry = index.get(key)
            if entry is None:
                continue
            # a file gone since the index was written is no smaller inheritance but a changed
            # search: FileNotFoundError stops it, as a resume refuses it (unusable_files)
            saved = read_unit(self.dir / entry["file"])
            own = module.state_dict()
            if saved.keys() != own.keys() or any(saved[k].shape != own[k].shape for k in own):
                continue
            module.load_state_dict(saved)
            inherited += sum(p.numel() for p in module.parameters())
        return inherited, total

    def collect_garbage(self, indices: Iterable[Mapping[str, dict]]) -> int:
        """Delete store files no index refers to; return how many were deleted."""
        keep = {entry["file"] for index in indices for entry in index.values()}
        removed = 0
        if not self.dir.exists():
            return 0
        for path in self.dir.glob("*/*.pt"):
            if path.relative_to(self.dir).as_posix() not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
