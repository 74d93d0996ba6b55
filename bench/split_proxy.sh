#!/usr/bin/env bash
# Does a search split closer to the final training rank genomes better? (docs/search-quality.md,
# "does a search split closer to the final training rank better?"). The powered run's 25 random
# cells, each trained twice (bench/ledger/powered, bench/ledger/twoseeds), trained once more
# as a `full8g2v4` search trains a candidate (C = 8, 8 epochs from scratch, cosine), on two
# search splits of the same 5,000 training images: 4,000 validation / 1,000 training (the
# powered run's) and 1,000 validation / 4,000 training; Kendall's tau of each proxy with the
# genomes' trained accuracy, and what each would pick from 8 of them.
#   bench/split_proxy.sh [OUT] [--blind | --report-only] (default /work/runs/twoseeds; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
# --blind writes the reports to OUT/split-proxy-v*.md without printing them. The proxies'
# curves are kept in bench/ledger/splitproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-/work/runs/twoseeds}
LEDGER=bench/ledger/splitproxy
bench/two_seeds.sh "$OUT" --report-only > /dev/null      # puts back the trainings (trains nothing)
COMMON=(--config config/cifar10-cpu.yaml --group random --out "$OUT" --workers 2 --last-only
        --set datasets.cifar10.image_size=null --set datasets.cifar10.path=data/cifar10-cpu-t10k.npz
        --set search.channels=8 --set search.max_params=42000 --set search.max_epochs=8
        --set search.weight_sharing=false)
for v in 4000 1000; do
    mkdir -p "$OUT/proxy-v$v" "$LEDGER/v$v"
    cp -n "$LEDGER/v$v/"*.json "$OUT/proxy-v$v/" 2>/dev/null || true
    OMP_NUM_THREADS=1 $PY bench/proxy_fidelity.py "${COMMON[@]}" --set datasets.cifar10.val_size=$v \
        --name v$v > "$OUT/split-proxy-v$v.md" 2> "$OUT/split-proxy-v$v.log"
    cp "$OUT/proxy-v$v/"*.json "$LEDGER/v$v/"
    [ "${2:---blind}" = --blind ] || cat "$OUT/split-proxy-v$v.md"
done
