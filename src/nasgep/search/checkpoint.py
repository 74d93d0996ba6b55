"""Atomic, checksummed checkpoints of the search state, one per generation (the newest two kept).

A checkpoint is ``checkpoints/gen-NNNNN.json``: ``{"sha256": ..., "state": {...}}``
written to a temporary file, fsynced and renamed, so a crash leaves either the old or
the new file, never half of one. On resume a corrupt newest checkpoint is reported by
name and the one before it is used.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..io import atomic_write_bytes, load_json
from .state import SearchState, from_dict, to_dict

KEEP = 2   # checkpoints kept on disk (the newest and a fallback)


class CheckpointError(RuntimeError):
    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _encode(state: SearchState) -> bytes:
    body = json.dumps(to_dict(state), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()
    return ('{"sha256":"' + digest + '","state":' + body + "}\n").encode()


def save(directory: Path, state: SearchState) -> Path:
    """Write the checkpoint of ``state.generation``; keep the newest ``KEEP`` readable ones.

    Unreadable files never take a kept slot (a damaged newer checkpoint must not push the
    good ones out); those older than the kept ones go, newer ones are overwritten when
    the search reaches their generation."""
    path = directory / f"gen-{state.generation:05d}.json"
    atomic_write_bytes(path, _encode(state))
    kept = 0
    for old in list_checkpoints(directory):
        if kept >= KEEP:
            old.unlink(missing_ok=True)
        elif _readable(old):
            kept += 1
    return path


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints, newest first."""
    return sorted(directory.glob("gen-*.json"), reverse=True)


def read(path: Path) -> SearchState:
    """The state in ``path``; :class:`CheckpointError` when it cannot be decoded, fails its
    checksum or does not hold a search state."""
    try:
        raw = path.read_bytes().decode("utf-8")
        doc = load_json(raw)
        body = raw[raw.index('"state":') + len('"state":'):].rstrip().removesuffix("}")
        digest = doc["sha256"]
    except UnicodeDecodeError:
        raise CheckpointError(path, "not UTF-8 text") from None
    except json.JSONDecodeError:
        raise CheckpointError(path, "not JSON (truncated?)") from None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(path, "not a checkpoint (no checksum and state)") from None
    if hashlib.sha256(body.encode()).hexdigest() != digest:
        raise CheckpointError(path, "checksum mismatch (corrupt or truncated)")
    try:
        return from_dict(doc["state"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"not a search state ({type(e).__name__}: {str(e)[:80]})") from None


def _readable(path: Path) -> bool:
    try:
        read(path)
    except (CheckpointError, OSError):
        return False
    return True


def newest_good(directory: Path) -> tuple[SearchState | None, list[str]]:
    """The newest readable checkpoint and what was wrong with every newer one (by name)."""
    problems = []
    for path in list_checkpoints(directory):
        try:
            return read(path), problems
        except CheckpointError as e:
            problems.append(f"{path.name}: {e.reason}")
    return None, problems


def loadable_states(directory: Path) -> list[SearchState]:
    """Every readable checkpoint (for garbage collection of the files they refer to)."""
    states = []
    for path in list_checkpoints(directory):
        try:
            states.append(read(path))
        except CheckpointError:
            continue
    return states
