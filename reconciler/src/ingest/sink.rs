//! Into ClickHouse: a batch is inserted into the version's staging table in one `INSERT`
//! (its views run the transform into the sink and record the offsets in the ledger in the
//! same statement). An insert that may pass later (server down, a table being changed, the
//! views missing) is retried with a growing pause; a rejection of the data itself sends the
//! batch row by row, and the rejected rows become dead letters.
//!
//! Between attempts, and before each row, the stop token is checked: once stopped (a
//! shutdown, or another version went live) no insert starts any more, and the batch is
//! abandoned, not committed. An insert that started is awaited, never dropped half-way:
//! when `ingest` returns, nothing of it is in flight.

use std::collections::BTreeMap;
use std::time::Duration;

use super::batch::{Batch, Dead};
use super::dead_letter::{DeadLetterError, DeadLetters};
use super::offsets::Offsets;
use super::spec::IngestSpec;
use super::status::Status;
use super::stop::{Backoff, Stop};
use super::IngestError;
use crate::providers::clickhouse::{literal, table_sql, ClickHouse, InsertError};

/// The heartbeat that says which version this worker runs must be younger than this for
/// an insert to start (the cut-over's `await_handover` counts heartbeats of 3 s).
pub const FRESH: Duration = Duration::from_secs(2);

/// What became of a batch.
#[derive(Debug, PartialEq)]
pub enum Ingested {
    /// Inserted and dead-lettered: the offsets to commit.
    Done(Offsets),
    /// Stopped before it was all in: not to be committed (the next run reads it again).
    Abandoned,
}

/// The staging table of one pipeline version.
pub struct Sink<'a> {
    pub ch: &'a ClickHouse,
    pub spec: &'a IngestSpec,
    pub dead_letters: &'a DeadLetters,
    pub status: &'a Status,
    pub stop: &'a Stop,
}

enum Outcome {
    Inserted,
    Rejected(String),
    Stopped,
}

