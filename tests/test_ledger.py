"""bench/ledger.py: what a study longer than a session keeps in git, and how it comes back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LEDGER = Path(__file__).resolve().parents[1] / "bench" / "ledger.py"


def _ledger(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LEDGER), *map(str, args)], capture_output=True, text=True)


def _study(out: Path) -> None:
    for seed, finished in ((1, True), (2, False)):
        folder = out / "search-v" / f"seed{seed}"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "search.json").write_text(json.dumps({"finished": finished}))
        for name in ("best.json", "history.parquet", "settings.json", "checkpoints/gen-0000.json"):
            (folder / name).write_text(f"{name} of seed {seed}")
    (out / "random").mkdir()
    (out / "random" / "r7.json").write_text("{}")
    (out / "train" / "v-fitness-seed1").mkdir(parents=True)
    (out / "train" / "v-fitness-seed1" / "s0.json").write_text('{"accuracy": 50.0}')


def test_save_keeps_finished_searches_and_every_result_then_restore_fills_only_gaps(tmp_path):
    out, kept = tmp_path / "out", tmp_path / "kept"
    _study(out)
    assert _ledger("save", out, kept).returncode == 0
    files = sorted(str(f.relative_to(kept)) for f in kept.rglob("*") if f.is_file())
    assert files == ["random/r7.json", "search-v/seed1/best.json", "search-v/seed1/history.parquet",
                     "search-v/seed1/search.json", "train/v-fitness-seed1/s0.json"]

    fresh = tmp_path / "fresh"                     # a replaced machine: the kept files come back
    assert _ledger("restore", kept, fresh).returncode == 0
    assert (fresh / "search-v" / "seed1" / "best.json").read_text() == "best.json of seed 1"
    assert not (fresh / "search-v" / "seed2").exists()

    (out / "random" / "r7.json").write_text('{"changed": true}')   # restore never overwrites
    assert _ledger("restore", kept, out).returncode == 0
    assert (out / "random" / "r7.json").read_text() == '{"changed": true}'


def test_a_missing_folder_is_one_line(tmp_path):
    r = _ledger("save", tmp_path / "nope", tmp_path / "kept")
    assert r.returncode == 2 and "nope: no such folder" in r.stderr and "Traceback" not in r.stderr
