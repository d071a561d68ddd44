#!/usr/bin/env python3
"""The reference verdicts for tests/avro_oracle.rs: Apache Avro's own compatibility checker.

Reads JSON lines from stdin, each {"reader": <schema>, "writer": <schema>} (the schemas as
JSON values, not as strings), and prints one JSON line per input line, in order:

    {"compatible": true|false, "types": ["TYPE_MISMATCH", ...]}
    {"error": "..."}            when either schema does not parse (or the line is not JSON)

The verdict is avro.compatibility.ReaderWriterCompatibilityChecker (the Python package
`avro`, a port of Java's org.apache.avro.SchemaCompatibility), with a fresh checker per
pair. Exits 3 with a message on stderr when the `avro` package cannot be imported, so
that the caller can tell a missing package from a bad schema: run scripts/setup-python.
"""

import json
import sys
import warnings

try:
    import avro.schema
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(f"avro_oracle.py: cannot import the Python `avro` package ({e}); "
          f"run scripts/setup-python and set PAVER_PYTHON to the python it prints",
          file=sys.stderr)
    sys.exit(3)

# Unknown or misplaced logical types only warn; the verdict ignores them anyway.
warnings.simplefilter("ignore")


def verdict(line):
    try:
        pair = json.loads(line)
        reader_json = json.dumps(pair["reader"])
        writer_json = json.dumps(pair["writer"])
    except (ValueError, KeyError, TypeError) as e:
        return {"error": f"bad input line: {e}"}
    try:
        reader = avro.schema.parse(reader_json)
    except Exception as e:  # noqa: BLE001 - any parse failure is an answer
        return {"error": f"reader: {type(e).__name__}: {e}"}
    try:
        writer = avro.schema.parse(writer_json)
    except Exception as e:  # noqa: BLE001
        return {"error": f"writer: {type(e).__name__}: {e}"}
    try:
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    except Exception as e:  # noqa: BLE001
        return {"error": f"checker: {type(e).__name__}: {e}"}
    return {
        "compatible": result.compatibility is SchemaCompatibilityType.compatible,
        "types": [t.name.upper() for t in result.incompatibilities],
    }


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        out.write(json.dumps(verdict(line)) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
