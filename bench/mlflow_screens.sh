#!/usr/bin/env bash
# Screenshots of a study's MLflow UI as a person sees it, taken with headless Chromium.
#
#   bench/mlflow_screens.sh [CONFIG] [OUT]     # default: config/demo.yaml, docs/img
#
# Run from the folder the study ran in (results_dir is relative to it), e.g. after
# `make demo`, or cd into a bench/slurm_local.sh work folder and give absolute paths.
# It starts `mlflow ui` on the study's store on 127.0.0.1 (a free port), then saves
#   mlflow_ablation_runs.png     the runs table of <name>/ablation (Table I's trainings)
#   mlflow_ablation_charts.png   the same runs in the chart view: one chart per metric,
#                                the ablations side by side
#   mlflow_default_landing.png   what `mlflow ui` shows on its own (the page a user lands on)
#   mlflow_ablation_plain.png    the experiment opened by its plain address (#/experiments/<id>)
# and stops the UI. Needs chromium (Debian: apt-get install chromium) and curl.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$(realpath "${1:-$REPO/config/demo.yaml}")
OUT=$(mkdir -p "${2:-$REPO/docs/img}" && realpath "${2:-$REPO/docs/img}")
PY=${PYTHON:-$REPO/.venv/bin/python}
NASGEP=("$PY" -m nasgep)
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$CHROMIUM" ] || { echo "chromium not found (Debian: apt-get install chromium)"; exit 2; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

# the addresses `nasgep track ui` prints, and the store's experiment ids
"${NASGEP[@]}" track ui --config "$CONFIG" --port "$PORT" --print | tee "$OUT/mlflow_track_ui.txt"
ABLATION=$(awk '$1 ~ /\/ablation$/ {print $2}' "$OUT/mlflow_track_ui.txt")
[ -n "$ABLATION" ] || { echo "the store has no ablation experiment"; exit 1; }
STORE=$(head -n 1 "$OUT/mlflow_track_ui.txt" | awk '{print $4}')   # mlflow ui --backend-store-uri URI ...

LOG=$(mktemp)
"$(dirname "$PY")/mlflow" ui --backend-store-uri "$STORE" --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
UI_PID=$!
trap 'kill $UI_PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 120); do
    curl -sf "$BASE/health" >/dev/null 2>&1 && break
    kill -0 $UI_PID 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 1
done

shot() {  # shot NAME URL: a 1600x1000 screenshot once the charts have loaded (90 s of page time)
    local png="$OUT/$1.png"
    # headless Chromium (Debian's 156) once hung on a page for over 13 minutes, until killed,
    # without a screenshot (2026-12-07, a 2-core machine at a 15-minute load average of 40;
    # the same page took 13 s when taken again): give up on a page after 5 minutes
    timeout -k 10 300 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1600,1000 --virtual-time-budget=90000 --screenshot="$png" "$2" >/dev/null 2>&1 \
        || { echo "chromium gave no screenshot of $2 within 300 s; run the script again"; exit 1; }
    # a 128-colour palette: a UI screenshot stays readable at a fraction of the size
    "$PY" -c 'import sys; from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB"); im.quantize(128).save(sys.argv[1], optimize=True)' "$png"
    echo "$png  $(du -k "$png" | cut -f1) KB  <- $2"
}
shot mlflow_ablation_runs "$ABLATION"
shot mlflow_ablation_charts "${ABLATION}&compareRunsMode=CHART"
shot mlflow_default_landing "$BASE/"
shot mlflow_ablation_plain "${ABLATION%%/runs*}"     # the experiment's own address, no switches
