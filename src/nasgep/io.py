"""Atomic file writes: readers see the old or the new content, never half of one.

The one home for this: checkpoints, results, metrics, weights, dataset summaries, tables
and figures all go through :func:`atomic_write_bytes` (temporary file in the same folder, flush +
fsync, ``os.replace``, then fsync the folder so the rename itself survives a crash).
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably; a ``path`` that is a folder is
    refused (IsADirectoryError naming it) before anything is written."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if path.exists() and not path.is_file():   # os.replace would put a file where /dev/null was
        raise OSError(errno.EINVAL, "is a device, a pipe or a socket, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):  # a read-only folder refuses even this unlink (EROFS)
            tmp.unlink(missing_ok=True)     # a refused write (disk full, path is a folder) leaves nothing
        if isinstance(e, OSError) and (e.filename is None or e.filename == str(tmp)):
            # a write or fsync names no file, a refused open the hidden temporary one: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def broken_link(path: str | Path) -> str | None:
    """How ``path`` is a link that leads to no file (``PATH is a link to TARGET, which does
    not exist``, or ``... which runs into a loop of links``), for a message; None when it is
    no link, a link to something that exists, or one whose target this user may not look
    at (EACCES: the caller's own OSError says so)."""
    path = Path(path)
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
        return None
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None     # EACCES (a folder this user may not enter): it may well lead to a file
        target = os.readlink(path)
        if e.errno == errno.ELOOP:
            return f"{path} is a link to {target}, which runs into a loop of links (it leads to no file)"
        return f"{path} is a link to {target}, which does not exist"


def broken_link_on_the_way(path: str | Path) -> str | None:
    """:func:`broken_link` of ``path`` or of the first folder above it that is one."""
    path = Path(path)
    return next(filter(None, map(broken_link, (path, *path.parents))), None)


def load_json(raw: str | bytes) -> Any:
    """``json.loads`` of a file nasgep wrote, where nesting deeper than the parser goes
    (only damage makes it so) is a :class:`json.JSONDecodeError` like any other damage,
    not a RecursionError that escapes the reader's ``except ValueError``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", raw if isinstance(raw, str) else "", 0) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Pretty JSON with a trailing newline, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def literal_text(text: str) -> str:
    """User text (a title, a dataset or ablation label) as matplotlib draws it literally:
    a ``$`` would otherwise start its math mode (and an unpaired one fail to parse)."""
    return text.replace("$", r"\$")


def atomic_save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """A matplotlib figure saved atomically, in the format of ``path``'s suffix."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip("."), **savefig_kwargs)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
