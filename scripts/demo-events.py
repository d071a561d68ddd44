"""The sample events of scripts/demo, and its clean-up on the broker.

  demo-events.py produce BROKERS TOPIC SCHEMA.avsc COUNT [--first N]
      COUNT user events written with SCHEMA (Avro single-object encoding, the header paver
      reads: C3 01 + the schema's CRC-64-AVRO fingerprint); every 10th is a `healthcheck`
      (the example pipeline's transform filters those out) and every 25th is not Avro at
      all (it goes to the dead-letter topic). Prints how many rows ClickHouse should get.
  demo-events.py clean BROKERS GROUP[,GROUP...] TOPIC...
      delete the topics and the consumer groups (missing ones are fine).

Needs confluent-kafka (scripts/demo installs it into the venv of scripts/setup-python).
"""
import json
import struct
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def canonical(schema, namespace=""):
    """Avro's Parsing Canonical Form (the subset the example's schemas use, and enums,
    arrays and fixed)."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return json.dumps(schema)
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return json.dumps(full)
    if isinstance(schema, list):
        return "[" + ",".join(canonical(s, namespace) for s in schema) + "]"
    kind = schema["type"]
    if kind in PRIMITIVES or isinstance(kind, (dict, list)):
        return canonical(kind, namespace)
    name = schema.get("name", "")
    if name and "." not in name:
        name = f"{schema.get('namespace', namespace)}.{name}".lstrip(".")
    inner = name.rsplit(".", 1)[0] if "." in name else namespace
    if kind == "record":
        fields = ",".join(
            '{"name":%s,"type":%s}' % (json.dumps(f["name"]), canonical(f["type"], inner))
            for f in schema["fields"]
        )
        return '{"name":%s,"type":"record","fields":[%s]}' % (json.dumps(name), fields)
    if kind == "enum":
        return '{"name":%s,"type":"enum","symbols":%s}' % (
            json.dumps(name), json.dumps(schema["symbols"], separators=(",", ":")))
    if kind == "fixed":
        return '{"name":%s,"type":"fixed","size":%d}' % (json.dumps(name), schema["size"])
    if kind == "array":
        return '{"type":"array","items":%s}' % canonical(schema["items"], namespace)
    if kind == "map":
        return '{"type":"map","values":%s}' % canonical(schema["values"], namespace)
    raise ValueError(f"unknown Avro type {kind!r}")


def crc64_avro(data):
    """CRC-64-AVRO, as the Avro specification gives it; little-endian bytes."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (0xC15D213AA4D7A795 & -(fp & 1))
        table.append(fp)
    fp = 0xC15D213AA4D7A795
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return struct.pack("<Q", fp)


def zigzag(v):
    n = (v << 1) ^ (v >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string(s):
    b = s.encode()
    return zigzag(len(b)) + b


def event(fields, i, now_ms):
    """One user event, field by field in the schema's order."""
    kind = "healthcheck" if i % 10 == 9 else ("purchase" if i % 7 == 0 else "page_view")
    values = {
        "userId": string(f"user-{i % 50:03d}"),
        "eventType": string(kind),
        "eventTime": zigzag(now_ms + i),
        # A map: one block of one entry, then the end block.
        "properties": zigzag(1) + string("page") + string(f"/products/{i % 13}") + zigzag(0),
        # ["null", "string"]: branch 1, a string.
        "sessionId": zigzag(1) + string(f"session-{i // 20:04d}"),
    }
    return b"".join(values[f["name"]] for f in fields), kind != "healthcheck"


def produce(brokers, topic, schema_file, count, first):
    with open(schema_file) as f:
        schema = json.load(f)
    header = b"\xc3\x01" + crc64_avro(canonical(schema).encode())
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    now_ms = int(time.time() * 1000)
    rows = 0
    for i in range(first, first + count):
        if i % 25 == 24:
            producer.produce(topic, b"not an Avro event", key=str(i).encode())
            continue
        body, kept = event(schema["fields"], i, now_ms)
        rows += kept
        producer.produce(topic, header + body, key=str(i).encode())
    left = producer.flush(60)
    if left:
        sys.exit(f"demo-events: {left} events not delivered to {topic} at {brokers}")
    print(rows)


def clean(brokers, groups, topics):
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = admin.list_topics(timeout=10).topics
    gone = [t for t in topics if t in existing]
    for name, future in (admin.delete_topics(gone, operation_timeout=10).items() if gone else []):
        try:
            future.result()
        except KafkaException as e:
            print(f"demo-events: topic {name}: {e}", file=sys.stderr)
    for group, future in admin.delete_consumer_groups(groups, request_timeout=10).items():
        try:
            future.result()
        except KafkaException as e:
            # A group that never existed is what a first run finds.
            if "GROUP_ID_NOT_FOUND" not in str(e):
                print(f"demo-events: group {group}: {e}", file=sys.stderr)


def main(argv):
    if len(argv) >= 5 and argv[0] == "produce":
        first = int(argv[argv.index("--first") + 1]) if "--first" in argv else 0
        produce(argv[1], argv[2], argv[3], int(argv[4]), first)
    elif len(argv) >= 3 and argv[0] == "clean":
        clean(argv[1], argv[2].split(","), argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
