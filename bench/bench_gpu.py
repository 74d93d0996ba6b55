"""GPU benchmark of issue 11 (not a test): what one GPU does for the paper study, in one
short run that prints ONE JSON line (progress goes to stderr).

Side by side, each with the bare-loop baseline of bench_train.py (SGD over pre-normalised
batches already on the device, no augmentation):

  single_*      one search-size candidate (C = 16, N = 3, batch 512, search augmentations):
                bare loop and trainer, eager and as one CUDA graph (graphs: CUDA only),
                the graphed trainer with BatchNorm in fp32 (``fp32bn``, the search's
                default), also in NCHW (``fp32bn_nchw``), the trainer without augmentation
                (``noaug``), and with ``--compile`` the bare loop over torch.compile
  generation_*  a generation of 10 search-size candidates (random genomes within the
                parameter limit), one epoch each, trained the way a search trains them
                (TorchEvaluator: build, train, evaluate on the validation split, save the
                state) through the search's executor with K = 1, 2, 4, 8 candidates at
                once on the device (``search.concurrency``); the baseline trains the same
                candidates one after another in a bare loop (graphed on CUDA)
  *_per_image   (counts) FLOPs and bytes per training image of both networks, counted on
                the CPU in fp32: a card's roofline for them
  full_*        full training (C = 64, N = 3, batch 128, CutOut + AutoAugment, the
                ``train`` section's amp / channels_last): bare loop and trainer, eager and
                graphed, ``fp32bn`` and ``noaug``

Rates are training images per second (best of the repeats; a generation's rate counts
training images only, its evaluation and state saving are inside the time). Random
CIFAR-shaped images unless ``--data FILE.npz`` (speed does not depend on pixel values).

  python bench/bench_gpu.py                       # GPU machine: about 8 minutes on one H200
  bench/gpu_session.sh OUT                        # the whole prepared GPU window, ~9 minutes
  python bench/bench_gpu.py --tiny                # tiny sizes (the default when there is no CUDA)

Running the GPU machine with MPS (``nvidia-cuda-mps-control -d``) lets the kernels of the
K worker processes overlap; without it they time-slice. The JSON says which was seen.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import GENOME, NO_AUGMENT, SEARCH_AUGMENT, BareLoop, GraphedLoop, load_images, sync  # noqa: E402

from nasgep.augment import AugmentSettings, BatchAugment  # noqa: E402
from nasgep.config import load_config  # noqa: E402
from nasgep.data import DataBundle, Split, channel_stats  # noqa: E402
from nasgep.nn import Macro, build_network  # noqa: E402
from nasgep.space import Genome  # noqa: E402
from nasgep.train import Trainer, TrainSettings, resolve_device  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    images: int            # single candidate: training images per epoch
    batch: int
    channels: int
    cells: int
    gen_images: int        # generation: training images per candidate epoch
    gen_val: int           # ... and validation images it is evaluated on (45,000 : 5,000 in the paper)
    candidates: int
    ks: tuple[int, ...]
    full_channels: int
    full_cells: int
    full_batch: int
    full_images: int
    repeats: int


GPU = Sizes(images=45_056, batch=512, channels=16, cells=3, gen_images=22_528, gen_val=2_504, candidates=10,
            ks=(1, 2, 4, 8), full_channels=64, full_cells=3, full_batch=128, full_images=12_800, repeats=2)
TINY = Sizes(images=128, batch=32, channels=4, cells=1, gen_images=96, gen_val=32, candidates=3,
             ks=(1, 2), full_channels=8, full_cells=1, full_batch=32, full_images=64, repeats=1)
FULL_AUGMENT = AugmentSettings(crop_flip=True, cutout=True, cutout_length=16, autoaugment=True, normalize=True)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Clock:
    """The run's time limit: a measurement that would start after it is skipped (null)."""

    def __init__(self, limit: float) -> None:
        self.start, self.limit, self.skipped = time.perf_counter(), limit, []

    def allows(self, name: str) -> bool:
        if time.perf_counter() - self.start < self.limit:
            return True
        self.skipped.append(name)
        log(f"skipped {name}: past --max-seconds")
        return False

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def best_rates(runs: dict[str, Callable[[], object]], images: int, repeats: int, device: torch.device,
               clock: Clock, warmups: dict[str, float] | None = None) -> dict[str, float | None]:
    """One untimed warm-up epoch each, then ``repeats`` interleaved timed epochs; the best rate.
    ``warmups`` (if given) receives each warm-up epoch's seconds (compilation shows there)."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for name, fn in runs.items():
        if clock.allows(name):
            seconds = timed(fn, device)
            if warmups is not None:
                warmups[name] = round(seconds, 1)
            log(f"  warm-up {name}: {images / seconds:,.0f} img/s ({seconds:.1f} s)")
    for _ in range(repeats):
        for name, fn in runs.items():
            if name not in clock.skipped and clock.allows(name):
                rates[name].append(images / timed(fn, device))
                log(f"  {name}: {rates[name][-1]:,.0f} img/s")
    return {name: round(max(r), 1) if r else None for name, r in rates.items()}


def network(genome: Genome, channels: int, cells: int, seed: int = 0) -> torch.nn.Module:
    return build_network(genome, Macro(channels=channels, cells_per_stage=cells, num_classes=10), seed=seed)


class Bench:
    """One model size on one device: the bare loops and the trainer on the same images."""

    def __init__(self, device: torch.device, split: Split, batch: int, augment: AugmentSettings) -> None:
        self.device, self.batch, self.augment = device, batch, augment
        self.cuda = device.type == "cuda"
        self.amp = self.channels_last = self.cuda
        mean, std = channel_stats(split.x)
        self.bundle = DataBundle("bench", "npz", "search", split, Split(split.x[:64], split.y[:64]), "val", 10, 3,
                                 32, mean, std, tuple(str(k) for k in range(10))).on(device)
        self.xs = BatchAugment(NO_AUGMENT, mean, std).eval(self.bundle.train.x)
        self.ys = self.bundle.train.y

    def placed(self, model: torch.nn.Module, channels_last: bool | None = None) -> torch.nn.Module:
        model = copy.deepcopy(model).to(self.device)
        last = self.channels_last if channels_last is None else channels_last
        return model.to(memory_format=torch.channels_last) if last else model

    def bare(self, model, graphed: bool = False, lr: float = 0.1):
        cls = GraphedLoop if graphed else BareLoop
        return cls(self.placed(model), self.xs, self.ys, self.batch, lr, self.amp, self.channels_last)

    def compiled(self, model, lr: float = 0.1):
        """The bare loop over ``torch.compile(model, mode="reduce-overhead")``: fused kernels
        (Inductor) replayed as CUDA graphs; the first (warm-up) epoch holds the compilation."""
        return BareLoop(torch.compile(self.placed(model), mode="reduce-overhead"), self.xs, self.ys, self.batch,
                        lr, self.amp, self.channels_last)

    def trainer(self, model, graphed: bool = False, lr: float = 0.1, fp32_bn: bool = False,
                augment: AugmentSettings | None = None, channels_last: bool | None = None) -> Trainer:
        last = self.channels_last if channels_last is None else channels_last
        settings = TrainSettings(epochs=1000, batch_size=self.batch, lr=lr, augment=augment or self.augment,
                                 amp=self.amp, channels_last=last, cuda_graphs=graphed, fp32_batchnorm=fp32_bn)
        return Trainer(self.placed(model, last), self.bundle, settings, device=self.device, progress=False)

    def runs(self, model, lr: float) -> dict[str, Callable[[], object]]:
        """Bare loops and trainer; ``trainer_*_noaug``: the trainer without augmentation (only
        the normalisation the bare loop's batches already had), which tells the trainer's
        own cost from the augmentations' in the trainer-over-bare-loop ratio."""
        graphed = self.cuda
        kind = "graphed" if graphed else "eager"
        out = {"bare_eager": self.bare(model, lr=lr).epoch, "trainer_eager": self.trainer(model, lr=lr).train_epoch}
        if self.cuda:
            out["bare_graphed"] = self.bare(model, graphed=True, lr=lr).epoch
            out["trainer_graphed"] = self.trainer(model, graphed=True, lr=lr).train_epoch
            out["trainer_graphed_fp32bn"] = self.trainer(model, graphed=True, lr=lr, fp32_bn=True).train_epoch
        out[f"trainer_{kind}_noaug"] = self.trainer(model, graphed=graphed, lr=lr, augment=NO_AUGMENT).train_epoch
        return out


def single(sizes: Sizes, device: torch.device, data: str | None, clock: Clock, compile: bool = False) -> dict:
    """The search-size candidate; on CUDA also the search's default (fp32 BatchNorm) in NCHW,
    the profile's other lead; with ``compile`` the bare loop over a compiled model."""
    log(f"single search-size candidate: C = {sizes.channels}, N = {sizes.cells}, batch {sizes.batch}")
    bench = Bench(device, load_images(data, sizes.images, 0), sizes.batch, SEARCH_AUGMENT)
    model = network(Genome.from_dict(GENOME), sizes.channels, sizes.cells)
    runs = bench.runs(model, lr=0.1)
    if bench.cuda:
        runs["trainer_graphed_fp32bn_nchw"] = bench.trainer(model, graphed=True, fp32_bn=True,
                                                            channels_last=False).train_epoch
    if compile:
        runs["bare_compiled"] = bench.compiled(model).epoch
    warmups: dict[str, float] = {}
    rates = best_rates(runs, sizes.images, sizes.repeats, device, clock, warmups)
    out = {f"single_{k}_img_s": v for k, v in rates.items()}
    if compile and "bare_compiled" in warmups:
        out["single_bare_compiled_warmup_s"] = warmups["bare_compiled"]
    return out


def full(sizes: Sizes, device: torch.device, data: str | None, clock: Clock) -> dict:
    log(f"full training: C = {sizes.full_channels}, N = {sizes.full_cells}, batch {sizes.full_batch}")
    bench = Bench(device, load_images(data, sizes.full_images, 1), sizes.full_batch, FULL_AUGMENT)
    model = network(Genome.from_dict(GENOME), sizes.full_channels, sizes.full_cells)
    rates = best_rates(bench.runs(model, lr=0.025), sizes.full_images, sizes.repeats, device, clock)
    out = {f"full_{k}_img_s": v for k, v in rates.items()}
    out["full_params"] = sum(p.numel() for p in model.parameters())
    return out


def step_counts(model: torch.nn.Module, batch: int = 8) -> tuple[float, float]:
    """(FLOPs, bytes) per image of one fp32 SGD training step on the CPU: FLOPs by
    PyTorch's FlopCounterMode; bytes as the inputs plus outputs of every aten operation
    (no fusion, no cache: the traffic of an eager step). The roofline of a card is then
    min(peak FLOP/s / FLOPs, bandwidth / bytes) images/s."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import FlopCounterMode

    class Traffic(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            tensors = {id(t): t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)}
            self.total += sum(t.numel() * t.element_size() for t in tensors.values())
            return out

    model = copy.deepcopy(model).cpu().train()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()                                   # momentum buffers exist from now on
    with FlopCounterMode(display=False) as flops:
        step()
    traffic = Traffic()
    with traffic:
        step()
    return flops.get_total_flops() / batch, traffic.total / batch


def counts(sizes: Sizes, device: torch.device, data: str | None, clock: Clock) -> dict:
    """FLOPs and bytes per training image of the single and the full-training network."""
    out = {}
    for part, channels, cells in (("single", sizes.channels, sizes.cells),
                                  ("full", sizes.full_channels, sizes.full_cells)):
        flops, traffic = step_counts(network(Genome.from_dict(GENOME), channels, cells))
        out[f"{part}_gflop_per_image"] = round(flops / 1e9, 4)
        out[f"{part}_mb_per_image"] = round(traffic / 1e6, 2)
        log(f"{part}: {flops / 1e9:.3f} GFLOP and {traffic / 1e6:.1f} MB (fp32, unfused) per training image")
    return out


# --- a generation through the search's own executor -----------------------------------

def bench_config(folder: Path, sizes: Sizes, data: str | None, device: torch.device) -> dict:
    """A search config over an .npz of the generation's images (the search's data path)."""
    split = load_images(data, sizes.gen_images + sizes.gen_val, 2)
    x = split.x.permute(0, 2, 3, 1).numpy()
    path = folder / "bench.npz"
    np.savez(path, x_train=x, y_train=split.y.numpy(), x_test=x[:16], y_test=split.y[:16].numpy())
    cuda = device.type == "cuda"
    return load_config(None, [
        f"datasets={{bench: {{kind: npz, path: '{path}', val_size: {sizes.gen_val}}}}}",
        "search.dataset=bench", "workflow.search_datasets=[bench]", "workflow.ablation_dataset=bench",
        "transfer.source=bench", f"search.channels={sizes.channels}", f"search.cells_per_stage={sizes.cells}",
        f"search.batch_size={sizes.batch}", f"device={device}", f"search.cuda_graphs={str(cuda).lower()}",
        f"train.amp={str(cuda).lower()}", f"train.channels_last={str(cuda).lower()}", "tracking.enabled=false",
    ])


def candidates(config: dict, sizes: Sizes) -> list[Genome]:
    from nasgep.search.sample import sample_genome
    from nasgep.search.settings import SearchSettings
    from nasgep.search.torch_evaluator import search_param_counter

    settings, count = SearchSettings.from_config(config), search_param_counter(config, "bench")
    return [sample_genome(settings, seed, count)[0] for seed in range(sizes.candidates)]


def generation(sizes: Sizes, device: torch.device, data: str | None, clock: Clock) -> dict:
    from nasgep.search.evaluator import TrainJob, make_executor, worker_devices
    from nasgep.search.runner import torch_evaluator_factory

    log(f"a generation of {sizes.candidates} search-size candidates, {sizes.gen_images} training images each")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        folder = Path(tmp)
        config = bench_config(folder, sizes, data, device)
        genomes = candidates(config, sizes)
        cuda = device.type == "cuda"
        out["generation_fp32_batchnorm"] = config["search"]["fp32_batchnorm"] and cuda
        out["generation_params"] = [sum(p.numel() for p in network(g, sizes.channels, sizes.cells).parameters())
                                    for g in genomes]
        train_images = sizes.gen_images     # val_size comes out of the file's gen_images + gen_val

        if clock.allows("generation_bare"):
            split = load_images(data, train_images, 2)
            bench = Bench(device, split, sizes.batch, NO_AUGMENT)

            def one(g: Genome) -> None:
                model = network(g, sizes.channels, sizes.cells)
                try:
                    loop = bench.bare(model, graphed=cuda)
                except Exception as e:  # noqa: BLE001 - a model that cannot be captured trains eagerly
                    log(f"  graph capture failed ({type(e).__name__}); eager bare loop for this candidate")
                    loop = bench.bare(model)
                loop.epoch()

            def sequential() -> None:
                for g in genomes:       # building, warm-up and capture belong to the baseline too
                    one(g)
            seconds = timed(sequential, device)
            out["generation_bare_img_s"] = round(len(genomes) * train_images / seconds, 1)
            log(f"  bare loop, one after another{' (graphed)' if cuda else ''}: "
                f"{out['generation_bare_img_s']:,.0f} img/s")

        for k in sizes.ks:
            name = f"generation_k{k}"
            if not clock.allows(name):
                out[f"{name}_img_s"] = None
                continue
            workers = worker_devices([str(device)], k)
            threads = 1 if not cuda else None
            factory = torch_evaluator_factory(config, "bench", folder / name, seed=0, threads=threads)
            evaluator, executor = make_executor(factory, workers)
            try:
                warm = [TrainJob(f"w{j}", genomes[j % len(genomes)], 1, 1000 + j) for j in range(k)]
                executor.map(warm, lambda: True)        # start-up: processes, CUDA, data, cuDNN
                jobs = [TrainJob(f"c{i}", g, 1, i) for i, g in enumerate(genomes)]
                t0 = time.perf_counter()
                results = executor.map(jobs, lambda: True)
                seconds = time.perf_counter() - t0
            finally:
                executor.close()
            failures = [r.failure for r in results if r is None or r.failure]
            out[f"{name}_img_s"] = round(len(jobs) * train_images / seconds, 1)
            if failures:
                out[f"{name}_failures"] = failures
            log(f"  K = {k}: {out[f'{name}_img_s']:,.0f} img/s ({seconds:.1f} s)"
                + (f", {len(failures)} failed: {failures[0]}" if failures else ""))
    return out


def ratios(result: dict) -> dict:
    """Each rate over its bare-loop baseline (graphed on CUDA, eager on the CPU)."""
    def ratio(a: str, b: str) -> float | None:
        x, y = result.get(a), result.get(b)
        return round(x / y, 3) if x and y else None

    out = {}
    for part in ("single", "full"):
        base = f"{part}_bare_graphed_img_s" if result.get(f"{part}_bare_graphed_img_s") else f"{part}_bare_eager_img_s"
        out[f"{part}_trainer_eager_vs_bare_eager"] = ratio(f"{part}_trainer_eager_img_s", f"{part}_bare_eager_img_s")
        out[f"{part}_trainer_graphed_vs_bare_graphed"] = ratio(f"{part}_trainer_graphed_img_s",
                                                               f"{part}_bare_graphed_img_s")
        kind = "graphed" if result.get(f"{part}_bare_graphed_img_s") else "eager"
        out[f"{part}_trainer_{kind}_noaug_vs_bare_{kind}"] = ratio(f"{part}_trainer_{kind}_noaug_img_s",
                                                                  f"{part}_bare_{kind}_img_s")
        out[f"{part}_best_trainer_vs_best_bare"] = ratio(
            max((f"{part}_trainer_eager_img_s", f"{part}_trainer_graphed_img_s"), key=lambda k: result.get(k) or 0),
            base)
    for key in [k for k in result if k.startswith("generation_k") and k.endswith("_img_s")]:
        out[key.replace("_img_s", "_vs_bare")] = ratio(key, "generation_bare_img_s")
    return out


def mps_active() -> bool:
    """An MPS control daemon is running: its process is seen (a pipe left behind by a
    daemon that was told to quit does not count)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().startswith("nvidia-cuda-mps"):
                return True
        except OSError:
            continue
    return False


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (default when the device is not CUDA)")
    p.add_argument("--gpu-sizes", action="store_true",
                   help="the GPU sizes even on the CPU (e.g. --parts counts for the paper-size networks)")
    p.add_argument("--data", help=".npz with x_train (N,32,32,3) uint8 and y_train; default: random images")
    p.add_argument("--ks", help="comma-separated K values (default: 1,2,4,8; tiny: 1,2)")
    p.add_argument("--parts", default="generation,single,full,counts",
                   help="parts to run, in this order (the generation first: it is the issue's headline; "
                        "a time limit skips the later ones)")
    p.add_argument("--compile", action="store_true",
                   help="also the bare loop over torch.compile(mode='reduce-overhead') of the search-size "
                        "candidate (its warm-up epoch, compilation included, is reported; minutes)")
    p.add_argument("--max-seconds", type=float, default=360.0,
                   help="start no measurement after this many seconds (it is reported as null)")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    sizes = GPU if args.gpu_sizes else TINY if args.tiny or not cuda else GPU
    if args.ks:
        sizes = Sizes(**{**sizes.__dict__, "ks": tuple(int(k) for k in args.ks.split(","))})
    clock = Clock(args.max_seconds)
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or "cpu")
    log(f"{device} ({name}), torch {torch.__version__}, {'tiny' if sizes is TINY else 'full'} sizes")
    result: dict = {"bench": "gpu", "device": str(device), "device_name": name, "torch": torch.__version__,
                    "sizes": "tiny" if sizes is TINY else "gpu", "mps": cuda and mps_active(),
                    "data": args.data or "random", "amp": cuda, "channels_last": cuda}
    parts = {"single": partial(single, compile=args.compile), "generation": generation, "full": full,
             "counts": counts}
    for part in args.parts.split(","):
        result.update(parts[part](sizes, device, args.data, clock))
    result.update(ratios(result))
    result.update({"seconds": round(clock.elapsed(), 1), "skipped": clock.skipped,
                   "sizes_used": {**sizes.__dict__, "ks": list(sizes.ks)}})
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
