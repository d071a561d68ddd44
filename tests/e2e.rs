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

#[test]
fn first_apply_converges_and_the_second_changes_nothing() {
    let (ch, kafka) = servers();
    let p = Platform::new("first");
    p.base();
    let sha = p.push("v1");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("applied {sha}")),
        "{}",
        text(&out)
    );
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    let cols = columns(&ch, &p.database(), "events");
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "kind", "at", "amount", "ingestedAt"]);
    // The computed column's type comes from ClickHouse itself.
    assert_eq!(cols[4].1, "DateTime");
    let found = topics(&kafka, &[p.topic("events"), p.topic("dlq")]);
    assert_eq!(found[&p.topic("events")].partitions, 3);
    assert_eq!(
        found[&p.topic("events")]
            .config
            .get("retention.ms")
            .map(String::as_str),
        Some("604800000")
    );
    assert_eq!(p.status()["active"]["sha"], sha);

    let again = p.apply();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("0 steps"), "{}", text(&again));
    assert!(text(&again).contains("no changes"), "{}", text(&again));
    assert_plan_empty(&p);
}

#[test]
fn a_pushed_commit_adding_a_topic_and_a_pipeline_converges() {
    let (ch, kafka) = servers();
    let p = Platform::new("push");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("audit", 1, 2, "86400000");
    p.write_pipeline("audit", 1, "audit", "SELECT id, at, amount FROM source");
    // A longer retention for the events topic: a config change in place.
    p.write_topic("events", 2, 3, "1209600000");
    let sha = p.push("add audit");
    let plan = p.paver(&["plan", "--repo", &p.remote_url], &[]);
    let shown = text(&plan);
    assert!(
        shown.contains(&format!("+ create topic {}", p.topic("audit"))),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("+ create table {}.audit", p.database())),
        "{shown}"
    );
    assert!(
        shown.contains("~ alter topic") && shown.contains("retention.ms=1209600000"),
        "{shown}"
    );
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(tables(&ch, &p.database()), ["audit", "events"]);
    let found = topics(&kafka, &[p.topic("audit"), p.topic("events")]);
    assert_eq!(found[&p.topic("audit")].partitions, 2);
    assert_eq!(
        found[&p.topic("events")].config["retention.ms"],
        "1209600000"
    );
    assert_eq!(p.status()["active"]["sha"], sha);
    assert_plan_empty(&p);
}

#[test]
fn removing_the_newest_version_rolls_back_to_the_one_before() {
    let (_, kafka) = servers();
    let p = Platform::new("revert");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("events", 2, 3, "1209600000");
    p.push("events v2");
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "1209600000"
    );
    // What `git revert` of v2's merge does: the file goes, v1 is active again.
    p.remove(&format!("topics/{}/v2.yaml", p.topic("events")));
    let revert = p.push("Revert \"events v2\"");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
    assert_eq!(p.status()["active"]["sha"], revert);
    assert_plan_empty(&p);
}

#[test]
fn a_revision_failing_mid_apply_leaves_nothing_behind() {
    let (ch, kafka) = servers();
    let p = Platform::new("fail");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    // A new topic (created first), then a table whose transform ClickHouse rejects (the
    // linter cannot know every server's functions): the table step fails.
    p.write_topic("extra", 1, 1, "86400000");
    p.write_pipeline(
        "broken",
        1,
        "broken",
        "SELECT id, at, noSuchFunction(amount) AS x FROM source",
    );
    let bad = p.push("broken");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rolled back"), "{}", text(&out));
    // Nothing of it stays: no topic, no table; the previous revision is still active.
    assert!(topics(&kafka, &[p.topic("extra")]).is_empty());
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(p.status()["active"]["sha"], good);
    let last = &p.history()[0];
    assert_eq!(
        (last["sha"].as_str(), last["status"].as_str()),
        (Some(bad.as_str()), Some("rolled-back"))
    );
    assert!(
        last["error"].as_str().unwrap().contains("noSuchFunction"),
        "{last}"
    );
    // An unknown function is the revision's fault: trying again cannot help.
    assert_eq!(last["error_kind"], "permanent", "{last}");
    let failure = &p.status()["failure"];
    assert_eq!(failure["kind"], "permanent", "{failure}");
    assert!(failure["nextTry"].is_null(), "{failure}");
}

#[test]
fn a_revision_that_does_not_lint_is_refused_and_changes_nothing() {
    let (ch, kafka) = servers();
    let p = Platform::new("refused");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("new", 1, 2, "86400000");
    p.write_pipeline("typo", 1, "typo", "SELECT idd, at FROM source");
    let bad = p.push("typo");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not lint clean") && text(&out).contains("PV304"),
        "{}",
        text(&out)
    );
    assert!(topics(&kafka, &[p.topic("new")]).is_empty());
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(p.status()["active"]["sha"], good);
    assert_eq!(p.history()[0]["status"], "refused");
    assert_eq!(p.history()[0]["sha"], bad);
}

