//! Into ClickHouse: a batch is inserted into the version's staging table in one `INSERT`
//! (its views run the transform into the sink and record the offsets in the ledger in the
//! same statement). An insert that may pass later (server down, a table being changed, the
//! views missing) is retried with a growing pause; a rejection of the data itself sends the
//! batch row by row, and the rejected rows become dead letters.
//!
//! A member of a consumer group fences its inserts with the ledger: a batch whose records
//! the ledger already passes in some partition (another member took the partition and
//! inserted there: this one is late, its assignment lost or about to be) is not inserted,
//! and the worker leaves the group and joins again ([`Ingested::Taken`]).
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
use super::rows::Format;
use super::spec::IngestSpec;
use super::status::Status;
use super::stop::{Backoff, Stop};
use super::IngestError;
use crate::providers::clickhouse::{
    literal, table_sql, ClickHouse, ClickHouseError, InsertError, SESSION_EXPIRED,
};

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
    /// Not inserted: the ledger already passes this batch's first record in the partition
    /// (another worker holds it now): neither inserted nor committed.
    Taken(Passed),
}

/// A partition where the ledger has a batch's first record, or a later one.
#[derive(Debug, PartialEq)]
pub struct Passed {
    pub partition: i32,
    /// The batch's first offset there.
    pub offset: i64,
    /// The ledger's last offset there.
    pub ledger: i64,
}

/// The staging table of one pipeline version.
pub struct Sink<'a> {
    pub ch: &'a ClickHouse,
    pub spec: &'a IngestSpec,
    pub dead_letters: &'a DeadLetters,
    pub status: &'a Status,
    pub stop: &'a Stop,
    /// Check the ledger before a batch's insert (a consumer group's member: see above).
    pub fence: bool,
    /// How the batches' rows are written (the decoder's [`Format`]).
    pub format: Format,
    /// The HTTP session the inserts are sent in ([`super::lease`]).
    pub session: super::lease::Session,
}

