#!/usr/bin/env bash
# Side by side with PyTorch on the same CPU (issue 15, docs/experiments.md P7; BENCHMARKS.md
# "Performance"): the MLP 784-256-10 (5 epochs) and the CNN conv16-conv32 + 1568-128-10 (1
# epoch) on the full Fashion-MNIST, the same recipe in both (SGD, lr 0.05, momentum 0.9, weight
# decay 5e-4, cosine, batch 128, pixels / 255), on 1 thread and on every core, PyTorch and
# unlearn runs interleaved (torch, unlearn, torch, unlearn, ...). Prints a Markdown table of
# the training seconds (each run, then the ratio of the medians) and, for unlearn, the time its
# `train` spends evaluating the model afterwards: all of it (retain, forget and test sets and
# the metrics) and the forward passes on the test and forget sets alone.
# A benchmark script, not CI: torch lives in its own virtual environment. Time nothing else
# while it runs.
# Usage: scripts/compare_pytorch.sh [REPEATS] [OUT_DIR]
#   (needs target/release/unlearn and /usr/share/datasets/fashion-mnist; VENV= to reuse a
#   venv, BIN= for another unlearn binary, THREADS="1 2" for other thread counts,
#   MODELS="cnn" for one model; MODELS="resnet20": ResNet-20 with crop+flip, 1 epoch, the same
#   SGD recipe; LIMIT=N keeps N training samples per class on both sides, for a shorter run)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-2}
OUT=${2:-results/compare_pytorch}
SEED=${SEED:-0}
BIN=${BIN:-target/release/unlearn}
DATA=/usr/share/datasets/fashion-mnist
CORES=$(nproc)
THREADS=${THREADS:-"1 $CORES"}
MODELS=${MODELS:-"mlp cnn"}
[ -x "$BIN" ] || { echo "compare_pytorch.sh: $BIN not found (cargo build --release)" >&2; exit 1; }
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || { echo "compare_pytorch.sh: $DATA missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
. scripts/torch_venv.sh
mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: >"$RUNS"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $("$BIN" --version), $CORES cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), seed $SEED, $REPEATS repeats"
for threads in $THREADS; do
    for model in $MODELS; do
        epochs=5
        [ "$model" != mlp ] && epochs=1
        extra=()
        [ "$model" = resnet20 ] && extra=(--augment crop+flip)
        data="idx:$DATA"
        if [ -n "${LIMIT:-}" ]; then
            data="$data?limit=$(seq -s, 0 9 | sed "s/\([0-9]\)/\1:$LIMIT/g")"
        fi
        for repeat in $(seq 1 "$REPEATS"); do
            load=$(cut -d' ' -f1 /proc/loadavg)
            torch_json=$("$PY" scripts/pytorch_roundtrip.py train --model "$model" --data "$DATA" \
                --epochs "$epochs" --seed "$SEED" --threads "$threads" --limit "${LIMIT:-0}" \
                --out "$OUT/$model.torch.safetensors")
            ours_json=$("$BIN" --quiet --json --seed "$SEED" --threads "$threads" train \
                --data "$data" --model "$model" --epochs "$epochs" "${extra[@]}" --out "$OUT/$model.safetensors")
            "$PY" - "$model" "$threads" "$epochs" "$repeat" "$load" "$torch_json" "$ours_json" >>"$RUNS" <<'EOF'
import json, sys
model, threads, epochs, repeat, load, torch_json, ours_json = sys.argv[1:]
torch_run, ours = json.loads(torch_json), json.loads(ours_json)
print(json.dumps({
    "model": model, "threads": int(threads), "epochs": int(epochs), "repeat": int(repeat),
    "load_before": float(load), "pytorch_seconds": torch_run["seconds"],
    "pytorch_test_accuracy": torch_run["pytorch_test_accuracy"],
    "unlearn_seconds": ours["metadata"]["seconds"],
    "unlearn_evaluation_seconds": ours["evaluation_seconds"],
    "unlearn_test_forget_seconds": ours["prediction_seconds"]["test"] + ours["prediction_seconds"]["forget"],
    "unlearn_test_accuracy": ours["evaluation"]["headline"]["test_accuracy"],
}))
EOF
            tail -n 1 "$RUNS" >&2
        done
    done
done
"$PY" - "$RUNS" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("| workload | threads | unlearn training (s) | PyTorch training (s) | ratio of medians | unlearn evaluation, all (s) | test + forget sets (s) | test + forget / training | test accuracy unlearn / PyTorch |")
print("|---|---:|---|---|---:|---|---|---:|---|")
names = {"mlp": "MLP 784-256-10, 5 epochs", "cnn": "CNN conv16-conv32 + 1568-128-10, 1 epoch",
         "resnet20": "ResNet-20 (crop+flip), 1 epoch"}
keys = sorted({(r["model"], r["threads"]) for r in runs}, key=lambda k: (k[0] != "mlp", k[1]))
for model, threads in keys:
    rows = [r for r in runs if r["model"] == model and r["threads"] == threads]
    ours = [r["unlearn_seconds"] for r in rows]
    theirs = [r["pytorch_seconds"] for r in rows]
    evaluation = [r["unlearn_evaluation_seconds"] for r in rows]
    test_forget = [r["unlearn_test_forget_seconds"] for r in rows]
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    fmt2 = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    ratio = statistics.median(ours) / statistics.median(theirs)
    share = statistics.median(test_forget) / statistics.median(ours)
    accuracy = f"{statistics.mean(r['unlearn_test_accuracy'] for r in rows):.2f} / {statistics.mean(r['pytorch_test_accuracy'] for r in rows):.2f}"
    print(f"| {names[model]} | {threads} | {fmt(ours)} | {fmt(theirs)} | {ratio:.2f}x | {fmt(evaluation)} | {fmt2(test_forget)} | {share:.1%} | {accuracy} |")
EOF
