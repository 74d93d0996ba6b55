#!/usr/bin/env bash
# A second training seed for the powered confirmation's 25 picks and 25 random cells
# (docs/search-quality.md, "Two training seeds"): the same command with --train-seeds 2,
# so each genome's accuracy is the mean of two trainings; run blind until every job is
# done. The searches, random draws and seed-0 trainings come from bench/ledger/powered
# (never re-run); the 50 seed-1 trainings are kept in bench/ledger/twoseeds.
#   bench/two_seeds.sh [OUT]     (default /work/runs/twoseeds; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/work/runs/twoseeds}
PY=${PYTHON:-.venv/bin/python}
LEDGER=bench/ledger/twoseeds
source bench/full8g2v4.sh     # V, DATA, SEEDS of the powered confirmation
mkdir -p "$OUT"
$PY bench/ledger.py restore bench/ledger/powered "$OUT"
[ -d "$LEDGER" ] && $PY bench/ledger.py restore "$LEDGER" "$OUT"
OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml "${DATA[@]}" \
    --set "$SEEDS" --random 25 --random-seed0 2000 --train-seeds 2 \
    --fidelity-best 0 --fidelity-spread 0 --finalists 0 --workers 2 --out "$OUT" \
    --skip-paper --blind --variant "$V"
$PY bench/ledger.py save "$OUT" "$LEDGER" --except-in bench/ledger/powered
