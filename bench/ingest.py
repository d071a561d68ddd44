"""Ingestion throughput, topic to ClickHouse, for 1 KB Avro events: `paver ingest` beside a
reference Python loop (confluent-kafka + fastavro + HTTP inserts; see
ingest_reference.py), on the same machine, broker and ClickHouse, in the same run.

Reports wall time, events/s, CPU seconds of the ingesting process (user + system) and
events per CPU-second ("per core"), and peak RSS. ClickHouse's own work is the same for
both (the same rows land in a MergeTree table) and is not counted.

Usage: python3 bench/ingest.py PAVER_BINARY [--events N] [--partitions P]
                               [--variant 'LABEL|BINARY|ARGS' ...]
Each --variant is one more `paver ingest` run over the same events, into a pipeline of its
own (its own group, staging table, sink table): BINARY empty means PAVER_BINARY, ARGS are
added to `paver ingest` (e.g. `--insert-format json`, `--batch-mib 32`); `--processes N`
in ARGS splits the partitions over N processes (`--partitions`), whose CPU and peak RSS
are summed. Without --variant, one run with the defaults.
With PAVER_BENCH_CLUSTER (a cluster's name, PAVER_CLICKHOUSE_URL one of its nodes) and
PAVER_BENCH_SHARDS (each shard's HTTP address, comma-separated), the pipelines write into that
cluster (2 shards x 2 replicas: ReplicatedMergeTree, paver spreading partitions over the
shards), and the reference inserts into a Distributed table over ReplicatedMergeTree tables
with insert_distributed_sync=1, as a user of the cluster would.
(bench/ingest.sh builds paver, starts the servers, and calls this with the venv's Python.)
"""
import argparse
import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import benchlib  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = {
    "type": "record", "name": "Event", "namespace": "dev.paver.bench",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "kind", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": "double"},
        {"name": "payload", "type": "string"},
    ],
}


