"""Exercises the test Kafka broker (tansu) with a real client and says what it supports.

Run through `scripts/test-servers check`, which makes a venv with confluent-kafka (librdkafka)
for it; `start` never needs it. Usage: python test-servers-check.py [HOST:PORT]

Each line is one of:
  ok           the operation works as on Apache Kafka
  KNOWN GAP    the broker lacks it or behaves differently (docs/test-servers.md); not a failure
  NOW WORKS    a known gap that works now: update docs/test-servers.md and the tests that skip it
  FAIL         something that worked when this was written does not: exit status 1
"""

import sys
import time
import uuid
import warnings

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigSource,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

BROKERS = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
RUN = uuid.uuid4().hex[:8]
TOPIC = f"paver-check-{RUN}"
failed = []


def say(status, name, detail=""):
    print(f"{status:<10} {name}" + (f": {detail}" if detail else ""), flush=True)
    if status == "FAIL":
        failed.append(name)


def check(name, fn):
    """fn returns a detail string; any exception is a FAIL."""
    try:
        say("ok", name, fn() or "")
    except Exception as e:  # noqa: BLE001
        say("FAIL", name, f"{type(e).__name__}: {e}")


def gap(name, fn, gap_detail):
    """fn returns (works: bool, detail); a False or an exception is the known gap."""
    try:
        works, detail = fn()
    except Exception as e:  # noqa: BLE001
        works, detail = False, f"{type(e).__name__}: {e}"
    if works:
        say("NOW WORKS", name, detail)
    else:
        say("KNOWN GAP", name, f"{gap_detail} [{detail}]")


admin = AdminClient({"bootstrap.servers": BROKERS})
topic_res = ConfigResource(ResourceType.TOPIC, TOPIC)


def topic_configs(topic=TOPIC):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([res])[res].result().items()}


def create_topic():
    fs = admin.create_topics(
        [NewTopic(TOPIC, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})],
        operation_timeout=10,
    )
    fs[TOPIC].result()
    return f"{TOPIC}, 3 partitions, retention.ms=3600000"


def metadata():
    md = admin.list_topics(timeout=10)
    parts = sorted(md.topics[TOPIC].partitions)
    brokers = sorted(f"{b.host}:{b.port}" for b in md.brokers.values())
    assert parts == [0, 1, 2], parts
    return f"partitions {parts}, brokers {brokers}, cluster id {md.cluster_id}"


def describe():
    cfg = topic_configs()
    assert cfg.get("retention.ms") == "3600000", cfg
    return f"{cfg}"


def duplicate():
    try:
        admin.create_topics([NewTopic(TOPIC, 3, 1)])[TOPIC].result()
    except KafkaException as e:
        assert e.args[0].name() == "TOPIC_ALREADY_EXISTS", e
        return "TOPIC_ALREADY_EXISTS"
    raise AssertionError("second create of the same topic succeeded")


def incremental_set():
    res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result()
    cfg = topic_configs()
    assert cfg.get("retention.ms") == "7200000", cfg
    return f"now {cfg}"


def incremental_delete():
    res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([res])[res].result()
    cfg = topic_configs()
    assert "cleanup.policy" not in cfg, cfg
    return f"now {cfg}"


def produce(n_per_partition, start=0):
    p = Producer({"bootstrap.servers": BROKERS})
    for i in range(start, start + 3 * n_per_partition):
        p.produce(TOPIC, key=f"k{i}", value=f"v{i}", partition=i % 3)
    left = p.flush(10)
    assert left == 0, f"{left} messages not delivered"


def consume(c, want, timeout):
    got, deadline = [], time.time() + timeout
    while len(got) < want and time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        got.append(m.value().decode())
    return got


def produce_assign_commit():
    produce(3)
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"paver-check-assign-{RUN}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, i, 0) for i in range(3)])
    got = consume(c, 9, 15)
    c.commit(offsets=[TopicPartition(TOPIC, i, 3) for i in range(3)], asynchronous=False)
    c.close()
    assert sorted(got) == sorted(f"v{i}" for i in range(9)), got
    return f"produced 9 over 3 partitions, consumed {len(got)} with assign, committed 3/3/3"


def group_offsets():
    g = f"paver-check-assign-{RUN}"
    r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result()
    offs = sorted((tp.partition, tp.offset) for tp in r.topic_partitions)
    assert offs == [(0, 3), (1, 3), (2, 3)], offs
    return f"{g}: {offs}"


def list_groups():
    r = admin.list_consumer_groups(request_timeout=10).result()
    ids = sorted(g.group_id for g in r.valid)
    assert f"paver-check-assign-{RUN}" in ids, ids
    return f"{len(ids)} groups, incl. paver-check-assign-{RUN}"


