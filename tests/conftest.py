"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""
from __future__ import annotations

import os
import signal
from pathlib import Path

# Tiny test networks run fastest on one thread, and several torch processes (workers,
# subprocess tests) on 2 cores thrash OpenMP when each spins up a thread per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar10-lossless-5k.npz").exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


def pytest_configure(config) -> None:
    """A suite started in the background by a shell without job control (`make test &`,
    `nohup make test &`) inherits Ctrl-C ignored, and so would every command the Ctrl-C
    tests start: 8 of them failed so. Give this process (each xdist worker runs it too)
    the interpreter's usual Ctrl-C, which its children get as the default action."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items) -> None:
    """Run the `slow` end-to-end tests first (stable order otherwise): with `-n 2` the two
    workers then share the minutes-long tests from the start and the short ones fill the
    gaps, instead of one worker finishing alone on a long test at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --------------------------------------------------------------------------- results/ guard
# Tests write only under their own temporary folders. A user's results/ (their studies, their
# MLflow store) must look the same after the test run as before it, and nothing may land in
# MLflow's fallback folders of the working directory: the run fails otherwise, naming what
# changed.
WATCHED = [ROOT / "results", ROOT / "mlruns", ROOT / "mlartifacts"]


def _results_snapshot() -> dict[str, tuple[int, int]]:
    """Every path under the watched folders (and the folders themselves) with its size and
    modification time (folders too, so a created-then-emptied folder counts)."""
    snapshot = {}
    for top in WATCHED:
        if top.exists():
            snapshot[str(top.relative_to(ROOT))] = (0, 0)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                size = 0 if path.is_dir() else st.st_size
                snapshot[str(path.relative_to(ROOT))] = (size, st.st_mtime_ns if not path.is_dir() else 0)
    return snapshot


def results_changes(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [f"new {p}" for p in added] + [f"removed {p}" for p in removed] + [f"changed {p}" for p in changed]


def pytest_sessionstart(session) -> None:
    session.config._nasgep_results = _results_snapshot()


def pytest_sessionfinish(session, exitstatus) -> None:
    before = getattr(session.config, "_nasgep_results", None)
    if before is None:
        return
    changes = results_changes(before, _results_snapshot())
    if not changes:
        return
    shown = changes[:20] + ([f"... and {len(changes) - 20} more"] if len(changes) > 20 else [])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = ("the tests changed the user's results/ (or wrote ./mlruns, ./mlartifacts); tests must write "
            "under tmp_path only:\n  "
            + "\n  ".join(shown))
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "results/ was touched", red=True)
        reporter.write_line(text)
    else:
        print(text)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def metrics_stop_at(monkeypatch):
    """``metrics_stop_at(step)``: from now on, MLflow metrics logged at ``step`` raise
    KeyboardInterrupt instead (a run stopped after its checkpoint, before its metrics);
    ``metrics_stop_at(None)`` logs normally again."""
    from nasgep.tracking import Run

    log_metrics = Run.log_metrics

    def stop_at(stop_step):
        def stopped(self, metrics, step=None):
            if step == stop_step:
                raise KeyboardInterrupt
            log_metrics(self, metrics, step)

        monkeypatch.setattr(Run, "log_metrics", log_metrics if stop_step is None else stopped)

    return stop_at
