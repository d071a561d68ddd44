//! paver's Avro codec (`ingest/codec.rs`) against `apache-avro`, the Apache Avro project's
//! Rust library, on the ingestion workload: the events of `bench/ingest.sh` (~1 KB, five
//! fields), decoded with the writer's schema, and resolved to a reader's schema that added
//! a field with a default; and the schema fingerprint (Parsing Canonical Form +
//! CRC-64-AVRO, the Rabin fingerprint) that names the writer in the single-object
//! encoding. Then both decode the codec oracle's cases (`tests/codec_oracle.py`: random
//! schemas and datums written by the Python `avro` package) and must agree.
//!
//! `cargo run --release -p paver --features avro-bench --example avro_codec [MESSAGES]`
//! prints a Markdown table; it exits 1 when the two codecs differ on a message of the
//! workload or a case of the oracle. `apache-avro` is an optional dependency behind the
//! `avro-bench` feature: neither the paver binary nor `--all-targets` builds compile it.

#![allow(deprecated)] // `from_avro_datum`, the function the comparison is about.

use std::hint::black_box;
use std::time::Instant;

use apache_avro::types::Value;
use paver::ingest::codec::{self, Datum};
use serde_json::{json, Value as Json};

#[path = "../tests/oracle/mod.rs"]
mod oracle;
use oracle::{hex, plain, unhex};

const V1: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.bench", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"},
  {"name": "payload", "type": "string"}]}"#;

