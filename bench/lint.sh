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

log() { echo "==> $*" >&2; }

# --- 1. paver-lint ----------------------------------------------------------
if [[ -n "${PAVER_LINT:-}" ]]; then
  LINT="$PAVER_LINT"
else
  if [[ "$BUILD" == 1 ]]; then
    log "building paver-lint (release)"
    (cd "$ROOT" && cargo build --release --quiet -p paver-lint)
  fi
  LINT="${CARGO_TARGET_DIR:-$ROOT/target}/release/paver-lint"
  [[ "$LINT" == /* ]] || LINT="$ROOT/$LINT"
fi
[[ -x "$LINT" ]] || { echo "lint.sh: no paver-lint binary at $LINT" >&2; exit 2; }

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
python3 - "$LINT" "$CJS" "$REPO" "$SCHEMAS" "$RUNS" <<'PY'
import os, platform, statistics, subprocess, sys, time
from pathlib import Path

lint, cjs, repo, schemas, runs = sys.argv[1:6]
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

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

def git_rev():
    try:
        return subprocess.run(["git", "-C", os.path.dirname(schemas), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"

def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return f"{os.path.basename(cmd[0])} (version unknown)"
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"

# Peak RSS comes from GNU time (%M, KiB) when it is there: os.wait4's ru_maxrss
# would also count the forked Python before exec (~15 MiB here).
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_FILE = os.path.join(os.path.dirname(str(repo)), "rss.txt")

print("## paver-lint benchmark")
print()
print(f"- CPU: {cpu_model()}, nproc {os.cpu_count() if not hasattr(os, 'sched_getaffinity') else len(os.sched_getaffinity(0))}")
print(f"- paver commit: {git_rev()}; {version([lint, '--version'])}; {version([cjs, '--version'])}")
print(f"- repo: {len(all_files)} files: paver.yaml 1, clusters {len(clusters)}, topics {len(topics)}, "
      f"avsc {len(avsc)}, subject.yaml {len(subject_yaml)}, pipelines {len(pipelines)}")
print(f"- {runs} timed runs per tool after one warm-up run; peak RSS from "
      f"{'GNU time %M' if GNU_TIME else 'os.wait4 ru_maxrss (includes the forked Python: approximate)'}")
print()
sys.stdout.flush()

def run(argv, out=subprocess.DEVNULL):
    """Run argv in the repo; return (exit code, wall seconds, peak RSS KiB, output)."""
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", RSS_FILE] + list(argv)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=repo, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT if out == subprocess.PIPE else subprocess.DEVNULL)
    output = b""
    if out == subprocess.PIPE:
        output = p.stdout.read()
        p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    rss = ru.ru_maxrss
    if GNU_TIME:
        try:
            rss = int(open(RSS_FILE).read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    return p.returncode, wall, rss, output.decode(errors="replace")

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

def lint_once(capture=False):
    return run([lint, str(repo), "--format", "json"], subprocess.PIPE if capture else subprocess.DEVNULL)

def cjs_once(capture=False):
    rc, wall, rss, out = 0, 0.0, 0, ""
    for argv in cjs_jobs:
        r, w, m, o = run(argv, subprocess.PIPE if capture else subprocess.DEVNULL)
        wall += w
        rss = max(rss, m)
        if r != 0 and rc == 0:
            rc, out = r, f"$ check-jsonschema --schemafile {os.path.basename(argv[2])} ...\n{o}"
    return rc, wall, rss, out

def banner(msg):
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}", file=sys.stderr)

# Warm-up runs double as correctness checks.
rc, *_ = lint_once()
lint_ok = rc == 0
if not lint_ok:
    banner(f"paver-lint exited {rc} on the generated repo (expected 0: it is clean by construction)")
    _, _, _, human = run([lint, str(repo), "--format", "human"], subprocess.PIPE)
    print("\n".join(human.splitlines()[:40]), file=sys.stderr)
    print(file=sys.stderr)
rc, _, _, out = cjs_once(capture=True)
cjs_ok = rc == 0
if not cjs_ok:
    banner(f"check-jsonschema exited {rc} on the generated repo (expected 0)")
    print("\n".join(out.splitlines()[:40]), file=sys.stderr)
    print(file=sys.stderr)

def measure(fn):
    walls, rsss = [], []
    for _ in range(runs):
        _, wall, rss, _ = fn()
        walls.append(wall)
        rsss.append(rss)
    return min(walls), statistics.median(walls), max(rsss) / 1024

l_best, l_med, l_rss = measure(lint_once)
c_best, c_med, c_rss = measure(cjs_once)

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
