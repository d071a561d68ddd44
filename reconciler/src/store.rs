//! The state store: an embedded SQLite file holding the revisions paver has seen, the
//! journal of every step it ran (written before and after each step, with the step's
//! compensation), and the inventory of what paver created, with content hashes.
//!
//! Every write is its own transaction, committed before the step it records runs or after
//! it finished, so a process killed at any point leaves a journal that says exactly what
//! may have happened.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::plan::Step;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store: a journal entry does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("cannot create the state store's folder: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Recovery(String),
}

/// Where a revision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevisionStatus {
    /// Being applied (or interrupted while it was).
    Applying,
    /// Applied whole: the active revision is the newest of these.
    Applied,
    /// Refused before anything ran (it did not lint clean, or could not be planned).
    Refused,
    /// A step failed; the completed steps were compensated.
    RolledBack,
}

impl RevisionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionStatus::Applying => "applying",
            RevisionStatus::Applied => "applied",
            RevisionStatus::Refused => "refused",
            RevisionStatus::RolledBack => "rolled-back",
        }
    }

    fn parse(text: &str) -> RevisionStatus {
        match text {
            "applied" => RevisionStatus::Applied,
            "refused" => RevisionStatus::Refused,
            "rolled-back" => RevisionStatus::RolledBack,
            _ => RevisionStatus::Applying,
        }
    }
}

/// One attempt at a revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevisionRecord {
    pub id: i64,
    /// The commit (or, for a local folder, the content hash).
    pub sha: String,
    pub status: RevisionStatus,
    pub error: Option<String>,
    /// Whether the failure may pass by itself (`transient`), or waits for a new revision
    /// or `paver retry` (`permanent`, `conflict`).
    pub error_kind: Option<ErrorKind>,
    pub steps: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The plan as it was printed when the revision started.
    pub plan: Option<String>,
}

/// Where a journaled step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Recorded before it ran: it may or may not have happened.
    Started,
    Done,
    Failed,
    /// Its compensation ran.
    Compensated,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Compensated => "compensated",
        }
    }

    fn parse(text: &str) -> StepState {
        match text {
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "compensated" => StepState::Compensated,
            _ => StepState::Started,
        }
    }
}

/// A journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub seq: i64,
    pub step: Step,
    pub state: StepState,
    pub error: Option<String>,
}

/// A resource paver created and manages, with the hash of what it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    /// `topic:<name>`, `database:<name>`, `table:<db>.<name>`.
    pub resource: String,
    pub hash: String,
    pub revision: String,
}

