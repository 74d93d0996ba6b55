# Shared definitions: the study plan, result paths and rule settings.
# Paths come from nasgep.report.LAYOUT, the same layout `nasgep tables`/`figures` read.
import copy
import json
import math
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from nasgep.config import ConfigError
from nasgep.config import validate as nasgep_validate
from nasgep.report import FIGURE_FORMATS, LAYOUT, METHODS, TABLE_FORMATS, TABLES, Study
from nasgep.tracking import tracking_uri

# The rules call `nasgep` from PATH; when it is not there (`.venv/bin/snakemake` run without
# activating the virtual environment), from the environment snakemake runs in.
if shutil.which("nasgep") is None and (Path(sys.executable).parent / "nasgep").exists():
    os.environ.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )


# -- configuration ---------------------------------------------------------------------
def _config_paths() -> list[str]:
    """The config files snakemake was given, relative to the working directory when
    inside it (so the rules' params do not change with how a path was spelled)."""
    out: list[str] = []
    for path in map(Path, workflow.configfiles):
        if path.is_absolute():
            try:
                path = path.relative_to(Path.cwd())
            except ValueError:
                pass
        if str(path) not in out:
            out.append(str(path))
    return out


CONFIG_PATHS = _config_paths()
CONFIG_ARGS = " ".join(f"--config {shlex.quote(p)}" for p in CONFIG_PATHS)

try:  # cross-references (dataset names, gene limits) and every default, as the verbs see them
    NASGEP_CONFIG = nasgep_validate(
        copy.deepcopy(dict(config)), " + ".join(CONFIG_PATHS) or "config"
    )
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}") from None

STUDY = Study(NASGEP_CONFIG)
R = str(STUDY.root)
SEEDS = STUDY.seeds
TRANSFER = STUDY.transfer_dataset
ENV = "../envs/nasgep.yaml"

if TRANSFER is None:
    logger.warning(
        "NASGEP: transfer.dataset is null, so the ImageNet (mobile setting) transfer of "
        "Table III will not run and Table III marks its measured row 'not run'. To run it, "
        "add an ImageNet folder dataset to 'datasets' (kind: folder, path: ..., "
        "image_size: 224) and set transfer.dataset to its name."
    )

wildcard_constraints:
    dataset=r"[^/]+",
    seed=r"\d+",
    method="|".join(METHODS),


# -- paths -----------------------------------------------------------------------------
def result(key: str, name: str = "") -> str:
    """A path pattern under results_dir, e.g. result('search', 'best.json')."""
    pattern = f"{R}/{LAYOUT[key]}"
    return f"{pattern}/{name}" if name else pattern


def log_path(name: str) -> str:
    return f"{R}/{LAYOUT['logs']}/{name}.log"


def tracking_input() -> list:
    """The sqlite store as an ancient input (its later writes never trigger reruns);
    nothing when tracking is off or goes to a server."""
    db = tracking_db()
    return [ancient(db)] if db else []


def tracking_db() -> str | None:
    """Path of the study's sqlite store when the workflow creates it, else None."""
    uri = tracking_uri(NASGEP_CONFIG)
    if uri is None or not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def prepared(dataset: str):
    """The dataset summary: it orders jobs after the download, and a changed dataset
    setting (which reruns `nasgep prepare`) reruns what reads the data. (As an ancient
    input it would hide such changes: Snakemake does not check the parameters of a job
    whose ancient input is being remade.)"""
    return result("prepare").format(dataset=dataset)


def settings(**sections) -> str:
    """Canonical JSON of the config values a job's result depends on, used as a param so
    that a changed value reruns exactly the jobs it affects."""
    return json.dumps(sections, sort_keys=True, default=str)


def _without(mapping, *keys) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def dataset_settings(dataset: str) -> dict:
    return _without(NASGEP_CONFIG["datasets"][dataset], "label")


def search_settings(dataset: str) -> str:
    """Everything a search's result depends on (devices, labels and tracking left out)."""
    return settings(
        gep=NASGEP_CONFIG["gep"],
        search=_without(NASGEP_CONFIG["search"], "devices", "cuda_graphs", "dataset"),
        data=dataset_settings(dataset),
    )


def train_settings(dataset: str, variant: str) -> str:
    return settings(
        train=_without(NASGEP_CONFIG["train"], "num_workers"),
        ablation=_without(NASGEP_CONFIG["ablations"][variant], "label"),
        data=dataset_settings(dataset),
    )


