"""Runs a search end to end: config -> evaluator and workers -> generations with
checkpoints, tracking and progress -> result files (``best.json``, ``history.parquet``,
the weight store, drawings of the best cells)."""
from __future__ import annotations

import functools
import io
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import outdir, tracking
from ..config import MAX_PROCESSES, ConfigError
from ..datafiles import LIST_FILES
from ..errors import RunFailed, UserError, clip
from ..io import load_json
from ..study import SEARCH_EXECUTION, SEARCH_LIMITS, expand_devices, search_method
from . import checkpoint
from .evaluator import Evaluator, make_executor, worker_devices
from .loop import GenerationReport, Search, SearchSettings
from .state import SearchState

EvaluatorFactory = Callable[[str], Evaluator]


class SearchExists(UserError):
    """The output folder cannot be used as asked (holds a search, in use, other settings,
    damaged): one line for the user, exit status 2."""


def resolve_devices(devices: list[str], configured_default: str = "auto") -> list[str]:
    """Expand ``auto`` and ``all`` on this machine (:func:`nasgep.study.expand_devices`);
    torch is asked for the GPUs only when they matter (it takes seconds to import)."""
    needs_count = "all" in devices or ("auto" in devices and configured_default == "auto")
    return expand_devices(devices, configured_default, _cuda_count() if needs_count else 0)


def _cuda_count() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return 0
    return torch.cuda.device_count()


def method_name(config: Mapping) -> str:
    return search_method(config["search"]["weight_sharing"])


def torch_evaluator_factory(config: Mapping, dataset: str, out_dir: Path, seed: int,
                            threads: int | None = None) -> EvaluatorFactory:
    from .torch_evaluator import make_torch_evaluator

    return functools.partial(make_torch_evaluator, dict(config), dataset, str(out_dir), seed, threads)


def run_search(config: Mapping, *, dataset: str, seed: int, out_dir: str | Path,
               resume: bool = False, restart: bool = False, restart_if_changed: bool = False,
               factory: EvaluatorFactory | None = None, progress: bool | None = None,
               log: Callable[[str], None] | None = None) -> SearchState:
    """Search (or continue one) and write the results to ``out_dir``.

    ``resume`` continues the search in ``out_dir`` (or starts one there if it holds none);
    ``restart`` moves what ``out_dir`` holds aside and starts afresh; ``restart_if_changed``
    does so only when the folder's search was made with other settings (the workflow's
    rule: a finished search with the same settings is not redone). Only one run at a time
    may use a folder."""
    out = Path(out_dir)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        with outdir.locked(out):
            return _run_in_folder(config, dataset, seed, out, resume, restart, restart_if_changed,
                                  factory, progress, log)
    except outdir.FolderError as e:
        raise SearchExists(str(e)) from None


#: search settings left out of the fingerprint: they limit a run or say where it runs
LIMITS = SEARCH_LIMITS + SEARCH_EXECUTION


def method_settings(config: Mapping) -> dict:
    """The ``search`` and ``gep`` settings that shape a search's result: what the seeds of
    one method share (``settings.json`` holds them with the data and the seed)."""
    search = {k: v for k, v in config["search"].items() if k not in LIMITS and k != "dataset"}
    return {"search": search, "gep": dict(config["gep"])}


def result_settings(config: Mapping, dataset: str, seed: int, files: Any = LIST_FILES) -> dict:
    """Every setting that shapes a search's result (its fingerprint, ``OUT/settings.json``).
    ``files``: the dataset's :func:`~nasgep.datafiles.files_fingerprint` when the caller
    has it already (None: not on this machine); by default the data must be there and is
    listed now."""
    from ..datafiles import data_settings, required_fingerprints

    entry = config["datasets"][dataset]
    if files is LIST_FILES:
        files = required_fingerprints(entry)[0]     # the training images' ("train")
    doc = {**method_settings(config), "dataset": dataset, "data": data_settings(entry), "seed": seed}
    return doc if files is None else {**doc, "data_files": files}


#: files that show a folder holds (part of) a search
MARKERS = outdir.RUNS["search"]


