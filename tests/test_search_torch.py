"""The search with the real trainer on digits, and the weight store with real tensors."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from nasgep.config import load_config
from nasgep.nn import Macro, build_network
from nasgep.search.evaluator import StoreCandidate, TrainJob
from nasgep.search.loop import SearchSettings
from nasgep.search.runner import run_search
from nasgep.search.sample import sample_genome
from nasgep.search.torch_evaluator import TorchEvaluator
from nasgep.space import Genome
from nasgep.train import Trainer

TINY = ["search.population=3", "search.reduction_population=2", "search.gene_pool=6",
        "search.gene_pool_max=8", "search.genes_min=1", "search.genes_max=2", "search.max_epochs=3",
        "search.max_generations=2", "search.budget_hours=1", "search.channels=4",
        "search.cells_per_stage=1", "search.batch_size=128", "search.devices=[cpu]",
        "search.augment.autoaugment=false", "tracking.enabled=false",
        "datasets.cifar10.max_train=400"]


def tiny_config(*extra):
    return load_config("config/demo.yaml", TINY + list(extra))


def _genome(config, seed=0) -> Genome:
    settings = SearchSettings.from_config(config)
    genome, _, _ = sample_genome(settings, seed, lambda g: 0)
    return genome


def test_weight_store_round_trip_carries_saved_tensors(tmp_path):
    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    genome = _genome(config)
    r = ev.train(TrainJob("i0", genome, 1, seed=1))
    assert r.failure is None and r.epoch == 1
    index = ev.update_store([StoreCandidate("i0", genome, 1, r.fitness)], {}, generation=0)
    trained = torch.load(ev.state_path("i0", 1), weights_only=True)["model"]
    net = build_network(genome, Macro(channels=4, cells_per_stage=1, num_classes=10, in_channels=1), seed=99)
    units = net.inheritance_units("cifar10")
    assert set(index) == set(units)          # every unit of the owner got stored
    got, total = ev.store.load_into(units, index)
    assert got == total > 0
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    # a worse owner never replaces a stored key; a better one does
    same = ev.update_store([StoreCandidate("i0", genome, 1, r.fitness)], index, generation=1)
    assert same == index
    better = ev.update_store([StoreCandidate("i0", genome, 1, r.fitness + 1)], index, generation=1)
    assert all(v["generation"] == 1 for v in better.values())
    assert all(v["generation"] == 0 for v in index.values())   # the old index is untouched
    # a child inherits through a job
    r2 = ev.train(TrainJob("i1", genome, 1, seed=2, store_index=index))
    assert r2.inherited == pytest.approx(1.0)


def test_an_epoch_trained_without_evaluation_leaves_the_next_accuracy_unchanged(tmp_path):
    """search.evaluation: full and the finalists' re-training skip the validation pass of
    every epoch but the last: that must save time only, never change the accuracy read."""
    config = tiny_config()
    genome = _genome(config)
    every = TorchEvaluator(config, "cifar10", tmp_path / "every", seed=0)
    last = TorchEvaluator(config, "cifar10", tmp_path / "last", seed=0)
    for epoch in (1, 2, 3):
        a = every.train(TrainJob("i0", genome, epoch, seed=10 + epoch))
        b = last.train(TrainJob("i0", genome, epoch, seed=10 + epoch, evaluate=epoch == 3))
        assert a.failure is None and b.failure is None
        assert b.fitness == (a.fitness if epoch == 3 else 0.0)
        assert a.fitness > 0
    weights = [torch.load(ev.state_path("i0", 3), weights_only=True)["model"] for ev in (every, last)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # a record of an unevaluated epoch never answers the evaluated job (its fitness is 0.0)
    assert last.recorded(TrainJob("i0", genome, 2, seed=12)) is None
    assert last.recorded(TrainJob("i0", genome, 2, seed=12, evaluate=False)).fitness == 0.0


def test_failing_candidate_is_reported_not_raised(tmp_path):
    config = tiny_config("search.lr=1000", "search.batch_size=16")   # diverges within the epoch
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    r = ev.train(TrainJob("i0", _genome(config), 1, seed=1))
    assert r.fitness == 0 and r.failure and ("nan" in r.failure.lower() or "inf" in r.failure.lower())


@pytest.mark.slow
def test_real_search_on_digits_writes_every_result(tmp_path):
    config = tiny_config()
    state = run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, progress=False)
    assert state.generation == 1 and state.finished
    best = json.loads((tmp_path / "best.json").read_text())
    Genome.from_dict(best["genome"])
    assert best["fitness"] > 0 and best["method"] == "search"
    hist = pd.read_parquet(tmp_path / "history.parquet")
    assert set(hist.generation) == {0, 1} and hist.failure.isna().all()
    assert hist[hist.born == 1].inherited.max() > 0          # children inherited weights
    assert list((tmp_path / "weights").glob("*/*.pt"))
    assert (tmp_path / "cells").exists() and list((tmp_path / "cells").glob("*.png"))
    # only the states the checkpoints refer to are kept
    living = {i.id for i in state.population}
    assert {p.name for p in (tmp_path / "individuals").iterdir()} <= living | {i for i in hist.id}


@pytest.mark.slow
def test_real_search_with_two_candidates_at_once_equals_one(tmp_path):
    # the process starts with 2 torch threads, as on a 2-core machine without OMP_NUM_THREADS:
    # the search itself must fix a CPU candidate's threads (search.cpu_threads), since a float
    # sum split over another number of threads may round differently
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _two_candidates_at_once_equal_one(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _two_candidates_at_once_equal_one(tmp_path):
    results = {}
    for k in (1, 2):
        run_search(tiny_config(f"search.concurrency={k}"), dataset="cifar10", seed=1, out_dir=tmp_path / f"k{k}",
                   progress=False)
        results[k] = (json.loads((tmp_path / f"k{k}" / "best.json").read_text()),
                      pd.read_parquet(tmp_path / f"k{k}" / "history.parquet").drop(columns="seconds"))
    assert results[1][0] == results[2][0]
    pd.testing.assert_frame_equal(results[1][1], results[2][1])


@pytest.mark.slow
def test_sigterm_to_a_search_with_worker_processes_is_one_line(tmp_path):
    """scancel (or a kill of the process group) ends a search's worker processes with
    SIGTERM too: each left tqdm's lock between processes (a POSIX semaphore) behind, and
    after 'nasgep search: terminated (SIGTERM)' the resource tracker printed a two-line
    UserWarning about 'leaked semaphore objects'."""
    import os
    import signal
    import subprocess
    import sys

    argv = [sys.executable, "-m", "nasgep", "search", "--config", "config/demo.yaml", "--out", str(tmp_path / "s"),
            "--no-progress", "--set", f"results_dir={tmp_path / 'results'}",
            *(f"--set={s}" for s in TINY), "--set", "search.max_generations=50", "--set", "search.concurrency=2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("gen   0"):   # every worker has trained a candidate
            lines.append(proc.stderr.readline())
            assert lines[-1], lines
        os.killpg(proc.pid, signal.SIGTERM)
        _, rest = proc.communicate(timeout=120)     # until every process holding stderr is gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143
    assert rest.strip().splitlines() == ["nasgep search: terminated (SIGTERM)"], rest


KILL_AT_STORE = """
import os, signal, sys
from nasgep.config import load_config
from nasgep.search.runner import run_search
real_replace = os.replace

