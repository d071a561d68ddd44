//! The README's Avro → ClickHouse type table, row by row, against the server the tests are
//! pointed at (ClickHouse 18.16 in the first pass of `scripts/test`, the ClickHouse 26.9
//! engine in the second): one event holding a value of every Avro type goes through a real
//! pipeline (`paver apply`, the broker, `paver ingest`), and each sink column is read back
//! with its type and its value.

use std::process::Stdio;
use std::time::{Duration, Instant};

use paver::ingest::codec;
use paver::providers::clickhouse::ClickHouse;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use paver_e2e::{brokers, clickhouse_url, text};

/// Every row of the table, one field each (`["null", T]` twice: null and a value).
const SCHEMA: &str = r#"{"type": "record", "name": "AllTypes", "namespace": "dev.paver.types", "fields": [
  {"name": "f_boolean", "type": "boolean"},
  {"name": "f_int", "type": "int"},
  {"name": "f_long", "type": "long"},
  {"name": "f_float", "type": "float"},
  {"name": "f_double", "type": "double"},
  {"name": "f_string", "type": "string"},
  {"name": "f_bytes", "type": "bytes"},
  {"name": "f_date", "type": {"type": "int", "logicalType": "date"}},
  {"name": "f_ts_millis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "f_ts_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "f_local_ts_millis", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
  {"name": "f_local_ts_micros", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
  {"name": "f_time_millis", "type": {"type": "int", "logicalType": "time-millis"}},
  {"name": "f_time_micros", "type": {"type": "long", "logicalType": "time-micros"}},
  {"name": "f_uuid", "type": {"type": "string", "logicalType": "uuid"}},
  {"name": "f_decimal_bytes", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
  {"name": "f_decimal_fixed", "type": {"type": "fixed", "name": "Money", "size": 6, "logicalType": "decimal", "precision": 12, "scale": 3}},
  {"name": "f_fixed", "type": {"type": "fixed", "name": "Code4", "size": 4}},
  {"name": "f_enum", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]}},
  {"name": "f_array", "type": {"type": "array", "items": "int"}},
  {"name": "f_map", "type": {"type": "map", "values": "long"}},
  {"name": "f_record", "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "int"}, {"name": "label", "type": "string"}]}},
  {"name": "f_nullable_null", "type": ["null", "int"], "default": null},
  {"name": "f_nullable_int", "type": ["null", "int"], "default": null},
  {"name": "f_nullable_array", "type": ["null", {"type": "array", "items": "string"}], "default": null},
  {"name": "f_union", "type": ["int", "string"]}
]}"#;

