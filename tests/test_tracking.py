"""What a training's MLflow run carries, so that ablations compare in the UI without
clicking through runs: tags named alike in every experiment (study, dataset, method,
variant, seed), the dataset as an MLflow dataset input, the genome as an artifact and a
short text param, and per-epoch metrics with step = epoch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasgep.cli import main
from nasgep.space import Genome
from nasgep.tracking import genome_text, run_tags

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yaml"
from genomes import GENOME  # noqa: E402 - shared test data


def test_genome_text_is_one_short_line():
    text = genome_text(Genome.from_dict(GENOME))
    assert text == ("normal cat(add(g2, g1), g1) g1=add(sep_3x3(h1), h2) g2=dw_3x3(pw(h1)) | "
                    "reduction add(g1, g2) g1=add(sep_3x3(h1), dw_3x3(h2)) g2=pw(pw(h2))")
    assert len(genome_text(Genome.from_dict(GENOME), limit=40)) == 40


def test_run_tags_are_the_same_everywhere():
    assert run_tags({"name": "demo"}, dataset="cifar10", seed=2, method="random") == \
        {"study": "demo", "dataset": "cifar10", "method": "random", "variant": "none", "seed": 2}


def test_the_ui_shows_other_images_as_another_dataset(tmp_path):
    import numpy as np

    from nasgep.tracking import dataset_input

    path = tmp_path / "d.npz"
    x = np.zeros((4, 8, 8, 3), np.uint8)
    entry = {"kind": "npz", "path": str(path), "label": "mine"}
    np.savez(path, x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
    first = dataset_input(entry, "mine", purpose="search", seed=0).digest
    assert dataset_input(entry, "mine", purpose="search", seed=0).digest == first
    assert dataset_input(entry, "mine", purpose="search", seed=1).digest != first      # another split
    np.savez(path, x_train=x + 1, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
    assert dataset_input(entry, "mine", purpose="search", seed=0).digest != first      # other images


def small_training(tmp_path: Path) -> tuple[Path, list[str]]:
    """(the study folder, ``nasgep train`` arguments) of a 2-epoch training of GENOME whose
    MLflow store is the study's sqlite database."""
    genome = tmp_path / "best.json"
    genome.write_text(json.dumps({"genome": GENOME, "fitness": 61.0, "method": "search", "seed": 1}))
    store = tmp_path / "study"
    return store, ["train", "--genome", str(genome), "--config", str(DEMO), "--set", f"results_dir={store}",
                   "--set", "datasets.cifar10.max_train=64", "--set", "train.channels=4", "--epochs", "2",
                   "--variant", "cutout_dp", "--seed", "1", "--out", str(tmp_path / "out"), "--no-progress"]


def test_training_run_carries_what_the_ui_compares(tmp_path):
    import mlflow

    store, args = small_training(tmp_path)
    assert main(args) == 0
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo/ablation")
    (run,) = client.search_runs([experiment.experiment_id])
    tags = run.data.tags
    assert {k: tags[k] for k in ("study", "dataset", "method", "variant", "seed")} == \
        {"study": "demo", "dataset": "cifar10", "method": "search", "variant": "cutout_dp", "seed": "1"}
    assert run.data.params["genome"] == genome_text(Genome.from_dict(GENOME))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "genome.json" in artifacts
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "cifar10"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "train"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == [1, 2]
    assert "test_error" in run.data.metrics


