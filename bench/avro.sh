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
[[ -x "$LINT" ]] || { echo "avro.sh: no paver-lint binary at $LINT" >&2; exit 2; }

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
python3 - "$LINT" "$PY" "$BENCH/avro_python.py" "$REPO" "$RUNS" "$ROOT" <<'PY'
import json, os, platform, re, statistics, subprocess, sys, time
from pathlib import Path

lint, py, avro_py, repo, runs, root = sys.argv[1:7]
runs = int(runs)
repo = Path(repo)

avsc = sorted(repo.glob("schemas/*/v*.avsc"))
subjects = sorted(p for p in (repo / "schemas").iterdir() if p.is_dir())
subject_yaml = sorted(repo.glob("schemas/*/subject.yaml"))
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
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (+ uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"

def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_FILE = os.path.join(os.path.dirname(str(repo)), "rss.txt")

def run(argv):
    """Run argv; return (exit code, wall seconds, peak RSS KiB, stdout, stderr)."""
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", RSS_FILE] + list(argv)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=repo, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    rss = 0
    if GNU_TIME:
        try:
            rss = int(open(RSS_FILE).read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    else:
        import resource
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return p.returncode, wall, rss, out.decode(errors="replace"), err.decode(errors="replace")

lint_cmd = [lint, str(repo), "--format", "json"]
py_cmd = [py, avro_py, str(repo)]

def banner(msg):
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}", file=sys.stderr)

# Warm-up runs double as correctness checks: both tools must find nothing.
rc, _, _, out, err = run(lint_cmd)
lint_ok = rc == 0
if not lint_ok:
    banner(f"paver-lint exited {rc} on the generated repo (expected 0: it is clean by construction)")
    print("\n".join((out + err).splitlines()[:40]), file=sys.stderr)
rc, _, _, out, err = run(py_cmd)
m = re.search(r"checks (\d+) incompatible (\d+)", out)
py_checks, py_bad = (int(m.group(1)), int(m.group(2))) if m else (None, None)
py_ok = rc == 0 and py_bad == 0
if not py_ok:
    banner(f"avro_python.py exited {rc} with {out.strip()!r} (expected 0 incompatible pairs)")
    print("\n".join(err.splitlines()[:40]), file=sys.stderr)

def measure(cmd):
    walls, rsss = [], []
    for _ in range(runs):
        _, wall, rss, _, _ = run(cmd)
        walls.append(wall)
        rsss.append(rss)
    return min(walls), statistics.median(walls), max(rsss) / 1024

l_best, l_med, l_rss = measure(lint_cmd)
p_best, p_med, p_rss = measure(py_cmd)

avro_version = first_line([py, "-c", "from importlib.metadata import version; print('avro', version('avro'))"])
print("## Avro evolution benchmark")
print()
print(f"- CPU: {cpu_model()}, nproc {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
print(f"- paver commit: {git_rev()}; {first_line([lint, '--version'])}; "
      f"{avro_version} on {first_line([py, '--version'])}")
print(f"- repo: {len(all_files)} files: paver.yaml 1, avsc {len(avsc)}, subject.yaml {len(subject_yaml)} "
      f"({len(subjects)} subjects x {len(avsc) // max(len(subjects), 1)} versions, FORWARD_TRANSITIVE)")
print(f"- {runs} timed runs per tool after one warm-up run; peak RSS from "
      f"{'GNU time %M' if GNU_TIME else 'getrusage of the children (approximate)'}")
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