def _start_or_resume(out: Path, settings_doc: dict, settings: SearchSettings, seed: int, resume: bool,
                     restart: bool, restart_if_changed: bool, log: Callable[[str], None]) -> SearchState:
    """The state to go on from: a fresh one, or the newest good checkpoint in ``out``
    (never a fresh one over a search the folder holds: see :func:`nasgep.outdir.claim`).
    Writes nothing but what ``restart`` moves aside and stale temporaries it removes."""
    holds = outdir.claim(out, settings_doc, "search", resume=resume, restart=restart,
                         restart_if_changed=restart_if_changed, log=log)
    stale = outdir.remove_stale_temporaries(out)
    if stale:
        log(f"removed {stale} temporary file(s) left by an interrupted write")
    if not holds:
        return SearchState(seed=seed)
    state, problems = checkpoint.newest_good(out / "checkpoints")
    if state is None:       # the one line below names every damaged checkpoint
        damage = "; ".join(problems) or "none there"
        raise SearchExists(f"{out} holds a search but no readable checkpoint in checkpoints/ ({damage}); "
                           "restore one, or pass --restart to start over (the old files are moved "
                           "to .previous-<time>/ in the folder)")
    if state.seed != seed:
        raise SearchExists(f"{out} holds a search with seed {state.seed}, not {seed}")
    for problem in problems:
        log(f"warning: checkpoint {out / 'checkpoints'}/{problem}; went back to the previous one")
    log(f"resuming {out} after generation {state.generation}")
    past = _past_limits(state, settings)
    for line in past.values():
        log(f"note: {line}: it stops here and keeps all of them (raise the limit to go on)")
    if state.finished and _limit_raised(state, settings) and not past:
        log(f"the search had stopped ({state.stop_reason}); the new limits let it go on")
        state.finished, state.stop_reason = False, None
    return state


def _check_files(out: Path, state: SearchState, evaluator: Evaluator) -> None:
    """Stop when files the checkpoint relies on (weight store, trained states) are gone or
    damaged: going on would count their candidates as failures and change the search."""
    unusable = evaluator.unusable_files(state)
    if unusable:
        shown = ", ".join(unusable[:3]) + (f" and {len(unusable) - 3} more" if len(unusable) > 3 else "")
        raise SearchExists(f"{out}: {len(unusable)} file(s) that the checkpoint of generation "
                           f"{state.generation} needs are missing or damaged ({shown}); restore them, "
                           "or pass --restart to start over (the old files are moved aside)")


