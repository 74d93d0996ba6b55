"""Benchmark of the training engine (issue 4), not a test.

Measures, on one device, in one run and on the same model and images:

  bare      a hand-written PyTorch loop (SGD step on pre-normalised batches already on
            the device): the ceiling for the trainer
  trainer   nasgep.train.Trainer.train_epoch with no augmentation (only normalisation):
            the trainer's own overhead is trainer / bare (goal >= 0.95)
  search    Trainer.train_epoch with the search's augmentations (crop + flip, AutoAugment,
            CutOut, normalisation): what a search candidate really trains at
  *_graphs  (CUDA) the same two with TrainSettings.cuda_graphs: the whole step as one graph
  bare_graph (CUDA, --graph-probe) the bare loop as one CUDA graph
  pipeline  the augmentation pipeline alone (BatchAugment over chunks), with and without
            AutoAugment, against the training step alone (= bare)

The candidate is a search-size network (C = 16, N = 3, about 263k parameters) built by
nasgep.nn.build_network from the genome below, or from --genome. Data: --data FILE.npz
(keys x_train, y_train; e.g. ../shared/data/cifar10-lossless-5k.npz), else random
CIFAR-shaped images (speed does not depend on pixel values). Each measurement runs one
untimed warm-up epoch, then --repeats timed epochs, interleaved; each rate is reported as
the best and the median, each ratio as the median of the per-repeat ratios.
Progress goes to stderr, one JSON line of results to stdout.

  .venv/bin/python bench/bench_train.py --device cpu --images 1024 --threads 2
  python bench/bench_train.py --device cuda --data /path/to/cifar10.npz --images 45000
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nasgep.augment import AugmentSettings, BatchAugment  # noqa: E402
from nasgep.data import DataBundle, Split, channel_stats  # noqa: E402
from nasgep.space import Genome  # noqa: E402
from nasgep.train import Trainer, TrainSettings, resolve_device  # noqa: E402

#: A search-size candidate: 263,466 parameters at C = 16, N = 3 (the limit is 300,000).
GENOME = {
    "format": "nasgep-genome/1",
    "normal": {"cell": "cat add cat g1 | g2 g3 g4 g1 g2",
               "genes": {"g1": "add | sep_3x3(h1) isep_5x5(h2)", "g2": "sep_5x5 | dw_3x3(h1) h2",
                         "g3": "add | isep_3x3(h2) h1", "g4": "add | sep_1x7(h1) sep_7x1(h2)"}},
    "reduction": {"cell": "cat add g1 g2 | g3 g1 g2 g3 g1",
                  "genes": {"g1": "add | sep_3x3(h1) isep_5x5(h2)", "g2": "sep_3x3 | pw(h2) pw(h1)",
                            "g3": "add | dw_5x5(h1) sep_3x3(h2)"}},
}
SEARCH_AUGMENT = AugmentSettings(crop_flip=True, cutout=True, cutout_length=16, autoaugment=True, normalize=True)
NO_AUGMENT = AugmentSettings(crop_flip=False, cutout=False, autoaugment=False, normalize=True)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_images(path: str | None, n: int, seed: int) -> Split:
    """``n`` training images (the file's first ones, repeated if it has fewer), or random ones."""
    if path:
        with np.load(path) as npz:
            x, y = npz["x_train"], npz["y_train"].astype(np.int64)
        reps = -(-n // len(x))
        x = np.concatenate([x] * reps)[:n].transpose(0, 3, 1, 2)
        y = np.concatenate([y] * reps)[:n]
        return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (n,), generator=g))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


class BareLoop:
    """What a newcomer would write: SGD over fixed, normalised batches on the device."""

    def __init__(self, model, xs, ys, batch_size: int, lr: float, amp: bool, channels_last: bool) -> None:
        self.model, self.xs, self.ys, self.bs = model, xs, ys, batch_size
        self.amp, self.channels_last = amp, channels_last
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    def step(self, x, y) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(x)
        loss = F.cross_entropy(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self) -> None:
        self.model.train()
        for i in range(0, len(self.xs), self.bs):
            x = self.xs[i:i + self.bs]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.step(x, self.ys[i:i + self.bs])