def replace(src, dst, *args, **kwargs):     # die between writing a store file and publishing it
    if os.path.basename(str(dst)).startswith(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
run_search(load_config("config/demo.yaml", sys.argv[3:]), dataset="cifar10", seed=0,
           out_dir=sys.argv[1], resume=True, progress=False)
"""


@pytest.mark.slow
def test_kill_at_a_weight_store_write_then_resume_and_a_damaged_or_lost_file(tmp_path):
    import subprocess
    import sys

    from nasgep.search.runner import SearchExists

    def run(out, kill_at):
        return subprocess.run([sys.executable, "-c", KILL_AT_STORE, str(out), kill_at, *TINY],
                              capture_output=True, timeout=600).returncode

    assert run(tmp_path / "straight", "never") == 0
    assert run(tmp_path / "killed", "g1-") == -9          # generation 1's store update
    assert list((tmp_path / "killed").rglob(".g1-*.tmp*"))
    assert run(tmp_path / "killed", "never") == 0
    assert not list((tmp_path / "killed").rglob(".*.tmp*"))
    assert ((tmp_path / "straight" / "best.json").read_text()
            == (tmp_path / "killed" / "best.json").read_text())
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "straight" / "history.parquet").drop(columns="seconds"),
        pd.read_parquet(tmp_path / "killed" / "history.parquet").drop(columns="seconds"))
    # a damaged trained state is named, not counted as a failed candidate (which would
    # change the search), and the folder is left as it was
    from nasgep.search import checkpoint

    state = checkpoint.read(checkpoint.list_checkpoints(tmp_path / "killed" / "checkpoints")[0])
    member = next(i for i in state.population if i.epochs > 0 and i.failure is None)
    damaged = tmp_path / "killed" / "individuals" / member.id / f"e{member.epochs}.pt"
    good = damaged.read_bytes()
    damaged.write_bytes(good[: len(good) // 2])
    history = (tmp_path / "killed" / "history.parquet").read_bytes()
    why = "damaged, or not the file written there"
    with pytest.raises(SearchExists, match=rf"damaged \(individuals/{member.id}/e{member.epochs}\.pt \({why}\)"):
        run_search(tiny_config("search.max_generations=3"), dataset="cifar10", seed=0,
                   out_dir=tmp_path / "killed", resume=True, progress=False)
    assert (tmp_path / "killed" / "history.parquet").read_bytes() == history
    damaged.write_bytes(good)
    # a lost weight store is named, not silently dropped
    import shutil

    shutil.rmtree(tmp_path / "killed" / "weights")
    with pytest.raises(SearchExists, match=r"needs are missing or damaged \(weights/.* \(missing\)"):
        run_search(tiny_config("search.max_generations=3"), dataset="cifar10", seed=0,
                   out_dir=tmp_path / "killed", resume=True, progress=False)


def test_a_recorded_job_is_not_trained_again_unless_it_changed(tmp_path, monkeypatch):
    from nasgep.train import Trainer

    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    job = TrainJob("i0", _genome(config), 1, seed=1)
    first = ev.train(job)
    assert first.failure is None and ev.record_path("i0", 1).exists()
    assert ev.train(TrainJob("i9", job.genome, 1, seed=3)).failure is None    # another individual

    def no_training(self):
        raise RuntimeError("trained again")

    monkeypatch.setattr(Trainer, "train_epoch", no_training)
    again = ev.train(job)
    assert (again.fitness, again.params, again.seconds) == (first.fitness, first.params, first.seconds)
    # another seed is another job, and its record stands beside the first
    assert "trained again" in ev.train(TrainJob("i0", job.genome, 1, seed=2)).failure
    assert ev.train(job).fitness == first.fitness
    # a damaged record is not trusted
    record = ev.record_path("i0", 1).read_text()
    for broken in ({"fitness": None}, {"params": "12"}, {"seconds": float("nan")}):
        ev.record_path("i0", 1).write_text(json.dumps({**json.loads(record), **broken}))
        assert "trained again" in ev.train(job).failure
    ev.record_path("i0", 1).write_text(record)
    # nor is a state that is not the one written there: another individual's, damaged, missing
    good = ev.state_path("i0", 1).read_bytes()
    for state in (ev.state_path("i9", 1).read_bytes(), good[:100]):
        ev.state_path("i0", 1).write_bytes(state)
        assert "trained again" in ev.train(job).failure
    ev.state_path("i0", 1).unlink()
    assert "trained again" in ev.train(job).failure


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_resume_mid_generation_trains_only_what_was_not_trained(tmp_path):
    """A search stopped in the middle of generation 1 resumes from generation 0's
    checkpoint, keeps the candidate-epochs generation 1 had already trained, and ends
    exactly as an uninterrupted search."""
    config = tiny_config()

    def counting(out, trained, stop_after=None):
        def factory(device):
            ev = TorchEvaluator(config, "cifar10", out, seed=0, device=device)
            real = ev.train

            def train(job):
                if ev.recorded(job) is None:
                    in_gen1 = any((out / "checkpoints").glob("*"))
                    if stop_after is not None and in_gen1 and sum(g for g, _ in trained) >= stop_after:
                        raise Interrupted
                    trained.append((int(in_gen1), job.individual))
                return real(job)

            ev.train = train
            return ev
        return factory

    straight: list = []
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "straight", progress=False,
               factory=counting(tmp_path / "straight", straight))
    gen1 = sum(g for g, _ in straight)
    assert gen1 >= 3
    first: list = []
    with pytest.raises(Interrupted):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "killed", progress=False,
                   factory=counting(tmp_path / "killed", first, stop_after=2))
    resumed: list = []
    run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "killed", resume=True, progress=False,
               factory=counting(tmp_path / "killed", resumed))
    assert len(resumed) == gen1 - 2          # generation 1 again, less its 2 trained candidate-epochs
    assert ((tmp_path / "straight" / "best.json").read_text()
            == (tmp_path / "killed" / "best.json").read_text())
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "straight" / "history.parquet").drop(columns="seconds"),
        pd.read_parquet(tmp_path / "killed" / "history.parquet").drop(columns="seconds"))


def _disk_fills_at(monkeypatch, name: str) -> None:
    """Writing a trained state named ``name`` (``e2.pt``) fails as on a full disk."""
    import errno

    from nasgep import train

    real = train.atomic_write_bytes

    def write(path, data):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(train, "atomic_write_bytes", write)


def test_a_full_disk_is_no_failure_of_the_candidate(tmp_path, monkeypatch):
    """An OSError while a candidate trains (its state cannot be written) is the machine's:
    it is raised, not recorded as the candidate's failure (which drops it from the search)."""
    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    _disk_fills_at(monkeypatch, "e1.pt")
    with pytest.raises(OSError, match="No space left"):
        ev.train(TrainJob("i0", _genome(config), 1, seed=1))
    assert not ev.record_path("i0", 1).exists()


@pytest.mark.slow
def test_a_search_stopped_by_a_full_disk_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """A full disk in generation 1 ended the search as 'extinct' (every candidate whose state
    could not be written counted as failed, and dropped), finished, with exit 0 and that
    result. It stops the search now, and --resume gives the uninterrupted search's result."""
    straight = tmp_path / "straight"
    run_search(tiny_config(), dataset="cifar10", seed=0, out_dir=straight, progress=False)
    out = tmp_path / "full"
    with monkeypatch.context() as m:
        _disk_fills_at(m, "e2.pt")
        with pytest.raises(OSError, match="No space left"):
            run_search(tiny_config(), dataset="cifar10", seed=0, out_dir=out, progress=False)
    assert not json.loads((out / "search.json").read_text())["finished"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["gen-00000.json"]
    run_search(tiny_config(), dataset="cifar10", seed=0, out_dir=out, resume=True, progress=False)
    assert (out / "best.json").read_text() == (straight / "best.json").read_text()
    history = pd.read_parquet(out / "history.parquet")
    assert history.failure.isna().all()
    pd.testing.assert_frame_equal(history.drop(columns="seconds"),
                                  pd.read_parquet(straight / "history.parquet").drop(columns="seconds"))


def test_a_killed_data_loader_stops_the_search(tmp_path, monkeypatch):
    """A DataLoader worker that died (killed with -9 in a folder search: the candidate was
    recorded as failed, and the search went on to another history) stops the search."""
    from nasgep.train import LoaderDied

    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)

    def batches(self):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")
        yield

    monkeypatch.setattr(Trainer, "_train_batches", batches)
    with pytest.raises(LoaderDied, match="pid 4242"):
        ev.train(TrainJob("i0", _genome(config), 1, seed=1))
    assert not ev.record_path("i0", 1).exists()


def test_a_state_damaged_during_a_run_stops_it_rather_than_failing_the_candidate(tmp_path):
    """A candidate's trained state (or a weight-store file) damaged while the search runs, after
    the checks a resume makes, was counted as the candidate's failure: it was dropped from the
    population and the search changed for good. It is the disk's fault: the run stops with the
    line naming the file, and the job is not recorded."""
    from nasgep.train import StateFileError

    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    genome = _genome(config)
    assert ev.train(TrainJob("i0", genome, 1, seed=1)).failure is None
    index = ev.update_store([StoreCandidate("i0", genome, 1, 50.0)], {}, generation=0)
    ev.state_path("i0", 1).write_bytes(b"not a state")
    with pytest.raises(StateFileError, match=r"e1\.pt"):
        ev.train(TrainJob("i0", genome, 2, seed=2))
    assert not ev.record_path("i0", 2).exists()
    # a stored weight file gone: the child inherited less, silently (a resume refuses it)
    (tmp_path / "weights" / next(iter(index.values()))["file"]).unlink()
    with pytest.raises(FileNotFoundError):
        ev.train(TrainJob("i1", genome, 1, seed=3, store_index=index))
    assert not ev.record_path("i1", 1).exists()


class FakeDevice:
    """The device's state as the device probe (``nasgep.train.device_error``) reads it:
    working until :meth:`fail` (a CUDA context broken by an illegal memory access)."""

    def __init__(self, monkeypatch, broken: str | None = None):
        from nasgep import train as train_module
        from nasgep.search import torch_evaluator

        self.broken = broken
        for module in (train_module, torch_evaluator):
            monkeypatch.setattr(module, "device_error", lambda device: self.broken)

    def fail(self, message: str) -> torch.AcceleratorError:
        self.broken = message
        return torch.AcceleratorError(message)


def test_a_failed_device_stops_the_search(tmp_path, monkeypatch):
    """A CUDA error other than out of memory that leaves the device unusable stops the
    search (its checkpoint is kept for --resume) instead of failing this candidate and, the
    context being lost, every later one."""
    from nasgep.train import DeviceFailed

    device = FakeDevice(monkeypatch)
    config = tiny_config()
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)

    def batches(self):
        raise device.fail("CUDA error: unspecified launch failure")
        yield

    monkeypatch.setattr(Trainer, "_train_batches", batches)
    with pytest.raises(DeviceFailed, match="launch failure"):
        ev.train(TrainJob("i0", _genome(config), 1, seed=1))
    assert not ev.record_path("i0", 1).exists()


