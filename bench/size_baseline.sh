#!/usr/bin/env bash
# The size-only baseline of docs/search-quality.md ("Size-only baseline"): the 25 picks of
# the powered confirmation against 25 cells that are each the largest (by parameters) of
# 8 random draws under the picks' limit (42,000 parameters at C = 8), trained the same
# way; run blind until every job is done.
#   bench/size_baseline.sh [OUT]     (default /work/runs/largest; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
# The picks' searches and trainings come from bench/ledger/powered (copied, never
# retrained); the new cells and trainings are kept in bench/ledger/largest.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/work/runs/largest}
PY=${PYTHON:-.venv/bin/python}
LEDGER=bench/ledger/largest
source bench/full8g2v4.sh     # V, DATA, SEEDS of the powered confirmation
mkdir -p "$OUT/train"
cp -rn bench/ledger/powered/search-full8g2v4 "$OUT/"
cp -rn bench/ledger/powered/train/full8g2v4-fitness-seed* "$OUT/train/"
[ -d "$LEDGER" ] && $PY bench/ledger.py restore "$LEDGER" "$OUT"
OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml "${DATA[@]}" \
    --set search.channels=8 --set search.max_params=42000 \
    --set "$SEEDS" --random 25 --random-seed0 4000 --random-largest-of 8 --train-seeds 1 \
    --fidelity-best 0 --fidelity-spread 0 --finalists 0 --workers 2 --out "$OUT" \
    --skip-paper --blind --variant "$V"
$PY bench/ledger.py save "$OUT" "$LEDGER" --except-in bench/ledger/powered
