"""Full training of one genome (paper IV-A, SPEC section 4): what ``nasgep train`` runs.

:func:`full_train` picks the dataset, applies the variant switches (CutOut, AutoAugment,
drop-path) and the stem, resumes from ``OUT/checkpoint.pt``, logs to MLflow and writes
``OUT/model.pt`` and ``OUT/metrics.json``. The folder follows :mod:`nasgep.outdir`: one
run at a time, resumed only with the same settings (``OUT/settings.json``), never started
over unless asked (``restart``: the old files are moved aside). Wrong input raises :class:`TrainSetupError`
(one line for the user); a candidate failure (NaN loss, out of memory) raises
:class:`~nasgep.train.CandidateFailure`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import outdir
from .config import dataset_name
from .errors import UserError, clip
from .io import atomic_write_json, load_json


class TrainSetupError(UserError):
    """The request cannot be trained as asked (unknown variant, foreign checkpoint ...)."""


@dataclass(frozen=True)
class TrainRequest:
    genome_path: str
    out: str
    dataset: str | None = None    # default: search.dataset (transfer.dataset with the imagenet stem)
    variant: str | None = None
    seed: int = 0
    stem: str | None = None       # default: train.stem
    epochs: int | None = None
    resume: bool = True           # False: start over (as ``restart``)
    restart: bool = False         # move what OUT holds aside and start over
    restart_if_changed: bool = False   # ... only when OUT's training had other settings
    progress: bool | None = None


#: files that show a folder holds (part of) a training
MARKERS = outdir.RUNS["training"]


def result_settings(meta: Mapping, settings, data_definition: Mapping,
                    files: tuple[dict | None, dict | None] | None = None) -> dict:
    """Every setting that shapes a training's result (its fingerprint, ``OUT/settings.json``):
    the genome, dataset, variant, seed, network shape and schedule, and the data: what
    shapes its weights (:func:`nasgep.datafiles.data_settings`), the fingerprint of its
    training and test images (``data_files``) and of the training images alone
    (``train_files``), so that a changed test set is told from changed training data.
    ``files``: those two fingerprints, where the caller listed them already."""
    from .datafiles import data_settings

    schedule = {k: v for k, v in settings.to_dict().items() if k in settings.SCHEDULE_KEYS}
    files, train_files = files or data_fingerprints(data_definition)
    return {**meta, "data": data_settings(data_definition, training=True), "train": schedule,
            **({} if files is None else {"data_files": files}),
            **({} if train_files is None else {"train_files": train_files})}


def data_fingerprints(data_definition: Mapping) -> tuple[dict | None, dict | None]:
    """The fingerprints of a training's data: training and test images, training images."""
    from .datafiles import files_fingerprints

    train_files, files = files_fingerprints(data_definition, parts=("train", "val"))    # one listing
    return files, train_files


def expected_settings(config: Mapping, dataset: str, variant: str, seed: int, stem: str | None = None,
                      files: tuple[dict | None, dict | None] | None = None) -> dict:
    """:func:`result_settings` of the workflow's training of ``variant`` on ``dataset`` with
    ``seed`` under ``config`` (``stem``: the config's ``train.stem``, or ``imagenet`` for the
    transfer), its genome left out (it comes from a search's best.json): what a study's
    tables compare a training's record with."""
    from .train import training_settings

    stem = stem or config["train"]["stem"]
    meta = {"dataset": dataset, "variant": variant, "seed": seed, "stem": stem,
            "channels": config["transfer" if stem == "imagenet" else "train"]["channels"],
            "cells_per_stage": config["train"]["cells_per_stage"]}
    return result_settings(meta, training_settings(config, variant=variant, stem=stem),
                           config["datasets"][dataset], files=files)


def default_dataset(config: Mapping, stem: str) -> str:
    transfer_to = config["transfer"]["dataset"]
    return transfer_to if stem == "imagenet" and transfer_to else config["search"]["dataset"]


def macro_for(config: Mapping, stem: str, data) -> Macro:  # noqa: F821 - torch-side type
    from .nn import Macro

    shape = config["transfer"] if stem == "imagenet" else config["train"]
    return Macro(channels=shape["channels"], cells_per_stage=config["train"]["cells_per_stage"],
                 num_classes=data.num_classes, in_channels=data.in_channels, stem=stem)


def full_train(config: Mapping, req: TrainRequest) -> dict[str, Any]:
    """Train ``req.genome_path`` as ``req`` says and return the metrics written to
    ``OUT/metrics.json``."""
    out = Path(req.out)
    try:
        with outdir.locked(out):
            return _full_train(config, req, out)
    except outdir.FolderError as e:
        raise TrainSetupError(str(e)) from None


