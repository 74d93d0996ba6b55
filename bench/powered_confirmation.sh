#!/usr/bin/env bash
# The powered confirmation of docs/search-quality.md ("Powered confirmation"): the `full`
# search setting on 25 fresh seeds against 25 fresh random cells, run blind (no fitness or
# accuracy printed) until every job is done. It takes about 12 hours on a 2-core VM, more
# than a session: each run first restores what bench/ledger/powered holds, and
# `bench/ledger.py save "$OUT" bench/ledger/powered` (then a commit) keeps what finished.
#   bench/powered_confirmation.sh [OUT]     (default /work/runs/powered; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/work/runs/powered}
PY=${PYTHON:-.venv/bin/python}
LEDGER=bench/ledger/powered
# the variant of the replication (docs/benchmarks.md), unchanged: V, DATA, SEEDS
source bench/full8g2v4.sh
mkdir -p "$OUT"
[ -d "$LEDGER" ] && $PY bench/ledger.py restore "$LEDGER" "$OUT"
OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml "${DATA[@]}" \
    --set "$SEEDS" --random 25 --random-seed0 2000 --train-seeds 1 \
    --fidelity-best 0 --fidelity-spread 0 --finalists 0 --workers 2 --out "$OUT" \
    --skip-paper --blind --variant "$V"
$PY bench/ledger.py save "$OUT" "$LEDGER"
