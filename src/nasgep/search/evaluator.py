"""The interface between the search loop and training.

The loop hands out :class:`TrainJob` s (one candidate-epoch each) and receives
:class:`TrainResult` s; it never imports torch. Two evaluators implement the protocol:
:class:`~nasgep.search.torch_evaluator.TorchEvaluator` (builds and trains the network)
and :class:`CheapEvaluator` (a deterministic stand-in for tests). Executors decide where
jobs run: in this process, or one worker process per entry of :func:`worker_devices`
(``search.concurrency`` entries per device: several candidates train at once on one device).
"""
from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import NasgepError, RunFailed
from ..processes import (
    bars_locked_between_threads,
    ctrl_c_ignored,
    die_with_parent,
    ignore_held_ctrl_c,
    unwind_on_sigterm,
)
from ..space import Genome


@dataclass(frozen=True)
class TrainJob:
    """Train individual ``individual`` from epoch ``epoch - 1`` to ``epoch`` and evaluate it.

    ``store_index`` is the weight store to inherit from when ``epoch == 1`` (None: no
    inheritance). ``seed`` fixes every random draw of this epoch. ``evaluate=False``: an
    epoch whose accuracy nobody reads (``search.evaluation: full`` before E_max, a
    finalist's re-training before its last epoch) is trained only, its fitness 0.0; the
    weights, and so every later epoch's accuracy, are the same as with the evaluation."""

    individual: str
    genome: Genome
    epoch: int
    seed: int
    store_index: dict | None = None
    evaluate: bool = True


@dataclass(frozen=True)
class TrainResult:
    individual: str
    epoch: int
    fitness: float
    params: int
    inherited: float = 0.0     # fraction of parameters loaded from the store (first epoch)
    seconds: float = 0.0
    failure: str | None = None


@dataclass(frozen=True)
class StoreCandidate:
    """A living individual offered to the weight store after a generation (``fitness``:
    its validation accuracy, whatever ``search.fitness`` ranks by)."""

    individual: str
    genome: Genome
    epoch: int
    fitness: float


class Evaluator(Protocol):
    """What the search needs from training."""

    def count_params(self, genome: Genome) -> int:
        """Parameters of the search-size network of ``genome`` (for the size limit)."""

    def train(self, job: TrainJob) -> TrainResult:
        """One candidate-epoch. The candidate's failures come back as ``fitness=0,
        failure=reason``; an ``OSError`` (a full disk, a file of the run that cannot be
        written or read) and a :class:`~nasgep.errors.NasgepError` (an unreadable image, a
        killed data-loading process, a failed GPU) are raised: they stop the search, whose
        checkpoint ``--resume`` goes on from."""

    def update_store(self, candidates: Sequence[StoreCandidate], index: dict, generation: int) -> dict:
        """Save every module whose owner beats the best fitness recorded for its key;
        return the new index (the old one is never modified, so a checkpoint keeps it)."""

    def cleanup(self, keep: dict[str, int], store_indices: Sequence[dict]) -> None:
        """Delete individual states and store files no longer referenced."""

    def unusable_files(self, state: Any) -> list[str]:
        """Files a resumed search needs (weight store entries, trained states of the
        population) that are missing or damaged, each as ``path (why)``."""


