//! Ingestion end to end, against the real servers (`scripts/test-servers start`) and a bare
//! git remote: events produced to the real broker reach ClickHouse through `paver run`'s
//! embedded workers or `paver ingest` processes; versions cut over blue/green and back
//! on `git revert`; a worker killed mid-batch loses and duplicates nothing; a ClickHouse
//! that stops makes the worker wait with bounded memory.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paver::ingest::codec;
use paver::providers::clickhouse::ClickHouse;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

use paver_e2e::{brokers, clickhouse_url, free_port, text};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

const V1: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.e2e", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"}
]}"#;

/// v2 adds `region` (with a default: readers of v1 ignore it, v1 data reads as "").
const V2: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.e2e", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"},
  {"name": "region", "type": "string", "default": ""}
]}"#;

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn avro_string(out: &mut Vec<u8>, s: &str) {
    zigzag(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// An event in Avro's single-object encoding, written with v1 (no region) or v2.
fn event(id: &str, kind: &str, region: Option<&str>) -> Vec<u8> {
    let schema = if region.is_some() { V2 } else { V1 };
    let fp = codec::Schema::parse(&serde_json::from_str(schema).unwrap())
        .unwrap()
        .fingerprint;
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&fp.to_le_bytes());
    avro_string(&mut out, id);
    avro_string(&mut out, kind);
    zigzag(&mut out, 1_767_225_600_000 + id.len() as i64);
    out.extend_from_slice(&12.5f64.to_le_bytes());
    if let Some(r) = region {
        avro_string(&mut out, r);
    }
    out
}

/// A platform repo of the test's own (see `paver_e2e::Repo`).
struct Platform(paver_e2e::Repo);

impl std::ops::Deref for Platform {
    type Target = paver_e2e::Repo;
    fn deref(&self) -> &paver_e2e::Repo {
        &self.0
    }
}

impl Platform {
    fn new(test: &str) -> Platform {
        Platform(paver_e2e::Repo::new("ing", test))
    }

    fn topic(&self) -> String {
        format!("{}-events", self.prefix)
    }
    fn dlq(&self) -> String {
        format!("{}-dlq", self.prefix)
    }
    fn pipeline(&self) -> String {
        format!("{}-ingest", self.prefix)
    }
    fn table(&self) -> String {
        format!("{}.events", self.prefix.replace('-', "_"))
    }

    /// Topics, both schema versions, a cluster, and pipeline v1.
    fn base(&self, partitions: u32) {
        // Retention far longer than the events' age (2026-01-01): a server with TTL drops
        // expired rows as they are written.
        self.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 1\n  memoryGB: 32\n  retentionDays: 3650\n",
        );
        for (name, parts) in [(self.topic(), partitions), (self.dlq(), 1)] {
            self.write(
                &format!("topics/{name}/v1.yaml"),
                &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-e2e\nspec:\n  partitions: {parts}\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n"),
            );
        }
        self.write("schemas/events/v1.avsc", V1);
        self.write("schemas/events/v2.avsc", V2);
        self.write_pipeline(
            1,
            "events@1",
            "SELECT id, kind, at, amount FROM source WHERE kind != 'noise'",
        );
    }

    fn write_pipeline(&self, version: u32, schema: &str, query: &str) {
        self.write_pipeline_ordered(version, schema, query, "(id, at)");
    }

    fn write_pipeline_ordered(&self, version: u32, schema: &str, query: &str, order: &str) {
        let pipeline = self.pipeline();
        self.write(
            &format!("pipelines/{pipeline}/v{version}.yaml"),
            &format!(
                "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: {version}\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {}\n    consumerGroup: {pipeline}\n    schema: {schema}\n    deadLetterTopic: {}\n  transform:\n    type: sql\n    query: {query}\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {}\n    orderKey: {order}\n",
                self.topic(),
                self.dlq(),
                self.table()
            ),
        );
    }

    fn apply(&self) {
        let out = self
            .command(&["apply", "--repo", &self.remote_url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    fn status(&self) -> serde_json::Value {
        let out = self.command(&["status"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Start `paver ingest` for the pipeline; its stderr goes to a file of the test.
    fn ingest(&self, env: &[(&str, &str)], log: &str) -> Guarded {
        // Small batches: a kill lands between many inserts.
        let mut cmd = self.command(&[
            "ingest",
            "--pipeline",
            &self.pipeline(),
            "--linger-ms",
            "50",
            "--batch-rows",
            "50",
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Guarded(
            cmd.stdout(Stdio::null())
                .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

struct Producer {
    producer: FutureProducer,
    topic: String,
    rt: tokio::runtime::Runtime,
}

impl Producer {
    fn new(topic: &str) -> Producer {
        Producer {
            producer: ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .set("linger.ms", "5")
                .create()
                .unwrap(),
            topic: topic.to_string(),
            rt: runtime(),
        }
    }

    /// Send messages; returns where each landed (partition, offset).
    fn send(&self, messages: &[(String, Vec<u8>)]) -> Vec<(i32, i64)> {
        self.rt.block_on(async {
            let mut waits = Vec::new();
            for (key, value) in messages {
                let record = FutureRecord::to(&self.topic).key(key).payload(value);
                waits.push(self.producer.send(record, Duration::from_secs(30)));
            }
            let mut out = Vec::new();
            for w in waits {
                let delivery = w.await.map_err(|(e, _)| e).unwrap();
                out.push((delivery.partition, delivery.offset));
            }
            out
        })
    }
}

/// What produced events became: valid ids by phase, and the positions of malformed ones.
#[derive(Default)]
struct Ledger {
    ids: BTreeMap<String, u32>,
    malformed: BTreeSet<(i32, i64)>,
    noise: usize,
}

/// `count` events of a phase, every 10th malformed and every 25th `noise` (filtered by
/// the transform); v2-schema events when `region` is given.
fn produce(p: &Producer, ledger: &mut Ledger, phase: u32, count: usize, region: Option<&str>) {
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..count {
        let id = format!("p{phase}-{i:05}");
        if i % 10 == 9 {
            messages.push((id, b"\xffnot avro at all".to_vec()));
            kinds.push(0);
        } else if i % 25 == 24 {
            messages.push((id.clone(), event(&id, "noise", region)));
            kinds.push(1);
        } else {
            messages.push((id.clone(), event(&id, "click", region)));
            kinds.push(2);
        }
    }
    let positions = p.send(&messages);
    for (((id, _), kind), at) in messages.into_iter().zip(kinds).zip(positions) {
        match kind {
            0 => {
                ledger.malformed.insert(at);
            }
            1 => ledger.noise += 1,
            _ => {
                ledger.ids.insert(id, phase);
            }
        }
    }
}

fn ch() -> ClickHouse {
    runtime()
        .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
        .unwrap_or_else(|e| panic!("{e}\nstart the test servers first: scripts/test-servers start"))
}

fn query(ch: &ClickHouse, sql: &str) -> Vec<Vec<String>> {
    runtime().block_on(ch.rows(sql)).unwrap()
}

fn count(ch: &ClickHouse, table: &str) -> usize {
    query(ch, &format!("SELECT count() FROM {table}"))[0][0]
        .parse()
        .unwrap()
}

fn wait_for_count(ch: &ClickHouse, table: &str, want: usize, timeout: Duration) {
    let started = Instant::now();
    loop {
        let n = count(ch, table);
        if n >= want {
            // A little longer: nothing more may arrive (duplicates would).
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(count(ch, table), want, "more rows than events in {table}");
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{table} has {n} rows, {want} expected after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every id exactly once, and nothing else.
fn assert_exactly_once(ch: &ClickHouse, table: &str, ledger: &Ledger) {
    let rows = query(ch, &format!("SELECT id, count() FROM {table} GROUP BY id"));
    let twice: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] != "1").collect();
    assert!(twice.is_empty(), "ids inserted more than once: {twice:?}");
    let got: BTreeSet<String> = rows.into_iter().map(|r| r[0].clone()).collect();
    let want: BTreeSet<String> = ledger.ids.keys().cloned().collect();
    assert_eq!(got.len(), want.len(), "row count");
    assert_eq!(got, want);
}

/// The dead-letter topic's records: (source partition, source offset) → reason.
fn dead_letters(topic: &str) -> Vec<((i32, i64), String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    // tansu's high watermark counts a record batch as one record (base offset + 1: two
    // dead letters sent side by side, in one batch, raise it by one), so past it the topic
    // is read until it stays quiet for a second.
    let mut out = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let below = (out.len() as i64) < high;
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(if below { 500 } else { 1000 }))
        else {
            if below {
                continue;
            }
            break;
        };
        let header = |k: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == k))
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap_or_default()
        };
        out.push((
            (
                header("paver.source.partition").parse().unwrap_or(-1),
                header("paver.source.offset").parse().unwrap_or(-1),
            ),
            header("paver.error"),
        ));
    }
    out
}

fn assert_dead_letters(p: &Platform, ledger: &Ledger) {
    // A part of a batch holding only dead letters is sent beside the other partitions'
    // inserts: the rows can all be in a moment before the last dead letter is.
    let started = Instant::now();
    let (dead, positions) = loop {
        let dead = dead_letters(&p.dlq());
        let positions: BTreeSet<(i32, i64)> = dead.iter().map(|(at, _)| *at).collect();
        if positions == ledger.malformed || started.elapsed() > Duration::from_secs(20) {
            break (dead, positions);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(positions, ledger.malformed, "dead letters: {dead:?}");
    assert!(
        dead.iter().all(|(_, why)| why.contains("single-object")),
        "{dead:?}"
    );
}

/// Wait until the worker reports running `version`.
fn wait_for_worker(p: &Platform, version: u32, timeout: Duration) {
    let started = Instant::now();
    loop {
        let status = p.status();
        let pipeline = &status["pipelines"][0];
        if pipeline["liveVersion"] == version && pipeline["workerVersion"] == version {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the worker never ran v{version}: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker runs `version` now (no waiting: the cut-over waited for it).
fn assert_worker_runs(p: &Platform, version: u32) {
    let status = p.status();
    let pipeline = &status["pipelines"][0];
    assert_eq!(
        (&pipeline["liveVersion"], &pipeline["workerVersion"]),
        (&version.into(), &version.into()),
        "{status}"
    );
}

/// A child process that is killed when the test ends, even by a panic.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `paver run` on the platform's remote (embedded workers, polling every second); its
/// address.
fn serve(p: &Platform) -> (Guarded, String) {
    serve_with(p, &[])
}

/// The same, with more arguments (`--branch …`).
fn serve_with(p: &Platform, more: &[&str]) -> (Guarded, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "run",
        "--repo",
        &p.remote_url,
        "--listen",
        &listen,
        "--poll-seconds",
        "1",
    ];
    args.extend_from_slice(more);
    let server = p
        .command(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(p.dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    (Guarded(server), format!("http://127.0.0.1:{port}"))
}

/// `paver wait` for a revision: it must be applied.
fn wait_applied(p: &Platform, url: &str, sha: &str) {
    let out = p
        .command(&[
            "wait",
            "--revision",
            sha,
            "--timeout",
            "90s",
            "--server",
            url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        p.log("run.log")
    );
}

/// Polls `SELECT count()` of a table from another thread: every failure, and any count
/// that went down, is recorded.
struct Poller {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<usize>,
}

impl Poller {
    fn start(table: &str) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let (s, f, table) = (stop.clone(), failures.clone(), table.to_string());
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            let ch = rt
                .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
                .unwrap();
            let (mut last, mut polls) = (0usize, 0usize);
            while !s.load(Ordering::SeqCst) {
                match rt.block_on(ch.rows(&format!("SELECT count() FROM {table}"))) {
                    Ok(rows) => {
                        let n: usize = rows[0][0].parse().unwrap();
                        if n < last {
                            f.lock()
                                .unwrap()
                                .push(format!("count went from {last} to {n}"));
                        }
                        last = n;
                    }
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
                polls += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            polls
        });
        Poller {
            stop,
            failures,
            thread,
        }
    }

    /// Stop; the table must have answered every poll.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let polls = self.thread.join().unwrap();
        assert!(polls > 20, "the table was polled {polls} times only");
        let failures = self.failures.lock().unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
}

mod cutover;
mod faults;
mod groups;
mod page;
