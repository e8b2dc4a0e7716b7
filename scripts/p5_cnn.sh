#!/bin/sh
# P5 with the CNN: amnesiac records of 100 random samples made while training the 2-conv CNN
# (per-sample gradients of the convolutions by unfold), then every amnesiac variant against
# retraining (BENCHMARKS.md, "Amnesiac unlearning").
# Usage: scripts/p5_cnn.sh [OUT_DIR] [EPOCHS]   (needs target/release/unlearn and Fashion-MNIST)
set -eu
OUT=${1:-/tmp/p5cnn}
EPOCHS=${2:-2}
BIN=${BIN:-target/release/unlearn}
DATA=idx:/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
summary() { # label, json on stdin
    python3 -c 'import json,sys; r=json.load(sys.stdin); h=r["evaluation"]["headline"]; s=r.get("seconds", r.get("metadata", {}).get("seconds")); print("%-34s UA %6.2f  RA %6.2f  TA %6.2f  MIA %6.2f  %.2f s" % (sys.argv[1], h["unlearn_accuracy"], h["retain_accuracy"], h["test_accuracy"], h["mia_efficacy"], s))' "$1"
}
"$BIN" --quiet --json --seed 0 train --data "$DATA" --model cnn --epochs "$EPOCHS" \
    --forget random:100 --record amnesiac-sample --record amnesiac-batch \
    --out "$OUT/cnn.safetensors" | summary "original (recording)"
for method in retrain amnesiac-batch amnesiac-sample; do
    "$BIN" --quiet --json --seed 0 forget --model "$OUT/cnn.safetensors" --method "$method" \
        --out "$OUT/$method.safetensors" | summary "$method"
done
for method in amnesiac-batch amnesiac-sample; do
    "$BIN" --quiet --json --seed 0 forget --model "$OUT/cnn.safetensors" --method "$method" \
        --param repair-epochs=1 --out "$OUT/$method-r1.safetensors" | summary "$method + 1 repair epoch"
done
ls -l "$OUT"/cnn.amnesiac-*.records | awk '{print $5, $9}'