/// The SQLite state store.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retries (
    sha TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS revisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha         TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    steps       INTEGER NOT NULL DEFAULT 0,
    plan        TEXT,
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    revision INTEGER NOT NULL REFERENCES revisions(id),
    seq      INTEGER NOT NULL,
    step     TEXT NOT NULL,
    state    TEXT NOT NULL,
    error    TEXT,
    at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (revision, seq)
);
CREATE TABLE IF NOT EXISTS pipelines (
    name         TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    endpoints    TEXT NOT NULL,
    activated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS pipeline_status (
    name          TEXT PRIMARY KEY,
    version       INTEGER NOT NULL,
    worker        TEXT NOT NULL,
    consumed      INTEGER NOT NULL,
    inserted      INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    lag           INTEGER,
    rows_per_sec  REAL NOT NULL,
    last_error    TEXT,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS ingest_workers (
    pipeline     TEXT NOT NULL,
    worker       TEXT NOT NULL,
    version      INTEGER NULL,
    heartbeat_ms INTEGER NOT NULL,
    partitions   TEXT,
    PRIMARY KEY (pipeline, worker)
);
CREATE TABLE IF NOT EXISTS inventory (
    resource TEXT PRIMARY KEY,
    hash     TEXT NOT NULL,
    revision TEXT NOT NULL
);
";

impl Store {
    /// Open (and create) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        // WAL: readers (status, the HTTP endpoint) never block the writer; FULL sync: a
        // journal entry is on disk before the step it announces runs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.execute_batch(SCHEMA)?;
        // Stores made before the plan was kept get the column.
        let has_plan: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('revisions') WHERE name = 'plan'")?
            .exists([])?;
        if !has_plan {
            conn.execute_batch("ALTER TABLE revisions ADD COLUMN plan TEXT")?;
        }
        // … and before failures had a kind.
        let has_kind: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('revisions') WHERE name = 'error_kind'")?
            .exists([])?;
        if !has_kind {
            conn.execute_batch("ALTER TABLE revisions ADD COLUMN error_kind TEXT")?;
        }
        // … and before workers said which partitions they hold.
        let has_partitions: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('ingest_workers') WHERE name = 'partitions'")?
            .exists([])?;
        if !has_partitions {
            conn.execute_batch("ALTER TABLE ingest_workers ADD COLUMN partitions TEXT")?;
        }
        Ok(Store { conn })
    }

    /// Record that `sha` starts being applied with `steps` steps; returns its id.
    pub fn begin(&self, sha: &str, steps: usize, plan: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO revisions (sha, status, steps, plan) VALUES (?1, 'applying', ?2, ?3)",
            params![sha, steps as i64, plan],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record a revision refused before anything ran.
    pub fn refuse(&self, sha: &str, error: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO revisions (sha, status, error, finished_at) VALUES (?1, 'refused', ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![sha, error],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Finish a revision.
    pub fn finish(
        &self,
        id: i64,
        status: RevisionStatus,
        error: Option<&str>,
        kind: Option<ErrorKind>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE revisions SET status = ?2, error = ?3, error_kind = ?4, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            params![id, status.as_str(), error, kind.map(ErrorKind::as_str)],
        )?;
        Ok(())
    }

    /// Every attempt at `sha`, oldest first (for the retry policy).
    pub fn attempts_of(&self, sha: &str) -> Result<Vec<RevisionRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_REVISION} WHERE sha = ?1 ORDER BY id DESC LIMIT 100"
        ))?;
        let rows = stmt.query_map(params![sha], revision_row)?;
        let mut out: Vec<RevisionRecord> = rows.collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// `paver retry <sha>`: the next reconcile applies `sha` again whatever its last failure.
    pub fn request_retry(&self, sha: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO retries (sha) VALUES (?1) ON CONFLICT (sha) DO NOTHING",
            params![sha],
        )?;
        Ok(())
    }

    /// Whether a retry of `sha` was asked for (and the request, taken).
    pub fn take_retry(&self, sha: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM retries WHERE sha = ?1", params![sha])?
            > 0)
    }

    /// Journal a step (insert or update its state).
    pub fn journal(
        &self,
        revision: i64,
        seq: usize,
        step: &Step,
        state: StepState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(step)?;
        self.conn.execute(
            "INSERT INTO journal (revision, seq, step, state, error) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (revision, seq) DO UPDATE SET state = excluded.state, error = excluded.error,
                 at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![revision, seq as i64, json, state.as_str(), error],
        )?;
        Ok(())
    }

    /// The journal of a revision, in order.
    pub fn journal_of(&self, revision: i64) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, step, state, error FROM journal WHERE revision = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![revision], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, step, state, error) = row?;
            out.push(JournalEntry {
                seq,
                step: serde_json::from_str(&step)?,
                state: StepState::parse(&state),
                error,
            });
        }
        Ok(out)
    }

    /// A revision that was being applied when the process stopped, if any.
    pub fn interrupted(&self) -> Result<Option<RevisionRecord>, StoreError> {
        self.revision_where("status = 'applying' ORDER BY id DESC LIMIT 1")
    }

    /// The active revision: the newest one applied.
    pub fn active(&self) -> Result<Option<RevisionRecord>, StoreError> {
        self.revision_where("status = 'applied' ORDER BY id DESC LIMIT 1")
    }

    /// The newest attempt at a commit.
    pub fn latest_for(&self, sha: &str) -> Result<Option<RevisionRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_REVISION} WHERE sha = ?1 ORDER BY id DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row(params![sha], revision_row).optional()?)
    }

    /// Every attempt, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<RevisionRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_REVISION} ORDER BY id DESC LIMIT ?1"))?;
        let rows = stmt.query_map(params![limit as i64], revision_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revision_where(&self, clause: &str) -> Result<Option<RevisionRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_REVISION} WHERE {clause}"))?;
        Ok(stmt.query_row([], revision_row).optional()?)
    }

    /// What paver manages.
    pub fn inventory(&self) -> Result<Vec<InventoryItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT resource, hash, revision FROM inventory ORDER BY resource")?;
        let rows = stmt.query_map([], |r| {
            Ok(InventoryItem {
                resource: r.get(0)?,
                hash: r.get(1)?,
                revision: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record that paver manages a resource (created or adopted by an applied revision).
    pub fn manage(&self, resource: &str, hash: &str, revision: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO inventory (resource, hash, revision) VALUES (?1, ?2, ?3)
             ON CONFLICT (resource) DO UPDATE SET hash = excluded.hash, revision = excluded.revision",
            params![resource, hash, revision],
        )?;
        Ok(())
    }

    /// Forget a resource (its creation was compensated).
    pub fn forget(&self, resource: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM inventory WHERE resource = ?1",
            params![resource],
        )?;
        Ok(())
    }
}

/// A live pipeline version, as recorded by the cut-over.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveRecord {
    pub spec: crate::model::IngestSpec,
    pub endpoints: crate::model::Endpoints,
    pub activated_at: String,
}

