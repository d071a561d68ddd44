#!/usr/bin/env python3
"""Merge -> converged: how long from a commit landing on the tracked branch until
`paver wait` says it is applied, through `paver run` and a signed GitHub push webhook.

Usage: deploy.py PAVER [--runs N] [--scenario topic|cutover|both] [--keep]

A platform repo (a ClickHouse cluster, a topic, its dead-letter topic, an Avro subject
and a pipeline, under names unique to this run) is pushed to a bare git remote; `paver
run` follows the remote's `main` with a webhook secret, its ingestion workers embedded
(the default). Then, N times per scenario:

  1. a commit is made and pushed to the remote (the merge);
  2. the clock starts; the push webhook is POSTed to `paver run`, signed with
     X-Hub-Signature-256, as GitHub sends it;
  3. `paver wait --revision <sha> --server <paver run>` runs; the clock stops when it
     exits 0.

Scenarios: (a) `topic`: a topic's retention.ms changes (one incremental config update
in Kafka); (b) `cutover`: a new version of the pipeline (new staging table and views,
the live record switched, the embedded worker's hand-over awaited, the old version
retired). The servers are the test servers (scripts/test-servers env).
"""
import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SECRET = b"bench-deploy-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(work, *args):
    subprocess.run(["git", "-C", work, *args], check=True, capture_output=True)


