#!/usr/bin/env bash
# A second training seed for the size-only baseline's 25 largest-of-8 cells
# (docs/search-quality.md, "Size-only baseline with two training seeds"): the
# bench/size_baseline.sh command with --train-seeds 2, run blind until every job is done
# (then the same with --report-only reads it). The picks' searches and both their
# trainings, and the cells' draws and seed-0 trainings, come from the ledgers powered,
# twoseeds and largest (never re-run); the 25 new trainings are kept in bench/ledger/largest2.
#   bench/size_two_seeds.sh [OUT] [--blind | --report-only]   (default /work/runs/largest2;
#   needs data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA, SEEDS and study()
study bench/ledger/largest2 "${1:-/work/runs/largest2}" \
    bench/ledger/powered bench/ledger/twoseeds bench/ledger/largest -- \
    --set search.channels=8 --set search.max_params=42000 --set "$SEEDS" \
    --random 25 --random-seed0 4000 --random-largest-of 8 --train-seeds 2 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
