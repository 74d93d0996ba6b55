"""MLflow tracking with the sqlite backend (the file store is gone in MLflow 3.13+).

One store per study (``<results_dir>/mlflow.db`` unless ``tracking.uri`` says otherwise),
created once by ``nasgep track init`` before the workflow's parallel jobs start. Runs
started by hand at once on a new store (seeds in parallel) open a sqlite store one at a
time (:func:`_one_opener`): its first-time schema creation races. Experiments are per
study part (search, random, ablation, transfer, train); run names say dataset, variant
and seed.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .datafiles import LIST_FILES
from .errors import UserError, clip
from .study import LAYOUT


def tracking_uri(config: Mapping) -> str | None:
    """The configured MLflow URI, or None when tracking is off."""
    tracking = config["tracking"]
    if not tracking["enabled"]:
        return None
    if tracking["uri"]:
        return tracking["uri"]
    db = Path(config["results_dir"]).resolve() / LAYOUT["tracking"]
    return f"sqlite:///{db}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute), else None."""
    name = _sqlite_name(uri)
    return None if name is None else Path(name)


def _sqlite_name(uri: str) -> str | None:
    """The file name a ``sqlite:///`` URI gives, as written (``''`` for none), without
    SQLAlchemy's ``?mode=ro`` options; None for any other URI."""
    prefix = "sqlite:///"
    return uri[len(prefix):].split("?", 1)[0] if uri.lower().startswith(prefix) else None