def job_seed(search_seed: int, individual: str, epoch: int) -> int:
    """A per-job seed independent of which worker runs the job or in what order."""
    digest = hashlib.sha256(f"{search_seed}/{individual}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# --- a cheap deterministic evaluator for tests ------------------------------------------

@dataclass
class CheapEvaluator:
    """Fitness from the genome's structure, rising with epochs; no training.

    Deterministic for a job, so a search over it is reproducible; ``fail_if`` lets tests
    inject failures for chosen genomes. It keeps an in-memory weight store whose
    "tensors" are the fitness values, enough to test the store bookkeeping.
    """

    fail_if: Callable[[Genome], str | None] | None = None
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)

    def count_params(self, genome: Genome) -> int:
        n = 0
        for cell in (genome.normal, genome.reduction):
            for gid in cell.coding_genes():
                text = cell.genes[gid].to_text()
                n += 600 + 200 * len(list(cell.gene_tree(gid).walk())) + hashlib.sha256(text.encode()).digest()[0]
        return n

    def _quality(self, genome: Genome) -> float:
        h = hashlib.sha256(genome.to_json().encode()).digest()
        base = h[0] / 255.0
        cats = genome.normal.cell.symbols.count("cat")
        return 0.3 + 0.4 * base + 0.05 * cats

    def train(self, job: TrainJob) -> TrainResult:
        self.calls.append(f"{job.individual}@{job.epoch}")
        if self.delay:
            time.sleep(self.delay)
        if self.fail_if is not None:
            reason = self.fail_if(job.genome)
            if reason:
                return TrainResult(job.individual, job.epoch, 0.0, self.count_params(job.genome),
                                   failure=reason)
        q = self._quality(job.genome)
        fitness = round(min(1.0, q * (1 - 0.5 ** job.epoch)) * 100, 4) if job.evaluate else 0.0
        inherited = 0.0
        if job.epoch == 1 and job.store_index:
            keys = _cheap_keys(job.genome)
            inherited = sum(k in job.store_index for k in keys) / len(keys)
        return TrainResult(job.individual, job.epoch, fitness, self.count_params(job.genome),
                           inherited=inherited, seconds=0.001)

    def update_store(self, candidates: Sequence[StoreCandidate], index: dict, generation: int) -> dict:
        new = dict(index)
        for cand in candidates:
            for key in _cheap_keys(cand.genome):
                if key not in new or cand.fitness > new[key]["fitness"]:
                    new[key] = {"fitness": cand.fitness, "file": f"{key}@g{generation}",
                                "individual": cand.individual}
        return new

    def cleanup(self, keep: dict[str, int], store_indices: Sequence[dict]) -> None:
        return None

    def unusable_files(self, state: Any) -> list[str]:
        return []      # the store lives in the index itself


def _cheap_keys(genome: Genome) -> list[str]:
    keys = []
    for cell in (genome.normal, genome.reduction):
        seen: dict[str, int] = {}
        for gid in cell.coding_genes():
            k = seen.get(gid, 0)
            seen[gid] = k + 1
            keys.append(f"gene/{cell.pool}/{gid}/occ{k}")
    return keys


# --- executors --------------------------------------------------------------------------

class SerialExecutor:
    """Runs jobs one after another in this process."""

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator

    def map(self, jobs: Sequence[TrainJob], may_start: Callable[[], bool],
            done: Callable[[], None] | None = None) -> list[TrainResult | None]:
        """Train ``jobs``, each only if ``may_start()`` allows it then (else None);
        ``done()`` after each one trained (a progress bar)."""
        results: list[TrainResult | None] = []
        for job in jobs:
            if not may_start():
                results.append(None)
                continue
            results.append(self.evaluator.train(job))
            if done is not None:
                done()
        return results

    def close(self) -> None:
        pass