def test_a_resumed_or_rerun_training_logs_to_its_own_run(tmp_path, monkeypatch, capsys):
    """Each resume of a training started a new MLflow run (the interrupted one left FAILED,
    or RUNNING after kill -9), and each rerun of a finished training added another
    FINISHED run with test_error: the ablation chart showed duplicates. The run id now
    travels in checkpoint.pt, as a search's does in its checkpoints."""
    import mlflow

    from nasgep.train import Trainer

    store, args = small_training(tmp_path)
    evaluate = Trainer.evaluate

    def interrupted(self, split):          # Ctrl-C at the test, after both epochs
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "evaluate", interrupted)
    assert main(args) == 130
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    assert main(args) == 0      # resumed: tested
    assert main(args) == 0      # run again: tested again
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo/ablation")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    # a run of this folder left RUNNING by a process killed before its first checkpoint (it
    # had no id to resume) is marked KILLED by the next new run of the folder; others stay
    folder = str((tmp_path / "out").resolve())
    assert run.data.tags["nasgep.folder"] == folder
    orphan = client.create_run(experiment.experiment_id, tags={"nasgep.folder": folder})
    elsewhere = client.create_run(experiment.experiment_id, tags={"nasgep.folder": str(tmp_path / "other")})
    assert main([*args, "--restart"]) == 0
    status = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert status[orphan.info.run_id] == "KILLED" and status[elsewhere.info.run_id] == "RUNNING"
    assert status[run.info.run_id] == "FINISHED" and list(status.values()).count("FINISHED") == 2
    # its run deleted in the UI: MLflow refuses to start it again (it was a traceback); a new one
    (latest,) = [r for r in client.search_runs([experiment.experiment_id])
                 if r.info.status == "FINISHED" and r.info.run_id != run.info.run_id]
    client.delete_run(latest.info.run_id)
    assert main(args) == 0
    assert "deleted, or the store was replaced" in capsys.readouterr().err
    assert len(client.search_runs([experiment.experiment_id])) == 4      # (deleted runs are not listed)
    assert main(args) == 0      # its checkpoint now names the new run: tested again in it
    assert len(client.search_runs([experiment.experiment_id])) == 4


def test_the_same_sample_again_logs_no_second_run(tmp_path, capsys):
    """`nasgep sample` with the same settings and seed writes nothing, but it logged a
    second MLflow run each time (the workflow's adoption step reruns every sample)."""
    import mlflow

    store = tmp_path / "study"
    args = ["sample", "--config", str(DEMO), "--set", f"results_dir={store}", "--seed", "0",
            "--out", str(tmp_path / "r0")]
    assert main(args) == 0
    best = (tmp_path / "r0" / "best.json").stat().st_mtime_ns
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (tmp_path / "r0" / "best.json").stat().st_mtime_ns == best
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo/random").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.data.tags["nasgep.folder"] == str((tmp_path / "r0").resolve())
    # a sample whose log failed (the run ended FAILED, or none was made) is logged the next
    # time, once: "nothing to do" had left it out of the MLflow UI for good
    client.set_terminated(run.info.run_id, status="FAILED")
    assert main(args) == 0
    assert "logging it to MLflow, where it is missing" in capsys.readouterr().out
    assert (tmp_path / "r0" / "best.json").stat().st_mtime_ns == best
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    runs = client.search_runs([experiment])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    # the run is told by what it logged, not by its folder's path: a study moved or pulled
    # with its store, or a run logged before folders were tagged, is not logged again
    (finished,) = [r for r in runs if r.info.status == "FINISHED"]
    client.delete_tag(finished.info.run_id, "nasgep.folder")
    assert main(args) == 0 and "nothing to do" in capsys.readouterr().out
    assert len(client.search_runs([experiment])) == 2
    # another seed's sample in the same store is its own: seed 1 into r1, then seed 0's
    # folder is not taken for it
    assert main([*args[:-4], "--seed", "1", "--out", str(tmp_path / "r1")]) == 0
    assert main(args) == 0 and "nothing to do" in capsys.readouterr().out


def test_the_database_file_of_a_sqlite_uri():
    """`track ui` looked for a file named 'q.db?mode=ro' and said to run init, which had made q.db."""
    from nasgep.tracking import sqlite_path

    assert sqlite_path("sqlite:////data/q.db?mode=ro") == Path("/data/q.db")
    assert sqlite_path("SQLite:///results/mlflow.db") == Path("results/mlflow.db")
    assert sqlite_path("http://host:5000") is None


