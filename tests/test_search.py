"""The search loop over the cheap deterministic evaluator: invariants, determinism,
failures, checkpoint/resume after SIGKILL, and workers."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from nasgep.config import load_config
from nasgep.errors import RunFailed
from nasgep.search import checkpoint
from nasgep.search.evaluator import CheapEvaluator, ProcessExecutor, SerialExecutor, WorkerDied
from nasgep.search.loop import Search, SearchSettings
from nasgep.search.runner import run_search
from nasgep.search.state import SearchState, from_dict, to_dict

SMALL = [
    "search.population=6", "search.reduction_population=4", "search.gene_pool=10",
    "search.gene_pool_max=14", "search.genes_min=2", "search.genes_max=4", "search.max_epochs=4",
    "search.max_generations=7", "search.budget_hours=100", "tracking.enabled=false",
    "search.devices=[cpu]",
]


def small_config(*extra: str) -> dict:
    return load_config(None, SMALL + list(extra))


def cheap_factory(device: str) -> CheapEvaluator:
    return CheapEvaluator()


def run_cheap(config: dict, seed: int = 0, evaluator=None, reports=None) -> SearchState:
    settings = SearchSettings.from_config(config)
    evaluator = evaluator or CheapEvaluator()
    search = Search(settings, evaluator, SerialExecutor(evaluator), SearchState(seed=seed))

    def on_generation(st, report):
        if reports is not None:
            reports.append((from_dict(to_dict(st)), report))

    return search.run(on_generation)


def test_invariants_after_every_generation():
    config = small_config()
    s = SearchSettings.from_config(config)
    reports = []
    final = run_cheap(config, seed=3, reports=reports)
    assert final.finished and final.stop_reason == "max_generations"
    assert len(reports) == 7
    previous = None
    for st, rep in reports:
        pop = st.population
        assert 0 < len(pop) <= s.population
        assert all(not i.dead for i in pop), "dead individuals are dropped"
        assert all(i.epochs < s.max_epochs for i in pop)
        # pools: between C_min and C_max new genes; more than C_min only while below P_g^max
        for pool in ("normal", "reduction"):
            born = sum(1 for g in st.genes[pool].values() if g.born == st.generation)
            if st.generation == 0:
                assert len(st.genes[pool]) == s.gene_pool
            else:
                assert s.genes_min <= born <= s.genes_max
                if born > s.genes_min:
                    assert len(st.genes[pool]) <= s.gene_pool_max
        # reduction population: P_r plus those in use
        in_use = {i.reduction_id for i in pop}
        assert in_use <= set(st.reductions)
        assert len(st.reductions) <= max(s.reduction_population, len(in_use))
        # every gene a living cell refers to still exists
        for i in pop:
            assert set(st.cell_genome("normal", i.normal).coding_genes()) <= set(st.genes["normal"])
        for r in st.reductions.values():
            assert set(st.cell_genome("reduction", r.chromosome).coding_genes()) <= set(st.genes["reduction"])
        # thresholds as defined
        ranked = sorted((i.fitness for i in pop), reverse=True)
        assert st.t_g == ranked[min(s.population, len(ranked)) - 1]
        assert st.t_c == pytest.approx(0.75 * st.t_g)
        rows = pd.DataFrame([h for h in st.history if h["generation"] == st.generation])
        if previous is not None:
            prev_state = previous
            # elitism: last generation's best living individual survives unless it died of E_max
            elite = max(prev_state.population, key=lambda i: i.fitness)
            elite_row = rows[rows.id == elite.id].iloc[0]
            assert elite_row.dead or elite.id in {i.id for i in pop}
            # the oldest living individual before selection (unless the elite) is killed
            alive = rows[~rows.dead]
            oldest = alive.sort_values(["born", "epochs"], ascending=[True, False]).iloc[0]
            best_id = alive.sort_values("fitness", ascending=False).iloc[0].id
            if oldest.id != best_id and oldest.fitness < alive.fitness.max():
                assert oldest.id not in {i.id for i in pop}
            # every survivor of the previous generation trained at least one more epoch
            for ind in prev_state.population:
                assert ind.id in set(rows.id)
            # children: one per individual of the previous population
            assert (rows.born == st.generation).sum() == len(prev_state.population)
        previous = st
        assert rep.population == len(pop)


def test_search_is_deterministic_for_a_seed():
    config = small_config()
    a, b, c = run_cheap(config, seed=5), run_cheap(config, seed=5), run_cheap(config, seed=6)
    assert a.history == b.history and a.best == b.best
    assert a.history != c.history


def test_bonus_epoch_and_emax_death():
    config = small_config("search.max_epochs=3", "search.max_generations=6")
    final = run_cheap(config, seed=1)
    hist = pd.DataFrame(final.history)
    # someone got the T_c bonus: two epochs in one generation
    assert (hist.epochs_this_generation == 2).any()
    assert hist.epochs.max() <= 3
    assert hist[hist.epochs == 3].dead.all()
    assert final.best is not None and final.best.fitness == hist.fitness.max()


def test_failing_candidates_get_fitness_zero_and_the_search_goes_on():
    def fail(genome):
        return "loss is nan at batch 3" if genome.normal.cell.symbols[0] == "add" else None

    final = run_cheap(small_config(), seed=2, evaluator=CheapEvaluator(fail_if=fail))
    hist = pd.DataFrame(final.history)
    failed = hist[hist.failure.notna()]
    assert len(failed) > 0 and (failed.fitness == 0).all()
    assert failed.failure.str.contains("nan").all()
    assert failed.dead.all()
    assert final.generation == 6 and final.best.fitness > 0


def test_parameter_limit_rebreeds_and_counts_rejections():
    limit = 9500                 # tight: some random initial cells find no draw within it
    final = run_cheap(small_config(f"search.max_params={limit}"), seed=4)
    assert final.param_rejections > 0
    hist = pd.DataFrame(final.history)
    rows = {r.id: r for r in hist.itertuples()}
    over = [r for r in hist.itertuples() if r.params > limit]
    assert over and len(over) < len(hist)
    # the limit holds except for the documented fallbacks after rebreed_tries rejections:
    # the smallest draw for a random initial individual, the mother's cells for a child
    for r in over:
        mother = rows[r.parents.split(",")[0]] if r.born > 0 else None
        assert mother is None or (r.normal, r.reduction_id) == (mother.normal, mother.reduction_id), r.id


def test_weight_store_bookkeeping():
    from nasgep.search.evaluator import _cheap_keys
    from nasgep.space import Genome

    final = run_cheap(small_config(), seed=0)
    hist = pd.DataFrame(final.history)
    # each key holds the weights of its best owner: the highest validation accuracy among
    # the individuals that had the module and survived a selection (the store's candidates;
    # a survivor of generation g has a row in generation g + 1, or is in the final population)
    rows = {(r.id, r.generation) for r in hist.itertuples()}
    last, final_ids = hist.generation.max(), {i.id for i in final.population}

    def survived(r) -> bool:
        return (r.id, r.generation + 1) in rows if r.generation < last else r.id in final_ids
    owners = [(r, set(_cheap_keys(Genome.from_json(r.genome)))) for r in hist.itertuples()
              if survived(r) and r.failure is None and r.epochs > 0]
    assert len(final.store_index) > 10
    for key, entry in final.store_index.items():
        best = max((r for r, keys in owners if key in keys), key=lambda r: r.accuracy)
        assert entry["fitness"] == best.accuracy, key
    # later children inherited something
    assert hist[hist.born > 0].inherited.max() > 0
    nws = run_cheap(small_config("search.weight_sharing=false"), seed=0)
    assert nws.store_index == {} and pd.DataFrame(nws.history).inherited.max() == 0


def test_two_workers_equal_one():
    config = small_config("search.max_generations=4")
    settings = SearchSettings.from_config(config)
    one = run_cheap(config, seed=9)
    executor = ProcessExecutor(cheap_factory, ["cpu", "cpu"])
    try:
        two = Search(settings, CheapEvaluator(), executor, SearchState(seed=9)).run()
    finally:
        executor.close()
    assert two.history == one.history and two.best == one.best


def test_a_terminal_shows_each_generations_candidates_as_they_train(tmp_path, capsys):
    """A generation can train for many minutes: a second bar counts its candidates, on both
    executors, and the result is the one a search without bars finds."""
    config = small_config("search.max_generations=2")
    quiet = run_search(config, dataset="cifar10", seed=2, out_dir=tmp_path / "quiet", factory=cheap_factory,
                       progress=False, log=lambda msg: None)
    capsys.readouterr()
    shown = run_search(config, dataset="cifar10", seed=2, out_dir=tmp_path / "shown", factory=cheap_factory,
                       progress=True, log=lambda msg: None)
    err = capsys.readouterr().err
    assert shown.history == quiet.history
    assert f"  training:   0%|          | 0/{config['search']['population']} " in err    # generation 0
    assert "candidate/s" in err and "search: 100%" in err
    done = []
    executor = ProcessExecutor(cheap_factory, ["cpu", "cpu"])
    try:
        jobs = _jobs(5)
        results = executor.map(jobs, lambda: True, lambda: done.append(len(done)))
    finally:
        executor.close()
    assert len(done) == 5 and all(r is not None for r in results)


def test_workers_started_from_a_thread_that_ends_go_on_working():
    """Linux's parent-death signal follows the thread that started a worker: a pool started
    from a short-lived thread must not lose its workers when that thread ends."""
    import threading

    made = []

    def start() -> None:      # the workers are up (they trained a job each) when the thread ends
        made.append(ProcessExecutor(cheap_factory, ["cpu", "cpu"]))
        made[0].map(_jobs(2), lambda: True)

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    executor = made[0]
    try:
        time.sleep(1)
        results = executor.map(_jobs(4), lambda: True)
    finally:
        executor.close()
    assert all(r is not None and r.failure is None for r in results)


def slow_factory(device: str) -> CheapEvaluator:
    """Jobs of two minutes; the worker says it is ready (its SIGTERM handler installed) with
    a file in the folder $NASGEP_TEST_READY names, when set (:func:`when_ready`)."""
    if os.environ.get("NASGEP_TEST_READY"):
        Path(os.environ["NASGEP_TEST_READY"], str(os.getpid())).touch()
    return CheapEvaluator(delay=120)


def when_ready(folder: Path, workers: int, action) -> None:
    """Run ``action`` in a thread once ``workers`` workers of :func:`slow_factory` are ready
    and their jobs have begun: a fixed delay found a worker of a loaded machine still
    importing, without its SIGTERM handler."""
    def run():
        deadline = time.monotonic() + 120
        while len(list(folder.iterdir())) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        action()
    threading.Thread(target=run, daemon=True).start()


def test_a_worker_that_dies_stops_the_search_at_once_and_close_does_not_wait_for_busy_ones(tmp_path,
                                                                                             monkeypatch):
    """A worker killed during its job is seen at once (its process sentinel), not after a
    poll; closing the executor while the other worker trains ends that one too, instead of
    waiting for a candidate that may train for minutes (Ctrl-C or SIGTERM to the search
    process alone used to take 11 s with two workers)."""
    import signal

    monkeypatch.setenv("NASGEP_TEST_READY", str(tmp_path))
    executor = ProcessExecutor(slow_factory, ["cpu", "cpu"])
    procs = [p for p, _ in executor._workers]
    killed = []
    when_ready(tmp_path, 2, lambda: (killed.append(time.monotonic()), os.kill(procs[0].pid, signal.SIGKILL)))
    try:
        with pytest.raises(WorkerDied, match=r"^1 search worker process\(es\) died \(killed by SIGKILL, often "
                           r"the out-of-memory killer\); what the completed generations found is kept: "
                           r"go on with --resume$"):
            executor.map(_jobs(2), lambda: True)
    finally:
        executor.close()
    assert time.monotonic() - killed[0] < 8      # was up to 15 s: a 5 s poll, then 10 s for the busy one
    assert procs[1].exitcode == 128 + signal.SIGTERM       # ended at once, by unwinding


def test_a_worker_ended_by_sigterm_is_named_so(tmp_path, monkeypatch):
    """A worker unwinds on SIGTERM and exits with 128 + 15: a worker SIGTERMed on its own
    (``kill PID``) was reported as 'exit code 143' instead of 'killed by SIGTERM'."""
    import signal

    monkeypatch.setenv("NASGEP_TEST_READY", str(tmp_path))
    executor = ProcessExecutor(slow_factory, ["cpu", "cpu"])
    procs = [p for p, _ in executor._workers]
    when_ready(tmp_path, 2, lambda: os.kill(procs[0].pid, signal.SIGTERM))
    try:
        with pytest.raises(WorkerDied, match=r"^1 search worker process\(es\) died \(killed by SIGTERM\); "):
            executor.map(_jobs(2), lambda: True)
    finally:
        executor.close()


class _SlowFinalizer:
    """Python ignores an exception raised in a ``__del__`` (as in a generator finalized by
    the garbage collector): this one marks ``entered`` and runs for 2 s."""

    def __init__(self, entered: str):
        self.entered = entered

    def __del__(self):
        Path(self.entered).touch()
        start = time.monotonic()
        while time.monotonic() - start < 2:
            pass


class FinalizingEvaluator(CheapEvaluator):
    """Trains for a minute, starting inside a slow ``__del__``."""

    def train(self, job):
        _SlowFinalizer(os.environ["NASGEP_TEST_ENTERED"])
        start = time.monotonic()
        while time.monotonic() - start < 60:
            pass
        return super().train(job)


def finalizing_factory(device: str) -> CheapEvaluator:
    return FinalizingEvaluator()


def test_a_sigterm_that_lands_in_a_finalizer_still_ends_the_worker(tmp_path, monkeypatch):
    """A worker's SIGTERM raised inside a ``__del__`` was printed as 'Exception ignored' and
    SIGTERM stayed ignored: the worker trained on, and close() waited 10 s per worker before
    killing it (SIGKILL, its DataLoader's queues left behind). It is raised again once the
    finalizer has ended, and the worker unwinds."""
    import signal

    entered = tmp_path / "entered"
    monkeypatch.setenv("NASGEP_TEST_ENTERED", str(entered))
    executor = ProcessExecutor(finalizing_factory, ["cpu"])
    proc = executor._workers[0][0]

    def train():
        try:
            executor.map(_jobs(1), lambda: True)
        except (OSError, WorkerDied):   # close() ended the job
            pass

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    try:
        deadline = time.monotonic() + 60
        while not entered.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert entered.exists()
    finally:
        start = time.monotonic()
        executor.close()
    assert time.monotonic() - start < 6
    trainer.join(timeout=10)
    assert proc.exitcode == 128 + signal.SIGTERM


def five_second_factory(device: str) -> CheapEvaluator:
    return CheapEvaluator(delay=5)


def test_workers_leave_ctrl_c_to_the_search_process():
    """Ctrl-C on a terminal reaches the workers too. A worker turned it into a failed
    candidate ("worker error: KeyboardInterrupt"), which a search whose own process was not
    interrupted recorded as the candidate's result; interrupted while starting, it printed
    a traceback. Workers now ignore SIGINT (the search process stops them itself), and the
    search process keeps its own Ctrl-C."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    executor = ProcessExecutor(five_second_factory, ["cpu"])
    assert signal.getsignal(signal.SIGINT) is before
    proc = executor._workers[0][0]
    for at in (0.05, 3):    # starting (importing), then training
        threading.Timer(at, lambda: os.kill(proc.pid, signal.SIGINT)).start()
    try:
        [result] = executor.map(_jobs(1), lambda: True)
    finally:
        executor.close()
    assert result.failure is None and proc.exitcode == 0


class _PressesCtrlC:
    """A factory that presses Ctrl-C in the search process as the worker it is sent to
    starts (pickled by ``Process.start``); a worker gets the plain cheap factory."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGINT)
        return (_cheap_factory, ())


def _cheap_factory():
    return cheap_factory


def test_a_ctrl_c_while_the_workers_start_takes_effect_once_they_are_started():
    """SIGINT was ignored in the search process while its workers started (so that they
    inherit SIG_IGN): a Ctrl-C in those 5-12 ms was lost, and one more press was needed.
    It is raised once the workers are started, which are stopped, and the search
    process's Ctrl-C handling is as it was."""
    import multiprocessing

    before = signal.getsignal(signal.SIGINT)
    running = set(multiprocessing.active_children())
    with pytest.raises(KeyboardInterrupt):
        ProcessExecutor(_PressesCtrlC(), ["cpu", "cpu"])
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    assert set(multiprocessing.active_children()) <= running      # its workers are stopped


def test_a_sigterm_right_after_the_workers_start_leaves_ctrl_c_as_it_was(monkeypatch):
    """A SIGTERM handled just as SIGINT is unmasked again (its handler raises there) left
    the handler that only records a Ctrl-C in place while the search unwound: a Ctrl-C
    then did nothing. The old handler comes back whatever the unmask raises."""
    from nasgep import processes

    class Terminated(Exception):
        pass

    real_mask = signal.pthread_sigmask

    def terminated_at_the_unmask(how, mask):
        previous = real_mask(how, mask)
        if how == signal.SIG_SETMASK:
            raise Terminated        # what unwind_on_sigterm's handler raises at this point
        return previous

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(processes.signal, "pthread_sigmask", terminated_at_the_unmask)
    with pytest.raises(Terminated):
        with processes.ctrl_c_ignored(True):
            assert signal.getsignal(signal.SIGINT) is not before   # the recording handler
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.SIGINT not in real_mask(signal.SIG_BLOCK, ())


WORKER_SIGINT = """
import multiprocessing, os, signal, sys
from nasgep.processes import ctrl_c_ignored, ignore_held_ctrl_c

def worker(conn):
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    os.kill(os.getpid(), signal.SIGINT)         # a Ctrl-C while it starts
    ignore_held_ctrl_c()
    conn.send((blocked, signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
               signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())))

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    workers = []
    with ctrl_c_ignored(True):
        for _ in range(2):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(theirs,))
            proc.start()
            workers.append((proc, ours))
    for proc, ours in workers:
        print(*ours.recv())
        proc.join()
        print(proc.exitcode)
"""


def test_workers_start_with_ctrl_c_held_then_ignore_it(tmp_path):
    """A worker ignores Ctrl-C from its first instruction (before it runs any code of ours,
    a Ctrl-C printed a KeyboardInterrupt traceback): it starts with SIGINT blocked, then
    ignores it, the one held meanwhile dropped. In a fresh process, whose first worker
    also starts multiprocessing's resource tracker (which unblocks SIGINT)."""
    script = tmp_path / "start.py"      # a file: spawned workers import their target from it
    script.write_text(WORKER_SIGINT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n") == ["True True False", "0", "True True False", "0", ""], out.stderr


class _IgnoresSigterm(CheapEvaluator):
    """Trains for two minutes, deaf to SIGTERM (stuck in native code, say)."""

    def train(self, job):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(os.environ["NASGEP_TEST_ENTERED"], job.individual).touch()
        time.sleep(120)
        return super().train(job)


def ignores_sigterm(device: str) -> CheapEvaluator:
    return _IgnoresSigterm()


def test_close_gives_the_workers_one_deadline_together(tmp_path, monkeypatch):
    """close() waited up to 10 s for each worker that did not end, one after another
    (20 s for two stuck workers): they share one deadline, then what is left is killed."""
    from types import SimpleNamespace

    from nasgep.search import evaluator as evaluator_module

    monkeypatch.setenv("NASGEP_TEST_ENTERED", str(tmp_path))
    executor = ProcessExecutor(ignores_sigterm, ["cpu", "cpu"])
    procs = [p for p, _ in executor._workers]
    try:
        for w, job in enumerate(_jobs(2)):
            executor._workers[w][1].send((w, job))
            executor._busy[w] = 1
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.iterdir())) == 2       # both deaf to SIGTERM now
        now = [0.0]
        monkeypatch.setattr(evaluator_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
        waited = []
        for proc in procs:
            def join(timeout=None, real=proc.join):
                if timeout is None:
                    return real()
                waited.append(timeout)      # it does not end within the time it is given
                now[0] += timeout
            monkeypatch.setattr(proc, "join", join)
    finally:
        executor.close()
    assert waited == [ProcessExecutor.stop_seconds, 0.0]
    assert [p.exitcode for p in procs] == [-signal.SIGKILL, -signal.SIGKILL]


def test_workers_that_died_alike_are_named_once_and_one_not_reaped_is_not_called_running():
    """Two workers killed at once (a cgroup's out-of-memory kill) read 'killed by SIGKILL, often
    the out-of-memory killer, killed by SIGKILL, often the out-of-memory killer', and one not
    reaped within the 5 s given (exit code None) was said to have died '(still running)'."""
    assert str(WorkerDied([-9, -9])) == ("2 search worker process(es) died (2x killed by SIGKILL, often the "
                                         "out-of-memory killer); what the completed generations found is "
                                         "kept: go on with --resume")
    assert str(WorkerDied([-9, 1])).startswith("2 search worker process(es) died (killed by SIGKILL, often "
                                               "the out-of-memory killer; exit code 1); ")
    assert str(WorkerDied([None])).startswith("1 search worker process(es) died (still exiting); ")
    assert str(WorkerDied([-15, -200])).startswith("2 search worker process(es) died (killed by SIGTERM; "
                                                   "killed by signal 200); ")


class ChildStartingEvaluator(CheapEvaluator):
    """Trains through child processes of its own, as a DataLoader with num_workers > 0
    does (with the start method a DataLoader uses by default)."""

    def train(self, job):
        import multiprocessing

        child = multiprocessing.Process(target=int)
        child.start()
        child.join()
        return super().train(job)


def child_starting_factory(device: str) -> CheapEvaluator:
    return ChildStartingEvaluator()


def test_a_worker_may_start_processes_of_its_own():
    """Workers are daemonic processes, which multiprocessing forbids children: with a folder
    dataset and train.num_workers > 0 (DataLoader workers), every candidate of a search with
    search.concurrency > 1 failed with 'daemonic processes are not allowed to have children'
    (found by review helper 52)."""
    executor = ProcessExecutor(child_starting_factory, ["cpu", "cpu"])
    try:
        results = executor.map(_jobs(2), lambda: True)
    finally:
        executor.close()
    assert [r.failure for r in results] == [None, None]


def test_a_dead_worker_is_named_even_before_it_can_be_reaped(monkeypatch):
    """A dying process closes its files one by one (its sentinel may read ready before its
    pipe does) before the kernel lets its parent reap it, and in that moment ``is_alive()``
    still says True: the error said '0 search worker process(es) died (exit codes [])' (on
    a loaded machine, 2 runs in 3 of the test above)."""
    from nasgep.search import evaluator as evaluator_module

    wait = evaluator_module.mp_connection.wait

    def sentinel_first(objects, timeout=None):
        ready = wait(objects, timeout)
        return [r for r in ready if isinstance(r, int)] or ready

    monkeypatch.setattr(evaluator_module.mp_connection, "wait", sentinel_first)
    executor = ProcessExecutor(slow_factory, ["cpu", "cpu"])
    procs = [p for p, _ in executor._workers]
    procs[0].is_alive = lambda: True        # that moment, made to last
    threading.Timer(3, lambda: os.kill(procs[0].pid, signal.SIGKILL)).start()
    try:
        with pytest.raises(WorkerDied, match=r"^1 search worker process\(es\) died \(killed by SIGKILL"):
            executor.map(_jobs(2), lambda: True)
    finally:
        del procs[0].is_alive
        executor.close()


def test_a_worker_that_died_while_idle_stops_the_search_with_the_same_error():
    """A worker that died between jobs (the OOM killer between generations, or just after
    sending its answer) made the next job's send raise BrokenPipeError, which the CLI takes
    for a reader of its output gone: `nasgep search` ended with status 141, saying nothing."""
    executor = ProcessExecutor(cheap_factory, ["cpu", "cpu"])
    procs = [p for p, _ in executor._workers]
    try:
        assert all(r is not None for r in executor.map(_jobs(2), lambda: True))
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].join(10)
        with pytest.raises(WorkerDied, match=r"^1 search worker process\(es\) died \(killed by SIGKILL"):
            executor.map(_jobs(2), lambda: True)
    finally:
        executor.close()
        executor.close()        # twice: nothing left to end


