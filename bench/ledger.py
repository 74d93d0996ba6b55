"""Keep the finished parts of a long bench/search_phase.py study in git, so that a study
longer than one session survives a replaced machine, and put them back before it goes on.

  python bench/ledger.py save OUT DEST      # finished searches + every random cell and training
  python bench/ledger.py restore DEST OUT   # copy back what OUT lacks; never overwrites
  python bench/ledger.py save OUT DEST --except-in OTHER   # not what ledger OTHER keeps

``save`` keeps, of each search folder whose ``search.json`` says it finished, the files
the driver and its report read (search.json, best.json, history.parquet) and its
settings.json (without which nasgep refuses the folder), and its finalists.json where the
``retrain`` selection wrote one; of the
rest, every ``random/*.json`` and ``train/*/*.json``. An unfinished search is left out: it
resumes from its checkpoints, which are too large for git, or starts again. Nothing is
read but the ``finished`` flag, so a blind study stays unread.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

SEARCH_FILES = ("search.json", "best.json", "history.parquet", "settings.json")
OPTIONAL_FILES = ("finalists.json",)    # the retrain selection's record, where it was made


def finished_files(out: Path) -> list[Path]:
    """The files of ``out`` worth keeping, relative to it."""
    keep = []
    for summary in sorted(out.glob("search*/seed*/search.json")):
        if json.loads(summary.read_text()).get("finished"):
            keep += [(summary.parent / name).relative_to(out) for name in SEARCH_FILES]
            keep += [(summary.parent / name).relative_to(out) for name in OPTIONAL_FILES
                     if (summary.parent / name).exists()]
    keep += [f.relative_to(out) for f in sorted(out.glob("random/*.json"))]
    keep += [f.relative_to(out) for f in sorted(out.glob("train/*/*.json"))]
    return keep


def copy_missing(files: list[Path], source: Path, target: Path) -> int:
    copied = 0
    for rel in files:
        if not (target / rel).exists():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            tmp = (target / rel).with_name(f".{rel.name}.tmp")
            shutil.copyfile(source / rel, tmp)
            tmp.replace(target / rel)
            copied += 1
    return copied


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["save", "restore"])
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--except-in", type=Path, action="append", default=[], metavar="LEDGER",
                   help="save: leave out the files this ledger already keeps (a study that reuses "
                        "another's finished jobs keeps only its own)")
    a = p.parse_args()
    if not a.source.is_dir():
        p.error(f"{a.source}: no such folder")
    if a.action == "save":
        files = [f for f in finished_files(a.source) if not any((o / f).exists() for o in a.except_in)]
    else:
        files = [f.relative_to(a.source) for f in sorted(a.source.rglob("*")) if f.is_file()]
    n = copy_missing(files, a.source, a.target)
    print(f"{a.action}: {n} new file(s) of {len(files)} copied to {a.target}", file=sys.stderr)


if __name__ == "__main__":
    main()
