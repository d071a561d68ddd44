"""The reference ingestion loop a team would write without paver: confluent-kafka consumes
the topic (with `assign`: as a group member, `subscribe`, it gets nothing from the tansu
test broker), fastavro decodes each single-object-encoded record, and every batch is
inserted into ClickHouse over HTTP as JSONEachRow, then the offsets are committed.

clickhouse-connect would be the usual client, but it cannot talk to ClickHouse 18.16 (the
test server here: it asks for `system.settings.readonly`, which 18.16 lacks), so the
insert is a plain keep-alive HTTP POST, which is what clickhouse-connect does underneath.

Usage: ingest_reference.py BROKERS TOPIC PARTITIONS CLICKHOUSE_URL TABLE SCHEMA.avsc COUNT
Exits when COUNT records are in ClickHouse.
"""
import http.client
import io
import json
import sys
import urllib.parse

import fastavro
from confluent_kafka import Consumer, TopicPartition

BATCH = 20_000


def main():
    brokers, topic, partitions, url, table, schema_path, count = sys.argv[1:8]
    count = int(count)
    schema = fastavro.parse_schema(json.load(open(schema_path)))
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"{topic}-reference",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(int(partitions))])
    target = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 8123)
    query = urllib.parse.quote(f"INSERT INTO {table} FORMAT JSONEachRow")
    done = 0
    while done < count:
        messages = consumer.consume(num_messages=BATCH, timeout=0.25)
        rows = []
        for m in messages:
            if m.error():
                continue
            record = fastavro.schemaless_reader(io.BytesIO(m.value()[10:]), schema, None)
            record["at"] = int(record["at"].timestamp()) if hasattr(record["at"], "timestamp") else record["at"] // 1000
            rows.append(json.dumps(record))
        if not rows:
            continue
        body = ("\n".join(rows) + "\n").encode()
        # Settings in the url's query string go with every insert (insert_distributed_sync).
        conn.request("POST", f"/?query={query}" + (f"&{target.query}" if target.query else ""), body=body)
        response = conn.getresponse()
        text = response.read()
        if response.status != 200:
            sys.exit(f"insert failed: {text[:300]!r}")
        consumer.commit(asynchronous=False)
        done += len(rows)
    consumer.close()


if __name__ == "__main__":
    main()
