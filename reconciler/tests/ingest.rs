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

mod common;
use common::{brokers, clickhouse_url, free_port, text};

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

/// A platform repo of the test's own (see `common::Repo`).
struct Platform(common::Repo);

impl std::ops::Deref for Platform {
    type Target = common::Repo;
    fn deref(&self) -> &common::Repo {
        &self.0
    }
}

impl Platform {
    fn new(test: &str) -> Platform {
        Platform(common::Repo::new("ing", test))
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
        self.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 1\n  memoryGB: 32\n  retentionDays: 30\n",
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
    let mut out = Vec::new();
    let started = Instant::now();
    while (out.len() as i64) < high && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
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
    let dead = dead_letters(&p.dlq());
    let positions: BTreeSet<(i32, i64)> = dead.iter().map(|(at, _)| *at).collect();
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
    let port = free_port();
    let server = p
        .command(&[
            "run",
            "--repo",
            &p.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "1",
        ])
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
                    Err(e) => f.lock().unwrap().push(e),
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

#[test]
fn a_key_change_gets_a_new_physical_table_and_db_table_reads_them_all() {
    let ch = ch();
    let p = Platform::new("gen");
    p.base(2);
    let first = p.push("pipeline v1");
    let (mut server, url) = serve(&p);
    wait_applied(&p, &url, &first);
    let table = p.table();
    let poller = Poller::start(&table);
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    produce(&producer, &mut ledger, 1, 300, None);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // v2 orders the sink differently: a new physical table, db.table a Merge over both.
    p.write_pipeline_ordered(
        2,
        "events@1",
        "SELECT id, kind, at, amount FROM source WHERE kind != 'noise'",
        "(kind, id)",
    );
    let second = p.push("pipeline v2: ORDER BY (kind, id)");
    produce(&producer, &mut ledger, 2, 200, None);
    wait_applied(&p, &url, &second);
    wait_for_worker(&p, 2, Duration::from_secs(60));
    let mut late = Ledger::default();
    produce(&producer, &mut late, 3, 200, None);
    let by_v2 = late.ids.len();
    ledger.ids.extend(late.ids);
    ledger.malformed.extend(late.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    let db = p.prefix.replace('-', "_");
    let engine = query(
        &ch,
        &format!("SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'events'"),
    );
    assert_eq!(engine[0][0], "Merge");
    let keys = query(&ch, &format!("SELECT name, engine_full FROM system.tables WHERE database = '{db}' AND name LIKE 'events__v%' ORDER BY name"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[1][0] == "events__v2" && keys[1][1].contains("ORDER BY (kind, id)"),
        "{keys:?}"
    );
    assert!(count(&ch, &format!("{db}.events__v2")) >= by_v2);

    // git revert: v1 writes into its own layout's table again; db.table still reads all.
    std::fs::remove_file(p.work.join(format!("pipelines/{}/v2.yaml", p.pipeline()))).unwrap();
    let revert = p.push("Revert v2");
    wait_applied(&p, &url, &revert);
    wait_for_worker(&p, 1, Duration::from_secs(60));
    let in_v1 = count(&ch, &format!("{db}.{}", keys[0][0]));
    let mut after = Ledger::default();
    produce(&producer, &mut after, 4, 200, None);
    let by_v1 = after.ids.len();
    ledger.ids.extend(after.ids);
    ledger.malformed.extend(after.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    assert_eq!(count(&ch, &format!("{db}.{}", keys[0][0])), in_v1 + by_v1);
    poller.finish();
    assert_exactly_once(&ch, &table, &ledger);
    assert_dead_letters(&p, &ledger);
    kill(&mut server, "-TERM");
}

#[test]
fn blue_green_cut_over_and_git_revert_lose_nothing_and_duplicate_nothing() {
    let ch = ch();
    let p = Platform::new("bg");
    p.base(3);
    let first = p.push("pipeline v1");
    let (mut server, url) = serve(&p);
    let wait = |sha: &str| wait_applied(&p, &url, sha);
    wait(&first);
    let table = p.table();
    // db.table answers at every moment: polled from another thread all along.
    let poller = Poller::start(&table);

    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    // Phase 1: v1 ingests.
    produce(&producer, &mut ledger, 1, 500, None);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // Phase 2: v2 (reads events@2, adds the `region` column) is merged while events flow.
    produce(&producer, &mut ledger, 2, 200, Some("eu"));
    p.write_pipeline(
        2,
        "events@2",
        "SELECT id, kind, at, amount, region FROM source WHERE kind != 'noise'",
    );
    let second = p.push("pipeline v2: region");
    produce(&producer, &mut ledger, 5, 200, Some("eu"));
    wait(&second);
    // Applied means in effect: the worker already runs v2 when `paver wait` returns.
    assert_worker_runs(&p, 2);
    let mut late = Ledger::default();
    produce(&producer, &mut late, 3, 300, Some("us"));
    let v2_ids: BTreeSet<String> = late.ids.keys().cloned().collect();
    ledger.ids.extend(late.ids);
    ledger.malformed.extend(late.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // Phase 3: `git revert` of v2's merge: v1 is live again and resumes where v2 stopped.
    std::fs::remove_file(p.work.join(format!("pipelines/{}/v2.yaml", p.pipeline()))).unwrap();
    let revert = p.push("Revert \"pipeline v2: region\"");
    wait(&revert);
    // In effect when reported: v1 ingests every record produced from now on (checked
    // below by their region), v2's staging table and views are retired in the same
    // revision, and planning it again finds nothing to do.
    assert_worker_runs(&p, 1);
    let v2_staging = format!("__paver_{}_v2", p.pipeline().replace('-', "_"));
    let database = p.table().split('.').next().unwrap().to_string();
    let left = query(
        &ch,
        &format!(
            "SELECT name FROM system.tables WHERE database = '{database}' AND name LIKE '{v2_staging}%'"
        ),
    );
    assert!(left.is_empty(), "v2's resources are still there: {left:?}");
    let plan = p
        .command(&["plan", "--repo", &p.remote_url])
        .output()
        .unwrap();
    assert!(
        text(&plan).contains("no changes: the real systems match the revision"),
        "plan after the revert is not empty:\n{}",
        text(&plan)
    );
    let mut after = Ledger::default();
    produce(&producer, &mut after, 4, 300, Some("ap"));
    let v1_again: BTreeSet<String> = after.ids.keys().cloned().collect();
    ledger.ids.extend(after.ids);
    ledger.malformed.extend(after.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    poller.finish();

    // Every valid event exactly once; malformed ones in the dead-letter topic.
    assert_exactly_once(&ch, &table, &ledger);
    assert_dead_letters(&p, &ledger);
    // v2 filled the column; v1 (before and after) left it at its default, and the column
    // stayed after the rollback.
    let regions: BTreeMap<String, String> = query(&ch, &format!("SELECT id, region FROM {table}"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for id in &v2_ids {
        assert_eq!(regions[id], "us", "{id} was ingested by v2");
    }
    for id in &v1_again {
        assert_eq!(regions[id], "", "{id} was ingested by v1 after the revert");
    }
    for (id, phase) in &ledger.ids {
        if *phase == 1 {
            assert_eq!(regions[id], "", "{id}");
        }
    }
    // v2's resources are retired; v1's consumer group has v2's offsets; status says so.
    let status = p.status();
    assert_eq!(status["pipelines"][0]["liveVersion"], 1, "{status}");
    assert!(
        status["pipelines"][0]["deadLettered"].as_u64().unwrap() > 0,
        "{status}"
    );
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("{url}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !metrics.is_empty() {
        assert!(
            metrics.contains("paver_pipeline_live_version{pipeline="),
            "{metrics}"
        );
    }
    kill(&mut server, "-TERM");
}

#[test]
fn a_worker_killed_mid_batch_loses_and_duplicates_nothing() {
    let ch = ch();
    let p = Platform::new("crash");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let table = p.table();
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();

    // Killed after its 2nd insert, before the commit: the rows are in, the offsets not.
    produce(&producer, &mut ledger, 1, 400, None);
    let mut worker = p.ingest(&[("PAVER_FAULT_PAUSE_AFTER_INSERT", "2")], "w1.log");
    let started = Instant::now();
    while !p.log("w1.log").contains("pausing") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            p.log("w1.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before_kill = count(&ch, &table);
    assert!(before_kill > 0, "nothing was inserted before the kill");
    kill(&mut worker, "-KILL");
    produce(&producer, &mut ledger, 2, 400, None);

    // Then killed at arbitrary moments while events keep coming.
    for round in 0..3 {
        let mut w = p.ingest(&[], &format!("r{round}.log"));
        produce(&producer, &mut ledger, 3 + round, 300, None);
        std::thread::sleep(Duration::from_millis(300 + 250 * round as u64));
        kill(&mut w, "-KILL");
    }
    let mut last = p.ingest(&[], "last.log");
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(90));
    kill(&mut last, "-TERM");
    assert_exactly_once(&ch, &table, &ledger);
    // Dead letters are at least once: a kill after producing one and before the commit
    // sends it again. None is missing.
    let dead: BTreeSet<(i32, i64)> = dead_letters(&p.dlq())
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(dead, ledger.malformed);
}

/// A ClickHouse server of the test's own, so that stopping it disturbs no other test.
struct OwnClickHouse {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnClickHouse {
    fn start() -> OwnClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let mut me = OwnClickHouse {
            port: free_port(),
            dir,
            child: None,
        };
        let d = me.dir.path().display().to_string();
        std::fs::write(
            me.dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog></logger>\
                 <listen_host>127.0.0.1</listen_host><http_port>{}</http_port><tcp_port>{}</tcp_port>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/files/</user_files_path>\
                 <format_schema_path>{d}/schemas/</format_schema_path>\
                 <mark_cache_size>53687091</mark_cache_size><users_config>users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><timezone>UTC</timezone><mlock_executable>false</mlock_executable></yandex>\n",
                me.port,
                free_port()
            ),
        )
        .unwrap();
        std::fs::write(
            me.dir.path().join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default></default></profiles><users><default><password></password>\
             <networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>\
             <quotas><default></default></quotas></yandex>\n",
        )
        .unwrap();
        me.resume();
        me
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let binary = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists());
        let mut cmd = match binary {
            Some(b) => Command::new(b),
            None => {
                let mut c = Command::new("clickhouse");
                c.arg("server");
                c
            }
        };
        let child = cmd
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while runtime()
            .block_on(ClickHouse::connect(&self.url(), None, None))
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "own ClickHouse did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, "-KILL");
        }
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stopped_clickhouse_slows_consumption_with_bounded_memory_and_ingestion_resumes() {
    let mut server = OwnClickHouse::start();
    let p = Platform::new("bp");
    p.base(1);
    p.push("pipeline v1");
    let apply = p
        .command(&["apply", "--repo", &p.remote_url])
        .env("PAVER_CLICKHOUSE_URL", server.url())
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply));
    let mut worker = Guarded(
        p.command(&[
            "ingest",
            "--pipeline",
            &p.pipeline(),
            "--batch-rows",
            "2000",
        ])
        .env("PAVER_CLICKHOUSE_URL", server.url())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(p.dir.path().join("w.log")).unwrap())
        .spawn()
        .unwrap(),
    );
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    produce(&producer, &mut ledger, 1, 200, None);
    let ch = runtime()
        .block_on(ClickHouse::connect(&server.url(), None, None))
        .unwrap();
    wait_for_count(&ch, &p.table(), ledger.ids.len(), Duration::from_secs(60));
    let baseline = rss_kib(worker.id());

    // ClickHouse goes away; ~30 MB of events arrive (1 KB each, padded ids), far more than
    // the worker's buffers (1 MiB prefetch, a queue of 2 batches of 200 rows).
    server.stop();
    let pad = "x".repeat(1000);
    // Two backlogs, the second twice the first: memory that followed the backlog would
    // grow by ~15 MB between them; bounded memory has reached its ceiling with the first.
    let mut backlog = |rounds: std::ops::Range<usize>| {
        let mut peak = 0;
        for round in rounds {
            let mut messages = Vec::new();
            for i in 0..5_000 {
                let id = format!("big-{round}-{i:05}-{pad}");
                messages.push((id.clone(), event(&id, "click", None)));
            }
            producer.send(&messages);
            for (id, _) in messages {
                ledger.ids.insert(id, 9);
            }
            peak = peak.max(rss_kib(worker.id()));
        }
        for _ in 0..20 {
            peak = peak.max(rss_kib(worker.id()));
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    };
    let first = backlog(0..3);
    let second = backlog(3..6);
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker died: {}",
        p.log("w.log")
    );
    let produced_kib = 30_000 * 1_040 / 1024;
    assert!(
        second < first + 8 * 1024,
        "memory grew with the backlog: {baseline} KiB before, {first} KiB with 15 MB waiting, {second} KiB with 30 MB"
    );
    let peak = first.max(second);
    assert!(p.log("w.log").contains("retrying"), "{}", p.log("w.log"));

    // ClickHouse is back: everything arrives, once.
    server.resume();
    let ch = runtime()
        .block_on(ClickHouse::connect(&server.url(), None, None))
        .unwrap();
    wait_for_count(&ch, &p.table(), ledger.ids.len(), Duration::from_secs(180));
    assert_exactly_once(&ch, &p.table(), &ledger);
    eprintln!("backpressure: baseline {baseline} KiB, peak {peak} KiB while {produced_kib} KiB waited in Kafka");
    kill(&mut worker, "-TERM");
}

/// A stand-in for the Confluent Schema Registry's read API (`GET /schemas/ids/{id}`): no
/// Schema Registry can be installed on these machines (Confluent's is on
/// packages.confluent.io, Karapace is not on PyPI), so the test serves the documented
/// answer itself. Id 21 is events@1; every other id is unknown (404, as the registry).
fn registry_double() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = if path == "/schemas/ids/21" {
                ("200 OK", serde_json::json!({ "schema": V1 }).to_string())
            } else if path == "/stop" {
                return;
            } else {
                (
                    "404 Not Found",
                    r#"{"error_code":40403,"message":"Schema not found"}"#.to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, handle)
}

#[test]
fn the_confluent_wire_format_is_read_through_the_schema_registry() {
    let ch = ch();
    let (registry, handle) = registry_double();
    let p = Platform::new("sr");
    p.base(1);
    p.push("pipeline v1");
    let out = p
        .command(&["apply", "--repo", &p.remote_url])
        .env("PAVER_SCHEMA_REGISTRY_URL", &registry)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    // Confluent framing: 00, the schema id (big endian), the Avro datum.
    let framed = |id: u32, event: &[u8]| {
        let mut m = vec![0u8];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&event[10..]);
        m
    };
    let mut messages = Vec::new();
    for i in 0..60 {
        let id = format!("sr-{i:03}");
        let e = event(&id, "click", None);
        messages.push((id.clone(), if i % 2 == 0 { framed(21, &e) } else { e }));
        ledger.ids.insert(id, 1);
    }
    let unknown = vec![(
        "sr-unknown".to_string(),
        framed(22, &event("sr-unknown", "click", None)),
    )];
    let positions = producer.send(&messages);
    assert_eq!(positions.len(), 60);
    ledger.malformed.extend(producer.send(&unknown));
    let mut worker = p.ingest(
        &[("PAVER_SCHEMA_REGISTRY_URL", registry.as_str())],
        "sr.log",
    );
    wait_for_count(&ch, &p.table(), ledger.ids.len(), Duration::from_secs(60));
    assert_exactly_once(&ch, &p.table(), &ledger);
    let dead = dead_letters(&p.dlq());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.contains("no schema id 22"), "{dead:?}");
    kill(&mut worker, "-TERM");
    let _ = std::net::TcpStream::connect(registry.trim_start_matches("http://"))
        .and_then(|mut s| std::io::Write::write_all(&mut s, b"GET /stop HTTP/1.1\r\n\r\n"));
    let _ = handle.join();
}

/// The cut-over's hand-off: once `await_handover` confirms that the worker runs v2, no
/// record read from then on goes through v1 (its staging table gets nothing more).
#[test]
fn after_the_handover_is_confirmed_every_record_goes_through_the_new_version() {
    use paver::ingest::handover::{await_handover, HandoverOutcome};
    let ch = ch();
    let p = Platform::new("handover");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let table = p.table();
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    let mut worker = p.ingest(&[], "worker.log");
    produce(&producer, &mut ledger, 1, 200, None);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    let rt = runtime();
    let confirmed = |version: u32| {
        rt.block_on(await_handover(
            &p.state,
            &p.pipeline(),
            Some(version),
            Duration::from_secs(30),
        ))
        .unwrap()
    };
    assert_eq!(
        confirmed(1),
        HandoverOutcome::Confirmed,
        "{}",
        p.log("worker.log")
    );

    // v2 goes live while v1 is ingesting: v2 fills `region`, v1 leaves it empty.
    produce(&producer, &mut ledger, 2, 200, Some("eu"));
    p.write_pipeline(
        2,
        "events@2",
        "SELECT id, kind, at, amount, region FROM source WHERE kind != 'noise'",
    );
    p.push("pipeline v2: region");
    p.apply();
    let asked = Instant::now();
    assert_eq!(
        confirmed(2),
        HandoverOutcome::Confirmed,
        "{}",
        p.log("worker.log")
    );
    eprintln!(
        "handover: confirmed {:?} after `paver apply` returned",
        asked.elapsed()
    );

    // Everything read from now on goes through v2.
    let mut after = Ledger::default();
    let sent = {
        let mut messages = Vec::new();
        for i in 0..150 {
            let id = format!("p3-{i:05}");
            messages.push((id.clone(), event(&id, "click", Some("us"))));
            after.ids.insert(id, 3);
        }
        producer.send(&messages)
    };
    let first_after: BTreeMap<i32, i64> = sent.iter().fold(BTreeMap::new(), |mut m, (p, o)| {
        let first = m.entry(*p).or_insert(*o);
        *first = (*first).min(*o);
        m
    });
    let v2_ids: BTreeSet<String> = after.ids.keys().cloned().collect();
    ledger.ids.extend(after.ids);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    assert_exactly_once(&ch, &table, &ledger);
    let regions: BTreeMap<String, String> = query(&ch, &format!("SELECT id, region FROM {table}"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for id in &v2_ids {
        assert_eq!(regions[id], "us", "{id} was read after the handover");
    }
    // The ledger: v1 inserted no offset produced after the handover.
    let db = p.prefix.replace('-', "_");
    let v1_last = query(
        &ch,
        &format!(
            "SELECT partition, max(last_offset) FROM {db}.__paver_offsets WHERE pipeline = '{}' AND version = 1 GROUP BY partition",
            p.pipeline()
        ),
    );
    for row in v1_last {
        let (partition, last): (i32, i64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        if let Some(first) = first_after.get(&partition) {
            assert!(
                last < *first,
                "v1 inserted offset {last} of partition {partition}, produced after the handover (from {first})"
            );
        }
    }
    kill(&mut worker, "-TERM");
    assert_eq!(
        worker.wait().ok().and_then(|s| s.code()),
        Some(0),
        "{}",
        p.log("worker.log")
    );
    // A clean stop: the worker is forgotten, nothing is left to wait for.
    assert_eq!(confirmed(2), HandoverOutcome::NoWorkers);
}