/// Column, the type of the README's table, and the value read back (`toString`).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("f_boolean", "Bool", "true"),
    ("f_int", "Int32", "-7"),
    ("f_long", "Int64", "1234567890123"),
    ("f_float", "Float32", "1.5"),
    ("f_double", "Float64", "2.25"),
    ("f_string", "String", "héllo"),
    ("f_bytes", "String", "raw"),
    ("f_date", "Date32", "2026-01-01"),
    ("f_ts_millis", "DateTime64(3)", "2026-01-01 00:00:00.123"),
    ("f_ts_micros", "DateTime64(6)", "2026-01-01 00:00:00.123456"),
    (
        "f_local_ts_millis",
        "DateTime64(3)",
        "2026-01-01 00:00:01.500",
    ),
    (
        "f_local_ts_micros",
        "DateTime64(6)",
        "2026-01-01 00:00:01.000001",
    ),
    ("f_time_millis", "Int32", "3600000"),
    ("f_time_micros", "Int64", "3600000001"),
    ("f_uuid", "UUID", "0b5f8a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"),
    ("f_decimal_bytes", "Decimal(9, 2)", "123.45"),
    ("f_decimal_fixed", "Decimal(12, 3)", "-0.001"),
    ("f_fixed", "FixedString(4)", "abcd"),
    ("f_enum", "LowCardinality(String)", "BLUE"),
    ("f_array", "Array(Int32)", "[1,2,3]"),
    ("f_map", "Map(String, Int64)", "{'k':5}"),
    ("f_record", "Tuple(x Int32, label String)", "(1,'z')"),
    ("f_nullable_null", "Nullable(Int32)", "null"),
    ("f_nullable_int", "Nullable(Int32)", "42"),
    ("f_nullable_array", "Array(String)", "[]"),
    ("f_union", "String", ""),
];

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    zigzag(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// The event, in Avro's single-object encoding, written by hand from the specification.
fn event() -> Vec<u8> {
    let fp = codec::Schema::parse(&serde_json::from_str(SCHEMA).unwrap())
        .unwrap()
        .fingerprint;
    let mut o = vec![0xC3, 0x01];
    o.extend_from_slice(&fp.to_le_bytes());
    o.push(1); // boolean true
    zigzag(&mut o, -7);
    zigzag(&mut o, 1_234_567_890_123);
    o.extend_from_slice(&1.5f32.to_le_bytes());
    o.extend_from_slice(&2.25f64.to_le_bytes());
    bytes(&mut o, "héllo".as_bytes());
    bytes(&mut o, b"raw");
    zigzag(&mut o, 20_454); // 2026-01-01
    zigzag(&mut o, 1_767_225_600_123);
    zigzag(&mut o, 1_767_225_600_123_456);
    zigzag(&mut o, 1_767_225_601_500);
    zigzag(&mut o, 1_767_225_601_000_001);
    zigzag(&mut o, 3_600_000);
    zigzag(&mut o, 3_600_000_001);
    bytes(&mut o, b"0b5f8a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b");
    bytes(&mut o, &12_345i32.to_be_bytes()[2..]); // 123.45: two's complement, big endian
    o.extend_from_slice(&[0xff; 6]); // -1 in 6 bytes: -0.001
    o.extend_from_slice(b"abcd");
    zigzag(&mut o, 2); // BLUE
    zigzag(&mut o, 3); // array: one block of 3, then the end
    for i in [1, 2, 3] {
        zigzag(&mut o, i);
    }
    zigzag(&mut o, 0);
    zigzag(&mut o, 1); // map: one block of 1
    bytes(&mut o, b"k");
    zigzag(&mut o, 5);
    zigzag(&mut o, 0);
    zigzag(&mut o, 1); // record Point
    bytes(&mut o, b"z");
    zigzag(&mut o, 0); // ["null", "int"]: null
    zigzag(&mut o, 1); // ["null", "int"]: 42
    zigzag(&mut o, 42);
    zigzag(&mut o, 0); // ["null", array]: null
    zigzag(&mut o, 1); // ["int", "string"]: the string "s"
    bytes(&mut o, b"s");
    o
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_avro_type_reaches_clickhouse_with_the_type_of_the_readme_table() {
    let rt = runtime();
    let ch = rt
        .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
        .unwrap_or_else(|e| {
            panic!("{e}\nstart the test servers first: scripts/test-servers start")
        });
    let p = paver_e2e::Repo::new("types", "all");
    let (topic, dlq, pipeline) = (
        format!("{}-events", p.prefix),
        format!("{}-dlq", p.prefix),
        format!("{}-ingest", p.prefix),
    );
    let db = p.prefix.replace('-', "_");
    p.write(
        "clusters/main/v1.yaml",
        "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 1\n  shards: 1\n  memoryGB: 8\n  retentionDays: 3650\n",
    );
    for name in [&topic, &dlq] {
        p.write(
            &format!("topics/{name}/v1.yaml"),
            &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-e2e\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n"),
        );
    }
    p.write("schemas/alltypes/v1.avsc", SCHEMA);
    let columns: Vec<&str> = EXPECTED.iter().map(|(c, _, _)| *c).collect();
    p.write(
        &format!("pipelines/{pipeline}/v1.yaml"),
        &format!(
            "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: 1\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {topic}\n    consumerGroup: {pipeline}\n    schema: alltypes@1\n    deadLetterTopic: {dlq}\n  transform:\n    type: sql\n    query: SELECT {} FROM source\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {db}.all_types\n    orderKey: f_long\n",
            columns.join(", ")
        ),
    );
    p.push("every Avro type");
    let out = p
        .command(&["apply", "--repo", &p.remote_url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let payload = event();
    rt.block_on(producer.send(
        FutureRecord::to(&topic).key("k").payload(&payload),
        Duration::from_secs(30),
    ))
    .map_err(|(e, _)| e)
    .unwrap();
    let log = p.dir.path().join("ingest.log");
    let mut worker = p
        .command(&["ingest", "--pipeline", &pipeline, "--linger-ms", "50"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let table = format!("{db}.all_types");
    let started = Instant::now();
    let query = |sql: &str| rt.block_on(ch.rows(sql)).unwrap();
    while query(&format!("SELECT count() FROM {table}"))[0][0] != "1" {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = worker.kill();
            panic!(
                "the event never arrived: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    // Every column has a type RowBinary is written for: the worker did not fall back.
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("not RowBinary"), "{said}");

    let types: std::collections::BTreeMap<String, String> = query(&format!(
        "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'all_types'"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let values = query(&format!(
        "SELECT {} FROM {table}",
        columns
            .iter()
            .map(|c| format!("toString({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut wrong = Vec::new();
    for (i, (column, readme_type, value)) in EXPECTED.iter().enumerate() {
        // On an older server, the nearest type it has (the README says which).
        let want_type = ch.adapt_type(readme_type);
        let got_type = types.get(*column).cloned().unwrap_or_default();
        let got = &values[0][i];
        let want_value = if *column == "f_union" {
            // Any other union: the value as JSON.
            got.clone()
        } else {
            value.to_string()
        };
        if got_type != want_type || (want_type == *readme_type && *got != want_value) {
            wrong.push(format!(
                "{column}: {got_type} {got:?}, expected {want_type} {want_value:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "on ClickHouse {}:\n{}",
        ch.version_text,
        wrong.join("\n")
    );
    let union = &values[0][columns.len() - 1];
    assert!(union.contains('s'), "the union's value: {union:?}");
}

/// The reader's schema of the RowBinary test: the writer's fields, and fields the writer
/// does not have, taken from their defaults.
fn reader_with_defaults() -> String {
    let defaults = r#",
  {"name": "d_int", "type": "int", "default": -3},
  {"name": "d_float", "type": "float", "default": 1},
  {"name": "d_date", "type": {"type": "int", "logicalType": "date"}, "default": 20454},
  {"name": "d_ts", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 1500},
  {"name": "d_fixed", "type": {"type": "fixed", "name": "Code2", "size": 2}, "default": "ab"},
  {"name": "d_decimal", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}, "default": "09"},
  {"name": "d_record", "type": {"type": "record", "name": "P2", "fields": [{"name": "a", "type": "int"}]}, "default": {"a": 4}},
  {"name": "d_array", "type": {"type": "array", "items": "long"}, "default": [1, 2]},
  {"name": "d_map", "type": {"type": "map", "values": "string"}, "default": {"m": "v"}},
  {"name": "d_enum", "type": {"type": "enum", "name": "E2", "symbols": ["A", "B"]}, "default": "B"},
  {"name": "d_null", "type": ["null", "string"], "default": null}
]}"#;
    let end = SCHEMA.rfind(']').unwrap();
    format!("{}{defaults}", SCHEMA[..end].trim_end())
}

/// Paver's column types of the reader's extra fields (the README's table).
const DEFAULT_COLUMNS: &[(&str, &str)] = &[
    ("d_int", "Int32"),
    ("d_float", "Float32"),
    ("d_date", "Date32"),
    ("d_ts", "DateTime64(3)"),
    ("d_fixed", "FixedString(2)"),
    ("d_decimal", "Decimal(9, 2)"),
    ("d_record", "Tuple(a Int32)"),
    ("d_array", "Array(Int64)"),
    ("d_map", "Map(String, String)"),
    ("d_enum", "LowCardinality(String)"),
    ("d_null", "Nullable(String)"),
];

/// An event of extreme values: quotes, escapes, NUL and emoji in strings, the edges of
/// the integer types, times before 1970, negative decimals, empty and keyed containers.
/// `bytes` is the `f_bytes` value.
fn edge_event(bytes_value: &[u8]) -> Vec<u8> {
    let fp = codec::Schema::parse(&serde_json::from_str(SCHEMA).unwrap())
        .unwrap()
        .fingerprint;
    let mut o = vec![0xC3, 0x01];
    o.extend_from_slice(&fp.to_le_bytes());
    o.push(0); // boolean false
    zigzag(&mut o, i64::from(i32::MIN));
    zigzag(&mut o, i64::MIN);
    o.extend_from_slice(&(-3.4e38f32).to_le_bytes());
    o.extend_from_slice(&1e-300f64.to_le_bytes());
    bytes(&mut o, "a\"b\\c\nd\te\0f 😀 ü '".as_bytes());
    bytes(&mut o, bytes_value);
    zigzag(&mut o, 0); // 1970-01-01
    zigzag(&mut o, -1); // 1969-12-31 23:59:59.999
    zigzag(&mut o, -1);
    zigzag(&mut o, 4_102_444_800_000); // 2100-01-01
    zigzag(&mut o, 0);
    zigzag(&mut o, i64::from(i32::MAX));
    zigzag(&mut o, 0);
    bytes(&mut o, b"ffffffff-ffff-ffff-ffff-ffffffffffff");
    bytes(&mut o, &(-999_999_999i32).to_be_bytes()); // -9999999.99
    o.extend_from_slice(&[0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x0f]); // 999999999.999
    o.extend_from_slice(&[0, 1, b'"', 0x7f]);
    zigzag(&mut o, 0); // RED
    zigzag(&mut o, 0); // an empty array
    zigzag(&mut o, -2); // a map block of 2 written with its size in bytes
    let mut block = Vec::new();
    bytes(&mut block, b"it's");
    zigzag(&mut block, -5);
    bytes(&mut block, "kéy\"".as_bytes());
    zigzag(&mut block, i64::MAX);
    zigzag(&mut o, block.len() as i64);
    o.extend_from_slice(&block);
    zigzag(&mut o, 0);
    zigzag(&mut o, -1); // record Point
    bytes(&mut o, b"");
    zigzag(&mut o, 0); // null
    zigzag(&mut o, 1);
    zigzag(&mut o, i64::from(i32::MIN));
    zigzag(&mut o, 1); // ["null", array]: ["a", ""]
    zigzag(&mut o, 2);
    bytes(&mut o, b"a");
    bytes(&mut o, b"");
    zigzag(&mut o, 0);
    zigzag(&mut o, 0); // ["int", "string"]: the int 5
    zigzag(&mut o, 5);
    o
}

/// `RowBinary` (paver's default insert format) against `JSONEachRow` on the server the
/// tests point at: the same events, with every type of the README's table, extreme values
/// and the reader's defaults, decoded by the decoder a worker uses, inserted once in each
/// format into tables of the server's types, and read back: ClickHouse must read the same
/// values from both, and keep the bytes of an Avro `bytes` that is not UTF-8.
#[test]
fn row_binary_is_read_by_clickhouse_as_json_each_row_is() {
    use paver::ingest::rows::{Decoder, Format};
    use paver::model::{Column, TableName};

    let rt = runtime();
    let ch = rt
        .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
        .unwrap_or_else(|e| {
            panic!("{e}\nstart the test servers first: scripts/test-servers start")
        });
    let p = paver_e2e::Repo::new("types", "rowbinary");
    let db = p.prefix.replace('-', "_");
    let columns: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(c, t, _)| (c.to_string(), t.to_string()))
        .chain(
            DEFAULT_COLUMNS
                .iter()
                .map(|(c, t)| (c.to_string(), t.to_string())),
        )
        .collect();
    let spec = paver::ingest::spec::IngestSpec {
        pipeline: "rowbinary".into(),
        version: 1,
        topic: String::new(),
        group: String::new(),
        previous_group: None,
        dead_letter_topic: String::new(),
        staging: TableName {
            database: db.clone(),
            name: "binary".into(),
        },
        views: vec![],
        ledger: TableName {
            database: db.clone(),
            name: "ledger".into(),
        },
        columns: columns
            .iter()
            .map(|(name, ty)| Column {
                name: name.clone(),
                ty: Some(ty.clone()),
            })
            .collect(),
        reader: reader_with_defaults(),
        writers: vec![(1, SCHEMA.to_string())],
    };
    let run = |sql: &str| {
        rt.block_on(ch.run(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    run(&format!("CREATE DATABASE {db}"));
    let defs: Vec<String> = columns
        .iter()
        .map(|(c, t)| format!("{c} {}", ch.adapt_type(t)))
        .chain([
            "_paver_partition Int32".into(),
            "_paver_offset Int64".into(),
        ])
        .collect();
    for table in ["binary", "json"] {
        run(&format!(
            "CREATE TABLE {db}.{table} ({}) ENGINE = MergeTree ORDER BY _paver_offset",
            defs.join(", ")
        ));
    }
    let staging = rt
        .block_on(ch.rows(&format!(
            "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'binary'"
        )))
        .unwrap()
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect::<Vec<_>>();
    let json = Decoder::new(&spec, |t| ch.adapt_type(t)).unwrap();
    let mut binary = Decoder::new(&spec, |t| ch.adapt_type(t)).unwrap();
    binary.use_row_binary(&staging).unwrap();
    let Format::RowBinary(order) = binary.format() else {
        panic!("not RowBinary")
    };
    assert_eq!(json.format(), Format::JsonEachRow);

    let events = [
        event(),
        edge_event(b"\0\"x\\"),
        edge_event(&[0xff, 0, b'x']),
    ];
    let (mut json_rows, mut binary_rows) = (Vec::new(), Vec::new());
    for (offset, e) in events.iter().enumerate() {
        json.row(e, 0, offset as i64, &mut json_rows)
            .unwrap_or_else(|e| panic!("JSONEachRow, event {offset}: {}", e.reason()));
        binary
            .row(e, 0, offset as i64, &mut binary_rows)
            .unwrap_or_else(|e| panic!("RowBinary, event {offset}: {}", e.reason()));
    }
    let table = |name: &str| TableName {
        database: db.clone(),
        name: name.into(),
    };
    rt.block_on(ch.insert_json_rows(&table("json"), json_rows.into()))
        .unwrap_or_else(|e| panic!("JSONEachRow: {e:?}"));
    rt.block_on(ch.insert_rows(
        &table("binary"),
        Some(&order),
        "RowBinary",
        binary_rows.into(),
    ))
    .unwrap_or_else(|e| panic!("RowBinary: {e:?}"));

    let read = |table: &str| {
        rt.block_on(ch.rows(&format!(
            "SELECT {} FROM {db}.{table} ORDER BY _paver_offset",
            columns
                .iter()
                .map(|(c, _)| format!("hex(toString({c}))"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .unwrap()
    };
    let (from_json, from_binary) = (read("json"), read("binary"));
    assert_eq!(from_binary.len(), events.len());
    let unhex = |h: &str| {
        if h.len() % 2 == 1 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return h.to_string(); // NULL
        }
        let b: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    let mut differ = Vec::new();
    for (row, (j, b)) in from_json.iter().zip(&from_binary).enumerate() {
        for (i, (column, _)) in columns.iter().enumerate() {
            // The bytes that are not UTF-8 are kept by RowBinary only (checked below).
            if row == 2 && column == "f_bytes" {
                continue;
            }
            if j[i] != b[i] {
                differ.push(format!(
                    "event {row}, {column}: JSONEachRow {:?}, RowBinary {:?}",
                    unhex(&j[i]),
                    unhex(&b[i])
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "on ClickHouse {}:\n{}",
        ch.version_text,
        differ.join("\n")
    );
    let bytes_at = columns.iter().position(|(c, _)| c == "f_bytes").unwrap();
    assert_eq!(from_binary[2][bytes_at], "FF0078");
    assert_eq!(from_binary[1][bytes_at], "0022785C");
    // The defaults, as the server reads them (a modern server; an old one has other types).
    if ch.adapt_type("Map(String, String)") != "String" {
        let at =
            |c: &str| unhex(&from_binary[0][columns.iter().position(|(n, _)| n == c).unwrap()]);
        let got: Vec<String> = DEFAULT_COLUMNS.iter().map(|(c, _)| at(c)).collect();
        assert_eq!(
            got,
            [
                "-3",
                "1",
                "2026-01-01",
                "1970-01-01 00:00:01.500",
                "ab",
                "123.45",
                "(4)",
                "[1,2]",
                "{'m':'v'}",
                "B",
                "null"
            ]
        );
    }
    run(&format!("DROP DATABASE {db}"));
}
