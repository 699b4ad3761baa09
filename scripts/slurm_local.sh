#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the `slurm` tests and the README's SLURM recipes:
#
#   bash scripts/slurm_local.sh start    # install slurm-wlm and munge if missing, start the daemons
#   bash scripts/slurm_local.sh status   # exit 0 when the cluster answers (sinfo), 1 otherwise
#   bash scripts/slurm_local.sh stop     # stop the daemons, remove the state
#
# Debian/Ubuntu, run as root (or with passwordless sudo) and without systemd: munged, slurmctld and
# slurmd are started directly, with their config, keys, state, spool and logs under
# $DLCOURSE_SLURM_DIR (default /tmp/dlcourse-slurm). One node, this host, with 2 CPUs
# (DLCOURSE_SLURM_CPUS) in a partition `debug`; no accounting daemon (slurmdbd), so `sacct` has no
# records and the sweep must do without them. No cgroups (containers rarely allow them): processes
# are tracked through /proc. Starting twice, or stopping a cluster that is not up, does nothing.
#
# Clients (sbatch, squeue, submitit) find the cluster through /etc/slurm/slurm.conf, a link to the
# config written here when no config of the machine's own is there; otherwise through SLURM_CONF
# (printed by `start`).
set -euo pipefail

DIR=${DLCOURSE_SLURM_DIR:-/tmp/dlcourse-slurm}
CPUS=${DLCOURSE_SLURM_CPUS:-2}
CONF=$DIR/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
PACKAGES=(slurm-wlm munge)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
    else die "needs root (or passwordless sudo) to run: $*"
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munged are not installed and apt-get is not available" \
        "(a Debian/Ubuntu machine is needed, or install ${PACKAGES[*]} yourself)"
    say "installing ${PACKAGES[*]} with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >"$DIR/apt.log" 2>&1 \
        || { as_root apt-get update -q >>"$DIR/apt.log" 2>&1 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >>"$DIR/apt.log" 2>&1; } \
        || die "apt-get install ${PACKAGES[*]} failed (see $DIR/apt.log)"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

answers() { SLURM_CONF=$CONF timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

write_config() {
    local host mem
    host=$(hostname -s)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log,run}
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: a single-node test cluster.
ClusterName=dlcourse
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it starts again (default 120 s; tests requeue jobs)
AuthInfo=socket=$DIR/run/munge.socket,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${DLCOURSE_SLURM_PORT:-6817}
SlurmdPort=$(( ${DLCOURSE_SLURM_PORT:-6817} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
# Fast turn-around for tests: jobs are seen to end within a second or two.
SchedulerParameters=sched_interval=1
MessageTimeout=20
KillWait=5
MinJobAge=300
NodeName=$host CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    [ -f "$DIR/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge.key" 2>/dev/null; }
    chmod 700 "$DIR/run"
    chmod 400 "$DIR/munge.key"
}

link_system_conf() {
    # A client without SLURM_CONF reads /etc/slurm/slurm.conf: point it here unless the machine has its own.
    if [ ! -e "$SYSTEM_CONF" ] || [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ]; then
        as_root mkdir -p "$(dirname "$SYSTEM_CONF")" && as_root ln -sfn "$CONF" "$SYSTEM_CONF" && return
    fi
    say "$SYSTEM_CONF belongs to this machine: run clients with SLURM_CONF=$CONF"
}

start() {
    mkdir -p "$DIR"
    if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" && answers; then
        say "already running (SLURM_CONF=$CONF)"
        link_system_conf
        return
    fi
    install_packages
    write_config
    pid_alive "$DIR/run/munged.pid" || as_root munged --force --socket="$DIR/run/munge.socket" \
        --key-file="$DIR/munge.key" --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/run/munged.seed" || die "munged did not start (see $DIR/log/munged.log)"
    export SLURM_CONF=$CONF
    pid_alive "$DIR/run/slurmctld.pid" || as_root env SLURM_CONF="$CONF" slurmctld -c -i \
        || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    pid_alive "$DIR/run/slurmd.pid" || as_root env SLURM_CONF="$CONF" slurmd -c \
        || die "slurmd did not start (see $DIR/log/slurmd.log)"
    link_system_conf
    for _ in $(seq 60); do
        if answers; then
            say "running: partition debug, node $(hostname -s) with $CPUS CPUs (SLURM_CONF=$CONF)"
            return
        fi
        sleep 0.5
    done
    SLURM_CONF=$CONF scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    answers || die "the daemons started but the node is not up: $(SLURM_CONF=$CONF sinfo -h 2>&1 | head -n 1)" \
        "(see $DIR/log/)"
    say "running (SLURM_CONF=$CONF)"
}

stop_daemon() {  # name, pid file
    local pid
    pid_alive "$2" || return 0
    pid=$(cat "$2")
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    say "$1 ($pid) did not stop on SIGTERM: killing it"
    as_root kill -9 "$pid" 2>/dev/null || true
}

stop() {
    if [ -f "$CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
        SLURM_CONF=$CONF timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
    fi
    stop_daemon slurmd "$DIR/run/slurmd.pid"
    stop_daemon slurmctld "$DIR/run/slurmctld.pid"
    stop_daemon munged "$DIR/run/munged.pid"
    [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ] && as_root rm -f "$SYSTEM_CONF"
    case "$DIR" in /tmp/*) as_root rm -rf "$DIR" ;; esac
    say "stopped"
}

status() {
    if [ -f "$CONF" ] && answers; then
        say "running (SLURM_CONF=$CONF)"
        SLURM_CONF=$CONF sinfo
    else
        say "not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