#[test]
fn drift_made_by_hand_is_repaired() {
    let (ch, kafka) = servers();
    let p = Platform::new("drift");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    let rt = runtime();
    rt.block_on(ch.execute(&paver::plan::ClickHouseAction::DropTable {
        table: paver::plan::TableName {
            database: p.database(),
            name: "events".into(),
        },
    }))
    .unwrap();
    rt.block_on(kafka.execute(&paver::plan::KafkaAction::AlterTopicConfig {
        name: p.topic("events"),
        set: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        delete: Vec::new(),
    }))
    .unwrap();
    let plan = text(&p.paver(&["plan", "--repo", &p.remote_url], &[]));
    assert!(
        plan.contains(&format!("+ create table {}.events", p.database())),
        "{plan}"
    );
    assert!(plan.contains("retention.ms=604800000"), "{plan}");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
}

#[test]
fn an_unmanaged_table_in_the_way_is_an_error_not_dropped() {
    let (ch, _) = servers();
    let p = Platform::new("unmanaged");
    p.base();
    p.push("v1");
    let rt = runtime();
    let db = p.database();
    rt.block_on(ch.execute(&paver::plan::ClickHouseAction::CreateDatabase { name: db.clone() }))
        .unwrap();
    rt.block_on(ch.run(&format!(
        "CREATE TABLE {db}.events (x UInt8) ENGINE = Memory"
    )))
    .unwrap();
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("paver did not create it"),
        "{}",
        text(&out)
    );
    assert_eq!(
        columns(&ch, &db, "events"),
        [("x".to_string(), "UInt8".to_string())]
    );
}

