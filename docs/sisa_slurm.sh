#!/usr/bin/env bash
# SISA shard ensemble (Bourtoule et al. 2021) as a Slurm job array: one array task per shard,
# then one dependent job that assembles the ensemble. Every task writes only its own
# shard directory (plus the same plan.json and split.json), so tasks never conflict, and
# `--shard-index auto` reads SLURM_ARRAY_TASK_ID. The assembled ensemble is bit for bit the one
# `unlearn train --sisa ... --out DIR` trains in one process (tested) with the same `--threads`
# (training cuts each batch into one shard per thread, so the tasks pin it: THREADS).
#
#   sbatch docs/sisa_slurm.sh                       # train: array of SHARDS tasks, then assemble
#   MODE=forget FORGET=ids:/shared/request.txt \
#     MODEL=/shared/sisa/fmnist OUT=/shared/sisa/fmnist-v2 sbatch docs/sisa_slurm.sh
#                                                   # a deletion: every task retrains its shard
#                                                   # only if it holds a requested id
#
# Settings (environment, with defaults): SHARDS, SLICES, AGGREGATE, MODEL_SPEC, EPOCHS, SEED,
# THREADS, DATA, OUT (the ensemble directory on a shared file system), UNLEARN (the binary).
#SBATCH --job-name=sisa-shard
#SBATCH --array=0-9
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=sisa-%A_%a.out
set -euo pipefail

SHARDS=${SHARDS:-10}            # keep equal to the --array range's size
SLICES=${SLICES:-4}
AGGREGATE=${AGGREGATE:-vote}
MODEL_SPEC=${MODEL_SPEC:-mlp}
EPOCHS=${EPOCHS:-5}
SEED=${SEED:-0}
THREADS=${THREADS:-4}           # keep equal to --cpus-per-task, and the same for a deletion
DATA=${DATA:-idx:/usr/share/datasets/fashion-mnist}
OUT=${OUT:-$PWD/sisa-ensemble}
UNLEARN=${UNLEARN:-unlearn}
MODE=${MODE:-train}

if [[ "${1:-}" == "assemble" ]]; then
    # The dependent job: check every shard against the plan and write OUT/sisa.json.
    exec "$UNLEARN" sisa assemble "$OUT"
fi

case "$MODE" in
    train)
        "$UNLEARN" --threads "$THREADS" train --data "$DATA" --model "$MODEL_SPEC" \
            --epochs "$EPOCHS" --seed "$SEED" --sisa "shards=$SHARDS,slices=$SLICES,aggregate=$AGGREGATE" \
            --shard-index auto --quiet --out "$OUT"
        ;;
    forget)
        "$UNLEARN" --threads "$THREADS" forget --model "$MODEL" --forget "$FORGET" \
            --shard-index auto --quiet --out "$OUT"
        ;;
    *)
        echo "MODE must be train or forget" >&2
        exit 2
        ;;
esac

# The array's first task submits the assembly to run once every task has succeeded.
if [[ "${SLURM_ARRAY_TASK_ID}" == "${SLURM_ARRAY_TASK_MIN:-0}" ]]; then
    sbatch --dependency="afterok:${SLURM_ARRAY_JOB_ID}" --job-name=sisa-assemble \
        --array=0-0 --export=ALL "$0" assemble
fi