def flatten(mapping: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{'search': {'lr': 0.1}} -> {'search.lr': 0.1}`` for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


#: Experiments of a study, named ``<name>/<part>``.
EXPERIMENTS: tuple[str, ...] = ("search", "random", "ablation", "transfer", "train")

#: MLflow's experiment type: model training, not a GenAI app. (It does not change where
#: MLflow 3.17's UI lands: that is the GenAI / Model training switch, which the addresses
#: of :func:`runs_view_url` set.)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def runs_view_url(base_url: str, experiment_id: str, charts: bool = False) -> str:
    """The MLflow UI page with the runs of one experiment (the table, or with ``charts``
    the metric charts that compare them), in the UI's "Model training" mode."""
    query = "workflowType=machine_learning" + ("&compareRunsMode=CHART" if charts else "")
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def init_store(config: Mapping) -> str | None:
    """Create the tracking database and the study's experiments once (idempotent);
    return the URI, or None when tracking is off."""
    uri = tracking_uri(config)
    if uri is None:
        return None
    _prepare(uri)
    import mlflow

    with _store_errors(uri), _one_opener(uri):
        client = mlflow.MlflowClient(tracking_uri=uri)
        for part in EXPERIMENTS:
            experiment_id = ensure_experiment(client, config, part)
            for key, value in EXPERIMENT_TAGS.items():  # stores made before the tag existed
                client.set_experiment_tag(experiment_id, key, value)
    return uri


class TrackingError(UserError):
    """A tracking store that cannot be opened; names the URI."""


@contextlib.contextmanager
def _one_opener(uri: str) -> Iterator[None]:
    """While a process opens a sqlite store to write to it (MLflow creates or upgrades its
    tables then, and the study's experiments are made), it holds an exclusive ``flock`` on
    ``.<database name>.lock`` beside it. Two searches started at once on a new store raced:
    one stopped with 'cannot open the MLflow store (Online migration expected to match one
    row ...)' after an alembic warning. Other stores (a server) order writers themselves."""
    import fcntl

    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock = db.parent / f".{db.name}.lock"
    try:    # as the umask allows: a group's shared store is opened by each of its users
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except PermissionError:     # another user's lock file, not writable by this one: flock needs no write
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _made_whole(db)
        yield
    finally:
        os.close(fd)


def _made_whole(db: Path) -> None:
    """Make a new sqlite store's tables in a temporary file beside it (``.<name>.tmp.<PID>``),
    moved into place once MLflow made them all, under :func:`_one_opener`'s lock: a run
    stopped at once while they were made (a second Ctrl-C, ``kill -9``, scancel's SIGKILL)
    left a half-migrated store that no later run could open ('duplicate column name: step',
    'table _alembic_tmp_tags already exists'), and its ``--resume`` failed. Now it leaves
    that temporary file only, which the next opener removes (it holds the lock: its maker
    is gone). An existing store is left to MLflow."""
    if os.path.lexists(db):
        return
    for left in db.parent.glob(f".{glob.escape(db.name)}.tmp.*"):
        left.unlink(missing_ok=True)
    import mlflow

    tmp = db.with_name(f".{db.name}.tmp.{os.getpid()}")
    try:    # MLflow's public way to have a store made: its client opens it (tables, default experiment)
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """Opening the store: an unsupported or unreachable ``tracking.uri`` is one line."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - MLflow raises its own exception types, SQLAlchemy others
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        db = sqlite_path(uri)
        if db is not None and any(sign in reason for sign in HALF_MADE):
            # made before stores were made whole (a run stopped while MLflow made the tables)
            raise TrackingError(f"{db}: a half-made MLflow store ({clip(reason, 120)}), left by a run stopped while "
                                "its tables were made; move it aside (the runs' own files keep every result) "
                                "and the next run makes a new one") from None
        raise TrackingError(f"tracking.uri {clip(uri)!r}: cannot open the MLflow store ({clip(reason, 160)}); "
                            f"set tracking.enabled: false to run without tracking") from None


#: what MLflow says opening a store whose first migration was stopped halfway
HALF_MADE: tuple[str, ...] = ("_alembic_tmp_", "duplicate column name")


def experiment_ids(config: Mapping) -> dict[str, str]:
    """``{part: experiment id}`` of the study's experiments that exist in its store."""
    uri = tracking_uri(config)
    if uri is None:
        return {}
    import mlflow

    with _store_errors(uri):
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = {part: client.get_experiment_by_name(f"{config['name']}/{part}") for part in EXPERIMENTS}
    return {part: e.experiment_id for part, e in found.items() if e is not None}


def artifact_location(config: Mapping, part: str) -> str | None:
    """Where experiment ``part`` keeps its artifacts: ``mlartifacts/<part>`` beside a
    local sqlite store (the default one in ``results_dir`` or a ``tracking.uri`` of
    ``sqlite:///...``), never MLflow's fallback ``./mlruns`` in the working directory;
    None (the server decides) for any other store."""
    db = sqlite_path(tracking_uri(config) or "")
    return None if db is None else (db.resolve().parent / "mlartifacts" / part).as_uri()


def ensure_experiment(client, config: Mapping, part: str) -> str:
    """The id of experiment ``<name>/<part>``, created if missing, with its artifacts at
    :func:`artifact_location`."""
    name = f"{config['name']}/{part}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(config, part),
                                     tags=EXPERIMENT_TAGS)


# --------------------------------------------------------------------------- what runs carry

def run_tags(config: Mapping, *, dataset: str, seed: int, method: str, variant: str | None = None,
             **extra: Any) -> dict[str, Any]:
    """The tags every run of a study carries, named alike in every experiment, so the UI
    can filter, group and colour runs by them: ``study`` (the study's name, the parent of
    all its runs), ``dataset``, ``method`` (search, search_nws, random: where the cells
    come from), ``variant`` (the ablation; ``none`` for searches and plain trainings) and
    ``seed``."""
    return {"study": config["name"], "dataset": dataset, "method": method, "variant": variant or "none",
            "seed": seed, **extra}


#: Where the datasets of each kind come from, for MLflow's dataset inputs.
DATASET_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "digits": "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
}


