#!/usr/bin/env bash
# Ingestion throughput, topic to ClickHouse, for 1 KB Avro events: `paver ingest` beside a
# reference Python loop (confluent-kafka 2.16.1 + fastavro + HTTP inserts), same machine,
# same servers, same run. Prints a Markdown table and the ratio.
#
# Usage: bench/ingest.sh [--events N] [--partitions P] [--no-build]
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
# The reference's clients, pinned: confluent-kafka 2.16.1 (librdkafka 2.16) consumes from
# the tansu broker with `assign`; fastavro decodes.
"$PY" -m pip install --quiet confluent-kafka==2.16.1 fastavro==1.13.1 >&2
scripts/test-servers start >&2
eval "$(scripts/test-servers env)"
exec "$PY" bench/ingest.py "$ROOT/target/release/paver" "${ARGS[@]}"
