"""The output folder of a run (a search or a training): one run at a time, the settings
that shaped it, and starting over without losing anything.

- :func:`locked` holds an exclusive ``flock`` on ``OUT/.lock`` (which names the holder's
  PID) for the whole run. The kernel drops the lock when the holder dies, even by
  ``kill -9``, so a stale lock is simply taken over by the next run.
- :func:`claim` decides whether a run starts, goes on or is refused: it compares the
  run's result-shaping settings with the ones recorded in ``OUT/settings.json`` (a
  canonical dict, its SHA-256 and the kind of run: search, training or sample) and names
  the keys that differ, and it refuses a folder that holds another verb's run. Limits
  (generations, budget, devices) are not part of the settings. It writes nothing: the
  caller records the settings (:func:`record`) once every check of its own passed too.
- :func:`move_aside` moves everything in ``OUT`` into ``OUT/.previous-<UTC time>/`` for
  ``--restart``: nothing is ever deleted. It records what it moves first, so a move killed
  half-way is finished by the next run (:func:`finish_interrupted_moves`).
- :func:`keep_results` moves the result files a run is about to write anew (a finished
  training tested again on changed test images: its ``metrics.json``) into such a folder,
  with a copy of the settings.json they were made under.
- :func:`remove_stale_temporaries` deletes the hidden temporary files an interrupted
  atomic write leaves behind.
- :func:`write_outputs` writes the files of a verb that writes files, not a run
  (``tables``, ``figures``, ``draw``): it replaces only files nasgep wrote there.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import atomic_write_bytes, atomic_write_text, broken_link, broken_link_on_the_way, load_json
from .study import DONE, SEARCHPHASE_FILES

LOCK = ".lock"
SETTINGS = "settings.json"
PREVIOUS = ".previous-"
#: in a ``.previous-<time>/`` while :func:`move_aside` fills it: the names to be moved
MOVING = ".moving.json"
#: hidden temporary files of an atomic write: ``.NAME.tmpPID`` or ``.NAME.tmp.PID``
_TEMPORARY = re.compile(r"^\..+\.tmp\.?(\d+)$")


class FolderError(UserError):
    """The output folder cannot be used as asked (in use, other settings, damaged)."""


# --- one run per folder ------------------------------------------------------------------

#: the lock files this process holds open (:func:`locked`)
_HELD: set[int] = set()


def _drop_held_locks_in_child() -> None:
    """A process forked while a lock is held (a DataLoader worker of a training) closes its
    copy of the lock's descriptor: the lock then ends with the run that took it, not with
    the last of its workers (after a ``kill -9`` of the run they lived on for seconds, and
    the next run was refused naming the dead run's PID). Closing a copy releases nothing."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_held_locks_in_child)


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` exclusively while the block runs; :class:`FolderError` naming the
    holder's PID when another process holds it."""
    if out.exists() and not out.is_dir():
        raise FolderError(f"--out {out} is a file, not a folder")
    new_folder, lock = not out.exists(), out / LOCK
    out.mkdir(parents=True, exist_ok=True)
    new_lock = not lock.exists()
    try:   # never through a link: the PID would be written into whatever file it names
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FolderError(f"{lock} is a link, not a run's lock file; remove the link") from None
        if e.errno == errno.EISDIR:
            raise FolderError(f"{lock} is a folder, not a run's lock file; remove it, or choose another "
                              "--out") from None
        if e.errno == errno.EROFS or (new_lock and e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM)):
            # /proc/self, a read-only mount, another user's folder: no run can keep files there
            raise FolderError(f"--out {out}: the folder cannot be written (making a file in it: {e.strerror}); "
                              "choose another --out") from None
        # a full disk (ENOSPC, EDQUOT, EIO: the machine's fault, exit 1), a lock file of
        # another user's that this one may not open, too many open files: naming the lock
        raise
    held = done = False
    _HELD.add(fd)
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
        held = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
        done = True
    finally:
        if held and new_lock and not done:   # a refused run leaves no trace of its own
            with contextlib.suppress(OSError):
                lock.unlink()
                if new_folder:
                    out.rmdir()              # only when empty
        _HELD.discard(fd)
        os.close(fd)     # releases the lock; a run's lock file stays (unlinking it would race)


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
        doc = load_json(path.read_bytes())
        if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
            raise ValueError("no 'settings' mapping")
    except OSError as e:     # a folder of that name, an unreadable file
        raise FolderError(f"{path} cannot be read ({e.strerror}); restore it, or pass --restart to start "
                          "over (the old files are moved aside, not deleted)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise FolderError(f"{path} is damaged ({e}); restore it, or pass --restart to start "
                          "over (the old files are moved aside, not deleted)") from None
    return doc


def record(out: Path, settings: Mapping[str, Any], what: str) -> None:
    """Record ``settings`` as those of the ``what`` (a key of :data:`RUNS`) in ``out``; call
    it only once every check passed (a refused run must leave the record as it was)."""
    text = json.dumps({**fingerprint(settings), "kind": what}, indent=2, sort_keys=True) + "\n"
    path = out / SETTINGS
    try:
        if path.read_text() == text:
            return              # unchanged: leave the file alone
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def recorded_kind(out: Path) -> str | None:
    """The kind of run (a key of :data:`RUNS`) ``OUT/settings.json`` belongs to; None when
    there is no readable record. Records made before the kind was written are told apart
    by their keys."""
    try:
        doc = recorded(out)
    except FolderError:
        return None
    if doc is None:
        return None
    kind = doc.get("kind")
    if isinstance(kind, str):
        return kind
    keys = set(doc["settings"])
    if {"search", "gep"} <= keys:
        return "search"
    if {"genome", "train"} <= keys:
        return "training"
    return None


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
#: in :data:`RECORDED_LATER`: any value (the key is not compared with older records)
ANY = object()

#: settings recorded only since they were added (dotted keys), with the value every run
#: recorded before had: a record without the key is compared as if it held that value,
#: so its run still resumes, and refused only when the run asks for another value.
#: One entry per setting added to a fingerprint after runs were first recorded.
RECORDED_LATER: dict[str, Any] = {
    "data_files": ANY,                    # 2026-12-03: checksums of the data files
    "search.fitness": "accuracy",         # 2026-11-28 (cf0861e)
    "search.final_selection": "fitness",  # 2026-11-28
    "search.finalists": 3,
    "search.evaluation": "stepwise",      # 2026-11-28
    "train_files": ANY,                   # 2026-12-07: a training's training images alone
    "data_files.image_size": ANY,         # a folder's image size when image_size is unset
    "train_files.image_size": ANY,
}

#: keys that records made before 2026-12-07 hold and fingerprints no longer carry, since
#: they shape no result (:data:`nasgep.datafiles.NOT_SHAPING`; for a training also
#: ``NOT_SHAPING_TRAINING``): not compared when the settings asked for now lack them
RECORDED_NO_LONGER: tuple[str, ...] = ("data.path", "data.download", "data.val_size", "data.val_fraction",
                                       "data.val_labels")


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, Mapping) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _predates(key: str, recorded_settings: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """The record lacks ``key``, added later (:data:`RECORDED_LATER`), and ``settings``
    hold the value the record's run had."""
    then = RECORDED_LATER.get(key, _MISSING)
    return (then is not _MISSING and _get(recorded_settings, key) is _MISSING
            and (then is ANY or _get(settings, key) == then))


def _dropped(key: str, settings: Mapping[str, Any]) -> bool:
    """``key`` is one fingerprints no longer carry (:data:`RECORDED_NO_LONGER`) and the
    settings asked for now lack it."""
    return key in RECORDED_NO_LONGER and _get(settings, key) is _MISSING


def _test_images_only(key: str, recorded_settings: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """``key`` is a training's ``data_files`` (training and test images) while its
    ``train_files`` agree: only the test images changed, which its weights do not depend on.
    They agree as :func:`changed_keys` compares them: a ``train_files`` recorded before a key
    was added to it (``train_files.image_size``) agrees with today's."""
    if key.split(".")[0] != "data_files":
        return False
    old, new = _get(recorded_settings, "train_files"), _get(settings, "train_files")
    return (old is not _MISSING and new is not _MISSING
            and not changed_keys({"train_files": old}, {"train_files": new}))


def changed_keys(recorded_settings: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """:func:`differing_keys` of a run's recorded settings and the ones asked for now, less
    the keys the record predates where the new value is the one the record's run had, the
    keys fingerprints no longer carry, and a change of a training's test images alone."""
    return [k for k in differing_keys(recorded_settings, settings)
            if not (_predates(k, recorded_settings, settings) or _dropped(k, settings)
                    or _test_images_only(k, recorded_settings, settings))]


def only_test_images_changed(out: Path, settings: Mapping[str, Any]) -> bool:
    """True when ``OUT``'s recorded training differs from ``settings`` in its test images
    and nothing else that counts (it goes on, and is tested on the new images)."""
    old, new = recorded(out), fingerprint(settings)["settings"]
    return (old is not None and any(_test_images_only(k, old["settings"], new)
                                    for k in differing_keys(old["settings"], new))
            and not changed_keys(old["settings"], new))


def settings_differ(out: Path, settings: Mapping[str, Any]) -> list[str]:
    """Keys whose value in ``settings`` differs from the one recorded in ``OUT`` ([] when
    they agree or nothing is recorded)."""
    old = recorded(out)
    if old is None:
        return []
    new = fingerprint(settings)
    if old.get("sha256") == new["sha256"]:
        return []
    if not differing_keys(old["settings"], new["settings"]):
        return ["(settings record)"]
    return changed_keys(old["settings"], new["settings"])


def unlike_runs(folders: Iterable[Path], ignore: tuple[str, ...] = ("seed",)) -> tuple[Path, Path, list[str]] | None:
    """``(first, other, keys)`` when two of ``folders`` (the seeds of one method, or of one
    training variant) recorded settings that differ in more than ``ignore``; None when they
    agree. Folders without a readable record are left to the checks that read them.
    A study's readers use it without Snakemake's job records: a search added under a changed
    config beside older seeds would otherwise be compared, or chosen from, as one method."""
    first: tuple[Path, dict] | None = None
    for folder in folders:
        try:
            doc = recorded(folder)
        except FolderError:
            continue
        if doc is None:
            continue
        settings = {k: v for k, v in doc["settings"].items() if k not in ignore}
        if first is None:
            first = (folder, settings)
            continue
        # a difference both ways: a key one record lacks because another nasgep version
        # made it (RECORDED_LATER, RECORDED_NO_LONGER) is no difference in either direction
        back = set(changed_keys(settings, first[1]))
        keys = [k for k in changed_keys(first[1], settings) if k in back]
        # a run goes on after a change of its test images alone, but seeds tested on
        # different test sets are no one row
        if "data_files" in first[1] and "data_files" in settings and all(
                changed_keys({"data_files": a["data_files"]}, {"data_files": b["data_files"]})
                for a, b in ((first[1], settings), (settings, first[1]))):
            keys = keys or ["data_files (the test images)"]
        if keys:
            return first[0], folder, keys
    return None


def shown_keys(keys: list[str], most: int = 6) -> str:
    """``a, b and 3 more differ`` for a message."""
    shown = ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")
    return f"{shown} {'differs' if len(keys) == 1 else 'differ'}"


#: the recorded keys that fingerprint the dataset's files, not a setting (datafiles.files_fingerprint)
DATA_FILE_KEYS: tuple[str, ...] = ("data_files", "train_files")


def describe_difference(out: Path, what: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    verb = "differs" if len(keys) == 1 else "differ"
    if keys and all(k.split(".")[0] in DATA_FILE_KEYS for k in keys):
        # the same config on changed files: 'use the same settings' told the user nothing
        return (f"{out} belongs to another {what} ({shown} {verb}): the dataset's files are not the ones it "
                "was made with; restore them, choose another --out, or --restart to start over (the old "
                "files are moved aside)")
    return (f"{out} belongs to another {what} ({shown} {verb}); use the same settings, another "
            "--out, or --restart to start over (the old files are moved aside)")


# --- the decision: start, go on, or refuse --------------------------------------------------

#: the files that show a folder holds (part of) a run, by the kind of run (glob patterns)
RUNS: dict[str, tuple[str, ...]] = {
    "search": ("checkpoints/gen-*.json", "best.json", "history.parquet"),
    "training": ("checkpoint.pt", "metrics.json", "model.pt"),
    "sample": ("best.json",),
    "search-phase evaluation": ("searchphase.json", "runs/*.json"),
}


def another_run(out: Path, what: str | None) -> tuple[str, list[str]] | None:
    """``(kind, files)`` when ``out`` holds a run of another kind than ``what`` (None: of any
    kind): the kind its settings.json records, or, without a readable record, one whose
    own files are there (a file two kinds share, such as best.json, does not tell them
    apart)."""
    kind = recorded_kind(out)
    if kind is not None:
        if kind == what:
            return None
        found = [m for m in RUNS.get(kind, ()) if any(out.glob(m))]
        return kind, found or [SETTINGS]
    for other, markers in RUNS.items():
        shared = RUNS[what] if what is not None else [m for k, ms in RUNS.items() if k != other for m in ms]
        found = [m for m in markers if other != what and m not in shared and any(out.glob(m))]
        if found:
            return other, found
    return None


def refuse_inside_run(path: Path, what: str, itself: bool = True) -> None:
    """:class:`FolderError` when ``path`` (a file or folder a command is about to write)
    is or lies in the folder of a run, at any depth (``RUN/checkpoints/gen-00003.json``):
    a run's folder holds its own files only, and a table or summary written there could
    replace one of them, or a run started there be moved aside with it by a ``--restart``.
    ``what`` names the output in the message ("the selection"); ``itself=False`` looks
    at the folders above ``path`` only (a run's own folder: :func:`claim` decides on it).

    ``path`` itself is told by a run's file names; the folders above it only by a
    settings.json that records a run (a ``model.pt`` or DVC ``metrics.json`` of the user's
    own in their project folder makes no run of it). ``..`` and links are resolved first."""
    path = Path(os.path.realpath(path))
    for depth, folder in enumerate((path, *path.parents)):
        if not folder.is_dir() or (depth == 0 and not itself):
            continue
        other = another_run(folder, None) if depth == 0 or recorded_kind(folder) is not None else None
        if other is not None:
            kind, found = other
            where = "holds" if folder == path else f"lies in {folder}, which holds"
            raise FolderError(f"--out {path} {where} a {kind} ({shown_files(found)}); write {what} "
                              "outside a run's folder")


def refuse_foreign_file(path: Path, what: str, own_key: str) -> None:
    """:class:`FolderError` unless the output file ``path`` is new or an earlier output of
    the same kind (a JSON object with the key ``own_key``), which it may replace: a config,
    an MLflow database or any other file of the user's is refused, and so is anything that
    is not a plain file (a device such as /dev/null, a pipe). A link to such an output is
    replaced, not written through; a link to nothing (dangling, or a loop of links) is no
    earlier output and is refused, naming its target."""
    broken = broken_link(path)
    if broken is not None:
        raise FolderError(f"--out {broken}, not {what} written by nasgep; the link is left as it is: remove it, "
                          "or name another file")
    if not path.exists():
        return
    if path.is_dir():
        raise FolderError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise FolderError(f"--out {path} is not a plain file (a device, a pipe or a socket); name a file for {what}")
    try:   # a summary or a selection is a few kB; a large file (a database) is not one
        doc = load_json(path.read_bytes()) if path.stat().st_size < 2**24 else None
    except (OSError, ValueError):
        doc = None
    if not (isinstance(doc, dict) and own_key in doc):
        raise FolderError(f"--out {path} exists and is not {what} written by nasgep; it is left as it is: "
                          "name a new file, or move that one away")


def _shown(marker: str) -> str:
    return marker.split("/")[0] + "/" if "/" in marker else marker


#: the files each kind of run writes at the top of its folder (beside settings.json)
WRITES: dict[str, tuple[str, ...]] = {
    "search": ("best.json", "history.parquet", "search.json", "finalists.json"),
    "training": ("checkpoint.pt", "metrics.json", "model.pt"),
    "sample": ("best.json",),
    "search-phase evaluation": (*SEARCHPHASE_FILES, "trainings.csv"),
}

#: the names a run writes at the top of its folder: its folders (a search's, before its first
#: checkpoint; an evaluation's runs/) and the files of :data:`WRITES`
OWN = ("checkpoints", "weights", "individuals", "cells", "runs", *dict.fromkeys(n for w in WRITES.values() for n in w))


def foreign_entries(out: Path) -> list[str]:
    """The visible entries of ``out`` when it holds no nasgep run at all (no settings.json,
    no file of any kind of run): a folder of the user's own, which a run must not fill, nor
    ``--restart`` move aside. [] for a new, empty or nasgep folder.

    Not counted: nasgep's own hidden files (the lock, the workflow's mark, moved-aside
    folders, an interrupted write's temporaries), a file manager's (:data:`FILE_MANAGERS`),
    and folders of a run's own names (:data:`OWN`) that hold no visible file, such as the
    ones a run killed before it recorded its settings leaves. Other hidden entries (a
    ``.git``, a ``.env``) are the user's. A name alone proves nothing: a user's ``weights/``
    full of files is the user's, and a search's clean-up would delete them."""
    if not out.is_dir() or (out / SETTINGS).exists():
        return []
    if any(any(out.glob(m)) for markers in RUNS.values() for m in markers):
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()
                  if not _own_hidden(p.name) and not (p.name in OWN and _holds_no_file(p)))


#: hidden files a file manager leaves in any folder it shows
FILE_MANAGERS = (".DS_Store", ".directory")


def _own_hidden(name: str) -> bool:
    """A hidden name nasgep (or a file manager) puts in a run's folder."""
    return (name in (LOCK, DONE, *FILE_MANAGERS) or name.startswith(PREVIOUS)
            or _TEMPORARY.match(name) is not None)


def _holds_no_file(path: Path) -> bool:
    """True for a folder with no visible file anywhere under it."""
    if not path.is_dir():
        return False
    return not any(f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
                   for f in path.rglob("*"))


def nested_runs(out: Path) -> list[str]:
    """Sub-folders of ``out``, at any depth, whose settings.json records a run (a study's
    ``search/cifar10/search/`` holds the seeds' searches), outside moved-aside and other
    hidden folders. Neither those nor a run's own folders (its thousands of
    ``individuals/`` files) are walked: an ``--out ~`` is refused without reading ``~/.cache``."""
    found = []
    for top, folders, files in os.walk(out) if out.is_dir() else ():
        folders[:] = sorted(f for f in folders if not f.startswith("."))      # links to folders: not followed
        here = Path(top)
        if here != out and SETTINGS in files and recorded_kind(here):
            found.append(f"{here.relative_to(out)}/")
            folders.clear()
    return sorted(found)


def refuse_others(out: Path, what: str) -> None:
    """:class:`FolderError` when ``out`` is a folder of the user's own (see
    :func:`foreign_entries`), holds a run of another kind than ``what`` (a key of
    :data:`RUNS`), or holds runs in sub-folders (which a ``--restart`` would move aside
    with it); a ``what`` run keeps its files in a folder of its own."""
    nested = nested_runs(out)
    if nested:
        shown = ", ".join(nested[:3]) + (f" and {len(nested) - 3} more" if len(nested) > 3 else "")
        raise FolderError(f"{out} holds other runs in its sub-folders ({shown}); a {what} keeps its files in "
                          "a folder of its own: choose another --out")
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FolderError(f"{out} is not empty and holds no nasgep run ({shown}); a {what} keeps its "
                          "files in a folder of its own: choose a new or empty --out")
    other = another_run(out, what)
    if other is not None:
        kind, found = other
        raise FolderError(f"{out} holds a {kind} ({shown_files(found)}), not a {what}; choose another --out")


def refuse_blocked_writes(out: Path, what: str) -> None:
    """:class:`FolderError` when a folder stands where the ``what`` run writes one of its
    files (:data:`WRITES`): found when it starts, not after its training."""
    blocked = [name for name in WRITES[what] if (out / name).is_dir()]
    if blocked:
        raise FolderError(f"{out / blocked[0]} is a folder where the {what} writes its file; move it away")


def shown_files(markers: list[str]) -> str:
    """The files :func:`another_run` found, as a message shows them (``checkpoints/``)."""
    return ", ".join(_shown(m) for m in markers)


def claim(out: Path, settings: Mapping[str, Any], what: str, *, resume: bool, restart: bool,
          restart_if_changed: bool, log, checks_itself: bool = False) -> bool:
    """Decide what a ``what`` run (a key of :data:`RUNS`) may do with ``out`` (held under
    :func:`locked`); True when it goes on from what the folder holds, False when it starts
    afresh. Nothing is written but what ``restart`` moves aside: the caller records the
    settings with :func:`record` once its own checks passed too.

    A folder holding another verb's run is refused, even on ``restart`` (a mistyped
    ``--out`` must not move a search away from its own ``--resume``). A folder holding a
    run of this kind is started over only on ``restart``, or on ``restart_if_changed``
    when its recorded settings differ; its files are then moved aside. Otherwise it is
    continued with the same settings only, and only on ``resume`` or ``restart_if_changed``. A folder whose
    settings.json records a run of this kind with other settings is refused the same way
    even when no result file of it is there yet (killed before its first one: a search in
    generation 0 has trained states but no checkpoint); with the same settings it starts
    afresh, as the same run would.

    A run held without a settings.json (lost, or made by a nasgep before fingerprints) is
    not given the current settings: those may be the wrong ones, and once recorded they
    would turn the right ones away and let ``restart_if_changed`` discard the run. It is
    refused, naming the missing file, unless ``checks_itself``: the caller then checks the
    settings against the run's own files (a training's checkpoint.pt records its genome,
    dataset, variant, seed, network and schedule; a sample's best.json is compared with
    the one it would write). A search's checkpoints do not record its settings.

    A folder of the user's own (visible files, none of them a nasgep run's) is refused,
    even on ``restart``: a run keeps its files in a folder of its own."""
    finish_interrupted_moves(out, log)
    refuse_others(out, what)
    refuse_blocked_writes(out, what)
    changed = [] if restart else settings_differ(out, settings)   # a damaged record may go aside
    holds = any(any(out.glob(marker)) for marker in RUNS[what])
    if restart or (restart_if_changed and changed):
        moved = move_aside(out)
        if moved is not None:
            why = "--restart" if restart else f"settings changed: {', '.join(changed)}"
            log(f"starting afresh ({why}); the previous files of {out} are in {moved}")
        holds = False
    elif changed:    # also a run killed before its first result file (settings.json only)
        raise FolderError(describe_difference(out, what, changed))     # before "pass --resume": it won't do
    elif holds and not (resume or restart_if_changed):     # same settings: that flag goes on
        raise FolderError(f"{out} already holds a {what}; pass --resume to continue it, --restart to "
                          "start over (the old files are moved aside), or choose another --out")
    elif holds and not checks_itself and recorded(out) is None:
        raise FolderError(f"{out} holds a {what} but no {SETTINGS}, so the settings it was made with are "
                          f"unknown; restore {SETTINGS}, or pass --restart to start over (the old files "
                          "are moved aside), or choose another --out")
    return holds


def finish_interrupted_moves(out: Path, log) -> None:
    """Finish a :func:`move_aside` that was killed half-way (``kill -9``, a second Ctrl-C
    among its renames): the entries its record (:data:`MOVING`) names that are still in
    ``out`` go into the same ``.previous-<time>/``. Without it, the old run stayed split: the
    next ``--restart`` moved the rest into a second folder, and ``--resume`` found a run
    without its settings.json or checkpoints."""
    for record in sorted(out.glob(f"{glob.escape(PREVIOUS)}*/{MOVING}")):
        try:
            names = load_json(record.read_text())
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("not a list of names")
        except (OSError, ValueError) as e:
            raise FolderError(f"{record}: damaged record of files being moved aside ({e}); move the files "
                              f"of {out} you want kept by hand, then remove it") from None
        names = [n for n in names if n and not n.startswith("/") and ".." not in Path(n).parts]
        entries = [out / n for n in names]
        left = [e for e in entries if os.path.lexists(e)]
        visible = [n for n in names if not _hidden(n)]
        put_back = (os.path.lexists(out / SETTINGS) if SETTINGS in names else
                    bool(visible) and all(os.path.lexists(out / n) for n in visible)
                    and not any(os.path.lexists(record.parent / n) for n in visible))
        if left and (put_back or not any(os.path.lexists(record.parent / n) for n in names)):
            # no file of it was moved (killed before the first rename), or the run's settings
            # (a run without settings.json: all its visible files) are back in out, which a
            # move killed half-way never leaves (they move first, hidden files last): put
            # back by hand (`mv .previous-X/* .` leaves the hidden record, and hidden files such
            # as the workflow's mark), so the run in out is the one to go on with
            record.unlink()
            with contextlib.suppress(OSError):
                record.parent.rmdir()       # the folder made for the move, if empty
            if record.parent.exists():
                log(f"{record.parent} still holds files of the run moved aside there, which were not put "
                    f"back; {out} is taken as it is")
            continue
        move_aside(out, entries, record.parent)
        if left:
            log(f"finished moving the previous files of {out} into {record.parent} (an earlier move was "
                "interrupted)")


def drop_workflow_mark(out: Path) -> None:
    """Remove the workflow's mark (:data:`nasgep.study.DONE`, which only Snakemake makes
    when a job succeeded) from ``out``: call it, under :func:`locked`, before a run changes
    its results (a search going on, a training, a new sample), so that a run resumed or
    redone by hand in a workflow's folder is not taken for the one the mark was made for."""
    with contextlib.suppress(FileNotFoundError):
        (out / DONE).unlink()


# --- starting over -------------------------------------------------------------------------

def _hidden(name: str) -> bool:
    """A name under a run folder that `mv .previous-X/* .` leaves behind (a dot name)."""
    return name.startswith(".")


def move_aside(out: Path, entries: list[Path] | None = None, target: Path | None = None) -> Path | None:
    """Move ``entries`` (paths under ``out``; default: everything in it but the lock and
    earlier moved-aside folders) into ``out/.previous-<UTC time>/`` (or ``target``, one such
    folder made earlier by the same run), keeping their paths relative to ``out``; return
    that folder, or None when there was nothing."""
    if entries is None:
        entries = [p for p in out.iterdir() if p.name != LOCK and not p.name.startswith(PREVIOUS)]
    if not entries:
        return None
    # the run's settings first and hidden files last: a move killed half-way never leaves
    # the settings behind, nor a visible file once a hidden one moved, so settings (or, for a
    # run made before settings.json existed, every visible file) found back in out beside a
    # record were put back by hand (finish_interrupted_moves)
    entries = sorted(entries, key=lambda entry: (entry != out / SETTINGS, _hidden(entry.relative_to(out).as_posix())))
    if target is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = out / f"{PREVIOUS}{stamp}"
    marker = target / MOVING
    try:
        target.mkdir(exist_ok=True)
        # what is to be moved, before the first move: a move killed half-way is finished by the
        # next run (finish_interrupted_moves), not left split between two .previous folders
        atomic_write_text(marker, json.dumps([e.relative_to(out).as_posix() for e in entries]) + "\n")
    except OSError as e:
        with contextlib.suppress(OSError):
            marker.unlink(missing_ok=True)
            target.rmdir()
        raise FolderError(f"{out}: cannot make {target.name}/ to move the old files into ({e.strerror}); "
                          "nothing was moved: fix it, then run again") from None
    moved: list[tuple[Path, Path]] = []
    try:
        for entry in entries:
            dest = target / entry.relative_to(out)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(entry):      # (finishing an interrupted move: some are there already)
                os.replace(entry, dest)
                moved.append((entry, dest))
        marker.unlink()
    except OSError as e:      # an immutable or foreign file: put back what moved, so the run stays whole
        stuck = []
        for entry, dest in reversed(moved):
            try:
                os.replace(dest, entry)
            except OSError:
                stuck.append(dest)
        if not any(f.name != MOVING for f in target.rglob("*") if not f.is_dir()):
            marker.unlink(missing_ok=True)      # nothing of the run in it (else: finished by the next run)
        for folder in sorted((p for p in [target, *target.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()          # only the empty folders made for the move
        outcome = (f"{len(stuck)} file(s) could not be put back and are in {target}" if stuck
                   else "nothing was moved")
        raise FolderError(f"{e.filename or out}: cannot be moved aside ({e.strerror}); {outcome}: fix it, "
                          "then run again") from None
    return target


def keep_results(out: Path, names: Iterable[str]) -> Path | None:
    """Move the result files ``names`` (at the top of ``out``) that its run is about to
    write anew into ``out/.previous-<UTC time>/`` (:func:`move_aside`), with a copy of
    ``OUT/settings.json``, the record they were made under; return that folder, or None
    when none of them is there (nothing to keep: a run interrupted before its results).
    A finished training tested again on changed test images keeps its ``metrics.json``
    so: the test error measured on the old images is the user's result, never overwritten.
    Call it once every check passed and before :func:`record` writes the new settings."""
    entries = [out / name for name in names if os.path.lexists(out / name)]
    if not entries:
        return None
    settings = out / SETTINGS
    try:
        made_under = settings.read_bytes() if settings.is_file() else None
    except OSError:
        made_under = None       # (recorded() has read it already; the copy only adds to what is kept)
    target = move_aside(out, entries)
    if made_under is not None and target is not None:
        atomic_write_bytes(target / SETTINGS, made_under)     # (a full disk: exit 1, as for record())
    return target


# --- folders of outputs (tables, figures, drawings) ------------------------------------------

#: the record, in a folder of outputs, of the files nasgep wrote at its top (name -> SHA-256)
OUTPUTS_RECORD = ".nasgep-outputs.json"


#: a staging folder of :func:`write_outputs`: ``.nasgep-writing-<PID>-<random>``
_STAGING = re.compile(r"^\.nasgep-writing-(\d+)-")


def write_outputs(out: Path, what: str, write: Callable[[Path], Iterable[Path]],
                  names: Iterable[str] = ()) -> list[Path]:
    """Run ``write(folder)`` for a verb that writes files of fixed names (``table1.md``,
    ``normal.png``) into ``out``, and return the files as they lie in ``out``.

    ``write`` writes into a hidden staging folder inside ``out``; its files then replace
    those of the same names in ``out`` only if nasgep wrote them there (name and content
    in :data:`OUTPUTS_RECORD`), else nothing is replaced and the error names the files (a
    file of the user's, or an output the user edited since). ``names``, when the caller
    knows them, are checked so before the work. Other files in ``out`` are not touched.
    One writer at a time (a lock on the folder); an interrupted ``write`` replaces
    nothing, and an interruption among the moves leaves each file old or new, both
    recorded as nasgep's."""
    if out.exists() and not out.is_dir():
        raise FolderError(f"--out {out} is a file, not a folder")
    made_folders = [p for p in [out, *out.parents] if not p.exists()]      # the deepest first
    fd = None
    finished = False
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            broken = broken_link_on_the_way(out)
            if broken is not None:
                raise FolderError(f"--out {broken}; remove the link or name another path") from None
            raise FolderError(f"{out}: cannot write {what} there ({e.strerror})") from None
        fcntl.flock(fd, fcntl.LOCK_EX)      # the record is read, checked and rewritten by one writer
        _remove_dead_stages(out)
        _refuse_foreign(out, list(names), _outputs_record(out), what)
        try:
            stage = Path(tempfile.mkdtemp(prefix=f".nasgep-writing-{os.getpid()}-", dir=out))
        except OSError as e:
            raise FolderError(f"{out}: cannot write {what} there ({e.strerror})") from None
        try:
            order = [Path(p).name for p in write(stage)]
            made = sorted(_top_files(stage), key=lambda p: (order.index(p.name) if p.name in order else len(order),
                                                            p.name))
            record = _outputs_record(out)
            _refuse_foreign(out, [p.name for p in made], record, what)
            new = {p.name: _digest(p) for p in made}
            digests = {name: _digest(out / name) for name in record}
            old = {name: d for name, d in digests.items() if d is not None and d in record[name]}   # still ours
            # before any move, both the old and the new content of a name count as nasgep's:
            # an interruption between two moves leaves no output that looks like the user's
            _write_record(out, {name: sorted({d for d in (old.get(name), new.get(name)) if d})
                                for name in old.keys() | new.keys()})
            for p in made:
                os.replace(p, out / p.name)
            _write_record(out, old | new)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        finished = True
        return [out / p.name for p in made]
    finally:
        if fd is not None:
            os.close(fd)
        if not finished:
            for folder in made_folders:        # a refused or interrupted verb leaves no new folders
                with contextlib.suppress(OSError):
                    folder.rmdir()             # only when empty


def _refuse_foreign(out: Path, names: list[str], record: Mapping[str, set[str]], what: str) -> None:
    foreign = [name for name in names if (os.path.lexists(out / name) and not _ours(out / name, record))]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FolderError(f"{out} holds files nasgep did not write there, or that changed since ({shown}); "
                          f"{what} replace only files of their own: choose a new or empty --out, or move "
                          "those files away")


def _ours(path: Path, record: Mapping[str, set[str]]) -> bool:
    """Whether ``path`` is a file nasgep wrote, unchanged since (not a dangling link, a
    folder, a pipe or a device)."""
    digest = _digest(path)
    return digest is not None and digest in record.get(path.name, ())


def _top_files(out: Path) -> list[Path]:
    """The visible files (and links) at the top of ``out``."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if not p.name.startswith(".") and (p.is_file() or p.is_symlink()))


def _outputs_record(out: Path) -> dict[str, set[str]]:
    """The record: file name -> the SHA-256 digests nasgep wrote under it (a damaged record
    is empty; names that are not plain file names are dropped)."""
    try:
        files = load_json((out / OUTPUTS_RECORD).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    record = {}
    for name, digests in files.items():
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            continue
        digests = [digests] if isinstance(digests, str) else digests
        if isinstance(digests, list):
            record[name] = {d for d in digests if isinstance(d, str)}
    return record


def _write_record(out: Path, files: Mapping[str, Any]) -> None:
    if os.path.lexists(out / OUTPUTS_RECORD) and not (out / OUTPUTS_RECORD).is_file():
        raise FolderError(f"{out / OUTPUTS_RECORD}: not a file (nasgep's record of the files it wrote there); "
                          "remove it, then run again")
    atomic_write_text(out / OUTPUTS_RECORD, json.dumps({"files": dict(files)}, indent=2, sort_keys=True) + "\n")


def _digest(path: Path) -> str | None:
    """SHA-256 of a plain file's content (through a link: a DVC cache link is the same
    output); None for anything else (a dangling link, a folder, a pipe, a device)."""
    try:
        if not path.is_file():
            return None
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _remove_dead_stages(out: Path) -> None:
    """Remove the staging folders that killed writers left in ``out``."""
    for path in out.iterdir():
        match = _STAGING.match(path.name)
        if match and path.is_dir() and not path.is_symlink() and int(match[1]) != os.getpid() \
                and not _alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)


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
