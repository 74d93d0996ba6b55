"""The output folder of a run (a search or a training): one run at a time, the settings
that shaped it, and starting over without losing anything.

- :func:`locked` holds an exclusive ``flock`` on ``OUT/.lock`` (which names the holder's
  PID) for the whole run. The kernel drops the lock when the holder dies, even by
  ``kill -9``, so a stale lock is simply taken over by the next run.
- :func:`check_settings` compares a run's result-shaping settings with the ones recorded
  in ``OUT/settings.json`` (a canonical dict and its SHA-256) and names the keys that
  differ. Limits (generations, budget, devices) are not part of them.
- :func:`move_aside` moves everything in ``OUT`` into ``OUT/.previous-<UTC time>/`` for
  ``--restart``: nothing is ever deleted.
- :func:`remove_stale_temporaries` deletes the hidden temporary files an interrupted
  atomic write leaves behind.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import atomic_write_text

LOCK = ".lock"
SETTINGS = "settings.json"
PREVIOUS = ".previous-"
#: hidden temporary files of an atomic write: ``.NAME.tmpPID`` or ``.NAME.tmp.PID``
_TEMPORARY = re.compile(r"^\..+\.tmp\.?(\d+)$")


class FolderError(UserError):
    """The output folder cannot be used as asked (in use, other settings, damaged)."""


# --- one run per folder ------------------------------------------------------------------

@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` exclusively while the block runs; :class:`FolderError` naming the
    holder's PID when another process holds it."""
    if out.exists() and not out.is_dir():
        raise FolderError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").split()
            pid = holder[0] if holder else "unknown"
            raise FolderError(f"{out} is in use by another nasgep run (PID {pid}); wait for it to "
                              "finish or stop it, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)     # releases the lock; the file stays (unlinking it would race)


# --- the settings a result depends on ----------------------------------------------------

def fingerprint(settings: Mapping[str, Any]) -> dict:
    """``{"sha256": ..., "settings": ...}`` of a JSON-able dict of settings."""
    canonical = json.loads(json.dumps(settings, sort_keys=True))
    body = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return {"sha256": hashlib.sha256(body.encode()).hexdigest(), "settings": canonical}


def recorded(out: Path) -> dict | None:
    """The fingerprint recorded in ``OUT/settings.json`` (None when there is none)."""
    path = out / SETTINGS
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
            raise ValueError("no 'settings' mapping")
    except (ValueError, UnicodeDecodeError) as e:
        raise FolderError(f"{path} is damaged ({e}); restore it, or pass --restart to start "
                          "over (the old files are moved aside, not deleted)") from None
    return doc


def record(out: Path, settings: Mapping[str, Any]) -> None:
    atomic_write_text(out / SETTINGS, json.dumps(fingerprint(settings), indent=2, sort_keys=True) + "\n")


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys.extend(differing_keys(a, b, f"{prefix}{key}."))
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


_MISSING = object()


def settings_differ(out: Path, settings: Mapping[str, Any]) -> list[str]:
    """Keys whose value in ``settings`` differs from the one recorded in ``OUT`` ([] when
    they agree or nothing is recorded)."""
    old = recorded(out)
    if old is None:
        return []
    new = fingerprint(settings)
    if old.get("sha256") == new["sha256"]:
        return []
    return differing_keys(old["settings"], new["settings"]) or ["(settings record)"]


def describe_difference(out: Path, what: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    return (f"{out} belongs to another {what} ({shown} differ); use the same settings, another "
            "--out, or --restart to start over (the old files are moved aside)")


# --- the decision: start, go on, or refuse --------------------------------------------------

def claim(out: Path, settings: Mapping[str, Any], what: str, markers: tuple[str, ...], *,
          resume: bool, restart: bool, restart_if_changed: bool, log) -> bool:
    """Decide what a run may do with ``out`` (held under :func:`locked`); True when it
    goes on from what the folder holds, False when it starts afresh.

    A folder holding a run (a file matching one of the glob patterns ``markers``) is
    started over only on ``restart``, or on ``restart_if_changed`` when its recorded
    settings differ; its files are then moved aside. Otherwise it is continued with the
    same settings only, and only on ``resume``. The settings are recorded for the next run."""
    changed = [] if restart else settings_differ(out, settings)   # a damaged record may go aside
    holds = any(any(out.glob(marker)) for marker in markers)
    if restart or (restart_if_changed and changed):
        moved = move_aside(out)
        if moved is not None:
            why = "--restart" if restart else f"settings changed: {', '.join(changed)}"
            log(f"starting afresh ({why}); the previous files of {out} are in {moved}")
        holds = False
    elif holds and not resume:
        raise FolderError(f"{out} already holds a {what}; pass --resume to continue it, --restart to "
                          "start over (the old files are moved aside), or choose another --out")
    elif holds and changed:
        raise FolderError(describe_difference(out, what, changed))
    elif holds and recorded(out) is None:
        log(f"warning: {out} has no record of its {what}'s settings (made by an older nasgep); "
            "assuming the current ones")
    record(out, settings)
    return holds


# --- starting over -------------------------------------------------------------------------

def move_aside(out: Path) -> Path | None:
    """Move everything in ``out`` (but the lock and earlier moved-aside folders) into
    ``out/.previous-<UTC time>/``; return that folder, or None when there was nothing."""
    entries = [p for p in out.iterdir() if p.name != LOCK and not p.name.startswith(PREVIOUS)]
    if not entries:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = out / f"{PREVIOUS}{stamp}"
    target.mkdir()
    for entry in entries:
        os.replace(entry, target / entry.name)
    return target


# --- left-overs of interrupted writes ------------------------------------------------------

def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.NAME.tmpPID`` files under ``folder`` whose writer is gone; return how many."""
    removed = 0
    if not folder.exists():
        return 0
    for path in folder.rglob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        moved_aside = any(part.startswith(PREVIOUS) for part in path.relative_to(folder).parts)
        if match and not moved_aside and path.is_file() and not _alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False      # this process holds the lock: its own writes are not in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