def _worker_main(factory: Callable[[str], Evaluator], device: str, conn, parent: int,
                 parent_thread_is_main: bool = True) -> None:
    """A worker: take ``(index, job)`` from ``conn``, send ``(index, result)`` back, until
    None or the search's end of the pipe closes. It ignores Ctrl-C (see
    :func:`nasgep.processes.ctrl_c_ignored`); one that reaches it anyway (a worker started from another
    thread than the main one) ends it quietly: the search process says what happened."""
    ignore_held_ctrl_c()
    die_with_parent(parent, parent_thread_is_main)
    # started as a daemon (ended at the search's exit even without close()), which
    # multiprocessing takes to forbid children: with DataLoader workers (a folder dataset,
    # train.num_workers > 0) every candidate failed with 'daemonic processes are not
    # allowed to have children'. Its own children end with it (nasgep.processes).
    mp.current_process().daemon = False
    # a spawned process's default start method is spawn: each DataLoader would start its
    # workers as fresh interpreters (seconds to import torch, every epoch). The platform's
    # default (fork on Linux before Python 3.14, forkserver since) is what a DataLoader in
    # a one-process search uses
    mp.set_start_method(None, force=True)
    unwind_on_sigterm()
    bars_locked_between_threads()
    try:
        evaluator = factory(device)
        while True:
            try:
                item = conn.recv()
            except EOFError:        # the search process is gone
                return
            if item is None:
                return
            index, job = item
            try:
                result = evaluator.train(job)
            except (NasgepError, OSError) as e:     # the user's or the machine's to fix (an
                result = e          # unreadable image, a full disk, a killed DataLoader): the search stops
            except Exception as e:  # noqa: BLE001 - a worker must report, never die silently
                result = TrainResult(job.individual, job.epoch, 0.0, 0,
                                     failure=f"worker error: {type(e).__name__}: {e}")
            try:
                conn.send((index, result))
            except OSError:         # the search process stopped it (close()) or is gone
                return
    except KeyboardInterrupt:
        return


class WorkerDied(RunFailed):
    """A worker process ended without its answer (killed, out of memory, a crash in native
    code): one line with how it ended; the completed generations are in the checkpoint."""

    def __init__(self, exit_codes: Sequence[int | None]):
        self.exit_codes = list(exit_codes)
        # the same ending once, with how many ended so ("2x killed by SIGKILL"): each ending
        # may hold a comma of its own
        endings = Counter(_how_it_ended(code) for code in self.exit_codes)
        how = "; ".join(why if n == 1 else f"{n}x {why}" for why, n in endings.items())
        super().__init__(f"{len(self.exit_codes)} search worker process(es) died ({how}); what the "
                         "completed generations found is kept: go on with --resume")


def _how_it_ended(code: int | None) -> str:
    if code is None:    # its pipe ended or its sentinel fired, but it was not reaped within 5 s
        return "still exiting"
    import signal

    if code == 128 + signal.SIGTERM:    # a worker unwinds on SIGTERM (nasgep.processes.unwind_on_sigterm)
        return "killed by SIGTERM"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (", often the out-of-memory killer" if -code == signal.SIGKILL else "")


