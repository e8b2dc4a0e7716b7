#!/usr/bin/env bash
# Reruns the tables of BENCHMARKS.md's "At HEAD" section — the quick ones — at the current
# commit and writes them, each with its command and the machine it ran on, to
# OUT/QUICK.md (default results/quick/QUICK.md): the text that section holds. Timings are the
# machine's; every metric is deterministic for the seeds given (same CPU and thread count).
#
# Needs the full Fashion-MNIST (apt-get install dataset-fashion-mnist) and python3 (standard
# library only). About 10 minutes on a 2-core machine after the release build; run it
# while nothing else runs, the load average is recorded before and after each step.
#
# Usage: scripts/reproduce_quick.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/quick}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
data=idx:/usr/share/datasets/fashion-mnist
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "reproduce_quick: the full Fashion-MNIST is missing (apt-get install dataset-fashion-mnist)" >&2
    exit 1
fi
cargo build --release -q --workspace
cargo build --release -q --workspace --examples
bin=$CARGO_TARGET_DIR/release/unlearn
rm -rf "$out"
mkdir -p "$out"
md=$out/QUICK.md
started=$(date +%s)

load() { cut -d' ' -f1-3 /proc/loadavg; }
cpu() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1; }
isa() {
    if grep -qw avx512f /proc/cpuinfo; then echo AVX-512
    elif grep -qw avx2 /proc/cpuinfo; then echo AVX2
    else uname -m; fi
}
# step TITLE COMMAND...: runs the command, timing it, with the load before and after.
step() {
    local title=$1
    shift
    local before after begin
    before=$(load)
    begin=$(date +%s)
    echo "reproduce_quick: $title" >&2
    "$@"
    after=$(load)
    printf '\n_%s: %s s; load average before %s, after %s._\n' \
        "$title" "$(($(date +%s) - begin))" "$before" "$after" >> "$md"
}

{
    echo "Reproduced at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) by"
    echo "\`scripts/reproduce_quick.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ): $(cpu) ($(isa)),"
    echo "$(nproc) cores; load average at the start $(load)."
} > "$md"

# 1. The demo (README's table): every registered method on the embedded subset, 1% forgotten.
demo() {
    "$bin" --quiet demo --out-dir "$out/demo" > /dev/null
    {
        echo
        echo "### Demo: every method, random 1% of the embedded subset"
        echo
        echo '```sh'
        echo 'unlearn --quiet demo'
        echo '```'
        echo
        cat "$out/demo/demo.md"
    } >> "$md"
}
step "demo" demo