const V2: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.bench", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"},
  {"name": "payload", "type": "string"},
  {"name": "region", "type": ["null", "string"], "default": null}]}"#;

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    zigzag(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// The bodies of `bench/ingest.py`'s events (without the single-object header).
fn events(n: usize) -> Vec<Vec<u8>> {
    let payload = "x".repeat(900);
    (0..n)
        .map(|i| {
            let mut b = Vec::with_capacity(1000);
            string(&mut b, &format!("user-{i:09}"));
            string(&mut b, "click");
            zigzag(&mut b, 1_767_225_600_000 + i as i64);
            b.extend_from_slice(&12.5f64.to_le_bytes());
            string(&mut b, &payload);
            b
        })
        .collect()
}

/// paver's resolution, as `ingest/rows.rs` does it: each reader field by name from the
/// writer's record, else the reader's default.
fn resolve(record: Datum, reader: &[(String, Option<Datum>)]) -> Vec<Datum> {
    let Datum::Record(mut fields) = record else {
        panic!("not a record")
    };
    reader
        .iter()
        .map(
            |(name, default)| match fields.iter().position(|(n, _)| n == name) {
                Some(i) => fields.swap_remove(i).1,
                None => default.clone().expect("a default"),
            },
        )
        .collect()
}

/// Best of `rounds` passes of `f` over the messages: nanoseconds per message.
fn time(messages: &[Vec<u8>], rounds: usize, mut f: impl FnMut(&[u8])) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for m in messages {
            f(m);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / messages.len() as f64);
    }
    best
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("MESSAGES is a number"));
    let rounds = 5;
    let messages = events(n);
    let (p1, p2) = (
        codec::Schema::parse(&serde_json::from_str(V1).unwrap()).unwrap(),
        codec::Schema::parse(&serde_json::from_str(V2).unwrap()).unwrap(),
    );
    // What paver reads with: the writer's schema (by its fingerprint), the reader's fields.
    let (a1, a2) = (
        apache_avro::Schema::parse_str(V1).unwrap(),
        apache_avro::Schema::parse_str(V2).unwrap(),
    );
    // The same fingerprints, and the same datum for the first message.
    let workload_fp = match fingerprint_difference(&p1, &a1) {
        None => "the same".to_string(),
        Some(Difference::LogicalTypes(why)) => why,
        Some(Difference::Other(why)) => {
            eprintln!("the workload's fingerprint: {why}");
            std::process::exit(1);
        }
    };
    let reader_fields: Vec<(String, Option<Datum>)> = serde_json::from_str::<Json>(V2).unwrap()
        ["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let default = f.get("default").map(|_| Datum::Null);
            (f["name"].as_str().unwrap().to_string(), default)
        })
        .collect();
    assert_eq!(
        plain(&Datum::Record(
            reader_fields
                .iter()
                .map(|(n, _)| n.clone())
                .zip(resolve(p1.decode(&messages[0]).unwrap(), &reader_fields))
                .collect()
        )),
        plain_avro(&apache_avro::from_avro_datum(&a1, &mut &messages[0][..], Some(&a2)).unwrap()),
        "the resolved datums differ"
    );

    // Both give the same resolved datum for every message of the workload.
    let workload_differ = messages
        .iter()
        .filter(|m| {
            let ours = Datum::Record(
                reader_fields
                    .iter()
                    .map(|(n, _)| n.clone())
                    .zip(resolve(p1.decode(m).unwrap(), &reader_fields))
                    .collect(),
            );
            let theirs = apache_avro::from_avro_datum(&a1, &mut &m[..], Some(&a2)).unwrap();
            plain(&ours) != plain_avro(&theirs)
        })
        .count();

    let mut table = Vec::new();
    let paver_decode = time(&messages, rounds, |m| {
        black_box(p1.decode(black_box(m)).unwrap());
    });
    let avro_decode = time(&messages, rounds, |m| {
        black_box(apache_avro::from_avro_datum(&a1, &mut black_box(m), None).unwrap());
    });
    table.push((
        "decode with the writer's schema (`from_avro_datum(w, _, None)`)",
        paver_decode,
        avro_decode,
    ));
    let paver_resolve = time(&messages, rounds, |m| {
        black_box(resolve(p1.decode(black_box(m)).unwrap(), &reader_fields));
    });
    let avro_resolve = time(&messages, rounds, |m| {
        black_box(apache_avro::from_avro_datum(&a1, &mut black_box(m), Some(&a2)).unwrap());
    });
    table.push((
        "decode + resolve to the reader's schema (`from_avro_datum(w, _, Some(r))`)",
        paver_resolve,
        avro_resolve,
    ));
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&a1)
        .reader_schema(&a2)
        .build()
        .unwrap();
    let avro_reused = time(&messages, rounds, |m| {
        black_box(reader.read_value(&mut black_box(m)).unwrap());
    });
    table.push((
        "… with apache-avro's `GenericDatumReader` built once",
        paver_resolve,
        avro_reused,
    ));
    let schemas: Vec<Vec<u8>> = vec![V2.as_bytes().to_vec(); 20_000];
    let paver_fp = time(&schemas, rounds, |s| {
        let json: Json = serde_json::from_slice(s).unwrap();
        black_box(codec::Schema::parse(&json).unwrap().fingerprint);
    });
    let avro_fp = time(&schemas, rounds, |s| {
        let schema = apache_avro::Schema::parse_str(std::str::from_utf8(s).unwrap()).unwrap();
        black_box(schema.fingerprint::<apache_avro::rabin::Rabin>());
    });
    table.push((
        "parse a schema + canonical form + Rabin fingerprint (per schema)",
        paver_fp,
        avro_fp,
    ));
    let canonical = vec![p2.canonical.as_bytes().to_vec(); 200_000];
    let paver_rabin = time(&canonical, rounds, |c| {
        black_box(codec::fingerprint(black_box(c)));
    });
    let avro_rabin = time(&canonical, rounds, |c| {
        use apache_avro::rabin::Rabin;
        use digest::Digest;
        let mut d = Rabin::new();
        d.update(black_box(c));
        black_box(d.finalize());
    });
    table.push((
        "Rabin fingerprint of the canonical form alone",
        paver_rabin,
        avro_rabin,
    ));

    let (agree, oracle_differ) = oracle();
    println!(
        "\n{n} events of {} bytes, best of {rounds} passes; apache-avro 0.22.0; release build\n",
        messages[0].len()
    );
    println!("| operation | paver ns | apache-avro ns | apache-avro / paver |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, paver, avro) in table {
        println!("| {what} | {paver:.0} | {avro:.0} | {:.1}× |", avro / paver);
    }
    println!("\ncodec oracle: {agree}");
    println!("the workload's fingerprint: {workload_fp}");
    println!("workload: {n} messages resolved by both, {workload_differ} differ");
    if workload_differ > 0 || !oracle_differ.is_empty() {
        for d in oracle_differ.iter().take(10) {
            eprintln!("differ: {d}");
        }
        eprintln!(
            "the two codecs disagree: {workload_differ} workload messages, {} oracle cases",
            oracle_differ.len()
        );
        std::process::exit(1);
    }
}

