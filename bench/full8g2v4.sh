# The `full8g2v4` search setting and data of the powered confirmation
# (docs/search-quality.md), sourced by bench/powered_confirmation.sh and
# bench/size_baseline.sh so that both name the same thing: every candidate trained from
# scratch for E_max = 8 epochs at C = 8, 4 + 4 individuals, 2 generations, 32x32 images,
# 4,000 validation images, the 10,000-image test set of data/cifar10-cpu-t10k.npz.
V=full8g2v4:search.evaluation=full,search.weight_sharing=false,search.channels=8,search.max_params=42000,search.max_epochs=8,search.population=4,search.reduction_population=4,search.max_generations=2,search.budget_hours=6,datasets.cifar10.val_size=4000
DATA=(--set datasets.cifar10.image_size=null --set datasets.cifar10.path=data/cifar10-cpu-t10k.npz)
SEEDS="seeds=[$(seq -s, 14 38)]"

# study LEDGER OUT REUSED... -- ARGS...: one planned study over the powered run's setting.
# Puts back the finished jobs of the REUSED ledgers and of the study's own LEDGER (a
# study longer than one session goes on where it stopped), runs bench/search_phase.py
# with the shared arguments plus ARGS (seeds, random cells, trainings, fidelity sample,
# --blind or --report-only), and keeps its new jobs in LEDGER. (The study scripts before
# 2026-12-06 wrote this out; bench/ledger.py restore then save is the same as theirs.)
PY=${PYTHON:-.venv/bin/python}
study() {
    local ledger=$1 out=$2 reused=() except=()
    shift 2
    while [ "$1" != "--" ]; do reused+=("$1"); except+=(--except-in "$1"); shift; done
    shift
    mkdir -p "$out"
    for l in ${reused[@]+"${reused[@]}"}; do $PY bench/ledger.py restore "$l" "$out"; done
    [ -d "$ledger" ] && $PY bench/ledger.py restore "$ledger" "$out"
    OMP_NUM_THREADS=1 $PY bench/search_phase.py --config config/cifar10-cpu.yaml \
        "${DATA[@]}" --finalists 0 --workers 2 --out "$out" --skip-paper --variant "$V" "$@"
    $PY bench/ledger.py save "$out" "$ledger" ${except[@]+"${except[@]}"}
}
