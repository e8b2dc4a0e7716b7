#!/usr/bin/env bash
# BENCHMARKS.md "A budget that keeps its promise" (issue 30): does newton-guo's calibrated
# removal budget deliver the removals `train` announces? For each case, 5 seeds: train and
# calibrate as `unlearn train --certified newton-guo --epsilon 1 --removals N` would, remove
# single seeded random rows until the first forced retrain, count them (or print the refusal
# naming the largest N the data supports). The counts are deterministic per seed on one CPU;
# the milliseconds are this machine's on one thread, under the load printed.
#
#   scripts/budget_check.sh [CASE...]     cases: embedded-10 embedded-100 full-79-100
#                                          full-79-1000 full-38-100 (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q --workspace
U=$CARGO_TARGET_DIR/release/unlearn
FULL=idx:/usr/share/datasets/fashion-mnist
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(embedded-10 embedded-100 full-79-100 full-79-1000 full-38-100)
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for case in "${CASES[@]}"; do
    case $case in
        embedded-10) args=(--data embedded --classes 7,9 --removals 10) ;;
        embedded-100) args=(--data embedded --classes 7,9 --removals 100) ;;
        full-79-100) args=(--data "$FULL" --classes 7,9 --removals 100) ;;
        full-79-1000) args=(--data "$FULL" --classes 7,9 --removals 1000) ;;
        full-38-100) args=(--data "$FULL" --classes 3,8 --removals 100) ;;
        *) echo "budget_check: unknown case $case" >&2; exit 2 ;;
    esac
    echo
    echo "\$ unlearn --threads 1 budget ${args[*]} --epsilon 1 --seeds 5"
    echo "(load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$U" --quiet --threads 1 budget "${args[@]}" --epsilon 1 --seeds 5
done
