#!/bin/sh
# P5b with individual records (BENCHMARKS.md, "Amnesiac under its authors' protocol"): the bench
# grids configs/p5_rare_class*.toml record one sum per class (the forget set is one whole
# class); this script records the 100 threes individually instead (one record per batch that
# held a 3, one C_i per 3) while training the MLP with the grids' recipes (seed 0), undoes them
# with and without one repair epoch, and prints the forgotten class's and the other classes'
# test accuracy, to compare with the grids' seed-0 rows. CLASS (default 3) runs the same
# protocol with another rare class (BENCHMARKS.md uses 1, trouser, as a class the MLP fits).
# Usage: scripts/p5b_individual.sh [OUT_DIR] [CLASS]   (needs target/release/unlearn and
# Fashion-MNIST)
set -eu
OUT=${1:-/tmp/p5b}
CLASS=${2:-3}
BIN=${BIN:-target/release/unlearn}
DATA="idx:/usr/share/datasets/fashion-mnist?limit=$CLASS:100"
mkdir -p "$OUT"
summary() { # label, json on stdin
    python3 -c '
import json, sys
r = json.load(sys.stdin)
e = r["evaluation"]
c = e["test_per_class"]
k = int(sys.argv[2])
others = [a for i, a in enumerate(c) if i != k]
print("%-40s class %d %6.2f  others %6.2f  forget acc. %6.2f  TA %6.2f" % (sys.argv[1], k, c[k],
      sum(others) / len(others), 100 - e["headline"]["unlearn_accuracy"], e["headline"]["test_accuracy"]))' "$1" "$CLASS"
}
for optimizer in sgd adam; do
    if [ "$optimizer" = sgd ]; then
        recipe="--optimizer sgd --lr 0.05 --schedule cosine --momentum 0.9 --weight-decay 5e-4"
    else
        recipe="--optimizer adam --lr 0.001 --schedule constant --weight-decay 0"
    fi
    model="$OUT/mlp-$CLASS-$optimizer.safetensors"
    # shellcheck disable=SC2086
    "$BIN" --quiet --json --seed 0 train --data "$DATA" --model mlp --epochs 10 --batch-size 64 \
        $recipe --forget "class:$CLASS" --record amnesiac-sample --record amnesiac-batch \
        --out "$model" | summary "$optimizer: original (recording)"
    ls -l "$OUT/mlp-$CLASS-$optimizer".amnesiac-*.records | awk '{print "    " $5 " B " $9}'
    for method in amnesiac-batch amnesiac-sample; do
        for repair in 0 1; do
            "$BIN" --quiet --json --seed 0 forget --model "$model" --method "$method" \
                --param repair-epochs=$repair --out "$OUT/$CLASS-$optimizer-$method-r$repair.safetensors" |
                summary "$optimizer: $method, $repair repair epochs"
        done
    done
done
