#!/usr/bin/env bash
# BENCHMARKS.md "Deletion service": load on `unlearn serve` over a certified newton-guo store
# (Fashion-MNIST 7 vs 9, ε = 1), loopback only. Prints the load generator's JSON line and the
# service's own counters (removals applied, forced retrains, and the sums and counts of the
# application, retraining and removal-computation times).
#
#   scripts/serve_load.sh [CLIENTS] [SECONDS]
#       closed loop: CLIENTS clients each send the next single-id request once the last is
#       acknowledged (acknowledged requests per second, acknowledgement latency).
#   scripts/serve_load.sh --rate R [--seconds S] [--drain D] [--reader]
#       open loop: one single-id request every 1/R s for S s, latency measured from the
#       scheduled send time; then up to D s for the queue to drain, and every request's
#       status: ack latency, ack → applied latency (p50, p99, max), the applied rate and how
#       many seconds of arrivals were still queued when they stopped. --reader adds a `read`
#       token that downloads the whole ledger in a loop for the whole run.
#
# env: DATA (default the full Fashion-MNIST), PLANNED (planned removals, 10), BATCH (policy
# batch-max, 1), MAX_PENDING (serve --max-pending; unset: no bound), PRELOAD (remove this many
# ids, in batches of 100, before the run: a store with a long ledger), PURGE (policy
# purge-keep-versions, 1: only the current version's files are kept, as a deletion service
# should; 0: keep every version, ≈ 5 MB of secret state per removal on the full data).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=closed
CLIENTS=16
SECONDS_RUN=60
RATE=
DRAIN=300
READER=
if [ "${1:-}" = --rate ]; then
    MODE=open
    RATE=${2:?--rate needs a number}
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
            --seconds) SECONDS_RUN=$2; shift 2 ;;
            --drain) DRAIN=$2; shift 2 ;;
            --reader) READER=1; shift ;;
            *) echo "serve_load: unknown argument $1" >&2; exit 2 ;;
        esac
    done
else
    CLIENTS=${1:-16}
    SECONDS_RUN=${2:-60}
fi
DATA=${DATA:-idx:/usr/share/datasets/fashion-mnist}
PLANNED=${PLANNED:-10}
BATCH=${BATCH:-1}
PRELOAD=${PRELOAD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q --workspace
cargo build --release -q --workspace --example load
U=$CARGO_TARGET_DIR/release/unlearn
WORK=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
$U --quiet train --certified newton-guo --epsilon 1 --classes 7,9 --data "$DATA" \
    --planned-removals "$PLANNED" --store "$WORK/store" >&2
TOKEN=$($U --quiet store token add --store "$WORK/store" --name load --scopes admin)
READ_TOKEN=$($U --quiet store token add --store "$WORK/store" --name export --scopes read)
# The task's training rows (ids of classes 7 and 9), in a random order (seed 0); the first
# PRELOAD go into the store before the run, the rest are the run's.
python3 - "$DATA" "$WORK" "$PRELOAD" <<'PY'
import gzip, os, random, sys
source, work, preload = sys.argv[1], sys.argv[2], int(sys.argv[3])
if source == "embedded":
    path = "crates/unlearn/data/fashion-mnist-subset/train-labels-idx1-ubyte.gz"
else:
    directory = source.split(":", 1)[1]
    path = next(os.path.join(directory, n) for n in ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte") if os.path.exists(os.path.join(directory, n)))
raw = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()[8:]
ids = [i for i, label in enumerate(raw) if label in (7, 9)]
random.Random(0).shuffle(ids)
for start in range(0, preload, 100):
    with open(os.path.join(work, f"preload-{start // 100:05d}.txt"), "w") as f:
        f.write(" ".join(map(str, ids[start:min(start + 100, preload)])))
with open(os.path.join(work, "ids.txt"), "w") as f:
    f.write(" ".join(map(str, ids[preload:])))
PY
for batch in "$WORK"/preload-*.txt; do
    [ -e "$batch" ] || break
    $U --quiet forget --store "$WORK/store" --forget "ids:$batch" >/dev/null
done
PURGE=${PURGE:-1}
POLICY=(--batch-max "$BATCH")
[ "$PURGE" != 0 ] && POLICY+=(--purge-keep-versions "$PURGE")
$U --quiet store policy --store "$WORK/store" "${POLICY[@]}" >/dev/null
SERVE_ARGS=()
[ -n "${MAX_PENDING:-}" ] && SERVE_ARGS+=(--max-pending "$MAX_PENDING")
$U --quiet serve --store "$WORK/store" --listen 127.0.0.1:0 "${SERVE_ARGS[@]}" > "$WORK/serve.out" &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" >&2
if [ "$MODE" = open ]; then
    EXTRA=()
    [ -n "$READER" ] && EXTRA+=(--reader "$READ_TOKEN")
    "$CARGO_TARGET_DIR/release/examples/load" "http://$ADDR" "$TOKEN" "$WORK/ids.txt" \
        --rate "$RATE" --seconds "$SECONDS_RUN" --drain "$DRAIN" "${EXTRA[@]}"
else
    "$CARGO_TARGET_DIR/release/examples/load" "http://$ADDR" "$TOKEN" "$WORK/ids.txt" "$CLIENTS" "$SECONDS_RUN"
fi
curl -s -H "Authorization: Bearer $TOKEN" "http://$ADDR/metrics" | grep -E '^unlearn_(requests|retrains|queue|throttled|worker|apply_seconds|retrain_seconds|removal_seconds)' | grep -v '_bucket' || true
# The retraining times' distribution (cumulative buckets, seconds).
curl -s -H "Authorization: Bearer $TOKEN" "http://$ADDR/metrics" | grep -E '^unlearn_retrain_seconds_bucket' || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
