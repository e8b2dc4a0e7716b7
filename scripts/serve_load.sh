#!/usr/bin/env bash
# BENCHMARKS.md "Deletion service": 16 concurrent clients for 60 s against `unlearn serve` on a
# certified newton-guo store (Fashion-MNIST 7 vs 9, ε = 1), loopback only. Prints the load
# generator's JSON line (acknowledged requests per second, acknowledgement latency) and the
# service's own counters (removals applied, forced retrains, apply-latency histogram).
#
#   scripts/serve_load.sh [CLIENTS] [SECONDS]        env: DATA, PLANNED (planned removals), BATCH
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-16}
SECONDS_RUN=${2:-60}
DATA=${DATA:-idx:/usr/share/datasets/fashion-mnist}
PLANNED=${PLANNED:-10}
BATCH=${BATCH:-1}
cargo build --release -q -p unlearn-cli -p unlearn-serve --example load
U=target/release/unlearn
WORK=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
$U --quiet train --certified newton-guo --epsilon 1 --classes 7,9 --data "$DATA" \
    --planned-removals "$PLANNED" --store "$WORK/store" >&2
$U --quiet store policy --store "$WORK/store" --batch-max "$BATCH" >/dev/null
TOKEN=$($U --quiet store token add --store "$WORK/store" --name load --scopes admin)
# The task's training rows (ids of classes 7 and 9), in a random order.
python3 - "$DATA" > "$WORK/ids.txt" <<'PY'
import gzip, os, random, sys
source = sys.argv[1]
if source == "embedded":
    path = "crates/unlearn/data/fashion-mnist-subset/train-labels-idx1-ubyte.gz"
else:
    directory = source.split(":", 1)[1]
    path = next(os.path.join(directory, n) for n in ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte") if os.path.exists(os.path.join(directory, n)))
raw = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()[8:]
ids = [i for i, label in enumerate(raw) if label in (7, 9)]
random.Random(0).shuffle(ids)
print(" ".join(map(str, ids)))
PY
$U --quiet serve --store "$WORK/store" --listen 127.0.0.1:0 > "$WORK/serve.out" &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/examples/load "http://$ADDR" "$TOKEN" "$WORK/ids.txt" "$CLIENTS" "$SECONDS_RUN"
curl -s -H "Authorization: Bearer $TOKEN" "http://$ADDR/metrics" | grep -E '^unlearn_(requests|retrains|queue|apply|removal)' | grep -v '_bucket{le="(2.5|5|10|0.25|0.5)"'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
