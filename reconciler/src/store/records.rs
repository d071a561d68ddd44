//! What the store keeps, and the calls that read and write it: written once, in the
//! store's dialect (see [`super::Statement`]), for both backends.

use serde::{Deserialize, Serialize};

use super::{params, Row, Store, StoreError};
use crate::error::ErrorKind;
use crate::plan::Step;

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
    /// The leader's term that wrote it last (with leader election through the store).
    pub term: Option<i64>,
}

/// A resource paver created and manages, with the hash of what it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    /// `topic:<name>`, `database:<name>`, `table:<db>.<name>`.
    pub resource: String,
    pub hash: String,
    pub revision: String,
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

/// A worker whose heartbeat is older than this is not running (workers beat every 400 ms;
/// the cut-over's hand-over counts the same 3 s).
pub const WORKER_FRESH_MS: i64 = 3_000;

fn revision_row(r: &Row) -> Result<RevisionRecord, StoreError> {
    Ok(RevisionRecord {
        id: r.int(0)?,
        sha: r.text(1)?,
        status: RevisionStatus::parse(&r.text(2)?),
        error: r.opt_text(3)?,
        steps: r.int(4)?,
        started_at: r.text(5)?,
        finished_at: r.opt_text(6)?,
        plan: r.opt_text(7)?,
        error_kind: match r.opt_text(8)?.as_deref() {
            Some("transient") => Some(ErrorKind::Transient),
            Some("conflict") => Some(ErrorKind::Conflict),
            Some(_) => Some(ErrorKind::Permanent),
            None => None,
        },
    })
}

fn revisions(rows: Vec<Row>) -> Result<Vec<RevisionRecord>, StoreError> {
    rows.iter().map(revision_row).collect()
}

/// A worker's record from its columns (worker, version, heartbeat_ms, partitions), the
/// first at `at`.
fn worker_record(r: &Row, at: usize) -> Result<WorkerRecord, StoreError> {
    Ok(WorkerRecord {
        worker: r.text(at)?,
        version: r.opt_int(at + 1)?.map(version).transpose()?,
        heartbeat_ms: r.int(at + 2)?,
        partitions: r
            .opt_text(at + 3)?
            .map(|p| serde_json::from_str(&p))
            .transpose()?,
    })
}

fn version(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v)
        .map_err(|_| StoreError::Recovery(format!("a pipeline version {v} out of range")))
}

/// The columns of a [`RevisionRecord`], then a clause: a `&'static str` like every statement.
macro_rules! select_revision {
    ($clause:literal) => {
        concat!(
            "SELECT id, sha, status, error, steps, started_at, finished_at, plan, error_kind FROM revisions ",
            $clause
        )
    };
}

impl Store {
    /// Record that `sha` starts being applied with `steps` steps; returns its id.
    pub fn begin(&self, sha: &str, steps: usize, plan: &str) -> Result<i64, StoreError> {
        let rows = self.write(
            "INSERT INTO revisions (sha, status, steps, plan, term) VALUES (?1, 'applying', ?2, ?3, ?4) RETURNING id",
            params![sha, steps as i64, plan, self.term()],
        )?;
        first_id(&rows)
    }

    /// Record a revision refused before anything ran.
    pub fn refuse(&self, sha: &str, error: &str) -> Result<i64, StoreError> {
        let rows = self.write(
            "INSERT INTO revisions (sha, status, error, finished_at, term) VALUES (?1, 'refused', ?2, {now}, ?3) RETURNING id",
            params![sha, error, self.term()],
        )?;
        first_id(&rows)
    }

