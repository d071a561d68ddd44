#!/usr/bin/env bash
# Benchmark the reconciler against the real test servers: apply a repo of N topics and N
# pipelines from scratch, then a no-op reconcile, with wall time, requests per reconcile
# and peak memory.
#
# Usage: bench/reconcile.sh [--size N] [--no-build] [--cluster]
#   --size N     topics and pipelines (default 1000; 5000 is the 10,000-resource run)
#   --no-build   use the existing target/release/paver (or $PAVER)
#   PAVER_COMPARE=path/to/paver   also time that build's no-op on the same state
#   --cluster    the pipelines' tables on the test ClickHouse cluster (scripts/test-servers
#                start --cluster: 2 shards x 2 replicas), every object ON CLUSTER
#   --no-run     skip the `paver run` rows (its no-op reconciles, from a git remote)
#
# A clean slate without disturbing the shared test servers: a tansu broker of its own on a
# free port (memory storage, stopped at the end), and a ClickHouse database of its own
# (`bench_reconcile_<pid>`, dropped before and after).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE=1000
BUILD=1
CLUSTER=0
RUN=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) SIZE="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --cluster) CLUSTER=1 ;;
    --no-run) RUN=0 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reconcile.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
cd "$ROOT"
if [[ $BUILD == 1 ]]; then
  echo "==> building paver (release)" >&2
  cargo build --release --quiet -p paver
fi
PAVER="${PAVER:-$ROOT/target/release/paver}"
if [[ $CLUSTER == 1 ]]; then
  scripts/test-servers start --cluster >&2
else
  scripts/test-servers start >&2