def _run_in_folder(config: Mapping, dataset: str, seed: int, out: Path, resume: bool, restart: bool,
                   restart_if_changed: bool, factory: EvaluatorFactory | None, progress: bool | None,
                   log: Callable[[str], None]) -> SearchState:
    ckpt_dir = out / "checkpoints"
    settings = SearchSettings.from_config(config)
    from ..datafiles import required_fingerprints

    # one listing, before the folder is claimed (a missing file is no changed setting)
    train_files, files = required_fingerprints(config["datasets"][dataset], ("train", "val"))
    settings_doc = result_settings(config, dataset, seed, files=train_files)
    # too many workers for this machine, or (--restart always trains) a GPU that is not here:
    # refused before the folder is claimed and an old run moved aside
    _worker_devices(config, check_present=restart and factory is None)
    state = _start_or_resume(out, settings_doc, settings, seed, resume, restart, restart_if_changed, log)
    trains = _will_train(out, state, config, settings)
    evaluator, executor, devices = _workers(config, dataset, out, seed, factory, trains)
    data = getattr(evaluator, "data", None) if trains else None      # test stand-ins have none
    if data is not None:
        log(f"data: {data.line()}")
    if trains and "all" in config["search"]["devices"] and set(devices) == {"cpu"}:
        log("devices: search.devices lists 'all' but this machine has no GPU; training on the CPU")

    method = method_name(config)
    run_name = f"{dataset}-{method}-seed{seed}"
    shown = _CandidateBar(executor) if _shows_progress(progress) else executor
    search = Search(settings, evaluator, shown, state)
    try:
        if not state.finished:
            _check_files(out, state, evaluator)
        outdir.record(out, settings_doc, "search")     # every check passed
        if not state.finished:                          # going on: the workflow must run it again
            outdir.drop_workflow_mark(out)
        with tracking.start_run(config, "search", run_name, params=_params(config, dataset, seed),
                                tags=tracking.run_tags(config, dataset=dataset, seed=seed, method=method),
                                run_id=state.mlflow_run_id, folder=out) as run:
            state.mlflow_run_id = run.run_id
            run.log_dataset(config["datasets"][dataset], dataset, "search", files=files, purpose="search", seed=seed)
            if state.last_metrics and run.lacks_steps("best_fitness", [state.generation]):
                run.log_metrics(state.last_metrics, step=state.generation)     # stopped before they were
            bar = _progress(settings, state, progress)

            def on_generation(st: SearchState, report: GenerationReport) -> None:
                st.last_metrics = _metrics(report)
                checkpoint.save(ckpt_dir, st)
                _collect_garbage(evaluator, ckpt_dir)
                run.log_metrics(st.last_metrics, step=report.generation)
                _write_results(out, st, config, dataset, seed, method)
                line = _generation_line(report, settings)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(best=f"{report.best_ever:.2f}",
                                    budget=f"{_budget_used(report, settings):.0f}%")
                    bar.write(line)
                else:
                    log(line)

            finished, generation = state.finished, state.generation
            search.run(on_generation)
            _conclude(run, out, state, config, dataset, seed, method, evaluator, shown, log)
            run.nothing_new = finished and state.generation == generation    # its Duration stays the search's
            if bar is not None:
                bar.close()
    finally:
        executor.close()
    why = stop_explained(state.stop_reason, settings, state)
    if state.best is None:
        when = (f"after generation {state.generation}" if state.generation >= 0
                else "before generation 0 was complete")
        if not state.history:
            raise RunFailed(f"the search ended ({why}) {when}, before any candidate was trained, so "
                            f"{out / 'best.json'} was not written; raise the limit")
        raise RunFailed(f"the search ended ({why}) {when} without a "
                        f"single usable candidate, so {out / 'best.json'} was not written; failures: "
                        f"{failure_summary(state.history)} (every one is in {out / 'history.parquet'})")
    log(f"search finished ({why}) after generation {state.generation}: "
        f"best fitness {state.best.fitness:.2f} -> {out / 'best.json'}")
    return state


def stop_explained(reason: str | None, settings: SearchSettings, state: SearchState | None = None) -> str:
    """A stop reason with what caused it, for the closing line; a limit lowered below what
    the search had already run says so (the search stops there, with everything it ran)."""
    past = _past_limits(state, settings) if state is not None else {}
    causes = {"max_generations": f"search.max_generations = {settings.max_generations}",
              "budget": f"search.budget_hours = {settings.budget_seconds / 3600:g} spent",
              "budget_epochs": (f"search.budget_epochs = {settings.budget_epochs}"
                                + ("" if state is None else f", {state.epochs_trained()} used: the next "
                                   "generation would pass it")),
              **past,
              "extinct": (f"no individual left to breed: each failed or reached search.max_epochs = "
                          f"{settings.max_epochs} epochs")}
    return f"{reason}: {causes[reason]}" if reason in causes else str(reason)


def _conclude(run, out: Path, state: SearchState, config: Mapping, dataset: str, seed: int, method: str,
              evaluator: Evaluator, executor, log: Callable[[str], None]) -> None:
    """After the last generation: checkpoint the finished state, the final selection
    (``retrain``), the result files and what MLflow keeps of them."""
    ckpt_dir = out / "checkpoints"
    checkpoint.save(ckpt_dir, state)     # the finished state (stop reason, elapsed)
    if config["search"]["final_selection"] == "retrain" and state.best is not None:
        _final_selection(out, state, config, executor, log)
        checkpoint.save(ckpt_dir, state)
        _collect_garbage(evaluator, ckpt_dir)     # the finalists' training states
    for path in _write_results(out, state, config, dataset, seed, method, draw=True):
        run.log_artifact(path)
    if state.best is not None:   # a tag: a search resumed with raised limits may change it
        from ..space import Genome

        run.set_tags({"best_genome": tracking.genome_text(Genome.from_dict(state.best.genome))})
    run.log_metrics({"final_best_fitness": state.best.fitness if state.best else 0.0,
                     "generations": state.generation + 1,
                     "outside_training_share": _outside_share(state)})


