# Sourced by the benchmark scripts: a log line, and the paver-lint binary to measure.

log() { echo "==> $*" >&2; }

# Sets LINT: $PAVER_LINT, or target/release/paver-lint (built first unless BUILD=0).
# Needs ROOT and the script's name in NAME.
locate_paver_lint() {
  if [[ -n "${PAVER_LINT:-}" ]]; then
    LINT="$PAVER_LINT"
  else
    if [[ "${BUILD:-1}" == 1 ]]; then
      log "building paver-lint (release)"
      (cd "$ROOT" && cargo build --release --quiet -p paver-lint)
    fi
    LINT="${CARGO_TARGET_DIR:-$ROOT/target}/release/paver-lint"
    [[ "$LINT" == /* ]] || LINT="$ROOT/$LINT"
  fi
  [[ -x "$LINT" ]] || { echo "$NAME: no paver-lint binary at $LINT" >&2; exit 2; }
}