class ProcessExecutor:
    """One worker process per device; jobs are handed out as workers free up.

    Jobs are independent (each carries its own seed and reads its individual's state
    from disk), so the results equal a one-device run whatever the order. Each worker
    talks over a pipe of its own (no named semaphores, which a search stopped at once,
    by a second Ctrl-C, would leave for the resource tracker to warn about), and a worker
    that dies is seen at once (its process sentinel), not at the next poll.
    """

    def __init__(self, factory: Callable[[str], Any], devices: Sequence[str]):
        ctx = mp.get_context("spawn")
        self._workers = []          # (process, this end of its pipe)
        self._busy: dict[int, int] = {}     # worker -> the map call whose job it trains
        self._calls = 0
        on_main = threading.current_thread() is threading.main_thread()
        try:
            with ctrl_c_ignored(on_main):   # a Ctrl-C meanwhile is raised once all are started
                for device in devices:
                    ours, theirs = ctx.Pipe()
                    proc = ctx.Process(target=_worker_main, args=(factory, device, theirs, os.getpid(), on_main),
                                       daemon=True)
                    proc.start()
                    theirs.close()
                    self._workers.append((proc, ours))
        except BaseException:   # Ctrl-C, SIGTERM: the caller has no executor to close
            self._stop(at_once=range(len(self._workers)))    # they may still be importing torch
            raise

    def map(self, jobs: Sequence[TrainJob], may_start: Callable[[], bool],
            done: Callable[[], None] | None = None) -> list[TrainResult | None]:
        """As :meth:`SerialExecutor.map`, the jobs shared among the workers."""
        results: list[TrainResult | None] = [None] * len(jobs)
        self._calls += 1
        call = self._calls
        idle = [w for w in range(len(self._workers)) if w not in self._busy]
        pending = list(range(len(jobs)))
        while pending or self._busy:
            while pending and idle:
                i = pending.pop(0)
                if not may_start():
                    pending.clear()        # budget spent: start nothing more
                    break
                w = idle.pop(0)
                self._busy[w] = call
                try:
                    self._workers[w][1].send((i, jobs[i]))
                except OSError:     # it died while idle (a BrokenPipeError: the CLI's "reader left")
                    raise self._died([w]) from None
            if not self._busy:
                break
            w, (i, result) = self._next_result()
            idle.append(w)
            if self._busy.pop(w) != call:
                continue    # the job of an earlier call that raised: its index is not this call's
            if isinstance(result, (NasgepError, OSError)):
                raise result
            results[i] = result
            if done is not None:
                done()
        return results

    def _next_result(self) -> tuple[int, tuple[int, Any]]:
        """(worker, its ``(index, result)``), waiting for the first busy worker to answer;
        a busy worker that died stops the search."""
        conns = {self._workers[w][1]: w for w in self._busy}
        sentinels = {self._workers[w][0].sentinel: w for w in self._busy}
        ready = mp_connection.wait(list(conns) + list(sentinels))
        for conn in (r for r in ready if r in conns):   # an answer sent just before dying counts
            try:
                return conns[conn], conn.recv()
            except EOFError:
                pass
        # the ready sentinels and ended pipes name the dead: a dying process closes its files
        # (so its sentinel reads ready) before it can be reaped, and is_alive() may still say True
        raise self._died(sorted({sentinels[r] if r in sentinels else conns[r] for r in ready}))

    def _died(self, workers: Sequence[int]) -> WorkerDied:
        """The error that stops the search when ``workers`` died (each given time to be reaped)."""
        procs = [self._workers[w][0] for w in workers]
        for proc in procs:
            proc.join(timeout=5)
        return WorkerDied([p.exitcode for p in procs])

    #: seconds that the workers have, all together, to end before they are killed
    stop_seconds = 10.0

    def close(self) -> None:
        """End the workers: an idle one when it reads the end of its pipe; a busy one (the
        search stopped during a generation: Ctrl-C, SIGTERM, an error) at once, since its
        candidate is lost anyway and may train for minutes. Those left after
        :attr:`stop_seconds`, one deadline for all (each had 10 s of its own, one after
        another, before), are killed."""
        self._stop(at_once=self._busy)

    def _stop(self, at_once) -> None:
        """End the workers, those in ``at_once`` by SIGTERM."""
        for w, (proc, conn) in enumerate(self._workers):
            if w in at_once:
                proc.terminate()
                conn.close()    # one whose SIGTERM came while its DataLoader's workers died
                # (a group's SIGTERM) finished its job as a failure: it reads the end here
            else:
                with contextlib.suppress(OSError):
                    conn.send(None)
        deadline = time.monotonic() + self.stop_seconds
        for proc, _ in self._workers:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc, conn in self._workers:
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()        # (a second close is a no-op)
        self._busy.clear()


def worker_devices(devices: Sequence[str], concurrency: int = 1) -> list[str]:
    """One entry per worker process: each device ``concurrency`` times (``[cuda:0] x 3``
    trains three candidates at once on that GPU)."""
    return [d for d in devices for _ in range(concurrency)]


def make_executor(factory: Callable[[str], Evaluator], workers: Sequence[str],
                  evaluator: Evaluator | None = None):
    """(the main process's evaluator, the executor) for ``workers`` (see :func:`worker_devices`):
    one worker trains in this process; several train in worker processes, and the main
    process's evaluator (on the CPU) only counts parameters and keeps the weight store.
    ``evaluator``: that main evaluator when the caller made it already. Jobs carry their
    own seeds, so results do not depend on the number of workers."""
    if evaluator is None:
        evaluator = factory(workers[0] if len(workers) == 1 else "cpu")
    if len(workers) == 1:
        return evaluator, SerialExecutor(evaluator)
    return evaluator, ProcessExecutor(factory, workers)
