#!/usr/bin/env bash
# The fidelity of the `full8g2v4` fitness (docs/search-quality.md, "Fidelity of the full
# fitness"): of 8 of the powered confirmation's searches (seeds 14-21), the 2 fittest and
# 2 more individuals spread over the fitness range, each trained fully once as the picks
# were; Kendall's tau between their search fitness and trained accuracy. Run blind.
#   bench/fidelity_full.sh [OUT] [--blind | --report-only] (default /work/runs/fidelity; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
# The searches, picks and random cells come from bench/ledger/powered (never re-run);
# the new trainings are kept in bench/ledger/fidelity.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA and study()
study bench/ledger/fidelity "${1:-/work/runs/fidelity}" bench/ledger/powered -- \
    --set "seeds=[$(seq -s, 14 21)]" --random 25 --random-seed0 2000 --train-seeds 1 \
    --fidelity-best 2 --fidelity-spread 2 "${2:---blind}"
