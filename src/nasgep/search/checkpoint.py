"""Atomic, checksummed checkpoints of the search state, one per generation.

A checkpoint is ``checkpoints/gen-NNNNN.json``: ``{"sha256": ..., "state": {...}}``
written to a temporary file, fsynced and renamed, so a crash leaves either the old or
the new file, never half of one. On resume a corrupt newest checkpoint is reported by
name and the one before it is used.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ..io import atomic_write_bytes
from .state import SearchState, from_dict, to_dict

KEEP = 2   # checkpoints kept on disk (the newest and a fallback)


class CheckpointError(RuntimeError):
    pass


def _encode(state: SearchState) -> bytes:
    body = json.dumps(to_dict(state), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()
    return ('{"sha256":"' + digest + '","state":' + body + "}\n").encode()


def save(directory: Path, state: SearchState) -> Path:
    path = directory / f"gen-{state.generation:05d}.json"
    atomic_write_bytes(path, _encode(state))
    for old in list_checkpoints(directory)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints, newest first."""
    return sorted(directory.glob("gen-*.json"), reverse=True)


def read(path: Path) -> SearchState:
    raw = path.read_text()
    try:
        doc = json.loads(raw)
        body = raw[raw.index('"state":') + len('"state":'):].rstrip().removesuffix("}")
        digest = doc["sha256"]
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if hashlib.sha256(body.encode()).hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch (corrupt or truncated)")
    return from_dict(doc["state"])


def load_latest(directory: Path) -> SearchState | None:
    """The newest good checkpoint; corrupt ones are reported on stderr and skipped."""
    for path in list_checkpoints(directory):
        try:
            return read(path)
        except CheckpointError as e:
            print(f"nasgep search: warning: checkpoint {e}; trying the previous one", file=sys.stderr)
    return None


def loadable_states(directory: Path) -> list[SearchState]:
    """Every readable checkpoint (for garbage collection of the files they refer to)."""
    states = []
    for path in list_checkpoints(directory):
        try:
            states.append(read(path))
        except CheckpointError:
            continue
    return states
