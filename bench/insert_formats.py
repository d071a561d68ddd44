"""The insert path alone, by format: the same batches of the ingestion benchmark's 1 KB
events, POSTed into a staging table shaped like paver's (a Null table, the transform's
materialized view into a MergeTree sink, the ledger's view), as JSONEachRow and as
RowBinary, one insert at a time, with paver's insert settings. Prints rows/s per format
and the ratio. ClickHouse's own CPU is the cost being compared (the client does nothing
but send prepared bytes).

Usage: python3 bench/insert_formats.py [CLICKHOUSE_URL] [--rows-per-batch N] [--batches B]
"""
import argparse
import json
import struct
import time
import urllib.parse
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?", default="http://127.0.0.1:8123")
    ap.add_argument("--rows-per-batch", type=int, default=8000)
    ap.add_argument("--batches", type=int, default=6)
    args = ap.parse_args()

    def q(sql, data=None, settings=""):
        u = f"{args.url}/?query={urllib.parse.quote(sql)}{settings}"
        return urllib.request.urlopen(urllib.request.Request(u, data=data, method="POST"), timeout=300).read().decode().strip()

    version = q("SELECT version()")
    modern = int(version.split(".")[0]) >= 20
    at_type = "DateTime64(3)" if modern else "DateTime"
    db = f"bench_formats_{int(time.time())}"
    q(f"CREATE DATABASE {db}")
    cols = f"id String, kind String, at {at_type}, amount Float64, payload String"
    q(f"CREATE TABLE {db}.staging ({cols}, _paver_partition Int32, _paver_offset Int64) ENGINE = Null")
    q(f"CREATE TABLE {db}.sink ({cols}) ENGINE = MergeTree ORDER BY (id, at)")
    q(f"CREATE TABLE {db}.ledger (pipeline String, version UInt32, partition Int32, last_offset Int64, rows UInt64, at DateTime) "
      f"ENGINE = ReplacingMergeTree(last_offset) ORDER BY (pipeline, partition)")
    q(f"CREATE MATERIALIZED VIEW {db}.staging_mv TO {db}.sink AS SELECT id, kind, at, amount, payload FROM {db}.staging")
    q(f"CREATE MATERIALIZED VIEW {db}.staging_mv_offsets TO {db}.ledger AS SELECT 'p' AS pipeline, toUInt32(1) AS version, "
      f"`_paver_partition` AS partition, max(`_paver_offset`) AS last_offset, count() AS rows, now() AS at "
      f"FROM {db}.staging GROUP BY `_paver_partition`")
    payload = "x" * 900
    settings = "&parallel_view_processing=0"

    def batch(b, fmt):
        rows = []
        for i in range(b * args.rows_per_batch, (b + 1) * args.rows_per_batch):
            ms = 1_767_225_600_000 + i
            if fmt == "JSONEachRow":
                at = (f"\"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ms // 1000))}.{ms % 1000:03d}\""
                      if modern else str(ms // 1000))
                rows.append(f'{{"id":"user-{i:09d}","kind":"click","at":{at},"amount":12.5,'
                            f'"payload":{json.dumps(payload)},"_paver_partition":{i % 2},"_paver_offset":{i}}}\n'.encode())
            else:
                s = lambda t: bytes([len(t)]) if len(t) < 128 else bytes([len(t) & 0x7F | 0x80, len(t) >> 7])
                ident = f"user-{i:09d}".encode()
                at = struct.pack("<q", ms) if modern else struct.pack("<I", ms // 1000)
                rows.append(s(ident) + ident + b"\x05click" + at + struct.pack("<d", 12.5)
                            + s(payload.encode()) + payload.encode() + struct.pack("<iq", i % 2, i))
        return b"".join(rows)

    print(f"ClickHouse {version} at {args.url}: {args.batches} inserts of {args.rows_per_batch} rows "
          f"through a staging table, its transform view and its ledger view\n")
    print("| format | batch MiB | rows/s (best of 2) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    results = {}
    for fmt in ["JSONEachRow", "RowBinary", "JSONEachRow", "RowBinary"]:
        bodies = [batch(b, fmt) for b in range(args.batches)]
        listed = "(id, kind, at, amount, payload, _paver_partition, _paver_offset) " if fmt == "RowBinary" else ""
        t = time.perf_counter()
        for body in bodies:
            q(f"INSERT INTO {db}.staging {listed}FORMAT {fmt}", body, settings)
        rate = args.batches * args.rows_per_batch / (time.perf_counter() - t)
        results[fmt] = (max(rate, results.get(fmt, (0,))[0]), len(bodies[0]) / 2**20)
    base = results["JSONEachRow"][0]
    for fmt, (rate, mib) in results.items():
        print(f"| {fmt} | {mib:.1f} | {rate:,.0f} | {rate / base:.2f}× |")
    count = q(f"SELECT count() FROM {db}.sink")
    assert int(count) == 4 * args.batches * args.rows_per_batch, count
    q(f"DROP DATABASE {db}")


if __name__ == "__main__":
    main()