def _recorded(path: Path) -> dict:
    """The JSON object in a result file read only for a note or a tag (the genome's file,
    the search.json beside it): empty when it is missing, unreadable, damaged (nested
    past the parser's depth too) or no object, for such a file only adds to what is said
    (a pipe of that name is not read: it would block)."""
    try:
        data = load_json(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _note_unfinished_search(genome_path: Path) -> None:
    """Say so when the genome is the best.json of a search that has not finished (it is
    rewritten after every generation): its final best may be another genome."""
    state = _recorded(genome_path.with_name("search.json"))
    if state.get("finished") is False:
        print(f"note: {genome_path} is the best so far of an unfinished search ({state.get('generations', '?')} "
              "generation(s) done); resume the search first for its final best", flush=True)


def _note_other_dataset(genome_path: Path, dataset: str) -> None:
    """Say so when the genome's file (a search's best.json) records that it was searched on
    another dataset than the one trained by default (search.dataset): training it there is
    legitimate (a transfer), but more often a config that names another dataset by mistake.
    ``--dataset`` given, or the ImageNet transfer, is no mistake and gets no note."""
    searched = _recorded(genome_path).get("dataset")
    if isinstance(searched, str) and searched != dataset:
        print(f"note: {genome_path} was searched on {clip(searched)}; it is trained on {dataset} (search.dataset "
              "of the config); give --dataset to choose", flush=True)


def _full_train(config: Mapping, req: TrainRequest, out: Path) -> dict[str, Any]:
    from .data import FolderImages
    from .space import Genome

    if req.epochs is not None:
        from .config import schema

        most = schema()["properties"]["train"]["properties"]["epochs"]["maximum"]     # train.epochs' limit
        if not 1 <= req.epochs <= most:
            raise TrainSetupError(f"--epochs must be between 1 and {most}, not {req.epochs}")
    genome = Genome.load(req.genome_path)
    _note_unfinished_search(Path(req.genome_path))
    stem = req.stem or config["train"]["stem"]
    dataset = dataset_name(config, default_dataset(config, stem) if req.dataset is None else req.dataset)
    if req.dataset is None and stem != "imagenet":
        _note_other_dataset(Path(req.genome_path), dataset)
    variant = req.variant or "none"
    trainer, data, macro = build_trainer(config, genome, dataset, req.seed, stem=stem, variant=req.variant,
                                         epochs=req.epochs, progress=req.progress,
                                         desc=f"{dataset}/{variant}/s{req.seed}")
    settings, device, model = trainer.settings, trainer.device, trainer.model
    trainer.meta = {"genome": genome.to_dict(), "dataset": dataset, "variant": variant, "seed": req.seed,
                    "stem": stem, "channels": macro.channels, "cells_per_stage": macro.cells_per_stage}
    files = data_fingerprints(config["datasets"][dataset])      # one listing, for settings.json and MLflow
    fingerprint = result_settings(trainer.meta, settings, config["datasets"][dataset], files=files)
    retest = not (req.restart or not req.resume) and outdir.only_test_images_changed(out, fingerprint)
    # checks_itself: without a settings.json, _resume checks the checkpoint's own record
    # (genome, dataset, variant, seed, network, schedule) instead of adopting these settings
    holds = outdir.claim(out, fingerprint, "training", resume=True, restart=req.restart or not req.resume,
                         restart_if_changed=req.restart_if_changed, log=lambda msg: print(msg, flush=True),
                         checks_itself=True)
    if outdir.remove_stale_temporaries(out):
        print("removed temporary files left by an interrupted write", flush=True)
    if holds:
        if outdir.recorded(out) is None:
            print(f"warning: {out} has no {outdir.SETTINGS}; checking the training's settings against its "
                  "checkpoint.pt instead (all but the dataset's definition)", flush=True)
        _resume(trainer, out / "checkpoint.pt")
    if isinstance(data.eval, FolderImages) and (trainer.epoch < settings.epochs or retest):
        # (re-tested: before its metrics.json is moved aside, which an unreadable image would leave so)
        _check_test_images(data, settings.num_workers, req.progress, "testing" if retest else "training")
    if retest:
        # the test error measured on the old images is the user's result: kept, not overwritten
        kept = outdir.keep_results(out, ["metrics.json"])
        where = "" if kept is None else f"; its metrics on the old ones are kept in {kept / 'metrics.json'}"
        print(f"note: the test images changed since {out} was trained; its weights do not depend on them: "
              f"it goes on, and is tested on the new ones{where}", flush=True)
    outdir.record(out, fingerprint, "training")     # every check passed
    outdir.drop_workflow_mark(out)
    params = sum(p.numel() for p in model.parameters())
    print(f"training {req.genome_path} on {dataset} ({len(data.train)} images, {data.num_classes} classes), "
          f"{params:,} parameters, {settings.epochs} epochs, variant {variant}, seed {req.seed}, {device}",
          flush=True)
    test = _fit_tracked(config, req, trainer, params, files[0])
    metrics = _finish(trainer, out, test, params, data.num_classes, len(data.eval))
    top5 = "" if metrics["test_top5_error"] is None else f", top-5 error {metrics['test_top5_error']:.2f}%"
    print(f"test error {metrics['test_error']:.2f}%{top5} -> {out / 'metrics.json'}", flush=True)
    return metrics


def build_trainer(config: Mapping, genome, dataset: str, seed: int, *, stem: str = "cifar",
                  variant: str | None = None, epochs: int | None = None, progress: bool | None = None,
                  desc: str = "train") -> tuple[Any, Any, Any]:
    """The one way a full training of ``genome`` is set up (``nasgep train``, the
    search-phase evaluation, the benchmarks): its settings (config ``train``, or
    ``transfer`` for ``stem="imagenet"``), the dataset's final split, the checks made before
    anything trains (batch size, augmentation that can leave nothing of an image, a network
    too large for this machine) and the network on the configured device. Returns
    ``(trainer, data, macro)``; bad input is one line (a :class:`~nasgep.errors.UserError`)."""
    import torch

    from . import nn as nasgep_nn
    from .data import DataError, check_augment, check_batch, load_dataset
    from .train import Trainer, check_network_fits, resolve_device, training_settings

    try:
        settings = training_settings(config, variant=variant, stem=stem, epochs=epochs)
        device = resolve_device(config["device"])
        data = load_dataset(config, dataset, "final", seed=seed)
    except (ValueError, DataError) as e:
        raise TrainSetupError(str(e)) from None
    section = "transfer" if stem == "imagenet" else "train"
    check_batch(data, settings.batch_size, f"{section}.batch_size")
    check_augment(data, settings.augment, f"{section}.augment")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # one input shape for the whole run: let cuDNN pick
    macro = macro_for(config, stem, data)
    check_network_fits(nasgep_nn.count_network_parameters(genome, macro), macro, f"{section}.channels",
                       "train.cells_per_stage")
    torch.manual_seed(seed)
    model = nasgep_nn.build_network(genome, macro, seed=seed)
    trainer = Trainer(model, data, settings, device=device, seed=seed, progress=progress, desc=desc)
    return trainer, data, macro


def _check_test_images(data, workers: int, progress: bool | None, before: str) -> None:
    """Decode every test image of a folder dataset ``before`` the first epoch (or the test
    of a finished training): an unreadable one would otherwise stop the training at its
    test, after every epoch had run (or its old metrics.json had been moved aside)."""
    from .data import check_images, unreadable_error

    problems = check_images(data.eval, f"{data.name}: reading the test images", workers=workers, progress=progress)
    if problems:
        raise TrainSetupError(str(unreadable_error(problems, f" among the test images, read before {before}")))


def _resume(trainer, checkpoint: Path) -> None:
    from .train import StateFileError, read_state

    again = "restore it, or pass --restart to start over (the old files are moved aside)"
    if not checkpoint.exists():
        raise TrainSetupError(f"{checkpoint.parent} holds a training's results but no checkpoint.pt; {again}")
    try:
        state = read_state(checkpoint)
    except StateFileError as e:
        raise TrainSetupError(f"{e}; {again}") from None
    if state.get("meta") != trainer.meta:
        raise TrainSetupError(f"{checkpoint} belongs to another training (genome, dataset, variant, seed or "
                              f"network differ); use --restart to start over or another --out")
    try:
        trainer.load_state_dict(state)
    except ValueError as e:
        raise TrainSetupError(f"{checkpoint}: {e}; use --restart to start over") from None
    print(f"resuming from {checkpoint} after epoch {trainer.epoch}/{trainer.settings.epochs}", flush=True)


def cells_method(config: Mapping, variant: str | None, genome_path: str) -> str:
    """Where the trained cells come from (the ``method`` tag): the ablation's source
    (search, search_nws, random), else the ``method`` a result file names, else ``given``."""
    if variant is not None:
        return config["ablations"][variant]["source"]
    method = _recorded(Path(genome_path)).get("method")
    return method if isinstance(method, str) else "given"


def _fit_tracked(config: Mapping, req: TrainRequest, trainer, params: int, files: dict | None) -> dict:
    """Fit (checkpointing every epoch) and test once, inside an MLflow run that carries
    what the UI compares runs by: the study's tags (:func:`nasgep.tracking.run_tags`), the
    dataset as an MLflow dataset input, the genome (artifact ``genome.json`` and a short
    text param) and per-epoch metrics with ``step=epoch``. ``files``: the fingerprint of
    its training and test images, listed once at the start."""
    from . import tracking
    from .space import Genome
    from .train import CandidateFailure

    meta, settings = trainer.meta, trainer.settings
    dataset, variant, stem = meta["dataset"], meta["variant"], meta["stem"]
    experiment = "transfer" if stem == "imagenet" else ("ablation" if req.variant else "train")
    tags = tracking.run_tags(config, dataset=dataset, seed=req.seed, variant=variant,
                             method=cells_method(config, req.variant, req.genome_path),
                             stem=stem, resumed_at_epoch=trainer.epoch)
    saved_run_id = trainer.tracking_run_id
    with tracking.start_run(config, experiment, f"{dataset}-{variant}-seed{req.seed}",
                            params={"train": settings.to_dict(), "dataset": dataset, "variant": variant,
                                    "seed": req.seed, "stem": stem, "channels": meta["channels"],
                                    "cells_per_stage": meta["cells_per_stage"], "params": params,
                                    "genome": tracking.genome_text(Genome.from_dict(meta["genome"])),
                                    "genome_file": str(req.genome_path)},
                            tags=tags, run_id=trainer.tracking_run_id, folder=req.out) as run:
        # a resumed or re-tested training goes on in its own run (saved in checkpoint.pt),
        # not in a new one beside the old, left RUNNING or FAILED
        trainer.tracking_run_id = run.run_id
        run.log_dataset(config["datasets"][dataset], dataset, "train", files=files, purpose="final")
        run.log_dict(meta["genome"], "genome.json")

        def log(stats) -> None:
            run.log_metrics({"train_loss": stats.loss, "train_top1": stats.top1, "lr": stats.lr,
                             "drop_path": stats.drop_path, "images_per_second": stats.images_per_second},
                            step=stats.epoch)

        def report(stats) -> None:
            print(f"epoch {stats.epoch}/{settings.epochs}  loss {stats.loss:.4f}  train top-1 {stats.top1:.2f}%  "
                  f"lr {stats.lr:.5f}  drop-path {stats.drop_path:.3f}  {stats.seconds:.1f}s  "
                  f"{stats.images_per_second:.0f} img/s", flush=True)
            log(stats)

        # epochs checkpointed by a run stopped before it logged them (checkpoint.pt keeps them)
        missing = set(run.lacks_steps("train_loss", [stats.epoch for stats in trainer.history]))
        for stats in trainer.history:
            if stats.epoch in missing:
                log(stats)

        checkpoint, before = Path(req.out) / "checkpoint.pt", trainer.epoch
        try:
            trainer.fit(checkpoint, on_epoch=report)
            test = trainer.evaluate("eval")
        except CandidateFailure as e:
            run.set_tags({"failure": e.reason})
            raise
        if trainer.epoch == before and checkpoint.exists() and trainer.tracking_run_id != saved_run_id:
            trainer.save_checkpoint(checkpoint)   # a finished training tested again: its run goes on next time
        run.nothing_new = trainer.epoch == before     # tested again only: the run keeps its duration
        # one value each, no step: the UI's chart view shows them as one bar per run
        run.log_metrics({"test_error": 100.0 - test["top1"], "test_top1": test["top1"],
                         "test_top5": test["top5"], "params": params})
    return test


def _finish(trainer, out: Path, test: dict, params: int, num_classes: int, test_images: int) -> dict[str, Any]:
    """Write the final weights and ``metrics.json``."""
    from .train import atomic_save

    atomic_save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
    meta = trainer.meta
    metrics = {
        "test_error": 100.0 - test["top1"],
        "test_top5_error": 100.0 - test["top5"] if num_classes > 5 else None,
        "test_accuracy": test["top1"],
        "test_images": test_images,
        "params": int(params),
        "epochs": trainer.epoch,
        "seconds": round(trainer.seconds, 3),
        "dataset": meta["dataset"],
        "variant": meta["variant"],
        "seed": meta["seed"],
        "stem": meta["stem"],
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
