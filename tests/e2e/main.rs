//! End to end, against the real servers (`scripts/test-servers start`: ClickHouse from
//! Debian's package, the tansu Kafka-protocol broker) and a bare git remote on disk: the
//! `paver` binary applies commits pushed to the remote, and the tests look at ClickHouse and
//! Kafka themselves to see what happened.
//!
//! Every test uses resources of its own (a unique prefix) and a state store of its own, so
//! that they run in parallel on the same servers.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paver::plan::Topic;
use paver::providers::clickhouse::ClickHouse;
use paver::providers::kafka::Kafka;

use paver_e2e::{bin, brokers, clickhouse_url, free_port, text};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The servers must run: a test that cannot reach them fails and says how to start them.
fn servers() -> (ClickHouse, Kafka) {
    let rt = runtime();
    let ch = rt
        .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
        .unwrap_or_else(|e| {
            panic!("{e}\nstart the test servers first: scripts/test-servers start")
        });
    let kafka = Kafka::connect(&brokers()).unwrap();
    (ch, kafka)
}

/// A platform repo with a bare remote, a work tree that pushes to it, and a state store.
/// Names unique per test: topics `<prefix>-events`, database `<prefix_>`.
struct Platform(paver_e2e::Repo);

impl std::ops::Deref for Platform {
    type Target = paver_e2e::Repo;
    fn deref(&self) -> &paver_e2e::Repo {
        &self.0
    }
}

impl Platform {
    fn new(test: &str) -> Platform {
        Platform(paver_e2e::Repo::new("e2e", test))
    }

    fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn database(&self) -> String {
        self.prefix.replace('-', "_")
    }

    fn paver(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `paver plan --out <file>`.
    fn saved_plan(&self, file: &std::path::Path) -> Output {
        let file = file.to_str().unwrap();
        self.paver(&["plan", "--repo", &self.remote_url, "--out", file], &[])
    }

    /// `paver apply --plan <file>`.
    fn apply_saved(&self, file: &std::path::Path) -> Output {
        let file = file.to_str().unwrap();
        self.paver(&["apply", "--repo", &self.remote_url, "--plan", file], &[])
    }

    fn apply(&self) -> Output {
        self.paver(
            &["apply", "--repo", &self.remote_url, "--branch", "main"],
            &[],
        )
    }

    fn status(&self) -> serde_json::Value {
        let out = Command::new(bin("paver"))
            .args(["status", "--state", self.state.to_str().unwrap()])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let out = Command::new(bin("paver"))
            .args(["history", "--state", self.state.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A cluster, a topic and its dead-letter topic, a subject and a pipeline: the example
    /// repo's shape, under this test's names.
    fn base(&self) {
        self.write(
            "paver.yaml",
            "defaults:\n  compatibility: FORWARD_TRANSITIVE\n",
        );
        self.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 1\n  memoryGB: 32\n  retentionDays: 30\n",
        );
        self.write_topic("events", 1, 3, "604800000");
        self.write_topic("dlq", 1, 1, "2592000000");
        self.write(
            "schemas/events/v1.avsc",
            r#"{"type": "record", "name": "Event", "namespace": "dev.paver.e2e", "fields": [
  {"name": "id", "type": "string"},
  {"name": "kind", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "double"}
]}"#,
        );
        self.write_pipeline(
            "ingest",
            1,
            "events",
            "SELECT id, kind, at, amount, now() AS ingestedAt FROM source WHERE kind != 'noise'",
        );
    }

    fn write_topic(&self, name: &str, version: u32, partitions: u32, retention: &str) {
        let topic = self.topic(name);
        self.write(
            &format!("topics/{topic}/v{version}.yaml"),
            &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {topic}\n  version: {version}\n  owner: team-e2e\nspec:\n  partitions: {partitions}\n  replicationFactor: 1\n  config:\n    retention.ms: \"{retention}\"\n    cleanup.policy: delete\n"),
        );
    }

    fn write_pipeline(&self, name: &str, version: u32, table: &str, query: &str) {
        let pipeline = format!("{}-{name}", self.prefix);
        self.write(
            &format!("pipelines/{pipeline}/v{version}.yaml"),
            &format!(
                "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: {version}\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {}\n  transform:\n    type: sql\n    query: {query}\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {}.{table}\n    partitionKey: toYYYYMM(at)\n    orderKey: (id, at)\n",
                self.topic("events"),
                self.topic("dlq"),
                self.database()
            ),
        );
    }
}

/// The sink tables of a database (paver's own staging tables, views and ledger left out:
/// `ingest.rs` tests those).
fn tables(ch: &ClickHouse, database: &str) -> Vec<String> {
    all_tables(ch, database)
        .into_iter()
        .filter(|t| !t.starts_with("__paver_"))
        .collect()
}

fn all_tables(ch: &ClickHouse, database: &str) -> Vec<String> {
    runtime()
        .block_on(ch.rows(&format!(
            "SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name"
        )))
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

fn columns(ch: &ClickHouse, database: &str, table: &str) -> Vec<(String, String)> {
    runtime()
        .block_on(ch.rows(&format!("SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}'")))
        .unwrap()
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn topics(kafka: &Kafka, names: &[String]) -> BTreeMap<String, Topic> {
    let wanted = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                Topic {
                    partitions: 0,
                    replication_factor: 0,
                    config: BTreeMap::from([("retention.ms".to_string(), String::new())]),
                },
            )
        })
        .collect();
    runtime().block_on(kafka.observe(&wanted)).unwrap()
}

/// After a successful apply, planning the same revision finds nothing to do (Terraform's
/// promise).
fn assert_plan_empty(p: &Platform) {
    let out = p.paver(&["plan", "--repo", &p.remote_url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("no changes: the real systems match the revision"),
        "plan after apply is not empty:\n{}",
        text(&out)
    );
}

/// A plain HTTP/1.1 request; returns the status code and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!(
        "sha256={}",
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

mod apply;
mod run;
mod scale;
mod ux;
mod wait;
