#!/usr/bin/env bash
# Hashes of what the tool computes, for checking that a refactor changes no output bit.
#
#   scripts/output_hashes.sh [BINARY] > hashes.txt     (default BINARY: target/release/unlearn)
#
# Runs the demo, a small bench grid, two small audits, train/forget/eval/export, a certified
# store, a neural store, SISA and k-means on the embedded subset with --threads 2, then prints
# one SHA-256 per output: model files as written, JSON outputs with the fields that measure
# time or the machine removed (seconds, speed-ups, dates, load, CPU, paths of the scratch
# directory). Two builds that compute the same thing print the same lines (same CPU; the
# CNN-free models here give the same bits at any thread count anyway). About two minutes.
set -euo pipefail
BIN=$(realpath "${1:-target/release/unlearn}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${HASH_WORK:-/tmp/unlearn-output-hashes}   # scratch directory (emptied)
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
u() { "$BIN" --quiet --threads 2 "$@"; }
# Drop every key that measures time or the machine, anywhere in a JSON document (or JSON lines).
norm() {
  jq -cS 'walk(if type == "object" then with_entries(select(.key | test("second|speedup|speed_up|time|elapsed|date|measured|load|machine|cpu|host|duration|_ms$|^ms$|created|timestamp|started|finished|wall|rate_per|throughput|committed|^head$|entry_hash|previous_hash"; "i") | not)) else . end)' "$@"
}
h() { sha256sum | cut -c1-16; }
out() { printf '%-40s %s\n' "$1" "$2"; }

out demo "$(u --json demo | norm | h)"
out demo-cnn-class "$(u --json demo --model cnn --forget class:3 --epochs 1 --methods finetune,ssd,salun | norm | h)"

u bench --config "$ROOT/scripts/hashes/bench_tiny.toml" > /dev/null
for f in results/hash_bench/*.jsonl; do out "bench/$(basename "$f")" "$(norm "$f" | h)"; done
u audit --config "$ROOT/scripts/hashes/audit_tiny.toml" > /dev/null
u audit --config "$ROOT/scripts/hashes/audit_eps_tiny.toml" > /dev/null
for f in results/hash_audit/audit.json results/hash_audit/config.json results/hash_audit_eps/audit.json results/hash_audit_eps/config.json; do
  out "audit/$(basename "$(dirname "$f")")/$(basename "$f")" "$(norm "$f" | h)"
done

mkdir runs && echo "0 6 11" > request.txt
u train --data embedded --model mlp:32 --forget random:1% --epochs 2 --out runs/mlp.safetensors > /dev/null
u forget --model runs/mlp.safetensors --method finetune --param epochs=1 --out runs/mlp-ft.safetensors > /dev/null
u forget --model runs/mlp.safetensors --forget ids:request.txt --method gradient-ascent --out runs/mlp-req.safetensors > /dev/null
u forget --model runs/mlp.safetensors --method retrain --out runs/mlp-re.safetensors > /dev/null
out eval "$(u --json eval --model runs/mlp-ft.safetensors --split runs/mlp.split.json --reference runs/mlp-re.safetensors | norm | h)"
u export --model runs/mlp-ft.safetensors --pytorch runs/mlp-ft.torch.safetensors > /dev/null
u import --pytorch runs/mlp-ft.torch.safetensors --model mlp:32 --data embedded --forget random:1% --out runs/from-torch.safetensors > /dev/null
u forget --model runs/mlp.safetensors --method noisy-ft-gradclip --param epsilon=1 --out runs/mlp-cert.safetensors > /dev/null
out verify-nn "$(u --json verify --model runs/mlp-cert.safetensors | norm | h)"
u train --data embedded --model mlp:32 --forget random:50 --epochs 1 --record amnesiac-sample --record amnesiac-batch --out runs/rec.safetensors > /dev/null
u forget --model runs/rec.safetensors --method amnesiac-sample --param repair-epochs=1 --out runs/rec-am.safetensors > /dev/null

u train --certified newton-guo --epsilon 1 --classes 7,9 --data embedded --store runs/guo > /dev/null
u forget --store runs/guo --forget ids:request.txt > /dev/null
u train --certified langevin --epsilon 1 --classes 7,9 --data embedded --out runs/lang.json > /dev/null
u forget --model runs/lang.json --forget random:2 --out runs/lang.json > /dev/null
out verify-store "$(u --json verify --store runs/guo --replay | norm | h)"
u store export --store runs/guo --out runs/guo-ledger.jsonl > /dev/null
out guo-ledger "$(norm runs/guo-ledger.jsonl | h)"
u store import --store runs/mlp-store --from runs/mlp.safetensors --method finetune --param epochs=1 --retrain-every 10 > /dev/null
u forget --store runs/mlp-store --forget ids:request.txt > /dev/null

u train --data embedded --model mlp:16 --epochs 2 --sisa shards=3,slices=2 --out runs/sisa > /dev/null
u forget --model runs/sisa --forget ids:request.txt --out runs/sisa-v2 > /dev/null
out eval-sisa "$(u --json eval --model runs/sisa-v2 | norm | h)"

u kmeans train --data gaussian:n=2000,d=5,k=4 --k 4 --method dc --out runs/km.json > /dev/null
u kmeans delete --model runs/km.json --ids 5,17 --out runs/km2.json > /dev/null

# Every model and data file written above, as bytes (JSON sidecars normalised).
find runs -type f \( -name '*.safetensors' -o -name '*.state' -o -name '*.records' \) | sort | while read -r f; do
  out "$f" "$(h < "$f")"
done
find runs -type f -name '*.json' ! -path '*/objects/*' | sort | while read -r f; do
  out "$f" "$(norm "$f" | h)"
done
# Store objects are named by their bytes, and a sidecar holds its training time: list each store's
# objects by their normalised content instead.
for store in runs/guo runs/mlp-store; do
  out "$store/objects" "$(for f in "$store"/objects/*; do
    if [ "$(head -c 1 "$f")" = "{" ]; then norm "$f" | h; else h < "$f"; fi
  done | sort | h)"
done