def test_a_candidate_that_breaks_the_device_every_time_becomes_its_failure(tmp_path, monkeypatch):
    """A failed device stops the search (above); but a candidate whose training breaks the
    device each time (an illegal memory access of its own) stopped every --resume at it, for
    good: the search could never finish. Stopped twice by the same training, the search says
    so, and the next run records it as the candidate's failure, without training it, and
    goes on to the end."""
    from nasgep.train import DeviceFailed

    device = FakeDevice(monkeypatch)
    real, tried = Trainer._train_batches, []

    def batches(self):
        if self.desc == "i1":
            tried.append(self.desc)
            raise device.fail("CUDA error: an illegal memory access was encountered")
        yield from real(self)

    monkeypatch.setattr(Trainer, "_train_batches", batches)
    config = tiny_config()
    for run in (1, 2):
        device.broken = None            # a new run: a new CUDA context
        with pytest.raises(DeviceFailed, match="illegal memory access") as stopped:
            run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, resume=run > 1, progress=False)
        marker = tmp_path / "individuals" / "i1" / "device-e1.json"
        assert str(stopped.value).endswith("it failed 2 times on the same candidate (i1, epoch 1): the next run "
                                           "records that as the candidate's failure and goes on (if the device "
                                           f"is at fault, delete {marker} first)") == (run == 2)
    assert len(tried) == 2
    device.broken = None
    state = run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, resume=True, progress=False)
    assert state.finished and len(tried) == 2        # not trained a third time
    hist = pd.read_parquet(tmp_path / "history.parquet")
    assert list(hist[hist.id == "i1"].failure) == [
        "device failure: the device failed each of the 2 times this candidate trained (CUDA error: an illegal "
        "memory access was encountered)"]
    assert hist[hist.id != "i1"].failure.isna().all() and set(hist.generation) == {0, 1}


