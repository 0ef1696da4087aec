#!/usr/bin/env bash
# A one-node SLURM on 127.0.0.1 for the campaign tests (Debian's slurmctld, slurmd,
# slurm-client and munge; run as root; no systemd needed).
#   slurm_local.sh install      apt-get the packages (CI; the tests skip without them)
#   slurm_local.sh start DIR    write DIR/slurm.conf, start munged (unless running), slurmctld, slurmd
#   slurm_local.sh stop DIR     cancel every job, stop what start started
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf. Every daemon listens on
# loopback only (NoCtldInAddrAny, NoInAddrAny); state, logs and pid files stay in DIR.
set -euo pipefail

cmd=${1:-}
dir=${2:-}

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local until=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= until)); then return 1; fi
        sleep 0.5
    done
}

node_idle() {
    [[ "$(sinfo -h -N -o %t 2>/dev/null)" =~ ^(idle|mix|alloc)$ ]]
}

case "$cmd" in
install)
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
    ;;
start)
    [[ -n "$dir" ]] || { echo "usage: $0 start DIR" >&2; exit 2; }
    mkdir -p "$dir/state" "$dir/spool"
    dir=$(cd "$dir" && pwd)
    host=$(hostname -s)
    hardware=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hardware")
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
    port=$((20000 + RANDOM % 20000))  # two ports of its own: another test cluster may run
    cat >"$dir/slurm.conf" <<EOF
ClusterName=cgphw-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- munged
        touch "$dir/started-munged"
        wait_for 10 bash -c 'munge -n | unmunge'
    fi
    slurmctld
    slurmd -N "$host"
    if ! wait_for 30 node_idle; then
        echo "the SLURM node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
        exit 1
    fi
    ;;
stop)
    [[ -n "$dir" && -f "$dir/slurm.conf" ]] || exit 0
    export SLURM_CONF="$dir/slurm.conf"
    scancel --user=root >/dev/null 2>&1 || true
    for daemon in slurmd slurmctld; do
        if [[ -f "$dir/$daemon.pid" ]]; then
            pid=$(cat "$dir/$daemon.pid")
            kill "$pid" 2>/dev/null || true
            wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [[ -f "$dir/started-munged" && -f /run/munge/munged.pid ]]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$dir/started-munged"
    fi
    ;;
*)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
