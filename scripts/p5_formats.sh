#!/bin/sh
# P5 — fidelity of amnesiac-sample by record format (f32, f16, top-k 10% and 1%) for 100 random
# samples, seed 0, before and after one repair epoch (docs/experiments.md P5; BENCHMARKS.md).
# Usage: scripts/p5_formats.sh [OUT_DIR]   (needs target/release/unlearn and Fashion-MNIST)
set -eu
OUT=${1:-/tmp/p5formats}
BIN=${BIN:-target/release/unlearn}
DATA=idx:/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
summary() { # label, json on stdin
    python3 -c 'import json,sys; r=json.load(sys.stdin); h=r["evaluation"]["headline"]; print("%-28s UA %6.2f  RA %6.2f  TA %6.2f  MIA %6.2f  %.2f s" % (sys.argv[1], h["unlearn_accuracy"], h["retain_accuracy"], h["test_accuracy"], h["mia_efficacy"], r["seconds"]))' "$1"
}
first=1
for format in f32 f16 topk:0.1 topk:0.01; do
    name=$(echo "$format" | tr ':.' '__')
    "$BIN" --quiet --json --seed 0 train --data "$DATA" --model mlp --forget random:100 \
        --record amnesiac-sample --record-format "$format" --out "$OUT/$name.safetensors" > /dev/null
    if [ $first = 1 ]; then
        "$BIN" --quiet --json --seed 0 forget --model "$OUT/$name.safetensors" --method retrain \
            --out "$OUT/retrain.safetensors" | summary retrain
        first=0
    fi
    for repair in 0 1; do
        "$BIN" --quiet --json --seed 0 forget --model "$OUT/$name.safetensors" \
            --method amnesiac-sample --param repair-epochs=$repair \
            --out "$OUT/$name-r$repair.safetensors" | summary "$format, repair $repair"
    done
done