/// Both decoders on the codec oracle's cases: how many agree with Apache Avro (Python),
/// and every case where paver and apache-avro differ (datum, or fingerprint).
fn oracle() -> (String, Vec<String>) {
    let python = std::env::var("PAVER_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/codec_oracle.py");
    let out = std::process::Command::new(&python)
        .args([script, "20261126", "400"])
        .output()
        .expect("run the oracle (scripts/setup-python, PAVER_PYTHON)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut cases, mut paver_ok, mut avro_ok, mut fp_same, mut fp_logical) = (0, 0, 0, 0, 0);
    let mut differ = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let case: Json = serde_json::from_str(line).unwrap();
        cases += 1;
        let bytes = unhex(case["encoded"].as_str().unwrap());
        let p = codec::Schema::parse(&case["schema"]).unwrap();
        let ours = p.decode(&bytes).map(|d| plain(&d));
        if ours.as_ref().ok() == Some(&case["datum"]) {
            paver_ok += 1;
        }
        let theirs = match apache_avro::Schema::parse(&case["schema"]) {
            Ok(a) => {
                match fingerprint_difference(&p, &a) {
                    None => fp_same += 1,
                    Some(Difference::LogicalTypes(_)) => fp_logical += 1,
                    Some(Difference::Other(why)) => differ.push(format!("case {cases}: {why}")),
                }
                apache_avro::from_avro_datum(&a, &mut &bytes[..], None)
                    .map(|v| plain_avro(&v))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("schema: {e}")),
        };
        if theirs.as_ref().ok() == Some(&case["datum"]) {
            avro_ok += 1;
        }
        if ours.as_ref().ok() != theirs.as_ref().ok() {
            differ.push(format!(
                "case {cases}: paver {ours:?}, apache-avro {theirs:?}, schema {}",
                case["schema"]
            ));
        }
    }
    (
        format!(
            "{cases} cases: paver decodes {paver_ok} like Apache Avro (Python), apache-avro {avro_ok}; the same fingerprint from both for {fp_same}, another for {fp_logical} (apache-avro's canonical form keeps `{{\"type\":\"long\"}}` where a logical type was; the specification and Java write `\"long\"`); {} differences",
            differ.len()
        ),
        differ,
    )
}

/// How two fingerprints of a schema differ, said in words.
enum Difference {
    /// apache-avro's canonical form of logical types alone (its form, with
    /// `{"type":"long"}` written `"long"`, is paver's, and its Rabin of paver's form is
    /// paver's fingerprint).
    LogicalTypes(String),
    /// Anything else.
    Other(String),
}

/// `None` when both give the same fingerprint.
fn fingerprint_difference(p: &codec::Schema, a: &apache_avro::Schema) -> Option<Difference> {
    use apache_avro::rabin::Rabin;
    use digest::Digest;
    let theirs = a.fingerprint::<Rabin>().bytes;
    if theirs == p.fingerprint.to_le_bytes() {
        return None;
    }
    let mut form = a.canonical_form();
    for primitive in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        form = form.replace(
            &format!("{{\"type\":\"{primitive}\"}}"),
            &format!("\"{primitive}\""),
        );
    }
    let mut rabin = Rabin::new();
    rabin.update(p.canonical.as_bytes());
    let same_function = rabin.finalize().as_slice() == p.fingerprint.to_le_bytes();
    let why = format!(
        "fingerprint {} (paver, of {}) against {} (apache-avro, of {})",
        hex(&p.fingerprint.to_le_bytes()),
        p.canonical,
        hex(&theirs),
        a.canonical_form()
    );
    Some(if form == p.canonical && same_function {
        Difference::LogicalTypes(why)
    } else {
        Difference::Other(why)
    })
}

fn plain_avro(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => json!(i),
        Value::Long(l)
        | Value::TimeMicros(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::LocalTimestampMillis(l)
        | Value::LocalTimestampMicros(l) => json!(l),
        Value::Float(f) => json!(f64::from(*f)),
        Value::Double(d) => json!(d),
        Value::Bytes(b) | Value::Fixed(_, b) => json!(hex(b)),
        Value::String(s) | Value::Enum(_, s) => json!(s),
        Value::Union(_, v) => plain_avro(v),
        Value::Array(items) => Json::Array(items.iter().map(plain_avro).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), plain_avro(v)))
                .collect(),
        ),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), plain_avro(v)))
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}
