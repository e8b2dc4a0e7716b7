#!/bin/sh
# P5 — amnesiac memory and recording overhead (configs/p5_amnesiac.toml; BENCHMARKS.md).
# Usage: scripts/p5_amnesiac.sh [OUT_DIR]   (needs target/release/unlearn and Fashion-MNIST)
set -eu
OUT=${1:-/tmp/p5}
BIN=${BIN:-target/release/unlearn}
DATA=idx:/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
row() { # name, extra arguments...
    name=$1; shift
    "$BIN" --quiet --json --seed 0 train --data "$DATA" --model mlp "$@" \
        --out "$OUT/$name.safetensors" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"run": sys.argv[1], "seconds": r["metadata"]["seconds"], "test_accuracy": r["evaluation"]["headline"]["test_accuracy"], "records": [{k: f[k] for k in ("kind","bytes","records","sensitive","format")} for f in r["records"]]}))' "$name"
}
row plain-100-e5 --forget random:100 --epochs 5
for forget in random:10 random:100 random:1000; do
    row "rec-${forget#random:}-e5" --forget "$forget" --epochs 5 \
        --record amnesiac-batch --record amnesiac-sample
done
for epochs in 1 3; do
    row "rec-100-e$epochs" --forget random:100 --epochs "$epochs" \
        --record amnesiac-batch --record amnesiac-sample
done
for format in f16 topk:0.01 topk:0.1; do
    row "rec-100-e5-$(echo "$format" | tr ':.' '__')" --forget random:100 --epochs 5 \
        --record amnesiac-sample --record-format "$format"
done
row rec-class3-e5-batch --forget class:3 --epochs 5 --record amnesiac-batch
row rec-class3-e5-group --forget class:3 --epochs 5 --record amnesiac-batch --record-groups class
row rec-class3-e5-sample --forget class:3 --epochs 5 --record amnesiac-sample
row rec-class3-e5-sample-group --forget class:3 --epochs 5 --record amnesiac-sample --record-groups class
row rec-all-e5-sample-group --forget class:3 --epochs 5 --record amnesiac-sample --record-groups class --sensitive all