class GraphedLoop(BareLoop):
    """The bare loop with the whole training step captured in one CUDA graph (PyTorch's
    'whole network capture' recipe): a probe of what kernel-launch overhead costs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.static_x = self.xs[:self.bs].clone()
        if self.channels_last:
            self.static_x = self.static_x.contiguous(memory_format=torch.channels_last)
        self.static_y = self.ys[:self.bs].clone()
        self.model.train()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.step(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
                out = self.model(self.static_x)
            loss = F.cross_entropy(out.float(), self.static_y)
            loss.backward()
            self.opt.step()

    def epoch(self) -> None:
        for i in range(0, len(self.xs) - self.bs + 1, self.bs):
            self.static_x.copy_(self.xs[i:i + self.bs])
            self.static_y.copy_(self.ys[i:i + self.bs])
            self.graph.replay()


def profile(model, xs, ys, args, amp: bool, channels_last: bool, device: torch.device) -> list:
    """The operations that take the most device time in ``args.profile`` bare steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    loop = BareLoop(model, xs[:args.batch_size * (args.profile + 2)], ys, args.batch_size, 0.1, amp, channels_last)
    loop.epoch()  # warm-up
    loop.xs = loop.xs[:args.batch_size * args.profile]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        loop.epoch()
        sync(device)
    averages = prof.key_averages()
    attr = "self_cpu_time_total"
    if device.type == "cuda":
        attr = "self_device_time_total" if hasattr(averages[0], "self_device_time_total") else "self_cuda_time_total"
    events = [e for e in averages if getattr(e, attr, 0) > 0]
    ops = [e for e in events if e.key.startswith("aten::")] or events   # kernels also appear by name
    total = sum(getattr(e, attr) for e in ops) or 1
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    rows = [[e.key[:90], round(getattr(e, attr) / 1000 / args.profile, 3), round(100 * getattr(e, attr) / total, 1),
             e.count // args.profile] for e in events[:15]]
    log(f"profile: {total / 1000 / args.profile:.1f} ms of {'device' if device.type == 'cuda' else 'CPU'} "
        f"time per step; top operations (ms/step, %, calls/step):")
    for name, ms, pct, calls in rows:
        log(f"  {ms:9.3f} {pct:5.1f}% {calls:5d}  {name}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data", help=".npz with x_train (N,32,32,3) uint8 and y_train; default: random images")
    p.add_argument("--images", type=int, help="training images per epoch (default: 1024 on CPU, 45000 on CUDA)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells-per-stage", type=int, default=3)
    p.add_argument("--genome", help="genome JSON (default: a 263k-parameter search candidate)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: PyTorch's choice)")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--graph-probe", action="store_true", help="also time the bare loop as one CUDA graph")
    p.add_argument("--runs", help="comma-separated subset of the measurements (default: all)")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="also profile this many bare training steps and log the costliest operations")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from nasgep.nn import Macro, build_network

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    amp, channels_last = cuda and not args.no_amp, cuda and not args.no_channels_last
    n = args.images or (45000 if cuda else 1024)
    n -= n % args.batch_size if n > args.batch_size else 0            # whole batches: same work for all loops
    genome = Genome.load(args.genome) if args.genome else Genome.from_dict(GENOME)

    split = load_images(args.data, n, args.seed)
    mean, std = channel_stats(split.x)
    bundle = DataBundle("bench", "npz", "search", split, Split(split.x[:64], split.y[:64]), "val", 10, 3, 32,
                        mean, std, tuple(str(k) for k in range(10)))
    on_device = bundle.on(device)
    xs = BatchAugment(NO_AUGMENT, mean, std).eval(on_device.train.x)  # normalised once, for the bare loop
    ys = on_device.train.y

    template = build_network(genome, Macro(channels=args.channels, cells_per_stage=args.cells_per_stage,
                                               num_classes=10, in_channels=3), seed=args.seed)
    params = sum(p.numel() for p in template.parameters())

    def fresh():
        model = copy.deepcopy(template).to(device)
        return model.to(memory_format=torch.channels_last) if channels_last else model

    def trainer(augment: AugmentSettings, graphs: bool = False) -> Trainer:
        settings = TrainSettings(epochs=1000, batch_size=args.batch_size, lr=0.1, augment=augment,
                                 amp=amp, channels_last=channels_last, cuda_graphs=graphs)
        return Trainer(fresh(), bundle, settings, device=device, seed=args.seed, progress=False)

    log(f"{device} ({torch.cuda.get_device_name(device) if cuda else platform.processor() or 'cpu'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {params:,} parameters, {n} images, "
        f"batch {args.batch_size}, amp {amp}, channels_last {channels_last}")

    runs = {
        "bare": BareLoop(fresh(), xs, ys, args.batch_size, 0.1, amp, channels_last).epoch,
        "trainer": trainer(NO_AUGMENT).train_epoch,
        "search": trainer(SEARCH_AUGMENT).train_epoch,
    }
    aug_all, aug_no_aa = BatchAugment(SEARCH_AUGMENT, mean, std), BatchAugment(
        AugmentSettings(crop_flip=True, cutout=True, autoaugment=False, normalize=True), mean, std)
    gen = torch.Generator().manual_seed(0)

    def pipeline(aug: BatchAugment):
        def run():
            order = torch.randperm(n, generator=gen).to(device)
            for s in range(0, n, 8192):
                aug(on_device.train.x[order[s:s + 8192]], gen)
        return run

    if cuda:
        runs["trainer_graphs"] = trainer(NO_AUGMENT, graphs=True).train_epoch
        runs["search_graphs"] = trainer(SEARCH_AUGMENT, graphs=True).train_epoch
    runs["pipeline"] = pipeline(aug_all)
    runs["pipeline_no_aa"] = pipeline(aug_no_aa)
    if args.graph_probe and cuda:
        try:
            runs["bare_graph"] = GraphedLoop(fresh(), xs, ys, args.batch_size, 0.1, amp, channels_last).epoch
        except Exception as e:  # a probe: report, do not fail the benchmark
            log(f"CUDA graph probe failed: {type(e).__name__}: {e}")

    if args.runs:
        runs = {k: v for k, v in runs.items() if k in args.runs.split(",")}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for name, fn in runs.items():
        log(f"warm-up {name}: {n / timed(fn, device):,.0f} img/s")
    for r in range(args.repeats):
        for name, fn in runs.items():
            rates[name].append(n / timed(fn, device))
        log(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()))

    top = profile(fresh(), xs, ys, args, amp, channels_last, device) if args.profile else None
    best = {k: max(v) for k, v in rates.items()}

    def ratio(a: str, b: str) -> float | None:
        """Median over repeats of a/b measured back to back: robust to a machine whose load
        drifts (a shared VM) where a ratio of two bests is not."""
        if a not in rates or b not in rates:
            return None
        return round(statistics.median(x / y for x, y in zip(rates[a], rates[b])), 3)

    result = {
        "bench": "train", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else (platform.processor() or "cpu"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "params": params, "images": n,
        "batch_size": args.batch_size, "amp": amp, "channels_last": channels_last,
        "data": args.data or "random",
        **{f"{k}_img_s": round(v, 1) for k, v in best.items()},
        **{f"{k}_img_s_median": round(statistics.median(v), 1) for k, v in rates.items()},
        "trainer_vs_bare": ratio("trainer", "bare"),
        "search_vs_bare": ratio("search", "bare"),
        "search_graphs_vs_bare": ratio("search_graphs", "bare"),
        "pipeline_vs_step": ratio("pipeline", "bare"),
        **({"profile_top": top} if top else {}),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