class _StopsOrLingers(CheapEvaluator):
    """Job ``i0`` trains for 3 s; job ``i1`` raises a UserError (an unreadable image)."""

    def train(self, job):
        from nasgep.errors import UserError

        if job.individual == "i1" and job.epoch == 1:
            raise UserError("unreadable image")
        if job.individual == "i0" and job.epoch == 1:
            time.sleep(3)
        return super().train(job)


def stops_or_lingers(device: str) -> CheapEvaluator:
    return _StopsOrLingers()


class _DiskFull(CheapEvaluator):
    """Job ``i1`` cannot write its state (the disk is full), or its DataLoader worker died
    (a RunFailed, as nasgep.train.LoaderDied)."""

    def __init__(self, loader: bool):
        super().__init__()
        self.loader = loader

    def train(self, job):
        if job.individual == "i1" and self.loader:
            raise RunFailed("a data-loading worker process died")
        if job.individual == "i1":
            raise OSError(errno.ENOSPC, "No space left on device", f"individuals/i1/e{job.epoch}.pt")
        return super().train(job)


def disk_full(device: str) -> CheapEvaluator:
    return _DiskFull(loader=False)


def loader_died(device: str) -> CheapEvaluator:
    return _DiskFull(loader=True)


@pytest.mark.parametrize("factory, error, match", [(disk_full, OSError, "individuals/i1/e1.pt"),
                                                    (loader_died, RunFailed, "data-loading worker")])
