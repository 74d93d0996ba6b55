# Glue: read and validate the config, and name the study plan (nasgep.study) for the rules.
import copy
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
from nasgep import study as plan
from nasgep.study import LAYOUT, METHODS, WEIGHT_SHARING, Study
from nasgep.tracking import sqlite_path, tracking_uri

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


def config_args(wildcards, output) -> str:
    """The rules' ``--config`` arguments as a param Snakemake treats as derived (it reads
    ``output``): which files carry the config is no reason to rerun a job; what they say
    is (each rule's ``settings`` param holds the values it depends on)."""
    return CONFIG_ARGS

try:  # cross-references (dataset names, gene limits) and every default, as the verbs see them
    NASGEP_CONFIG = nasgep_validate(
        copy.deepcopy(dict(config)), " + ".join(CONFIG_PATHS) or "config"
    )
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}") from None

def _relative_root(results_dir: str) -> Path:
    """results_dir relative to the working directory when inside it: Snakemake keys its job
    records by the output paths as spelled, so an absolute spelling of the same folder
    would make every run look new (its config changes then unseen)."""
    root = Path(results_dir)
    if root.is_absolute():
        try:
            return root.relative_to(Path.cwd())
        except ValueError:
            pass
    return root


STUDY = Study(NASGEP_CONFIG, root=_relative_root(NASGEP_CONFIG["results_dir"]))
R = str(STUDY.root)
SEEDS = STUDY.seeds
TRANSFER = STUDY.transfer_dataset
ENV = "../envs/nasgep.yaml"
RESOURCES = plan.resources(NASGEP_CONFIG)

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


def result(key: str, name: str = "") -> str:
    return plan.pattern(STUDY, key, name)


def log_path(name: str) -> str:
    return f"{R}/{LAYOUT['logs']}/{name}.log"


def run_log(key: str, method: str | None = None) -> str:
    """The log of the job that makes the run ``LAYOUT[key]`` (a search rule's ``method``
    filled in): under logs/, at the run's own place in the results."""
    return log_path(LAYOUT[key] if method is None else LAYOUT[key].replace("{method}", method))


def search_mark(method: str) -> str:
    """The mark of a search rule's job (``method`` fixed by the rule)."""
    return result("search", plan.DONE).replace("{method}", method)


def tracking_input() -> list:
    """The sqlite store as an ancient input (its later writes never trigger reruns);
    nothing when tracking is off or goes to a server."""
    db = tracking_db()
    return [ancient(db)] if db else []


def tracking_db() -> str | None:
    """Path of the study's sqlite store when the workflow creates it, else None."""
    uri = tracking_uri(NASGEP_CONFIG)
    path = sqlite_path(uri) if uri is not None else None
    if path is None:
        return None
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


def weight_sharing_flag(method: str) -> str:
    return "" if WEIGHT_SHARING[method] else "--set search.weight_sharing=false"


def restart_flag(rule_name: str):
    """A param: ``--restart`` for a job the user forced (--forcerun/--force/--forceall),
    nothing otherwise. The verbs decide the rest from the settings recorded in the folder.
    It reads ``output``, so Snakemake treats it as derived: it never counts as a changed
    param in the next run."""

    def flag(wildcards, output) -> list[str]:
        dag = workflow.dag_settings
        named = set(dag.forcerun) | (set(dag.targets) if dag.forcetargets else set())
        forced = dag.forceall or rule_name in named or any(f in named for f in output)
        return ["--restart"] if forced else []

    return flag


def attempts_log(wildcards, output) -> str:
    """Where a long job appends its log, every attempt (a crash, a resume, a move aside),
    beside its run's folder: Snakemake deletes a job's ``log:`` before it runs it again.
    A derived param (it reads ``output``), so never a reason to rerun."""
    return os.path.dirname(output[0]) + ".log"


#: a long job's command wrapped so its log goes to ``log:`` and is appended to its attempts
#: log (bash runs the rules with pipefail: the job fails when the verb does). The tee ignores
#: SIGINT and SIGTERM: Ctrl-C (and scancel) signal the whole process group, and a tee dead
#: first loses the verb's last lines ("interrupted", where it stopped); it ends with the verb.
ATTEMPTS = ("(date -u +'== %FT%TZ'; {command}) 2>&1 "
            "| (trap '' INT TERM; exec tee -a {{params.attempts:q}}) > {{log:q}}")


def beside(paths, name: str) -> list[str]:
    """``name`` in the folder of each of ``paths`` (best.json beside a job's mark)."""
    return [os.path.join(os.path.dirname(p), name) for p in paths]


def source_run(wildcards) -> str:
    """The mark of the search (or sampling) whose best.json an ablation trains: its
    source method, same dataset and seed."""
    source = STUDY.source(wildcards.variant)
    return plan.job_mark(STUDY, "search", dataset=wildcards.dataset, method=source, seed=wildcards.seed)


def transfer_genome(wildcards) -> str:
    if TRANSFER is None:
        raise WorkflowError(
            "the transfer is not configured: set transfer.dataset to an ImageNet folder dataset"
        )
    return result("selected").format(dataset=STUDY.transfer_source)
