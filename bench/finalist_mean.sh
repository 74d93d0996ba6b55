#!/usr/bin/env bash
# Re-evaluating the top candidates of the powered confirmation's `full` searches
# (docs/search-quality.md, "does re-evaluating the top candidates lift the pick?"): the
# `retrain` final selection on the 25 searches of bench/ledger/powered (never re-run), 3
# finalists each trained once more from scratch for E_max epochs, the choice by the mean of
# the two from-scratch measurements (search/finalists.py); the new picks trained with
# training seeds 0 and 1, against the same 25 random cells and their two trainings
# (bench/ledger/powered, bench/ledger/twoseeds). Run blind until every job is done; the new
# jobs are kept in bench/ledger/finalmean.
#   [FIRST_SEED=14 LAST_SEED=23] bench/finalist_mean.sh [OUT] [--blind | --report-only] (default /work/runs/finalmean; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA, SEEDS and study()
SEEDS="seeds=[$(seq -s, ${FIRST_SEED:-14} ${LAST_SEED:-23})]"   # the first 10 of the 25 (the plan's amendment)
study bench/ledger/finalmean "${1:-/work/runs/finalmean}" bench/ledger/powered bench/ledger/twoseeds -- \
    --set "$SEEDS" --random 25 --random-seed0 2000 --train-seeds 2 --finalists 3 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
