"""The training engine shared by the search and by full training.

* The search trains an individual **one epoch at a time** and resumes it in a later
  generation: :meth:`Trainer.train_epoch`, :meth:`Trainer.evaluate`, then
  :meth:`Trainer.state_dict` / :meth:`Trainer.load_state_dict` carry the weights, the
  optimizer, the cosine position, the epoch and the random generator between generations.
* Full training runs the whole schedule with :meth:`Trainer.fit`, writing a checkpoint
  after every epoch (atomically), so a killed run resumes where it stopped.

The cosine schedule spans ``settings.epochs`` epochs (E_max in the search) and steps once
per epoch, never per batch (SPEC section 5). SGD, momentum 0.9, weight decay 5e-4.
Every random draw of an epoch (shuffling, augmentation, and through a forked global RNG
also drop-path) derives from the trainer's own seeded generator, so on the CPU a run
stopped after epoch k and resumed is bitwise equal to one never stopped.

A candidate that cannot be trained raises a :class:`CandidateFailure` (``.reason`` says
why) instead of taking the process down: :class:`TrainingDiverged` for a NaN/inf loss,
:class:`OutOfMemory` when the device runs out of memory.
"""
from __future__ import annotations

import io
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from .augment import AugmentSettings, BatchAugment, mobile_transform
from .data import DataBundle, Source, Split, batches, with_train_transform
from .errors import RunFailed, UserError, clip
from .io import atomic_write_bytes

CHECKPOINT_FORMAT = "nasgep-trainer/1"
_SEED_HIGH = 2**62


# --------------------------------------------------------------------------- failures

