//! Notifications end to end: `paver run` against the real servers and a bare git remote,
//! with receivers the test runs itself (`paver_e2e::receiver`): revision outcomes (applied,
//! refused, rolled back) to a signed webhook and as GitHub commit statuses (a stand-in of
//! `POST /repos/{owner}/{repo}/statuses/{sha}`); receivers down, failing and slow; a restart
//! with notifications pending; pipeline alerts firing and resolved when the pipeline's
//! ClickHouse (a proxy in front of the shared one) goes away and comes back; a backlog.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use paver::ingest::codec;
use paver::providers::clickhouse::ClickHouse;
use paver_e2e::receiver::{Proxy, Receiver, Recorded};
use paver_e2e::{brokers, clickhouse_url, free_port, text};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const WAIT: Duration = Duration::from_secs(120);
const SECRET: &str = "a webhook secret";
const TOKEN: &str = "ghs_test_token";

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
fn event(id: &str) -> Vec<u8> {
    let fp = codec::Schema::parse(&serde_json::from_str(V1).unwrap())
        .unwrap()
        .fingerprint;
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&fp.to_le_bytes());
    avro_string(&mut out, id);
    avro_string(&mut out, "click");
    zigzag(&mut out, 1_767_225_600_000);
    out.extend_from_slice(&12.5f64.to_le_bytes());
    out
}

/// Kill on drop: no `paver run` outlives its test.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Platform(paver_e2e::Repo);

impl std::ops::Deref for Platform {
    type Target = paver_e2e::Repo;
    fn deref(&self) -> &paver_e2e::Repo {
        &self.0
    }
}

impl Platform {
    fn new(test: &str) -> Platform {
        Platform(paver_e2e::Repo::new("alr", test))
    }
    fn topic(&self) -> String {
        format!("{}-events", self.prefix)
    }
    fn pipeline(&self) -> String {
        format!("{}-ingest", self.prefix)
    }
    fn table(&self) -> String {
        format!("{}.events", self.prefix.replace('-', "_"))
    }

    /// A cluster, the topics, the schema, and the pipeline with `alerting` (YAML lines).
    fn base(&self, notifications: &str, alerting: &str) {
        self.write("paver.yaml", &format!("notifications:\n{notifications}"));
        self.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 1\n  memoryGB: 32\n  retentionDays: 3650\n",
        );
        for name in [self.topic(), format!("{}-dlq", self.prefix)] {
            self.write(
                &format!("topics/{name}/v1.yaml"),
                &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {name}\n  version: 1\n  owner: team-e2e\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n"),
            );
        }
        self.write("schemas/events/v1.avsc", V1);
        self.write_pipeline(1, "SELECT id, kind, at, amount FROM source", alerting);
    }

    fn write_pipeline(&self, version: u32, query: &str, alerting: &str) {
        let pipeline = self.pipeline();
        self.write(
            &format!("pipelines/{pipeline}/v{version}.yaml"),
            &format!(
                "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: {version}\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {}-dlq\n  transform:\n    type: sql\n    query: {query}\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {}\n    orderKey: (id, at)\n{alerting}",
                self.topic(),
                self.prefix,
                self.table()
            ),
        );
    }

    /// `paver run` on the remote, polling every second; stderr into `<log>`.
    fn serve(&self, log: &str, env: &[(&str, &str)]) -> (Guarded, String) {
        let port = free_port();
        let mut cmd = self.command(&[
            "run",
            "--repo",
            &self.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "1",
        ]);
        cmd.env("PAVER_TEST_HOOK_SECRET", SECRET)
            .env("PAVER_TEST_GH_TOKEN", TOKEN);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap();
        (Guarded(child), format!("http://127.0.0.1:{port}"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// `paver status` from the state store.
    fn status(&self) -> serde_json::Value {
        let out = self.command(&["status"]).output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("paver status: {e}: {}", text(&out)))
    }

    fn wait_applied(&self, url: &str, sha: &str) {
        let out = self
            .command(&[
                "wait",
                "--revision",
                sha,
                "--timeout",
                "120s",
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
            self.log("run.log")
        );
    }
}

fn stop(mut server: Guarded) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let _ = server.0.wait();
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The revision webhooks received for `sha` with `status`.
fn outcomes<'a>(seen: &'a [Recorded], sha: &str, status: &str) -> Vec<&'a Recorded> {
    seen.iter()
        .filter(|r| r.path == "/hooks")
        .filter(|r| r.json()["revision"] == sha && r.json()["status"] == status)
        .collect()
}

