//! Records consumed together and inserted in one statement: the batcher closes a batch at
//! a number of records, a number of bytes, or when its first record has waited `linger`.
//! Pure: the clock is passed in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use super::rows::RowError;

/// A record that goes to the dead-letter topic, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Dead {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub reason: String,
}

/// A record of a batch: where it came from and its row's bytes in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub row: Range<usize>,
}

/// Records consumed together, inserted in one statement.
#[derive(Debug, Default)]
pub struct Batch {
    /// The rows of `items`, in the decoder's format (`RowBinary` or `JSONEachRow` lines).
    pub rows: Vec<u8>,
    pub items: Vec<Item>,
    pub dead: Vec<Dead>,
    /// Per partition, the offset after the last record of the batch (what to commit).
    pub next: BTreeMap<i32, i64>,
    pub consumed: u64,
}

/// When a batch is closed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// This many records (rows and dead letters) …
    pub rows: usize,
    /// … or this many bytes of rows …
    pub bytes: usize,
    /// … or its first record is this old.
    pub linger: Duration,
}

/// Builds batches out of consumed records.
#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    batch: Batch,
    first_at: Option<Instant>,
}

impl Batcher {
    pub fn new(limits: Limits) -> Batcher {
        Batcher {
            limits,
            batch: Batch::default(),
            first_at: None,
        }
    }

    /// Add a consumed record. `write` appends its row to the buffer it is given, or says
    /// why the record cannot be ingested (what it wrote then is dropped); a record
    /// without a value is dead without asking.
    pub fn add(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        now: Instant,
        write: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), RowError>,
    ) {
        let batch = &mut self.batch;
        batch.consumed += 1;
        batch.next.insert(partition, offset + 1);
        self.first_at.get_or_insert(now);
        let key = key.map(<[u8]>::to_vec);
        let Some(payload) = payload else {
            batch.dead.push(Dead {
                partition,
                offset,
                key,
                payload: None,
                reason: "an empty record (no value)".to_string(),
            });
            return;
        };
        let at = batch.rows.len();
        match write(payload, &mut batch.rows) {
            Ok(()) => batch.items.push(Item {
                partition,
                offset,
                key,
                payload: Some(payload.to_vec()),
                row: at..batch.rows.len(),
            }),
            Err(e) => {
                batch.rows.truncate(at);
                batch.dead.push(Dead {
                    partition,
                    offset,
                    key,
                    payload: Some(payload.to_vec()),
                    reason: e.reason(),
                });
            }
        }
    }

    /// Whether the batch must be sent now: full, or its first record lingered enough.
    pub fn ready(&self, now: Instant) -> bool {
        let full = self.batch.items.len() + self.batch.dead.len() >= self.limits.rows
            || self.batch.rows.len() >= self.limits.bytes;
        let due = self
            .first_at
            .is_some_and(|t| now.saturating_duration_since(t) >= self.limits.linger);
        self.batch.consumed > 0 && (full || due)
    }

    /// How long to wait for the next record: until the batch is due, or `idle` when it is
    /// empty.
    pub fn wait(&self, now: Instant, idle: Duration) -> Duration {
        match self.first_at {
            Some(t) => self
                .limits
                .linger
                .saturating_sub(now.saturating_duration_since(t)),
            None => idle,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batch.consumed == 0
    }

    /// The batch so far; the batcher starts a new one.
    pub fn take(&mut self) -> Batch {
        self.first_at = None;
        std::mem::take(&mut self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rows: usize, bytes: usize, linger_ms: u64) -> Limits {
        Limits {
            rows,
            bytes,
            linger: Duration::from_millis(linger_ms),
        }
    }

    fn row(payload: &[u8], out: &mut Vec<u8>) -> Result<(), RowError> {
        out.extend_from_slice(payload);
        out.push(b'\n');
        Ok(())
    }

    #[test]
    fn a_batch_is_ready_at_its_row_count_dead_letters_included() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(3, 1 << 20, 60_000));
        b.add(0, 10, None, Some(b"a"), now, row);
        b.add(0, 11, None, None, now, row);
        assert!(!b.ready(now));
        b.add(1, 4, Some(b"k"), Some(b"bad"), now, |_, out| {
            out.extend_from_slice(b"half a row");
            Err(RowError::Dead("cannot decode".to_string()))
        });
        assert!(b.ready(now));
        let batch = b.take();
        assert_eq!(batch.consumed, 3);
        assert_eq!(batch.rows, b"a\n", "a failed row leaves nothing behind");
        assert_eq!(batch.items.len(), 1);
        assert_eq!(batch.items[0].row, 0..2);
        assert_eq!(
            batch
                .dead
                .iter()
                .map(|d| (d.offset, d.reason.as_str()))
                .collect::<Vec<_>>(),
            [(11, "an empty record (no value)"), (4, "cannot decode")]
        );
        assert_eq!(batch.dead[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(batch.next, BTreeMap::from([(0, 12), (1, 5)]));
        assert!(b.is_empty() && !b.ready(now));
    }

    #[test]
    fn a_batch_is_ready_at_its_byte_size() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(1000, 8, 60_000));
        b.add(0, 0, None, Some(b"abc"), now, row);
        assert!(!b.ready(now));
        b.add(0, 1, None, Some(b"defg"), now, row);
        assert!(b.ready(now));
    }

    #[test]
    fn a_batch_is_ready_when_its_first_record_lingered() {
        let start = Instant::now();
        let mut b = Batcher::new(limits(1000, 1 << 20, 100));
        assert_eq!(
            b.wait(start, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert!(!b.ready(start + Duration::from_secs(10)), "empty: never");
        b.add(0, 0, None, Some(b"a"), start, row);
        b.add(
            0,
            1,
            None,
            Some(b"b"),
            start + Duration::from_millis(60),
            row,
        );
        let later = start + Duration::from_millis(60);
        assert!(!b.ready(later));
        assert_eq!(b.wait(later, Duration::ZERO), Duration::from_millis(40));
        assert!(b.ready(start + Duration::from_millis(100)));
        assert_eq!(
            b.wait(start + Duration::from_millis(150), Duration::ZERO),
            Duration::ZERO
        );
        b.take();
        // The next batch's linger counts from its own first record.
        let next = start + Duration::from_millis(200);
        b.add(0, 2, None, Some(b"c"), next, row);
        assert!(!b.ready(next + Duration::from_millis(99)));
    }
}