def test_a_full_disk_or_a_killed_loader_in_a_worker_stops_the_search(factory, error, match):
    """An OSError or a RunFailed in a worker process is the machine's, not the candidate's:
    it reaches the search as that error (exit 1, one line), not as a failed candidate."""
    executor = ProcessExecutor(factory, ["cpu", "cpu"])
    try:
        with pytest.raises(error, match=match):
            executor.map(_jobs(2), lambda: True)
    finally:
        executor.close()


def test_a_map_after_one_that_raised_takes_no_answer_of_the_earlier_jobs():
    """A map that raised (a UserError from one worker) leaves the other worker training its
    job; the answer it sends later carries that earlier call's index and was taken for the
    result of the next call's job of the same index."""
    from dataclasses import replace

    executor = ProcessExecutor(stops_or_lingers, ["cpu", "cpu"])
    try:
        with pytest.raises(Exception, match="unreadable image"):
            executor.map(_jobs(2), lambda: True)
        again = [replace(job, epoch=2) for job in _jobs(2)]
        done = []
        results = executor.map(again, lambda: True, lambda: done.append(1))
    finally:
        executor.close()
    assert [(r.individual, r.epoch) for r in results] == [("i0", 2), ("i1", 2)]
    assert len(done) == 2


def _jobs(n: int) -> list:
    from nasgep.search.evaluator import TrainJob
    from nasgep.search.sample import sample_genome

    settings = SearchSettings.from_config(small_config())
    return [TrainJob(f"i{k}", sample_genome(settings, k, lambda genome: 1)[0], 1, k) for k in range(n)]