# 2. Training throughput, full Fashion-MNIST, default recipe, on 1 and on 2 threads.
throughput() {
    {
        echo
        echo "### Training throughput (full Fashion-MNIST, default recipe, seed 0)"
        echo
        echo '```sh'
        echo "unlearn --quiet --json --threads T train --data $data --model mlp --epochs 5 --out mlp.safetensors"
        echo "unlearn --quiet --json --threads T train --data $data --model cnn --epochs 1 --out cnn.safetensors"
        echo '```'
        echo
        echo "| model | epochs | threads | training time (s) | samples/s | test accuracy (%) | load before |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
    } >> "$md"
    for spec in mlp:5 cnn:1; do
        model=${spec%%:*}
        epochs=${spec##*:}
        for threads in 1 2; do
            local before
            before=$(cut -d' ' -f1 /proc/loadavg)
            "$bin" --quiet --json --threads "$threads" train --data "$data" --model "$model" \
                --epochs "$epochs" --out "$out/train/$model-$threads.safetensors" > "$out/train-$model-$threads.json"
            python3 - "$out/train-$model-$threads.json" "$model" "$epochs" "$threads" "$before" >> "$md" <<'PY'
import json, sys
path, model, epochs, threads, load = sys.argv[1:]
result = json.load(open(path))
seconds = result["metadata"]["seconds"]
accuracy = result["evaluation"]["headline"]["test_accuracy"]
print(f"| {model} | {epochs} | {threads} | {seconds:.2f} | {result['samples_per_second']:,.0f} | {accuracy:.2f} | {load} |")
PY
        done
    done
}
step "throughput" throughput

# 3. P1: random-sample forgetting, every method against a retraining timed in the same run.
p1() {
    "$bin" --quiet bench --config configs/p1_random.toml --fresh --jobs 1 \
        --results-dir "$out" --cache-dir "$out/cache" > /dev/null
    {
        echo
        echo "### P1: random-sample forgetting (\`configs/p1_random.toml\`)"
        echo
        echo '```sh'
        echo 'unlearn bench --config configs/p1_random.toml --fresh --jobs 1'
        echo '```'
        echo
        # The report's own tables, one heading level down.
        sed -e '1,/^## /{/^## /!d}' -e 's/^## /#### /' "$out/p1_random/report.md"
    } >> "$md"
}
step "P1" p1

# 4. P3: certified removal, Fashion-MNIST 7 vs 9.
p3() {
    "$bin" --quiet bench --config configs/p3_certified.toml --results-dir "$out" > /dev/null
    {
        echo
        echo "### P3: certified removal, 7 vs 9 (\`configs/p3_certified.toml\`)"
        echo
        echo '```sh'
        echo 'unlearn bench --config configs/p3_certified.toml'
        echo '```'
        echo
        sed -e 's/^# /#### /' -e 's/^## /#### /' \
            -e 's|^!\[test accuracy against epsilon\](accuracy_vs_epsilon.svg)$|(The plot, `accuracy_vs_epsilon.svg`, is written beside the report by the command.)|' \
            "$out/p3_certified/report.md"
    } >> "$md"
}
step "P3" p3

# 5. P6: deletion-efficient k-means (the Gaussian runs and DC-k-means on Fashion-MNIST).
p6() {
    "$bin" --quiet --json kmeans grid --config configs/p6_kmeans.toml \
        --run gaussian-q --run gaussian-dc --run fashion-mnist-dc > "$out/p6.jsonl"
    {
        echo
        echo "### P6: deletion-efficient k-means (\`configs/p6_kmeans.toml\`)"
        echo
        echo '```sh'
        echo 'unlearn kmeans grid --config configs/p6_kmeans.toml --run gaussian-q --run gaussian-dc --run fashion-mnist-dc'
        echo '```'
        echo
        echo "| data | method | deletions (retrains) | s / deletion | k-means++ retrain (s) | speed-up | loss / best k-means++ |"
        echo "|---|---|---:|---:|---:|---:|---:|"
    } >> "$md"
    python3 - "$out/p6.jsonl" >> "$md" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    method = r["method"]
    if method["method"] == "quantized":
        name = f"Q (ε {method['epsilon']})"
    else:
        name = f"DC widths {','.join(map(str, method['widths']))}, {method['restarts']} restarts"
    print(f"| {r['data']} | {name} | {r['deletions_done']} ({r['retrains']}) | {r['seconds_per_deletion']:.5f} "
          f"| {r['baseline_seconds_per_retrain']:.3f} | {r['speedup']:.0f}× | {r['loss_ratio_to_best']:.4f} |")
PY
}
step "P6" p6

# 6. P8 at small scale: U-LiRA and the challenge score for every neural method.
p8() {
    "$bin" --quiet audit --config configs/p8_quick.toml --jobs 2 --results-dir "$out" > /dev/null
    {
        echo
        echo "### P8 at small scale (\`configs/p8_quick.toml\`)"
        echo
        echo '```sh'
        echo 'unlearn audit --config configs/p8_quick.toml --jobs 2'
        echo '```'
        echo
        sed -e '1d' -e 's/^## /#### /' "$out/p8_quick/report.md"
        echo
        echo "The noise floor of F (\`scripts/p8_noise_floor.sh\`: retraining audited as a method):"
        echo
        scripts/p8_noise_floor.sh "$bin"
    } >> "$md"
}
step "P8" p8

# 7. P7: one newton-guo removal in process, d = 785.
newton() {
    {
        echo
        echo "### P7: \`newton-guo\` single removals in process (7 vs 9, d = 785)"
        echo
        echo '```sh'
        echo 'cargo run --release -p unlearn --example newton_removal'
        echo '```'
        echo
        "$CARGO_TARGET_DIR/release/examples/newton_removal"
    } >> "$md"
}
step "newton-guo removal" newton

printf '\nTotal: %s s; load average at the end %s.\n' "$(($(date +%s) - started))" "$(load)" >> "$md"
echo "reproduce_quick: wrote $md in $(($(date +%s) - started)) s" >&2