/// What a worker last reported of a pipeline.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineStatus {
    pub name: String,
    pub version: u32,
    /// `embedded` (inside `paver run`) or `pid <N>` of a `paver ingest`.
    pub worker: String,
    pub consumed: u64,
    pub inserted: u64,
    pub dead_lettered: u64,
    /// Records in the topic not yet ingested (sum over partitions), when known.
    pub lag: Option<i64>,
    pub rows_per_sec: f64,
    pub last_error: Option<String>,
    pub updated_at: String,
}

impl Store {
    /// Make `spec` the live version of its pipeline.
    pub fn set_live(
        &self,
        spec: &crate::model::IngestSpec,
        endpoints: &crate::model::Endpoints,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO pipelines (name, version, spec, endpoints) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, spec = excluded.spec,
               endpoints = excluded.endpoints, activated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![
                spec.pipeline,
                spec.version,
                serde_json::to_string(spec)?,
                serde_json::to_string(endpoints)?
            ],
        )?;
        Ok(())
    }

    /// No version of the pipeline is live.
    pub fn clear_live(&self, pipeline: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM pipelines WHERE name = ?1", params![pipeline])?;
        Ok(())
    }

    /// The live version of every pipeline.
    pub fn live(&self) -> Result<Vec<LiveRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT spec, endpoints, activated_at FROM pipelines ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (spec, endpoints, activated_at) = row?;
            out.push(LiveRecord {
                spec: serde_json::from_str(&spec)
                    .map_err(|e| StoreError::Recovery(format!("a live pipeline record: {e}")))?,
                endpoints: crate::model::Endpoints::from_recorded(&endpoints).map_err(|e| {
                    StoreError::Recovery(format!("a live pipeline's connections: {e}"))
                })?,
                activated_at,
            });
        }
        Ok(out)
    }

    /// Record what a worker reports of a pipeline.
    pub fn report(&self, s: &PipelineStatus) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO pipeline_status (name, version, worker, consumed, inserted, dead_lettered, lag, rows_per_sec, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, worker = excluded.worker,
               consumed = excluded.consumed, inserted = excluded.inserted, dead_lettered = excluded.dead_lettered,
               lag = excluded.lag, rows_per_sec = excluded.rows_per_sec, last_error = excluded.last_error,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![s.name, s.version, s.worker, s.consumed as i64, s.inserted as i64, s.dead_lettered as i64, s.lag, s.rows_per_sec, s.last_error],
        )?;
        Ok(())
    }

    /// What the workers last reported, per pipeline.
    pub fn pipeline_status(&self) -> Result<Vec<PipelineStatus>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, version, worker, consumed, inserted, dead_lettered, lag, rows_per_sec, last_error, updated_at FROM pipeline_status ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PipelineStatus {
                name: r.get(0)?,
                version: r.get(1)?,
                worker: r.get(2)?,
                consumed: r.get::<_, i64>(3)? as u64,
                inserted: r.get::<_, i64>(4)? as u64,
                dead_lettered: r.get::<_, i64>(5)? as u64,
                lag: r.get(6)?,
                rows_per_sec: r.get(7)?,
                last_error: r.get(8)?,
                updated_at: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What an ingestion worker last said it runs: the hand-off record of a cut-over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerRecord {
    /// Unique per worker process and pipeline (`<host> pid <N>`).
    pub worker: String,
    /// The version it runs; `None` while the pipeline has no live version (or it has
    /// stopped the old one and not yet started another).
    pub version: Option<u32>,
    /// When it last said so, in Unix milliseconds.
    pub heartbeat_ms: i64,
    /// The partitions it holds (its static assignment, or its consumer group's share);
    /// `None` when it did not say.
    pub partitions: Option<Vec<i32>>,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// A worker's heartbeat: it runs `version` of `pipeline` (and inserts into no other
    /// version's staging table).
    pub fn worker_report(
        &self,
        pipeline: &str,
        worker: &str,
        version: Option<u32>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO ingest_workers (pipeline, worker, version, heartbeat_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, worker) DO UPDATE SET version = excluded.version,
               heartbeat_ms = excluded.heartbeat_ms",
            params![pipeline, worker, version, now_ms()],
        )?;
        Ok(())
    }

    /// The workers of a pipeline, as they last reported (stale ones included).
    pub fn workers_of(&self, pipeline: &str) -> Result<Vec<WorkerRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT worker, version, heartbeat_ms, partitions FROM ingest_workers WHERE pipeline = ?1 ORDER BY worker",
        )?;
        let rows = stmt.query_map(params![pipeline], |r| {
            Ok((
                WorkerRecord {
                    worker: r.get(0)?,
                    version: r.get(1)?,
                    heartbeat_ms: r.get(2)?,
                    partitions: None,
                },
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut record, partitions) = row?;
            record.partitions = partitions.map(|p| serde_json::from_str(&p)).transpose()?;
            out.push(record);
        }
        Ok(out)
    }

    /// Which partitions a worker holds now (`None`: it runs no version).
    pub fn worker_partitions(
        &self,
        pipeline: &str,
        worker: &str,
        partitions: Option<&[i32]>,
    ) -> Result<(), StoreError> {
        let partitions = partitions.map(serde_json::to_string).transpose()?;
        self.conn.execute(
            "UPDATE ingest_workers SET partitions = ?3 WHERE pipeline = ?1 AND worker = ?2",
            params![pipeline, worker, partitions],
        )?;
        Ok(())
    }

    /// A worker stopped cleanly: it runs nothing any more.
    pub fn forget_worker(&self, pipeline: &str, worker: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM ingest_workers WHERE pipeline = ?1 AND worker = ?2",
            params![pipeline, worker],
        )?;
        Ok(())
    }
}

