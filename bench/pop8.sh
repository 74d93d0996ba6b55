#!/usr/bin/env bash
# A larger population for the `full` search (docs/search-quality.md, "does a population of
# 8 lift the `full` pick?", planned 2026-12-08): the powered run's setting `full8g2v4` with
# population 8 + 8 instead of 4 + 4 (16 candidates, 128 candidate-epochs), on fresh seeds
# 39-41, against the powered run's 25 random cells and their two trainings
# (bench/ledger/powered, bench/ledger/twoseeds, never re-run); each pick trained with
# training seeds 0 and 1. Run blind until every job is done; new jobs in bench/ledger/pop8.
#   bench/pop8.sh [OUT] [--blind | --report-only] (default /work/runs/pop8; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA and study()
V=${V/full8g2v4:/full8p8v4:}
V=${V/search.population=4,search.reduction_population=4/search.population=8,search.reduction_population=8}
study bench/ledger/pop8 "${1:-/work/runs/pop8}" bench/ledger/powered bench/ledger/twoseeds -- \
    --set "seeds=[39,40,41]" --random 25 --random-seed0 2000 --train-seeds 2 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
