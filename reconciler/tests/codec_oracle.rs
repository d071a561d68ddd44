//! The ingestion's Avro codec against Apache Avro (the Python `avro` package): for hundreds
//! of random schemas and datums encoded by Avro itself, paver computes the same Parsing
//! Canonical Form and CRC-64-AVRO fingerprint, and decodes the bytes to the same datum.

use std::path::{Path, PathBuf};
use std::process::Command;

use paver::ingest::codec::{Datum, Schema};
use serde_json::{json, Value as Json};

mod oracle;
use oracle::{hex, plain, unhex};

fn python() -> String {
    if let Some(p) = std::env::var("PAVER_PYTHON").ok().filter(|p| !p.is_empty()) {
        return p;
    }
    let venv = std::env::var("PAVER_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/paver/venv")
        });
    venv.join("bin/python").to_string_lossy().into_owned()
}

#[test]
fn paver_reads_what_apache_avro_writes() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codec_oracle.py");
    let out = Command::new(python())
        .arg(&script)
        .args(["20261126", "400"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/setup-python", python()));
    assert!(
        out.status.success(),
        "the oracle failed (run scripts/setup-python): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cases = 0;
    let mut compared_forms = 0;
    let mut failures = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let case: Json = serde_json::from_str(line).unwrap();
        cases += 1;
        let schema = match Schema::parse(&case["schema"]) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("parse: {e}\n{}", case["schema"]));
                continue;
            }
        };
        // Python's avro keeps `{"type":"long"}` for a primitive with a logicalType in the
        // canonical form; the specification (and Java, which producers use) reduces it to
        // `"long"`. paver follows the specification: the fingerprint of such schemas is
        // compared only where no logical type is involved.
        let logical = case["schema"].to_string().contains("logicalType");
        compared_forms += usize::from(!logical);
        if !logical && schema.canonical != case["canonical"].as_str().unwrap() {
            failures.push(format!(
                "canonical form:\n  paver  {}\n  avro   {}",
                schema.canonical, case["canonical"]
            ));
        }
        if !logical
            && hex(&schema.fingerprint.to_le_bytes()) != case["fingerprint"].as_str().unwrap()
        {
            failures.push(format!(
                "fingerprint of {}: paver {:016x}, avro {}",
                schema.canonical, schema.fingerprint, case["fingerprint"]
            ));
        }
        match schema.decode(&unhex(case["encoded"].as_str().unwrap())) {
            Ok(datum) if plain(&datum) == case["datum"] => {}
            Ok(datum) => failures.push(format!(
                "datum of {}:\n  paver {}\n  avro  {}",
                schema.canonical,
                plain(&datum),
                case["datum"]
            )),
            Err(e) => failures.push(format!("decode of {}: {e}", schema.canonical)),
        }
    }
    assert!(cases >= 400, "only {cases} cases");
    assert!(
        compared_forms >= 200,
        "only {compared_forms} canonical forms compared"
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases disagree:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn truncated_or_garbled_input_is_an_error_not_a_panic() {
    let schema = Schema::parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}, {"name": "a", "type": {"type": "array", "items": "long"}}]}))
    .unwrap();
    let good = [0x02, b'x', 0x02, 0x04, 0x00];
    assert!(schema.decode(&good).is_ok());
    for cut in 0..good.len() {
        assert!(schema.decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    // A huge string length or block count: refused without allocating it.
    assert!(schema.decode(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
    assert!(schema
        .decode(&[0x00, 0xfe, 0xff, 0xff, 0xff, 0x0f])
        .is_err());
    // Items of zero width take no bytes: their number is bounded all the same.
    let nulls = Schema::parse(&json!({"type": "array", "items": "null"})).unwrap();
    assert_eq!(
        nulls.decode(&[0x06, 0x00]).unwrap(),
        Datum::Array(vec![Datum::Null; 3])
    );
    // 2,000,001 nulls in four bytes.
    let refused = nulls.decode(&[0x82, 0x92, 0xf4, 0x01, 0x00]);
    assert!(
        matches!(&refused, Err(e) if e.contains("items")),
        "{:?}",
        refused.map(|_| "decoded")
    );
}
