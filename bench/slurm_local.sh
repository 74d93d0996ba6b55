#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, and the demo study run through it.
#
#   sudo bench/slurm_local.sh [WORKDIR]        # default WORKDIR: a new folder under /tmp
#
# As root on Debian/Ubuntu, it
#   1. installs the distribution's slurm-wlm, slurmdbd, munge and mariadb-server (once),
#   2. starts munged, MariaDB, slurmdbd (accounting, so `sacct` lists jobs), slurmctld
#      and slurmd on localhost; no cgroup confinement (proctrack/linuxproc, task/none,
#      no cgroup.conf: Slurm 22.05 has no CgroupPlugin=disabled), partitions
#      `cpu` and `gpu` (the names in workflow/profiles/slurm) over this one node, GPUs as
#      gres only when nvidia-smi finds some,
#   3. runs the study (CONFIG, default config/demo.yaml) with
#        snakemake --workflow-profile workflow/profiles/slurm --directory WORKDIR
#   4. checks that every non-local job ran as an sbatch job (sacct lists one per job),
#      that the tables exist and that a second run has nothing to do, and prints the
#      sacct job list.
# Daemons are started directly (containers have no systemd) and left running; their
# configuration lives in /etc/slurm and /etc/munge, their logs in /var/log/slurm.
#
# Environment: CONFIG (study config), SNAKEMAKE (default: .venv/bin/snakemake, else PATH),
# SLURM_MEM_MB (memory this node declares; default 128000, see below).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$(realpath "${CONFIG:-$REPO/config/demo.yaml}")
WORK=${1:-$(mktemp -d /tmp/nasgep-slurm.XXXXXX)}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
SNAKEMAKE=${SNAKEMAKE:-$REPO/.venv/bin/snakemake}
[ -x "$SNAKEMAKE" ] || SNAKEMAKE=$(command -v snakemake)
export PATH="$(dirname "$SNAKEMAKE"):$PATH"     # the rules call nasgep from the same environment
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"   # ... with this checkout's package (sbatch --export=ALL)
HOST=$(hostname -s)
CPUS=$(nproc)
# The profile asks for the paper's memory (32 GB per search or training, 128 GB for the
# ImageNet transfer). Memory is not a consumable resource here (CR_Core) and the node is
# taken as configured (config_overrides), so those requests are accepted on a smaller
# machine; the demo's jobs use a few hundred MB each.
SLURM_MEM_MB=${SLURM_MEM_MB:-128000}

say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "run as root (it installs packages and starts daemons)"; exit 2; }

# ---------------------------------------------------------------- 1. packages
say "packages"
need=()
for pkg in slurm-wlm slurmdbd munge mariadb-server; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
slurmctld -V

# ---------------------------------------------------------------- 2. daemons
say "munge"
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- munged
munge -n | unmunge | grep -q 'STATUS: *Success'

say "MariaDB (slurmdbd's accounting database)"
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping --silent 2>/dev/null; then
    # its own session, like the SLURM daemons (they daemonize): a kill of the shell's session
    # or process group took MariaDB alone down (2026-12-07), and Snakemake then waited
    # without end for sacct to report a finished job
    (setsid mysqld_safe >/dev/null 2>&1 &)
    for _ in $(seq 60); do mysqladmin ping --silent 2>/dev/null && break; sleep 1; done
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/slurm
chown -R slurm:slurm /var/log/slurm /var/lib/slurm /run/slurm

cat > /etc/slurm/slurmdbd.conf <<EOF
# written by nasgep bench/slurm_local.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmdbpass
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf

GRES_TYPES="" NODE_GRES=""
: > /etc/slurm/gres.conf
if command -v nvidia-smi >/dev/null && GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [ "${GPUS:-0}" -gt 0 ]; then
    GRES_TYPES="GresTypes=gpu" NODE_GRES="Gres=gpu:$GPUS"
    echo "NodeName=$HOST Name=gpu File=/dev/nvidia[0-$((GPUS - 1))]" > /etc/slurm/gres.conf
fi

# this machine's sockets/cores/threads as slurmd sees them (a mismatch drains the node)
NODE_LINE=$(slurmd -C | head -n 1 | sed -E 's/ RealMemory=[0-9]+//')
cat > /etc/slurm/slurm.conf <<EOF
# written by nasgep bench/slurm_local.sh: one node, no cgroups, accounting through slurmdbd
ClusterName=nasgep-local
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=slurm
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MinJobAge=600
ReturnToService=2
$GRES_TYPES
$NODE_LINE RealMemory=$SLURM_MEM_MB $NODE_GRES State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF

say "slurmdbd, slurmctld, slurmd"
pgrep -x slurmdbd >/dev/null || slurmdbd
for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -i add cluster nasgep-local >/dev/null 2>&1 || true
sacctmgr -i add account nasgep Description="nasgep local" Organization=nasgep >/dev/null 2>&1 || true
sacctmgr -i add user "$(id -un)" DefaultAccount=nasgep >/dev/null 2>&1 || true
if pgrep -x slurmctld >/dev/null; then scontrol reconfigure; else slurmctld; fi
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break; sleep 1; done
scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
sinfo
srun -p cpu -N1 -n1 true     # one job end to end before snakemake

