"""The ``nasgep`` command line: one sub-command per module in :mod:`nasgep.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, mlflow) happen inside ``run`` so that
``nasgep --help`` and ``nasgep decode`` stay instant.
"""
from __future__ import annotations

import argparse
import atexit
import errno
import importlib
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .errors import NasgepError
from .io import broken_link_on_the_way

#: Sub-commands in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "decode", "draw", "prepare", "train", "search", "sample", "evaluate", "tables", "figures", "track",
)


def add_config_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--config YAML`` (repeatable, later files win) and ``--set KEY=VALUE`` overrides:
    every verb reads its configuration the same way."""
    p.add_argument("--config", action="append", required=required, default=None, metavar="YAML",
                   help="configuration file (repeatable; later files win)"
                        + ("" if required else "; default: the paper's settings"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. search.max_generations=5 (repeatable)")


def add_restart_arguments(p: argparse.ArgumentParser, folder: str, what: str) -> None:
    """``--restart`` and ``--restart-if-changed``, the same for every verb that owns an
    output folder (nasgep.outdir: nothing is deleted, old files move aside)."""
    p.add_argument("--restart", action="store_true",
                   help=f"start afresh: move what {folder} holds into {folder}/.previous-<time>/ first")
    p.add_argument("--restart-if-changed", action="store_true",
                   help=f"start afresh (moving the old files aside) only when {folder}'s {what} was made "
                        "with other settings; else go on (what the workflow does)")


def output_dir(text: str) -> Path:
    """``--out DIR`` of the verbs that write a folder: an existing file is refused before
    any work starts."""
    if not text.strip():        # Path("") is the current folder: its files would be replaced
        raise argparse.ArgumentTypeError("an empty path; name a folder (it is created if absent)")
    path = Path(text)
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError as e:    # a name too long, a folder on the way this user may not enter: was a traceback
        raise argparse.ArgumentTypeError(f"{text}: {e.strerror}") from None
    if is_file:
        raise argparse.ArgumentTypeError(f"{text} is an existing file, not a folder; name a folder (it is created "
                                         f"if absent)")
    return path


def output_file(text: str, what: str, example: str) -> Path:
    """``--out FILE`` of the verbs that write one file (``prepare``, ``tables best``): a path
    ending in a separator names a folder, refused in one line (``Path`` drops the slash, and
    ``--out results/mydata/`` wrote a file named ``results/mydata``)."""
    from .errors import UserError

    if text.endswith(("/", os.sep)):
        raise UserError(f"--out {text} names a folder; --out is the file to write {what} to, e.g. "
                        f"{os.path.join(text, example)}")
    return Path(text)


#: Seeds go to Python's, NumPy's and torch's generators; NumPy takes 0 .. 2**32 - 1 as is.
MAX_SEED = 2**32 - 1


def whole_number(text: str, low: int, high: int, what: str) -> int:
    """An option's whole number from ``low`` to ``high``, or argparse's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:80]!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} is from {low} to {high}, got {text[:80]}")
    return value


def seed_value(text: str) -> int:
    """``--seed N``: a whole number from 0 to 2**32 - 1."""
    return whole_number(text, 0, MAX_SEED, "a seed")


def draws_value(text: str) -> int:
    """``--largest-of K`` (``nasgep sample``): a whole number from 1 to 1000."""
    return whole_number(text, 1, 1000, "K")


def check_run_start(config: dict, out, what: str, tracked: bool = True) -> None:
    """What a verb that starts a run in ``out`` (search, sample, train, evaluate) checks
    before any work: ``out`` lies in no other run's folder (a ``--restart`` of the inner
    run there would move it aside, or the outer one's ``--restart`` the inner run), and
    the tracking store the run logs to (``tracked``) can be opened. ``out`` itself is the
    run's own: :func:`nasgep.outdir.claim` decides on it."""
    from . import outdir, tracking

    outdir.refuse_inside_run(out, what, itself=False)
    _refuse_inside_images(config, Path(out), what)
    _refuse_holding_the_store(config, Path(out), what)
    if tracked:
        tracking.check_store(config, writes=True)


def _refuse_holding_the_store(config: dict, out: Path, what: str) -> None:
    """Refuse an ``out`` that is, or lies above, the folder of the study's sqlite MLflow
    store (``results_dir`` by default): a search run with ``--out`` its results_dir got
    the store of every run of the study (and its ``mlartifacts/``) made in its own folder,
    its ``--restart`` moved that store aside with the search, and every other run's
    ``--out`` below it was refused as lying in a search's folder."""
    from . import tracking
    from .outdir import FolderError

    db = tracking.sqlite_path(tracking.tracking_uri(config) or "")
    if db is None:
        return
    store, real = os.path.dirname(os.path.realpath(db)), os.path.realpath(out)
    if store == real or store.startswith(real + os.sep):
        raise FolderError(f"--out {out} would hold the study's MLflow store ({db}, beside it mlartifacts/), which "
                          f"all its runs log to; {what} keeps its files in a folder of its own: choose a folder "
                          f"below it, e.g. {Path(out) / 'seed0'}, or set tracking.uri (a run made there before resumes "
                          "with tracking.enabled: false)")


