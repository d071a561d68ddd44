//! Several `paver run` replicas on one PostgreSQL state store (`PAVER_TEST_POSTGRES_URL`,
//! `scripts/test-servers start --postgres`), with the real ClickHouse and Kafka: they elect
//! a leader through the store, exactly one applies each revision, a standby finishes or
//! undoes what a killed leader started, and a leader paused past its lease cannot write.
//!
//! Each test has a schema of its own in the test database. Waits are on conditions (the
//! lease row, the revision's record, a line of a replica's log), never on fixed sleeps;
//! their time limits only bound a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paver::store::{RevisionStatus, StepState, Store};
use paver_e2e::{bin, brokers, clickhouse_url, free_port, text, Repo};

/// The lease the replicas share (`--lease-seconds`): short, so that takeovers are quick.
const LEASE_SECONDS: &str = "3";

fn postgres() -> String {
    std::env::var("PAVER_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("PAVER_TEST_POSTGRES_URL is not set: scripts/test-servers start --postgres, then eval \"$(scripts/test-servers env)\"")
    })
}

/// A platform repo whose state is a fresh schema of the test PostgreSQL.
struct Platform {
    repo: Repo,
    state: String,
}

impl Platform {
    fn new(test: &str) -> Platform {
        let repo = Repo::new("replicas", test);
        let state = paver::store::postgres_schema(&postgres(), test).unwrap();
        let p = Platform { repo, state };
        p.base();
        p
    }

    fn store(&self) -> Store {
        Store::open(Path::new(&self.state)).unwrap()
    }

    fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.repo.prefix)
    }

    /// Two topics, a cluster, a schema and a pipeline: steps on Kafka and ClickHouse, and a
    /// cut-over that records the live version in the store.
    fn base(&self) {
        let r = &self.repo;
        r.write(
            "paver.yaml",
            "defaults:\n  compatibility: FORWARD_TRANSITIVE\n",
        );
        r.write(
            "clusters/main/v1.yaml",
            "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-e2e\nspec:\n  replication: 2\n  shards: 1\n  memoryGB: 32\n  retentionDays: 30\n",
        );
        self.write_topic("events");
        self.write_topic("dlq");
        r.write(
            "schemas/events/v1.avsc",
            r#"{"type": "record", "name": "Event", "namespace": "dev.paver.e2e", "fields": [
  {"name": "id", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"#,
        );
        let pipeline = self.topic("ingest");
        r.write(
            &format!("pipelines/{pipeline}/v1.yaml"),
            &format!(
                "apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: 1\n  owner: team-e2e\nspec:\n  source:\n    type: kafka\n    topic: {}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {}\n  transform:\n    type: sql\n    query: SELECT id, at FROM source\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {}.events\n    partitionKey: toYYYYMM(at)\n    orderKey: (id, at)\n",
                self.topic("events"),
                self.topic("dlq"),
                r.prefix.replace('-', "_")
            ),
        );
    }

    fn write_topic(&self, name: &str) {
        let topic = self.topic(name);
        self.repo.write(
            &format!("topics/{topic}/v1.yaml"),
            &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {topic}\n  version: 1\n  owner: team-e2e\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"86400000\"\n    cleanup.policy: delete\n"),
        );
    }

    /// `paver <args> --state <the PostgreSQL schema>` against the test servers.
    fn paver(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("paver"));
        cmd.args(args)
            .args(["--state", &self.state])
            .env("PAVER_CLICKHOUSE_URL", clickhouse_url())
            .env("PAVER_KAFKA_BROKERS", brokers())
            .env_remove("PAVER_STATE")
            .env_remove("PAVER_FAULT_PAUSE_AFTER_STEPS")
            .env_remove("PAVER_FAULT_PAUSE_SECONDS");
        cmd
    }

    /// A `paver run` replica, its log in a file of its own.
    fn replica(&self, name: &str, env: &[(&str, &str)]) -> Replica {
        let log = self.repo.dir.path().join(format!("{name}.log"));
        let cache = self.repo.dir.path().join(format!("{name}-cache"));
        let mut cmd = self.paver(&[
            "run",
            "--repo",
            &self.repo.remote_url,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--poll-seconds",
            "1",
            "--lease-seconds",
            LEASE_SECONDS,
            "--ingest",
            "external",
        ]);
        // Each replica its own git mirror, as on machines of their own.
        cmd.env("PAVER_CACHE_DIR", &cache);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The term `replica` holds the lease in, when it does.
    fn term_of(&self, replica: &Replica) -> Option<i64> {
        let lease = self.store().lease("paver").unwrap()?;
        (lease
            .holder
            .ends_with(&format!(" pid {}", replica.child.id()))
            && lease.expires_ms > paver::store::now_ms())
        .then_some(lease.term)
    }

    /// `paver plan` finds nothing to do: the revision is whole in Kafka and ClickHouse.
    fn assert_plan_empty(&self) {
        let out = self
            .paver(&["plan", "--repo", &self.repo.remote_url])
            .output()
            .unwrap();
        assert!(
            text(&out).contains("no changes: the real systems match the revision"),
            "plan after apply is not empty:\n{}",
            text(&out)
        );
    }
}