def test_track_ui_on_a_server_store_points_at_the_server(tmp_path, capsys, monkeypatch):
    """A tracking.uri of an MLflow server: `track ui` looked the experiments up there and
    then started a local `mlflow ui` with the server as its backend store. The server is
    its own UI: once it answers (the store check, a 10 s probe), its address is printed."""
    from nasgep import tracking

    probed = []
    monkeypatch.setattr(tracking, "check_store", lambda config, writes=False: probed.append(config["tracking"]["uri"]))
    monkeypatch.setattr(tracking, "experiment_ids", lambda config: pytest.fail("asked the server for experiments"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: lab\nresults_dir: r\ntracking: {enabled: true, uri: 'http://127.0.0.1:9'}\n")
    assert main(["track", "ui", "--config", str(cfg)]) == 0
    assert probed == ["http://127.0.0.1:9"]
    out = capsys.readouterr().out
    assert "the study's store is the MLflow server http://127.0.0.1:9: its UI is that address" in out
    assert "lab/<part>" in out and "mlflow ui" not in out


STARTS_A_RUN = """
import sys, time
from pathlib import Path
from nasgep import tracking
from nasgep.config import load_config

results, n = sys.argv[1], sys.argv[2]
config = load_config(None, [f"results_dir={results}", "name=race"])
print("ready", flush=True)
while not (Path(results).parent / "go").exists():
    time.sleep(0.001)
with tracking.start_run(config, "search", f"seed{n}", params={"seed": n}) as run:
    run.log_metrics({"best_fitness": 1.0}, step=0)
"""


def test_runs_started_at_once_on_a_new_store_all_log(tmp_path):
    """Seeds searched in parallel on a new results_dir (no `nasgep track init` first):
    MLflow's first-time schema creation raced, and runs stopped with 'cannot open the
    MLflow store (Online migration expected to match one row ...)' or '(duplicate column
    name: step)', some leaving a store no later run could open ('table _alembic_tmp_tags
    already exists')."""
    import subprocess
    import sys

    import mlflow

    script = tmp_path / "start.py"
    script.write_text(STARTS_A_RUN)
    results = tmp_path / "study" / "results"
    results.parent.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(results), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(3)]
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n"
        (results.parent / "go").touch()                 # all three open the store now
        done = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-600:] for _, err in done]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("race/search")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["seed0", "seed1", "seed2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    # MLflow's INFO lines about creating the tables do not show among a run's progress lines
    assert not [err for _, err in done if "database tables" in err], [err[-600:] for _, err in done]


DIES_MAKING_THE_STORE = """
import os, sys
import sqlalchemy
from nasgep import tracking
from nasgep.config import load_config

config = load_config(None, [f"results_dir={sys.argv[1]}", "name=cut"])

@sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
def cut_short(conn, cursor, statement, *args):
    # killed (kill -9, a second Ctrl-C) amid MLflow's migrations of the new store
    if statement.lstrip().upper().startswith("CREATE TABLE _ALEMBIC_TMP_"):
        os._exit(130)

with tracking.start_run(config, "search", "seed0", params={"seed": 0}):
    pass
"""


def test_a_run_killed_while_it_makes_a_new_store_leaves_none_half_made(tmp_path):
    """A search stopped at once (a second Ctrl-C, kill -9, scancel's SIGKILL) while MLflow
    made a new sqlite store's tables left a store no later run could open ('table
    _alembic_tmp_tags already exists', or an out-of-date schema): its --resume failed
    with 'cannot open the MLflow store'. The next run now makes the store afresh."""
    import subprocess
    import sys

    from nasgep import tracking
    from nasgep.config import load_config

    script = tmp_path / "cut.py"
    script.write_text(DIES_MAKING_THE_STORE)
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, str(script), str(results)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 130, done.stderr[-600:]
    config = load_config(None, [f"results_dir={results}", "name=cut"])
    with tracking.start_run(config, "search", "seed0", params={"seed": 0}) as run:
        run.log_metrics({"best_fitness": 1.0}, step=0)
    assert tracking.finished_run_of(config, "search", {"seed": 0})
    assert sorted(p.name for p in results.iterdir() if p.name.startswith(".")) == [".mlflow.db.lock"]


def test_a_store_whose_lock_file_is_another_users_still_opens(tmp_path, monkeypatch):
    """In a store shared by a group, `.mlflow.db.lock` is one user's; another user who may
    not write it still takes the lock (flock needs no write access) and logs."""
    import os

    import mlflow

    from nasgep import tracking
    from nasgep.config import load_config

    config = load_config(None, [f"results_dir={tmp_path}", "name=shared"])
    with tracking.start_run(config, "search", "first", params={"seed": 0}):
        pass
    real_open = os.open

    def other_user(path, flags, *args, **kwargs):
        if str(path).endswith(".mlflow.db.lock") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", other_user)
    with tracking.start_run(config, "search", "second", params={"seed": 1}) as run:
        run.log_metrics({"best_fitness": 1.0}, step=0)
    monkeypatch.setattr(os, "open", real_open)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("shared/search")
    assert sorted(r.info.run_name for r in client.search_runs([experiment.experiment_id])) == ["first", "second"]


def test_a_store_half_made_before_stores_were_made_whole_is_named_with_the_remedy(tmp_path):
    """A store whose first migration was cut short by an older nasgep (or by MLflow on its
    own) cannot be opened: the line says it is half made and to move it aside."""
    import subprocess
    import sys

    from nasgep import tracking
    from nasgep.config import load_config

    script = tmp_path / "cut.py"
    db = tmp_path / "results" / "mlflow.db"
    db.parent.mkdir()
    script.write_text(DIES_MAKING_THE_STORE.replace(
        'with tracking.start_run(config, "search", "seed0", params={"seed": 0}):\n    pass\n',
        f'import mlflow\nmlflow.MlflowClient(tracking_uri="sqlite:///{db}").search_experiments()\n'))
    done = subprocess.run([sys.executable, str(script), str(db.parent)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 130 and db.exists(), done.stderr[-600:]
    config = load_config(None, [f"results_dir={db.parent}", "name=cut"])
    with pytest.raises(tracking.TrackingError, match=rf"^{db}: a half-made MLflow store .*move it aside"):
        with tracking.start_run(config, "search", "seed0", params={"seed": 0}):
            pass


def test_a_training_stopped_between_a_checkpoint_and_its_metrics_logs_them_on_resume(tmp_path, metrics_stop_at):
    """An epoch's checkpoint is written before its metrics go to MLflow: a training stopped
    in between went on after that epoch, and its curve had a gap there. The resume logs
    the checkpointed epochs the run lacks, once."""
    import mlflow

    store, args = small_training(tmp_path)
    metrics_stop_at(1)
    assert main(args) == 130
    metrics_stop_at(None)
    assert main(args) == 0
    assert main(args) == 0      # run again: tested again, nothing logged twice
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("demo/ablation").experiment_id])
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss")) == [1, 2]


def test_a_finished_training_tested_again_keeps_its_runs_duration(tmp_path):
    """A finished training run again (its workflow mark deleted, a study adopted after a
    DVC pull) is tested again in its own run; MLflow then ended the run anew, and the UI's
    Duration of a 9-second training read 8 minutes, the time up to the rerun."""
    import time

    import mlflow

    store, args = small_training(tmp_path)
    assert main(args) == 0
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo/ablation").experiment_id
    (first,) = client.search_runs([experiment])
    time.sleep(1.5)             # MLflow's end times are in ms: a later end would show
    assert main(args) == 0
    (again,) = client.search_runs([experiment])
    assert again.info.run_id == first.info.run_id and again.info.status == "FINISHED"
    assert again.info.end_time == first.info.end_time
    assert len(client.get_metric_history(again.info.run_id, "test_error")) == 2      # it was tested again
