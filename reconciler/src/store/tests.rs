//! The store's tests, each run against every backend: SQLite in a temporary folder, and
//! PostgreSQL when `PAVER_TEST_POSTGRES_URL` is set (`scripts/test` sets it), in a schema
//! of the test's own.

use std::path::PathBuf;
use std::time::Duration;

use super::postgres::with_query;
use super::*;
use crate::error::ErrorKind;
use crate::plan::{ClickHouseAction, ResourceId, Step};

/// A place for one test's store; the folder (SQLite) lives as long as it does.
pub(crate) struct TestState {
    pub state: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// One store per backend for the test `name`.
pub(crate) fn backends(name: &str) -> Vec<TestState> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut out = vec![TestState {
        state: dir.path().join("state/paver.db"),
        _dir: Some(dir),
    }];
    if let Some(base) = std::env::var("PAVER_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        // Over TLS, verified, when the test server has a certificate of the tests' CA.
        let base = match std::env::var("PAVER_TEST_POSTGRES_CA") {
            Ok(ca) if !ca.is_empty() => {
                with_query(&base, &format!("sslmode=require&sslrootcert={ca}"))
            }
            _ => base,
        };
        let url = postgres_schema(&base, name).expect("a schema in the test PostgreSQL");
        out.push(TestState {
            state: PathBuf::from(url),
            _dir: None,
        });
    }
    out
}

/// Whether the store's connection is TLS, as the server sees it.
fn over_tls(store: &Store) -> String {
    let rows = store
        .read(
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            params![],
        )
        .unwrap();
    rows[0].text(0).unwrap()
}

