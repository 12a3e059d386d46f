#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests/test_slurm.py.
#
#   sudo tests/slurm/setup_slurm.sh          # install (if needed), configure, start, wait for the node
#   tests/slurm/setup_slurm.sh --check       # only report whether a usable cluster is up (exit 0/3)
#   sudo tests/slurm/setup_slurm.sh --stop   # stop the daemons this script started (pid files)
#
# Debian/Ubuntu's slurm-wlm (slurmctld + slurmd 22.05 on Debian 12) and munge, a slurm.conf for one node
# named after this host (its CPUs and memory as `slurmd -C` reports them), one partition, no GPUs,
# proctrack/linuxproc, task/none, no accounting database (accounting_storage/none) but a job completion
# log (jobcomp/filetxt) so finished jobs can be checked afterwards. Daemons are started directly (no
# systemd). Idempotent: when the partition already takes jobs it exits at once; otherwise it (re)starts
# only what is not running, and restarts its own daemons only if it had to rewrite slurm.conf.
#
# Exit status: 0 ready; 2 cannot be done here (not root, no apt-get, packages unavailable, a slurm.conf
# that this script did not write); 1 set up but the node did not come up in time (daemon logs printed);
# 3 (--check only) no usable cluster.
# Environment: DFSTUDY_SLURM_PARTITION (default: dfstudy), DFSTUDY_SLURM_WAIT_S (default: 120),
# DFSTUDY_SLURM_APT_TIMEOUT_S (default: 900).
set -euo pipefail

PARTITION=${DFSTUDY_SLURM_PARTITION:-dfstudy}
WAIT_S=${DFSTUDY_SLURM_WAIT_S:-120}
APT_TIMEOUT_S=${DFSTUDY_SLURM_APT_TIMEOUT_S:-900}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARKER="# written by dfstudy tests/slurm/setup_slurm.sh"
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
JOBCOMP=$LOG_DIR/jobcomp.log
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

say() { echo "setup_slurm: $*" >&2; }
cannot() { say "CANNOT SET UP SLURM: $*"; exit 2; }
fail() {
    say "FAILED: $*"
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [ -r "$f" ] && { say "--- last lines of $f"; tail -n 20 "$f" >&2; }
    done
    exit 1
}
running() { [ -r "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# sinfo %T: idle, mixed, ...; a trailing * means "not responding", so no pattern below accepts it
node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

cluster_usable() {  # a node of $PARTITION that takes jobs (sinfo itself needs munge to work)
    command -v sinfo >/dev/null && command -v sbatch >/dev/null || return 1
    local states
    states=$(timeout 10 sinfo -h -p "$PARTITION" -o %T 2>/dev/null) || return 1
    grep -Eq '^(idle|mixed|allocated|completing)$' <<<"$states"
}

NODE=$(hostname -s)
export PATH=$PATH:/usr/sbin:/sbin   # slurmctld, slurmd, munged live in sbin

case "${1:-}" in
--check)
    if cluster_usable; then say "SLURM partition $PARTITION is up"; exit 0; fi
    say "no usable SLURM partition $PARTITION"; exit 3 ;;
--stop)
    [ "$(id -u)" = 0 ] || cannot "--stop must run as root"
    for p in "$SLURMD_PID" "$CTLD_PID"; do
        if running "$p"; then pid=$(cat "$p"); kill "$pid"; say "stopped pid $pid ($p)"; fi
    done
    exit 0 ;;
"") ;;
*) say "unknown argument: $1 (use --check or --stop)"; exit 2 ;;
esac

# --- 0. Already up (this script ran before, or a real cluster): nothing to do.
if cluster_usable; then
    say "SLURM partition $PARTITION already up: $(sinfo -h -p "$PARTITION" -o '%N %T %c CPUs %m MB')"
    exit 0
fi

# --- 1. Preconditions.
[ "$(id -u)" = 0 ] || cannot "must run as root (daemons, /etc/slurm, apt-get); run it with sudo"
[ "$(uname -s)" = Linux ] || cannot "Linux only"

# --- 2. Packages.
need_install=0
for cmd in slurmctld slurmd sbatch sinfo munged; do
    command -v "$cmd" >/dev/null || need_install=1