fi
eval "$(scripts/test-servers env)"
DB="bench_reconcile_$$"
work="$(mktemp -d)"
BROKER_PID=""
RUN_PID=""
cleanup() {
  [[ -n "$RUN_PID" ]] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
  [[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  curl -sS --data-binary "DROP DATABASE IF EXISTS $DB" "$PAVER_CLICKHOUSE_URL/" >/dev/null || true
  if [[ $CLUSTER == 1 ]]; then
    curl -sS --data-binary "DROP DATABASE IF EXISTS $DB ON CLUSTER \`$PAVER_TEST_CLUSTER_NAME\`" \
      "$PAVER_TEST_CLUSTER_URL/?wait_end_of_query=1" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
echo "==> a clean slate: a broker of its own, database $DB" >&2
BROKER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PAVER_TEST_TANSU" broker --cluster-id paver-bench --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" --storage-engine memory://tansu/ \
  </dev/null >"$work/tansu.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break
  sleep 0.1
done
export PAVER_KAFKA_BROKERS="127.0.0.1:$BROKER_PORT"
curl -sS --fail --data-binary "DROP DATABASE IF EXISTS $DB" "$PAVER_CLICKHOUSE_URL/" >/dev/null
if [[ $CLUSTER == 1 ]]; then
  curl -sS --fail --data-binary "DROP DATABASE IF EXISTS $DB ON CLUSTER \`$PAVER_TEST_CLUSTER_NAME\`" "$PAVER_TEST_CLUSTER_URL/?wait_end_of_query=1" >/dev/null
  python3 bench/gen_repo.py "$work/repo" --database "$DB" --topics "$SIZE" --subjects 10 --versions 1 --pipelines "$SIZE" --pipeline-versions 1 --clusters 1 >&2
  printf 'targets:\n  clusters:\n    cluster-0:\n      clickhouse:\n        url: "%s"\n        cluster: %s\n' \
    "$PAVER_TEST_CLUSTER_URL" "$PAVER_TEST_CLUSTER_NAME" >> "$work/repo/paver.yaml"
else
  python3 bench/gen_repo.py "$work/repo" --database "$DB" --topics "$SIZE" --subjects 10 --versions 1 --pipelines "$SIZE" --pipeline-versions 1 >&2
fi
state="$work/state.db"
# The repo as a commit of a bare git remote, as `paver run` follows one.
git -C "$work/repo" init -q -b main && git -C "$work/repo" add -A \
  && git -C "$work/repo" -c user.name=bench -c user.email=bench@localhost commit -qm bench \
  && git clone -q --bare "$work/repo" "$work/remote.git"
REPO=(--repo "file://$work/remote.git" --branch main)

measure() { # label, then the command; prints a table row
  local label="$1"; shift
  local start end out
  start=$(date +%s.%N)
  out=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null) || { echo "$out" | tail -20 >&2; echo "FAILED: $label" >&2; exit 1; }
  end=$(date +%s.%N)
  local rss requests
  rss=$(echo "$out" | tail -1)
  requests=$(echo "$out" | grep -oE '[0-9]+ ClickHouse queries, [0-9]+ Kafka requests' | tail -1 || true)
  printf '| %s | %.2f | %s | %.1f |\n' "$label" "$(awk "BEGIN{print $end - $start}")" "$requests" "$(awk "BEGIN{print $rss / 1024}")"
}

echo
echo "## paver reconcile benchmark"
echo
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc)"
echo "- repo: $SIZE topics, $SIZE pipelines (each a sink table with a computed column), 10 subjects"
echo "- servers: ClickHouse $(curl -sS "$PAVER_CLICKHOUSE_URL/?query=SELECT%20version()"), tansu (scripts/test-servers)"
echo
echo "| run | wall (s) | requests | peak RSS (MiB) |"
echo "| --- | ---: | --- | ---: |"
measure "apply from scratch" "$PAVER" apply "${REPO[@]}" --state "$state"
measure "no-op reconcile" "$PAVER" apply "${REPO[@]}" --state "$state"
measure "no-op reconcile (again)" "$PAVER" apply "${REPO[@]}" --state "$state"
measure "plan only (no-op)" "$PAVER" plan "${REPO[@]}" --state "$state"
# Another build on the same state (PAVER_COMPARE=path/to/paver): a before/after in one run.
if [[ -n "${PAVER_COMPARE:-}" ]]; then
  measure "no-op reconcile, $PAVER_COMPARE" "$PAVER_COMPARE" apply "${REPO[@]}" --state "$state"
  measure "no-op reconcile, $PAVER_COMPARE (again)" "$PAVER_COMPARE" apply "${REPO[@]}" --state "$state"
fi

# `paver run`'s no-op reconciles, the ones that run all day: the same commit, polled every
# second. The first reconcile reads and lints the commit and reads
# every view's statement; the following ones reuse both while nothing changed (see
# "No-op reconciles in `paver run`" in the README). Their mean duration is from /metrics.
if [[ $RUN == 1 ]]; then
  RUN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PAVER" run "${REPO[@]}" --state "$state" --poll-seconds 1 \
    --ingest external --listen "127.0.0.1:$RUN_PORT" >"$work/run.log" 2>&1 &
  RUN_PID=$!
  metric() { curl -sS "http://127.0.0.1:$RUN_PORT/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
  for _ in $(seq 600); do [[ "$(metric paver_reconciles_total)" -ge 2 ]] 2>/dev/null && break; sleep 0.5; done
  first_count=$(metric paver_reconciles_total); first_sum=$(metric paver_reconcile_duration_seconds_sum)
  for _ in $(seq 600); do [[ "$(metric paver_reconciles_total)" -ge $((first_count + 10)) ]] 2>/dev/null && break; sleep 0.5; done
  count=$(metric paver_reconciles_total); sum=$(metric paver_reconcile_duration_seconds_sum)
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$RUN_PID/status")
  kill "$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null || true
  grep -q "FAILED\|error" "$work/run.log" && tail -5 "$work/run.log" >&2
  printf '| paver run: no-op reconcile, mean of %d after the first %d | %.2f | (not counted) | %.1f |\n' \
    "$((count - first_count))" "$first_count" "$(awk "BEGIN{print ($sum - $first_sum) / ($count - $first_count)}")" \
    "$(awk "BEGIN{print $rss / 1024}")"
fi
