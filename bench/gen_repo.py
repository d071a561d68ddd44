#!/usr/bin/env python3
"""Generate a large, lint-clean paver platform repo for benchmarking.

Usage:
    python3 bench/gen_repo.py OUT_DIR [--topics 2000] [--subjects 2000]
        [--versions 3] [--pipelines 2000] [--pipeline-versions 2]
        [--clusters 10] [--small]

Counts of topics, subjects, pipelines and clusters may be 0 (e.g. `--topics 0
--pipelines 0` for a repo of Avro subjects only); pipelines need at least one
topic, subject and cluster to refer to.

OUT_DIR is deleted first if it exists. Standard library only: the YAML is
written by hand, block style, the way a person would write it.

Layout (see DESIGN.md section 1):
    paver.yaml
    clusters/cluster-<i>/v1.yaml             ClickHouseCluster
    topics/topic-<i>/v1.yaml                 KafkaTopic
    schemas/subject-<i>/v1.avsc .. v<V>.avsc Avro, forward compatible chain
    schemas/subject-<i>/subject.yaml         every second subject
    pipelines/pipeline-<i>/v1.yaml .. v<P>.yaml  DataPipeline
"""

import argparse
import json
import os
import shutil
import sys

API_VERSION = "platform.paver.dev/v1"
OWNERS = 20
# Names of the topics and the sink database (--prefix, --database): a benchmark on shared
# servers keeps its resources apart from everyone else's.
NAMES = {"topic": "topic-", "database": "bench"}


def envelope(kind, name, version, owner_index):
    return (
        f"apiVersion: {API_VERSION}\n"
        f"kind: {kind}\n"
        f"metadata:\n"
        f"  name: {name}\n"
        f"  version: {version}\n"
        f"  owner: team-{owner_index % OWNERS}\n"
    )


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def paver_yaml():
    return (
        "# Repo settings for the paver benchmark repo.\n"
        "defaults:\n"
        "  compatibility: FORWARD_TRANSITIVE\n"
        "notifications:\n"
        "  slack:\n"
        "    alerts: { webhookUrlEnv: SLACK_ALERTS_URL }\n"
    )


def cluster_yaml(i):
    return envelope("ClickHouseCluster", f"cluster-{i}", 1, i) + (
        "spec:\n"
        "  replication: 2\n"
        "  shards: 2\n"
        "  memoryGB: 64\n"
        "  retentionDays: 30\n"
        "  backupToS3: false\n"
        "  monitoring:\n"
        "    alertOnCPU: 80\n"
        "    alertOnDisk: 85\n"
        "  costBudget: 500\n"
    )


def topic_yaml(i):
    return envelope("KafkaTopic", f"{NAMES['topic']}{i}", 1, i) + (
        "spec:\n"
        "  partitions: 6\n"
        "  replicationFactor: 3\n"
        "  config:\n"
        '    retention.ms: "604800000"\n'
        "    cleanup.policy: delete\n"
    )


# Fields of each schema version. Every version only adds optional fields with a
# default, so each is FORWARD (and BACKWARD) compatible with all earlier ones.
BASE_FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "eventTime", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": "double"},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
]
EXTRA_FIELDS = [
    {"name": "country", "type": ["null", "string"], "default": None},
    {"name": "score", "type": ["null", "double"], "default": None},
]


def extra_field(k):
    """The field added by version k+2 (k >= 0)."""
    if k < len(EXTRA_FIELDS):
        return EXTRA_FIELDS[k]
    return {"name": f"extra{k}", "type": ["null", "long"], "default": None}


def avsc(i, version):
    fields = list(BASE_FIELDS) + [extra_field(k) for k in range(version - 1)]
    schema = {
        "type": "record",
        "name": f"Event{i}",
        "namespace": "dev.paver.bench",
        "fields": fields,
    }
    return json.dumps(schema, indent=2) + "\n"


def subject_yaml():
    return "compatibility: FORWARD_TRANSITIVE\n"