def head(work):
    return subprocess.run(["git", "-C", work, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


class Platform:
    def __init__(self, root, prefix):
        self.root = root
        self.prefix = prefix
        self.work = os.path.join(root, "work")
        self.remote = os.path.join(root, "remote.git")
        subprocess.run(["git", "init", "--quiet", "--bare", self.remote], check=True)
        subprocess.run(["git", "init", "--quiet", "-b", "main", self.work], check=True)
        git(self.work, "config", "user.email", "bench@paver.dev")
        git(self.work, "config", "user.name", "bench")
        git(self.work, "remote", "add", "origin", "file://" + self.remote)
        self.database = prefix.replace("-", "_")

    def topic(self, name):
        return f"{self.prefix}-{name}"

    def write(self, path, text):
        full = os.path.join(self.work, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def write_topic(self, name, version, retention):
        topic = self.topic(name)
        self.write(f"topics/{topic}/v{version}.yaml", (
            "apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n"
            f"  name: {topic}\n  version: {version}\n  owner: team-bench\nspec:\n  partitions: 1\n"
            f"  replicationFactor: 1\n  config:\n    retention.ms: \"{retention}\"\n"
            "    cleanup.policy: delete\n"))

    def write_pipeline(self, version, noise):
        name = self.topic("ingest")
        self.write(f"pipelines/{name}/v{version}.yaml", (
            "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n"
            f"  name: {name}\n  version: {version}\n  owner: team-bench\nspec:\n"
            "  source:\n    type: kafka\n"
            f"    topic: {self.topic('events')}\n    consumerGroup: {name}\n"
            f"    schema: events@1\n    deadLetterTopic: {self.topic('dlq')}\n"
            "  transform:\n    type: sql\n"
            "    query: SELECT id, kind, at, amount, now() AS ingestedAt FROM source "
            f"WHERE kind != '{noise}'\n"
            "  sink:\n    type: clickhouse\n    cluster: main\n"
            f"    table: {self.database}.events\n    partitionKey: toYYYYMM(at)\n"
            "    orderKey: (id, at)\n"))

    def base(self):
        self.write("paver.yaml", "defaults:\n  compatibility: FORWARD_TRANSITIVE\n")
        self.write("clusters/main/v1.yaml", (
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n"
            "  name: main\n  version: 1\n  owner: team-bench\nspec:\n  replication: 2\n"
            "  shards: 1\n  memoryGB: 32\n  retentionDays: 30\n"))
        self.write_topic("events", 1, 604800000)
        self.write_topic("dlq", 1, 2592000000)
        self.write("schemas/events/v1.avsc", json.dumps({
            "type": "record", "name": "Event", "namespace": "dev.paver.bench",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": "kind", "type": "string"},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "amount", "type": "double"},
            ]}, indent=2))
        self.write_pipeline(1, "noise")

    def push(self, message):
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "-m", message)
        git(self.work, "push", "--quiet", "origin", "main")
        return head(self.work)


def webhook(port, sha):
    body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook", data=body, method="POST",
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 202:
            raise SystemExit(f"the webhook was answered {answer.status}")


def wait(paver, port, sha, timeout="120s"):
    out = subprocess.run([paver, "wait", "--revision", sha, "--timeout", timeout,
                          "--server", f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"paver wait {sha} exited {out.returncode}:\n{out.stdout}{out.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paver")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--scenario", choices=["topic", "cutover", "both"], default="both")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (paver run's log)")
    args = ap.parse_args()
    paver = os.path.abspath(args.paver)
    ch = os.environ["PAVER_CLICKHOUSE_URL"]
    stamp = int(time.time() * 1000) % 1_000_000
    prefix = f"bench-deploy-{os.getpid()}-{stamp}"
    root = tempfile.mkdtemp(prefix="paver-deploy-")
    p = Platform(root, prefix)
    p.base()
    first = p.push("v1")
    port = free_port()
    log_path = os.path.join(root, "run.log")
    log = open(log_path, "w")
    env = dict(os.environ, PAVER_WEBHOOK_SECRET=SECRET.decode())
    server = subprocess.Popen(
        [paver, "run", "--repo", "file://" + p.remote, "--branch", "main",
         "--state", os.path.join(root, "state", "paver.db"),
         "--listen", f"127.0.0.1:{port}", "--poll-seconds", "3600"],
        env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    results = {}
    try:
        wait(paver, port, first, "300s")
        scenarios = ["topic", "cutover"] if args.scenario == "both" else [args.scenario]
        version = 1
        topic_version = 1
        for scenario in scenarios:
            times = []
            for i in range(args.runs):
                if scenario == "topic":
                    topic_version += 1
                    p.write_topic("events", topic_version, 604800000 + 1000 * topic_version)
                else:
                    version += 1
                    p.write_pipeline(version, f"noise{version}")
                sha = p.push(f"{scenario} {i}")
                t0 = time.perf_counter()
                webhook(port, sha)
                wait(paver, port, sha)
                times.append(time.perf_counter() - t0)
            results[scenario] = times
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        try:
            urllib.request.urlopen(urllib.request.Request(
                ch + "/", data=f"DROP DATABASE IF EXISTS {p.database}".encode()), timeout=30)
        except OSError as e:
            print(f"deploy.py: could not drop {p.database}: {e}", file=sys.stderr)
        if args.keep:
            print(f"deploy.py: kept {root} (paver run's log: {log_path})", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    version = subprocess.run([paver, "--version"], capture_output=True, text=True).stdout.strip()
    print()
    print("## Merge -> converged (bench/deploy.sh)")
    print()
    print(f"- CPU: {benchlib.cpu_model()}, nproc {benchlib.nproc()}; {version}, "
          f"tree {benchlib.git_rev(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}")
    print(f"- {args.runs} runs per scenario; the clock runs from the webhook's POST (the "
          "commit already pushed) until `paver wait --server` exits 0")
    print()
    print("| scenario | runs | best (s) | median (s) | p90 (s) | worst (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {"topic": "(a) topic config change", "cutover": "(b) pipeline version cut-over"}
    for scenario, times in results.items():
        ordered = sorted(times)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        print(f"| {names[scenario]} | {len(times)} | {ordered[0]:.3f} | "
              f"{statistics.median(ordered):.3f} | {p90:.3f} | {ordered[-1]:.3f} |")
    print()
    print("Peers (documented defaults, not measured here): Argo CD polls its repositories "
          "every 3 min (`timeout.reconciliation: 180s`) unless a webhook is configured; "
          "Flux fetches a GitRepository every `spec.interval` (`flux bootstrap` sets 1m), "
          "at once with a `Receiver` webhook.")


if __name__ == "__main__":
    main()
