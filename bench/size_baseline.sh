#!/usr/bin/env bash
# The size-only baseline of docs/search-quality.md ("Size-only baseline"): the 25 picks of
# the powered confirmation against 25 cells that are each the largest (by parameters) of
# 8 random draws under the picks' limit (42,000 parameters at C = 8), trained the same
# way; run blind until every job is done.
#   bench/size_baseline.sh [OUT] [--blind | --report-only] (default /work/runs/largest; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
# The picks' searches and trainings come from bench/ledger/powered (copied, never
# retrained); the new cells and trainings are kept in bench/ledger/largest.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA, SEEDS and study()
study bench/ledger/largest "${1:-/work/runs/largest}" bench/ledger/powered -- \
    --set search.channels=8 --set search.max_params=42000 --set "$SEEDS" \
    --random 25 --random-seed0 4000 --random-largest-of 8 --train-seeds 1 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
