"""The real evaluator: builds a candidate's network, trains it one epoch at a time with
:class:`~nasgep.train.Trainer`, and keeps the weight store.

An individual's trainer state after epoch k lives in ``individuals/<id>/e<k>.pt`` and is
never overwritten, so the checkpoint of a generation pins the exact states it refers to;
files no checkpoint refers to are deleted after each generation.

Beside each state, ``e<k>.json`` records the job's result and a key of everything the job
depends on. A search resumes from its last generation checkpoint; when it re-runs that
generation, a job whose record and state are there with the same key is not trained
again (jobs are deterministic, so its result is what training would give), so a crash
loses at most the candidate-epochs that were in training.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ..config import ConfigError
from ..data import DataBundle, DataError, check_augment, check_batch, load_dataset
from ..errors import UserError
from ..io import atomic_write_json, load_json
from ..nn import Macro, Network, build_network, count_network_parameters, count_parameters
from ..space import Genome, GenomeError, smallest_genomes
from ..train import (
    CandidateFailure,
    DeviceFailed,
    LoaderDied,
    StateFileError,
    Trainer,
    candidate_training_settings,
    check_network_fits,
    device_error,
    device_failed,
    machine_failure,
    read_state,
)
from .evaluator import StoreCandidate, TrainJob, TrainResult
from .store import StoreFileError, WeightStore, read_unit

#: how many times one training may stop the search with a failed device (each run of it
#: in a new process) before it is taken as the candidate's failure (docs/decisions.md)
DEVICE_FAILURES_PER_JOB = 2


class TorchEvaluator:
    def __init__(self, config: Mapping, dataset: str, out_dir: str | Path, seed: int,
                 device: str = "cpu", threads: int | None = None):
        if threads and device == "cpu":   # search.cpu_threads: see the config schema
            torch.set_num_threads(threads)
        if str(device).startswith("cuda"):
            torch.backends.cudnn.benchmark = True   # fixed shapes within a candidate
        self.config = config
        self.dataset = dataset
        self.out = Path(out_dir)
        self.seed = seed
        self.device = device
        self.search = config["search"]
        self.settings = candidate_training_settings(config)
        self.store = WeightStore(self.out / "weights")
        self._data: DataBundle | None = None
        self._macro: Macro | None = None

    # --- data, loaded on first use (the main process of a multi-GPU search never trains)
    @property
    def data(self) -> DataBundle:
        if self._data is None:
            self._data = load_dataset(dict(self.config), self.dataset, purpose="search", seed=self.seed)
            self._data = self._data.on(self.device)
        return self._data

    @property
    def macro(self) -> Macro:
        """The search-size network around every candidate's cells."""
        if self._macro is None:
            self._macro = Macro(channels=self.search["channels"], cells_per_stage=self.search["cells_per_stage"],
                                num_classes=self.data.num_classes, in_channels=self.data.in_channels)
        return self._macro

    def state_path(self, individual: str, epoch: int) -> Path:
        return self.out / "individuals" / individual / f"e{epoch}.pt"

    # --- checks before any training -------------------------------------------------
    def check_inputs(self) -> None:
        """Refuse, before the first candidate trains, what cannot give a result: a dataset
        that does not load or cannot be meant (:class:`~nasgep.datafiles.DataError`), fewer
        training images than one batch, a ``max_params`` below the smallest network."""
        check_batch(self.data, self.search["batch_size"], "search.batch_size")
        check_augment(self.data, self.settings.augment, "search.augment")
        smallest = self.smallest_params()
        if self.search["max_params"] < smallest:
            raise ConfigError(
                f"search.max_params = {self.search['max_params']:,} is below the smallest network this search can "
                f"build ({smallest:,} parameters: single-gene cells, channels {self.search['channels']}, "
                f"cells_per_stage {self.search['cells_per_stage']}, {self.macro.num_classes} classes); every "
                f"candidate would be rejected: raise search.max_params or lower search.channels")
        check_network_fits(smallest, self.macro, "search.channels", "search.cells_per_stage")

    def smallest_params(self) -> int:
        """Parameters of the smallest search-size network: cells of one gene each (see
        :func:`nasgep.space.smallest_genomes`); the stem, cell inputs and classifier that
        every network has dominate it."""
        counts = []
        for genome in smallest_genomes():
            try:
                counts.append(count_network_parameters(genome, self.macro))
            except GenomeError:
                continue
        return min(counts)

    # --- Evaluator protocol ----------------------------------------------------------
    def count_params(self, genome: Genome) -> int:
        return count_network_parameters(genome, self.macro)

    def record_path(self, individual: str, epoch: int) -> Path:
        return self.out / "individuals" / individual / f"e{epoch}.json"

    def job_key(self, job: TrainJob) -> str:
        """What a job's result depends on: genome, epoch, seed, the weight store it
        inherits from, the candidates' training settings and the data."""
        key = {"genome": job.genome.to_dict(), "epoch": job.epoch, "seed": job.seed,
               "store": job.store_index, "settings": repr(self.settings),
               "data": self.config["datasets"][self.dataset]}
        if not job.evaluate:      # only then, so that the records of evaluated epochs keep their key
            key["evaluate"] = False
        text = json.dumps(key, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def recorded(self, job: TrainJob) -> TrainResult | None:
        """The result of this very job, trained before the search was interrupted, or None
        (then it is trained again, with the same result: also when its state is damaged)."""
        record, state = self.record_path(job.individual, job.epoch), self.state_path(job.individual, job.epoch)
        try:
            r = load_json(record.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(r, dict) or r.get("job") != self.job_key(job) or not _complete(r):
            return None
        if _file_problem(state, r.get("state_sha256"), read_state) is not None:
            return None
        return TrainResult(job.individual, job.epoch, r["fitness"], r["params"], r["inherited"], r["seconds"])

    def device_failures_path(self, individual: str, epoch: int) -> Path:
        return self.out / "individuals" / individual / f"device-e{epoch}.json"

    def _device_failures(self, job: TrainJob) -> list[str]:
        """The device errors this very job met in earlier runs (each stopped the search)."""
        try:
            r = load_json(self.device_failures_path(job.individual, job.epoch).read_text())
        except (OSError, ValueError):
            return []
        ok = isinstance(r, dict) and r.get("job") == self.job_key(job) and isinstance(r.get("errors"), list)
        return [str(e) for e in r["errors"]] if ok else []

    def train(self, job: TrainJob) -> TrainResult:
        done = self.recorded(job)
        if done is not None:
            return done
        t0 = time.perf_counter()
        params = 0
        inherited = 0.0
        failed_before = self._device_failures(job)
        broken = device_error(self.device)
        if broken is not None:
            # broken before this candidate touched it (a lost GPU, a fault of another process's
            # candidate): the machine's failure, noted against no candidate
            raise device_failed(broken)
        try:
            net = build_network(job.genome, self.macro, seed=job.seed)
            params = count_parameters(net)
            if len(failed_before) >= DEVICE_FAILURES_PER_JOB:
                # the same training broke the device every time: the candidate's doing, not the
                # machine's; stopping again would stop every --resume here for good
                return TrainResult(job.individual, job.epoch, 0.0, params, inherited, 0.0,
                                   failure=f"device failure: the device failed each of the {len(failed_before)} "
                                           f"times this candidate trained ({failed_before[-1]})")
            if job.epoch == 1 and job.store_index:
                got, total = self.store.load_into(net.inheritance_units(self.dataset), job.store_index)
                inherited = got / total if total else 0.0
            trainer = Trainer(net, self.data, self.settings, device=self.device, seed=job.seed,
                              progress=False, desc=job.individual)
            if job.epoch > 1:
                trainer.load_checkpoint(self.state_path(job.individual, job.epoch - 1))
            trainer.train_epoch()
            fitness = trainer.evaluate("eval")["top1"] if job.evaluate else 0.0
            trainer.save_checkpoint(self.state_path(job.individual, job.epoch))
        except CandidateFailure as e:
            return TrainResult(job.individual, job.epoch, 0.0, params, inherited,
                               time.perf_counter() - t0, failure=e.reason)
        except DeviceFailed as e:
            raise self._device_failed(job, e, failed_before) from None
        except (DataError, LoaderDied, OSError, StateFileError, StoreFileError):
            # an unreadable image, a data-loading process killed, a failed GPU, a full disk, a
            # folder made read-only, a state or weight-store file deleted or damaged: the
            # data's, the machine's or the folder's fault, never the candidate's. Recorded as
            # a failure it was dropped from the population (a full disk ended the search
            # 'extinct' with exit 0 and that result); stopping keeps the checkpoint, and
            # --resume goes on
            raise
        except Exception as e:  # noqa: BLE001 - any other error is the candidate's failure, never the search's
            failed = machine_failure(e, self.device)    # (raised outside the trainer's epochs)
            if isinstance(failed, DeviceFailed):
                raise self._device_failed(job, failed, failed_before) from None
            if failed is not None:
                raise failed from None
            detail = traceback.format_exception_only(type(e), e)[-1].strip()
            return TrainResult(job.individual, job.epoch, 0.0, params, inherited,
                               time.perf_counter() - t0, failure=f"error: {detail}")
        result = TrainResult(job.individual, job.epoch, round(fitness, 4), params, inherited,
                             time.perf_counter() - t0)
        atomic_write_json(self.record_path(job.individual, job.epoch),
                          {"job": self.job_key(job), "fitness": result.fitness, "params": params,
                           "inherited": inherited, "seconds": result.seconds,
                           "state_sha256": _sha256(self.state_path(job.individual, job.epoch))})
        return result

    def update_store(self, candidates: Sequence[StoreCandidate], index: dict, generation: int) -> dict:
        # fittest first: the first candidate to offer a key is its best owner this generation
        winners: dict[str, tuple] = {}
        for cand in sorted(candidates, key=lambda c: -c.fitness):
            fresh = [k for k in self._keys(cand.genome) if k not in winners
                     and (k not in index or cand.fitness > index[k]["fitness"])]
            if not fresh:
                continue
            net = build_network(cand.genome, self.macro)
            net.load_state_dict(read_state(self.state_path(cand.individual, cand.epoch))["model"])
            units = net.inheritance_units(self.dataset)
            for key in fresh:
                winners[key] = (units[key], cand.fitness, cand.individual)
        return self.store.save(winners, index, generation)

    def _keys(self, genome: Genome) -> list[str]:
        """Inheritance keys of ``genome``'s network (built on the meta device: no memory)."""
        with torch.device("meta"):
            net = Network(genome, self.macro)
        return list(net.inheritance_units(self.dataset))

    def _device_failed(self, job: TrainJob, error: DeviceFailed, failed_before: list[str]) -> DeviceFailed:
        """Note ``error`` against this job (:meth:`_device_failures`) and return the error that
        stops the search: once the job has failed :data:`DEVICE_FAILURES_PER_JOB` times, it
        says that the next run records it as the candidate's failure and goes on."""
        errors = [*failed_before, error.cause]
        try:
            atomic_write_json(self.device_failures_path(job.individual, job.epoch),
                              {"job": self.job_key(job), "errors": errors})
        except OSError:
            return error        # (not noted: the next run tries the candidate once more)
        if len(errors) < DEVICE_FAILURES_PER_JOB:
            return error
        marker = self.device_failures_path(job.individual, job.epoch)
        return DeviceFailed(f"{error}; it failed {len(errors)} times on the same candidate ({job.individual}, "
                            f"epoch {job.epoch}): the next run records that as the candidate's failure and goes on "
                            f"(if the device is at fault, delete {marker} first)", error.cause)

    def cleanup(self, keep: dict[str, int], store_indices: Sequence[dict]) -> None:
        root = self.out / "individuals"
        if root.exists():
            for folder in root.iterdir():
                if folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                for f in [*folder.glob("e*.pt"), *folder.glob("e*.json")]:
                    if int(f.stem[1:]) < keep[folder.name]:
                        f.unlink(missing_ok=True)
        self.store.collect_garbage(store_indices)

    def unusable_files(self, state) -> list[str]:
        """Each file the checkpoint needs (store entries, the population's trained states)
        that is missing, damaged or not the one written there (its sha256, kept in the
        store index and the job record, differs), as ``path (why)``."""
        problems = []
        for entry in state.store_index.values():
            rel = Path("weights") / entry["file"]
            why = _file_problem(self.out / rel, entry.get("sha256"), read_unit)
            problems += [f"{rel} ({why})"] if why else []
        for ind in state.population:
            if ind.epochs > 0 and ind.failure is None:
                path = self.state_path(ind.id, ind.epochs)
                try:
                    expected = load_json(self.record_path(ind.id, ind.epochs).read_text()).get("state_sha256")
                except (OSError, ValueError, AttributeError):
                    expected = None      # no usable record (or one older than the digests): read it
                why = _file_problem(path, expected, read_state)
                problems += [f"{path.relative_to(self.out)} ({why})"] if why else []
        return problems


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _file_problem(path: Path, sha256: str | None, read: Callable[[Path], object]) -> str | None:
    """Why ``path`` cannot be used (``missing``, ``damaged``, ``not the file written
    there``), or None. With the digest recorded when it was written, the digest decides;
    without one (files of older searches), whether ``read`` can read it."""
    try:
        if sha256 is not None:
            return None if _sha256(path) == sha256 else "damaged, or not the file written there"
        read(path)
    except FileNotFoundError:
        return "missing"
    except UserError:
        return "damaged"
    return None


def _complete(record: Mapping) -> bool:
    """A job record with every field a result needs, of the right kinds (a damaged or
    hand-edited record is trained again rather than trusted or crashed on)."""
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return (number(record.get("fitness")) and number(record.get("inherited")) and number(record.get("seconds"))
            and isinstance(record.get("params"), int) and not isinstance(record.get("params"), bool))


def make_torch_evaluator(config: Mapping, dataset: str, out_dir: str, seed: int, threads: int | None,
                         device: str) -> TorchEvaluator:
    """Picklable factory for worker processes: ``functools.partial(make_torch_evaluator, ...)``."""
    return TorchEvaluator(config, dataset, out_dir, seed, device=device, threads=threads)


def search_param_counter(config: Mapping, dataset: str) -> Callable[[Genome], int]:
    """Parameter counter of search-size networks on ``dataset`` (for ``nasgep sample``),
    after the checks a search makes before it starts."""
    evaluator = TorchEvaluator(config, dataset, ".", seed=0)
    evaluator.check_inputs()
    return evaluator.count_params