struct Replica {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.name);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `done` gives a value; fail after `limit` with what the replicas said.
fn wait_for<T>(
    what: &str,
    limit: Duration,
    replicas: &[&Replica],
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        if started.elapsed() > limit {
            let logs: Vec<String> = replicas
                .iter()
                .map(|r| format!("--- {} ---\n{}", r.name, r.log()))
                .collect();
            panic!("{what}: not within {limit:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Generous limits: they only bound a failure (a first reconcile on a busy machine fetches,
/// lints, observes and applies).
const LIMIT: Duration = Duration::from_secs(180);

fn status_of(store: &Store, sha: &str) -> Option<RevisionStatus> {
    store.latest_for(sha).unwrap().map(|r| r.status)
}

#[test]
fn of_two_replicas_one_leads_and_applies_each_revision_once() {
    let p = Platform::new("once");
    let first = p.repo.push("v1");
    let a = p.replica("a", &[]);
    let b = p.replica("b", &[]);
    let store = p.store();
    wait_for("v1 applied", LIMIT, &[&a, &b], || {
        (status_of(&store, &first) == Some(RevisionStatus::Applied)).then_some(())
    });
    p.write_topic("late");
    let second = p.repo.push("v2");
    wait_for("v2 applied", LIMIT, &[&a, &b], || {
        (status_of(&store, &second) == Some(RevisionStatus::Applied)).then_some(())
    });
    let (leader, follower) = match (p.term_of(&a), p.term_of(&b)) {
        (Some(term), None) => ((&a, term), &b),
        (None, Some(term)) => ((&b, term), &a),
        other => panic!(
            "not exactly one leader: {other:?}\n{}\n{}",
            a.log(),
            b.log()
        ),
    };
    // One attempt at each revision, applied, every write in the leader's term.
    for sha in [&first, &second] {
        let attempts = store.attempts_of(sha).unwrap();
        assert_eq!(
            attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
            [RevisionStatus::Applied],
            "{sha}"
        );
        let id = attempts[0].id;
        assert!(store
            .journal_of(id)
            .unwrap()
            .iter()
            .all(|e| e.term == Some(leader.1) && e.state == StepState::Done));
    }
    assert!(store
        .terms(10)
        .unwrap()
        .iter()
        .all(|(_, term)| *term == Some(leader.1)));
    assert!(
        leader.0.log().contains("this replica leads"),
        "{}",
        leader.0.log()
    );
    assert!(
        !follower.log().contains("this replica leads"),
        "{}",
        follower.log()
    );
    assert!(
        !follower.log().contains(" steps, "),
        "the follower applied:\n{}",
        follower.log()
    );
    p.assert_plan_empty();
}

#[test]
fn a_standby_recovers_and_finishes_the_revision_of_a_leader_killed_mid_apply() {
    let p = Platform::new("kill");
    let sha = p.repo.push("v1");
    // A leads (it starts alone) and stops for a minute after its first step.
    let a = p.replica("a", &[("PAVER_FAULT_PAUSE_AFTER_STEPS", "1")]);
    let term_a = wait_for("a leads", LIMIT, &[&a], || p.term_of(&a));
    let b = p.replica("b", &[]);
    let store = p.store();
    wait_for("a paused after its first step", LIMIT, &[&a, &b], || {
        a.log()
            .contains("PAVER_FAULT_PAUSE_AFTER_STEPS=1: pausing")
            .then_some(())
    });
    let interrupted = store
        .interrupted()
        .unwrap()
        .expect("an interrupted revision");
    assert_eq!(interrupted.sha, sha);
    let journal = store.journal_of(interrupted.id).unwrap();
    assert_eq!(
        journal
            .iter()
            .map(|e| (e.state, e.term))
            .collect::<Vec<_>>(),
        [(StepState::Done, Some(term_a))]
    );
    // SIGKILL: no release of the lease, no clean-up.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    let term_b = wait_for("b takes over", LIMIT, &[&a, &b], || p.term_of(&b));
    let took_over = killed.elapsed();
    wait_for("the revision applied by b", LIMIT, &[&a, &b], || {
        (status_of(&store, &sha) == Some(RevisionStatus::Applied)).then_some(())
    });
    let applied = killed.elapsed();
    eprintln!(
        "measured: lease {LEASE_SECONDS} s; b led {:.2} s after a was killed, and had recovered and applied the revision {:.2} s after",
        took_over.as_secs_f64(),
        applied.as_secs_f64()
    );
    assert!(term_b > term_a);
    // B undid A's interrupted attempt (under its own term), then applied the revision.
    let attempts = store.attempts_of(&sha).unwrap();
    assert_eq!(
        attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [RevisionStatus::RolledBack, RevisionStatus::Applied],
        "{}",
        b.log()
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted")),
        "{:?}",
        attempts[0]
    );
    assert_eq!(
        store
            .journal_of(attempts[0].id)
            .unwrap()
            .iter()
            .map(|e| (e.state, e.term))
            .collect::<Vec<_>>(),
        [(StepState::Compensated, Some(term_b))]
    );
    assert!(
        b.log().contains("undid the interrupted revision"),
        "{}",
        b.log()
    );
    assert!(store
        .terms(10)
        .unwrap()
        .iter()
        .all(|(_, term)| *term == Some(term_b)));
    p.assert_plan_empty();
}

#[test]
fn a_leader_paused_past_its_lease_cannot_write_once_it_resumes() {
    let p = Platform::new("pause");
    let sha = p.repo.push("v1");
    // A pauses for a few seconds after its first step; it is stopped (SIGSTOP) meanwhile,
    // so that it wakes up long after its lease ended, in the middle of the revision.
    let a = p.replica(
        "a",
        &[
            ("PAVER_FAULT_PAUSE_AFTER_STEPS", "1"),
            ("PAVER_FAULT_PAUSE_SECONDS", "2"),
        ],
    );
    let term_a = wait_for("a leads", LIMIT, &[&a], || p.term_of(&a));
    let b = p.replica("b", &[]);
    let store = p.store();
    wait_for("a paused after its first step", LIMIT, &[&a, &b], || {
        a.log()
            .contains("PAVER_FAULT_PAUSE_AFTER_STEPS=1: pausing")
            .then_some(())
    });
    a.signal("-STOP");
    let term_b = wait_for("b takes over", LIMIT, &[&a, &b], || p.term_of(&b));
    wait_for("the revision applied by b", LIMIT, &[&a, &b], || {
        (status_of(&store, &sha) == Some(RevisionStatus::Applied)).then_some(())
    });
    let before = store.history(10).unwrap();
    // A resumes in the middle of its revision, with its term long over.
    a.signal("-CONT");
    let said = wait_for("a stands down", LIMIT, &[&a, &b], || {
        let log = a.log();
        (log.contains("this replica follows")
            && (log.contains("the write was refused") || log.contains("lost its leadership")))
        .then_some(log)
    });
    eprintln!(
        "a, resumed in term {term_a} after b took term {term_b}, said: {}",
        said.lines()
            .filter(|l| l.contains("refused")
                || l.contains("lost its leadership")
                || l.contains("follows"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    // Nothing A wrote survives without B's term over it, and A wrote nothing after B took
    // over: every revision and journal entry carries B's term.
    assert!(term_b > term_a);
    assert_eq!(store.history(10).unwrap(), before, "{said}");
    for (id, term) in store.terms(10).unwrap() {
        assert_eq!(term, Some(term_b), "revision {id}\n{said}");
        for entry in store.journal_of(id).unwrap() {
            assert_eq!(
                entry.term,
                Some(term_b),
                "revision {id} step {}\n{said}",
                entry.seq
            );
        }
    }
    assert_eq!(p.term_of(&a), None);
    assert_eq!(p.term_of(&b), Some(term_b));
    p.assert_plan_empty();
}
