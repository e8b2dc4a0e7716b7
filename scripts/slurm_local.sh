#!/usr/bin/env bash
# Checks docs/audit_slurm.sh on a one-node Slurm cluster on this machine: installs slurm-wlm and
# munge from the Debian packages (skipped if present), writes /etc/slurm/slurm.conf for this
# host, starts munged, slurmctld and slurmd directly (no systemd, no cgroups: works in a
# container), then runs a small audit (embedded data, ~5 s of work) once as one process
# (`unlearn audit --jobs 1`) and once as a job array of 3 (`sbatch --wait --array=0-2
# docs/audit_slurm.sh` + `unlearn audit merge`), and compares the two audit.json byte for byte.
# Prints the wall-clock of both and exits non-zero if they differ. The daemons it started are
# stopped on exit; daemons already running (a cluster of your own) are used and left running.
# Run it as root; it can be run again.
#
#   UNLEARN=target/release/unlearn scripts/slurm_local.sh
#
# env: UNLEARN (default: unlearn on PATH, else target/release/unlearn), KEEP=1 keeps the work
# directory (configs, results, job logs) after a passing run.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SLURM_SCRIPT=$REPO/docs/audit_slurm.sh

log() { echo "slurm_local: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages, writes /etc/slurm, starts the daemons)"

if [ -n "${UNLEARN:-}" ]; then
  :
elif command -v unlearn >/dev/null; then
  UNLEARN=unlearn
else
  UNLEARN=$REPO/target/release/unlearn
fi
UNLEARN_PATH=$(command -v "$UNLEARN" || true)
[ -n "$UNLEARN_PATH" ] && [ -x "$UNLEARN_PATH" ] || die "no unlearn binary at '$UNLEARN' (set UNLEARN or cargo build --release -p unlearn-cli)"
UNLEARN=$(readlink -f "$UNLEARN_PATH")   # absolute: the job runs in another directory

# --- packages ---------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

STARTED=()          # pids of the daemons this run started, stopped on exit
WORK=$(mktemp -d /tmp/slurm_local.XXXXXX)
OK=0
cleanup() {
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    kill "${STARTED[i]}" 2>/dev/null || true
  done
  for i in "${STARTED[@]}"; do
    # gone within 5 s, else SIGKILL (a hung daemon must not keep the script from exiting)
    for _ in $(seq 50); do kill -0 "$i" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null
    wait "$i" 2>/dev/null || true
  done
  if [ "$OK" = 1 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$WORK"
  else
    log "work directory kept: $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- munge ------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  rm -f /run/munge/munged.pid   # a stale one from a killed run
  # setpriv execs (no intermediate process), so $! is munged itself
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
    >>/var/log/munge/munged.out 2>&1 &
  STARTED+=($!)
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n | unmunge >/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
fi

# --- slurm ------------------------------------------------------------------------------
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
CONF=/etc/slurm/slurm.conf
MARK="# written by unlearn scripts/slurm_local.sh"
install -d -m 0755 /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm

if alive /run/slurmctld.pid && alive /run/slurmd.pid; then
  log "slurmctld and slurmd already running; using that cluster ($CONF)"
else
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF" && [ ! -f "$CONF.orig" ]; then
    cp -p "$CONF" "$CONF.orig"
    log "kept the previous $CONF as $CONF.orig"
  fi
  cat >"$CONF" <<EOF
$MARK
# A one-node cluster on $NODE: root runs the daemons; no cgroups (proctrack/linuxproc,
# task/none) so that it works in a container; no accounting database.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  # Our own daemons from a run that was killed before its trap ran: stop them by pid file.
  for d in slurmd slurmctld; do
    if alive /run/$d.pid && [ "$(cat /proc/"$(cat /run/$d.pid)"/comm 2>/dev/null)" = "$d" ]; then
      log "stopping a leftover $d (pid $(cat /run/$d.pid))"
      kill "$(cat /run/$d.pid)"
      sleep 1
    fi
  done
  # -c: start without the job state of earlier runs (this cluster is only for this check)
  slurmctld -D -c >>/var/log/slurm/slurmctld.out 2>&1 &
  STARTED+=($!)
  for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
  scontrol ping | grep -q UP || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
  slurmd -D >>/var/log/slurm/slurmd.out 2>&1 &
  STARTED+=($!)
fi

log "waiting for node $NODE to be idle"
state=
for i in $(seq 120); do
  state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1)
  case "$state" in
    idle) break ;;
    down*|drain*|drained*)
      [ "$i" -gt 10 ] && scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.5
