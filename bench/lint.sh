#!/usr/bin/env bash
# Benchmark paver-lint against check-jsonschema on a large generated platform repo.
#
# Usage: bench/lint.sh [--small] [--runs N] [--keep] [--no-build]
#   --small     200 topics / 200 subjects / 200 pipelines instead of 2,000 each
#   --runs N    timed runs per tool (default 3; best and median are reported)
#   --keep      keep the generated repo and print its path
#   --no-build  use the existing target/release/paver-lint (or $PAVER_LINT)
#
# Environment:
#   PAVER_BENCH_VENV  venv holding check-jsonschema (default /tmp/paver-bench-venv)
#   PAVER_LINT        path of a paver-lint binary to use instead of building one
#   CARGO_TARGET_DIR  honoured when locating the built binary
#
# The generated repo lints clean by construction: paver-lint must exit 0 on it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
SCHEMAS="$ROOT/schemas"
VENV="${PAVER_BENCH_VENV:-/tmp/paver-bench-venv}"
CJS_VERSION="0.39.0"

SIZE=2000
RUNS=3
KEEP=0
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --small) SIZE=200 ;;
    --runs) RUNS="$2"; shift ;;
    --runs=*) RUNS="${1#--runs=}" ;;
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lint.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "lint.sh: --runs needs a positive integer" >&2; exit 2; }

NAME=lint.sh
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

# --- 1. paver-lint ----------------------------------------------------------
locate_paver_lint

# --- 2. check-jsonschema in a venv --------------------------------------------
CJS="$VENV/bin/check-jsonschema"
if [[ ! -x "$CJS" ]] || ! "$CJS" --version 2>/dev/null | grep -qF "$CJS_VERSION"; then
  log "installing check-jsonschema==$CJS_VERSION into $VENV"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "check-jsonschema==$CJS_VERSION"
fi

for kind in kafka-topic clickhouse-cluster data-pipeline subject; do
  [[ -f "$SCHEMAS/$kind.schema.json" ]] || {
    echo "lint.sh: missing $SCHEMAS/$kind.schema.json" >&2; exit 2; }
done

