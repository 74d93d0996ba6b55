#!/usr/bin/env bash
# The powered confirmation of docs/search-quality.md ("Powered confirmation"): the `full`
# search setting on 25 fresh seeds against 25 fresh random cells, run blind (no fitness or
# accuracy printed) until every job is done. It takes about 12 hours on a 2-core VM, more
# than a session: each run first restores what bench/ledger/powered holds, and
# `bench/ledger.py save "$OUT" bench/ledger/powered` (then a commit) keeps what finished.
#   bench/powered_confirmation.sh [OUT] [--blind | --report-only] (default /work/runs/powered; needs
#   data/cifar10-cpu-t10k.npz, made as docs/benchmarks.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/full8g2v4.sh     # V, DATA, SEEDS (the replication's variant, unchanged) and study()
study bench/ledger/powered "${1:-/work/runs/powered}" -- \
    --set "$SEEDS" --random 25 --random-seed0 2000 --train-seeds 1 \
    --fidelity-best 0 --fidelity-spread 0 "${2:---blind}"
