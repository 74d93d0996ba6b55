"""Reports of a study: Tables I-III, figures and the choice of the best seed.

The study plan and results layout live in :mod:`nasgep.study` (re-exported here).
No torch here; pandas and matplotlib are imported by the table and figure modules.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..space import Genome, GenomeError
from ..study import (  # noqa: F401 - the report's view of the plan
    FIGURE_FORMATS,
    LAYOUT,
    METHODS,
    SEARCH_METHODS,
    TABLE_FORMATS,
    TABLES,
    ResultFileError,
    Study,
    check_fitness,
    check_search_finished,
    is_number,
    present,
    read_history,
    read_json,
    read_metrics,
)


def _read_result(path: str | Path) -> dict[str, Any]:
    """A result file's JSON object; ValueError naming the file when it is not one."""
    try:
        return read_json(path)
    except ResultFileError as e:
        raise ValueError(f"{e} (expected a search's best.json)") from None


def select_best(paths: list[str | Path]) -> dict[str, Any]:
    """The ``best.json`` with the highest search ``fitness`` (the earliest on ties),
    with a ``selection`` entry naming the candidates; raises ValueError when empty, for
    a result that is no search's (a random sample's, a fitness that is no finite number),
    for searches of different datasets or methods and for two searches of one seed (as ``nasgep
    evaluate``: a seed's search counts once)."""
    if not paths:
        raise ValueError("no best.json to choose from")
    candidates = [(_read_result(p), str(p)) for p in paths]
    for data, path in candidates:
        if data.get("method") == "random":
            raise ValueError(f"{path}: a random sample's genome (method 'random', no fitness), not a search's "
                             "result; choose among searches' best.json")
        if not is_number(data.get("fitness")):
            raise ValueError(f"{path}: no numeric 'fitness'")
        if isinstance(data["fitness"], float) and not math.isfinite(data["fitness"]):
            raise ValueError(f"{path}: fitness {data['fitness']} is not a finite number (a damaged best.json?)")
        try:
            check_fitness(path, data["fitness"])
        except ResultFileError as e:
            raise ValueError(str(e)) from None
        if "genome" not in data:
            raise ValueError(f"{path}: no 'genome' (a search's best.json holds the cells it found)")
        if (Path(path).parent / "search.json").is_file():     # a best.json copied alone is taken as it is
            try:
                check_search_finished(Path(path).parent)
            except ResultFileError as e:
                raise ValueError(f"{e}, or leave {path} out") from None
        try:      # the chosen file is trained next: a broken genome is named here, not there
            Genome.from_dict(data["genome"]).validate()
        except GenomeError as e:
            raise ValueError(f"{path}: genome: {e}") from None
    for key, what in (("dataset", "datasets"), ("method", "methods")):   # with and without weight sharing
        given = [(data[key], path) for data, path in candidates if isinstance(data.get(key), str)]
        for value, path in given[1:]:
            if value != given[0][0]:
                raise ValueError(f"{given[0][1]} ({key} {given[0][0]!r}) and {path} ({key} {value!r}) are "
                                 f"searches of different {what}; choose among one {key}'s searches")
    from .. import outdir

    folders = [Path(path).parent for _, path in candidates]
    unlike = outdir.unlike_runs([f for f in folders if outdir.recorded_kind(f) == "search"])
    if unlike is not None:     # e.g. a seed added under a changed config beside older ones
        first, other, keys = unlike
        raise ValueError(f"{other} and {first} are searches with different settings ({outdir.shown_keys(keys)}); "
                         "choose among the seeds of one method (rerun the others with the same config)")
    seen: dict[Any, str] = {}
    for data, path in candidates:    # a file given twice, or a copy of one search
        seed = data.get("seed")
        if not is_number(seed):     # a damaged file's true is no seed 1
            continue
        if seed in seen:
            raise ValueError(f"{path}: search seed {seed} again (also {seen[seed]}); give one search per seed")
        seen[seed] = path
    best, best_path = max(candidates, key=lambda c: c[0]["fitness"])  # max keeps the first
    out = dict(best)
    out["selection"] = {
        "by": "fitness",
        "chosen": best_path,
        "candidates": {path: data["fitness"] for data, path in candidates},
    }
    return out
