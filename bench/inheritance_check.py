"""Does weight inheritance hand a child weights that fit it, and do they help? (issue 9)

For the children a finished search bred in its last generation(s), against the weight
store as it was when they were born (the checkpoint of the generation before):
  * key check: how many of the child's inheritance keys the store holds, whether the
    stored tensors have the child's names and shapes, the share of parameters inherited;
  * first-epoch validation accuracy with and without inheritance, same seed, same data
    (paired; one-sided Wilcoxon and permutation tests from scipy.stats).

  python bench/inheritance_check.py --config config/cifar10-cpu.yaml \
      --search results/cifar10-cpu/searchphase/search/seed0 --children 6

Prints a Markdown summary; writes nothing into the search folder (the child states go
to a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--search", required=True, help="a finished search folder")
    p.add_argument("--children", type=int, default=6)
    p.add_argument("--dataset", default=None)
    a = p.parse_args()

    import numpy as np
    import torch
    from scipy import stats

    from nasgep.config import load_config
    from nasgep.nn import build_network
    from nasgep.search import checkpoint
    from nasgep.search.evaluator import TrainJob, job_seed
    from nasgep.search.store import WeightStore
    from nasgep.search.torch_evaluator import TorchEvaluator
    from nasgep.space import Genome

    torch.set_num_threads(1)
    config = load_config(a.config, ["tracking.enabled=false"])
    dataset = a.dataset or config["search"]["dataset"]
    search = Path(a.search)
    states = {st.generation: st for st in checkpoint.loadable_states(search / "checkpoints")}
    history = [r for r in states[max(states)].history if r["epochs_this_generation"] and r["born"] == r["generation"]
               and r["generation"] - 1 in states and r["failure"] is None and r["generation"] > 0]
    history.sort(key=lambda r: (-r["generation"], r["id"]))
    children = history[: a.children]
    tmp = Path(tempfile.mkdtemp(prefix="nasgep-inherit-"))
    ev = TorchEvaluator(config, dataset, tmp, seed=states[max(states)].seed, device="cpu")
    ev.store = WeightStore(search / "weights")
    rows = []
    for r in children:
        index = states[r["generation"] - 1].store_index
        genome = Genome.from_json(r["genome"])
        net = build_network(genome, ev.macro, seed=0)
        units = net.inheritance_units(dataset)
        present = [k for k in units if k in index and (search / "weights" / index[k]["file"]).exists()]
        mismatched = 0
        for k in present:
            saved = torch.load(search / "weights" / index[k]["file"], map_location="cpu", weights_only=True)["state"]
            own = units[k].state_dict()
            if saved.keys() != own.keys() or any(saved[n].shape != own[n].shape for n in own):
                mismatched += 1
        seed = job_seed(999, r["id"], 1)
        with_inh = ev.train(TrainJob(r["id"] + "-inh", genome, 1, seed, index))
        without = ev.train(TrainJob(r["id"] + "-fresh", genome, 1, seed, None))
        rows.append({"id": r["id"], "generation": r["generation"], "keys": len(units), "in_store": len(present),
                     "mismatched": mismatched, "inherited": with_inh.inherited,
                     "search_fitness": r["fitness"] if r["epochs"] == 1 else None,
                     "with": with_inh.fitness, "without": without.fitness})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    d = np.array([x["with"] - x["without"] for x in rows])
    print("| child | gen | keys in store / all | shape mismatches | params inherited | "
          "epoch-1 val acc with | without |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        print(f"| {x['id']} | {x['generation']} | {x['in_store']}/{x['keys']} | {x['mismatched']} | "
              f"{100 * x['inherited']:.0f} % | {x['with']:.2f} | {x['without']:.2f} |")
    if len(d) > 1:
        w = stats.wilcoxon(d, alternative="greater") if np.any(d != 0) else None
        perm = stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater")
        print(f"\nmean gain with inheritance {d.mean():+.2f} points (sd {d.std(ddof=1):.2f}, n = {len(d)}); "
              "one-sided Wilcoxon "
              f"p = {w.pvalue if w else float('nan'):.3f}, sign-flip permutation p = {perm.pvalue:.3f}")


if __name__ == "__main__":
    main()
