"""What the benchmark scripts share: the machine's description, and running a command with
its wall time and peak memory."""
import os
import platform
import statistics
import subprocess
import tempfile
import time

# Peak RSS comes from GNU time (%M, KiB) when it is there: os.wait4's ru_maxrss would also
# count the forked Python before exec (~15 MiB).
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_FILE = os.path.join(tempfile.gettempdir(), f"paver-bench-rss-{os.getpid()}.txt")
RSS_SOURCE = "GNU time %M" if GNU_TIME else "os.wait4 ru_maxrss (includes the forked Python: approximate)"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def git_rev(root):
    """The commit being measured, and whether the work tree differs from it."""
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (+ uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


def first_line(cmd):
    """The first line a command prints (a version), or `unknown`."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"


def run(argv, cwd, capture=False):
    """Run argv in cwd; return (exit code, wall seconds, peak RSS KiB, stdout, stderr).
    Without capture, the output is thrown away (and costs nothing to read)."""
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", RSS_FILE] + list(argv)
    sink = subprocess.PIPE if capture else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
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
    decode = lambda b: (b or b"").decode(errors="replace")
    return p.returncode, wall, rss, decode(out), decode(err)


def measure(once, runs):
    """Call `once()` (returning wall seconds and peak RSS KiB) `runs` times: best and
    median wall seconds, and the peak RSS in MiB."""
    walls, rsss = [], []
    for _ in range(runs):
        wall, rss = once()
        walls.append(wall)
        rsss.append(rss)
    return min(walls), statistics.median(walls), max(rsss) / 1024
