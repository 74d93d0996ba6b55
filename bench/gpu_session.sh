#!/usr/bin/env bash
# One GPU window (about 9 minutes) for issue 11, run from the repo root on a GPU machine:
# the suite's CUDA tests, bench_gpu.py (generation first), the generation under MPS, and
# the untested leads (NCHW, torch.compile). Everything goes to OUT (default ./gpu-out):
# one JSON line per bench run (*.json) and its progress log (*.log). Each step has its own
# timeout, so a slow step costs only itself.
#   bench/gpu_session.sh [OUT]
# Where the machine lacks a package of pyproject.toml (jsonschema on the lent H200s), put
# its wheels in .whl/ first (docs/benchmarks.md); they are installed to /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-out}}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site:$PWD/src
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"; } > "$OUT/machine.txt" 2>&1
timeout 60 $PY -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_data.py -k "cuda or gpu" > "$OUT/pytest.txt" 2>&1
timeout 330 $PY bench/bench_gpu.py --max-seconds 250 > "$OUT/gpu.json" 2> "$OUT/gpu.log"
if nvidia-cuda-mps-control -d > "$OUT/mps.txt" 2>&1; then
    timeout 110 $PY bench/bench_gpu.py --parts generation --ks 2,4 --max-seconds 60 > "$OUT/gpu-mps.json" 2> "$OUT/gpu-mps.log"
    echo quit | nvidia-cuda-mps-control
    sleep 2
fi
timeout 180 $PY bench/bench_gpu.py --parts single --compile --max-seconds 150 > "$OUT/gpu-leads.json" 2> "$OUT/gpu-leads.log"
cat "$OUT/machine.txt"; tail -1 "$OUT/pytest.txt"
for f in "$OUT"/gpu*.json; do echo "== $f"; cat "$f"; done
