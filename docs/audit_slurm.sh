#!/usr/bin/env bash
# A sharded `unlearn audit` (or `unlearn bench`) as a Slurm job array: task i of N runs
# `unlearn audit --config "$CONFIG" --shard auto/N`, which reads SLURM_ARRAY_TASK_ID and writes
# its part to results/NAME/parts/i-of-N/. A dependent job merges the parts into results/NAME/
# (audit.json of the merge is byte-identical to a one-process run).
#
# Submit from the directory that should hold results/ (the job runs there), N = --array size:
#
#   jid=$(sbatch --parsable --array=0-3 --export=ALL,CONFIG=configs/p8_audit.toml,PARTS=4 docs/audit_slurm.sh)
#   sbatch --dependency=afterok:${jid%%;*} --wrap "unlearn audit merge results/p8_audit"
#
# (NAME is the config's `name`; afterok on an array job waits for every task to succeed.)
# `--export=CONFIG=...,PARTS=4` without ALL also works where the job should not inherit the
# submitting shell's environment; then PATH comes from the compute node's login environment,
# so set UNLEARN to an absolute path if `unlearn` is not on it.
#
# Variables (pass with --export):
#   CONFIG   the config file (required; a path relative to the submission directory is fine)
#   PARTS    N, the number of parts (default: the array's size, SLURM_ARRAY_TASK_COUNT);
#            the array must be 0-(N-1)
#   MODE     audit (default) or bench; bench runs `unlearn bench --shard auto/N`, merge with
#            `unlearn bench merge results/NAME`
#   UNLEARN  the binary (default: unlearn on PATH)
#   RESULTS  results directory (default: results, i.e. --results-dir default)
#   SEED     the run's seed (default: the binary's, 0); give the same --seed to the merge
#   THREADS  threads inside one model's training (default 1: the task's cores go to --jobs);
#            training cuts each batch into one shard per thread, so a one-process run matches
#            the merge bit for bit when it uses the same --threads
#
# Options on the sbatch command line override the #SBATCH lines below (e.g. --cpus-per-task=8,
# --array=0-7 with PARTS=8, --partition, --time). Each task uses --jobs $SLURM_CPUS_PER_TASK
# threads; the results do not depend on it (they do on THREADS). A failed task can be rerun on its own
# (sbatch --array=2 ... with the same PARTS) before the merge; the merge names missing parts.
#
#SBATCH --job-name=unlearn-audit
#SBATCH --array=0-3
#SBATCH --cpus-per-task=4
#SBATCH --output=%x-%A_%a.out
set -euo pipefail

MODE=${MODE:-audit}
UNLEARN=${UNLEARN:-unlearn}
case "$MODE" in
  audit|bench) ;;
  *) echo "audit_slurm.sh: MODE must be audit or bench, not '$MODE'" >&2; exit 2 ;;
esac
if [ -z "${CONFIG:-}" ]; then
  echo "audit_slurm.sh: set CONFIG (sbatch --export=ALL,CONFIG=configs/....toml,PARTS=N ...)" >&2
  exit 2
fi
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "audit_slurm.sh: not a job array task; submit with sbatch --array=0-(N-1)" >&2
  exit 2
fi
PARTS=${PARTS:-${SLURM_ARRAY_TASK_COUNT:-}}
if [ -z "$PARTS" ] || [ "$SLURM_ARRAY_TASK_ID" -ge "$PARTS" ]; then
  echo "audit_slurm.sh: array task $SLURM_ARRAY_TASK_ID is outside 0-$((${PARTS:-1} - 1)); use --array=0-(PARTS-1)" >&2
  exit 2
fi

if ! command -v "$UNLEARN" >/dev/null; then
  echo "audit_slurm.sh: '$UNLEARN' not found (PATH=$PATH); submit with --export=ALL,... or set UNLEARN=/abs/path/unlearn" >&2
  exit 2
fi

args=(--config "$CONFIG" --shard "auto/$PARTS" --jobs "${SLURM_CPUS_PER_TASK:-1}" --quiet)
[ -n "${RESULTS:-}" ] && args+=(--results-dir "$RESULTS")
[ -n "${SEED:-}" ] && args+=(--seed "$SEED")

echo "$(date -u +%FT%TZ) $(hostname): $MODE part $SLURM_ARRAY_TASK_ID of $PARTS, ${SLURM_CPUS_PER_TASK:-1} CPUs"
"$UNLEARN" --threads "${THREADS:-1}" "$MODE" "${args[@]}"
echo "$(date -u +%FT%TZ) $(hostname): $MODE part $SLURM_ARRAY_TASK_ID of $PARTS done"