def subscribe_and_resume():
    group = f"paver-check-sub-{RUN}"
    conf = {"bootstrap.servers": BROKERS, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000}
    # tansu answers JoinGroup about session.timeout.ms/2 after it: 3 s here, 22.5 s with
    # librdkafka's default 45 s. Tests should set session.timeout.ms=6000.
    t0 = time.time()
    assigned = []
    c = Consumer(conf)
    c.subscribe([TOPIC], on_assign=lambda _c, ps: assigned.append(time.time() - t0))
    first = consume(c, 5, 30)
    c.commit(asynchronous=False)
    c.close()
    produce(1, start=9)  # 3 more: v9 v10 v11
    c = Consumer(conf)
    c.subscribe([TOPIC])
    rest = consume(c, 100, 12)
    c.close()
    every = sorted(first + rest)
    want = sorted(f"v{i}" for i in range(12))
    # Committing after 5 polls may commit less than was fetched, so duplicates are allowed;
    # losses are not.
    assert set(every) == set(want), f"missing {sorted(set(want) - set(every))}"
    return (f"assigned after {assigned[0]:.1f}s (session.timeout.ms=6000); {len(first)} then "
            f"{len(rest)} on resume, none lost, {len(every) - len(set(every))} duplicates")


def transactions():
    tid = f"paver-check-tx-{RUN}"
    p = Producer({"bootstrap.servers": BROKERS, "transactional.id": tid})
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(TOPIC, value="tx-committed", partition=0)
    p.commit_transaction(10)
    p.begin_transaction()
    p.produce(TOPIC, value="tx-aborted", partition=0)
    p.flush(10)
    p.abort_transaction(10)
    return "init, commit and abort of a transactional producer"


def read_committed():
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"paver-check-rc-{RUN}",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = [v for v in consume(c, 100, 5) if v.startswith("tx-")]
    c.close()
    return (got == ["tx-committed"], f"read_committed consumer saw {got}")


def create_partitions():
    admin.create_partitions([NewPartitions(TOPIC, 5)])[TOPIC].result()
    n = len(admin.list_topics(timeout=10).topics[TOPIC].partitions)
    return (n == 5, f"now {n} partitions")


def legacy_alter_configs():
    res = ConfigResource(ResourceType.TOPIC, TOPIC, set_config={"retention.ms": "5000000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        admin.alter_configs([res])[res].result()
    return (topic_configs().get("retention.ms") == "5000000", "applied")


def create_validate_only():
    name = f"{TOPIC}-validate-only"
    admin.create_topics([NewTopic(name, 1, 1)], validate_only=True)[name].result()
    exists = name in admin.list_topics(timeout=10).topics
    if exists:
        admin.delete_topics([name])[name].result()
    return (not exists, "the topic was created" if exists else "not created")


def incremental_validate_only():
    res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    before = topic_configs().get("retention.ms")
    admin.incremental_alter_configs([res], validate_only=True)[res].result()
    after = topic_configs().get("retention.ms")
    return (after == before, f"retention.ms {before} -> {after}")


def describe_defaults():
    res = ConfigResource(ResourceType.TOPIC, TOPIC)
    entries = admin.describe_configs([res])[res].result()
    full = "segment.bytes" in entries or "max.message.bytes" in entries
    sources = {k: ConfigSource(v.source).name for k, v in entries.items()}
    return (full, f"{len(entries)} entries returned, sources {sources}")


def unknown_config_rejected():
    name = f"{TOPIC}-bad-config"
    try:
        admin.create_topics([NewTopic(name, 1, 1, config={"no.such.config": "1"})])[name].result()
    except KafkaException as e:
        return (True, f"rejected: {e.args[0].name()}")
    admin.delete_topics([name])[name].result()
    return (False, "accepted")


def delete_topic():
    admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result()
    time.sleep(0.5)
    assert TOPIC not in admin.list_topics(timeout=10).topics
    return "deleted"


print(f"broker {BROKERS}, confluent-kafka with librdkafka {__import__('confluent_kafka').libversion()[0]}")
check("CreateTopics (3 partitions, retention.ms)", create_topic)
check("Metadata", metadata)
check("DescribeConfigs", describe)
check("CreateTopics of an existing topic", duplicate)
check("IncrementalAlterConfigs SET", incremental_set)
check("IncrementalAlterConfigs DELETE", incremental_delete)
check("Produce + Fetch with assign + OffsetCommit", produce_assign_commit)
check("OffsetFetch (list_consumer_group_offsets)", group_offsets)
check("ListGroups", list_groups)
check("consumer group: subscribe, commit, resume", subscribe_and_resume)
check("transactions", transactions)
gap("read_committed hides aborted records", read_committed,
    "aborted transactional records are delivered to read_committed consumers")
gap("CreatePartitions", create_partitions, "not in the broker's ApiVersions")
gap("AlterConfigs (legacy, non-incremental)", legacy_alter_configs, "not in the broker's ApiVersions")
gap("CreateTopics validate_only", create_validate_only, "validate_only is ignored")
gap("IncrementalAlterConfigs validate_only", incremental_validate_only, "validate_only is ignored")
gap("DescribeConfigs returns defaults", describe_defaults,
    "only the topic's own settings are returned, each with source DEFAULT_CONFIG")
gap("unknown topic config rejected", unknown_config_rejected, "any config name is accepted")
check("DeleteTopics", delete_topic)
print(f"{len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
sys.exit(1 if failed else 0)
