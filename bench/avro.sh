#!/usr/bin/env bash
# Benchmark paver-lint's Avro evolution checks against Apache Avro's Python checker.
#
# Usage: bench/avro.sh [--subjects N] [--versions V] [--small] [--runs N] [--keep] [--no-build]
#   --subjects N  subjects in the generated repo (default 2,000)
#   --versions V  versions per subject (default 3)
#   --small       200 subjects instead of 2,000
#   --runs N      timed runs per tool (default 3; best and median are reported)
#   --keep        keep the generated repo and print its path
#   --no-build    use the existing target/release/paver-lint (or $PAVER_LINT)
#
# The repo has Avro subjects only (no topics, clusters or pipelines). Each subject's
# versions form a chain that is compatible under its mode (FORWARD_TRANSITIVE: every
# version is read by all earlier ones), so both tools must find nothing.
#   (a) paver-lint REPO --format json: the whole lint of that repo, every subject's chain
#       checked against every earlier version (transitively);
#   (b) bench/avro_python.py REPO: the same checks with the Python `avro` package
#       (avro.compatibility.ReaderWriterCompatibilityChecker), one process.
#
# Environment:
#   PAVER_PYTHON_VENV  venv holding avro (default $HOME/.cache/paver/venv; scripts/setup-python)
#   PAVER_LINT         path of a paver-lint binary to use instead of building one
#   CARGO_TARGET_DIR   honoured when locating the built binary
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"

SUBJECTS=2000
VERSIONS=3
RUNS=3
KEEP=0
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --subjects) SUBJECTS="$2"; shift ;;
    --subjects=*) SUBJECTS="${1#--subjects=}" ;;
    --versions) VERSIONS="$2"; shift ;;
    --versions=*) VERSIONS="${1#--versions=}" ;;
    --small) SUBJECTS=200 ;;
    --runs) RUNS="$2"; shift ;;
    --runs=*) RUNS="${1#--runs=}" ;;
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "avro.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
for v in SUBJECTS VERSIONS RUNS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "avro.sh: --${v,,} needs a positive integer" >&2; exit 2; }
done

NAME=avro.sh
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

# --- 1. paver-lint ----------------------------------------------------------
locate_paver_lint

# --- 2. Apache Avro (Python) in the venv --------------------------------------
log "checking the Python venv (scripts/setup-python)"
PY="$("$ROOT/scripts/setup-python" | tail -n1)"
[[ -x "$PY" ]] || { echo "avro.sh: scripts/setup-python printed no interpreter" >&2; exit 2; }

# --- 3. generate the repo -----------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/paver-avro-bench.XXXXXX")"
REPO="$WORK/repo"
cleanup() {
  if [[ "$KEEP" == 1 ]]; then log "kept generated repo at $REPO"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log "generating repo ($SUBJECTS subjects x $VERSIONS versions, nothing else)"
python3 "$BENCH/gen_repo.py" "$REPO" --topics 0 --pipelines 0 --clusters 0 \
  --subjects "$SUBJECTS" --versions "$VERSIONS" --quiet

# --- 4. measure ---------------------------------------------------------------
# Wall time with time.perf_counter around each run, peak RSS from GNU time (%M, KiB)
# when it is there, else from os.wait4 (which also counts the forked Python).
PYTHONPATH="$BENCH" python3 - "$LINT" "$PY" "$BENCH/avro_python.py" "$REPO" "$RUNS" "$ROOT" <<'PY'
import os, re, sys
from pathlib import Path

from benchlib import RSS_SOURCE, cpu_model, first_line, git_rev, measure, nproc, run

lint, py, avro_py, repo, runs, root = sys.argv[1:7]
runs = int(runs)
repo = Path(repo)

avsc = sorted(repo.glob("schemas/*/v*.avsc"))
subjects = sorted(p for p in (repo / "schemas").iterdir() if p.is_dir())
subject_yaml = sorted(repo.glob("schemas/*/subject.yaml"))
all_files = [p for p in repo.rglob("*") if p.is_file()]

lint_cmd = [lint, str(repo), "--format", "json"]
py_cmd = [py, avro_py, str(repo)]

def banner(msg):
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}", file=sys.stderr)

# Warm-up runs double as correctness checks: both tools must find nothing.
rc, _, _, out, err = run(lint_cmd, repo, capture=True)
lint_ok = rc == 0
if not lint_ok:
    banner(f"paver-lint exited {rc} on the generated repo (expected 0: it is clean by construction)")
    print("\n".join((out + err).splitlines()[:40]), file=sys.stderr)
rc, _, _, out, err = run(py_cmd, repo, capture=True)
m = re.search(r"checks (\d+) incompatible (\d+)", out)
py_checks, py_bad = (int(m.group(1)), int(m.group(2))) if m else (None, None)
py_ok = rc == 0 and py_bad == 0
if not py_ok:
    banner(f"avro_python.py exited {rc} with {out.strip()!r} (expected 0 incompatible pairs)")
    print("\n".join(err.splitlines()[:40]), file=sys.stderr)

l_best, l_med, l_rss = measure(lambda: run(lint_cmd, repo)[1:3], runs)
p_best, p_med, p_rss = measure(lambda: run(py_cmd, repo)[1:3], runs)

avro_version = first_line([py, "-c", "from importlib.metadata import version; print('avro', version('avro'))"])
print("## Avro evolution benchmark")
print()
print(f"- CPU: {cpu_model()}, nproc {nproc()}")
print(f"- paver commit: {git_rev(root)}; {first_line([lint, '--version'])}; "
      f"{avro_version} on {first_line([py, '--version'])}")
print(f"- repo: {len(all_files)} files: paver.yaml 1, avsc {len(avsc)}, subject.yaml {len(subject_yaml)} "
      f"({len(subjects)} subjects x {len(avsc) // max(len(subjects), 1)} versions, FORWARD_TRANSITIVE)")
print(f"- {runs} timed runs per tool after one warm-up run; peak RSS from {RSS_SOURCE}")
print()
checks = "?" if py_checks is None else f"{py_checks}"
print("| tool | what it does | subjects | compatibility checks | wall best (s) | wall median (s) | peak RSS (MiB) | ratio vs paver-lint |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| paver-lint{'' if lint_ok else ' (FAILED)'} | full lint of the repo, every version against all earlier ones "
      f"| {len(subjects)} | {checks} | {l_best:.3f} | {l_med:.3f} | {l_rss:.1f} | 1.0x |")
print(f"| Apache Avro (Python) avro_python.py{'' if py_ok else ' (FAILED)'} | parse + ReaderWriterCompatibilityChecker, same pairs "
      f"| {len(subjects)} | {checks} | {p_best:.3f} | {p_med:.3f} | {p_rss:.1f} | {p_best / l_best:.1f}x |")
print()
print(f"paver-lint is {p_best / l_best:.1f}x faster than Apache Avro's Python checker "
      f"(best of {runs}; median {p_med / l_med:.1f}x)")
if not (lint_ok and py_ok):
    print("WARNING: a tool did not find the repo clean: the numbers above are not comparable")
sys.exit(0 if lint_ok and py_ok else 1)
PY
