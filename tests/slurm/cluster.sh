#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests/test_slurm.py (and by hand).
# Debian packages `slurm-wlm` and `munge` (SLURM 22.05+), run as root. Its own munge key,
# socket and daemon, state, spool and logs live in one folder (default /tmp/lora-study-slurm);
# a site's own munged keeps running beside it. The one file outside that folder is
# /etc/slurm/slurm.conf, where `srun` inside a job looks (the SLURM executor's job step
# drops SLURM_CONF from srun's environment); it is written only where none exists or where
# this script wrote it, and removed again by `stop`.
#
#   bash tests/slurm/cluster.sh start [DIR]   configure and start munged, slurmctld, slurmd;
#                                             wait until the node is idle (a no-op if up)
#   bash tests/slurm/cluster.sh stop [DIR]    cancel all jobs, stop the three daemons, remove
#                                             the slurm.conf it wrote
#   bash tests/slurm/cluster.sh status [DIR]  exit 0 if the cluster answers and the node is up
#
# The node offers this machine's CPUs and 80% of its memory (at most 16000 MB), no GPU;
# no accounting (sacct does not work: use `--slurm-status-command squeue`).
set -euo pipefail

action=${1:-}
dir=${2:-${LORA_STUDY_SLURM_DIR:-/tmp/lora-study-slurm}}
ctld_port=${LORA_STUDY_SLURM_PORT:-6917}   # slurmd listens on the next port
conf=/etc/slurm/slurm.conf
marker="# Written by tests/slurm/cluster.sh"
unset SLURM_CONF   # every SLURM command here reads $conf, like srun inside the jobs

die() { echo "cluster.sh: $*" >&2; exit 1; }

is_ours() {  # the slurm.conf in place is one this script wrote
    [ -f "$conf" ] && head -n1 "$conf" | grep -qF "$marker"
}

is_running() {  # pid file -> 0 when its process is alive
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_up() {  # the controller answers and the node is idle, mixed or allocated
    is_ours || return 1
    local state
    state=$(timeout 10 sinfo --noheader --Node --format=%T 2>/dev/null | head -n1) || return 1
    case "$state" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

configure() {
    local host cpus mem_total real_memory
    host=$(hostname -s)
    cpus=$(nproc)
    mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    real_memory=$(( mem_total * 8 / 10 ))
    [ "$real_memory" -gt 16000 ] && real_memory=16000
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    chmod 700 "$dir"
    if [ -e "$conf" ] && ! is_ours; then
        die "$conf exists and is not ours (a real SLURM node?): not touching it"
    fi
    mkdir -p "$(dirname "$conf")"
    if [ ! -s "$dir/munge.key" ]; then
        dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$dir/munge.key"
    cat > "$conf" <<CONF
$marker for the test cluster in $dir: one node, no accounting, no GPU.
ClusterName=lorastudy
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue and scontrol this long (seconds); the executor plugin
# needs at least 3x its status-check interval to use squeue instead of sacct, and the test
# reads every job's final state after a whole workflow run (over 10 min on a busy 2-core machine).
MinJobAge=3600
KillWait=5
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (munged, slurmctld and slurmd are started as root)"
    for tool in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
        command -v "$tool" >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
    done
    if node_up && is_running "$dir/munged.pid" && is_running "$dir/slurmctld.pid" && is_running "$dir/slurmd.pid"; then
        echo "cluster.sh: already up ($conf)"
        return 0
    fi
    stop >/dev/null 2>&1 || true
    configure
    munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"
    slurmctld -c
    slurmd -N "$(hostname -s)"
    for _ in $(seq 60); do
        if node_up; then
            echo "cluster.sh: up ($conf, state in $dir)"
            sinfo --Node --long
            return 0
        fi
        scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
        sleep 1
    done
    echo "cluster.sh: the node did not become idle; logs follow" >&2
    sinfo --Node --long >&2 || true
    tail -n 30 "$dir"/log/*.log >&2 || true
    exit 1
}

stop() {
    # scancel first so that no job outlives the cluster, then each daemon by its pid file,
    # in this folder and in the one the slurm.conf in place names (a cluster started elsewhere).
    local folders=("$dir") name pidfile pid
    if is_ours; then
        folders+=("$(sed -n 's|^StateSaveLocation=\(.*\)/state$|\1|p' "$conf")")
        if timeout 10 scancel --full --quiet >/dev/null 2>&1; then
            # slurmd must stay up until the jobs are gone: it is what kills them.
            for _ in $(seq 30); do
                [ -z "$(timeout 10 squeue --noheader --states=PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null)" ] && break
                sleep 1
            done
        fi
    fi
    for folder in "${folders[@]}"; do
        for name in slurmd slurmctld munged; do
            pidfile="$folder/$name.pid"
            if is_running "$pidfile"; then
                pid=$(cat "$pidfile")
                kill "$pid"
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
                if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
            fi
            rm -f "$pidfile"
        done
    done
    # A job step whose slurmd died first (slurmstepd ignores SIGTERM): by pid, only those
    # holding files in this cluster's folders.
    for pid in $(pgrep -x slurmstepd || true); do
        for folder in "${folders[@]}"; do
            if ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF " -> $folder/"; then kill -9 "$pid" || true; fi
        done
    done
    if is_ours; then rm -f "$conf"; fi
    echo "cluster.sh: stopped"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    status) node_up ;;
    *) die "usage: cluster.sh start|stop|status [DIR]" ;;
esac