def _will_train(out: Path, state: SearchState, config: Mapping, settings: SearchSettings) -> bool:
    """Whether this run trains anything: not when it only rewrites the result files of a
    finished search (or of one that stops at once, under a limit lowered below what it
    ran) whose final selection (if any) is recorded. Such a run neither loads the data
    (minutes for a large image folder) nor starts worker processes."""
    if not state.finished and not _past_limits(state, settings):
        return True
    return (config["search"]["final_selection"] == "retrain" and state.best is not None
            and _recorded_choice(out / "finalists.json", state.generation) is None)


def _worker_devices(config: Mapping, check_present: bool = False) -> list[str]:
    """The device of each worker: ``search.devices`` on this machine times the concurrency.
    The config's check counts an entry ``all`` once; here it is every GPU of the machine.
    ``check_present``: a GPU that is not there is one line now, not a failure per candidate."""
    expanded = resolve_devices(list(config["search"]["devices"]), config["device"])
    devices = worker_devices(expanded, config["search"]["concurrency"])
    if len(devices) > MAX_PROCESSES:
        raise ConfigError(f"search.devices: {len(expanded)} devices on this machine ('all' is each of its GPUs) x "
                          f"search.concurrency {config['search']['concurrency']} = {len(devices):,} worker "
                          f"processes; at most {MAX_PROCESSES}")
    if check_present:
        from ..train import resolve_device

        for device in devices:
            resolve_device(device)
    return devices


def _workers(config: Mapping, dataset: str, out: Path, seed: int, factory: EvaluatorFactory | None,
             trains: bool = True):
    """(evaluator in this process, executor, devices): one worker process per device entry times
    ``search.concurrency`` when there are several, else training in this process. With
    ``trains`` false, one evaluator on the CPU that loads nothing (see :func:`_will_train`)."""
    if not trains:
        factory = factory or torch_evaluator_factory(config, dataset, out, seed, config["search"]["cpu_threads"])
        evaluator, executor = make_executor(factory, ["cpu"])
        return evaluator, executor, ["cpu"]
    devices = _worker_devices(config, check_present=factory is None)
    if factory is None:
        # a CPU candidate trains with search.cpu_threads threads whatever the concurrency and the
        # machine's cores: a float sum split over another number of threads rounds differently
        factory = torch_evaluator_factory(config, dataset, out, seed, config["search"]["cpu_threads"])
    evaluator = factory("cpu" if len(devices) > 1 else devices[0])
    check_inputs = getattr(evaluator, "check_inputs", None)   # test stand-ins have none
    if check_inputs is not None:
        check_inputs()
    evaluator, executor = make_executor(factory, devices, evaluator)
    return evaluator, executor, devices


def _generation_line(report: GenerationReport, settings: SearchSettings) -> str:
    # under search.fitness: cohort the fitness is a percentile; the best accuracy follows it
    accuracy = f" (acc {report.best_accuracy:5.2f})" if settings.fitness == "cohort" else ""
    return (f"gen {report.generation:3d}  best {report.best_fitness:6.2f}{accuracy}  "
            f"mean {report.mean_fitness:6.2f}  best-ever {report.best_ever:6.2f}  "
            f"T_g {report.t_g:6.2f}  trained {report.trained:2d} ({report.epochs_trained} ep, "
            f"{report.failures} failed)  pools {report.normal_pool}/{report.reduction_pool}  "
            f"budget {_budget_used(report, settings):5.1f}%  "
            f"{report.seconds:6.1f}s")


def failure_summary(history: list[dict], most: int = 3) -> str:
    """The commonest failure reasons of a search's history, with counts, each clipped."""
    reasons = Counter(clip(row["failure"]) for row in history if row.get("failure"))
    if not reasons:
        return "none recorded (no candidate was trained)"
    shown = [f"{n}x {reason!r}" for reason, n in reasons.most_common(most)]
    rest = len(reasons) - len(shown)
    return "; ".join(shown) + (f"; and {rest} other reason{'s' if rest > 1 else ''}" if rest > 0 else "")


def _budget_used(report: GenerationReport, settings: SearchSettings) -> float:
    """Percent of the budget used: the larger of the wall-clock and the epoch budget's share."""
    used = report.elapsed / settings.budget_seconds
    if settings.budget_epochs:
        used = max(used, report.epochs_total / settings.budget_epochs)
    return 100 * used


