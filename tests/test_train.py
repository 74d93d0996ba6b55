"""The trainer (learning, schedule, drop-path ramp, failures, exact resume, checkpoints)
and the ``nasgep train`` / ``nasgep prepare`` commands."""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from nasgep.augment import AugmentSettings
from nasgep.cli import main
from nasgep.config import load_config
from nasgep.data import DataBundle, load_dataset
from nasgep.train import (
    CandidateFailure,
    OutOfMemory,
    Trainer,
    TrainingDiverged,
    TrainSettings,
    candidate_training_settings,
    training_settings,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yaml"
NO_AUGMENT = AugmentSettings(crop_flip=False, cutout=False, autoaugment=False, normalize=True)
ALL_AUGMENT = AugmentSettings(crop_flip=True, cutout=True, cutout_length=3, autoaugment=True, normalize=True)


class TinyNet(nn.Module):
    """A small conv net with per-sample drop-path after its first block (drawn from the
    global RNG, like nasgep.nn's), recording every rate it is given."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1, stride=2, bias=False),
                                    nn.BatchNorm2d(2 * width), nn.ReLU())
        self.head = nn.Linear(2 * width, num_classes)
        self.rate = 0.0
        self.rates: list[float] = []

    def set_drop_path(self, rate: float) -> None:
        self.rate = rate
        self.rates.append(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        if self.training and self.rate > 0:
            keep = 1 - self.rate
            h = h * torch.empty(h.shape[0], 1, 1, 1, device=h.device).bernoulli_(keep) / keep
        return self.head(self.block2(h).mean(dim=(2, 3)))


@pytest.fixture(autouse=True)
def study_under_tmp_path(tmp_path, monkeypatch):
    """The demo config's results_dir is relative (results/demo): run every test from its
    own tmp_path, so the commands' MLflow store lands there, never in the user's results/."""
    monkeypatch.chdir(tmp_path)


def digits_config(**entry) -> dict:
    return load_config(DEMO, [f"datasets.cifar10.{k}={v}" for k, v in entry.items()])


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset(load_config(DEMO), "cifar10", "search", seed=0)


@pytest.fixture(scope="module")
def small_digits() -> DataBundle:
    return load_dataset(digits_config(max_train=160), "cifar10", "search", seed=0)


def make_trainer(data: DataBundle, settings: TrainSettings, seed: int = 0, init: int = 0) -> Trainer:
    torch.manual_seed(init)
    return Trainer(TinyNet(data.in_channels, data.num_classes), data, settings, seed=seed, progress=False)


# --------------------------------------------------------------------------- learning

def test_one_epoch_on_digits_is_well_above_chance(digits):
    settings = TrainSettings(epochs=1, batch_size=16, lr=0.1, augment=NO_AUGMENT)
    trainer = make_trainer(digits, settings)
    before = trainer.evaluate()["top1"]
    stats = trainer.train_epoch()
    after = trainer.evaluate()
    assert before < 30 and after["top1"] > 60, (before, after)
    assert after["top5"] >= after["top1"] and after["loss"] < 2.0
    assert stats.epoch == 1 and stats.images == len(digits.train) and trainer.done
    with pytest.raises(RuntimeError, match="finished"):
        trainer.train_epoch()


def test_cosine_steps_once_per_epoch_over_the_whole_schedule_and_drop_path_ramps(small_digits):
    epochs = 4
    settings = TrainSettings(epochs=epochs, batch_size=32, lr=0.1, drop_path=0.2, augment=NO_AUGMENT)
    trainer = make_trainer(small_digits, settings)
    seen: list[float] = []
    trainer.model.register_forward_pre_hook(lambda m, a: seen.append(trainer.lr) if m.training else None)
    trainer.fit()
    expected = [0.1 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert [h.lr for h in trainer.history] == pytest.approx(expected)
    per_epoch = len(seen) // epochs
    assert seen == pytest.approx([lr for lr in expected for _ in range(per_epoch)])   # constant within an epoch
    assert trainer.model.rates == pytest.approx([0.2 * e / epochs for e in range(epochs)])
    assert trainer.lr == pytest.approx(0.0, abs=1e-12)                                # ends at the bottom


# --------------------------------------------------------------------------- failures

class PoisonAfter(nn.Module):
    """Returns NaN logits from the ``k``-th training forward on (an injected divergence)."""

    def __init__(self, net: nn.Module, k: int) -> None:
        super().__init__()
        self.net, self.k, self.calls = net, k, 0

    def forward(self, x):
        out = self.net(x)
        self.calls += self.training
        return out * float("nan") if self.training and self.calls >= self.k else out


def test_nan_loss_raises_training_diverged(small_digits):
    settings = TrainSettings(epochs=2, batch_size=32, lr=0.1, augment=NO_AUGMENT)
    trainer = Trainer(PoisonAfter(TinyNet(), k=3), small_digits, settings, progress=False)
    with pytest.raises(TrainingDiverged) as info:
        trainer.train_epoch()
    assert isinstance(info.value, CandidateFailure)
    assert "nan" in info.value.reason and "batch 3" in info.value.reason


def test_out_of_memory_becomes_a_candidate_failure(small_digits):
    class Hungry(TinyNet):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    trainer = Trainer(Hungry(), small_digits, TrainSettings(epochs=1, batch_size=32, lr=0.1), progress=False)
    with pytest.raises(OutOfMemory) as info:
        trainer.train_epoch()
    assert isinstance(info.value, CandidateFailure) and "out of memory" in info.value.reason


class _DiesAt:
    """A dataset whose item 5 kills the DataLoader worker process that reads it, as the
    kernel's OOM killer does."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        if i == 5:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return torch.zeros(2)


def test_a_killed_data_loader_worker_is_the_machines_failure_not_the_candidates(small_digits, monkeypatch):
    """torch's error for a DataLoader worker that died becomes LoaderDied (exit 1, one line,
    'run it again'), never a CandidateFailure: a search recorded the candidate as failed
    for good, dropped it and went on to another result (found by killing one with -9)."""
    from torch.utils.data import DataLoader

    from nasgep.errors import RunFailed
    from nasgep.train import LoaderDied

    with pytest.raises(RuntimeError) as real:      # torch's own wording, which is what is recognised
        list(DataLoader(_DiesAt(), batch_size=4, num_workers=1))
    trainer = Trainer(TinyNet(), small_digits, TrainSettings(epochs=1, batch_size=32, lr=0.1), progress=False)

    def batches():
        raise real.value
        yield

    monkeypatch.setattr(trainer, "_train_batches", batches)
    with pytest.raises(LoaderDied, match=r"data-loading worker process died \(DataLoader worker \(pid.* "
                                         r"(exited unexpectedly|killed by signal)\).*again") as info:
        trainer.train_epoch()
    assert isinstance(info.value, RunFailed) and not isinstance(info.value, CandidateFailure)


def test_a_device_error_is_the_machines_failure_and_out_of_memory_the_candidates(small_digits, monkeypatch):
    """An accelerator error other than out of memory after which the device no longer
    works (an illegal memory access leaves the CUDA context unusable) is DeviceFailed
    (exit 1, 'run it again'), not a CandidateFailure: recorded as the candidate's, every
    later candidate of the search failed the same way and it ended 'extinct' with exit 0.
    Out of memory, and an error after which the device still works (one network's invalid
    launch configuration), stay the candidate's: stopping there, every --resume would stop
    at the same candidate."""
    from nasgep import train as train_module
    from nasgep.errors import RunFailed
    from nasgep.train import DeviceFailed, OutOfMemory

    assert train_module.device_error(torch.device("cpu")) is None     # the probe itself, on a device that works
    monkeypatch.setattr(train_module, "device_error", lambda device: "CUDA error: unspecified")  # a broken context

    trainer = Trainer(TinyNet(), small_digits, TrainSettings(epochs=1, batch_size=32, lr=0.1), progress=False)

    def raises(error):
        def batches():
            raise error
            yield
        return batches

    monkeypatch.setattr(trainer, "_train_batches",
                        raises(torch.AcceleratorError("CUDA error: an illegal memory access was encountered")))
    with pytest.raises(DeviceFailed, match=r"illegal memory access.*again") as info:
        trainer.train_epoch()
    assert isinstance(info.value, RunFailed) and not isinstance(info.value, CandidateFailure)
    monkeypatch.setattr(trainer, "_train_batches", raises(torch.AcceleratorError("CUDA out of memory. Tried")))
    with pytest.raises(OutOfMemory):
        trainer.train_epoch()
    monkeypatch.setattr(train_module, "device_error", lambda device: None)
    monkeypatch.setattr(trainer, "_train_batches",
                        raises(torch.AcceleratorError("CUDA error: invalid configuration argument")))
    with pytest.raises(torch.AcceleratorError):     # the candidate's: the search records it as failed
        trainer.train_epoch()


class _NoMove(TinyNet):
    """A network whose move to the device meets an accelerator error."""

    def to(self, *args, **kwargs):
        raise torch.AcceleratorError("CUDA error: unknown error")


def test_a_device_that_fails_as_a_training_begins_is_the_machines_failure(small_digits, monkeypatch):
    """Moving the network to a device that is gone (a lost GPU, a context broken before)
    ended in torch's traceback, and in a search the candidate was recorded as failed:
    every later one too, and the search ended 'extinct' with exit 0. It is DeviceFailed,
    as an error in an epoch is; an error after which the device works stays as it is."""
    from nasgep import train as train_module
    from nasgep.train import DeviceFailed

    settings = TrainSettings(epochs=1, batch_size=32, lr=0.1)
    monkeypatch.setattr(train_module, "device_error", lambda device: "CUDA error: unknown error")
    with pytest.raises(DeviceFailed, match=r"the device failed \(CUDA error: unknown error\).*run the command again"):
        Trainer(_NoMove(), small_digits, settings, progress=False)
    monkeypatch.setattr(train_module, "device_error", lambda device: None)
    with pytest.raises(torch.AcceleratorError):
        Trainer(_NoMove(), small_digits, settings, progress=False)


# --------------------------------------------------------------------------- exact resume

def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pid, buffers in a["optimizer"]["state"].items():
        assert torch.equal(buffers["momentum_buffer"], b["optimizer"]["state"][pid]["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"] and a["epoch"] == b["epoch"]
    assert torch.equal(a["generator"], b["generator"])


def test_stop_after_epoch_k_and_resume_equals_an_uninterrupted_run(small_digits):
    settings = TrainSettings(epochs=3, batch_size=32, lr=0.1, drop_path=0.3, augment=ALL_AUGMENT)
    straight = make_trainer(small_digits, settings, seed=7)
    straight.fit()

    first = make_trainer(small_digits, settings, seed=7)
    first.train_epoch()
    saved = _roundtrip(first.state_dict())
    del first
    resumed = make_trainer(small_digits, settings, seed=123, init=99)   # other weights and seed, then loaded
    resumed.load_state_dict(saved)
    assert resumed.epoch == 1 and resumed.lr == pytest.approx(0.1 * (1 + math.cos(math.pi / 3)) / 2)
    resumed.fit()

    _assert_same_state(straight.state_dict(), resumed.state_dict())
    assert [h.loss for h in straight.history] == [h.loss for h in resumed.history]
    assert straight.evaluate() == resumed.evaluate()
    assert resumed.model.rates == pytest.approx([0.1, 0.2])


def test_state_dict_is_a_detached_copy(small_digits):
    trainer = make_trainer(small_digits, TrainSettings(epochs=2, batch_size=32, lr=0.1, augment=NO_AUGMENT))
    state = trainer.state_dict()
    trainer.train_epoch()
    assert state["epoch"] == 0
    assert not torch.equal(state["model"]["head.weight"], trainer.model.head.weight.detach())


def test_fit_checkpoints_every_epoch_atomically(tmp_path, small_digits):
    settings = TrainSettings(epochs=3, batch_size=32, lr=0.1, augment=NO_AUGMENT)
    path = tmp_path / "run" / "checkpoint.pt"

    class Killed(Exception):
        pass

    def kill_after_two(stats):
        assert torch.load(path, weights_only=True)["epoch"] == stats.epoch
        if stats.epoch == 2:
            raise Killed

    trainer = make_trainer(small_digits, settings)
    with pytest.raises(Killed):
        trainer.fit(path, on_epoch=kill_after_two)
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]     # no temporary files left
    again = make_trainer(small_digits, settings, init=5)
    again.load_checkpoint(path)
    assert again.epoch == 2 and len(again.history) == 2
    again.fit(path)
    assert again.done and torch.load(path, weights_only=True)["epoch"] == 3
    assert again.seconds >= sum(h.seconds for h in again.history[:2])


def test_resume_refuses_another_schedule(small_digits):
    trainer = make_trainer(small_digits, TrainSettings(epochs=3, batch_size=32, lr=0.1))
    other = make_trainer(small_digits, TrainSettings(epochs=5, batch_size=32, lr=0.1))
    with pytest.raises(ValueError, match="epochs: 3 there, 5 here"):
        other.load_state_dict(trainer.state_dict())


# --------------------------------------------------------------------------- evaluation, streaming

def test_top5_is_top_k_for_few_classes():
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(40) % 3
    from nasgep.data import Split
    data = DataBundle("three", "npz", "search", Split(x, y), Split(x, y), "val", 3, 3, 8,
                      (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), ("a", "b", "c"))
    trainer = Trainer(TinyNet(3, 3), data, TrainSettings(epochs=1, batch_size=16, lr=0.1), progress=False)
    result = trainer.evaluate()
    assert result["top5"] == 100.0 and 0 <= result["top1"] <= 100


def test_streamed_folder_dataset_trains_deterministically(tmp_path):
    from test_data import config_with, write_folder

    write_folder(tmp_path, per_class=8)
    config = config_with({"f": {"kind": "folder", "path": str(tmp_path), "image_size": 12, "val_size": 7}})
    data = load_dataset(config, "f", "search")
    settings = TrainSettings(epochs=2, batch_size=4, lr=0.05, augment=ALL_AUGMENT)

    def run() -> Trainer:
        torch.manual_seed(0)
        trainer = Trainer(TinyNet(3, 3), data, settings, seed=1, progress=False)
        trainer.fit()
        return trainer

    a, b = run(), run()
    assert a.history[0].images == 16   # 17 images, batch 4: the last single image is dropped
    _assert_same_state(a.state_dict(), b.state_dict())
    assert 0 <= a.evaluate()["top1"] <= 100


# --------------------------------------------------------------------------- settings from the config

def test_settings_from_the_config():
    config = load_config(None)
    s = candidate_training_settings(config)
    assert (s.epochs, s.batch_size, s.lr, s.momentum, s.weight_decay) == (10, 512, 0.1, 0.9, 0.0005)
    assert s.augment.cutout and s.augment.autoaugment
    t = training_settings(config)
    assert (t.epochs, t.batch_size, t.lr, t.drop_path) == (300, 128, 0.025, 0.0)
    dp = training_settings(config, variant="cutout_dp")
    assert dp.drop_path == 0.1 and not dp.augment.autoaugment and dp.augment.cutout
    assert training_settings(config, stem="imagenet").epochs == 90
    assert training_settings(config, epochs=2).epochs == 2
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        training_settings(config, variant="nope")
    # the speed switches are the config's (the schema holds their defaults): candidates take
    # cuda_graphs and fp32_batchnorm from search, amp, channels_last and num_workers from train
    flipped = load_config(None, ["train.cuda_graphs=false", "train.fp32_batchnorm=true", "train.amp=false",
                                 "train.num_workers=0", "search.cuda_graphs=false", "search.fp32_batchnorm=false"])
    t, s = training_settings(flipped), candidate_training_settings(flipped)
    assert (t.cuda_graphs, t.fp32_batchnorm, t.amp, t.num_workers) == (False, True, False, 0)
    assert (s.cuda_graphs, s.fp32_batchnorm, s.amp, s.num_workers) == (False, False, False, 0)


# --------------------------------------------------------------------------- the commands

from genomes import GENOME  # noqa: E402 - shared test data


@pytest.fixture
def stand_in_network(monkeypatch):
    """``nasgep train`` with a TinyNet instead of the genome's network: the command's own
    logic, fast, and independent of nasgep.nn."""
    built = []

    def build_network(genome, macro, seed=None):
        built.append(dict(channels=macro.channels, cells_per_stage=macro.cells_per_stage,
                          num_classes=macro.num_classes, in_channels=macro.in_channels, stem=macro.stem, seed=seed))
        torch.manual_seed(seed or 0)
        return TinyNet(macro.in_channels, macro.num_classes, width=macro.channels)

    import nasgep.nn as nn_module
    import nasgep.search.torch_evaluator  # noqa: F401  a search binds the real builder at import:
    # imported first here, a search run under this fixture, or later in this worker, is unaffected

    monkeypatch.setattr(nn_module, "build_network", build_network)
    return built


def test_train_command_writes_metrics_and_weights_and_resumes(tmp_path, stand_in_network, capsys):
    genome = tmp_path / "best.json"
    genome.write_text(json.dumps({"genome": GENOME, "fitness": 50.0}))
    out = tmp_path / "out"
    args = ["train", "--genome", str(genome), "--config", str(DEMO), "--out", str(out), "--epochs", "2",
            "--variant", "cutout_dp", "--seed", "3", "--set", "datasets.cifar10.max_train=200", "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"test_error", "test_top5_error", "test_accuracy", "test_images", "params", "epochs",
                            "seconds", "dataset", "variant", "seed", "stem"}
    assert metrics["test_error"] == pytest.approx(100 - metrics["test_accuracy"])
    assert (metrics["epochs"], metrics["dataset"], metrics["variant"], metrics["seed"], metrics["stem"]) == \
        (2, "cifar10", "cutout_dp", 3, "cifar")
    assert metrics["test_top5_error"] is not None and metrics["params"] > 0
    assert stand_in_network[0] == dict(channels=8, cells_per_stage=1, num_classes=10, in_channels=1, stem="cifar",
                                       seed=3)
    weights = torch.load(out / "model.pt", weights_only=True)
    assert "head.weight" in weights
    first = capsys.readouterr().out
    assert "epoch 2/2" in first and "drop-path 0.050" in first

    (out / ".workflow-done").touch()                         # Snakemake's mark of the job
    assert main(args) == 0                                   # resumes: nothing left to train
    assert not (out / ".workflow-done").exists()             # run by hand: the workflow runs it again
    assert "resuming from" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["test_error"] == metrics["test_error"]

    assert main([*args[:-1], "--seed", "4", "--no-progress"]) == 2       # someone else's checkpoint
    assert "belongs to another training" in capsys.readouterr().err
    assert main([*args, "--no-resume", "--epochs", "1"]) == 0


def test_train_command_imagenet_stem_uses_transfer_settings(tmp_path, stand_in_network):
    genome = tmp_path / "g.json"
    genome.write_text(json.dumps(GENOME))
    out = tmp_path / "inet"
    assert main(["train", "--genome", str(genome), "--config", str(DEMO), "--out", str(out), "--stem", "imagenet",
                 "--set", "datasets.imagenet.max_train=64", "--set", "transfer.epochs=1", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["stem"], metrics["epochs"]) == ("imagenet", "imagenet", 1)
    assert stand_in_network[0]["stem"] == "imagenet"


def test_training_the_best_of_an_unfinished_search_says_so(tmp_path, stand_in_network, capsys):
    search = tmp_path / "search"
    search.mkdir()
    genome = search / "best.json"
    genome.write_text(json.dumps(GENOME))
    (search / "search.json").write_text(json.dumps({"generations": 3, "finished": False}))
    args = ["train", "--genome", str(genome), "--config", str(DEMO), "--epochs", "1", "--no-progress",
            "--set", "datasets.cifar10.max_train=64"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert (f"note: {genome} is the best so far of an unfinished search (3 generation(s) done); resume the "
            "search first for its final best") in capsys.readouterr().out
    (search / "search.json").write_text(json.dumps({"generations": 5, "finished": True}))
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "note:" not in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["nested", "not json", "a list"])
def test_a_damaged_search_json_beside_the_genome_adds_no_note_and_no_traceback(tmp_path, stand_in_network, capsys,
                                                                              damage):
    """The search.json beside a best.json is read only for a note: nested deeper than the
    JSON parser goes, it ended the training in a RecursionError traceback."""
    genome = tmp_path / "best.json"
    genome.write_text(json.dumps({"genome": GENOME, "method": "search"}))
    text = {"nested": "[" * 100_000 + "]" * 100_000, "not json": "{", "a list": "[1]"}[damage]
    (tmp_path / "search.json").write_text(text)
    assert main(["train", "--genome", str(genome), "--config", str(DEMO), "--epochs", "1", "--no-progress",
                 "--set", "datasets.cifar10.max_train=64", "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "note:" not in out and "Traceback" not in err
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["epochs"] == 1


def test_training_a_genome_searched_on_another_dataset_says_so(tmp_path, stand_in_network, capsys):
    """A best.json records the dataset it was searched on; trained by default on the
    config's search.dataset, another one, the training says which and how to choose."""
    genome = tmp_path / "best.json"
    genome.write_text(json.dumps({"genome": GENOME, "fitness": 50.0, "dataset": "mine"}))
    args = ["train", "--genome", str(genome), "--config", str(DEMO), "--epochs", "1", "--no-progress",
            "--set", "datasets.cifar10.max_train=64"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert (f"note: {genome} was searched on mine; it is trained on cifar10 (search.dataset of the config); "
            "give --dataset to choose") in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b"), "--dataset", "cifar10"]) == 0     # chosen: no note
    assert "note:" not in capsys.readouterr().out


def test_train_command_user_errors(tmp_path, stand_in_network, capsys):
    genome = tmp_path / "g.json"
    genome.write_text(json.dumps(GENOME))
    base = ["train", "--genome", str(genome), "--config", str(DEMO), "--out", str(tmp_path / "o")]
    assert main([*base, "--variant", "nope"]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    assert main([*base, "--dataset", "mnist"]) == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err
    assert main([*base, "--set", "datasets.cifar10.kind=npz"]) == 2
    assert "set its 'path'" in capsys.readouterr().err


def test_train_command_with_the_real_network(tmp_path):
    genome = tmp_path / "g.json"
    genome.write_text(json.dumps(GENOME))
    out = tmp_path / "real"
    assert main(["train", "--genome", str(genome), "--config", str(DEMO), "--out", str(out), "--epochs", "1",
                 "--variant", "cutout_dp_aa", "--set", "datasets.cifar10.max_train=128", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    weights = torch.load(out / "model.pt", weights_only=True)
    assert metrics["params"] == sum(v.numel() for k, v in weights.items()
                                    if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def test_prepare_command(tmp_path, capsys):
    out = tmp_path / "digits.json"
    assert main(["prepare", "--config", str(DEMO), "--dataset", "cifar10", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert (summary["train"], summary["test"], summary["num_classes"], summary["in_channels"]) == (1438, 359, 10, 1)
    assert summary["search"] == {"train": 1150, "val": 288, "seed": 0}
    assert sum(summary["class_counts"]["test"]) == 359 and len(summary["mean"]) == 1
    assert "1438 training images" in capsys.readouterr().out
    assert main(["prepare", "--config", str(DEMO), "--dataset", "nope"]) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fast_path_trains_and_resumes():
    """bf16 autocast + channels_last, the training set on the GPU, search augmentations."""
    from nasgep.data import Split

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (600, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (600,), generator=g)
    data = DataBundle("gpu", "npz", "search", Split(x, y), Split(x[:100], y[:100]), "val", 4, 3, 16,
                      (0.5,) * 3, (0.25,) * 3, tuple("abcd"))
    settings = TrainSettings(epochs=3, batch_size=128, lr=0.1, drop_path=0.2, augment=AugmentSettings(cutout_length=4))
    torch.manual_seed(0)
    trainer = Trainer(TinyNet(3, 4), data, settings, device="cuda", progress=False)
    assert trainer.data.train.x.is_cuda and next(trainer.model.parameters()).is_cuda
    stats = trainer.train_epoch()
    assert math.isfinite(stats.loss) and stats.images == 600
    result = trainer.evaluate()
    assert 0 <= result["top1"] <= 100 and result["top5"] == 100.0
    state = _roundtrip(trainer.state_dict())
    again = Trainer(TinyNet(3, 4), data, settings, device="cuda", progress=False)
    again.load_state_dict(state)
    assert again.epoch == 1 and next(iter(again.optimizer.state.values()))["momentum_buffer"].is_cuda
    again.fit()
    assert again.done and len(again.history) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_train_like_eager_steps():
    """The graphed step is the same SGD step: same weights as eager training (fp32, no
    drop-path, whose CUDA random masks differ), and drop-path/lr still change per epoch."""
    from nasgep.data import Split

    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (1280, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (1280,), generator=g)
    data = DataBundle("gpu", "npz", "search", Split(x, y), Split(x[:256], y[:256]), "val", 4, 3, 16,
                      (0.5,) * 3, (0.25,) * 3, tuple("abcd"))

    def run(graphs: bool, drop_path: float = 0.0, amp: bool = False) -> Trainer:
        settings = TrainSettings(epochs=3, batch_size=128, lr=0.05, drop_path=drop_path, amp=amp,
                                 augment=AugmentSettings(cutout_length=4), cuda_graphs=graphs)
        torch.manual_seed(0)
        trainer = Trainer(TinyNet(3, 4), data, settings, device="cuda", seed=2, progress=False)
        trainer.fit()
        return trainer

    eager, graphed = run(False), run(True)
    for key, value in eager.model.state_dict().items():
        assert torch.allclose(value.float(), graphed.model.state_dict()[key].float(), rtol=1e-3, atol=1e-4), key
    assert [h.lr for h in eager.history] == [h.lr for h in graphed.history]
    fast = run(True, drop_path=0.3, amp=True)
    assert fast.model.rates == pytest.approx([0.0, 0.1, 0.2])
    assert all(math.isfinite(h.loss) for h in fast.history) and fast.history[-1].loss < fast.history[0].loss + 0.5


def test_fp32_batchnorm_computes_in_fp32_under_autocast_and_keeps_the_state_dict():
    import copy

    from nasgep.nn import BatchNorm2d
    from nasgep.train import fp32_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
                        nn.BatchNorm2d(8))
    x = torch.randn(4, 3, 10, 10)
    plain = {k: v.clone() for k, v in net.state_dict().items()}
    reference = copy.deepcopy(net)
    fp32_batchnorm(net)
    assert net.state_dict().keys() == plain.keys()
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))              # outside autocast: plain BatchNorm
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = net[0](x)                                      # bf16, as a convolution under autocast gives
            out = net[1](h)
        assert h.dtype == out.dtype == torch.bfloat16
        expected = reference[1](h.float()).to(torch.bfloat16)  # the statistics taken in fp32
        assert torch.equal(out, expected)
    # training through it: gradients reach the BatchNorm parameters in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(x).float().square().mean()
    loss.backward()
    assert net[1].weight.grad is not None and net[1].weight.grad.dtype == torch.float32
    # a trainer on the CPU (no autocast there) trains exactly as without the switch
    data = load_dataset(digits_config(max_train=64), "cifar10", "search", seed=0)
    a = make_trainer(data, TrainSettings(epochs=2, batch_size=32, lr=0.05, augment=NO_AUGMENT))
    b = make_trainer(data, TrainSettings(epochs=2, batch_size=32, lr=0.05, augment=NO_AUGMENT,
                                         fp32_batchnorm=True))
    assert a.train_epoch().loss == b.train_epoch().loss


# --- the training folder: one run, same settings, never started over implicitly ------------

def _train_args(tmp_path, *extra):
    genome = tmp_path / "g.json"
    genome.write_text(json.dumps(GENOME))
    return ["train", "--genome", str(genome), "--config", str(DEMO), "--out", str(tmp_path / "o"), "--epochs", "2",
            "--set", "datasets.cifar10.max_train=200", "--no-progress", *extra]


def _previous(folder):
    return [p for p in folder.iterdir() if p.name.startswith(".previous-")]


def test_train_folder_is_locked_and_names_the_holder(tmp_path, stand_in_network, capsys):
    from nasgep import outdir

    with outdir.locked(tmp_path / "o"):
        assert main(_train_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert f"in use by another nasgep run (PID {os.getpid()})" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_train_refuses_other_settings_and_restarts_only_when_asked(tmp_path, stand_in_network, capsys):
    out = tmp_path / "o"
    assert main(_train_args(tmp_path)) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert main(_train_args(tmp_path, "--set", "train.lr=0.05", "--set", "train.weight_decay=0.001")) == 2
    assert "train.lr, train.weight_decay differ" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before and not _previous(out)
    # the workflow's rule: same settings -> nothing trained; other settings -> moved aside, redone
    assert main(_train_args(tmp_path, "--restart-if-changed")) == 0
    assert "resuming from" in capsys.readouterr().out and not _previous(out)
    assert main(_train_args(tmp_path, "--restart-if-changed", "--set", "train.lr=0.05")) == 0
    assert "epoch 1/2" in capsys.readouterr().out
    assert len(_previous(out)) == 1 and (_previous(out)[0] / "checkpoint.pt").read_bytes() == before
    for flag in ("--restart", "--no-resume"):        # both move aside, never overwrite
        assert main(_train_args(tmp_path, flag, "--set", "train.lr=0.05")) == 0
    assert len(_previous(out)) == 3


def test_damaged_train_checkpoint_stops_with_one_line(tmp_path, stand_in_network, capsys):
    out = tmp_path / "o"
    assert main(_train_args(tmp_path)) == 0
    capsys.readouterr()                      # the first run's output (MLflow creating its store)
    os.truncate(out / "checkpoint.pt", 50)
    (out / ".checkpoint.pt.tmp.999999999").write_bytes(b"half")
    assert main(_train_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt" in err and "--restart" in err and len(err.splitlines()) == 1
    assert not (out / ".checkpoint.pt.tmp.999999999").exists()      # stale temporaries go
    assert main(_train_args(tmp_path, "--restart")) == 0


def _one_line(capsys, verb: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nasgep {verb}: error:"), err
    return err[0]


def test_a_training_that_lost_its_settings_json_is_checked_against_its_checkpoint(tmp_path, stand_in_network,
                                                                                  capsys):
    """A refused run records nothing, so the right command still works afterwards."""
    from test_resume import snapshot

    from nasgep import outdir

    out = tmp_path / "o"
    assert main(_train_args(tmp_path)) == 0                      # 2 epochs
    (out / outdir.SETTINGS).unlink()
    before = snapshot(out)
    capsys.readouterr()                      # the first run's output (MLflow creating its store)
    for extra in (("--epochs", "3"), ("--epochs", "3", "--restart-if-changed"), ("--seed", "1")):
        assert main(_train_args(tmp_path, *extra)) == 2
        line = _one_line(capsys, "train")
        assert "checkpoint.pt" in line and ("epochs: 2 there, 3 here" in line or "another training" in line)
        assert snapshot(out) == before and not _previous(out)
    assert main(_train_args(tmp_path, "--restart-if-changed")) == 0
    printed = capsys.readouterr().out
    assert "no settings.json; checking" in printed and "resuming from" in printed and not _previous(out)
    assert json.loads((out / outdir.SETTINGS).read_text())["settings"]["train"]["epochs"] == 2


def test_train_search_and_sample_refuse_each_others_folders(tmp_path, stand_in_network, capsys):
    """Each verb's folder is its own: another verb's run in it is refused in one line naming
    what it holds, before anything is written, whatever the flags."""
    import yaml
    from test_resume import search, small_config, snapshot

    trained, searched = tmp_path / "o", tmp_path / "searched"
    assert main(_train_args(tmp_path)) == 0
    search(searched)
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(small_config("search.max_generations=4")))
    folders = {folder: snapshot(folder) for folder in (trained, searched)}
    capsys.readouterr()
    for flags in ((), ("--restart-if-changed",), ("--restart",)):
        assert main([*_train_args(tmp_path, *flags), "--out", str(searched)]) == 2
        assert (f"{searched} holds a search (checkpoints/, best.json, history.parquet), not a training; "
                "choose another --out") in _one_line(capsys, "train")
        sample = ["sample", "--config", str(DEMO), "--set", "tracking.enabled=false", *flags]
        for argv in (["search", "--config", str(config), "--seed", "3", "--resume", *flags], sample):
            assert main([*argv, "--out", str(trained)]) == 2
            assert (f"{trained} holds a training (checkpoint.pt, metrics.json, model.pt), not a {argv[0]}; "
                    "choose another --out") in _one_line(capsys, argv[0])
        assert main([*sample, "--out", str(searched)]) == 2
        assert (f"{searched} holds a search (checkpoints/, best.json, history.parquet), not a sample"
                in _one_line(capsys, "sample"))
        assert {folder: snapshot(folder) for folder in folders} == folders
