#!/usr/bin/env bash
# Random search ranked by the `full` fitness (docs/search-quality.md, "does a search split
# closer to the final training rank better?", read after its result): the powered run's
# setting `full8g2v4` with its 8 candidates all random cells, generation 0 alone
# (population 8 + 8, max_generations 1: the same 8 candidate trainings, no children), on
# fresh search seeds (default 42-44), against the powered run's 25 random cells and their
# two trainings (bench/ledger/powered, bench/ledger/twoseeds, never re-run); each pick
# trained with training seeds 0 and 1. Run blind until every job is done; new jobs in
# bench/ledger/randsearch. Plan the study in docs/search-quality.md before running it.
#   bench/randsearch.sh [OUT] [--blind | --report-only] (default /work/runs/randsearch;
#   SEARCH_SEEDS=42,43,44 by default (the planned study: SEARCH_SEEDS=42,43,44,45,46,47); needs data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA and study()
V=${V/full8g2v4:/full8r8v4:}
V=${V/search.population=4,search.reduction_population=4,search.max_generations=2/search.population=8,search.reduction_population=8,search.max_generations=1}
[[ $V == *max_generations=1* ]] || { echo "bench/randsearch.sh: full8g2v4's settings changed; update the variant" >&2; exit 2; }
study bench/ledger/randsearch "${1:-/work/runs/randsearch}" bench/ledger/powered bench/ledger/twoseeds -- \
    --set "seeds=[${SEARCH_SEEDS:-42,43,44}]" --random 25 --random-seed0 2000 --train-seeds 2 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