def _final_selection(out: Path, state: SearchState, config: Mapping, executor, log) -> None:
    """``search.final_selection: retrain``: re-train the finalists and make the winner the
    result (``state.best``); the paper's pick and every finalist go to ``finalists.json``.
    A search resumed after that file was written takes its winner from it (the checkpoint
    saved after it may not have been)."""
    from ..io import atomic_write_json
    from .finalists import select

    target = out / "finalists.json"
    chosen = _recorded_choice(target, state.generation)
    if chosen is not None:
        done, pick_id, mean = chosen
        _make_best(state, next(f for f in done if f.id == pick_id), config, mean)
        return
    paper_pick = {"individual": state.best.individual, "fitness": state.best.fitness,
                  "epochs": state.best.epochs}
    pick, record = select(state.history, config, executor, state.seed, log)
    _make_best(state, pick, config, config["search"]["evaluation"] == "full")
    atomic_write_json(target, {**record, "generation": state.generation, "paper_pick": paper_pick})


def _recorded_choice(target: Path, generation: int):
    """(finalists, chosen id, whether it ranked the mean) of a ``finalists.json`` written for
    ``generation``; None when there is none, or it is of another generation or unreadable
    (the selection is redone). A record made before ``ranked_by`` was written chose by the
    re-training alone: its result keeps that measure (best.json's fitness), whatever the
    rule of this version."""
    from .finalists import RANKED_BY, Finalist

    try:
        data = load_json(target.read_bytes())
        if data.get("generation") != generation:
            return None
        done = [Finalist(**f) for f in data["finalists"]]
        mean = data.get("ranked_by", RANKED_BY[False]) == RANKED_BY[True]
        return (done, data["chosen"], mean) if any(f.id == data["chosen"] for f in done) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _make_best(state: SearchState, pick, config: Mapping, mean: bool) -> None:
    """The re-trained winner ``pick`` (a :class:`~.finalists.Finalist`) as the search's
    result; ``mean``: its fitness is the mean of its search fitness and its re-training."""
    from ..space import Genome
    from .state import BestRecord

    genome = Genome.from_json(pick.genome)
    row = next(r for r in reversed(state.history) if r["id"] == pick.id)
    fitness = pick.estimate(mean)
    state.best = BestRecord(genome.to_dict(), fitness, row["params"], row["generation"],
                            pick.id, config["search"]["max_epochs"], fitness)


def _past_limits(state: SearchState, settings: SearchSettings) -> dict[str, str]:
    """The limits (by stop reason) that ``state`` has already gone past: lowered after the
    search ran further. What it ran stays; it stops at once, and the lines say so."""
    past = {}
    if settings.max_generations is not None and state.generation + 1 > settings.max_generations:
        past["max_generations"] = (f"search.max_generations = {settings.max_generations}, lowered after "
                                   f"the search had run {state.generation + 1} generations")
    if settings.budget_epochs is not None and state.epochs_trained() > settings.budget_epochs:
        past["budget_epochs"] = (f"search.budget_epochs = {settings.budget_epochs}, lowered after the "
                                 f"search had trained {state.epochs_trained()} candidate epochs")
    return past     # (not budget_hours: a generation may overrun the wall-clock budget by itself)


def _limit_raised(state: SearchState, settings: SearchSettings) -> bool:
    """Whether a finished search may continue under (raised) generation, time or epoch limits."""
    if state.stop_reason == "max_generations":
        return settings.max_generations is None or state.generation + 1 < settings.max_generations
    if state.stop_reason == "budget":
        return state.elapsed < settings.budget_seconds
    if state.stop_reason == "budget_epochs":
        return settings.budget_epochs is None or state.epochs_trained() < settings.budget_epochs
    return False


def _params(config: Mapping, dataset: str, seed: int) -> dict:
    return {"dataset": dataset, "seed": seed, "search": config["search"], "gep": config["gep"],
            "data": config["datasets"][dataset]}


def _metrics(r: GenerationReport) -> dict[str, float]:
    return {"best_fitness": r.best_fitness, "mean_fitness": r.mean_fitness, "best_ever": r.best_ever,
            "t_g": r.t_g, "t_c": r.t_c, "normal_pool": r.normal_pool, "reduction_pool": r.reduction_pool,
            "reduction_population": r.reduction_population, "population": r.population,
            "individuals_trained": r.trained, "epochs_trained": r.epochs_trained, "failures": r.failures,
            "param_rejections": r.param_rejections, "generation_seconds": r.seconds,
            "elapsed_seconds": r.elapsed, "epochs_total": r.epochs_total, "best_accuracy": r.best_accuracy}


