"""Training-time augmentation on whole batches, on whatever device the batch is on.

The search keeps the training set on the GPU and augments it there, many images at a
time; per-image Python transforms would starve the GPU. The pipeline, in the order of
DARTS and of the AutoAugment paper's CIFAR code:

  1. random crop (zero padding 4) + horizontal flip, per image     (uint8)
  2. AutoAugment, torchvision's CIFAR-10 policy, per image          (uint8)
  3. scale to [0, 1], normalise by the dataset's mean/std           (float)
  4. CutOut (DeVries & Taylor 2017): one square hole of zeros       (float; 0 is the mean)

Every random number is drawn on the CPU from an explicit :class:`torch.Generator` and
only then moved to the batch's device, so a CPU batch and a GPU batch get the same crops,
flips, policies and holes for the same seed. Each call draws one seed per stage, so
switching one stage off leaves the other stages' draws unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Zero padding of the random crop (the CIFAR convention).
CROP_PADDING = 4
_SEED_HIGH = 2**62


@dataclass(frozen=True)
class AugmentSettings:
    """The config's ``augment`` switches."""

    crop_flip: bool = True
    cutout: bool = True
    cutout_length: int = 16
    autoaugment: bool = True
    normalize: bool = True
    padding: int = CROP_PADDING
    #: The mobile setting (ImageNet): per image, in the data loader's workers, before the
    #: batch stages above (see :func:`mobile_transform`).
    random_resized_crop: bool = False
    color_jitter: float = 0.0

    @classmethod
    def from_config(cls, section: Mapping) -> AugmentSettings:
        keys = ("crop_flip", "cutout", "cutout_length", "autoaugment", "normalize", "random_resized_crop",
                "color_jitter")
        return cls(**{k: section[k] for k in keys if k in section})

    @property
    def per_image(self) -> bool:
        """Whether a per-image stage (the mobile setting) is on."""
        return self.random_resized_crop or self.color_jitter > 0

    def to_dict(self) -> dict:
        out = {"crop_flip": self.crop_flip, "cutout": self.cutout, "cutout_length": self.cutout_length,
               "autoaugment": self.autoaugment, "normalize": self.normalize, "padding": self.padding}
        if self.per_image:  # only then: checkpoints written before these keys existed still resume
            out.update(random_resized_crop=self.random_resized_crop, color_jitter=self.color_jitter)
        return out


# --------------------------------------------------------------------------- mobile setting

def mobile_transform(image_size: int, settings: AugmentSettings):
    """The ImageNet mobile setting's training augmentation, per image (DARTS's pipeline,
    torchvision's transforms): random-resized crop to ``image_size`` + horizontal flip,
    colour jitter (brightness, contrast, saturation ``color_jitter``, hue half of it).
    A decoded PIL image or a uint8 CHW tensor in, a uint8 CHW tensor out. Its draws come
    from torch's global generator: a DataLoader seeds each worker from the trainer's
    generator, so an epoch's crops are fixed by the trainer's seed."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()] \
        if settings.random_resized_crop else [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if settings.color_jitter > 0:
        j = settings.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(0.5, j / 2)))
    return v2.Compose([*steps, v2.PILToTensor()])


def _stage_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# --------------------------------------------------------------------------- crop + flip

def draw_crop_flip(n: int, padding: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image crop offsets ``(n, 2)`` in ``[0, 2 * padding]`` (row, column) and flips ``(n,)``."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return offsets, flips


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image of ``x`` (N, C, H, W) out of its zero-padded copy at ``offsets``, then
    mirror it left-right where ``flips``; two gathers, no per-image loop."""
    n, c, h, w = x.shape
    device = x.device
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    offsets, flips = offsets.to(device), flips.to(device)
    rows = offsets[:, :1] + torch.arange(h, device=device)                       # (N, H)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + offsets[:, 1:]      # (N, W)
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


# --------------------------------------------------------------------------- CutOut

