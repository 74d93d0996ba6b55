#!/usr/bin/env bash
# A second training seed for the powered confirmation's 25 picks and 25 random cells
# (docs/search-quality.md, "Two training seeds"): the same command with --train-seeds 2,
# so each genome's accuracy is the mean of two trainings; run blind until every job is
# done. The searches, random draws and seed-0 trainings come from bench/ledger/powered
# (never re-run); the 50 seed-1 trainings are kept in bench/ledger/twoseeds.
#   bench/two_seeds.sh [OUT] [--blind | --report-only] (default /work/runs/twoseeds; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA, SEEDS and study()
study bench/ledger/twoseeds "${1:-/work/runs/twoseeds}" bench/ledger/powered -- \
    --set "$SEEDS" --random 25 --random-seed0 2000 --train-seeds 2 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
