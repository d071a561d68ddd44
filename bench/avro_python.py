#!/usr/bin/env python3
"""Check every Avro subject of a paver repo with Apache Avro's Python checker.

Usage: bench/avro_python.py REPO_DIR

The Python side of bench/avro.sh: the same evolution checks paver-lint makes, done with
the `avro` package (avro.compatibility.ReaderWriterCompatibilityChecker, a port of Java's
SchemaCompatibility). For every subject REPO_DIR/schemas/<subject>/ it parses each
v<N>.avsc and checks each version against the earlier ones per the subject's mode:

    compatibility (schemas/<subject>/subject.yaml, else `defaults: compatibility:` in
    paver.yaml, else FORWARD_TRANSITIVE):
      BACKWARD[_TRANSITIVE]  the new version reads the previous (all earlier) versions
      FORWARD[_TRANSITIVE]   the previous (all earlier) versions read the new one
      FULL[_TRANSITIVE]      both
      NONE                   nothing

One check is one reader/writer pair, with a fresh checker. Prints one line:

    subjects S versions V checks C incompatible I

and exits 0 (2 when a schema does not parse or the repo has no subjects). The YAML files
are read with a regular expression: enough for the one-key files paver repos have.
"""

import os
import re
import sys
import warnings

try:
    import avro.schema
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
except ImportError as e:
    print(f"avro_python.py: cannot import `avro` ({e}): run scripts/setup-python", file=sys.stderr)
    sys.exit(2)

warnings.simplefilter("ignore")

MODES = {
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE", "NONE",
}
VERSION = re.compile(r"^v([1-9][0-9]*)\.avsc$")
KEY = re.compile(r"""^(\s*)compatibility\s*:\s*["']?([A-Z_]+)["']?\s*(#.*)?$""")


def read_mode(path, under_defaults=False):
    """The `compatibility:` value of a YAML file (top level, or under `defaults:`)."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return None
    in_defaults = False
    for line in lines:
        if under_defaults and re.match(r"^defaults\s*:\s*(#.*)?$", line):
            in_defaults = True
            continue
        if under_defaults and line and not line[0].isspace() and not line.startswith("#"):
            in_defaults = False
        m = KEY.match(line)
        if m and m.group(2) in MODES and (bool(m.group(1)) == under_defaults) \
                and (in_defaults or not under_defaults):
            return m.group(2)
    return None


def compatible(reader, writer):
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    return result.compatibility is SchemaCompatibilityType.compatible


def main(argv):
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    root = argv[0]
    default_mode = read_mode(os.path.join(root, "paver.yaml"), under_defaults=True) \
        or "FORWARD_TRANSITIVE"
    schemas_dir = os.path.join(root, "schemas")
    subjects = sorted(d for d in os.listdir(schemas_dir)
                      if os.path.isdir(os.path.join(schemas_dir, d))) \
        if os.path.isdir(schemas_dir) else []
    if not subjects:
        print(f"avro_python.py: no subjects under {schemas_dir}", file=sys.stderr)
        return 2
    n_versions = checks = incompatible = 0
    for subject in subjects:
        d = os.path.join(schemas_dir, subject)
        mode = read_mode(os.path.join(d, "subject.yaml")) or default_mode
        numbered = sorted((int(m.group(1)), name) for name in os.listdir(d)
                          if (m := VERSION.match(name)))
        versions = []
        for _, name in numbered:
            path = os.path.join(d, name)
            try:
                with open(path, encoding="utf-8") as f:
                    versions.append(avro.schema.parse(f.read()))
            except Exception as e:  # noqa: BLE001
                print(f"avro_python.py: {path}: {type(e).__name__}: {e}", file=sys.stderr)
                return 2
        n_versions += len(versions)
        if mode == "NONE":
            continue
        transitive = mode.endswith("_TRANSITIVE")
        backward = mode.startswith(("BACKWARD", "FULL"))
        forward = mode.startswith(("FORWARD", "FULL"))
        for new in range(1, len(versions)):
            for old in range(0 if transitive else new - 1, new):
                if backward:
                    checks += 1
                    incompatible += not compatible(versions[new], versions[old])
                if forward:
                    checks += 1
                    incompatible += not compatible(versions[old], versions[new])
    print(f"subjects {len(subjects)} versions {n_versions} checks {checks} incompatible {incompatible}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