def draw_cutout(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Hole centres ``(n, 2)``, uniform over the image (row, column)."""
    rows = torch.randint(0, height, (n,), generator=generator)
    cols = torch.randint(0, width, (n,), generator=generator)
    return torch.stack([rows, cols], dim=1)


def cutout(x: torch.Tensor, centres: torch.Tensor, length: int) -> torch.Tensor:
    """Zero a ``length``-sided square around each centre, clipped at the borders, exactly
    as DeVries & Taylor's code (``y - length // 2`` to ``y + length // 2``)."""
    n, _, h, w = x.shape
    centres = centres.to(x.device)
    half = length // 2
    top, bottom = (centres[:, :1] - half).clamp(0, h), (centres[:, :1] + half).clamp(0, h)
    left, right = (centres[:, 1:] - half).clamp(0, w), (centres[:, 1:] + half).clamp(0, w)
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_rows = (ys >= top) & (ys < bottom)                                         # (N, H)
    in_cols = (xs >= left) & (xs < right)                                         # (N, W)
    hole = in_rows[:, :, None] & in_cols[:, None, :]                              # (N, H, W)
    return x.masked_fill(hole[:, None], 0)


# --------------------------------------------------------------------------- AutoAugment

@dataclass(frozen=True)
class AutoAugmentDraw:
    """Per-image draws of the AutoAugment policy: sub-policy index ``(n,)``, whether each of
    its two operations applies ``(n, 2)``, and whether a signed magnitude is negated ``(n, 2)``."""

    policy: torch.Tensor
    apply: torch.Tensor
    negate: torch.Tensor


class AutoAugmentBatch:
    """torchvision's AutoAugment (CIFAR-10 policy) over a batch with a different draw per
    image, applied group by group: images that drew the same operation and magnitude go
    through torchvision's own implementation of it together, so a batch costs a few dozen
    batched operations rather than one per image. Same policy table, magnitudes, sign
    rule and probabilities (``u <= p``) as ``torchvision.transforms.v2.AutoAugment``."""

    def __init__(self) -> None:
        from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy

        self._tv = AutoAugment(AutoAugmentPolicy.CIFAR10)
        try:  # torchvision's tables and per-operation code, so the policy is exactly theirs
            self.policies = list(self._tv._policies)
            self._space = self._tv._AUGMENTATION_SPACE
            self._apply_op = self._tv._apply_image_or_video_transform
        except AttributeError as e:  # a torchvision whose internals moved
            raise RuntimeError(f"this torchvision's AutoAugment lacks {e.name}; "
                               f"nasgep.augment needs the one pinned in pyproject.toml") from None
        self._tables: dict[tuple[int, int], tuple[list[tuple[str, float]], np.ndarray]] = {}

    def draw(self, n: int, generator: torch.Generator) -> AutoAugmentDraw:
        policy = torch.randint(0, len(self.policies), (n,), generator=generator)
        u_apply = torch.rand(n, 2, generator=generator)
        u_sign = torch.rand(n, 2, generator=generator)
        prob = torch.tensor([[op[1] for op in sub] for sub in self.policies])[policy]
        return AutoAugmentDraw(policy, u_apply <= prob, u_sign <= 0.5)

    def _table(self, height: int, width: int) -> tuple[list[tuple[str, float]], np.ndarray]:
        """Distinct (operation, magnitude) pairs, and for each (policy, slot, negate) the
        index of its pair: images that share an index are transformed together."""
        key = (height, width)
        if key not in self._tables:
            ops: list[tuple[str, float]] = []
            index = np.zeros((len(self.policies), 2, 2), dtype=np.int64)
            for p, sub in enumerate(self.policies):
                for slot, (name, _prob, level) in enumerate(sub):
                    magnitudes_fn, signed = self._space[name]
                    magnitudes = magnitudes_fn(10, height, width)
                    for neg in (0, 1):
                        magnitude = 0.0 if magnitudes is None else float(magnitudes[level])
                        if neg and signed and magnitudes is not None:
                            magnitude = -magnitude
                        op = (name, magnitude)
                        if op not in ops:
                            ops.append(op)
                        index[p, slot, neg] = ops.index(op)
            self._tables[key] = (ops, index)
        return self._tables[key]

    def apply(self, x: torch.Tensor, draw: AutoAugmentDraw) -> torch.Tensor:
        """``x`` uint8 (N, C, H, W) on any device; returns a new tensor."""
        ops, index = self._table(x.shape[-2], x.shape[-1])
        out = x.clone()
        policy = draw.policy.numpy()
        for slot in (0, 1):
            chosen = index[policy, slot, draw.negate[:, slot].numpy().astype(np.int64)]
            chosen = np.where(draw.apply[:, slot].numpy(), chosen, -1)
            for op_id in np.unique(chosen):
                if op_id < 0:
                    continue
                members = torch.from_numpy(np.flatnonzero(chosen == op_id)).to(x.device)
                name, magnitude = ops[op_id]
                out[members] = self._apply_op(out[members], name, magnitude,
                                              interpolation=self._tv.interpolation, fill=self._tv._fill)
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape[0], generator))


# --------------------------------------------------------------------------- the pipeline

class BatchAugment:
    """The whole training-time pipeline for one dataset: uint8 (N, C, H, W) in, float32
    out, on the input's device. ``eval`` is the test-time part (scaling + normalisation)."""

    def __init__(self, settings: AugmentSettings, mean: Sequence[float], std: Sequence[float]) -> None:
        self.settings = settings
        if settings.normalize:
            mean64, std64 = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        else:  # one value for any number of channels
            mean64, std64 = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
        # (x / 255 - mean) / std as one multiply and one add: both are exactly rounded on
        # every device (a CPU division by a scalar is not: it multiplies by the reciprocal)
        self.scale = (1.0 / (255.0 * std64)).float()
        self.shift = (-mean64 / std64).float()
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.autoaugment = AutoAugmentBatch() if settings.autoaugment else None

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 in [0, 1], normalised when the switch is on."""
        key = str(x.device)
        if key not in self._on:
            self._on[key] = (self.scale.to(x.device)[:, None, None], self.shift.to(x.device)[:, None, None])
        scale, shift = self._on[key]
        return x.float().mul_(scale).add_(shift)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_float(x)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        n, _, h, w = x.shape
        seeds = torch.randint(0, _SEED_HIGH, (3,), generator=generator).tolist()  # one per stage, always
        if s.crop_flip:
            offsets, flips = draw_crop_flip(n, s.padding, _stage_generator(seeds[0]))
            x = crop_flip(x, offsets, flips, s.padding)
        if self.autoaugment is not None:
            x = self.autoaugment(x, _stage_generator(seeds[1]))
        out = self.to_float(x)
        if s.cutout:
            out = cutout(out, draw_cutout(n, h, w, _stage_generator(seeds[2])), s.cutout_length)
        return out


__all__ = ["mobile_transform", "AugmentSettings", "AutoAugmentBatch", "AutoAugmentDraw", "BatchAugment", "CROP_PADDING",
           "crop_flip", "cutout", "draw_crop_flip", "draw_cutout"]