def _outside_share(state: SearchState) -> float:
    return max(0.0, 1 - state.train_seconds / state.elapsed) if state.elapsed > 0 else 0.0


def _shows_progress(enabled: bool | None) -> bool:
    """``progress``: None shows the bars on a terminal only (not in a log file)."""
    return enabled is True or (enabled is None and sys.stderr.isatty())


class _CandidateBar:
    """The search's executor, showing the candidates of each training round on a second
    bar under the generations' one: a generation can train for many minutes."""

    def __init__(self, executor):
        self.executor = executor

    def map(self, jobs, may_start, done=None):
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc="  training", unit="candidate", leave=False, position=1,
                  file=sys.stderr) as bar:
            def trained() -> None:
                bar.update(1)
                if done is not None:
                    done()
            return self.executor.map(jobs, may_start, trained)

    def close(self) -> None:
        self.executor.close()


def _progress(settings: SearchSettings, state: SearchState, enabled: bool | None):
    if not _shows_progress(enabled):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=settings.max_generations, initial=state.generation + 1, desc="search",
                unit="gen", file=sys.stderr)


def _collect_garbage(evaluator: Evaluator, ckpt_dir: Path) -> None:
    """Delete individual states and store files no checkpoint on disk refers to."""
    states = checkpoint.loadable_states(ckpt_dir)
    keep: dict[str, int] = {}
    for st in states:
        for ind in st.population:
            keep.setdefault(ind.id, ind.epochs)
            keep[ind.id] = min(keep[ind.id], ind.epochs)
    evaluator.cleanup(keep, [st.store_index for st in states])


def _write_results(out: Path, state: SearchState, config: Mapping, dataset: str, seed: int,
                   method: str, draw: bool = False) -> list[Path]:
    import pandas as pd

    from ..io import atomic_write_bytes, atomic_write_json

    paths = []
    if state.best is not None:
        from ..space import Genome

        genome = Genome.from_dict(state.best.genome).to_dict()   # canonical gene order
        best = {"genome": genome, "fitness": state.best.fitness, "accuracy": state.best.accuracy,
                "params": state.best.params,
                "dataset": dataset, "seed": seed, "method": method,
                "generation": state.best.generation, "individual": state.best.individual,
                "epochs": state.best.epochs}
        atomic_write_json(out / "best.json", best)
        paths.append(out / "best.json")
    buffer = io.BytesIO()
    pd.DataFrame(state.history, columns=_HISTORY_COLUMNS).to_parquet(buffer, index=False)
    atomic_write_bytes(out / "history.parquet", buffer.getvalue())
    paths.append(out / "history.parquet")
    summary = {"dataset": dataset, "seed": seed, "method": method, "generations": state.generation + 1,
               "finished": state.finished, "stop_reason": state.stop_reason,
               "elapsed_seconds": round(state.elapsed, 3), "train_seconds": round(state.train_seconds, 3),
               "epochs": state.epochs_trained(),
               "outside_training_share": round(_outside_share(state), 4),
               "param_rejections": state.param_rejections, "t_g": state.t_g, "t_c": state.t_c,
               "store_keys": len(state.store_index)}
    atomic_write_json(out / "search.json", summary)
    paths.append(out / "search.json")
    if draw and state.best is not None:
        paths.extend(_draw_best(out, state))
    return paths


def _draw_best(out: Path, state: SearchState) -> list[Path]:
    from ..draw import draw_cell
    from ..space import Genome

    genome = Genome.from_dict(state.best.genome)
    paths: list[Path] = []
    for pool, cell in (("normal", genome.normal), ("reduction", genome.reduction)):
        title = f"best {pool} cell ({state.best.individual}, fitness {state.best.fitness:.2f})"
        paths.extend(draw_cell(cell, out / "cells" / pool, title))
    return paths


_HISTORY_COLUMNS = ["generation", "id", "parents", "normal", "reduction", "reduction_id", "born", "epochs",
                    "epochs_this_generation", "fitness", "accuracy", "params", "inherited", "seconds", "dead",
                    "failure", "genome"]