def dataset_input(entry: Mapping, name: str, files: Any = LIST_FILES, **split: Any):
    """An MLflow dataset (name, source, digest) for a config's dataset entry. The digest
    hashes the entry's settings that shape results (not its path), what its files hold
    (:func:`nasgep.datafiles.files_fingerprint`) and ``split`` (purpose, and the seed of a
    search's validation split), so runs on the same images show the same dataset in the UI
    and other images, another split or setting show another."""
    import hashlib
    import json

    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import HTTPDatasetSource, LocalArtifactDatasetSource

    from .datafiles import data_settings, files_fingerprint

    settings = {k: v for k, v in data_settings(entry).items() if v is not None}    # a moved folder: the same
    if files is LIST_FILES:
        files = files_fingerprint(entry, parts=("train", "val"))      # other images: another dataset
    parts = [settings, split] + ([files] if files is not None else [])    # built-in data: as before
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    if entry["kind"] in DATASET_URLS and not entry.get("path"):
        source = HTTPDatasetSource(DATASET_URLS[entry["kind"]])
    else:
        source = LocalArtifactDatasetSource(str(Path(entry.get("path") or ".").resolve()))
    return MetaDataset(source, name=name, digest=digest.hexdigest()[:8])


def genome_text(genome, limit: int = 500) -> str:
    """A genome as one short line for an MLflow param: each cell's expression over its
    genes, then the genes (``normal cat(g1, g2) g1=add(sep_3x3(h1), h2) ...``)."""
    parts = []
    for which in ("normal", "reduction"):
        cell = getattr(genome, which)
        genes = " ".join(f"{gid}={cell.gene_tree(gid)}" for gid in dict.fromkeys(cell.coding_genes()))
        parts.append(f"{which} {cell.tree()} {genes}".strip())
    text = " | ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prepare(uri: str) -> None:
    """:func:`_check_uri`, then the folder of a sqlite store made."""
    _check_uri(uri)
    _check_writable(uri)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    # quiet the MLflow banner about the default artifact location
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # and its two INFO lines on a new store ("Creating initial MLflow database tables...",
    # "Updating database tables") among a search's progress lines; its warnings stay
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _check_uri(uri: str) -> None:
    """Check ``uri`` before MLflow opens it, writing nothing: a folder store (which MLflow 3
    refuses), a sqlite path that is a folder or another file, or a server that does not
    answer (MLflow would retry for minutes) is one line at once."""
    from urllib.parse import urlparse

    try:
        scheme = urlparse(uri).scheme.lower()
    except ValueError as e:    # 'http://[::1': an unclosed IPv6 address
        raise TrackingError(f"tracking.uri {clip(uri)!r} is not a valid URI ({e})") from None
    if uri.lower() == "databricks" or scheme == "databricks":
        return     # a Databricks workspace: MLflow's own
    if scheme in ("", "file"):
        raise TrackingError(f"tracking.uri {clip(uri)!r} is a folder store, which MLflow no longer opens; use a "
                            f"database such as 'sqlite:///path/mlflow.db' (unset tracking.uri for the study's "
                            f"own), a server's http(s):// address, or tracking.enabled: false")
    if scheme in ("http", "https"):
        _check_server(uri)
    name = _sqlite_name(uri)
    if scheme == "sqlite" and (name is None or name.strip() in ("", ":memory:")):
        # 'sqlite://', 'sqlite:///': SQLAlchemy's in-memory database, lost when the run ends
        raise TrackingError(f"tracking.uri {clip(uri)!r} names no database file (an in-memory store that "
                            f"keeps nothing); write e.g. 'sqlite:///results/mlflow.db', or unset it")
    if name is not None:
        if name.endswith("/"):
            raise TrackingError(f"tracking.uri {clip(uri)!r} ends in '/'; name the database file, e.g. "
                                f"'sqlite:///{Path(name) / 'mlflow.db'}'")
        _check_database_file(uri, Path(name))


def check_store(config: Mapping, writes: bool = False) -> None:
    """The quick checks of the tracking store (no MLflow import, nothing written), made by a
    run before it does any work: a store that cannot be opened would otherwise fail after it (and MLflow
    retries an unusable sqlite file for minutes first). ``writes``: a run will log to it."""
    uri = tracking_uri(config)
    if uri is not None:
        _check_uri(uri)
        if writes:
            _check_writable(uri)


