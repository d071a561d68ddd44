//! The cut-over's hand-off, seen from the reconciler: after it made a version live, it
//! waits until every running worker of the pipeline says it runs that version. A worker
//! says so only once nothing of the previous version is in flight (see
//! [`super::supervisor`]), so from then on every record read goes through the live
//! version, and the previous one can be retired.

use std::path::Path;
use std::time::Duration;

use crate::store::{now_ms, Store, StoreError, WorkerRecord};

/// A worker whose last heartbeat is older than this is not running (workers beat every
/// 400 ms).
pub const FRESH: Duration = Duration::from_secs(3);

/// How often the workers' records are read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// What the wait for a hand-over found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverOutcome {
    /// Every running worker of the pipeline runs the version.
    Confirmed,
    /// No worker of the pipeline runs (none has a fresh heartbeat).
    NoWorkers,
    /// This worker still said `reported` when the time was up.
    TimedOut {
        worker: String,
        reported: Option<u32>,
    },
}

/// What the workers' records say now: `None` while some running worker has not taken
/// `version` yet (that one is returned).
pub fn outcome_now(
    workers: &[WorkerRecord],
    version: Option<u32>,
    now_ms: i64,
) -> Result<HandoverOutcome, WorkerRecord> {
    let fresh: Vec<&WorkerRecord> = workers
        .iter()
        .filter(|w| now_ms - w.heartbeat_ms <= FRESH.as_millis() as i64)
        .collect();
    if fresh.is_empty() {
        return Ok(HandoverOutcome::NoWorkers);
    }
    match fresh.into_iter().find(|w| w.version != version) {
        Some(behind) => Err(behind.clone()),
        None => Ok(HandoverOutcome::Confirmed),
    }
}

/// Wait until every worker of `pipeline` with a fresh heartbeat reports `version` (`None`:
/// the pipeline has no live version any more), at most `timeout`. The store at `state` is
/// opened on its own connection, and read on a blocking thread.
pub async fn await_handover(
    state: &Path,
    pipeline: &str,
    version: Option<u32>,
    timeout: Duration,
) -> Result<HandoverOutcome, StoreError> {
    let path = state.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .map_err(|e| StoreError::Recovery(format!("opening the state store: {e}")))??;
    let store = std::sync::Arc::new(std::sync::Mutex::new(store));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (s, p) = (store.clone(), pipeline.to_string());
        let workers = tokio::task::spawn_blocking(move || {
            s.lock().unwrap_or_else(|e| e.into_inner()).workers_of(&p)
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("reading the workers: {e}")))??;
        match outcome_now(&workers, version, now_ms()) {
            Ok(outcome) => return Ok(outcome),
            Err(behind) if tokio::time::Instant::now() >= deadline => {
                return Ok(HandoverOutcome::TimedOut {
                    worker: behind.worker,
                    reported: behind.version,
                })
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(worker: &str, version: Option<u32>, age_ms: i64) -> WorkerRecord {
        WorkerRecord {
            worker: worker.to_string(),
            version,
            heartbeat_ms: 1_000_000 - age_ms,
            partitions: None,
        }
    }

    #[test]
    fn only_fresh_workers_count() {
        let now = 1_000_000;
        assert_eq!(
            outcome_now(&[], Some(2), now),
            Ok(HandoverOutcome::NoWorkers)
        );
        let stale = record("a", Some(1), 3_001);
        assert_eq!(
            outcome_now(std::slice::from_ref(&stale), Some(2), now),
            Ok(HandoverOutcome::NoWorkers)
        );
        let behind = record("b", Some(1), 100);
        assert_eq!(
            outcome_now(&[stale.clone(), behind.clone()], Some(2), now),
            Err(behind)
        );
        let done = record("b", Some(2), 2_999);
        assert_eq!(
            outcome_now(&[stale, done], Some(2), now),
            Ok(HandoverOutcome::Confirmed)
        );
        // No live version: the workers must say they run none.
        assert_eq!(
            outcome_now(&[record("c", None, 0)], None, now),
            Ok(HandoverOutcome::Confirmed)
        );
        assert!(outcome_now(&[record("c", Some(2), 0)], None, now).is_err());
    }

    #[tokio::test]
    async fn the_wait_ends_when_every_worker_took_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        store.worker_report("p", "w1", Some(2)).unwrap();
        store.worker_report("p", "w2", Some(1)).unwrap();
        store.worker_report("other", "w3", Some(1)).unwrap();
        // w2 hands over a little later, as a worker finishing its insert would.
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Store::open(&path)
                    .unwrap()
                    .worker_report("p", "w2", Some(2))
                    .unwrap();
            })
        };
        let outcome = await_handover(&path, "p", Some(2), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(outcome, HandoverOutcome::Confirmed);
        writer.await.unwrap();
        assert_eq!(store.workers_of("p").unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_worker_that_keeps_the_old_version_times_the_wait_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        store.worker_report("p", "w1", Some(2)).unwrap();
        store.worker_report("p", "w2", Some(1)).unwrap();
        let outcome = await_handover(&path, "p", Some(2), Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            HandoverOutcome::TimedOut {
                worker: "w2".to_string(),
                reported: Some(1)
            }
        );
        // A clean stop removes the worker: nothing left to wait for.
        store.forget_worker("p", "w2").unwrap();
        store.forget_worker("p", "w1").unwrap();
        let outcome = await_handover(&path, "p", Some(2), Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(outcome, HandoverOutcome::NoWorkers);
    }
}
