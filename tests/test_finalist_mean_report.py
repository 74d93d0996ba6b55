"""bench/finalist_mean_report.py (the planned comparison of bench/finalist_mean.sh) on a
hand-made study folder: which search picks it compares."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from nasgep.space import smallest_genomes

REPORT = Path(__file__).resolve().parents[1] / "bench" / "finalist_mean_report.py"


def _report():
    spec = importlib.util.spec_from_file_location("finalist_mean_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["finalist_mean_report"] = module
    spec.loader.exec_module(module)
    return module


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_a_pick_kept_on_a_tie_of_fitness_is_not_counted_as_changed(tmp_path, capsys, monkeypatch):
    """Two finalists of equal search fitness: the search kept the earlier one (i2, best.json,
    trained as the fitness pick); the finalists rank by id, 'i10' before 'i2'. The mean
    chose i2, the fitness pick itself, yet the report took the first finalist for the
    fitness pick and counted the pick as changed."""
    a, b = smallest_genomes()[:2]
    search = tmp_path / "search-full8g2v4" / "seed14"
    _write(search / "best.json", {"genome": b.to_dict(), "fitness": 40.0, "individual": "i2", "epochs": 8})
    _write(search / "finalists.json", {"chosen": "i2", "fitness": 41.0, "genome": b.to_dict(), "finalists": [
        {"id": "i10", "genome": a.to_json(), "score": 100.0, "fitness": 40.0, "retrained": 39.0},
        {"id": "i2", "genome": b.to_json(), "score": 100.0, "fitness": 40.0, "retrained": 42.0}]})
    for name in ("full8g2v4-fitness-seed14", "full8g2v4-retrain-seed14"):     # one genome: the same trainings
        for t in (0, 1):
            _write(tmp_path / "train" / name / f"s{t}.json", {"accuracy": 50.0 + t})
    monkeypatch.setattr(sys, "argv", ["finalist_mean_report.py", str(tmp_path), "--seeds", "14-14"])
    _report().main()
    out = capsys.readouterr().out
    assert "| 14 | i2 (40.00) | 50.50 | i2 " in out
    assert "seeds compared: 1; pick changed in 0;" in out