def _refuse_inside_images(config: dict, out: Path, what: str) -> None:
    """Refuse an ``out`` in the ``train/`` or ``val/`` folder of a folder dataset of the
    config: the run's folder made there was listed as a class folder (the run stopped on
    'no images in the class folder(s) run0', blaming the dataset), and its drawings
    (``cells/*.png``) would have become images of the dataset."""
    from .outdir import FolderError

    real = os.path.realpath(out)
    for name, entry in (config.get("datasets") or {}).items():
        if not isinstance(entry, dict) or entry.get("kind") != "folder" or not entry.get("path"):
            continue
        for part in ("train", "val"):
            images = os.path.realpath(Path(entry["path"]) / part)
            if real == images or real.startswith(images + os.sep):
                raise FolderError(f"--out {out} lies in {images}, the {part}/ images of dataset {name!r}: the "
                                  f"folder of {what} there would be listed as a class folder of the dataset (a "
                                  "search's drawings as its images); choose an --out outside the dataset's train/ "
                                  "and val/")


def load_args_config(args: argparse.Namespace) -> dict:
    """The validated configuration named by :func:`add_config_arguments`' options."""
    from .config import load_config

    return load_config(args.config, args.set)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but a bad option is one line like every other error (argparse
    prints its usage block first); the usage is one ``--help`` away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nasgep",
        description="Neural architecture search with Gene Expression Programming (NASGEP).",
        epilog="Run 'nasgep COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"nasgep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nasgep.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"nasgep.commands.{name}":
                continue  # command not built in this installation
            raise
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Expected failures (:mod:`nasgep.errors`) and unreadable or
    unwritable files become one line on stderr, never a traceback."""
    global _TERMINATING, _DIE_AT_EXIT
    _DIE_AT_EXIT = False
    _print_anything()
    args = build_parser().parse_args(argv)
    _TERMINATING = False            # a SIGTERM of an earlier verb in this process is over
    if args.command == "track":     # its own sub-commands: errors say `nasgep track ui`, as argparse's do
        args.command = f"track {args.action}"
    on_main = threading.current_thread() is threading.main_thread()     # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _terminated) if on_main else None
    previous_int = _quit_on_second_interrupt(args.command) if on_main else None
    try:
        return int(args._run(args) or 0)
    except NasgepError as e:
        return _fail(args.command, str(e), e.exit_code)
    except BrokenPipeError:  # `nasgep decode - | head -1`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a file named by the user (or the disk) refused a read or a write
        machine = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)    # not the input's fault: exit 1
        return _fail(args.command, _os_message(e), 2 if e.filename and not machine else 1)
    except KeyboardInterrupt:
        _say(f"nasgep {args.command}: interrupted")
        if argv is None and _INTERRUPTED:   # the `nasgep` command: it ends in _quit_at_exit
            _DIE_AT_EXIT = True
        return 130
    except Terminated:
        _say(f"nasgep {args.command}: terminated (SIGTERM)")
        return 143
    except Exception:
        if not _TERMINATING:
            raise
        # the signal reached the whole process group: a DataLoader worker died of it and torch
        # reported that instead, while Terminated unwound
        _say(f"nasgep {args.command}: terminated (SIGTERM)")
        return 143
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)
            if previous_int is not None and (argv is not None or not _INTERRUPTED):
                # called from Python (argv given): Ctrl-C is the caller's again. As the
                # `nasgep` command, after a Ctrl-C, a second one during the interpreter's
                # exit (MLflow ends its run then) still quits at once
                signal.signal(signal.SIGINT, previous_int)


def _print_anything() -> None:
    """Let stdout and stderr print any text: a path or a name the terminal's encoding cannot
    show (``résultats`` under ``PYTHONIOENCODING=ascii`` or a C locale; a file name that is
    not UTF-8) is printed with backslash escapes (``r\\xe9sultats``), instead of a
    UnicodeEncodeError traceback after the verb did its work. Once, here: every line a verb
    prints goes through these two streams."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed stream, one that cannot flush: nothing to print to
                pass


#: set once Ctrl-C arrived during this verb: a second one quits at once
_INTERRUPTED = False