def test_workers_die_with_a_killed_search():
    """kill -9 of the search leaves no worker behind: an orphan would hold its memory and
    go on writing into a folder whose lock is gone."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import time\nfrom test_search import cheap_factory\n"
            "from nasgep.search.evaluator import ProcessExecutor\n"
            "executor = ProcessExecutor(cheap_factory, ['cpu', 'cpu'])\n"
            "print(*[p.pid for p, _ in executor._workers], flush=True)\ntime.sleep(600)\n")
    search = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              cwd=Path(__file__).parent)
    workers = [int(pid) for pid in search.stdout.readline().split()]
    assert len(workers) == 2
    time.sleep(3)                           # the workers have started (spawned, imported)
    search.send_signal(signal.SIGKILL)
    search.wait()
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"workers {alive} outlived the search"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"          # a zombie has ended; only its exit status is left


def test_budget_stops_within_one_candidate_epoch():
    now = [0.0]

    def clock() -> float:        # one fake second per clock read
        now[0] += 1.0
        return now[0]

    starts = []                  # the clock when each candidate epoch started

    class Timed(CheapEvaluator):
        def train(self, job):
            starts.append(now[0])
            return super().train(job)

    config = small_config("search.max_generations=null", "search.budget_hours=0.01")  # 36 s
    ev = Timed()
    search = Search(SearchSettings.from_config(config), ev, SerialExecutor(ev), SearchState(seed=0), clock=clock)
    t0 = now[0]                  # the search's clock starts when it is made
    st = search.run()
    assert st.finished and st.stop_reason == "budget"
    elapsed = [t - t0 for t in starts]
    assert len(elapsed) > 10 and max(elapsed) < 36          # no candidate epoch starts after the budget
    longest_gap = max(b - a for a, b in zip(elapsed, elapsed[1:]))
    assert max(elapsed) >= 36 - longest_gap                  # nor does it stop while one more would fit


def test_checkpoint_round_trip_and_corruption(tmp_path):
    config = small_config("search.max_generations=3")
    final = run_cheap(config, seed=1)
    path = checkpoint.save(tmp_path, final)
    again = checkpoint.read(path)
    assert to_dict(again) == to_dict(final)
    older = from_dict(to_dict(final))
    older.generation -= 1
    checkpoint.save(tmp_path, older)
    checkpoint.save(tmp_path, final)
    newest = checkpoint.list_checkpoints(tmp_path)[0]
    newest.write_text(newest.read_text()[:-40] + "garbage}\n")
    loaded, problems = checkpoint.newest_good(tmp_path)
    assert loaded.generation == older.generation
    assert len(problems) == 1 and problems[0].startswith(newest.name)


SCRIPT = textwrap.dedent("""
    import sys
    from nasgep.config import load_config
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search
    config = load_config(None, sys.argv[3:])
    run_search(config, dataset="cifar10", seed=int(sys.argv[2]), out_dir=sys.argv[1], resume=True,
               factory=lambda device: CheapEvaluator(delay=float(__import__("os").environ.get("DELAY", "0"))),
               progress=False)