# --- 3. generate the repo -----------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/paver-bench.XXXXXX")"
REPO="$WORK/repo"
cleanup() {
  if [[ "$KEEP" == 1 ]]; then log "kept generated repo at $REPO"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log "generating repo ($SIZE topics, $SIZE subjects x 3 versions, $SIZE pipelines x 2 versions)"
python3 "$BENCH/gen_repo.py" "$REPO" --topics "$SIZE" --subjects "$SIZE" --versions 3 \
  --pipelines "$SIZE" --pipeline-versions 2 --quiet

# --- 4. measure ---------------------------------------------------------------
# One Python process runs everything: wall time with time.perf_counter around
# subprocess, peak RSS per run from os.wait4 (ru_maxrss of the child and of
# whatever it waited for). File lists are passed as arguments, relative to the
# repo, split into chunks below ARG_MAX like xargs would.
PYTHONPATH="$BENCH" python3 - "$LINT" "$CJS" "$REPO" "$SCHEMAS" "$RUNS" "$ROOT" <<'PY'
import os, sys
from pathlib import Path

from benchlib import RSS_SOURCE, cpu_model, first_line, git_rev, measure, nproc, run

lint, cjs, repo, schemas, runs, root = sys.argv[1:7]
runs = int(runs)
repo = Path(repo)

def rel(pattern):
    return sorted(str(p.relative_to(repo)) for p in repo.glob(pattern))

topics = rel("topics/*/v*.yaml")
clusters = rel("clusters/*/v*.yaml")
pipelines = rel("pipelines/*/v*.yaml")
subject_yaml = rel("schemas/*/subject.yaml")
avsc = rel("schemas/*/v*.avsc")
all_files = [p for p in repo.rglob("*") if p.is_file()]

print("## paver-lint benchmark")
print()
print(f"- CPU: {cpu_model()}, nproc {nproc()}")
print(f"- paver commit: {git_rev(root)}; {first_line([lint, '--version'])}; {first_line([cjs, '--version'])}")
print(f"- repo: {len(all_files)} files: paver.yaml 1, clusters {len(clusters)}, topics {len(topics)}, "
      f"avsc {len(avsc)}, subject.yaml {len(subject_yaml)}, pipelines {len(pipelines)}")
print(f"- {runs} timed runs per tool after one warm-up run; peak RSS from {RSS_SOURCE}")
print()
sys.stdout.flush()

def chunks(files, fixed):
    """Split files so that each command line stays well below ARG_MAX."""
    limit = max(os.sysconf("SC_ARG_MAX") // 2 - sum(len(k) + len(v) + 2 for k, v in os.environ.items()), 32768)
    base = sum(len(a) + 1 for a in fixed)
    cur, size = [], base
    for f in files:
        if cur and size + len(f) + 1 + 8 > limit:
            yield cur
            cur, size = [], base
        cur.append(f)
        size += len(f) + 1 + 8  # + pointer
    if cur:
        yield cur

cjs_jobs = []
for kind, files in (("kafka-topic", topics), ("clickhouse-cluster", clusters),
                    ("data-pipeline", pipelines), ("subject", subject_yaml)):
    fixed = [cjs, "--schemafile", os.path.join(schemas, f"{kind}.schema.json")]
    for part in chunks(files, fixed):
        cjs_jobs.append(fixed + part)

def lint_once():
    rc, wall, rss, _, _ = run([lint, str(repo), "--format", "json"], repo)
    return rc, wall, rss

def cjs_once(capture=False):
    rc, wall, rss, out = 0, 0.0, 0, ""
    for argv in cjs_jobs:
        r, w, m, o, e = run(argv, repo, capture)
        wall += w
        rss = max(rss, m)
        if r != 0 and rc == 0:
            rc, out = r, f"$ check-jsonschema --schemafile {os.path.basename(argv[2])} ...\n{o}{e}"
    return rc, wall, rss, out

def banner(msg):
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}", file=sys.stderr)

# Warm-up runs double as correctness checks.
rc, *_ = lint_once()
lint_ok = rc == 0
if not lint_ok:
    banner(f"paver-lint exited {rc} on the generated repo (expected 0: it is clean by construction)")
    _, _, _, human, _ = run([lint, str(repo), "--format", "human"], repo, capture=True)
    print("\n".join(human.splitlines()[:40]), file=sys.stderr)
    print(file=sys.stderr)
rc, _, _, out = cjs_once(capture=True)
cjs_ok = rc == 0
if not cjs_ok:
    banner(f"check-jsonschema exited {rc} on the generated repo (expected 0)")
    print("\n".join(out.splitlines()[:40]), file=sys.stderr)
    print(file=sys.stderr)

l_best, l_med, l_rss = measure(lambda: lint_once()[1:3], runs)
c_best, c_med, c_rss = measure(lambda: cjs_once()[1:3], runs)

n_lint = len(all_files)
n_cjs = len(topics) + len(clusters) + len(pipelines) + len(subject_yaml)
print("| tool | what it checks | files | wall best (s) | wall median (s) | peak RSS (MiB) | ratio vs paver-lint |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
print(f"| paver-lint{'' if lint_ok else ' (FAILED)'} | full lint: JSON Schemas, references, SQL, Avro evolution "
      f"| {n_lint} | {l_best:.3f} | {l_med:.3f} | {l_rss:.1f} | 1.0x |")
print(f"| check-jsonschema {len(cjs_jobs)} invocations{'' if cjs_ok else ' (FAILED)'} | JSON Schema only "
      f"| {n_cjs} | {c_best:.3f} | {c_med:.3f} | {c_rss:.1f} | {c_best / l_best:.1f}x |")
print()
print(f"paver-lint is {c_best / l_best:.1f}x faster than check-jsonschema (schema part only)")
if not (lint_ok and cjs_ok):
    print("WARNING: a tool did not exit 0 on the generated repo: the numbers above are not comparable")
sys.exit(0 if lint_ok and cjs_ok else 1)
PY