#[test]
fn postgres_over_tls_is_verified_and_plain_only_when_asked() {
    let (Ok(base), Ok(ca)) = (
        std::env::var("PAVER_TEST_POSTGRES_URL"),
        std::env::var("PAVER_TEST_POSTGRES_CA"),
    ) else {
        eprintln!(
            "PAVER_TEST_POSTGRES_URL and _CA are not set: scripts/test-servers start --postgres"
        );
        return;
    };
    // The test server's CA: TLS, and the server is the one the certificate names.
    let verified = postgres_schema(
        &with_query(&base, &format!("sslmode=verify-full&sslrootcert={ca}")),
        "tls",
    )
    .unwrap();
    assert_eq!(
        over_tls(&Store::open(std::path::Path::new(&verified)).unwrap()),
        "true"
    );
    // The system's CAs do not know the test CA: refused, and the error says why.
    let unknown = with_query(&base, "sslmode=require");
    let error = match Store::open(std::path::Path::new(&unknown)) {
        Ok(_) => panic!("a server of an unknown CA was trusted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("certificate problem: unknown CA"), "{error}");
    // A CA file that cannot be read: named.
    let missing = with_query(&base, "sslmode=require&sslrootcert=/nonexistent/ca.pem");
    let error = match Store::open(std::path::Path::new(&missing)) {
        Ok(_) => panic!("a CA file that does not exist was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    // Plain when asked (and by default, as before).
    let plain = postgres_schema(&with_query(&base, "sslmode=disable"), "plain").unwrap();
    assert_eq!(
        over_tls(&Store::open(std::path::Path::new(&plain)).unwrap()),
        "false"
    );
}

fn step(name: &str) -> Step {
    Step::new(
        ResourceId::database(name),
        ClickHouseAction::CreateDatabase {
            name: name.to_string(),
        },
        Some(
            ClickHouseAction::DropDatabase {
                name: name.to_string(),
            }
            .into(),
        ),
    )
}

#[test]
fn workers_report_their_version_and_are_forgotten_on_a_clean_stop() {
    for t in backends("workers") {
        let store = Store::open(&t.state).unwrap();
        store.worker_report("p", "host pid 1", Some(1)).unwrap();
        store.worker_report("p", "host pid 2", None).unwrap();
        store.worker_report("q", "host pid 1", Some(7)).unwrap();
        store.worker_report("p", "host pid 1", Some(2)).unwrap();
        let workers = store.workers_of("p").unwrap();
        assert_eq!(
            workers
                .iter()
                .map(|w| (w.worker.as_str(), w.version))
                .collect::<Vec<_>>(),
            [("host pid 1", Some(2)), ("host pid 2", None)],
            "{}",
            store.location()
        );
        assert!(workers.iter().all(|w| w.heartbeat_ms > 0));
        // The partitions it holds, as its heartbeat says them.
        assert_eq!(workers[0].partitions, None);
        store
            .worker_partitions("p", "host pid 1", Some(&[0, 2]))
            .unwrap();
        store
            .worker_partitions("p", "host pid 2", Some(&[]))
            .unwrap();
        let held: Vec<Option<Vec<i32>>> = store
            .workers_of("p")
            .unwrap()
            .into_iter()
            .map(|w| w.partitions)
            .collect();
        assert_eq!(
            held,
            [Some(vec![0, 2]), Some(vec![])],
            "{}",
            store.location()
        );
        store.forget_worker("p", "host pid 1").unwrap();
        assert_eq!(store.workers_of("p").unwrap().len(), 1);
        assert_eq!(store.workers_of("q").unwrap()[0].version, Some(7));
        // Every pipeline's at once: the same records.
        let all = store.workers().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["p", "q"]);
        for (pipeline, workers) in &all {
            assert_eq!(workers, &store.workers_of(pipeline).unwrap());
        }
    }
}

#[test]
fn revisions_journal_and_inventory_survive_reopening() {
    for t in backends("reopen") {
        let path = &t.state;
        {
            let store = Store::open(path).unwrap();
            let id = store.begin("abc", 2, "the plan").unwrap();
            store
                .journal(id, 0, &step("a"), StepState::Started, None)
                .unwrap();
            store
                .journal(id, 0, &step("a"), StepState::Done, None)
                .unwrap();
            store
                .journal(id, 1, &step("b"), StepState::Started, None)
                .unwrap();
            store.manage("database:a", "h1", "abc").unwrap();
        }
        // A new process: the interrupted revision and its journal are there.
        let store = Store::open(path).unwrap();
        let interrupted = store.interrupted().unwrap().unwrap();
        assert_eq!(
            (interrupted.sha.as_str(), interrupted.status),
            ("abc", RevisionStatus::Applying)
        );
        assert_eq!(interrupted.plan.as_deref(), Some("the plan"));
        let journal = store.journal_of(interrupted.id).unwrap();
        assert_eq!(
            journal.iter().map(|e| e.state).collect::<Vec<_>>(),
            [StepState::Done, StepState::Started]
        );
        assert_eq!(journal[1].step, step("b"));
        store
            .finish(
                interrupted.id,
                RevisionStatus::RolledBack,
                Some("interrupted"),
                Some(ErrorKind::Transient),
            )
            .unwrap();
        let attempts = store.attempts_of("abc").unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].error_kind, Some(ErrorKind::Transient));
        assert!(attempts[0]
            .finished_at
            .as_deref()
            .is_some_and(|at| at.ends_with('Z')));
        // A retry request is taken once.
        store.request_retry("abc").unwrap();
        store.request_retry("abc").unwrap();
        assert!(store.take_retry("abc").unwrap());
        assert!(!store.take_retry("abc").unwrap());
        assert!(store.interrupted().unwrap().is_none());
        assert!(store.active().unwrap().is_none());
        let id = store.begin("def", 0, "").unwrap();
        store
            .finish(id, RevisionStatus::Applied, None, None)
            .unwrap();
        assert_eq!(store.active().unwrap().unwrap().sha, "def");
        assert_eq!(store.history(10).unwrap().len(), 2);
        assert_eq!(store.latest_for("abc").unwrap().unwrap().id, interrupted.id);
        let refused = store.refuse("ghi", "2 lint errors").unwrap();
        assert_eq!(
            store.latest_for("ghi").unwrap().map(|r| (r.id, r.status)),
            Some((refused, RevisionStatus::Refused))
        );
        assert_eq!(store.inventory().unwrap()[0].resource, "database:a");
        store.forget("database:a").unwrap();
        assert!(store.inventory().unwrap().is_empty());
    }
}

#[test]
fn worker_reports_read_back_whole() {
    for t in backends("reports") {
        let store = Store::open(&t.state).unwrap();
        let status = PipelineStatus {
            name: "orders".into(),
            version: 3,
            worker: "embedded".into(),
            consumed: 10,
            inserted: 9,
            dead_lettered: 1,
            lag: Some(4),
            rows_per_sec: 2.5,
            last_error: Some("refused".into()),
            updated_at: String::new(),
        };
        store.report(&status).unwrap();
        store
            .report(&PipelineStatus {
                lag: None,
                last_error: None,
                ..status.clone()
            })
            .unwrap();
        let read = store.pipeline_status().unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(
            PipelineStatus {
                updated_at: String::new(),
                ..read[0].clone()
            },
            PipelineStatus {
                lag: None,
                last_error: None,
                ..status
            },
            "{}",
            store.location()
        );
    }
}

#[test]
fn a_fenced_write_is_refused_once_another_replica_took_the_lease() {
    for t in backends("fence") {
        let location = Location::of(&t.state);
        let a = Store::at(&location).unwrap();
        let b = Store::at_own_connection(&location).unwrap();
        let lease = Duration::from_secs(60);
        let term_a = a.acquire_lease("paver", "a", lease).unwrap().unwrap();
        assert_eq!(b.acquire_lease("paver", "b", lease).unwrap(), None);
        // The leader renews in the same term.
        assert_eq!(a.acquire_lease("paver", "a", lease).unwrap(), Some(term_a));
        let fence = |term| {
            Some(Fence {
                lease: "paver".into(),
                term,
            })
        };
        let a = a.fenced(fence(term_a));
        let id = a.begin("abc", 2, "").unwrap();
        a.journal(id, 0, &step("a"), StepState::Started, None)
            .unwrap();
        // A's lease lapses (a zero-length renewal), B takes over.
        Store::at(&location)
            .unwrap()
            .acquire_lease("paver", "a", Duration::ZERO)
            .unwrap();
        let term_b = b.acquire_lease("paver", "b", lease).unwrap().unwrap();
        assert_eq!(term_b, term_a + 1);
        // Every kind of write of the old leader is refused, and changes nothing.
        let refused = [
            a.journal(id, 0, &step("a"), StepState::Done, None),
            a.journal(id, 1, &step("b"), StepState::Started, None),
            a.finish(id, RevisionStatus::Applied, None, None),
            a.manage("database:a", "h", "abc"),
            a.begin("def", 1, "").map(|_| ()),
        ];
        for result in refused {
            match result {
                Err(StoreError::Deposed { term, current, .. }) => {
                    assert_eq!((term, current), (term_a, term_b))
                }
                other => panic!("{}: a deposed leader's write: {other:?}", location),
            }
        }
        let journal = a.journal_of(id).unwrap();
        assert_eq!(
            journal
                .iter()
                .map(|e| (e.seq, e.state, e.term))
                .collect::<Vec<_>>(),
            [(0, StepState::Started, Some(term_a))]
        );
        assert!(a.inventory().unwrap().is_empty());
        assert_eq!(a.history(10).unwrap().len(), 1);
        // The new leader recovers under its own term.
        let b = b.fenced(fence(term_b));
        b.journal(id, 0, &step("a"), StepState::Compensated, None)
            .unwrap();
        b.finish(id, RevisionStatus::RolledBack, Some("interrupted"), None)
            .unwrap();
        assert_eq!(b.journal_of(id).unwrap()[0].term, Some(term_b));
        assert_eq!(b.terms(1).unwrap(), [(id, Some(term_b))]);
        let record = b.lease("paver").unwrap().unwrap();
        assert_eq!((record.holder.as_str(), record.term), ("b", term_b));
        // A cannot take it back while B's lease holds; once B lets it go, A's new term is
        // another one again.
        assert_eq!(
            Store::at(&location)
                .unwrap()
                .acquire_lease("paver", "a", lease)
                .unwrap(),
            None
        );
        b.release_lease("paver", "b").unwrap();
        assert_eq!(
            Store::at(&location)
                .unwrap()
                .acquire_lease("paver", "a", lease)
                .unwrap(),
            Some(term_b + 1)
        );
    }
}

#[test]
fn of_candidates_racing_for_a_free_lease_one_wins() {
    for t in backends("race") {
        let location = Location::of(&t.state);
        let winners: Vec<Option<i64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let location = location.clone();
                    s.spawn(move || {
                        Store::at_own_connection(&location)
                            .unwrap()
                            .acquire_lease(
                                "race",
                                &format!("candidate {i}"),
                                Duration::from_secs(60),
                            )
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            winners.iter().filter(|w| w.is_some()).count(),
            1,
            "{location}: {winners:?}"
        );
    }
}

#[test]
fn a_store_made_by_a_newer_paver_is_refused() {
    for t in backends("too-new") {
        let store = Store::open(&t.state).unwrap();
        store
            .write_unfenced(
                "INSERT INTO schema_migrations (version) VALUES (?1)",
                params![99_i64],
            )
            .unwrap();
        drop(store);
        let error = match Location::of(&t.state) {
            Location::Sqlite(_) => Store::open(&t.state).err(),
            // Shared connections are migrated once per process: a new one checks again.
            location @ Location::Postgres(_) => Store::at_own_connection(&location).err(),
        };
        assert!(
            matches!(error, Some(StoreError::TooNew { found: 99, .. })),
            "{error:?}"
        );
    }
}

#[test]
fn a_sqlite_store_from_before_numbered_migrations_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE revisions (id INTEGER PRIMARY KEY AUTOINCREMENT, sha TEXT NOT NULL,
                 status TEXT NOT NULL, error TEXT, steps INTEGER NOT NULL DEFAULT 0,
                 started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), finished_at TEXT);
             INSERT INTO revisions (sha, status) VALUES ('old', 'applied');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.active().unwrap().unwrap().sha, "old");
    let id = store.begin("new", 0, "plan").unwrap();
    store
        .finish(
            id,
            RevisionStatus::RolledBack,
            Some("x"),
            Some(ErrorKind::Conflict),
        )
        .unwrap();
    assert_eq!(
        store.latest_for("new").unwrap().unwrap().error_kind,
        Some(ErrorKind::Conflict)
    );
}

#[test]
fn a_password_never_shows() {
    for (url, shown) in [
        (
            "postgres://paver:s3cret@db:5432/paver?sslmode=require",
            "postgres://paver:***@db:5432/paver?sslmode=require",
        ),
        (
            "postgresql://db/paver?user=paver&password=s3cret",
            "postgresql://db/paver?user=paver&password=***",
        ),
        ("postgres://paver@db/paver", "postgres://paver@db/paver"),
    ] {
        let location = Location::of(std::path::Path::new(url));
        assert!(location.is_postgres());
        assert_eq!(location.to_string(), shown);
        assert_eq!(format!("{location:?}"), shown);
    }
    assert!(!Location::of(std::path::Path::new(".paver/state.db")).is_postgres());
}