class CandidateFailure(Exception):
    """A candidate network that could not be trained; the search records ``reason`` and
    moves on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrainingDiverged(CandidateFailure):
    """The training loss became NaN or infinite."""


class OutOfMemory(CandidateFailure):
    """The device ran out of memory for this candidate."""


class LoaderDied(RunFailed):
    """A data-loading worker process died (the kernel's OOM killer, a kill): the machine's
    failure, not the network's. The run stops (exit 1) and goes on when run again; in a
    search it is no candidate's failure (recorded, it dropped the candidate for good and
    changed the search)."""


class DeviceFailed(RunFailed):
    """The accelerator reported an error other than running out of memory
    (``torch.AcceleratorError``) and is unusable since (an illegal memory access, a lost
    device, an ECC error leave the process's CUDA context broken): every later candidate
    failed too and a search ended 'extinct' with exit 0. It is the machine's failure: the
    run stops (exit 1) and goes on when run again. An error after which the device still
    works (an invalid launch configuration of one network's shapes) stays the candidate's:
    stopping there, every ``--resume`` would stop at the same candidate again. ``cause``:
    the device's error, one line (a search notes it against the candidate it was training,
    :meth:`nasgep.search.torch_evaluator.TorchEvaluator.train`)."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = cause

    def __reduce__(self):        # raised in a worker process, read in the search's
        return type(self), (str(self), self.cause)


def device_error(device: torch.device) -> str | None:
    """Why ``device`` cannot compute (one line), or None when a tiny computation on it
    succeeds. After an accelerator error: None says the error was the network's, not a
    broken context (whose every later call raises); before a search's job: the device
    was broken before the candidate touched it."""
    try:
        if torch.ones(1, device=device).add_(1).item() == 2.0:     # .item() synchronises
            return None
        return "a computation on the device gave a wrong result"
    except Exception as e:  # noqa: BLE001 - any error here says the device is gone
        return (str(e).splitlines() or [type(e).__name__])[0]


def device_failed(cause: str) -> DeviceFailed:
    """The one :class:`DeviceFailed` a run stops with, ``cause`` the device's error."""
    return DeviceFailed(f"the device failed ({cause}): its state is lost for this process; nothing is lost of "
                        "the run: check the device (nvidia-smi), then run the command again to go on (a search "
                        "with --resume)", cause)


def machine_failure(error: BaseException, device: torch.device) -> RunFailed | None:
    """:class:`LoaderDied` for torch's error about a DataLoader worker that died,
    :class:`DeviceFailed` for an accelerator error that is not out of memory and after
    which ``device`` no longer works, else None."""
    text = str(error)
    if isinstance(error, RuntimeError) and text.startswith("DataLoader worker (pid"):
        return LoaderDied(f"a data-loading worker process died ({text.splitlines()[0].rstrip('. ')}): the machine "
                          "may be out of memory (a smaller train.num_workers uses less); nothing is lost: run the "
                          "command again to go on (a search with --resume)")
    if (isinstance(error, getattr(torch, "AcceleratorError", ())) and not _is_oom(error)
            and device_error(device) is not None):
        return device_failed((text.splitlines() or [type(error).__name__])[0])
    return None


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


#: bytes each parameter takes in a training: its fp32 weight, its gradient and SGD's momentum
TRAINING_BYTES_PER_PARAMETER = 12


def check_network_fits(params: int, macro, channels_key: str, cells_key: str) -> None:
    """One line, before a network of ``params`` parameters (counted on the meta device) is
    built, when its weights, gradients and momentum alone would take more than half of
    this machine's memory: ``train.channels: 100000000`` ended in a traceback from torch's
    allocator, and a smaller excess gets the process killed mid-build (the kernel
    overcommits). ``channels_key`` and ``cells_key`` are the settings that shaped it."""
    from .config import ConfigError
    from .data import memory_bytes

    need, have = params * TRAINING_BYTES_PER_PARAMETER, memory_bytes()
    if have is not None and need > have // 2:
        raise ConfigError(f"{channels_key} = {macro.channels:,} with {cells_key} = {macro.cells_per_stage}: a "
                          f"network of {params:,} parameters takes {need / 2**30:,.1f} GiB to train (weights, "
                          f"gradients, momentum), more than half of this machine's {have / 2**30:,.1f} GiB; lower "
                          f"{channels_key}")


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class TrainSettings:
    """How to train: the schedule (``epochs`` is the cosine period: E_max in the search),
    the optimizer, regularisation and augmentation, and speed switches that act on CUDA
    only (``amp``: bf16 autocast, which changes rounding but not the method;
    ``channels_last``; ``cuda_graphs``)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    drop_path: float = 0.0
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    amp: bool = True
    channels_last: bool = True
    num_workers: int = 0
    eval_batch_size: int | None = None
    #: Images augmented at once (rounded down to whole batches): large enough that the
    #: GPU is busy, small enough that the float copy stays modest.
    augment_chunk: int = 8192
    #: On CUDA the loss is checked for NaN/inf every this many batches (a check is a
    #: device sync); on the CPU after every batch.
    check_every: int = 25
    #: On CUDA, replay the whole training step as one CUDA graph (see :class:`_GraphedStep`):
    #: a small search candidate is otherwise bound by kernel-launch overhead.
    cuda_graphs: bool = False
    #: With ``amp``, compute BatchNorm in fp32 (see :func:`fp32_batchnorm`): measured by
    #: bench/bench_gpu.py 1.21x faster for a search-size candidate on an H200, 0.99x at C = 64.
    fp32_batchnorm: bool = False

    #: Fields a checkpoint must agree on to be resumed: they shape the trajectory.
    SCHEDULE_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "drop_path", "augment")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["augment"] = self.augment.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainSettings:
        data = dict(data)
        data["augment"] = AugmentSettings(**data.get("augment", {}))
        return cls(**data)


def candidate_training_settings(config: Mapping) -> TrainSettings:
    """Settings for training search candidates (config ``search``; ``amp``,
    ``channels_last`` and ``num_workers`` are ``train``'s: the schema gives ``search`` none
    of its own, while it has its own ``cuda_graphs`` and ``fp32_batchnorm``)."""
    s, t = config["search"], config["train"]
    return TrainSettings(
        epochs=s["max_epochs"], batch_size=s["batch_size"], lr=s["lr"], momentum=s["momentum"],
        weight_decay=s["weight_decay"], drop_path=s["drop_path"],
        augment=AugmentSettings.from_config(s["augment"]),
        amp=t["amp"], channels_last=t["channels_last"], num_workers=t["num_workers"],
        cuda_graphs=s["cuda_graphs"], fp32_batchnorm=s["fp32_batchnorm"])


def training_settings(config: Mapping, *, variant: str | None = None, stem: str = "cifar",
                      epochs: int | None = None) -> TrainSettings:
    """Settings for a full training (config ``train``): an ablation ``variant`` switches
    CutOut, AutoAugment and drop-path; ``stem='imagenet'`` takes epochs, batch size, lr
    and the mobile setting's augmentation from ``transfer`` (the variant's drop-path
    stays); ``epochs`` overrides the schedule length."""
    t = config["train"]
    augment = dict(t["augment"])
    drop_path = t["drop_path"]
    if variant is not None:
        ablations = config["ablations"]
        if variant not in ablations:
            raise ValueError(f"unknown variant {variant!r} (the config's ablations: {sorted(ablations)})")
        ab = ablations[variant]
        augment["cutout"], augment["autoaugment"], drop_path = ab["cutout"], ab["autoaugment"], ab["drop_path"]
    n_epochs, batch_size, lr = t["epochs"], t["batch_size"], t["lr"]
    if stem == "imagenet":
        tr = config["transfer"]
        n_epochs, batch_size, lr = tr["epochs"], tr["batch_size"], tr["lr"]
        augment = mobile_augment(tr["augment"], normalize=augment["normalize"])
    return TrainSettings(
        epochs=epochs or n_epochs, batch_size=batch_size, lr=lr, momentum=t["momentum"],
        weight_decay=t["weight_decay"], drop_path=drop_path, augment=AugmentSettings.from_config(augment),
        amp=t["amp"], channels_last=t["channels_last"], num_workers=t["num_workers"],
        cuda_graphs=t["cuda_graphs"], fp32_batchnorm=t["fp32_batchnorm"])


def mobile_augment(section: Mapping, normalize: bool = True) -> dict:
    """The ImageNet mobile setting's augmentation (config ``transfer.augment``): DARTS's
    per-image random-resized crop, flip and colour jitter; none of the CIFAR pipeline
    (its 4-pixel crop, CutOut and CIFAR AutoAugment policy are made for 32x32 images)."""
    return {"crop_flip": False, "cutout": False, "autoaugment": False, "normalize": normalize,
            "random_resized_crop": section["random_resized_crop"], "color_jitter": section["color_jitter"]}


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first GPU when there is one, else the CPU."""
    if str(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        if not re.fullmatch(r"cuda:[0-9]+", str(name)):
            raise UserError(f"device {clip(str(name))!r}: expected auto, cpu, cuda or cuda:N") from None
        device = None       # cuda:N with an index too large for torch to read: no GPU has it
    if device is None or device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {clip(str(name))!r} asked for, but PyTorch sees no CUDA GPU")
        if device is None or (device.index is not None and device.index >= torch.cuda.device_count()):
            raise UserError(f"device {clip(str(name))!r} asked for, but PyTorch sees {torch.cuda.device_count()} "
                            f"GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
        if device.index is None:  # one spelling per GPU, so tensors' devices compare equal
            device = torch.device("cuda", torch.cuda.current_device())
    return device


# --------------------------------------------------------------------------- helpers

@dataclass
class EpochStats:
    """One training epoch: mean loss and top-1 (%) on the augmented training batches."""

    epoch: int            # 1-based: the epoch just finished
    loss: float
    top1: float
    lr: float             # the rate this epoch trained with
    drop_path: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (a state that outlives the trainer)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` that never leaves a half-written file (:func:`nasgep.io.atomic_write_bytes`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _progress_enabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm turn itself off when stderr is not a TTY."""
    return None if progress is None else not progress


class _GraphedStep:
    """The whole training step (forward, backward, SGD update) captured as one CUDA graph
    and replayed for every full batch: a search candidate's thousand-odd small kernels
    then cost one launch (PyTorch's "whole network capture" recipe). Captured anew each
    epoch, because the learning rate and the drop-path rate are constants inside a graph;
    the epoch's first batches train eagerly on a side stream as the recipe's warm-up. A
    model that cannot be captured trains eagerly from then on, with one warning."""

    WARMUP = 3

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.warm = 0
        self.failed = False
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trainer
        if self.failed:
            return t._step(x, y)
        if self.graph is not None:
            self.static_x.copy_(x)
            self.static_y.copy_(y)
            self.graph.replay()
            return self.logits, self.loss
        if self.warm < self.WARMUP:
            self.warm += 1
            main = torch.cuda.current_stream(t.device)
            side = torch.cuda.Stream(t.device)
            side.wait_stream(main)
            with torch.cuda.stream(side):
                out = t._step(x, y)
            main.wait_stream(side)
            return out
        return self._capture(x, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trainer
        self.static_x, self.static_y = x.clone(), y.clone()
        t.optimizer.zero_grad(set_to_none=True)   # gradients are then allocated inside the graph
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                logits, loss = t._step(self.static_x, self.static_y, autocast_cache=False)
        except Exception as e:
            self.failed = t._graphs_failed = True   # this model: no graphs from now on
            warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {str(e).splitlines()[0]}); "
                          f"training without graphs", stacklevel=2)
            t.optimizer.zero_grad(set_to_none=True)
            return t._step(x, y)
        self.graph, self.logits, self.loss = graph, logits, loss
        graph.replay()                            # capturing recorded the step without running it
        return logits, loss

    def close(self) -> None:
        """Free the graph and its gradients (the next epoch captures its own)."""
        self.graph = None
        self.trainer.optimizer.zero_grad(set_to_none=True)


class _Fp32BatchNorm(nn.BatchNorm2d):
    """BatchNorm computed in fp32 inside autocast: the input is cast up, the statistics,
    normalisation and their backward run in fp32, the output goes back to the input's
    dtype. Outside autocast it is plain BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float()).to(x.dtype)


def fp32_batchnorm(model: nn.Module) -> nn.Module:
    """Make every ``BatchNorm2d`` of ``model`` compute in fp32 under autocast, in place.
    Only the forward changes (the class is swapped), so parameters, buffers and
    ``state_dict`` keys stay as they are: checkpoints and the weight store are unaffected."""
    for module in model.modules():
        if type(module) is not _Fp32BatchNorm and isinstance(module, nn.BatchNorm2d):
            module.__class__ = _Fp32BatchNorm
    return model


# --------------------------------------------------------------------------- the trainer

# Longer than 200 lines on purpose: the loop, its checkpointable state (model, optimiser,
# scheduler, scaler, generator, epoch, seconds) and its evaluation share that state; split
# apart they would pass it all back and forth.
class Trainer:
    """Trains one model on one :class:`~nasgep.data.DataBundle` with SGD + cosine annealing.

    ``model`` is any ``nn.Module`` mapping float (N, C, H, W) images to (N, classes)
    logits; if it has ``set_drop_path(rate)`` the rate is ramped linearly from 0 over the
    schedule. ``seed`` seeds the trainer's generator (shuffling, augmentation, drop-path);
    the model's initial weights are the caller's business. ``progress``: None shows tqdm
    bars only on a terminal, False never."""

    def __init__(self, model: nn.Module, data: DataBundle, settings: TrainSettings, *,
                 device: str | torch.device = "cpu", seed: int = 0, progress: bool | None = None,
                 desc: str = "train") -> None:
        self.device = resolve_device(device)
        self.settings = settings
        if settings.augment.per_image:   # the mobile setting: crops decoded in the loader's workers
            data = with_train_transform(data, mobile_transform(data.image_size, settings.augment))
        self.progress = progress
        self.desc = desc
        self._cuda = self.device.type == "cuda"
        self._amp = self._cuda and settings.amp
        self._channels_last = self._cuda and settings.channels_last
        self._graphs_failed = False
        try:
            self.data = data.on(self.device)
            self.model = model.to(self.device)
        except Exception as e:
            failed = self._failure(e, f"moving the network and its data to {self.device}")
            if failed is None:
                raise
            raise failed from None
        if self._amp and settings.fp32_batchnorm:
            fp32_batchnorm(self.model)
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.augment = BatchAugment(settings.augment, data.mean, data.std)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                         weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=settings.epochs)
        self.generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        #: Free-form facts about the run (genome, dataset...) saved with the state, so a
        #: caller can refuse to resume someone else's checkpoint.
        self.meta: dict = {}
        self.tracking_run_id: str | None = None   # the MLflow run a resumed training goes on logging to
        self.epoch = 0                     # epochs finished
        self.seconds = 0.0                 # training wall time, over resumes
        self.history: list[EpochStats] = []

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        return self.epoch >= self.settings.epochs

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def drop_path_rate(self, epoch: int | None = None) -> float:
        """Drop-path of a (0-based) epoch: ``rate * epoch / epochs``, 0 in the first."""
        epoch = self.epoch if epoch is None else epoch
        return self.settings.drop_path * epoch / self.settings.epochs

    # ------------------------------------------------------------------ batches
    def _num_train_batches(self) -> tuple[int, int]:
        """(batches, images) of an epoch; a last batch of one image is dropped, since
        BatchNorm cannot train on a single image."""
        n, bs = len(self.data.train), self.settings.batch_size
        if n % bs == 1 and n > 1:
            n -= 1
        return math.ceil(n / bs), n

    def _train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train, bs = self.data.train, self.settings.batch_size
        _, used = self._num_train_batches()
        if isinstance(train, Split):
            order = torch.randperm(len(train), generator=self.generator)[:used]
            chunk = max(1, self.settings.augment_chunk // bs) * bs
            for start in range(0, used, chunk):
                idx = order[start:start + chunk].to(self.device)
                x = self.augment(train.x[idx], self.generator)
                y = train.y[idx]
                for b in range(0, len(idx), bs):
                    yield x[b:b + bs], y[b:b + bs]
        else:
            sampler = RandomSampler(train, generator=torch.Generator().manual_seed(self._draw_seed()))
            loader = DataLoader(train, batch_size=bs, sampler=sampler, num_workers=self.settings.num_workers,
                                pin_memory=self._cuda, drop_last=used < len(train),
                                persistent_workers=False)
            for x, y in batches(loader):
                x = x.to(self.device, non_blocking=True)
                yield self.augment(x, self.generator), y.to(self.device, non_blocking=True)

    def _eval_batches(self, source: Source) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.settings.eval_batch_size or 2 * self.settings.batch_size
        if isinstance(source, Split):
            source = source.to(self.device) if source.x.device != self.device else source
            for start in range(0, len(source), bs):
                yield self.augment.eval(source.x[start:start + bs]), source.y[start:start + bs]
        else:
            loader = DataLoader(source, batch_size=bs, shuffle=False, num_workers=self.settings.num_workers,
                                pin_memory=self._cuda)
            for x, y in batches(loader):
                yield (self.augment.eval(x.to(self.device, non_blocking=True)),
                       y.to(self.device, non_blocking=True))

    def _draw_seed(self) -> int:
        return int(torch.randint(0, _SEED_HIGH, (1,), generator=self.generator))

    def _forward(self, x: torch.Tensor, autocast_cache: bool = True) -> torch.Tensor:
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._amp, cache_enabled=autocast_cache):
            return self.model(x)

    def _step(self, x: torch.Tensor, y: torch.Tensor, autocast_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step; returns the (detached) logits and mean loss of the batch."""
        logits = self._forward(x, autocast_cache)
        loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach()

    # ------------------------------------------------------------------ training
    def train_epoch(self) -> EpochStats:
        """Train one epoch of the schedule, then step the cosine schedule. Raises
        :class:`TrainingDiverged` or :class:`OutOfMemory`."""
        if self.done:
            raise RuntimeError(f"the schedule of {self.settings.epochs} epochs is finished")
        try:
            return self._train_epoch()
        except CandidateFailure:
            raise
        except Exception as e:
            if _is_oom(e):
                self.optimizer.zero_grad(set_to_none=True)      # its half-made gradients, before the cache empties
            failed = self._failure(e, f"in epoch {self.epoch + 1} on {self.device} (batch {self.settings.batch_size})")
            if failed is None:
                raise
            raise failed from None

    def _failure(self, error: Exception, where: str) -> RunFailed | OutOfMemory | None:
        """What ``error``, raised while training or evaluating ``where``, means for the run:
        a machine failure (:func:`machine_failure`), :class:`OutOfMemory` (the GPU's cache
        emptied for what comes next), or None for an error of the code, raised as it is."""
        failed = machine_failure(error, self.device)
        if failed is not None or not _is_oom(error):
            return failed
        if self._cuda:
            torch.cuda.empty_cache()
        return OutOfMemory(f"out of memory {where}: {str(error).splitlines()[0]}")

    def _train_epoch(self) -> EpochStats:
        from tqdm.auto import tqdm

        settings, model = self.settings, self.model
        drop_path = self.drop_path_rate()
        if hasattr(model, "set_drop_path"):
            model.set_drop_path(drop_path)
        model.train()
        lr = self.lr
        n_batches, _ = self._num_train_batches()
        check_every = settings.check_every if self._cuda else 1
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen = 0
        bar = tqdm(total=n_batches, desc=f"{self.desc} epoch {self.epoch + 1}/{settings.epochs}",
                   unit="batch", leave=False, file=sys.stderr, disable=_progress_enabled(self.progress))
        epoch_seed = self._draw_seed()
        devices = [self.device.index or 0] if self._cuda else []
        start = time.perf_counter()
        with bar, torch.random.fork_rng(devices=devices):
            torch.manual_seed(epoch_seed)          # drop-path and any other global draws
            use_graphs = self._cuda and settings.cuda_graphs and not self._graphs_failed
            graphed = _GraphedStep(self) if use_graphs else None
            try:
                for batch, (x, y) in enumerate(self._train_batches()):
                    if graphed is not None and len(y) == settings.batch_size:
                        logits, loss = graphed(x, y)
                    else:
                        logits, loss = self._step(x, y)
                    loss_sum += loss * len(y)
                    correct += (logits.argmax(1) == y).sum()
                    seen += len(y)
                    if (batch + 1) % check_every == 0 or batch + 1 == n_batches:
                        self._check_finite(loss_sum, batch)
                    bar.update(1)
                    if not bar.disable and (batch % 10 == 0 or batch + 1 == n_batches):
                        elapsed = time.perf_counter() - start
                        bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}",
                                        acc=f"{100 * correct.item() / seen:.1f}",
                                        img_s=f"{seen / max(elapsed, 1e-9):.0f}", refresh=False)
            finally:
                if graphed is not None:
                    graphed.close()
            self._check_finite(loss_sum, n_batches - 1)
        if self._cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.scheduler.step()
        self.epoch += 1
        self.seconds += seconds
        stats = EpochStats(self.epoch, loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1),
                           lr, drop_path, seen, seconds)
        self.history.append(stats)
        return stats

    def _check_finite(self, loss_sum: torch.Tensor, batch: int) -> None:
        if not bool(torch.isfinite(loss_sum)):
            raise TrainingDiverged(f"training loss became {loss_sum.item()} in epoch {self.epoch + 1} "
                                   f"by batch {batch + 1} (lr {self.lr:g})")

    def fit(self, checkpoint: str | Path | None = None,
            on_epoch: Callable[[EpochStats], None] | None = None) -> list[EpochStats]:
        """Train the remaining epochs of the schedule; after each, write ``checkpoint``
        (atomically) and call ``on_epoch``. A trainer loaded from a checkpoint goes on
        where it stopped."""
        while not self.done:
            stats = self.train_epoch()
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            if on_epoch is not None:
                on_epoch(stats)
        return self.history

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str | Source = "eval") -> dict[str, float]:
        """Top-1 and top-5 accuracy (%) and mean loss, without augmentation. ``split``:
        ``"eval"`` (the bundle's validation set in a search, test set in full training),
        ``"train"``, or any Split/Dataset. Top-5 is top-k with k = min(5, classes)."""
        source = {"eval": self.data.eval, "train": self.data.train}.get(split, split) \
            if isinstance(split, str) else split
        if isinstance(source, str):
            raise ValueError(f"split must be 'eval', 'train' or a data source, not {split!r}")
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        top1 = torch.zeros((), device=self.device, dtype=torch.int64)
        top5 = torch.zeros((), device=self.device, dtype=torch.int64)
        n = 0
        try:
            for x, y in self._eval_batches(source):
                logits = self._forward(x).float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                k = min(5, logits.shape[1])
                best = logits.topk(k, dim=1).indices
                hits = best == y[:, None]
                top1 += hits[:, 0].sum()
                top5 += hits.any(dim=1).sum()
                n += len(y)
        except Exception as e:
            failed = self._failure(e, f"while evaluating on {self.device}")
            if failed is None:
                raise
            raise failed from None
        n = max(n, 1)
        return {"top1": 100.0 * top1.item() / n, "top5": 100.0 * top5.item() / n, "loss": loss_sum.item() / n}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to go on later, as CPU copies: model, optimizer, scheduler,
        epoch, generator state, history, elapsed seconds and the settings."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": _to_cpu(self.model.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "scheduler": _to_cpu(self.scheduler.state_dict()),
            "epoch": self.epoch,
            "seed": self.seed,
            "generator": self.generator.get_state().clone(),
            "seconds": self.seconds,
            "history": [asdict(h) for h in self.history],
            "settings": self.settings.to_dict(),
            "meta": _to_cpu(self.meta),
            "mlflow_run_id": self.tracking_run_id,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a :meth:`state_dict`; refuses one made with another schedule."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a trainer state (format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        mine, theirs = self.settings.to_dict(), state["settings"]
        differ = [k for k in TrainSettings.SCHEDULE_KEYS if mine[k] != theirs.get(k)]
        if differ:
            detail = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine[k]!r} here" for k in differ)
            raise ValueError(f"the saved trainer used other settings ({detail})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))
        self.generator.set_state(state["generator"])
        self.seconds = float(state["seconds"])
        self.history = [EpochStats(**h) for h in state["history"]]
        self.meta = dict(state.get("meta", {}))
        self.tracking_run_id = state.get("mlflow_run_id")

    def save_checkpoint(self, path: str | Path) -> None:
        atomic_save(self.state_dict(), path)

    def load_checkpoint(self, path: str | Path) -> None:
        self.load_state_dict(read_state(path))


class StateFileError(UserError):
    """A trainer state file that is damaged or not a trainer state; names the file."""


def load_tensors(path: str | Path, error: type[UserError], what: str) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` (tensors and plain values only:
    never code); a file it cannot read raises ``error`` naming it as not a readable ``what``
    (a missing one stays FileNotFoundError)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise error(f"{path}: not a readable {what} ({type(e).__name__}: {clip(reason)})") from None


def read_state(path: str | Path) -> dict:
    """A trainer state written by :meth:`Trainer.save_checkpoint`; a damaged file, or one
    that holds something else, is a :class:`StateFileError` naming it."""
    state = load_tensors(path, StateFileError, "trainer state")
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        what = f"format {clip(str(state.get('format')))}" if isinstance(state, Mapping) else type(state).__name__
        raise StateFileError(f"{path}: not a trainer state of nasgep ({what}; expected format {CHECKPOINT_FORMAT!r})")
    return state


__all__ = ["CandidateFailure", "DeviceFailed", "EpochStats", "LoaderDied", "OutOfMemory", "StateFileError",
           "TrainSettings", "Trainer", "TrainingDiverged", "atomic_save", "candidate_training_settings",
           "check_network_fits", "fp32_batchnorm", "load_tensors", "read_state", "resolve_device",
           "training_settings"]