done
[ "$state" = idle ] || die "node $NODE is '$state', not idle (see /var/log/slurm/slurmd.log, slurmctld.log)"
sinfo >&2

# --- the check --------------------------------------------------------------------------
cat >"$WORK/slurm_demo.toml" <<'EOF'
name = "slurm_demo"
data = "embedded"
model = "mlp:16"
forget = ["random:20"]
[recipe]
epochs = 1
[[methods]]
name = "finetune"
params = { epochs = 1 }
[audit]
protocols = ["challenge", "ulira"]
models = 6
targets = 20
bootstrap = 100
EOF
mkdir -p "$WORK/logs"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

log "one process: unlearn audit --jobs 1"
t0=$(now)
(cd "$WORK" && "$UNLEARN" --threads 1 audit --config slurm_demo.toml --jobs 1 --quiet --results-dir "$WORK/one" \
  >"$WORK/logs/one.out" 2>&1) || { cat "$WORK/logs/one.out" >&2; die "the one-process audit failed"; }
t1=$(now)

PARTS=3
CPT=$(( CPUS / PARTS > 0 ? CPUS / PARTS : 1 ))
log "job array: sbatch --wait --array=0-$((PARTS - 1)) docs/audit_slurm.sh ($CPT CPU(s) per task)"
JOBNAME=slurm_demo_$$
t2=$(now)
sbatch --wait --array=0-$((PARTS - 1)) --cpus-per-task="$CPT" --job-name="$JOBNAME" \
  --chdir="$WORK" --output="$WORK/logs/%x-%A_%a.out" \
  --export=ALL,MODE=audit,CONFIG="$WORK/slurm_demo.toml",PARTS=$PARTS,UNLEARN="$UNLEARN",RESULTS="$WORK/array" \
  "$SLURM_SCRIPT" >"$WORK/logs/sbatch.out" 2>&1 &
SBATCH_PID=$!
# sbatch --wait polls the controller after 2, 10, 42, 74... s, so its return says little about
# how long the array ran: watch squeue for the moment the last task is gone.
seen=0
while kill -0 "$SBATCH_PID" 2>/dev/null; do
  if [ -n "$(squeue -h --name="$JOBNAME" -o %i 2>/dev/null)" ]; then
    seen=1
  elif [ "$seen" = 1 ]; then
    break
  fi
  sleep 0.2
done
t3=$(now)
if ! wait "$SBATCH_PID"; then
  cat "$WORK/logs/sbatch.out" "$WORK"/logs/"$JOBNAME"-*.out >&2 2>/dev/null || true
  die "the job array failed"
fi
t3w=$(now)

"$UNLEARN" audit merge --quiet "$WORK/array/slurm_demo" >"$WORK/logs/merge.out" 2>&1 \
  || { cat "$WORK/logs/merge.out" >&2; die "unlearn audit merge failed"; }
t4=$(now)

if cmp -s "$WORK/one/slurm_demo/audit.json" "$WORK/array/slurm_demo/audit.json"; then
  same=yes
else
  same=no
fi
echo
printf '%-50s %10s\n' "run" "wall-clock"
printf '%-50s %9ss\n' "one process (unlearn audit --jobs 1)" "$(elapsed "$t0" "$t1")"
printf '%-50s %9ss\n' "job array of $PARTS ($CPT CPU/task, submit to last end)" "$(elapsed "$t2" "$t3")"
printf '%-50s %9ss\n' "  + unlearn audit merge" "$(elapsed "$t3w" "$t4")"
printf '%-50s %9ss\n' "  (sbatch --wait returned after)" "$(elapsed "$t2" "$t3w")"
printf '%-50s %10s\n' "audit.json identical (cmp)" "$same"
if [ "$same" != yes ]; then
  cmp "$WORK/one/slurm_demo/audit.json" "$WORK/array/slurm_demo/audit.json" >&2 || true
  die "audit.json of the job array differs from the one-process run"
fi
OK=1
