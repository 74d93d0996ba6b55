"""The ``nasgep`` command line: one sub-command per module in :mod:`nasgep.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, mlflow) happen inside ``run`` so that
``nasgep --help`` and ``nasgep decode`` stay instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: Sub-commands in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "decode", "draw", "prepare", "train", "search", "sample", "tables", "figures", "track",
)


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def add_config_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--config YAML`` (repeatable, later files win) and ``--set KEY=VALUE`` overrides:
    every verb reads its configuration the same way."""
    p.add_argument("--config", action="append", required=required, default=None, metavar="YAML",
                   help="configuration file (repeatable; later files win)"
                        + ("" if required else "; default: the paper's settings"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. search.max_generations=5 (repeatable)")


def load_args_config(args: argparse.Namespace) -> dict:
    """The validated configuration named by :func:`add_config_arguments`' options."""
    from .config import load_config

    return load_config(args.config, args.set)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    from .config import ConfigError
    from .gep import ChromosomeError
    from .space import GenomeError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (UserError, ConfigError, ChromosomeError, GenomeError) as e:
        print(f"nasgep {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nasgep {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