def ch(url, sql):
    """Run a statement; `url` may carry settings (`http://host:8123/?wait_end_of_query=1`)."""
    req = urllib.request.Request(url if "?" in url else url + "/", data=sql.encode(), method="POST")
    try:
        return urllib.request.urlopen(req, timeout=60).read().decode().strip()
    except urllib.error.HTTPError as e:
        sys.exit(f"ClickHouse refused `{sql[:200]}`: {e.read().decode()[:500]}")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def zigzag(v):
    n = (v << 1) ^ (v >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(s):
    b = s.encode()
    return zigzag(len(b)) + b


def proc_cpu_rss(pid):
    """(user+system CPU seconds, peak RSS KiB) of a running process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, hwm


def listener_pid(address):
    """The pid of the local process listening on host:port (`ss`), or None."""
    port = address.rsplit(":", 1)[-1].split("/")[0]
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    except OSError:
        return None
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


def cpu_of(pid):
    """CPU seconds of a running process; 0 when there is none."""
    try:
        return proc_cpu_rss(pid)[0] if pid else 0.0
    except OSError:
        return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paver")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--variant", action="append", default=[])
    args = ap.parse_args()
    variants = []
    for v in args.variant or ["paver ingest||"]:
        label, binary, extra = (v.split("|") + ["", ""])[:3]
        extra = extra.split()
        processes = 1
        if "--processes" in extra:
            i = extra.index("--processes")
            processes = int(extra[i + 1])
            del extra[i:i + 2]
        variants.append((label, binary or args.paver, extra, processes))
    url = os.environ.get("PAVER_CLICKHOUSE_URL", "http://127.0.0.1:8123")
    brokers = os.environ.get("PAVER_KAFKA_BROKERS", "127.0.0.1:9092")
    cluster = os.environ.get("PAVER_BENCH_CLUSTER")
    shards = [u for u in os.environ.get("PAVER_BENCH_SHARDS", "").split(",") if u]
    stamp = str(int(time.time()))
    topic = f"bench-ingest-{stamp}"
    pipeline = f"bench-ingest-{stamp}"
    db = f"bench_ingest_{stamp}"
    work = tempfile.mkdtemp(prefix="paver-bench-ingest-")
    repo = os.path.join(work, "repo")
    # The platform repo: a topic, its dead-letter topic, the subject, a cluster, a pipeline.
    for name, parts in [(topic, args.partitions), (topic + "-dlq", 1)]:
        write(f"{repo}/topics/{name}/v1.yaml",
              f"apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-bench\n"
              f"spec:\n  partitions: {parts}\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n")
    write(f"{repo}/schemas/events/v1.avsc", json.dumps(SCHEMA, indent=2))
    write(f"{repo}/clusters/main/v1.yaml",
    # The events are dated 2026-01-01: a server with TTL (19.6+) drops rows older than the
    # retention as they are written, so the cluster keeps ten years.
          "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-bench\n"
          f"spec:\n  replication: {2 if cluster else 1}\n  shards: {max(len(shards), 1)}\n  memoryGB: 16\n  retentionDays: 3650\n")
    if cluster:
        write(f"{repo}/paver.yaml",
              f"targets:\n  clusters:\n    main:\n      clickhouse:\n        url: \"{url}\"\n        cluster: {cluster}\n"
              f"        shards: [{', '.join(json.dumps(u) for u in shards)}]\n")
    for n in range(len(variants)):
        write(f"{repo}/pipelines/{pipeline}-{n}/v1.yaml",
              f"apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}-{n}\n  version: 1\n  owner: team-bench\n"
              f"spec:\n  source:\n    type: kafka\n    topic: {topic}\n    consumerGroup: {pipeline}-{n}\n    schema: events@1\n    deadLetterTopic: {topic}-dlq\n"
              f"  transform:\n    type: sql\n    query: SELECT id, kind, at, amount, payload FROM source\n"
              f"  sink:\n    type: clickhouse\n    cluster: main\n    table: {db}.events_{n}\n    orderKey: (id, at)\n")
    state = os.path.join(work, "state.db")
    env = dict(os.environ, PAVER_CLICKHOUSE_URL=url, PAVER_KAFKA_BROKERS=brokers)
    subprocess.run([args.paver, "apply", "--repo", repo, "--state", state], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    # The reference's table: the same columns and keys as paver's sink.
    reference_url = url
    if cluster:
        # On the cluster: replicated tables on every node, a Distributed table over them,
        # inserted into synchronously (the insert returns once every shard has its rows).
        on = f"ON CLUSTER `{cluster}`"
        ddl = url + "/?wait_end_of_query=1"
        ch(ddl, f"CREATE TABLE {db}.reference_local {on} AS {db}.events_0__v1 ENGINE = "
                f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/bench/{db}/reference', '{{replica}}') ORDER BY (id, at)")
        ch(ddl, f"CREATE TABLE {db}.reference {on} AS {db}.reference_local "
                f"ENGINE = Distributed(`{cluster}`, {db}, reference_local, rand())")
        reference_url = url + "/?insert_distributed_sync=1"
    else:
        ch(url, f"CREATE TABLE {db}.reference AS {db}.events_0")

    # 1 KB events, in the single-object encoding.
    fingerprint = fingerprint_of(SCHEMA)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000})
    payload = "x" * 900
    print(f"==> producing {args.events} events of ~1 KB to {topic} ({args.partitions} partitions)", file=sys.stderr)
    for i in range(args.events):
        body = (avro_string(f"user-{i:09d}") + avro_string("click") + zigzag(1_767_225_600_000 + i)
                + struct.pack("<d", 12.5) + avro_string(payload))
        producer.produce(topic, b"\xc3\x01" + fingerprint + body, key=f"{i}".encode())
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(120)
    size = len(b"\xc3\x01" + fingerprint + body)

    rows = []
    # The servers' CPU (ClickHouse and the broker, when they run on this machine): on a
    # machine of few cores they share it with the ingesting process.
    servers = [listener_pid(url.split("://", 1)[-1]), listener_pid(brokers.split(",")[0])]

    def measure(name, argvs, table, log):
        """Start the processes; poll the table's count until every event is in. Returns wall
        time from start, steady-state time (first row to last), CPU seconds (all of the
        processes), peak RSS MiB (the sum of each process's)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers_before = [cpu_of(pid) for pid in servers]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{log}.{i}", "w"))
                 for i, argv in enumerate(argvs)]
        first = None
        hwm = {}
        while True:
            n = int(ch(url, f"SELECT count() FROM {table}"))
            now = time.perf_counter()
            if n > 0 and first is None:
                first = now
            for p in procs:
                try:
                    hwm[p.pid] = max(hwm.get(p.pid, 0), proc_cpu_rss(p.pid)[1])
                except OSError:
                    pass
            if n >= args.events:
                break
            if now - t0 > 900 or any(p.poll() is not None and p.returncode != 0 for p in procs):
                sys.exit(f"{name} did not finish: see {log}.*")
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows.append((name, wall, wall - (first - t0), cpu, sum(hwm.values()) / 1024,
                     [cpu_of(pid) - b for pid, b in zip(servers, servers_before)]))

    for n, (label, binary, extra, processes) in enumerate(variants):
        argvs = []
        for k in range(processes):
            argv = [binary, "ingest", "--pipeline", f"{pipeline}-{n}", "--state", state] + extra
            if processes > 1:
                argv += ["--partitions", ",".join(str(q) for q in range(args.partitions) if q % processes == k)]
            argvs.append(argv)
        measure(label, argvs, f"{db}.events_{n}", os.path.join(work, f"paver-ingest-{n}.log"))
    measure("Python: confluent-kafka + fastavro + HTTP",
            [[sys.executable, os.path.join(ROOT, "bench", "ingest_reference.py"), brokers, topic,
             str(args.partitions), reference_url, f"{db}.reference", f"{repo}/schemas/events/v1.avsc", str(args.events)]],
            f"{db}.reference", os.path.join(work, "reference.log"))

    where = f", into cluster {cluster} ({len(shards)} shards x 2 replicas)" if cluster else ""
    print(f"\nIngestion of {args.events} events of {size} bytes, {args.partitions} partitions, topic to ClickHouse{where}")
    print(f"machine: {benchlib.cpu_model()}, {benchlib.nproc()} cores; paver {benchlib.git_rev(ROOT)}; "
          f"ClickHouse {ch(url, 'SELECT version()')}; peak RSS: VmHWM polled; CPU: user + system of the process\n")
    print("| tool | wall s (start → all rows) | events/s | steady s (first → last row) | events/s steady | CPU s | events per CPU-second | peak RSS MiB | ClickHouse CPU s | broker CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, wall, steady, cpu, rss, server_cpu in rows:
        print(f"| {name} | {wall:.2f} | {args.events / wall:,.0f} | {steady:.2f} | {args.events / max(steady, 0.001):,.0f} "
              f"| {cpu:.2f} | {args.events / max(cpu, 0.001):,.0f} | {rss:.0f} | "
              + " | ".join(f"{c:.2f}" if pid else "-" for pid, c in zip(servers, server_cpu)) + " |")
    _, rw, rs, rc, _, _ = rows[-1]
    print("\nratio to the reference (higher is better for the first):")
    for name, pw, ps, pc, _, _ in rows[:-1]:
        print(f"- {name}: {rw / pw:.2f}x events/s from start, {rs / max(ps, 0.001):.2f}x steady, "
              f"{rc / max(pc, 0.001):.2f}x events per CPU-second")
    try:
        ch(url + ("/?wait_end_of_query=1" if cluster else ""),
           f"DROP DATABASE IF EXISTS {db}" + (f" ON CLUSTER `{cluster}`" if cluster else ""))
    except SystemExit as e:  # the table is measured; a leftover database is only noted
        print(f"note: {e}", file=sys.stderr)


def fingerprint_of(schema):
    """CRC-64-AVRO of the schema's Parsing Canonical Form (fastavro computes it)."""
    from fastavro.schema import to_parsing_canonical_form, fingerprint
    canonical = to_parsing_canonical_form(schema)
    # fastavro gives the fingerprint's bytes in little-endian order, as hex: the header's.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


if __name__ == "__main__":
    main()