enum Outcome {
    Inserted,
    Rejected(String),
    Stopped,
    Taken(Passed),
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
            let at = batch.items.iter().map(|i| (i.partition, i.offset));
            let covers = furthest(at.clone());
            let firsts = self.fence.then(|| earliest(at));
            match self
                .insert_retrying(rows.clone(), &covers, firsts.as_ref())
                .await?
            {
                Outcome::Inserted => self
                    .status
                    .update(|s| s.inserted += batch.items.len() as u64),
                Outcome::Stopped => return Ok(Ingested::Abandoned),
                Outcome::Taken(passed) => return Ok(Ingested::Taken(passed)),
                Outcome::Rejected(_) => {
                    // Some row is bad: insert them one by one, dead-letter the rejected
                    // ones at once (before a later row's offset reaches the ledger).
                    for item in batch.items {
                        let covers = furthest([(item.partition, item.offset)]);
                        match self
                            .insert_retrying(rows.slice(item.row.clone()), &covers, None)
                            .await?
                        {
                            Outcome::Inserted => self.status.update(|s| s.inserted += 1),
                            Outcome::Stopped => return Ok(Ingested::Abandoned),
                            // Not asked for one row (its batch passed the fence).
                            Outcome::Taken(passed) => return Ok(Ingested::Taken(passed)),
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
    ///
    /// A failed insert may still have been committed by the server (the answer was lost:
    /// a connection reset, a timeout after the server wrote the block). So before trying
    /// again, the ledger is asked: when it has `covers` (the furthest offset of these rows
    /// in each partition), the rows are in, as the ledger is written by the same insert,
    /// and inserting them again would duplicate them.
    ///
    /// With `firsts` (the first offset of these rows in each partition), the ledger is
    /// asked before every attempt: where it already has one of them, another worker
    /// inserted there, and these rows are not inserted.
    async fn insert_retrying(
        &self,
        rows: bytes::Bytes,
        covers: &Offsets,
        firsts: Option<&Offsets>,
    ) -> Result<Outcome, IngestError> {
        let spec = self.spec;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut failed = false;
        loop {
            if self.stop.is_stopped() {
                return Ok(Outcome::Stopped);
            }
            if failed || firsts.is_some() {
                match ledger_offsets(self.ch, spec).await {
                    Ok(have) if failed && holds(&have, covers) => {
                        eprintln!(
                            "paver ingest {}: v{}: the failed insert had reached ClickHouse (the ledger has its offsets): not inserting it again",
                            spec.pipeline, spec.version
                        );
                        return Ok(Outcome::Inserted);
                    }
                    Ok(have) => {
                        if let Some(passed) = firsts.and_then(|f| passed(&have, f)) {
                            return Ok(Outcome::Taken(passed));
                        }
                    }
                    Err(e) => {
                        self.say_retrying(e.to_string());
                        if !self.stop.sleep(backoff.pause()).await {
                            return Ok(Outcome::Stopped);
                        }
                        continue;
                    }
                }
            }
            // The session first, then the check (an insert starts within the session's
            // timeout of the check: see `lease`).
            let session = self.session.prepare(self.ch, &spec.pipeline).await;
            let reason = if let Err(e) = session {
                e.to_string()
            } else if !self.status.fresh(spec.version, FRESH) {
                format!(
                    "the state store has not recorded that this worker runs v{} for {FRESH:?}: not inserting",
                    spec.version
                )
            } else {
                match self.insert(rows.clone()).await {
                    Ok(()) => return Ok(Outcome::Inserted),
                    Err(InsertError::Data(reason)) => return Ok(Outcome::Rejected(reason)),
                    // Frozen between the check and the insert: refused, not inserted.
                    Err(InsertError::Transient(reason))
                        if reason.starts_with(SESSION_EXPIRED)
                            && self.session.refused(&spec.pipeline) =>
                    {
                        return Err(IngestError::Fenced(reason))
                    }
                    Err(InsertError::Transient(reason)) => {
                        failed = true;
                        reason
                    }
                }
            };
            self.say_retrying(reason);
            if !self.stop.sleep(backoff.pause()).await {
                return Ok(Outcome::Stopped);
            }
        }
    }

    /// Says why an insert is tried again, once per reason (not at every attempt).
    fn say_retrying(&self, reason: String) {
        let said = self.status.stats().last_error;
        if said.as_deref() != Some(reason.as_str()) {
            eprintln!(
                "paver ingest {}: v{}: insert failed, retrying: {reason}",
                self.spec.pipeline, self.spec.version
            );
            self.status.update(|s| s.last_error = Some(reason));
        }
    }

    async fn insert(&self, rows: bytes::Bytes) -> Result<(), InsertError> {
        if !views_exist(self.ch, self.spec)
            .await
            .map_err(|e| InsertError::Transient(e.to_string()))?
        {
            return Err(InsertError::Transient(format!(
                "the views of v{} are missing",
                self.spec.version
            )));
        }
        let (columns, format) = match &self.format {
            Format::JsonEachRow => (None, "JSONEachRow"),
            Format::RowBinary(columns) => (Some(columns.as_slice()), "RowBinary"),
        };
        let session = self.session.params();
        super::lease::fault_stop_before_insert();
        let staging = &self.spec.staging;
        let inserted = self
            .ch
            .insert_rows_in(staging, columns, format, rows, &session)
            .await;
        if inserted.is_ok() {
            self.session.used();
        }
        inserted
    }
}

/// The furthest offset in each partition of these (partition, offset) pairs.
pub(super) fn furthest(at: impl IntoIterator<Item = (i32, i64)>) -> Offsets {
    let mut out = Offsets::new();
    for (partition, offset) in at {
        let o = out.entry(partition).or_insert(offset);
        *o = (*o).max(offset);
    }
    out
}

/// The earliest offset in each partition of these (partition, offset) pairs.
fn earliest(at: impl IntoIterator<Item = (i32, i64)>) -> Offsets {
    let mut out = Offsets::new();
    for (partition, offset) in at {
        let o = out.entry(partition).or_insert(offset);
        *o = (*o).min(offset);
    }
    out
}

/// A partition where the ledger already has one of the offsets from `firsts` on:
/// (partition, first offset, the ledger's last offset).
fn passed(ledger: &Offsets, firsts: &Offsets) -> Option<Passed> {
    firsts.iter().find_map(|(p, first)| {
        ledger
            .get(p)
            .filter(|last| *last >= first)
            .map(|last| Passed {
                partition: *p,
                offset: *first,
                ledger: *last,
            })
    })
}

/// Whether the ledger's offsets reach every partition's offset of `covers`.
fn holds(ledger: &Offsets, covers: &Offsets) -> bool {
    covers
        .iter()
        .all(|(p, o)| ledger.get(p).is_some_and(|have| have >= o))
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

/// The staging table's (name, type) columns, as the server has them.
pub async fn staging_columns(
    ch: &ClickHouse,
    spec: &IngestSpec,
) -> Result<Vec<(String, String)>, IngestError> {
    let statement = format!(
        "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
        literal(&spec.staging.database),
        literal(&spec.staging.name)
    );
    let rows = ch.rows(&statement).await?;
    rows.into_iter()
        .map(|r| match r.as_slice() {
            [name, ty] => Ok((name.clone(), ty.clone())),
            _ => Err(IngestError::ClickHouse(ClickHouseError::Answer {
                statement: statement.clone(),
                why: format!("a row that is not (name, type): {r:?}"),
            })),
        })
        .collect()
}

async fn views_exist(ch: &ClickHouse, spec: &IngestSpec) -> Result<bool, ClickHouseError> {
    let names: Vec<String> = spec.views.iter().map(|v| literal(&v.name)).collect();
    if names.is_empty() {
        return Ok(true);
    }
    let statement = format!(
        "SELECT count() FROM system.tables WHERE database = {} AND name IN ({})",
        literal(&spec.staging.database),
        names.join(", ")
    );
    let rows = ch.rows(&statement).await?;
    let answer = |why: String| ClickHouseError::Answer {
        statement: statement.clone(),
        why,
    };
    let count = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| answer("no row".to_string()))?;
    let count: usize = count
        .parse()
        .map_err(|_| answer(format!("`{count}` for a count")))?;
    Ok(count == spec.views.len())
}

/// The last offset the ledger has for the pipeline, per partition (any version).
pub async fn ledger_offsets(ch: &ClickHouse, spec: &IngestSpec) -> Result<Offsets, IngestError> {
    let statement = format!(
        "SELECT partition, max(last_offset) FROM {} WHERE pipeline = {} GROUP BY partition",
        table_sql(&spec.ledger),
        literal(&spec.pipeline)
    );
    let rows = ch.rows(&statement).await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let parsed = match row.as_slice() {
            [p, o] => p.parse().ok().zip(o.parse().ok()),
            _ => None,
        };
        let (partition, offset) = parsed.ok_or_else(|| {
            IngestError::ClickHouse(ClickHouseError::Answer {
                statement: statement.clone(),
                why: format!("a row that is not (partition, offset): {row:?}"),
            })
        })?;
        out.insert(partition, offset);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_furthest_offset_of_each_partition() {
        let f = furthest([(0, 5), (1, 2), (0, 9), (0, 7)]);
        assert_eq!(f, Offsets::from([(0, 9), (1, 2)]));
    }

    #[test]
    fn a_batch_is_in_only_when_the_ledger_reaches_every_partition() {
        let covers = Offsets::from([(0, 9), (1, 2)]);
        assert!(holds(&Offsets::from([(0, 9), (1, 3)]), &covers));
        assert!(!holds(&Offsets::from([(0, 8), (1, 3)]), &covers));
        assert!(!holds(&Offsets::from([(0, 9)]), &covers));
        assert!(holds(&Offsets::new(), &Offsets::new()));
    }

    #[test]
    fn a_batch_is_fenced_off_where_the_ledger_has_its_first_record_or_later() {
        let firsts = earliest([(0, 10), (1, 4), (0, 12)]);
        assert_eq!(firsts, Offsets::from([(0, 10), (1, 4)]));
        assert_eq!(passed(&Offsets::from([(0, 9), (1, 3)]), &firsts), None);
        assert_eq!(passed(&Offsets::from([(2, 50)]), &firsts), None);
        assert_eq!(
            passed(&Offsets::from([(0, 9), (1, 4)]), &firsts),
            Some(Passed {
                partition: 1,
                offset: 4,
                ledger: 4
            })
        );
        assert_eq!(
            passed(&Offsets::from([(0, 30)]), &firsts),
            Some(Passed {
                partition: 0,
                offset: 10,
                ledger: 30
            })
        );
    }
}