""")


def _run_script(tmp_path: Path, out: Path, seed: int, delay: float) -> subprocess.Popen:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, DELAY=str(delay))
    return subprocess.Popen([sys.executable, str(script), str(out), str(seed), *SMALL,
                             "search.max_generations=8"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    straight = tmp_path / "straight"
    p = _run_script(tmp_path, straight, 11, 0.0)
    assert p.wait(timeout=120) == 0, p.stderr.read().decode()

    killed = tmp_path / "killed"
    for kill_after in (3, 6):      # kill twice, mid-generation
        p = _run_script(tmp_path, killed, 11, 0.01)
        deadline = time.time() + 60
        while time.time() < deadline:
            done = [c for c in checkpoint.list_checkpoints(killed / "checkpoints")]
            if done and int(done[0].stem.split("-")[1]) >= kill_after:
                break
            time.sleep(0.01)
        time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
    p = _run_script(tmp_path, killed, 11, 0.0)
    assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    assert b"resuming" in p.stderr.read()

    a = json.loads((straight / "best.json").read_text())
    b = json.loads((killed / "best.json").read_text())
    assert a == b
    ha = pd.read_parquet(straight / "history.parquet")
    hb = pd.read_parquet(killed / "history.parquet")
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))


def test_a_search_without_tracking_or_torch_work_imports_neither(tmp_path):
    """Every search, snakemake job and test process starts a Python: a search over the
    cheap evaluator with tracking off must not pay for importing torch, MLflow or
    scipy.stats (seconds each; they once made these processes 3x slower)."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT + "print(sorted({'torch', 'mlflow', 'scipy.stats'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "out"), "0", *SMALL,
                           "search.max_generations=2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "best.json").is_file()


def test_search_refuses_to_overwrite_without_resume(tmp_path):
    config = small_config("search.max_generations=2")
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, factory=cheap_factory, progress=False)
    with pytest.raises(Exception, match="--resume"):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, factory=cheap_factory, progress=False)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"best.json", "history.parquet", "search.json", "checkpoints"} <= files