def _check_writable(uri: str) -> None:
    """A sqlite store this user cannot write (the file, or the folder SQLite keeps its
    journal in, or the first folder that exists on the way to it) is one line at once:
    MLflow retried a read-only store for close to two minutes before it failed."""
    db = sqlite_path(uri)
    if db is None:
        return
    folder = db.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    for path, mode in ((db, os.W_OK), (folder, os.W_OK | os.X_OK)):
        # a file where a folder is needed is named by the folder's making
        if (path.is_file() if path == db else path.is_dir()) and not os.access(path, mode):
            raise TrackingError(f"tracking.uri {clip(uri)!r}: cannot write {path} (read-only, or not yours); "
                                "make it writable, set tracking.uri to another database, or "
                                "tracking.enabled: false")


#: The first bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def _check_database_file(uri: str, db: Path) -> None:
    if db.is_dir():
        raise TrackingError(f"tracking.uri {clip(uri)!r}: {db} is a folder; name the database file, e.g. "
                            f"'sqlite:///{db / 'mlflow.db'}'")
    if db.is_file():
        with db.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER[:len(head)]:
            raise TrackingError(f"tracking.uri {clip(uri)!r}: {db} is no SQLite database (another file of that "
                                "name); name another file, or move it away")


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """One quick request to an MLflow server's ``/health``: no answer at all (refused,
    unknown host, timed out) is an error, and so is a web server that knows neither
    ``/health`` nor MLflow's REST API (404 on both: another service at that address).
    Any other answer (200, or 401/403/302 from an auth proxy) is left to MLflow."""
    import requests

    base = uri.rstrip("/")
    try:
        if requests.get(f"{base}/health", timeout=timeout).status_code != 404:
            return
        # a proxy may forward only the API: ask it for one experiment before refusing
        api = requests.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                           timeout=timeout)
        if api.status_code != 404:
            return
        raise TrackingError(f"tracking.uri {clip(uri)!r}: a web server answers there, but not MLflow's "
                            f"(404 on /health and on the REST API); fix the address (a path prefix?), "
                            f"or set tracking.enabled: false")
    except requests.Timeout:
        why = f"no answer within {timeout:g} s"
    except requests.ConnectionError:
        why = "connection refused or host unknown"
    except requests.RequestException as e:
        why = type(e).__name__
    raise TrackingError(f"tracking.uri {clip(uri)!r}: the MLflow server does not answer ({why}); start it, "
                        f"fix the address, or set tracking.enabled: false")


