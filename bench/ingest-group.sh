#!/usr/bin/env bash
# Ingestion throughput with 1, 2 and 3 `paver ingest` processes sharing one pipeline
# through its Kafka consumer group, 1 KB Avro events, topic to ClickHouse. Prints a
# Markdown table.
#
# Usage: bench/ingest-group.sh [--events N] [--partitions P] [--processes 1,2,3] [--no-build]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
"$PY" -m pip install --quiet confluent-kafka==2.16.1 fastavro==1.13.1 >&2
scripts/test-servers start >&2
eval "$(scripts/test-servers env)"
exec "$PY" bench/ingest_group.py "${PAVER_BIN:-$ROOT/target/release/paver}" "${ARGS[@]}"
