#!/usr/bin/env bash
# Do cells matter more with two cells per stage? (docs/search-quality.md, planned
# 2026-12-07): the first 12 random cells of the powered confirmation (r2000-r2011), each
# trained twice at N = 2 (train.cells_per_stage=2), otherwise as the powered study's
# random cells; their N = 1 trainings come from bench/ledger/powered and twoseeds. The
# N = 2 trainings are kept in bench/ledger/cells2.
#   bench/cells_per_stage.sh [OUT]   (default /work/runs/n2; needs data/cifar10-cpu-t10k.npz,
#                                      made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-/work/runs/n2}
mkdir -p "$OUT/random"
for r in $(seq 2000 2011); do
    [ -e "$OUT/random/r$r.json" ] || cp "bench/ledger/powered/random/r$r.json" "$OUT/random/"
done
[ -d bench/ledger/cells2 ] && $PY bench/ledger.py restore bench/ledger/cells2 "$OUT"
OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml \
    --set datasets.cifar10.image_size=null --set datasets.cifar10.path=data/cifar10-cpu-t10k.npz \
    --set train.cells_per_stage=2 --skip-paper --random 12 --random-seed0 2000 --train-seeds 2 \
    --finalists 0 --fidelity-best 0 --fidelity-spread 0 --workers 2 --out "$OUT" --blind
$PY bench/ledger.py save "$OUT" bench/ledger/cells2 --except-in bench/ledger/powered
$PY bench/cells_per_stage.py "$OUT"
