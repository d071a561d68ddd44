"""Ingestion throughput with 1, 2, 3 … `paver ingest` processes sharing one pipeline
through its Kafka consumer group, topic to ClickHouse, for 1 KB Avro events.

For each number of processes: a pipeline of its own (topic, database), the events produced
first, then the processes started at once; the clock runs until every event is in
ClickHouse. Reports wall time from start (it includes joining the group: the test broker
takes seconds for a first assignment), the steady rate (first row to last), the CPU
seconds of all processes, and how many held partitions.

Usage: python3 bench/ingest_group.py PAVER_BINARY [--events N] [--partitions P] [--processes 1,2,3]
(bench/ingest-group.sh builds paver, starts the servers, and calls this with the venv's Python.)
"""
import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import benchlib  # noqa: E402
from ingest import SCHEMA, avro_string, ch, fingerprint_of, write, zigzag  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def platform_repo(repo, name, partitions):
    topic, db = name, name.replace("-", "_")
    for t, parts in [(topic, partitions), (topic + "-dlq", 1)]:
        write(f"{repo}/topics/{t}/v1.yaml",
              f"apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {t}\n  version: 1\n  owner: team-bench\n"
              f"spec:\n  partitions: {parts}\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n")
    write(f"{repo}/pipelines/{name}/v1.yaml",
          f"apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-bench\n"
          f"spec:\n  source:\n    type: kafka\n    topic: {topic}\n    consumerGroup: {name}\n    schema: events@1\n    deadLetterTopic: {topic}-dlq\n"
          f"  transform:\n    type: sql\n    query: SELECT id, kind, at, amount, payload FROM source\n"
          f"  sink:\n    type: clickhouse\n    cluster: main\n    table: {db}.events\n    orderKey: (id, at)\n")
    return topic, f"{db}.events", db


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paver")
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--processes", default="1,2,3")
    args = ap.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    url = os.environ.get("PAVER_CLICKHOUSE_URL", "http://127.0.0.1:8123")
    brokers = os.environ.get("PAVER_KAFKA_BROKERS", "127.0.0.1:9092")
    stamp = str(int(time.time()))
    work = tempfile.mkdtemp(prefix="paver-bench-group-")
    repo = os.path.join(work, "repo")
    write(f"{repo}/schemas/events/v1.avsc", json.dumps(SCHEMA, indent=2))
    write(f"{repo}/clusters/main/v1.yaml",
          "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-bench\n"
          "spec:\n  replication: 1\n  shards: 1\n  memoryGB: 16\n  retentionDays: 3650\n")
    runs = {n: platform_repo(repo, f"bench-group-{stamp}-{n}", args.partitions) for n in counts}
    state = os.path.join(work, "state.db")
    env = dict(os.environ, PAVER_CLICKHOUSE_URL=url, PAVER_KAFKA_BROKERS=brokers)
    subprocess.run([args.paver, "apply", "--repo", repo, "--state", state], check=True, env=env,
                   stdout=subprocess.DEVNULL)

    fingerprint = fingerprint_of(SCHEMA)
    payload = "x" * 900
    size = 0
    for n, (topic, _, _) in runs.items():
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000})
        print(f"==> producing {args.events} events of ~1 KB to {topic} ({args.partitions} partitions)", file=sys.stderr)
        for i in range(args.events):
            body = (avro_string(f"user-{i:09d}") + avro_string("click") + zigzag(1_767_225_600_000 + i)
                    + struct.pack("<d", 12.5) + avro_string(payload))
            event = b"\xc3\x01" + fingerprint + body
            size = len(event)
            producer.produce(topic, event, key=f"{i}".encode())
            if i % 10000 == 0:
                producer.poll(0)
        producer.flush(120)

    rows = []
    for n, (topic, table, db) in runs.items():
        pipeline = topic
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        logs = [os.path.join(work, f"{n}-{k}.log") for k in range(n)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen([args.paver, "ingest", "--pipeline", pipeline, "--state", state],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
                 for log in logs]
        first = None
        while True:
            got = int(ch(url, f"SELECT count() FROM {table}"))
            now = time.perf_counter()
            if got > 0 and first is None:
                first = now
            if got >= args.events:
                break
            if now - t0 > 900 or any(p.poll() not in (None, 0) for p in procs):
                sys.exit(f"{n} process(es) did not finish: see {logs}")
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        holders = sum(1 for log in logs if "took partition" in open(log).read())
        total = int(ch(url, f"SELECT count() FROM {table}"))
        distinct = int(ch(url, f"SELECT uniqExact(id) FROM {table}"))
        rows.append((n, holders, wall, wall - (first - t0), cpu, total, distinct))
        ch(url, f"DROP DATABASE IF EXISTS {db}")

    print(f"\nIngestion of {args.events} events of {size} bytes, {args.partitions} partitions, "
          f"topic to ClickHouse, by N `paver ingest` processes in one consumer group")
    print(f"machine: {benchlib.cpu_model()}, {benchlib.nproc()} cores; paver {benchlib.git_rev(ROOT)}; "
          f"ClickHouse {ch(url, 'SELECT version()')}; CPU: user + system of all the processes\n")
    print("| processes | held partitions | wall s (start → all rows) | events/s | steady s (first → last row) "
          "| events/s steady | CPU s | events per CPU-second | rows (distinct ids) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, holders, wall, steady, cpu, total, distinct in rows:
        print(f"| {n} | {holders} | {wall:.2f} | {args.events / wall:,.0f} | {steady:.2f} "
              f"| {args.events / max(steady, 0.001):,.0f} | {cpu:.2f} | {args.events / max(cpu, 0.001):,.0f} "
              f"| {total:,} ({distinct:,}) |")


if __name__ == "__main__":
    main()