def test_mlflow_run_has_per_generation_metrics(tmp_path, monkeypatch):
    db = tmp_path / "store" / "mlflow.db"
    config = small_config("search.max_generations=3", "tracking.enabled=true", f"tracking.uri=sqlite:///{db}")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s", factory=cheap_factory, progress=False)
    # artifacts beside the store, not in MLflow's fallback ./mlruns of the working directory
    assert list((tmp_path / "cwd").iterdir()) == []
    assert (tmp_path / "store" / "mlartifacts" / "search").is_dir()
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("paper/search")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_name == "cifar10-search-seed0"
    history = client.get_metric_history(runs[0].info.run_id, "best_fitness")
    assert sorted(m.step for m in history if m.step is not None)[:3] == [0, 1, 2]
    assert runs[0].data.params["search.population"] == "6"
    tags = runs[0].data.tags
    assert {k: tags[k] for k in ("study", "dataset", "method", "variant", "seed")} == \
        {"study": "paper", "dataset": "cifar10", "method": "search", "variant": "none", "seed": "0"}
    assert tags["best_genome"].startswith("normal ")
    (dataset_input,) = runs[0].inputs.dataset_inputs
    assert dataset_input.dataset.name == "cifar10"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "search"


def test_a_search_stopped_between_its_checkpoint_and_its_metrics_logs_them_on_resume(tmp_path, metrics_stop_at):
    """A generation's checkpoint is saved before its metrics go to MLflow: a search stopped
    in between resumed after that generation, and its metrics were never logged (a gap in
    the UI's curves). The checkpoint now carries them; the resume logs what the run lacks,
    once."""
    import mlflow

    db = tmp_path / "mlflow.db"
    config = small_config("search.max_generations=4", "tracking.enabled=true", f"tracking.uri=sqlite:///{db}")
    metrics_stop_at(1)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s", factory=cheap_factory, progress=False)
    metrics_stop_at(None)
    done = run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s", resume=True, factory=cheap_factory,
                      progress=False, log=lambda m: None)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    steps = sorted(m.step for m in client.get_metric_history(done.mlflow_run_id, "best_fitness"))
    assert steps == [0, 1, 2, 3]
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s", resume=True, factory=cheap_factory,
               progress=False, log=lambda m: None)     # finished: nothing logged twice
    assert sorted(m.step for m in client.get_metric_history(done.mlflow_run_id, "best_fitness")) == steps
    # ... and its run keeps its end time: the UI's Duration of a search resumed with nothing
    # to do read the time up to that resume
    ended = client.get_run(done.mlflow_run_id).info.end_time
    time.sleep(1.5)             # MLflow's end times are in ms: a later end would show
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s", resume=True, factory=cheap_factory,
               progress=False, log=lambda m: None)
    run = client.get_run(done.mlflow_run_id).info
    assert (run.status, run.end_time) == ("FINISHED", ended)