    /// Finish a revision.
    pub fn finish(
        &self,
        id: i64,
        status: RevisionStatus,
        error: Option<&str>,
        kind: Option<ErrorKind>,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE revisions SET status = ?2, error = ?3, error_kind = ?4, finished_at = {now}, term = ?5 WHERE id = ?1",
            params![id, status.as_str(), error, kind.map(ErrorKind::as_str), self.term()],
        )?;
        Ok(())
    }

    /// Every attempt at `sha`, oldest first (for the retry policy).
    pub fn attempts_of(&self, sha: &str) -> Result<Vec<RevisionRecord>, StoreError> {
        let mut out = revisions(self.read(
            select_revision!("WHERE sha = ?1 ORDER BY id DESC LIMIT 100"),
            params![sha],
        )?)?;
        out.reverse();
        Ok(out)
    }

    /// `paver retry <sha>`: the next reconcile applies `sha` again whatever its last failure.
    pub fn request_retry(&self, sha: &str) -> Result<(), StoreError> {
        self.write_unfenced(
            "INSERT INTO retries (sha) VALUES (?1) ON CONFLICT (sha) DO NOTHING",
            params![sha],
        )?;
        Ok(())
    }

    /// Whether a retry of `sha` was asked for (and the request, taken).
    pub fn take_retry(&self, sha: &str) -> Result<bool, StoreError> {
        Ok(!self
            .write(
                "DELETE FROM retries WHERE sha = ?1 RETURNING sha",
                params![sha],
            )?
            .is_empty())
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
        self.write(
            "INSERT INTO journal (revision, seq, step, state, error, term) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (revision, seq) DO UPDATE SET state = excluded.state, error = excluded.error,
                 term = excluded.term, at = {now}",
            params![revision, seq as i64, json, state.as_str(), error, self.term()],
        )?;
        Ok(())
    }

    /// The journal of a revision, in order.
    pub fn journal_of(&self, revision: i64) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(
            "SELECT seq, step, state, error, term FROM journal WHERE revision = ?1 ORDER BY seq",
            params![revision],
        )?
        .iter()
        .map(|r| {
            Ok(JournalEntry {
                seq: r.int(0)?,
                step: serde_json::from_str(&r.text(1)?)?,
                state: StepState::parse(&r.text(2)?),
                error: r.opt_text(3)?,
                term: r.opt_int(4)?,
            })
        })
        .collect()
    }

    /// A revision that was being applied when the process stopped, if any.
    pub fn interrupted(&self) -> Result<Option<RevisionRecord>, StoreError> {
        Ok(revisions(self.read(
            select_revision!("WHERE status = 'applying' ORDER BY id DESC LIMIT 1"),
            params![],
        )?)?
        .pop())
    }

    /// The active revision: the newest one applied.
    pub fn active(&self) -> Result<Option<RevisionRecord>, StoreError> {
        Ok(revisions(self.read(
            select_revision!("WHERE status = 'applied' ORDER BY id DESC LIMIT 1"),
            params![],
        )?)?
        .pop())
    }

    /// The newest attempt at a commit.
    pub fn latest_for(&self, sha: &str) -> Result<Option<RevisionRecord>, StoreError> {
        Ok(revisions(self.read(
            select_revision!("WHERE sha = ?1 ORDER BY id DESC LIMIT 1"),
            params![sha],
        )?)?
        .pop())
    }

    /// Every attempt, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<RevisionRecord>, StoreError> {
        revisions(self.read(
            select_revision!("ORDER BY id DESC LIMIT ?1"),
            params![limit as i64],
        )?)
    }

    /// The term that wrote each attempt last (with leader election through the store),
    /// newest first: which leader applied what.
    pub fn terms(&self, limit: usize) -> Result<Vec<(i64, Option<i64>)>, StoreError> {
        self.read(
            "SELECT id, term FROM revisions ORDER BY id DESC LIMIT ?1",
            params![limit as i64],
        )?
        .iter()
        .map(|r| Ok((r.int(0)?, r.opt_int(1)?)))
        .collect()
    }

    /// What paver manages.
    pub fn inventory(&self) -> Result<Vec<InventoryItem>, StoreError> {
        self.read(
            "SELECT resource, hash, revision FROM inventory ORDER BY resource",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok(InventoryItem {
                resource: r.text(0)?,
                hash: r.text(1)?,
                revision: r.text(2)?,
            })
        })
        .collect()
    }

    /// Record that paver manages a resource (created or adopted by an applied revision).
    pub fn manage(&self, resource: &str, hash: &str, revision: &str) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO inventory (resource, hash, revision) VALUES (?1, ?2, ?3)
             ON CONFLICT (resource) DO UPDATE SET hash = excluded.hash, revision = excluded.revision",
            params![resource, hash, revision],
        )?;
        Ok(())
    }

    /// Forget a resource (its creation was compensated).
    pub fn forget(&self, resource: &str) -> Result<(), StoreError> {
        self.write(
            "DELETE FROM inventory WHERE resource = ?1",
            params![resource],
        )?;
        Ok(())
    }

    /// Make `spec` the live version of its pipeline.
    pub fn set_live(
        &self,
        spec: &crate::model::IngestSpec,
        endpoints: &crate::model::Endpoints,
    ) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO pipelines (name, version, spec, endpoints) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, spec = excluded.spec,
               endpoints = excluded.endpoints, activated_at = {now}",
            params![
                &spec.pipeline,
                spec.version,
                serde_json::to_string(spec)?,
                serde_json::to_string(endpoints)?
            ],
        )?;
        Ok(())
    }

    /// No version of the pipeline is live.
    pub fn clear_live(&self, pipeline: &str) -> Result<(), StoreError> {
        self.write("DELETE FROM pipelines WHERE name = ?1", params![pipeline])?;
        Ok(())
    }

    /// The live version of every pipeline.
    pub fn live(&self) -> Result<Vec<LiveRecord>, StoreError> {
        self.read(
            "SELECT spec, endpoints, activated_at FROM pipelines ORDER BY name",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok(LiveRecord {
                spec: serde_json::from_str(&r.text(0)?)
                    .map_err(|e| StoreError::Recovery(format!("a live pipeline record: {e}")))?,
                endpoints: crate::model::Endpoints::from_recorded(&r.text(1)?).map_err(|e| {
                    StoreError::Recovery(format!("a live pipeline's connections: {e}"))
                })?,
                activated_at: r.text(2)?,
            })
        })
        .collect()
    }

    /// The live version of every pipeline, by name, without reading their specs (what the
    /// alert evaluator needs every second).
    pub fn live_versions(&self) -> Result<Vec<(String, u32)>, StoreError> {
        self.read(
            "SELECT name, version FROM pipelines ORDER BY name",
            params![],
        )?
        .iter()
        .map(|r| Ok((r.text(0)?, version(r.int(1)?)?)))
        .collect()
    }

    /// Record what a worker reports of a pipeline.
    pub fn report(&self, s: &PipelineStatus) -> Result<(), StoreError> {
        self.write_unfenced(
            "INSERT INTO pipeline_status (name, version, worker, consumed, inserted, dead_lettered, lag, rows_per_sec, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, worker = excluded.worker,
               consumed = excluded.consumed, inserted = excluded.inserted, dead_lettered = excluded.dead_lettered,
               lag = excluded.lag, rows_per_sec = excluded.rows_per_sec, last_error = excluded.last_error,
               updated_at = {now}",
            params![
                &s.name,
                s.version,
                &s.worker,
                s.consumed as i64,
                s.inserted as i64,
                s.dead_lettered as i64,
                s.lag,
                s.rows_per_sec,
                s.last_error.as_deref()
            ],
        )?;
        Ok(())
    }

    /// What the workers last reported, per pipeline.
    pub fn pipeline_status(&self) -> Result<Vec<PipelineStatus>, StoreError> {
        self.read(
            "SELECT name, version, worker, consumed, inserted, dead_lettered, lag, rows_per_sec, last_error, updated_at FROM pipeline_status ORDER BY name",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok(PipelineStatus {
                name: r.text(0)?,
                version: version(r.int(1)?)?,
                worker: r.text(2)?,
                consumed: r.int(3)? as u64,
                inserted: r.int(4)? as u64,
                dead_lettered: r.int(5)? as u64,
                lag: r.opt_int(6)?,
                rows_per_sec: r.real(7)?,
                last_error: r.opt_text(8)?,
                updated_at: r.text(9)?,
            })
        })
        .collect()
    }

    /// A worker's heartbeat: it runs `version` of `pipeline` (and inserts into no other
    /// version's staging table).
    pub fn worker_report(
        &self,
        pipeline: &str,
        worker: &str,
        version: Option<u32>,
    ) -> Result<(), StoreError> {
        self.worker_report_at(pipeline, worker, version, super::now_ms())
    }

    /// [`Store::worker_report`] as of `at_ms` (when the heartbeat began: one written late,
    /// by a process frozen meanwhile, is not taken for a fresh one).
    pub fn worker_report_at(
        &self,
        pipeline: &str,
        worker: &str,
        version: Option<u32>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.write_unfenced(
            "INSERT INTO ingest_workers (pipeline, worker, version, heartbeat_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, worker) DO UPDATE SET version = excluded.version,
               heartbeat_ms = excluded.heartbeat_ms",
            params![pipeline, worker, version, at_ms],
        )?;
        Ok(())
    }

    /// The workers of a pipeline, as they last reported (stale ones included).
    pub fn workers_of(&self, pipeline: &str) -> Result<Vec<WorkerRecord>, StoreError> {
        self.read(
            "SELECT worker, version, heartbeat_ms, partitions FROM ingest_workers WHERE pipeline = ?1 ORDER BY worker",
            params![pipeline],
        )?
        .iter()
        .map(|r| worker_record(r, 0))
        .collect()
    }

    /// Every pipeline's workers, in one read (for what looks at every pipeline: alerts,
    /// `status`).
    pub fn workers(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<WorkerRecord>>, StoreError> {
        let mut by_pipeline = std::collections::BTreeMap::<String, Vec<WorkerRecord>>::new();
        for r in self.read(
            "SELECT pipeline, worker, version, heartbeat_ms, partitions FROM ingest_workers ORDER BY pipeline, worker",
            params![],
        )? {
            by_pipeline
                .entry(r.text(0)?)
                .or_default()
                .push(worker_record(&r, 1)?);
        }
        Ok(by_pipeline)
    }

    /// Which partitions a worker holds now (`None`: it runs no version).
    pub fn worker_partitions(
        &self,
        pipeline: &str,
        worker: &str,
        partitions: Option<&[i32]>,
    ) -> Result<(), StoreError> {
        let partitions = partitions.map(serde_json::to_string).transpose()?;
        self.write_unfenced(
            "UPDATE ingest_workers SET partitions = ?3 WHERE pipeline = ?1 AND worker = ?2",
            params![pipeline, worker, partitions],
        )?;
        Ok(())
    }

    /// A worker stopped cleanly: it runs nothing any more.
    pub fn forget_worker(&self, pipeline: &str, worker: &str) -> Result<(), StoreError> {
        self.write_unfenced(
            "DELETE FROM ingest_workers WHERE pipeline = ?1 AND worker = ?2",
            params![pipeline, worker],
        )?;
        Ok(())
    }

    /// Per pipeline: the live version and what its worker last reported (for `status`),
    /// and every worker with the partitions it holds (`fresh`: it beat within
    /// [`WORKER_FRESH_MS`]; a killed worker's record stays until its process runs again).
    pub fn pipelines_summary(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let status = self.pipeline_status()?;
        let status: std::collections::BTreeMap<&str, _> =
            status.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut all_workers = self.workers()?;
        let now = super::now_ms();
        let mut out = Vec::new();
        for l in self.live()? {
            let s = status.get(l.spec.pipeline.as_str()).copied();
            let workers: Vec<serde_json::Value> = all_workers
                .remove(&l.spec.pipeline)
                .into_iter()
                .flatten()
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

fn first_id(rows: &[Row]) -> Result<i64, StoreError> {
    match rows.first() {
        Some(row) => row.int(0),
        None => Err(StoreError::Recovery(
            "state store: an insert returned no id".to_string(),
        )),
    }
}
