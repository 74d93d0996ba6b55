#!/usr/bin/env bash
# The fidelity of the `full8g2v4` fitness (docs/search-quality.md, "Fidelity of the full
# fitness"): of 8 of the powered confirmation's searches (seeds 14-21), the 2 fittest and
# 2 more individuals spread over the fitness range, each trained fully once as the picks
# were; Kendall's tau between their search fitness and trained accuracy. Run blind.
#   bench/fidelity_full.sh [OUT]     (default /work/runs/fidelity; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
# The searches, picks and random cells come from bench/ledger/powered (never re-run);
# the new trainings are kept in bench/ledger/fidelity.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/work/runs/fidelity}
PY=${PYTHON:-.venv/bin/python}
LEDGER=bench/ledger/fidelity
source bench/full8g2v4.sh     # V, DATA of the powered confirmation
mkdir -p "$OUT"
$PY bench/ledger.py restore bench/ledger/powered "$OUT"
[ -d "$LEDGER" ] && $PY bench/ledger.py restore "$LEDGER" "$OUT"
OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml "${DATA[@]}" \
    --set "seeds=[$(seq -s, 14 21)]" --random 25 --random-seed0 2000 --train-seeds 1 \
    --fidelity-best 2 --fidelity-spread 2 --finalists 0 --workers 2 --out "$OUT" \
    --skip-paper --blind --variant "$V"
$PY bench/ledger.py save "$OUT" "$LEDGER" --except-in bench/ledger/powered
