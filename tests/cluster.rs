//! Pipelines on a live ClickHouse cluster (`scripts/test-servers start --cluster`: Debian's
//! ZooKeeper and four clickhouse-server 18.16, 2 shards × 2 replicas, cluster `paver-test`):
//! every object on every node, replicated physical tables, `db.table` a Distributed table
//! that reads every shard; exactly once through the cluster with a worker SIGKILLed; a new
//! physical generation and a `git revert`; drift on one node reported and repaired.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paver::ingest::codec;
use paver::providers::clickhouse::ClickHouse;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use paver_e2e::{brokers, text};

/// The fault test stops a node: it runs alone (write), the others beside each other (read).
static NODES: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn nodes_up() -> std::sync::RwLockReadGuard<'static, ()> {
    NODES.read().unwrap_or_else(|e| e.into_inner())
}

/// `scripts/test-servers <args>` (a node of the cluster stopped or started).
fn servers(args: &[&str]) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-servers");
    let out = Command::new(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/test-servers {args:?}: {}",
        text(&out)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The cluster of `scripts/test-servers start --cluster` (`eval "$(scripts/test-servers env)"`).
struct Cluster {
    url: String,
    name: String,
    nodes: Vec<String>,
}

fn cluster() -> Cluster {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: start the cluster first: scripts/test-servers start --cluster && eval \"$(scripts/test-servers env)\"")
        })
    };
    Cluster {
        url: var("PAVER_TEST_CLUSTER_URL"),
        name: var("PAVER_TEST_CLUSTER_NAME"),
        nodes: var("PAVER_TEST_CLUSTER_NODES")
            .split(',')
            .map(str::to_string)
            .collect(),
    }
}

fn connect(url: &str) -> ClickHouse {
    runtime()
        .block_on(ClickHouse::connect(url, None, None))
        .unwrap_or_else(|e| panic!("{e}\nstart the cluster: scripts/test-servers start --cluster"))
}

