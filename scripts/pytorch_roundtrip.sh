#!/usr/bin/env bash
# PyTorch round trip (BENCHMARKS.md, "PyTorch round trip"): train the MLP and the CNN in
# PyTorch on Fashion-MNIST, import each into unlearn (`unlearn import --pytorch`), unlearn a
# random 1% of the training set (fine-tuning on the rest), export the result (`unlearn export
# --pytorch`), load it back into the same torch.nn.Module with load_state_dict(strict=True)
# and check that PyTorch's test accuracy equals unlearn's to 0.01 points (and the same for the
# model as imported). A benchmark script, not CI: torch lives in its own virtual environment.
# Usage: scripts/pytorch_roundtrip.sh [OUT_DIR] [EPOCHS]
#   (needs target/release/unlearn and /usr/share/datasets/fashion-mnist; VENV= to reuse a venv)
#        scripts/pytorch_roundtrip.sh resnet [OUT_DIR]
#   ResNet-18 parity (BENCHMARKS.md "Real networks"): torchvision's resnet18 with the CIFAR stem,
#   random weights and BatchNorm statistics, imported by unlearn (.safetensors and .pt): its
#   evaluation-mode logits on 64 images within 1e-4 of PyTorch's, and the exported weights
#   loading with load_state_dict(strict=True). Needs target/release/examples/resnet_logits
#   (cargo build --release --workspace --examples) and torchvision (installed into the venv).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = resnet ]; then
    OUT=${2:-results/pytorch_roundtrip/resnet}
    . scripts/torch_venv.sh
    "$PY" -c 'import torchvision' 2>/dev/null || "$VENV/bin/pip" install -q torchvision \
        --index-url https://download.pytorch.org/whl/cpu || "$VENV/bin/pip" install -q torchvision
    mkdir -p "$OUT"
    echo "unlearn $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
    exec "$PY" scripts/pytorch_roundtrip.py resnet --out "$OUT" --seed "${SEED:-0}" \
        --logits-bin target/release/examples/resnet_logits
fi
OUT=${1:-results/pytorch_roundtrip}
EPOCHS=${2:-2}
SEED=${SEED:-0}
BIN=${BIN:-target/release/unlearn}
DATA=/usr/share/datasets/fashion-mnist
. scripts/torch_venv.sh
mkdir -p "$OUT"
test_accuracy() { python3 -c 'import json,sys; print(json.load(sys.stdin)["evaluation"]["headline"]["test_accuracy"])'; }
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), unlearn $("$BIN" --version), seed $SEED, $EPOCHS epochs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for model in mlp cnn; do
    "$PY" scripts/pytorch_roundtrip.py train --model "$model" --data "$DATA" --epochs "$EPOCHS" \
        --seed "$SEED" --out "$OUT/$model.torch.safetensors"
    imported=$("$BIN" --quiet --json --seed "$SEED" import --pytorch "$OUT/$model.torch.safetensors" \
        --model "$model" --data "idx:$DATA" --forget random:1% --epochs "$EPOCHS" \
        --out "$OUT/$model.safetensors" | test_accuracy)
    echo "$model: unlearn's test accuracy of the imported PyTorch model: $imported"
    "$BIN" --quiet --json export --model "$OUT/$model.safetensors" --pytorch "$OUT/$model.back.safetensors" >/dev/null
    "$PY" scripts/pytorch_roundtrip.py check --model "$model" --data "$DATA" \
        --weights "$OUT/$model.back.safetensors" --expect "$imported"
    started=$(date +%s.%N)
    forgot=$("$BIN" --quiet --json --seed "$SEED" forget --model "$OUT/$model.safetensors" \
        --method finetune --out "$OUT/$model.finetune.safetensors" | test_accuracy)
    echo "$model: finetune forgot 1% in $(echo "$(date +%s.%N) - $started" | bc) s; unlearn's test accuracy: $forgot"
    "$BIN" --quiet --json export --model "$OUT/$model.finetune.safetensors" \
        --pytorch "$OUT/$model.finetune.torch.safetensors" >/dev/null
    "$PY" scripts/pytorch_roundtrip.py check --model "$model" --data "$DATA" \
        --weights "$OUT/$model.finetune.torch.safetensors" --expect "$forgot"
done