def report_settings() -> str:
    """What the tables and figures show besides result files: labels, plan, seeds."""
    return settings(
        labels={d: STUDY.label(d) for d in NASGEP_CONFIG["datasets"]},
        ablations=NASGEP_CONFIG["ablations"],
        workflow=NASGEP_CONFIG["workflow"],
        transfer=[STUDY.transfer_dataset, STUDY.transfer_source],
        seeds=SEEDS,
    )


# -- resources -------------------------------------------------------------------------
def _gpu_count(devices: list[str]) -> int:
    """Distinct GPUs a list of devices occupies: 'cpu' none, 'auto' the top-level
    device, 'all' one (list the GPUs, e.g. [cuda:0, cuda:1], to reserve several). A GPU
    listed twice ([cuda:0, cuda:0]: two workers sharing it) counts once."""
    gpus = set()
    for device in devices:
        if device == "auto":
            device = NASGEP_CONFIG["device"]
        if device != "cpu":
            gpus.add("cuda:0" if device in ("cuda", "auto") else device)
    return len(gpus)


SEARCH_GPUS = _gpu_count(list(NASGEP_CONFIG["search"]["devices"]))
SEARCH_THREADS = max(1, len(NASGEP_CONFIG["search"]["devices"]))
# the budget plus 10 % and half an hour for start-up and writing results (SLURM walltime)
SEARCH_RUNTIME = int(math.ceil(NASGEP_CONFIG["search"]["budget_hours"] * 66)) + 30
TRAIN_GPUS = _gpu_count([NASGEP_CONFIG["device"]])
TRAIN_THREADS = NASGEP_CONFIG["train"]["num_workers"] + 1


# -- the plan --------------------------------------------------------------------------
def genome_for(wildcards) -> str:
    """The best.json an ablation trains: its source method, same dataset and seed."""
    source = STUDY.source(wildcards.variant)
    return result("search", "best.json").format(
        dataset=wildcards.dataset, method=source, seed=wildcards.seed
    )


def search_results(name: str) -> list[str]:
    """`name` (best.json, history.parquet) of every search and sampling of the study."""
    if name != "best.json":
        return [
            result("search", name).format(dataset=d, method=m, seed=s)
            for d, m, s in STUDY.searches()
            if m != "random"
        ]
    return [
        result("search", name).format(dataset=d, method=m, seed=s)
        for d, m, s in STUDY.searches()
    ]


def training_metrics() -> list[str]:
    return [
        result("train", "metrics.json").format(dataset=d, variant=v, seed=s)
        for d, v in STUDY.trainings()
        for s in SEEDS
    ]


def seed_bests(wildcards) -> list[str]:
    return expand(
        result("search", "best.json"), dataset=wildcards.dataset, method="search", seed=SEEDS
    )


def transfer_metrics() -> list[str]:
    if TRANSFER is None:
        return []
    return [result("transfer", "metrics.json").format(dataset=TRANSFER)]


def transfer_genome(wildcards) -> str:
    if TRANSFER is None:
        raise WorkflowError(
            "the transfer is not configured: set transfer.dataset to an ImageNet folder dataset"
        )
    return result("selected").format(dataset=STUDY.transfer_source)


def table_files() -> list[str]:
    return [f"{R}/{LAYOUT['tables']}/{t}.{ext}" for t in TABLES for ext in TABLE_FORMATS]


def figure_files() -> list[str]:
    return [
        f"{R}/{LAYOUT['figures']}/{name}.{ext}"
        for name in STUDY.figure_names()
        for ext in FIGURE_FORMATS
    ]


def cell_files() -> list[str]:
    return expand(
        result("cells", "{cell}.{ext}"),
        dataset=STUDY.search_datasets,
        cell=("normal", "reduction"),
        ext=FIGURE_FORMATS,
    )


def table_inputs() -> list[str]:
    histories = {
        result("search", "history.parquet").format(dataset=d, method="search", seed=s)
        for d in [*STUDY.search_datasets, STUDY.transfer_source]
        for s in SEEDS
    }
    return training_metrics() + sorted(histories) + transfer_metrics()


def figure_inputs() -> list[str]:
    ablation_metrics = [
        result("train", "metrics.json").format(
            dataset=STUDY.ablation_dataset, variant=v, seed=s
        )
        for v in STUDY.ablations
        for s in SEEDS
    ]
    return search_results("history.parquet") + ablation_metrics


def all_targets() -> list[str]:
    return (
        search_results("best.json")
        + training_metrics()
        + transfer_metrics()
        + table_files()
        + figure_files()
        + cell_files()
    )