impl Sink<'_> {
    /// Insert a batch and dead-letter what cannot be inserted.
    pub async fn ingest(&self, batch: Batch) -> Result<Ingested, IngestError> {
        // What could not be decoded goes first: once rows after it are in the ledger, a
        // restart would not read it again.
        for d in &batch.dead {
            if !self.dead_letter(d).await? {
                return Ok(Ingested::Abandoned);
            }
        }
        // One buffer for the batch and for its rows one by one (no copy).
        let rows = bytes::Bytes::from(batch.rows);
        if !batch.items.is_empty() {
            match self.insert_retrying(rows.clone()).await? {
                Outcome::Inserted => self
                    .status
                    .update(|s| s.inserted += batch.items.len() as u64),
                Outcome::Stopped => return Ok(Ingested::Abandoned),
                Outcome::Rejected(_) => {
                    // Some row is bad: insert them one by one, dead-letter the rejected
                    // ones at once (before a later row's offset reaches the ledger).
                    for item in batch.items {
                        match self.insert_retrying(rows.slice(item.row.clone())).await? {
                            Outcome::Inserted => self.status.update(|s| s.inserted += 1),
                            Outcome::Stopped => return Ok(Ingested::Abandoned),
                            Outcome::Rejected(reason) => {
                                let dead = Dead {
                                    partition: item.partition,
                                    offset: item.offset,
                                    key: item.key,
                                    payload: item.payload,
                                    reason: format!("rejected by ClickHouse: {reason}"),
                                };
                                if !self.dead_letter(&dead).await? {
                                    return Ok(Ingested::Abandoned);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Ingested::Done(batch.next))
    }

    /// `Ok(false)` when stopped first.
    async fn dead_letter(&self, d: &Dead) -> Result<bool, IngestError> {
        match self.dead_letters.send(d, self.stop).await {
            Ok(()) => {
                self.status.update(|s| s.dead_lettered += 1);
                Ok(true)
            }
            Err(DeadLetterError::Stopped) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Insert rows, retrying what may pass later with a growing pause; a rejection of the
    /// data itself is returned.
    async fn insert_retrying(&self, rows: bytes::Bytes) -> Result<Outcome, IngestError> {
        let spec = self.spec;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            if self.stop.is_stopped() {
                return Ok(Outcome::Stopped);
            }
            let reason = if !self.status.fresh(spec.version, FRESH) {
                format!(
                    "the state store has not recorded that this worker runs v{} for {FRESH:?}: not inserting",
                    spec.version
                )
            } else {
                match self.insert(rows.clone()).await {
                    Ok(()) => return Ok(Outcome::Inserted),
                    Err(InsertError::Data(reason)) => return Ok(Outcome::Rejected(reason)),
                    Err(InsertError::Transient(reason)) => reason,
                }
            };
            let said = self.status.stats().last_error;
            if said.as_deref() != Some(reason.as_str()) {
                eprintln!(
                    "paver ingest {}: v{}: insert failed, retrying: {reason}",
                    spec.pipeline, spec.version
                );
                self.status.update(|s| s.last_error = Some(reason));
            }
            if !self.stop.sleep(backoff.pause()).await {
                return Ok(Outcome::Stopped);
            }
        }
    }

    async fn insert(&self, rows: bytes::Bytes) -> Result<(), InsertError> {
        if !views_exist(self.ch, self.spec)
            .await
            .map_err(InsertError::Transient)?
        {
            return Err(InsertError::Transient(format!(
                "the views of v{} are missing",
                self.spec.version
            )));
        }
        self.ch.insert_json_rows(&self.spec.staging, rows).await
    }
}

/// Wait until the version's views exist on its staging table (a Null table without them
/// would swallow rows). `Ok(false)` when stopped first.
pub async fn wait_for_views(
    ch: &ClickHouse,
    spec: &IngestSpec,
    stop: &Stop,
) -> Result<bool, IngestError> {
    for attempt in 0..=120 {
        if views_exist(ch, spec)
            .await
            .map_err(IngestError::ClickHouse)?
        {
            return Ok(true);
        }
        if attempt == 0 {
            eprintln!(
                "paver ingest {}: v{}: waiting for its views",
                spec.pipeline, spec.version
            );
        }
        if !stop.sleep(Duration::from_millis(500)).await {
            return Ok(false);
        }
    }
    Err(IngestError::ViewsMissing {
        version: spec.version,
        views: spec
            .views
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

async fn views_exist(ch: &ClickHouse, spec: &IngestSpec) -> Result<bool, String> {
    let names: Vec<String> = spec.views.iter().map(|v| literal(&v.name)).collect();
    if names.is_empty() {
        return Ok(true);
    }
    let rows = ch
        .rows(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name IN ({})",
            literal(&spec.staging.database),
            names.join(", ")
        ))
        .await?;
    let count = rows
        .first()
        .and_then(|r| r.first())
        .ok_or("system.tables answered no row")?;
    let count: usize = count
        .parse()
        .map_err(|_| format!("system.tables answered `{count}` for a count"))?;
    Ok(count == spec.views.len())
}

/// The last offset the ledger has for the pipeline, per partition (any version).
pub async fn ledger_offsets(ch: &ClickHouse, spec: &IngestSpec) -> Result<Offsets, IngestError> {
    let rows = ch
        .rows(&format!(
            "SELECT partition, max(last_offset) FROM {} WHERE pipeline = {} GROUP BY partition",
            table_sql(&spec.ledger),
            literal(&spec.pipeline)
        ))
        .await
        .map_err(IngestError::ClickHouse)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let parsed = match row.as_slice() {
            [p, o] => p.parse().ok().zip(o.parse().ok()),
            _ => None,
        };
        let (partition, offset) = parsed.ok_or_else(|| {
            IngestError::ClickHouse(format!(
                "the ledger {} answered a row that is not (partition, offset): {row:?}",
                spec.ledger
            ))
        })?;
        out.insert(partition, offset);
    }
    Ok(out)
}
