#!/usr/bin/env bash
# Merge -> converged: a commit pushed to a bare remote, the signed GitHub push webhook sent
# to `paver run`, timed until `paver wait --server` returns; for (a) a topic config change
# and (b) a pipeline version cut-over. Prints best/median/p90 per scenario.
#
# Usage: bench/deploy.sh [--runs N] [--scenario topic|cutover|both] [--no-build] [--keep]
#   PAVER=path/to/paver   measure that binary (default target/release/paver, built first)
#
# Uses the running test servers (scripts/test-servers start); names are unique to the run,
# and its ClickHouse database is dropped at the end. Nothing is restarted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
cd "$ROOT"
if [[ -z "${PAVER:-}" ]]; then
  if [[ $BUILD == 1 ]]; then
    echo "==> building paver (release)" >&2
    cargo build --release --quiet -p paver
  fi
  PAVER="${CARGO_TARGET_DIR:-$ROOT/target}/release/paver"
fi
scripts/test-servers start >&2
eval "$(scripts/test-servers env)"
exec python3 bench/deploy.py "$PAVER" "${ARGS[@]}"