class Run:
    """A thin handle over an active MLflow run; every method is a no-op when disabled."""

    def __init__(self, mlflow_module=None):
        self._mlflow = mlflow_module
        #: set by a caller whose run, reopened finished, trained nothing new (a finished
        #: training tested again): the run keeps its end time, so the UI's Duration stays
        #: the training's, not the span up to the rerun
        self.nothing_new = False

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    @property
    def run_id(self) -> str | None:
        """The MLflow run id (stored in a search checkpoint so a resumed search continues it)."""
        if self._mlflow is None:
            return None
        run = self._mlflow.active_run()
        return run.info.run_id if run else None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._mlflow is not None:
            clean = {k: float(v) for k, v in metrics.items() if v is not None}
            self._mlflow.log_metrics(clean, step=step)

    def lacks_steps(self, key: str, steps: Iterable[int]) -> list[int]:
        """Those of ``steps`` at which the run holds no value of metric ``key`` (none when
        tracking is off): what a run stopped between its checkpoint and its logging lacks."""
        steps = list(steps)
        if self._mlflow is None or not steps:      # (a fresh training: no query)
            return []
        logged = {m.step for m in self._mlflow.MlflowClient().get_metric_history(self.run_id, key)}
        return [step for step in steps if step not in logged]

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._mlflow is not None:
            flat = flatten(params)
            self._mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._mlflow is not None:
            self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_dataset(self, entry: Mapping, name: str, context: str, files: Any = LIST_FILES, **split: Any) -> None:
        """The MLflow dataset input of a config's dataset entry (:func:`dataset_input`) in
        ``context`` (search, final, ...); built only for an active run, so a run without
        tracking never imports MLflow. ``files``: the fingerprint of its training and test
        images when the caller listed them already."""
        if self._mlflow is not None:
            self._mlflow.log_input(dataset_input(entry, name, files, **split), context=context)

    def log_dict(self, data: Mapping, artifact_file: str) -> None:
        if self._mlflow is not None:
            self._mlflow.log_dict(dict(data), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._mlflow is not None and Path(path).exists():
            if Path(path).is_dir():
                self._mlflow.log_artifacts(str(path), artifact_path)
            else:
                self._mlflow.log_artifact(str(path), artifact_path)


def _run_exists(client, run_id: str) -> bool:
    """The run is in the store and not deleted (a run deleted in the UI is still found,
    but MLflow refuses to start it again: the search or training logs to a new run)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.lifecycle_stage != "deleted"


#: the tag naming the folder of a run's results (a search's or training's ``--out``)
FOLDER_TAG = "nasgep.folder"


def _close_orphans(client, experiment_id: str, folder: str) -> None:
    """Mark KILLED the runs of ``folder`` that MLflow still shows RUNNING: their process
    died (kill -9, a lost node) before it could end them, since the caller holds the
    folder's lock. (A run of the folder that had saved its id is resumed instead.)"""
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        if run.data.tags.get(FOLDER_TAG) == folder:
            client.set_terminated(run.info.run_id, status="KILLED")


def finished_run_of(config: Mapping, experiment: str, params: Mapping[str, Any]) -> bool:
    """Whether ``experiment`` holds a FINISHED run with these ``params`` (True with tracking
    disabled): a verb that has nothing new to log asks it, so that a first log that failed
    (server down, disk full) is made up for, and a logged one is not shown twice. The run is
    told by what it logged, not by its folder, so a study moved or pulled with its store
    (and runs logged before folders were tagged) are found. Raises :class:`TrackingError`
    when the store cannot be read."""
    uri = tracking_uri(config)
    if uri is None:
        return True
    _prepare(uri)
    import mlflow

    query = " and ".join(["attributes.status = 'FINISHED'",
                          *(f"params.`{k}` = '{_quoted(str(v))}'" for k, v in params.items())])
    with _store_errors(uri), _one_opener(uri):
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment_id = ensure_experiment(client, config, experiment)
        runs = client.search_runs([experiment_id], filter_string=query, max_results=1)
    return bool(runs)


def _quoted(value: str) -> str:
    """``value`` inside single quotes of an MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


@contextlib.contextmanager
def start_run(config: Mapping, experiment: str, run_name: str,
              params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None,
              run_id: str | None = None, folder: str | Path | None = None) -> Iterator[Run]:
    """Open an MLflow run in ``experiment`` (or resume ``run_id``); yields a :class:`Run`.
    ``folder``: the run's results folder (held under its lock), tagged on the run; a new
    run of it first marks KILLED the runs of that folder left RUNNING by a killed process.

    With tracking disabled this yields a no-op run, so callers never branch on it.
    """
    uri = tracking_uri(config)
    if uri is None:
        yield Run(None)
        return
    _prepare(uri)
    import mlflow

    ended = None        # the end time of a finished run reopened
    with _store_errors(uri), _one_opener(uri):
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment_id = ensure_experiment(client, config, experiment)
        if run_id is not None and not _run_exists(client, run_id):
            print(f"warning: MLflow run {run_id} is not in {uri} (deleted, or the store was replaced); "
                  "logging to a new run", file=sys.stderr)
            run_id = None
        if run_id is not None:
            info = client.get_run(run_id).info
            ended = info.end_time if info.status == "FINISHED" else None
        if folder is not None:
            folder = str(Path(folder).resolve())
            if run_id is None:
                _close_orphans(client, experiment_id, folder)
    with mlflow.start_run(run_name=run_name, run_id=run_id, experiment_id=experiment_id):
        run = Run(mlflow)
        if params and run_id is None:
            run.log_params(params)
        if tags or folder is not None:
            run.set_tags({**(tags or {}), **({} if folder is None else {FOLDER_TAG: folder})})
        yield run
    if ended is not None and run.nothing_new:
        with _store_errors(uri):
            client.set_terminated(run_id, "FINISHED", end_time=ended)