fn query(ch: &ClickHouse, sql: &str) -> Vec<Vec<String>> {
    runtime()
        .block_on(ch.rows(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const V1: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.e2e", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"}
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

/// An event in Avro's single-object encoding.
fn event(id: &str, kind: &str) -> Vec<u8> {
    let fp = codec::Schema::parse(&serde_json::from_str(V1).unwrap())
        .unwrap()
        .fingerprint;
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&fp.to_le_bytes());
    avro_string(&mut out, id);
    avro_string(&mut out, kind);
    zigzag(&mut out, 1_767_225_600_000 + id.len() as i64);
    out.extend_from_slice(&12.5f64.to_le_bytes());
    out
}

/// A platform repo whose ClickHouseCluster `main` is the test cluster.
struct Platform {
    repo: paver_e2e::Repo,
    cluster: Cluster,
}

impl std::ops::Deref for Platform {
    type Target = paver_e2e::Repo;
    fn deref(&self) -> &paver_e2e::Repo {
        &self.repo
    }
}

impl Platform {
    fn new(test: &str) -> Platform {
        Platform {
            repo: paver_e2e::Repo::new("cl", test),
            cluster: cluster(),
        }
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
    fn db(&self) -> String {
        self.prefix.replace('-', "_")
    }
    fn table(&self) -> String {
        format!("{}.events", self.db())
    }

    /// paver.yaml naming the cluster, topics, the schema, a cluster, pipeline v1.
    fn base(&self, partitions: u32) {
        self.write(
            "paver.yaml",
            &format!(
                "targets:\n  clusters:\n    main:\n      clickhouse:\n        url: \"{}\"\n        cluster: {}\n        shards: [\"{}\", \"{}\"]\n",
                self.cluster.url, self.cluster.name, self.cluster.nodes[0], self.cluster.nodes[2]
            ),
        );
        self.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 2\n  memoryGB: 32\n  retentionDays: 3650\n",
        );
        for (name, parts) in [(self.topic(), partitions), (self.dlq(), 1)] {
            self.write(
                &format!("topics/{name}/v1.yaml"),
                &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-e2e\nspec:\n  partitions: {parts}\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n"),
            );
        }
        self.write("schemas/events/v1.avsc", V1);
        self.write_pipeline(1, "(id, at)", "cityHash64(id)");
    }

    fn write_pipeline(&self, version: u32, order: &str, sharding: &str) {
        let pipeline = self.pipeline();
        self.write(
            &format!("pipelines/{pipeline}/v{version}.yaml"),
            &format!(
                "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: {version}\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {}\n  transform:\n    type: sql\n    query: SELECT id, kind, at, amount FROM source WHERE kind != 'noise'\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {}\n    orderKey: {order}\n    shardingKey: {sharding}\n",
                self.topic(),
                self.dlq(),
                self.table()
            ),
        );
    }

    /// `paver …` with the workers pointed at the cluster's first node.
    fn paver(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.env("PAVER_CLICKHOUSE_URL", &self.cluster.url);
        cmd
    }

    fn apply(&self) -> String {
        let out = self
            .paver(&["apply", "--repo", &self.remote_url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&out)
    }

    fn plan(&self) -> String {
        let out = self
            .paver(&["plan", "--repo", &self.remote_url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&out)
    }

    /// Apply the remote's head, again every 2 s while the cluster refuses it (a node or
    /// ZooKeeper coming back), for at most 2 minutes.
    fn apply_once_the_cluster_takes_it(&self) {
        let started = Instant::now();
        loop {
            let out = self
                .paver(&["apply", "--repo", &self.remote_url])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}",
                text(&out)
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn assert_plan_empty(&self) {
        let plan = self.plan();
        assert!(
            plan.contains("no changes: the real systems match the revision"),
            "planning again is not empty:\n{plan}"
        );
    }

    /// `paver ingest` (small batches: a kill lands between many inserts).
    fn ingest(&self, log: &str) -> Guarded {
        Guarded(
            self.paver(&[
                "ingest",
                "--pipeline",
                &self.pipeline(),
                "--linger-ms",
                "50",
                "--batch-rows",
                "40",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap(),
        )
    }

    /// Every node's tables of the test's database: node → name → engine.
    /// The rows of a local (physical) table on the first node of each shard.
    fn rows_per_shard(&self, table: &str) -> Vec<usize> {
        [0, 2]
            .iter()
            .map(|i| count(&connect(&self.cluster.nodes[*i]), table))
            .collect()
    }

    fn tables_by_node(&self) -> Vec<BTreeMap<String, String>> {
        self.cluster
            .nodes
            .iter()
            .map(|url| {
                query(
                    &connect(url),
                    &format!(
                        "SELECT name, engine FROM system.tables WHERE database = '{}'",
                        self.db()
                    ),
                )
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect()
            })
            .collect()
    }

    /// Every node has the same tables, and the sink is laid out for the cluster.
    fn assert_same_tables_everywhere(&self) -> BTreeMap<String, String> {
        let by_node = self.tables_by_node();
        for (i, tables) in by_node.iter().enumerate() {
            assert_eq!(
                tables,
                &by_node[0],
                "node {} ({}) differs from node 1",
                i + 1,
                self.cluster.nodes[i]
            );
        }
        by_node[0].clone()
    }
}

/// A child process that is killed when the test ends, even by a panic.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn produce(
    producer: &FutureProducer,
    topic: &str,
    ids: &mut BTreeSet<String>,
    phase: u32,
    n: usize,
) {
    let mut messages = Vec::new();
    for i in 0..n {
        let id = format!("p{phase}-{i:05}");
        let kind = if i % 25 == 24 { "noise" } else { "click" };
        if kind == "click" {
            ids.insert(id.clone());
        }
        let payload = event(&id, kind);
        messages.push((id, payload));
    }
    runtime().block_on(async {
        let mut waits = Vec::new();
        for (id, payload) in &messages {
            waits.push(producer.send(
                FutureRecord::to(topic).key(id).payload(payload),
                Duration::from_secs(30),
            ));
        }
        for w in waits {
            w.await.map_err(|(e, _)| e).unwrap();
        }
    });
}

/// Events sent all along, in small batches from a thread of their own, until stopped: the
/// traffic a cut-over and a revert happen under. Phases from 100 up (ids of their own).
struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BTreeSet<String>>,
}

impl Traffic {
    fn start(topic: &str) -> Traffic {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (topic, stopping) = (topic.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let producer = producer();
            let mut ids = BTreeSet::new();
            let mut phase = 100;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                produce(&producer, &topic, &mut ids, phase, 20);
                phase += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            ids
        });
        Traffic { stop, thread }
    }

    /// Stop sending; the ids of the events sent that must reach the sink.
    fn stop(self) -> BTreeSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the traffic thread failed")
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

fn count(ch: &ClickHouse, table: &str) -> usize {
    query(ch, &format!("SELECT count() FROM {table}"))[0][0]
        .parse()
        .unwrap()
}

/// Waits until `table`, read through the node `ch`, has `want` rows, then checks that no
/// more arrive.
fn wait_for_count(ch: &ClickHouse, table: &str, want: usize, timeout: Duration) {
    wait_for_rows(ch, table, "1", want, timeout)
}

/// [`wait_for_count`] of the rows `filter` (an SQL condition) selects.
fn wait_for_rows(ch: &ClickHouse, table: &str, filter: &str, want: usize, timeout: Duration) {
    let started = Instant::now();
    let count = || count(ch, &format!("{table} WHERE {filter}"));
    loop {
        let n = count();
        if n >= want {
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(count(), want, "more rows than events in {table}");
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{table} has {n} rows, {want} expected after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every id exactly once through db.table, and nothing else.
fn assert_exactly_once(ch: &ClickHouse, table: &str, ids: &BTreeSet<String>) {
    let rows = query(ch, &format!("SELECT id, count() FROM {table} GROUP BY id"));
    let twice: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] != "1").collect();
    assert!(twice.is_empty(), "ids inserted more than once: {twice:?}");
    let got: BTreeSet<String> = rows.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(got.len(), ids.len(), "row count");
    assert_eq!(&got, ids);
}

#[test]
fn a_pipeline_is_made_on_every_node_of_the_cluster_and_a_second_apply_changes_nothing() {
    let _up = nodes_up();
    let p = Platform::new("apply");
    p.base(2);
    p.push("pipeline v1 on the cluster");
    let plan = p.plan();
    let on = format!("ON CLUSTER {}", p.cluster.name);
    for step in [
        format!("+ create database {} {on}", p.db()),
        format!("+ create table {}__v1 {on} (replicated", p.table()),
        format!("+ make {} {on} a Distributed table", p.table()),
        format!("+ create offsets ledger {}.__paver_offsets {on}", p.db()),
    ] {
        assert!(plan.contains(&step), "no `{step}` in the plan:\n{plan}");
    }
    assert!(plan.contains("sharded by cityHash64(id)"), "{plan}");
    p.apply();
    let tables = p.assert_same_tables_everywhere();
    assert_eq!(tables["events"], "Distributed", "{tables:?}");
    assert_eq!(tables["events__v1"], "ReplicatedMergeTree", "{tables:?}");
    assert_eq!(tables["events__paver_merge"], "Merge", "{tables:?}");
    assert_eq!(
        tables["__paver_offsets"], "ReplicatedReplacingMergeTree",
        "{tables:?}"
    );
    let staging = format!("__paver_{}_v1", p.pipeline().replace('-', "_"));
    assert_eq!(tables[&staging], "Null", "{tables:?}");
    assert_eq!(tables[&format!("{staging}_mv")], "MaterializedView");
    assert_eq!(tables[&format!("{staging}_mv_offsets")], "MaterializedView");
    // Two replicas of each shard: the physical table and the ledger have a replica on
    // every node, in one ZooKeeper path per shard.
    let ch = connect(&p.cluster.url);
    let replicas = query(
        &ch,
        &format!("SELECT table, zookeeper_path, total_replicas FROM system.replicas WHERE database = '{}' ORDER BY table", p.db()),
    );
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    for r in &replicas {
        assert_eq!(r[2], "2", "{replicas:?}");
        assert!(
            r[1].starts_with(&format!("/clickhouse/tables/1/paver/{}/{}/", p.db(), r[0])),
            "{replicas:?}"
        );
    }
    p.assert_plan_empty();
    let second = p.apply();
    assert!(
        second.contains("no changes") || second.contains("0 steps"),
        "{second}"
    );
}

#[test]
fn exactly_once_through_the_cluster_with_a_worker_killed_mid_stream() {
    let _up = nodes_up();
    let p = Platform::new("once");
    p.base(4);
    p.push("pipeline v1");
    p.apply();
    let producer = producer();
    let mut ids = BTreeSet::new();
    let mut worker = p.ingest("ingest-1.log");
    produce(&producer, &p.topic(), &mut ids, 1, 600);
    // SIGKILL while batches go in: between an insert and its commit, somewhere.
    let ch1 = connect(&p.cluster.url);
    let started = Instant::now();
    while count(&ch1, &p.table()) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing ingested:\n{}",
            std::fs::read_to_string(p.dir.path().join("ingest-1.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", &worker.0.id().to_string()])
        .status();
    let _ = worker.0.wait();
    produce(&producer, &p.topic(), &mut ids, 2, 400);
    let _worker = p.ingest("ingest-2.log");
    // Read through db.table on a node of shard 2: the Distributed table reads all.
    let other_shard = connect(&p.cluster.nodes[3]);
    wait_for_count(&other_shard, &p.table(), ids.len(), Duration::from_secs(90));
    assert_exactly_once(&other_shard, &p.table(), &ids);
    // Each of the 4 partitions went to its shard (partition mod 2): both shards hold rows,
    // each exactly its partitions' rows, and the second replica of each has them too.
    let physical = format!("{}.events__v1", p.db());
    let per_shard = p.rows_per_shard(&physical);
    assert!(
        per_shard.iter().all(|n| *n > 0),
        "rows per shard: {per_shard:?}"
    );
    assert_eq!(per_shard.iter().sum::<usize>(), ids.len(), "{per_shard:?}");
    for (replica, shard) in [(1, 0), (3, 1)] {
        let node = connect(&p.cluster.nodes[replica]);
        wait_for_count(&node, &physical, per_shard[shard], Duration::from_secs(60));
    }
    p.assert_plan_empty();
}

/// Without `shards`, the address of shard 2 is derived from `system.clusters` with the
/// url's port: on this cluster (every node on 127.0.0.1) that is node 1 again, of shard 1.
/// It is refused by name, before any row could go to the wrong shard; with `shards`, the
/// doctor lists the node of each shard.
#[test]
fn a_shard_address_that_answers_as_another_shard_is_refused_by_name() {
    let _up = nodes_up();
    let p = Platform::new("shards");
    p.base(2);
    p.push("pipeline v1");
    let doctor = |p: &Platform| {
        let out = p
            .paver(&["doctor", "--repo", &p.remote_url])
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (code, said) = doctor(&p);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "cluster `{}`: 2 shard(s), rows inserted into {}, {}",
            p.cluster.name, p.cluster.nodes[0], p.cluster.nodes[2]
        )),
        "{said}"
    );
    p.write(
        "paver.yaml",
        &format!(
            "targets:\n  clusters:\n    main:\n      clickhouse:\n        url: \"{}\"\n        cluster: {}\n",
            p.cluster.url, p.cluster.name
        ),
    );
    p.push("no shard addresses");
    let (code, said) = doctor(&p);
    assert_eq!(code, Some(1), "{said}");
    let port = p
        .cluster
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    assert!(
        said.contains(&format!(
            "shard 2 of ClickHouse cluster `{}`: http://127.0.0.1:{port} answers as shard [1] of the cluster, not as shard 2",
            p.cluster.name
        )),
        "{said}"
    );
    assert!(said.contains("clickhouse.shards"), "{said}");
}

/// Events alike in every byte are still so many events: ClickHouse's replicated block
/// deduplication would drop a later batch identical to an earlier one (while the ledger
/// records its offsets); paver inserts with `insert_deduplicate=0`.
#[test]
fn identical_events_in_separate_batches_are_all_kept_on_replicated_tables() {
    let _up = nodes_up();
    let p = Platform::new("twins");
    p.base(1);
    p.push("pipeline v1");
    p.apply();
    let producer = producer();
    let _worker = p.ingest("ingest.log");
    let ch = connect(&p.cluster.url);
    for n in 1..=3 {
        runtime().block_on(async {
            producer
                .send(
                    FutureRecord::to(&p.topic())
                        .key("twin")
                        .payload(&event("twin", "click")),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        });
        wait_for_count(&ch, &p.table(), n, Duration::from_secs(60));
    }
}

#[test]
fn a_new_physical_table_and_a_git_revert_on_the_cluster_under_traffic_keep_every_row() {
    let _up = nodes_up();
    let p = Platform::new("gen");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let producer = producer();
    let mut ids = BTreeSet::new();
    let _worker = p.ingest("ingest.log");
    produce(&producer, &p.topic(), &mut ids, 1, 300);
    let ch = connect(&p.cluster.nodes[2]);
    wait_for_count(&ch, &p.table(), ids.len(), Duration::from_secs(90));

    // v2 orders the sink differently: a new replicated physical table on every node. The
    // cut-over and the revert happen under traffic.
    let traffic = Traffic::start(&p.topic());
    p.write_pipeline(2, "(kind, id)", "cityHash64(id)");
    p.push("pipeline v2: ORDER BY (kind, id)");
    let plan = p.plan();
    assert!(
        plan.contains(&format!("new physical table {}__v2 ON CLUSTER", p.table())),
        "{plan}"
    );
    p.apply();
    let tables = p.assert_same_tables_everywhere();
    assert_eq!(tables["events__v2"], "ReplicatedMergeTree", "{tables:?}");
    p.assert_plan_empty();
    produce(&producer, &p.topic(), &mut ids, 2, 300);
    let phase_2 = ids.iter().filter(|id| id.starts_with("p2-")).count();
    let (table, timeout) = (p.table(), Duration::from_secs(90));
    wait_for_rows(&ch, &table, "id LIKE 'p2-%'", phase_2, timeout);
    // Both shards took rows of v2's physical table (each partition goes to its shard).
    let ch1 = connect(&p.cluster.url);
    for node in [&ch, &ch1] {
        assert!(count(node, &format!("{}.events__v2", p.db())) > 0);
    }

    // git revert: v1 again, into its own layout's table; db.table still reads every row.
    std::fs::remove_file(p.work.join(format!("pipelines/{}/v2.yaml", p.pipeline()))).unwrap();
    p.push("Revert v2");
    p.apply();
    p.assert_same_tables_everywhere();
    p.assert_plan_empty();
    produce(&producer, &p.topic(), &mut ids, 3, 300);
    let sent = traffic.stop();
    assert!(sent.len() > 100, "too little traffic: {}", sent.len());
    ids.extend(sent);
    wait_for_count(&ch, &p.table(), ids.len(), Duration::from_secs(90));
    assert_exactly_once(&ch, &p.table(), &ids);
}

#[test]
fn a_table_dropped_by_hand_on_one_node_is_drift_that_is_repaired() {
    let _up = nodes_up();
    let p = Platform::new("drift");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let staging = format!("__paver_{}_v1", p.pipeline().replace('-', "_"));
    // By hand, on node 3 only: the physical table and the staging table's transform view.
    let node3 = connect(&p.cluster.nodes[2]);
    for t in ["events__v1".to_string(), format!("{staging}_mv")] {
        runtime()
            .block_on(node3.run(&format!("DROP TABLE {}.{t}", p.db())))
            .unwrap();
    }
    let plan = p.plan();
    assert!(plan.contains("repair drift: create table"), "{plan}");
    assert!(plan.contains(&format!("{}.events__v1", p.db())), "{plan}");
    assert!(plan.contains(&format!("{staging}_mv ")), "{plan}");
    p.apply();
    let tables = p.assert_same_tables_everywhere();
    assert_eq!(tables["events__v1"], "ReplicatedMergeTree");
    p.assert_plan_empty();
    // The repaired replica joined its shard again: rows written on its partner (node 4,
    // where partition 1 goes) reach it.
    let _worker = p.ingest("ingest.log");
    let mut ids = BTreeSet::new();
    produce(&producer(), &p.topic(), &mut ids, 1, 100);
    let node1 = connect(&p.cluster.url);
    wait_for_count(&node1, &p.table(), ids.len(), Duration::from_secs(90));
    assert_exactly_once(&node1, &p.table(), &ids);
    let physical = format!("{}.events__v1", p.db());
    let shard_2 = p.rows_per_shard(&physical)[1];
    assert!(shard_2 > 0, "no row on shard 2");
    wait_for_count(&node3, &physical, shard_2, Duration::from_secs(60));
}

#[test]
fn a_replica_down_during_an_apply_rolls_back_names_it_and_leaves_nothing_on_any_node() {
    let _alone = NODES.write().unwrap_or_else(|e| e.into_inner());
    let p = Platform::new("down");
    p.base(1);
    p.push("pipeline v1");
    // Stop after the replicated physical table is made on every node, kill node 4, go on.
    let plan = p.plan();
    let steps: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("  !"))
        .collect();
    let physical = steps
        .iter()
        .position(|l| l.contains("(replicated"))
        .unwrap_or_else(|| panic!("no physical table in the plan:\n{plan}"))
        + 1;
    let log = p.dir.path().join("apply.log");
    let mut apply = Guarded(
        p.paver(&["apply", "--repo", &p.remote_url])
            .env("PAVER_FAULT_PAUSE_AFTER_STEPS", physical.to_string())
            .env("PAVER_FAULT_PAUSE_SECONDS", "2")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(p.dir.path().join("apply.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !std::fs::read_to_string(p.dir.path().join("apply.err"))
        .unwrap_or_default()
        .contains("pausing")
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the apply never paused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let node1 = connect(&p.cluster.url);
    let down = query(&node1, &format!("SELECT host_address, port FROM system.clusters WHERE cluster = '{}' ORDER BY shard_num, replica_num", p.cluster.name));
    let down = format!("{}:{}", down[3][0], down[3][1]);
    servers(&["node-kill", "4"]);
    let status = apply.0.wait().unwrap();
    let out = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(p.dir.path().join("apply.err")).unwrap_or_default()
    );
    servers(&["node-start", "4"]);
    assert!(
        !status.success(),
        "the apply succeeded with a node down:\n{out}"
    );
    assert!(
        out.contains(&down),
        "the error does not name the node that is down ({down}):\n{out}"
    );
    // Nothing of the revision on the nodes that were up; and node 4, back, runs what
    // the cluster's DDL queue kept for it (the creates, then the drops).
    for url in &p.cluster.nodes {
        let ch = connect(url);
        let started = Instant::now();
        loop {
            let left = query(
                &ch,
                &format!(
                    "SELECT name FROM system.databases WHERE name = '{}'",
                    p.db()
                ),
            );
            if left.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{url} still has the database of a rolled-back revision:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // With every node back, the revision applies whole (node 4's replicas rejoin once
    // ZooKeeper let its old session expire, 10 s).
    p.apply_once_the_cluster_takes_it();
    p.assert_same_tables_everywhere();
    p.assert_plan_empty();
}

#[test]
fn ingestion_goes_on_while_a_replica_is_killed_and_the_replica_catches_up() {
    let _alone = NODES.write().unwrap_or_else(|e| e.into_inner());
    let p = Platform::new("replica");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let producer = producer();
    let mut ids = BTreeSet::new();
    let _worker = p.ingest("ingest.log");
    produce(&producer, &p.topic(), &mut ids, 1, 400);
    let node1 = connect(&p.cluster.url);
    let started = Instant::now();
    while count(&node1, &p.table()) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing ingested"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Node 2, the other replica of the shard the worker writes into, dies mid-stream.
    servers(&["node-kill", "2"]);
    produce(&producer, &p.topic(), &mut ids, 2, 400);
    let other_shard = connect(&p.cluster.nodes[3]);
    wait_for_count(&other_shard, &p.table(), ids.len(), Duration::from_secs(90));
    assert_exactly_once(&other_shard, &p.table(), &ids);
    // Back, it fetches what it missed from its replica (its shard's rows: half the
    // partitions').
    servers(&["node-start", "2"]);
    let node2 = connect(&p.cluster.nodes[1]);
    let physical = format!("{}.events__v1", p.db());
    let shard_1 = p.rows_per_shard(&physical)[0];
    assert!(
        shard_1 > 0 && shard_1 < ids.len(),
        "shard 1 holds {shard_1} of {}",
        ids.len()
    );
    let started = Instant::now();
    loop {
        let n = runtime()
            .block_on(node2.rows(&format!("SELECT count() FROM {physical}")))
            .ok()
            .and_then(|r| r.first()?.first()?.parse::<usize>().ok());
        if n == Some(shard_1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "node 2 has {n:?} of shard 1's {shard_1} rows in {physical}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    p.assert_plan_empty();
}

#[test]
fn zookeeper_away_refuses_an_apply_whole_and_ingestion_pauses_then_resumes() {
    let _alone = NODES.write().unwrap_or_else(|e| e.into_inner());
    let p = Platform::new("zk");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let producer = producer();
    let mut ids = BTreeSet::new();
    let _worker = p.ingest("ingest.log");
    produce(&producer, &p.topic(), &mut ids, 1, 200);
    let node1 = connect(&p.cluster.url);
    wait_for_count(&node1, &p.table(), ids.len(), Duration::from_secs(90));

    servers(&["zk-stop"]);
    // Events keep coming; replicated tables are read-only: the worker retries.
    produce(&producer, &p.topic(), &mut ids, 2, 200);
    // A new version that needs a new physical table: refused whole, clearly.
    p.write_pipeline(2, "(kind, id)", "cityHash64(id)");
    p.push("pipeline v2: ORDER BY (kind, id)");
    let out = p
        .paver(&["apply", "--repo", &p.remote_url])
        .output()
        .unwrap();
    let said = text(&out);
    let tables = p.tables_by_node();
    servers(&["zk-start"]);
    assert!(!out.status.success(), "applied without ZooKeeper:\n{said}");
    assert!(
        said.to_lowercase().contains("zookeeper")
            || said.contains("Code: 999")
            || said.contains("Code: 225"),
        "the error does not say ZooKeeper is away:\n{said}"
    );
    for (i, t) in tables.iter().enumerate() {
        assert!(
            !t.keys()
                .any(|n| n.starts_with("events__v2") || n.contains("_v2")),
            "node {} has v2's objects after a refused apply: {t:?}\n{said}",
            i + 1
        );
    }
    // ZooKeeper back: ingestion resumes, nothing lost or doubled, and v2 applies.
    wait_for_count(&node1, &p.table(), ids.len(), Duration::from_secs(120));
    assert_exactly_once(&node1, &p.table(), &ids);
    // Replicated tables stay read-only until the servers' new ZooKeeper sessions.
    p.apply_once_the_cluster_takes_it();
    p.assert_same_tables_everywhere();
    p.assert_plan_empty();
}