def test_resume_into_a_replaced_tracking_store_opens_a_new_run(tmp_path, capsys):
    """A store replaced after the search began (a new `track init`, a deleted file) no
    longer holds the search's run: the resume warns and logs into a new run."""
    first, db = tmp_path / "old" / "mlflow.db", tmp_path / "new" / "mlflow.db"   # one process: two URIs
    run_search(small_config("search.max_generations=2", "tracking.enabled=true", f"tracking.uri=sqlite:///{first}"),
               dataset="cifar10", seed=0, out_dir=tmp_path / "s", factory=cheap_factory, progress=False)
    final = run_search(small_config("search.max_generations=3", "tracking.enabled=true", f"tracking.uri=sqlite:///{db}"),
                       dataset="cifar10", seed=0, out_dir=tmp_path / "s", factory=cheap_factory, progress=False,
                       resume=True)
    assert final.generation == 2
    assert "is not in" in capsys.readouterr().err
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("paper/search").experiment_id])
    assert run.info.run_id == final.mlflow_run_id


def test_long_search_never_refers_to_removed_genes():
    # the kill rule spares only coding genes; breeding can move a removed gene id from a
    # parent's non-coding tail into a child's coding region, which must be repaired
    config = load_config(None, ["search.max_generations=60", "search.max_params=1000000000",
                                "search.budget_hours=100", "tracking.enabled=false"])
    for seed in range(2):
        final = run_cheap(config, seed=seed)
        assert final.generation == 59
        for ind in final.population:
            cell = final.genome_of(ind).validate()
            assert set(cell.normal.coding_genes()) <= set(final.genes["normal"])


def test_a_population_that_dies_out_ends_the_search():
    final = run_cheap(small_config(), seed=0, evaluator=CheapEvaluator(fail_if=lambda g: "oom"))
    assert final.finished and final.stop_reason == "extinct" and final.generation == 0


def test_a_finished_search_goes_on_when_its_limit_is_raised(tmp_path):
    def search(out, generations, resume=False):
        config = small_config(f"search.max_generations={generations}")
        return run_search(config, dataset="cifar10", seed=4, out_dir=out, resume=resume,
                          factory=cheap_factory, progress=False)

    straight = search(tmp_path / "a", 5)
    search(tmp_path / "b", 3)
    extended = search(tmp_path / "b", 5, resume=True)
    assert extended.generation == straight.generation == 4
    assert extended.history == straight.history and extended.best == straight.best
    again = search(tmp_path / "b", 5, resume=True)     # nothing left to do
    assert again.generation == 4 and again.history == straight.history


# --- search.fitness: cohort (beyond the paper; nasgep.search.fitness) ------------------------

def test_cohort_percentile_on_known_inputs():
    from nasgep.search.fitness import cohort_fitness, epoch_cohorts

    history = [{"epochs": 1, "fitness": 99.0, "accuracy": a, "failure": None} for a in (10.0, 20.0, 30.0)]
    history.append({"epochs": 1, "fitness": 0.0, "accuracy": 0.0, "failure": "oom"})   # not in a cohort
    assert epoch_cohorts(history) == {1: [10.0, 20.0, 30.0]}
    # 25 among {10, 20, 30, 25}: 2 below, 1 equal -> (2 + 0.5) / 4 = 62.5; a lone 2-epoch value: 50
    assert cohort_fitness(history, [(1, 25.0), (2, 50.0)]) == [62.5, 50.0]
    # rows written before the accuracy column: their fitness was the accuracy
    assert epoch_cohorts([{"epochs": 3, "fitness": 7.0, "failure": None}]) == {3: [7.0]}


def _kendall(x, y) -> float:
    from scipy import stats

    return stats.kendalltau(x, y).statistic


