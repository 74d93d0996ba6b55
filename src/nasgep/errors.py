"""The errors a user can cause, and the one way they reach the user.

Every expected failure is a :class:`NasgepError`; ``nasgep.cli.main`` prints it as one
line, ``nasgep <verb>: error: <message>``, and exits with its ``exit_code``. Nothing
else turns errors into messages: verbs raise, they never catch-and-print.

- :class:`UserError` (exit 2): the input is wrong; the message names the file, key,
  genome position or dataset and says what is expected. :class:`~nasgep.config.ConfigError`,
  :class:`~nasgep.datafiles.DataError`, :class:`~nasgep.space.GenomeError` and
  :class:`~nasgep.gep.ChromosomeError` are its kinds.
- :class:`RunFailed` (exit 1): the input was accepted but the run produced nothing
  usable (e.g. every candidate of a search failed); the message summarises why.

Pure Python (the GEP core imports it).
"""
from __future__ import annotations

from pathlib import Path

#: Most characters of a user's own input quoted back in a message.
QUOTE_LIMIT = 80


class NasgepError(Exception):
    """An expected failure, reported as one line; ``exit_code`` is the process status."""

    exit_code = 1


class UserError(NasgepError, ValueError):
    """Input that cannot be used: printed as one line, exit status 2."""

    exit_code = 2


class RunFailed(NasgepError):
    """A run that ended without a result: printed as one line, exit status 1."""

    exit_code = 1


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long the rest is."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply to show>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` unquoted, cut to about ``limit`` characters (for keys in a dotted path)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}..."


#: the largest config or genome file read (the paper's config is 6 kB, a genome 2 kB): a
#: device such as /dev/zero, named by mistake, was read until the machine ran out of memory
USER_TEXT_LIMIT = 16 * 1024 * 1024


def read_user_text(path: str | Path, what: str, error: type[UserError] = UserError) -> str:
    """The UTF-8 text of a file the user named; ``error`` says, in one line, why it cannot
    be read (``what`` is the kind of file expected, e.g. "config file")."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder; expected a {what}")
    try:
        with path.open("rb") as f:          # a pipe (<(...)) is read too, up to the limit
            data = f.read(USER_TEXT_LIMIT + 1)
        if len(data) > USER_TEXT_LIMIT:
            raise error(f"{path}: more than {USER_TEXT_LIMIT // 2**20} MB; expected a {what}")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")     # a BOM (Windows editors) is not text
    except UnicodeDecodeError as e:
        if b"\0" in data:                   # binary, not text in another encoding
            raise error(f"{path}: not a text file; expected a {what}") from None
        line = data.count(b"\n", 0, e.start) + 1   # Latin-1, Windows-1252, ...
        raise error(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start}, line {line}); "
                    f"save it as UTF-8") from None


__all__ = ["clip", "read_user_text", "NasgepError", "QUOTE_LIMIT", "RunFailed", "UserError", "quote"]
