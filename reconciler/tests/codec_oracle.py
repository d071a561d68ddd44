"""Cases for the codec oracle test: random Avro schemas and datums, encoded by Apache Avro's
Python package, with the schema's Parsing Canonical Form and CRC-64-AVRO fingerprint.

Usage: codec_oracle.py SEED COUNT  ->  one JSON object per line:
  {"schema": ..., "canonical": "...", "fingerprint": "<hex, as avro gives it>",
   "encoded": "<hex>", "datum": <the datum as Avro reads it back; bytes and fixed as hex>}
"""
import io
import json
import random
import sys

import avro.io
import avro.schema

PRIMS = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]


class Gen:
    def __init__(self, rnd):
        self.rnd = rnd
        self.n = 0
        self.defined = []  # full names usable by reference

    def name(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def schema(self, depth):
        r = self.rnd
        roll = r.random()
        if depth > 2 or roll < 0.35:
            p = r.choice(PRIMS)
            if p == "long" and r.random() < 0.3:
                return {"type": "long", "logicalType": "timestamp-millis"}
            return p
        if roll < 0.45 and self.defined:
            return r.choice(self.defined)
        if roll < 0.6:
            return {"type": "array", "items": self.schema(depth + 1)}
        if roll < 0.7:
            return {"type": "map", "values": self.schema(depth + 1)}
        if roll < 0.8:
            inner = self.schema(depth + 1)
            if inner == "null" or isinstance(inner, list):
                inner = "string"
            return ["null", inner] if r.random() < 0.5 else [inner, "null"]
        if roll < 0.86:
            name = self.name("E")
            s = {"type": "enum", "name": name, "symbols": [f"S{i}" for i in range(r.randint(1, 4))]}
            self.defined.append(name)
            return s
        if roll < 0.9:
            # Not reused by name: Python's avro inlines a fixed again where it is referenced
            # a second time in the canonical form; the specification (and Java) name it.
            name = self.name("F")
            return {"type": "fixed", "name": name, "size": r.randint(0, 6)}
        return self.record(depth + 1)

    def record(self, depth, namespace=None):
        name = self.name("R")
        rec = {"type": "record", "name": name, "doc": "generated", "fields": []}
        if namespace:
            rec["namespace"] = namespace
        for i in range(self.rnd.randint(0, 4)):
            rec["fields"].append({"name": f"f{i}", "type": self.schema(depth), "doc": "x"})
        full = f"{namespace}.{name}" if namespace else name
        self.defined.append(full)
        return rec


def datum(schema, rnd, depth=0):
    t = schema.type
    if t == "null":
        return None
    if t == "boolean":
        return rnd.random() < 0.5
    if t == "int":
        return rnd.randint(-(2**31), 2**31 - 1)
    if t == "long":
        if getattr(schema, "logical_type", None) == "timestamp-millis":
            import datetime
            return datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=rnd.randint(0, 10**10))
        return rnd.randint(-(2**63), 2**63 - 1)
    if t in ("float", "double"):
        return rnd.uniform(-1e6, 1e6)
    if t == "bytes":
        return bytes(rnd.randint(0, 255) for _ in range(rnd.randint(0, 5)))
    if t == "string":
        return "".join(rnd.choice("abcé😀xyz") for _ in range(rnd.randint(0, 6)))
    if t == "array":
        return [datum(schema.items, rnd, depth + 1) for _ in range(rnd.randint(0, 3 if depth < 3 else 0))]
    if t == "map":
        return {f"k{i}": datum(schema.values, rnd, depth + 1) for i in range(rnd.randint(0, 3 if depth < 3 else 0))}
    if t == "union":
        return datum(rnd.choice(schema.schemas), rnd, depth + 1)
    if t == "enum":
        return rnd.choice(schema.symbols)
    if t == "fixed":
        return bytes(rnd.randint(0, 255) for _ in range(schema.size))
    if t in ("record", "error"):
        return {f.name: datum(f.type, rnd, depth + 1) for f in schema.fields}
    raise ValueError(t)


def plain(value, schema):
    """The datum as JSON: bytes and fixed as hex, timestamps as epoch millis."""
    t = schema.type
    if t == "union":
        for branch in schema.schemas:
            if avro.io.validate(branch, value):
                return plain(value, branch)
    if t in ("bytes", "fixed"):
        return value.hex()
    if t == "long" and getattr(schema, "logical_type", None) == "timestamp-millis":
        import datetime
        return int((value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) / datetime.timedelta(milliseconds=1))
    if t == "array":
        return [plain(v, schema.items) for v in value]
    if t == "map":
        return {k: plain(v, schema.values) for k, v in value.items()}
    if t in ("record", "error"):
        return {f.name: plain(value[f.name], f.type) for f in schema.fields}
    return value


def main():
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    rnd = random.Random(seed)
    for _ in range(count):
        gen = Gen(rnd)
        raw = gen.record(0, namespace=rnd.choice([None, "dev.paver", "a.b.c"]))
        schema = avro.schema.parse(json.dumps(raw))
        value = datum(schema, rnd)
        out = io.BytesIO()
        avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(out))
        encoded = out.getvalue()
        back = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(encoded)))
        print(json.dumps({
            "schema": raw,
            "canonical": schema.canonical_form,
            "fingerprint": schema.fingerprint("CRC-64-AVRO").hex(),
            "encoded": encoded.hex(),
            "datum": plain(back, schema),
        }))


main()