def test_cohort_fitness_ranks_within_the_same_training_age():
    """The paper's fitness rises with the epochs an individual has had (the stand-in
    evaluator's accuracy does too); the cohort fitness is each accuracy's percentile among
    the accuracies measured after as many epochs, generation by generation."""
    paper = run_cheap(small_config(), seed=2)
    reports = []
    cohort = run_cheap(small_config("search.fitness=cohort"), seed=2, reports=reports)
    hp, hc = pd.DataFrame(paper.history), pd.DataFrame(cohort.history)
    assert (hp.fitness == hp.accuracy).all()
    ok = hc[hc.failure.isna()]
    for _, row in ok.iterrows():
        same_age = ok[(ok.epochs == row.epochs) & (ok.generation <= row.generation)].accuracy
        below, equal = (same_age < row.accuracy).sum(), (same_age == row.accuracy).sum()
        assert row.fitness == pytest.approx(100 * (below + equal / 2) / len(same_age))
    # training age no longer decides the ranking
    assert _kendall(hp.epochs, hp.fitness) > 0.5
    assert abs(_kendall(ok.epochs, ok.fitness)) < 0.3
    # selection used it: T_g is a percentile, best.json the highest one
    assert 0 < cohort.t_g < 100 and cohort.best.fitness == ok.fitness.max()
    # each generation reports its best accuracy beside its best percentile
    for _, rep in reports:
        assert rep.best_accuracy == hc[hc.generation == rep.generation].accuracy.max()


def test_cohort_search_resumes_bit_for_bit(tmp_path):
    def search(out, generations, resume=False):
        config = small_config(f"search.max_generations={generations}", "search.fitness=cohort")
        return run_search(config, dataset="cifar10", seed=4, out_dir=out, resume=resume,
                          factory=cheap_factory, progress=False)

    straight = search(tmp_path / "a", 5)
    search(tmp_path / "b", 2)
    resumed = search(tmp_path / "b", 5, resume=True)
    assert resumed.history == straight.history and resumed.best == straight.best


def test_every_fitness_setting_the_schema_accepts_has_a_label():
    import yaml

    import nasgep
    from nasgep.search.fitness import FITNESSES

    schema = yaml.safe_load((Path(nasgep.__file__).parent / "config.schema.yaml").read_text())
    assert schema["properties"]["search"]["properties"]["fitness"]["enum"] == list(FITNESSES)


def test_the_schemas_lists_of_choices_are_the_codes_tables():
    """The schema lists the choices a config may make; the code has a table of what each
    does. The two are kept one list: a method, selection or stem added to one only would
    pass validation and fail in the middle of a run, or never be offered."""
    from nasgep.config import schema
    from nasgep.nn import STEMS
    from nasgep.search.finalists import SELECTIONS
    from nasgep.study import METHODS

    props = schema()["properties"]
    assert props["ablations"]["additionalProperties"]["properties"]["source"]["enum"] == list(METHODS)
    assert props["search"]["properties"]["final_selection"]["enum"] == list(SELECTIONS)
    assert props["train"]["properties"]["stem"]["enum"] == list(STEMS)


def test_a_checkpoint_from_before_the_accuracy_field_reads_its_fitness_as_accuracy():
    final = run_cheap(small_config("search.max_generations=2"), seed=1)
    old = to_dict(final)
    for ind in old["population"]:
        del ind["accuracy"]
    del old["best"]["accuracy"]
    back = from_dict(old)
    assert [i.accuracy for i in back.population] == [i.fitness for i in final.population]
    assert back.best.accuracy == final.best.fitness


# --- search.evaluation: full (beyond the paper; every individual ranked after E_max epochs) ---

def test_full_evaluation_ranks_every_individual_after_e_max_epochs_and_keeps_it_as_a_parent():
    config = small_config("search.evaluation=full", "search.max_epochs=3", "search.max_generations=5")
    s = SearchSettings.from_config(config)
    reports = []
    final = run_cheap(config, seed=3, reports=reports)
    h = pd.DataFrame(final.history)
    ok = h[h.failure.isna()]
    # each individual is trained once, in the generation it was born, to E_max
    assert not h.id.duplicated().any()
    assert (h.generation == h.born).all()
    assert (ok.epochs == s.max_epochs).all() and (ok.epochs_this_generation == s.max_epochs).all()
    assert (h.fitness == h.accuracy).all()
    for st, rep in reports:
        assert rep.trained == s.population   # the children only: survivors train no more
        assert rep.epochs_trained == h[h.generation == rep.generation].epochs_this_generation.sum()
        # a parent that finished training stays alive; the population holds earlier births
        assert all(not i.dead and i.epochs == s.max_epochs for i in st.population)
        assert 0 < len(st.population) <= s.population
        # reaching E_max bars no reduction cell here (it would bar every one)
        assert not any(r.barred for r in st.reductions.values())
    assert any(i.born < final.generation for i in final.population)
    assert final.best.fitness == ok.fitness.max() and final.best.epochs == s.max_epochs


def test_full_evaluation_resumes_bit_for_bit_and_respects_the_epoch_budget(tmp_path):
    def search(out, *extra, resume=False):
        config = small_config("search.evaluation=full", "search.max_epochs=3", *extra)
        return run_search(config, dataset="cifar10", seed=4, out_dir=out, resume=resume,
                          factory=cheap_factory, progress=False)

    straight = search(tmp_path / "a", "search.max_generations=4")
    search(tmp_path / "b", "search.max_generations=2")
    resumed = search(tmp_path / "b", "search.max_generations=4", resume=True)
    assert resumed.history == straight.history and resumed.best == straight.best
    # 6 children x 3 epochs a generation: 50 epochs pay for generations 0 and 1 only, and
    # generation 2 is refused before any of its jobs starts
    capped = search(tmp_path / "c", "search.max_generations=null", "search.budget_epochs=50")
    assert capped.stop_reason == "budget_epochs" and capped.generation == 1
    assert capped.epochs_trained() == 36


def test_full_evaluation_refuses_the_cohort_fitness():
    from nasgep.config import ConfigError

    with pytest.raises(ConfigError, match="search.fitness: must be accuracy with search.evaluation full"):
        small_config("search.evaluation=full", "search.fitness=cohort")
