#!/usr/bin/env bash
# The noise floor of the challenge's forget quality F (docs/algorithms.md §F1): retraining audited as
# if it were an unlearning method, with N = 16, 32 and 64 models per side, on the embedded
# subset (MLP 784-32-10, 2 epochs, random 1%). With few models each example's ε is a maximum over
# many thresholds of N samples, biased upward, so even retraining scores F well below 1; this
# prints how F moves with N. Usage: scripts/p8_noise_floor.sh [UNLEARN_BINARY]
set -euo pipefail
unlearn=${1:-${UNLEARN:-target/release/unlearn}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '| N | F (retrain) | final score | seconds |\n|---:|---:|---:|---:|\n'
for models in 16 32 64; do
    cat > "$work/floor$models.toml" <<TOML
name = "floor$models"
data = "embedded"
model = "mlp:32"
forget = ["random:1%"]
[recipe]
epochs = 2
[audit]
protocols = ["challenge"]
models = $models
include_original = false
TOML
    "$unlearn" audit --config "$work/floor$models.toml" --quiet --results-dir "$work" > /dev/null
    python3 - "$work/floor$models" "$models" <<'PY'
import json, sys
directory, models = sys.argv[1], sys.argv[2]
summary = json.load(open(f"{directory}/audit.json"))
cost = json.load(open(f"{directory}/cost.json"))
row = next(r for r in summary["challenge"] if r["method"] == "retrain")
print(f"| {models} | {row['forget_quality']:.3f} | {row['final_score']:.3f} | {cost['seconds']:.0f} |")
PY
done
