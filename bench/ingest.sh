#!/usr/bin/env bash
# Ingestion throughput, topic to ClickHouse, for 1 KB Avro events: `paver ingest` beside a
# reference Python loop (confluent-kafka 2.16.1 + fastavro + HTTP inserts), same machine,
# same servers, same run. Prints a Markdown table and the ratio.
#
# Usage: bench/ingest.sh [--events N] [--partitions P] [--no-build] [--ch26|--cluster]
#   --ch26:    into the ClickHouse 26.9 engine (chdb-core behind the HTTP test front of
#              scripts/test-servers) instead of ClickHouse 18.16
#   --cluster: into the test cluster (2 shards x 2 replicas of 18.16, ZooKeeper); the
#              reference through a Distributed table with insert_distributed_sync=1
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
CH26=0
CLUSTER=0
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --ch26) CH26=1 ;;
    --cluster) CLUSTER=1 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
cd "$ROOT"
if [[ $BUILD == 1 ]]; then
  echo "==> building paver (release)" >&2
  cargo build --release --quiet -p paver
fi
PY="$(scripts/setup-python | tail -1)"
# The reference's clients, pinned: confluent-kafka 2.16.1 (librdkafka 2.16) consumes from
# the tansu broker with `assign`; fastavro decodes.
"$PY" -m pip install --quiet confluent-kafka==2.16.1 fastavro==1.13.1 >&2
if [[ $CLUSTER == 1 ]]; then
  scripts/test-servers start --cluster >&2
  eval "$(scripts/test-servers env)"
  export PAVER_CLICKHOUSE_URL="$PAVER_TEST_CLUSTER_URL" PAVER_BENCH_CLUSTER="$PAVER_TEST_CLUSTER_NAME"
  # The first node of each shard (nodes 1 and 3 of the four).
  IFS=, read -r n1 _ n3 _ <<<"$PAVER_TEST_CLUSTER_NODES"
  export PAVER_BENCH_SHARDS="$n1,$n3"
elif [[ $CH26 == 1 ]]; then
  scripts/test-servers start --ch26 >&2
  eval "$(scripts/test-servers env)"
  export PAVER_CLICKHOUSE_URL="$PAVER_TEST_CLICKHOUSE26_URL"
else
  scripts/test-servers start >&2
  eval "$(scripts/test-servers env)"
fi
exec "$PY" bench/ingest.py "${PAVER:-$ROOT/target/release/paver}" "${ARGS[@]}"