def test_a_device_broken_before_a_candidate_began_is_noted_against_none(tmp_path, monkeypatch):
    """A device that is broken when a candidate's training is to begin (a lost GPU, a fault
    of another worker's candidate on the same GPU) is no candidate's doing: each run stops
    with the device's error and notes it against no candidate; an error outside the epochs
    (saving the candidate's weights) after which the device no longer works is the device's
    too, noted against the candidate it was training. Counted against whichever candidate
    came first, two such runs made it a failed candidate, for good; recorded as the
    candidate's failure, the error outside the epochs failed every candidate after it."""
    from nasgep.train import DeviceFailed

    device = FakeDevice(monkeypatch, broken="CUDA error: unknown error")
    config = tiny_config()
    for _ in range(3):
        with pytest.raises(DeviceFailed, match=r"the device failed \(CUDA error: unknown error\)"):
            run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, resume=True, progress=False)
        assert not list(tmp_path.glob("individuals/*/device-e*.json"))

    real = Trainer.save_checkpoint

    def save(self, path):
        if self.desc == "i2":
            raise device.fail("CUDA error: misaligned address")
        return real(self, path)

    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    device.broken = None
    with pytest.raises(DeviceFailed, match="misaligned address"):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, resume=True, progress=False)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("individuals/*/device-e*.json")] == [
        "individuals/i2/device-e1.json"]
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    device.broken = None
    state = run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, resume=True, progress=False)
    hist = pd.read_parquet(tmp_path / "history.parquet")
    assert state.finished and hist.failure.isna().all() and set(hist.generation) == {0, 1}