#[test]
fn a_reconciler_killed_mid_apply_undoes_the_revision_on_restart() {
    let (ch, kafka) = servers();
    let p = Platform::new("kill");
    p.base();
    let sha = p.push("v1");
    // Steps: two topics, the database, the table. Kill after the second.
    let mut child = p
        .command(&["apply", "--repo", &p.remote_url])
        .env("PAVER_FAULT_PAUSE_AFTER_STEPS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let found = topics(&kafka, &[p.topic("events"), p.topic("dlq")]);
        if found.len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the apply never got to its pause"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(p.status()["interrupted"]["sha"], sha);
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("undid the interrupted revision"),
        "{}",
        text(&out)
    );
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(
        topics(&kafka, &[p.topic("events"), p.topic("dlq")]).len(),
        2
    );
    let history = p.history();
    assert_eq!(history[0]["status"], "applied");
    assert_eq!(history[1]["status"], "rolled-back");
    assert!(history[1]["error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
}

#[test]
fn a_saved_plan_is_refused_when_the_world_moved() {
    let (ch, _) = servers();
    let p = Platform::new("saved");
    p.base();
    p.push("v1");
    let plan_file = p.dir.path().join("plan.json");
    let out = p.saved_plan(&plan_file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Someone creates the database by hand in between.
    runtime()
        .block_on(ch.execute(&paver::plan::ClickHouseAction::CreateDatabase { name: p.database() }))
        .unwrap();
    let out = p.apply_saved(&plan_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("changed since"), "{}", text(&out));
}

/// The error policy of `paver run`: a revision whose failure cannot pass by itself is
/// applied once and then held (no new attempt on every poll), `paver status` says why and
/// that it waits; `paver retry <sha>` applies it once more.
#[test]
fn paver_run_holds_a_permanently_failing_revision_until_paver_retry() {
    let (_, _) = servers();
    let p = Platform::new("held");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_pipeline(
        "broken",
        1,
        "broken",
        "SELECT id, at, noSuchFunction(amount) AS x FROM source",
    );
    let bad = p.push("broken");
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            &p.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "1",
            "--ingest",
            "external",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let attempts = |p: &Platform| {
        p.history()
            .iter()
            .filter(|r| r["sha"] == bad.as_str())
            .count()
    };
    let started = Instant::now();
    while attempts(&p) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "never tried");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Several polls later: still one attempt, and the status says it is held.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(attempts(&p), 1, "{:?}", p.history());
    let (code, body) = http(port, "GET", "/status", &[], b"");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["failure"]["kind"], "permanent", "{status}");
    assert!(
        status["failure"]["retry"]
            .as_str()
            .unwrap()
            .contains(&format!("paver retry {bad}")),
        "{status}"
    );
    // `paver retry` against the server: one more attempt.
    let out = Command::new(paver_e2e::bin("paver"))
        .args([
            "retry",
            &bad,
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let started = Instant::now();
    while attempts(&p) < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "never retried");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(attempts(&p), 2, "{:?}", p.history());
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The world moves by a managed table dropped by hand, after a first apply (so that
/// tables exist: their fingerprint once failed and read as empty, the same whatever
/// existed). The saved plan is refused, and a fresh plan recreates the table.
#[test]
fn a_saved_plan_is_refused_when_a_managed_table_was_dropped_since() {
    let (ch, _) = servers();
    let p = Platform::new("stale");
    p.base();
    p.push("v1");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A change to plan: a topic config.
    p.write_topic("events", 2, 3, "86400000");
    p.push("v2");
    let plan_file = p.dir.path().join("plan.json");
    let out = p.saved_plan(&plan_file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    runtime()
        .block_on(ch.execute(&paver::plan::ClickHouseAction::DropTable {
            table: paver::plan::TableName {
                database: p.database(),
                name: "events".into(),
            },
        }))
        .unwrap();
    let out = p.apply_saved(&plan_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("changed since"), "{}", text(&out));
    assert!(!tables(&ch, &p.database()).contains(&"events".to_string()));
    // Planned again, the table comes back; after the apply, nothing is left to do.
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(tables(&ch, &p.database()).contains(&"events".to_string()));
    assert_plan_empty(&p);
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

#[test]
fn paver_run_applies_on_a_verified_webhook_and_rejects_a_forged_one() {
    let (_, kafka) = servers();
    let p = Platform::new("run");
    p.base();
    let first = p.push("v1");
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            &p.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "3600",
        ])
        .env("PAVER_WEBHOOK_SECRET", "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // The first reconcile runs at start.
    let wait = |sha: &str, timeout: &str| {
        p.paver(
            &[
                "wait",
                "--revision",
                sha,
                "--timeout",
                timeout,
                "--server",
                &url,
            ],
            &[],
        )
    };
    let out = wait(&first, "60s");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    p.write_topic("late", 1, 1, "86400000");
    let second = p.push("add late");
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{second}"}}"#).into_bytes();
    let forged = http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", signature(b"wrong", &body)),
        ],
        &body,
    );
    assert_eq!(forged.0, 401, "{forged:?}");
    // Nothing woke the loop (polling is an hour): the commit is not applied.
    let out = wait(&second, "3s");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(topics(&kafka, &[p.topic("late")]).is_empty());

    let signed = http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", signature(b"s3cret", &body)),
        ],
        &body,
    );
    assert_eq!(signed.0, 202, "{signed:?}");
    let out = wait(&second, "60s");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(topics(&kafka, &[p.topic("late")]).len(), 1);

    let (code, status) = http(port, "GET", "/status", &[], b"");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["active"]["sha"], second);
    // A pull request's preview from elsewhere (a CI runner, no state of its own): the
    // running reconciler's inventory says what paver manages.
    let fresh = p.dir.path().join("elsewhere.db");
    let preview = Command::new(bin("paver"))
        .args([
            "plan",
            "--repo",
            &p.remote_url,
            "--state",
            fresh.to_str().unwrap(),
            "--inventory-from",
            &url,
            "--format",
            "markdown",
        ])
        .env("PAVER_CLICKHOUSE_URL", clickhouse_url())
        .env("PAVER_KAFKA_BROKERS", brokers())
        .output()
        .unwrap();
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview));
    assert!(
        text(&preview).contains("### paver plan for") && text(&preview).contains("No changes"),
        "{}",
        text(&preview)
    );
    let remote_status = p.paver(&["status", "--server", &url], &[]);
    let remote_status: serde_json::Value = serde_json::from_slice(&remote_status.stdout).unwrap();
    assert_eq!(remote_status["active"]["sha"], second);
    let remote_history = p.paver(&["history", "--server", &url, "--limit", "5"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&remote_history.stdout)
            .lines()
            .count(),
        2,
        "{}",
        text(&remote_history)
    );
    let (_, metrics) = http(port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("paver_webhooks_rejected_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("paver_active_revision_info{{sha=\"{second}\"}} 1")),
        "{metrics}"
    );

    // SIGTERM: a graceful stop.
    let pid = server.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    loop {
        if let Some(code) = server.try_wait().unwrap() {
            assert!(code.success(), "{code:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "paver run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drift_is_only_reported_when_the_repo_says_so() {
    let (ch, _) = servers();
    let p = Platform::new("report");
    p.base();
    p.write(
        "paver.yaml",
        "defaults:\n  compatibility: FORWARD_TRANSITIVE\nreconcile:\n  drift: report\n",
    );
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    runtime()
        .block_on(ch.run(&format!("DROP TABLE {}.events", p.database())))
        .unwrap();
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("drift from the active revision"),
        "{}",
        text(&out)
    );
    assert!(tables(&ch, &p.database()).is_empty());
}

/// "N ClickHouse queries, M Kafka requests" from paver's output.
fn requests(out: &Output) -> (u64, u64) {
    let t = text(out);
    let line = t
        .lines()
        .find(|l| l.contains("ClickHouse queries"))
        .unwrap_or_else(|| panic!("{t}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_no_op_reconcile_costs_the_same_whatever_the_number_of_resources() {
    servers();
    let small = Platform::new("small");
    small.base();
    small.push("v1");
    assert_eq!(small.apply().status.code(), Some(0));
    let large = Platform::new("large");
    large.base();
    for i in 0..6 {
        large.write_topic(&format!("extra{i}"), 1, 1, "86400000");
        large.write_pipeline(
            &format!("extra{i}"),
            1,
            &format!("extra{i}"),
            "SELECT id, at, amount FROM source",
        );
    }
    large.push("v1");
    let first = large.apply();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let (small_noop, large_noop) = (small.apply(), large.apply());
    assert!(
        text(&large_noop).contains("0 steps"),
        "{}",
        text(&large_noop)
    );
    // Observation only: the same number of round trips for 3 resources as for 21.
    assert_eq!(
        requests(&small_noop),
        requests(&large_noop),
        "{}\n{}",
        text(&small_noop),
        text(&large_noop)
    );
    assert!(
        requests(&large_noop).0 <= 5 && requests(&large_noop).1 <= 2,
        "{:?}",
        requests(&large_noop)
    );
}

#[test]
fn a_group_gets_offsets_before_it_starts_and_they_read_back() {
    let (_, kafka) = servers();
    let p = Platform::new("offsets");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    let group = format!("{}-v2", p.prefix);
    let topic = p.topic("events");
    let rt = runtime();
    let before = rt.block_on(kafka.group_offsets(&group, &topic, 3)).unwrap();
    assert!(before.is_empty(), "{before:?}");
    let wanted = BTreeMap::from([(0, 5i64), (1, 7), (2, 9)]);
    rt.block_on(kafka.set_group_offsets(&group, &topic, &wanted))
        .unwrap();
    let after = rt.block_on(kafka.group_offsets(&group, &topic, 3)).unwrap();
    assert_eq!(after, wanted);
}

#[test]
fn paver_run_watches_a_local_folder() {
    let (_, kafka) = servers();
    let p = Platform::new("watch");
    p.base();
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            p.work.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "3600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = |what: &str, check: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("the first apply", &|| {
        topics(&kafka, &[p.topic("events")]).len() == 1
    });
    // A file written into the folder: applied without a webhook, long before the poll.
    p.write_topic("watched", 1, 1, "86400000");
    until("the watched change", &|| {
        topics(&kafka, &[p.topic("watched")]).len() == 1
    });
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Kafka adds partitions with CreatePartitions; the test broker (tansu) does not have it.
/// Either way nothing is half-applied: on Kafka the partitions grow, on tansu the revision
/// rolls back whole (the new topic of the same revision is removed again).
#[test]
fn a_partition_increase_applies_or_rolls_back_whole() {
    let (_, kafka) = servers();
    let p = Platform::new("partitions");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("events", 2, 6, "604800000");
    // Sorts before `events`: created first, so that the rollback has something to undo.
    p.write_topic("a-sidecar", 1, 1, "86400000");
    p.push("more partitions");
    let plan = text(&p.paver(&["plan", "--repo", &p.remote_url], &[]));
    assert!(
        plan.contains("increase partitions of topic") && plan.contains("(irreversible)"),
        "{plan}"
    );
    let out = p.apply();
    let found = topics(&kafka, &[p.topic("events"), p.topic("a-sidecar")]);
    match out.status.code() {
        Some(0) => {
            assert_eq!(found[&p.topic("events")].partitions, 6);
            assert!(found.contains_key(&p.topic("a-sidecar")));
        }
        _ => {
            let t = text(&out);
            assert!(
                t.contains("rolled back") && t.contains("CreatePartitions"),
                "{t}"
            );
            assert_eq!(found[&p.topic("events")].partitions, 3);
            assert!(!found.contains_key(&p.topic("a-sidecar")), "{found:?}");
        }
    }
}

#[test]
fn a_direct_push_that_edits_a_released_version_is_refused() {
    let (_, kafka) = servers();
    let p = Platform::new("edit");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    // Straight to main, past the PR check: v1 of the topic edited in place.
    p.write_topic("events", 1, 3, "1");
    let edit = p.push("sneaky edit");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("PV601") && text(&out).contains("the active revision"),
        "{}",
        text(&out)
    );
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
    assert_eq!(p.status()["active"]["sha"], good);
    assert_eq!(p.history()[0]["sha"], edit);
    assert_eq!(p.history()[0]["status"], "refused");
}