impl Store {
    /// Per pipeline: the live version and what its worker last reported (for `status`),
    /// and every worker with the partitions it holds (`fresh`: it beat within
    /// [`WORKER_FRESH_MS`]; a killed worker's record stays until its process runs again).
    pub fn pipelines_summary(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let status = self.pipeline_status()?;
        let now = now_ms();
        let mut out = Vec::new();
        for l in self.live()? {
            let s = status.iter().find(|s| s.name == l.spec.pipeline);
            let workers: Vec<serde_json::Value> = self
                .workers_of(&l.spec.pipeline)?
                .into_iter()
                .map(|w| {
                    serde_json::json!({
                        "worker": w.worker,
                        "version": w.version,
                        "partitions": w.partitions,
                        "fresh": now - w.heartbeat_ms <= WORKER_FRESH_MS,
                    })
                })
                .collect();
            out.push(serde_json::json!({
                "name": l.spec.pipeline,
                "liveVersion": l.spec.version,
                "topic": l.spec.topic,
                "consumerGroup": l.spec.group,
                "deadLetterTopic": l.spec.dead_letter_topic,
                "activatedAt": l.activated_at,
                "worker": s.map(|s| s.worker.clone()),
                "workerVersion": s.map(|s| s.version),
                "lag": s.and_then(|s| s.lag),
                "rowsPerSec": s.map(|s| (s.rows_per_sec * 10.0).round() / 10.0),
                "consumed": s.map(|s| s.consumed),
                "inserted": s.map(|s| s.inserted),
                "deadLettered": s.map(|s| s.dead_lettered),
                "lastError": s.and_then(|s| s.last_error.clone()),
                "reportedAt": s.map(|s| s.updated_at.clone()),
                "workers": workers,
            }));
        }
        Ok(out)
    }
}

/// A worker whose heartbeat is older than this is not running (workers beat every 400 ms;
/// the cut-over's hand-over counts the same 3 s).
pub const WORKER_FRESH_MS: i64 = 3_000;

const SELECT_REVISION: &str =
    "SELECT id, sha, status, error, steps, started_at, finished_at, plan, error_kind FROM revisions";

fn revision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RevisionRecord> {
    Ok(RevisionRecord {
        id: r.get(0)?,
        sha: r.get(1)?,
        status: RevisionStatus::parse(&r.get::<_, String>(2)?),
        error: r.get(3)?,
        steps: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        plan: r.get(7)?,
        error_kind: match r.get::<_, Option<String>>(8)?.as_deref() {
            Some("transient") => Some(ErrorKind::Transient),
            Some("conflict") => Some(ErrorKind::Conflict),
            Some(_) => Some(ErrorKind::Permanent),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ClickHouseAction, ResourceId, Step};

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
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("paver.db")).unwrap();
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
            [("host pid 1", Some(2)), ("host pid 2", None)]
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
        assert_eq!(held, [Some(vec![0, 2]), Some(vec![])]);
        store.forget_worker("p", "host pid 1").unwrap();
        assert_eq!(store.workers_of("p").unwrap().len(), 1);
        assert_eq!(store.workers_of("q").unwrap()[0].version, Some(7));
    }

    #[test]
    fn revisions_journal_and_inventory_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/paver.db");
        {
            let store = Store::open(&path).unwrap();
            let id = store.begin("abc", 2, "").unwrap();
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
        let store = Store::open(&path).unwrap();
        let interrupted = store.interrupted().unwrap().unwrap();
        assert_eq!(
            (interrupted.sha.as_str(), interrupted.status),
            ("abc", RevisionStatus::Applying)
        );
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
        assert_eq!(store.inventory().unwrap()[0].resource, "database:a");
        store.forget("database:a").unwrap();
        assert!(store.inventory().unwrap().is_empty());
    }
}