done
if [ "$need_install" = 1 ]; then
    command -v apt-get >/dev/null || cannot "slurmctld/slurmd/munge are not installed and there is no apt-get"
    say "installing slurmctld slurmd slurm-client munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=${TMPDIR:-/tmp}/dfstudy-setup_slurm-apt.log
    if ! timeout "$APT_TIMEOUT_S" apt-get update > "$apt_log" 2>&1; then
        tail -n 5 "$apt_log" >&2; cannot "apt-get update failed (no network or no package sources?), see $apt_log"
    fi
    if ! timeout "$APT_TIMEOUT_S" apt-get install -y --no-install-recommends \
        slurmctld slurmd slurm-client munge >> "$apt_log" 2>&1; then
        tail -n 5 "$apt_log" >&2; cannot "apt-get install slurmctld slurmd slurm-client munge failed (packages unavailable?), see $apt_log"
    fi
    for cmd in slurmctld slurmd sbatch sinfo munged; do
        command -v "$cmd" >/dev/null || cannot "$cmd still missing after apt-get install"
    done
fi
say "$(slurmctld -V 2>/dev/null || echo 'slurm (version unknown)'), $(munged -V 2>&1 | head -n1)"

# --- 3. munge: a key, its directories, the daemon.
getent passwd munge >/dev/null || cannot "user 'munge' missing (the munge package creates it)"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile /etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! timeout 10 sh -c 'munge -n | unmunge' >/dev/null 2>&1; then
    say "starting munged"
    # --force: take over a stale socket left by a munged that is gone
    runuser -u munge -- munged --force || fail "munged did not start"
    for _ in $(seq 20); do timeout 5 sh -c 'munge -n | unmunge' >/dev/null 2>&1 && break; sleep 0.5; done
    timeout 10 sh -c 'munge -n | unmunge' >/dev/null 2>&1 || fail "munge credentials do not round-trip"
fi

# --- 4. slurm.conf for this one node.
if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    cannot "$CONF exists and was not written by this script; not touching a real cluster's configuration"
fi
hw=$(slurmd -C 2>&1 | head -n1) || true   # NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
[[ "$hw" == NodeName=* ]] || fail "slurmd -C gave no node line: $hw"
hw=${hw#NodeName=* }          # drop the name: we set it (and the address) ourselves
mkdir -p "$CONF_DIR"
new_conf=$(cat <<EOF
$MARKER
# A one-node test cluster. Re-running the script rewrites this file only when the hardware changed.
ClusterName=dfstudy
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# finished jobs stay visible to squeue/scontrol for 10 minutes (sacct has no database here)
MinJobAge=600
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
restart=0
if [ ! -e "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF"
    say "wrote $CONF ($NODE: $hw, partition $PARTITION)"
    restart=1
fi
install -d -m 0755 "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
touch "$JOBCOMP"

# --- 5. Daemons (directly, no systemd). Stop ours first when the configuration changed.
if [ "$restart" = 1 ]; then
    for p in "$SLURMD_PID" "$CTLD_PID"; do
        if running "$p"; then
            pid=$(cat "$p"); say "restarting: stopping pid $pid ($p)"; kill "$pid"
            for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        fi
    done
fi
if ! running "$CTLD_PID"; then
    say "starting slurmctld"
    slurmctld || fail "slurmctld did not start"
fi
for _ in $(seq 40); do timeout 5 scontrol ping >/dev/null 2>&1 && break; sleep 0.5; done
timeout 5 scontrol ping 2>/dev/null | grep -q UP || fail "slurmctld does not answer scontrol ping"
if ! running "$SLURMD_PID"; then
    say "starting slurmd"
    slurmd || fail "slurmd did not start"
fi

# --- 6. Wait until the node takes jobs.
deadline=$((SECONDS + WAIT_S))
state=""
while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(node_state || true)
    case "$state" in
    idle | mixed | allocated | completing) break ;;
    down | drained | draining | fail | failing)
        # e.g. left DOWN by an earlier slurmd that went away: we own this node
        timeout 10 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
case "$state" in
idle | mixed | allocated | completing) ;;
*) fail "node $NODE is '${state:-unknown}' after ${WAIT_S}s ($(timeout 5 scontrol show node "$NODE" 2>/dev/null | grep -o 'Reason=.*' || true))" ;;
esac
say "ready: $(sinfo -h -p "$PARTITION" -o 'partition %P, node %N %T, %c CPUs, %m MB'); job completion log $JOBCOMP"