/// The commit statuses received for `sha`, in order.
fn statuses(seen: &[Recorded], sha: &str) -> Vec<String> {
    seen.iter()
        .filter(|r| r.path == format!("/repos/acme/platform/statuses/{sha}"))
        .map(|r| r.json()["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn notifications_of(receiver: &Receiver) -> String {
    format!(
        "  webhooks:\n    - {{url: \"{}\", secretEnv: PAVER_TEST_HOOK_SECRET}}\n  github: {{tokenEnv: PAVER_TEST_GH_TOKEN, repository: acme/platform, apiUrl: \"{}\"}}\n  timeoutSeconds: 2\n",
        receiver.url("/hooks"),
        receiver.url("")
    )
}

#[test]
fn revision_outcomes_reach_a_signed_webhook_and_github_statuses_once_each() {
    let receiver = Receiver::start();
    let p = Platform::new("outcomes");
    p.base(&notifications_of(&receiver), "");
    let applied = p.push("v1");
    let (server, url) = p.serve("run.log", &[]);
    p.wait_applied(&url, &applied);
    let seen = receiver.wait_for("applied webhook and success status", WAIT, |seen| {
        outcomes(seen, &applied, "applied").len() == 1 && statuses(seen, &applied).len() == 2
    });
    // Signed like GitHub's webhooks, over the exact body.
    let hook = outcomes(&seen, &applied, "applied")[0];
    assert_eq!(
        hook.header("x-hub-signature-256"),
        Some(hmac_hex(SECRET.as_bytes(), hook.body.as_bytes()).as_str())
    );
    assert_ne!(
        hook.header("x-hub-signature-256"),
        Some(hmac_hex(b"another secret", hook.body.as_bytes()).as_str())
    );
    let body = hook.json();
    assert_eq!(body["error"], serde_json::Value::Null);
    assert!(body["plan"]["steps"].as_u64().unwrap() > 0, "{body}");
    assert!(
        body["plan"]["summary"]
            .as_str()
            .unwrap()
            .contains("paver plan for"),
        "{body}"
    );
    // GitHub: pending when the apply started, success at the end; GitHub's payload.
    assert_eq!(statuses(&seen, &applied), ["pending", "success"]);
    let status = seen.iter().rfind(|r| r.path.ends_with(&applied)).unwrap();
    assert_eq!(status.method, "POST");
    assert_eq!(
        status.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(status.header("accept"), Some("application/vnd.github+json"));
    let status = status.json();
    assert_eq!(status["context"], "paver/deploy");
    assert_eq!(status["target_url"], format!("{url}/status"));
    assert!(status["description"]
        .as_str()
        .unwrap()
        .starts_with("applied"));

    // A transform ClickHouse rejects: the revision rolls back.
    p.write_pipeline(
        2,
        "SELECT id, kind, at, noSuchFunction(amount) AS amount FROM source",
        "",
    );
    let rolled_back = p.push("broken v2");
    let seen = receiver.wait_for("rolled-back webhook", WAIT, |seen| {
        outcomes(seen, &rolled_back, "rolled-back").len() == 1
            && statuses(seen, &rolled_back).len() == 2
    });
    assert!(
        outcomes(&seen, &rolled_back, "rolled-back")[0].json()["error"]
            .as_str()
            .unwrap()
            .contains("noSuchFunction"),
        "{seen:#?}"
    );
    assert_eq!(statuses(&seen, &rolled_back), ["pending", "failure"]);

    // A revision that does not lint: refused (no apply started, so no pending).
    p.remove(&format!("pipelines/{}/v2.yaml", p.pipeline()));
    p.write_pipeline(2, "SELECT idd, at FROM source", "");
    let refused = p.push("typo");
    let seen = receiver.wait_for("refused webhook", WAIT, |seen| {
        outcomes(seen, &refused, "refused").len() == 1 && statuses(seen, &refused).len() == 1
    });
    assert_eq!(statuses(&seen, &refused), ["failure"]);

    // The loop keeps polling the refused revision: nothing is sent again.
    let before = receiver.requests().len();
    let reconciles = || {
        let metrics = paver_e2e::receiver::get(&format!("{url}/metrics"));
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("paver_reconciles_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let at = reconciles();
    while reconciles() < at + 3 {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Anything queued by those polls would have gone out by now (the outbox says none waits).
    assert_eq!(p.status()["notifications"]["waiting"], 0);
    assert_eq!(
        receiver.requests().len(),
        before,
        "{:#?}",
        receiver.requests()
    );
    stop(server);
}

#[test]
fn receivers_down_failing_or_slow_hold_back_nothing_and_each_gets_its_notification() {
    let healthy = Receiver::start();
    let failing = Receiver::start();
    failing.answer(500);
    let slow = Receiver::start();
    slow.hold();
    let down_port = free_port();
    let p = Platform::new("receivers");
    let hooks: String = [
        healthy.url("/hooks"),
        failing.url("/hooks"),
        slow.url("/hooks"),
        format!("http://127.0.0.1:{down_port}/hooks"),
    ]
    .iter()
    .map(|u| format!("    - {{url: \"{u}\", secretEnv: PAVER_TEST_HOOK_SECRET}}\n"))
    .collect();
    p.base(&format!("  webhooks:\n{hooks}  timeoutSeconds: 2\n"), "");
    let sha = p.push("v1");
    let (server, url) = p.serve("run.log", &[]);
    // The revision applies, and the healthy receiver gets it, while the others fail, hang
    // or are not there.
    p.wait_applied(&url, &sha);
    healthy.wait_for("the healthy receiver's notification", WAIT, |seen| {
        outcomes(seen, &sha, "applied").len() == 1
    });
    let failed = failing.wait_for("two failed attempts", WAIT, |seen| seen.len() >= 2);
    assert!(failed.iter().all(|r| r.json()["revision"] == sha));
    assert!(!slow.requests().is_empty(), "the slow receiver was asked");
    // Each comes back: every receiver ends up with the notification.
    failing.answer(200);
    slow.release();
    let down = Receiver::on(down_port);
    for receiver in [&failing, &slow, &down] {
        receiver.wait_for("the notification, once back", WAIT, |seen| {
            !outcomes(seen, &sha, "applied").is_empty()
        });
    }
    let status = p.status();
    let waiting = |s: &serde_json::Value| s["notifications"]["waiting"].as_i64();
    let mut status = status;
    while waiting(&status) != Some(0) {
        std::thread::sleep(Duration::from_millis(200));
        status = p.status();
    }
    // Exactly once where an answer came in time; a retry of a timed-out one carries the
    // same delivery id.
    assert_eq!(outcomes(&down.requests(), &sha, "applied").len(), 1);
    assert_eq!(outcomes(&healthy.requests(), &sha, "applied").len(), 1);
    let ids: std::collections::BTreeSet<String> = slow
        .requests()
        .iter()
        .map(|r| r.header("x-paver-delivery").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{:#?}", slow.requests());
    assert!(
        p.log("run.log").contains("retrying in"),
        "{}",
        p.log("run.log")
    );
    stop(server);
}

#[test]
fn notifications_pending_at_a_restart_are_delivered_once() {
    let port = free_port();
    let p = Platform::new("restart");
    p.base(
        &format!(
            "  webhooks:\n    - {{url: \"http://127.0.0.1:{port}/hooks\"}}\n  timeoutSeconds: 2\n"
        ),
        "",
    );
    let sha = p.push("v1");
    let (server, url) = p.serve("run.log", &[]);
    p.wait_applied(&url, &sha);
    // Its receiver is down: the notification waits in the state store.
    while !p.log("run.log").contains("retrying in") {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(server);
    assert_eq!(p.status()["notifications"]["waiting"], 1, "{}", p.status());
    // Back, and paver restarted: delivered, once.
    let receiver = Receiver::on(port);
    let (server, _) = p.serve("run2.log", &[]);
    receiver.wait_for("the pending notification", WAIT, |seen| {
        outcomes(seen, &sha, "applied").len() == 1
    });
    let mut status = p.status();
    while status["notifications"]["waiting"] != 0 {
        std::thread::sleep(Duration::from_millis(200));
        status = p.status();
    }
    stop(server);
    // A third start sends nothing again.
    let (server, url) = p.serve("run3.log", &[]);
    let out = p
        .command(&[
            "wait",
            "--revision",
            &sha,
            "--timeout",
            "60s",
            "--server",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    stop(server);
    assert_eq!(receiver.requests().len(), 1, "{:#?}", receiver.requests());
    assert_eq!(p.status()["notifications"]["delivered"], 1);
}

/// Produce `n` events, each in a request (and so a batch) of its own.
fn produce(topic: &str, prefix: &str, n: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "0")
        .create()
        .unwrap();
    runtime().block_on(async {
        for i in 0..n {
            let id = format!("{prefix}-{i:04}");
            let payload = event(&id);
            let record = FutureRecord::to(topic).key(&id).payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
}

fn count(table: &str) -> usize {
    let rt = runtime();
    let ch = rt
        .block_on(ClickHouse::connect(&clickhouse_url(), None, None))
        .unwrap();
    rt.block_on(ch.rows(&format!("SELECT count() FROM {table}")))
        .map(|rows| rows[0][0].parse().unwrap())
        .unwrap_or(0)
}

fn wait_for_rows(table: &str, want: usize) {
    let started = std::time::Instant::now();
    while count(table) < want {
        assert!(started.elapsed() < WAIT, "{table}: fewer than {want} rows");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The alert notifications of a receiver: (alert, status).
fn transitions(seen: &[Recorded], slack: bool) -> Vec<(String, String)> {
    seen.iter()
        .map(|r| {
            let body = r.json();
            if slack {
                let text = body["text"].as_str().unwrap_or_default().to_string();
                let status = if text.contains("*FIRING*") {
                    "firing"
                } else {
                    "resolved"
                };
                let alert = if text.contains("onBacklog") {
                    "onBacklog"
                } else {
                    "onFailure"
                };
                (alert.to_string(), status.to_string())
            } else {
                (
                    body["alert"].as_str().unwrap_or("?").to_string(),
                    body["status"].as_str().unwrap_or("?").to_string(),
                )
            }
        })
        .collect()
}

#[test]
fn a_pipeline_whose_clickhouse_goes_away_fires_once_on_slack_and_resolves_once() {
    let slack = Receiver::start();
    let proxy = Proxy::start(clickhouse_url().trim_start_matches("http://"));
    let p = Platform::new("failure");
    p.base(
        "  slack:\n    data-alerts: {webhookUrlEnv: PAVER_TEST_SLACK_URL}\n  alerts: {failureForSeconds: 2}\n",
        "  alerting:\n    onFailure: \"slack://#data-alerts\"\n",
    );
    let sha = p.push("v1");
    let slack_url = slack.url("/services/T000/B000/XXXX");
    let (server, url) = p.serve(
        "run.log",
        &[
            ("PAVER_CLICKHOUSE_URL", &proxy.url()),
            ("PAVER_TEST_SLACK_URL", &slack_url),
        ],
    );
    p.wait_applied(&url, &sha);
    produce(&p.topic(), "a", 5);
    wait_for_rows(&p.table(), 5);
    assert!(slack.requests().is_empty(), "{:#?}", slack.requests());

    // ClickHouse unreachable while records arrive: the inserts fail, the alert fires.
    proxy.close();
    produce(&p.topic(), "b", 5);
    let seen = slack.wait_for("the firing alert", WAIT, |seen| !seen.is_empty());
    assert_eq!(
        transitions(&seen, true),
        [("onFailure".into(), "firing".into())]
    );
    let text = seen[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains(&p.pipeline()) && text.contains("team-e2e"),
        "{text}"
    );
    assert!(text.contains(&format!("{url}/status")), "{text}");
    let status = p.status();
    assert_eq!(status["alerts"][0]["pipeline"], p.pipeline(), "{status}");
    assert_eq!(status["alerts"][0]["alert"], "onFailure");
    let metrics = paver_e2e::receiver::get(&format!("{url}/metrics"));
    assert!(
        metrics.contains(&format!(
            "paver_alert_firing{{pipeline=\"{}\",alert=\"onFailure\",owner=\"team-e2e\"}} 1",
            p.pipeline()
        )),
        "{metrics}"
    );

    // Back: the rows arrive, the alert resolves, once.
    proxy.reopen();
    wait_for_rows(&p.table(), 10);
    let seen = slack.wait_for("the resolved alert", WAIT, |seen| seen.len() >= 2);
    assert_eq!(
        transitions(&seen, true),
        [
            ("onFailure".into(), "firing".into()),
            ("onFailure".into(), "resolved".into())
        ]
    );
    assert!(p.status()["alerts"].as_array().unwrap().is_empty());
    // Nothing else waits to be sent: one of each.
    let mut status = p.status();
    while status["notifications"]["waiting"] != 0 {
        std::thread::sleep(Duration::from_millis(200));
        status = p.status();
    }
    assert_eq!(slack.requests().len(), 2, "{:#?}", slack.requests());
    assert!(
        !p.log("run.log").contains("XXXX"),
        "the Slack URL is a secret"
    );
    stop(server);
}

#[test]
fn a_backlog_fires_while_records_wait_and_resolves_once_they_are_ingested() {
    let receiver = Receiver::start();
    let proxy = Proxy::start(clickhouse_url().trim_start_matches("http://"));
    let p = Platform::new("backlog");
    p.base(
        "  alerts: {failureForSeconds: 3600, backlogForSeconds: 2}\n",
        &format!(
            "  alerting:\n    onFailure: \"{}\"\n    onBacklog: 20\n",
            receiver.url("/alerts")
        ),
    );
    let sha = p.push("v1");
    let (server, url) = p.serve("run.log", &[("PAVER_CLICKHOUSE_URL", &proxy.url())]);
    p.wait_applied(&url, &sha);
    produce(&p.topic(), "a", 5);
    wait_for_rows(&p.table(), 5);
    // Records wait: ClickHouse is unreachable while 50 arrive (one batch each: the test
    // broker's high watermark counts batches, so it is right only for one-record batches).
    proxy.close();
    produce(&p.topic(), "b", 50);
    let seen = receiver.wait_for("the backlog alert", WAIT, |seen| !seen.is_empty());
    assert_eq!(
        transitions(&seen, false),
        [("onBacklog".into(), "firing".into())]
    );
    let body = seen[0].json();
    assert_eq!(body["pipeline"], p.pipeline());
    assert_eq!(body["owner"], "team-e2e");
    assert_eq!(body["version"], 1);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("above onBacklog 20"),
        "{body}"
    );
    assert!(body["startsAt"].as_str().unwrap().ends_with('Z'), "{body}");
    proxy.reopen();
    wait_for_rows(&p.table(), 55);
    let seen = receiver.wait_for("the resolved backlog", WAIT, |seen| seen.len() >= 2);
    assert_eq!(
        transitions(&seen, false),
        [
            ("onBacklog".into(), "firing".into()),
            ("onBacklog".into(), "resolved".into())
        ]
    );
    assert_eq!(seen[1].json()["startsAt"], body["startsAt"]);
    stop(server);
}