def _quit_on_second_interrupt(command: str):
    """The first Ctrl-C (SIGINT) raises KeyboardInterrupt as Python's does: the verb unwinds,
    its ``finally`` blocks stop workers, and it says "interrupted" (``main`` returns 130; the
    `nasgep` command then dies of SIGINT, :func:`die_of_sigint`). A second one while it
    unwinds (stopping DataLoader workers can take seconds) quits at once, dying of SIGINT,
    instead of a KeyboardInterrupt traceback from whichever cleanup it landed in. Nothing
    is lost that a ``kill -9`` would not lose: results and checkpoints are written atomically,
    and worker processes die with their parent. Returns the SIGINT handler it replaced (None:
    SIGINT is ignored, as ``nohup`` leaves it, and stays so)."""
    global _INTERRUPTED
    _INTERRUPTED = False
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:    # `nohup`, `cmd &` in a script: left so
        return None
    verb = os.getpid()

    def interrupted(signum, frame):
        global _INTERRUPTED
        if os.getpid() != verb:     # a forked DataLoader worker: Python's own behaviour
            raise KeyboardInterrupt
        if not _INTERRUPTED:
            _INTERRUPTED = True
            raise KeyboardInterrupt
        _say(f"nasgep {command}: interrupted again: quitting at once")
        die_of_sigint()

    return signal.signal(signal.SIGINT, interrupted)


#: set after a Ctrl-C of the `nasgep` command: it ends killed by SIGINT once its exit
#: callbacks have run, skipping the interpreter's teardown
_DIE_AT_EXIT = False


def die_of_sigint() -> None:
    """End the process killed by SIGINT, as Unix programs (and Python itself, for a
    KeyboardInterrupt nobody caught) end on Ctrl-C: a shell loop over seeds (``for s in 0 1
    2; do nasgep search ...; done``) then stops. A program that exits 130 instead tells
    bash it handled the Ctrl-C itself, and the loop went on with the next seed, every
    remaining search running to its end. A shell shows 130 either way; a Python caller
    sees -2. Output is flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):     # a reader gone, a closed stream: nothing to print to
            pass
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.raise_signal(signal.SIGINT)
    finally:
        os._exit(130)                      # not reached: the signal ends the process


def _quit_at_exit() -> None:
    """The `nasgep` command's last exit callback (registered first, as this module is
    imported, before anything else registers one: exit callbacks run last-registered
    first). After a Ctrl-C, once the others have run (MLflow ends its run,
    multiprocessing stops its children) with a second Ctrl-C still quitting at once, the
    process dies of SIGINT here (:func:`die_of_sigint`) instead of tearing the interpreter
    down: Python restores SIGINT's default before that teardown (2-3 s in a search that
    imported torch), and a second Ctrl-C landing in it killed the process with nothing
    printed. Skipping the teardown loses nothing that the second Ctrl-C would not:
    results, checkpoints and MLflow's store are written before."""
    if _DIE_AT_EXIT:
        die_of_sigint()


atexit.register(_quit_at_exit)


class Terminated(BaseException):
    """SIGTERM (SLURM's scancel, Snakemake stopping a job, ``kill``): the verb ends as on
    Ctrl-C, its ``finally`` blocks run (workers stopped, temporary files removed) and it
    says so in one line; Python's default would end it silently."""


#: set once SIGTERM arrived: what fails after it failed because of it
_TERMINATING = False


def _terminated(signum, frame):
    global _TERMINATING
    _TERMINATING = True
    raise Terminated


def _say(line: str) -> None:
    """The verb's last line on stderr. A reader of stderr gone with the same signal (a pipe
    to ``tee`` that Ctrl-C ended first) loses the line, not the exit status."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:     # BrokenPipeError, or a closed terminal (EIO)
        pass


def _fail(command: str, message: str, code: int) -> int:
    line = " ".join(message.split()) or "failed"
    _say(f"nasgep {command}: error: {line}")
    return code


def _os_message(e: OSError) -> str:
    if isinstance(e, (FileExistsError, NotADirectoryError)) and e.filename:
        # a folder to create (results_dir, --out) where a file is, or below one: name the file
        path = Path(str(e.filename))
        blocking = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocking is not None:
            inside = "" if blocking == path else f" (to hold {path})"
            return f"{blocking} is a file, where a folder is needed{inside}; move it or name another path"
    if e.filename and (isinstance(e, (FileExistsError, NotADirectoryError, FileNotFoundError))
                       or e.errno == errno.ELOOP):
        # a link to nothing, or a loop of links, on the way: name it and where it points
        broken = broken_link_on_the_way(os.fsdecode(e.filename))
        if broken is not None:
            return f"{broken}; remove the link or name another path"
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


if __name__ == "__main__":
    sys.exit(main())