def pipeline_yaml(i, version, topics, subjects, clusters, schema_versions):
    columns = "id, eventTime, amount"
    # v2 and later also select the `country` field that schema v2 adds.
    schema_version = min(version, schema_versions)
    if schema_version >= 2:
        columns += ", country"
    return envelope("DataPipeline", f"pipeline-{i}", version, i) + (
        "spec:\n"
        "  source:\n"
        "    type: kafka\n"
        f"    topic: {NAMES['topic']}{i % topics}\n"
        f"    consumerGroup: cg-pipeline-{i}\n"
        f"    schema: subject-{i % subjects}@{schema_version}\n"
        "  transform:\n"
        "    type: sql\n"
        "    query: |\n"
        f"      SELECT {columns}, now() AS ingestedAt\n"
        "      FROM source\n"
        "      WHERE amount > 0\n"
        "  sink:\n"
        "    type: clickhouse\n"
        f"    cluster: cluster-{i % clusters}\n"
        f"    table: {NAMES['database']}.events_{i}\n"
        "    partitionKey: toYYYYMM(eventTime)\n"
        "    orderKey: (id, eventTime)\n"
        "  alerting:\n"
        "    onBacklog: 10000\n"
        '    onFailure: "slack://#alerts"\n'
    )


def generate(out, topics, subjects, versions, pipelines, pipeline_versions, clusters):
    if os.path.lexists(out):
        if os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        else:
            os.remove(out)
    os.makedirs(out)
    counts = {}

    write(os.path.join(out, "paver.yaml"), paver_yaml())
    counts["paver.yaml"] = 1

    for i in range(clusters):
        d = os.path.join(out, "clusters", f"cluster-{i}")
        os.makedirs(d)
        write(os.path.join(d, "v1.yaml"), cluster_yaml(i))
    counts["clusters"] = clusters

    for i in range(topics):
        d = os.path.join(out, "topics", f"{NAMES['topic']}{i}")
        os.makedirs(d)
        write(os.path.join(d, "v1.yaml"), topic_yaml(i))
    counts["topics"] = topics

    n_subject_yaml = 0
    for i in range(subjects):
        d = os.path.join(out, "schemas", f"subject-{i}")
        os.makedirs(d)
        for v in range(1, versions + 1):
            write(os.path.join(d, f"v{v}.avsc"), avsc(i, v))
        if i % 2 == 0:
            write(os.path.join(d, "subject.yaml"), subject_yaml())
            n_subject_yaml += 1
    counts["avsc"] = subjects * versions
    counts["subject.yaml"] = n_subject_yaml

    for i in range(pipelines):
        d = os.path.join(out, "pipelines", f"pipeline-{i}")
        os.makedirs(d)
        for v in range(1, pipeline_versions + 1):
            write(
                os.path.join(d, f"v{v}.yaml"),
                pipeline_yaml(i, v, topics, subjects, clusters, versions),
            )
    counts["pipelines"] = pipelines * pipeline_versions
    return counts


def positive(s):
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def non_negative(s):
    n = int(s)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--topics", type=non_negative, default=None, help="default 2000")
    p.add_argument("--subjects", type=non_negative, default=None, help="default 2000")
    p.add_argument("--versions", type=positive, default=3, help="Avro versions per subject")
    p.add_argument("--pipelines", type=non_negative, default=None, help="default 2000")
    p.add_argument("--pipeline-versions", type=positive, default=2)
    p.add_argument("--clusters", type=non_negative, default=10)
    p.add_argument("--small", action="store_true",
                   help="200 topics, 200 subjects, 200 pipelines (unless given explicitly)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--prefix", default="", help="before every topic name (topic-<i>)")
    p.add_argument("--database", default="bench", help="the sink tables' database")
    a = p.parse_args(argv)
    NAMES["topic"] = f"{a.prefix}topic-"
    NAMES["database"] = a.database

    size = 200 if a.small else 2000
    # `is None`, not `or`: an explicit 0 means none.
    topics = size if a.topics is None else a.topics
    subjects = size if a.subjects is None else a.subjects
    pipelines = size if a.pipelines is None else a.pipelines
    if pipelines and not (topics and subjects and a.clusters):
        p.error("pipelines need at least one topic, subject and cluster to refer to")

    counts = generate(a.out_dir, topics, subjects, a.versions, pipelines,
                      a.pipeline_versions, a.clusters)
    if not a.quiet:
        total = sum(counts.values())
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"wrote {total} files to {a.out_dir}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