# ---------------------------------------------------------------- 3. the study
say "snakemake --workflow-profile workflow/profiles/slurm ($CONFIG) in $WORK"
START=$(date +%Y-%m-%dT%H:%M:%S)
SMK=("$SNAKEMAKE" --snakefile "$REPO/workflow/Snakefile" --directory "$WORK"
     --workflow-profile "$REPO/workflow/profiles/slurm" --configfile "$CONFIG")
SECONDS=0
"${SMK[@]}" 2>&1 | tee "$WORK/snakemake-slurm.log"
echo "wall time: ${SECONDS}s"

# ---------------------------------------------------------------- 4. checks
say "checks"
fail() { echo "FAILED: $*"; exit 1; }
RESULTS=$("$(dirname "$SNAKEMAKE")/python" -c \
    'import sys; from nasgep.config import load_config; print(load_config(sys.argv[1])["results_dir"])' "$CONFIG")
for t in table1 table2 table3; do
    [ -s "$WORK/$RESULTS/tables/$t.csv" ] || fail "$RESULTS/tables/$t.csv is missing"
done
echo "tables: $(ls "$WORK/$RESULTS/tables" | tr '\n' ' ')"
# every run folder (its settings.json: search, sample, training, transfer) carries the workflow's mark,
# which Snakemake makes with touch() once the job succeeded (docs/workflow.md)
RUNS=0
while IFS= read -r f; do
    RUNS=$((RUNS + 1))
    [ -e "$(dirname "$f")/.workflow-done" ] || fail "no .workflow-done beside $f"
done < <(find "$WORK/$RESULTS/search" "$WORK/$RESULTS/train" "$WORK/$RESULTS/transfer" \
              -path '*/.previous-*' -prune -o -name settings.json -print)
[ "$RUNS" -gt 0 ] || fail "no run folders under $RESULTS"
echo "run folders with the workflow's mark: $RUNS"

# an up-to-date study (run again with the same WORKDIR, e.g. to restart the daemons): no
# job, so nothing for sacct (the checks below stopped the script without a word)
SUBMITTED=()
if grep -q "Nothing to be done" "$WORK/snakemake-slurm.log"; then
    echo "the study was up to date: no job submitted"
else
    # jobs snakemake submitted (one "Job <n> has been submitted with SLURM jobid <id>" line each)
    mapfile -t SUBMITTED < <(grep -oE 'SLURM jobid [0-9]+' "$WORK/snakemake-slurm.log" | awk '{print $3}' | sort -un)
    LOCAL_RULES="all|prepare|tracking_store|select_best|draw_cells|tables|figures"
    # the first "Job stats" table: rule and job count, up to its "total" line
    REMOTE=$(awk '/^Job stats:/{s=1; next} s && /^total/{exit} s && NF==2 && $2 ~ /^[0-9]+$/ {print}' \
             "$WORK/snakemake-slurm.log" | grep -vE "^($LOCAL_RULES) " | awk '{n+=$2} END{print n+0}')
    echo "non-local jobs planned: $REMOTE, sbatch jobs submitted: ${#SUBMITTED[@]}"
    [ "${#SUBMITTED[@]}" -eq "$REMOTE" ] || fail "not every non-local job went through sbatch"
    sleep 2
    SACCT=$(sacct -X -n -P -S "$START" -o JobID,JobName,Partition,State,ExitCode,Elapsed,AllocCPUS)
    for id in "${SUBMITTED[@]}"; do
        line=$(grep -E "^$id\|" <<<"$SACCT") || fail "sacct does not list job $id"
        grep -q '|COMPLETED|' <<<"$line" || fail "job $id did not complete: $line"
    done
    echo "sacct lists all ${#SUBMITTED[@]} jobs as COMPLETED:"
    sacct -X -S "$START" -o JobID,JobName%40,Partition,State,ExitCode,Elapsed,AllocCPUS \
        | grep -E "^ *(JobID|-|$(IFS='|'; echo "${SUBMITTED[*]}")) "
    # which rule each job ran (the plugin names jobs by a run uuid and puts the rule into --comment)
    sacct -X -n -P -S "$START" -o JobID,Comment | grep -E "^($(IFS='|'; echo "${SUBMITTED[*]}"))\|" \
        | sed 's/|/  /' | head -n 60
fi

say "rerun"
"${SMK[@]}" -n 2>&1 | tee "$WORK/snakemake-rerun.log" | tail -n 3
grep -q "Nothing to be done" "$WORK/snakemake-rerun.log" || fail "a second run would do something"
echo "OK: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($CPUS CPUs), ${#SUBMITTED[@]} sbatch jobs, results in $WORK/$RESULTS"
