//! What a worker reports: its counters (the `pipeline_status` record of `paver status`),
//! the version it runs (its heartbeat in `ingest_workers`, the cut-over's hand-off), and
//! when that heartbeat was last written (a worker whose heartbeat is not fresh does not
//! start an insert: `await_handover` no longer counts it).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::lease::Lease;
use crate::store::{now_ms, PipelineStatus};

/// Counters of a worker, reported to the state store.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub version: u32,
    pub consumed: u64,
    pub inserted: u64,
    pub dead_lettered: u64,
    pub lag: Option<i64>,
    pub rows_per_sec: f64,
    pub last_error: Option<String>,
}

impl Stats {
    pub fn record(&self, pipeline: &str, worker: &str) -> PipelineStatus {
        PipelineStatus {
            name: pipeline.to_string(),
            version: self.version,
            worker: worker.to_string(),
            consumed: self.consumed,
            inserted: self.inserted,
            dead_lettered: self.dead_lettered,
            lag: self.lag,
            rows_per_sec: self.rows_per_sec,
            last_error: self.last_error.clone(),
            updated_at: String::new(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    stats: Stats,
    /// The version whose staging table this worker may insert into.
    running: Option<u32>,
    /// The partitions it holds (a static assignment, or what its group gave it); `None`
    /// while it runs no version.
    partitions: Option<Vec<i32>>,
}

/// The state a worker's tasks share: the version loop writes it, the heartbeat reports it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    state: Arc<Mutex<State>>,
    /// When the heartbeat (with `running`) was last written, in Unix ms.
    beat_ms: Arc<AtomicI64>,
    /// Woken when `running` changes, so that the heartbeat says it at once.
    changed: Arc<tokio::sync::Notify>,
    /// The claims of a consumer group's member and its fence ([`Lease`]).
    lease: Arc<Lease>,
}

impl Status {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.lock().stats)
    }

    pub fn running(&self) -> Option<u32> {
        self.lock().running
    }

    /// Say which partitions the worker holds now.
    pub fn set_partitions(&self, partitions: Option<Vec<i32>>) {
        self.lock().partitions = partitions;
    }

    /// The partitions the worker holds (for its heartbeat and `paver status`).
    pub fn partitions(&self) -> Option<Vec<i32>> {
        self.lock().partitions.clone()
    }

    /// Say that the worker now runs `version` (it inserts into no other one's table).
    pub fn set_running(&self, version: Option<u32>) {
        let mut state = self.lock();
        if state.running != version {
            state.running = version;
            // Not fresh until a heartbeat says the new version.
            self.beat_ms.store(0, Ordering::SeqCst);
            if let Some(v) = version {
                state.stats.version = v;
            }
            drop(state);
            self.changed.notify_one();
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Have the heartbeat write at once (a claim).
    pub fn wake_heartbeat(&self) {
        self.changed.notify_one();
    }

    /// The process was frozen for `gap`: not fresh any more, and the partitions are given
    /// up ([`Lease::pause`]).
    pub fn pause(&self, gap: Duration) {
        self.beat_ms.store(0, Ordering::SeqCst);
        self.lease.pause(gap);
    }

    pub async fn running_changed(&self) {
        self.changed.notified().await
    }

    /// The heartbeat saying `version` was written.
    pub fn beat(&self, version: Option<u32>, at_ms: i64) {
        if self.running() == version {
            self.beat_ms.store(at_ms, Ordering::SeqCst);
        }
    }

    /// Whether the store heard within `max_age` that this worker runs `version`, with no
    /// other worker's claim on its partitions, and it need not give them up.
    pub fn fresh(&self, version: u32, max_age: Duration) -> bool {
        self.running() == Some(version)
            && now_ms() - self.beat_ms.load(Ordering::SeqCst) <= max_age.as_millis() as i64
            && self.lease.lost().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_fresh_only_for_the_version_its_last_heartbeat_said() {
        let status = Status::default();
        assert!(!status.fresh(1, Duration::from_secs(2)));
        status.set_running(Some(1));
        assert!(!status.fresh(1, Duration::from_secs(2)), "not said yet");
        status.beat(Some(1), now_ms());
        assert!(status.fresh(1, Duration::from_secs(2)));
        assert!(!status.fresh(2, Duration::from_secs(2)));
        status.beat(Some(1), now_ms() - 5_000);
        assert!(!status.fresh(1, Duration::from_secs(2)), "too old");
        status.beat(Some(1), now_ms());
        // Another version: not fresh until a heartbeat says it; one of the old does not.
        status.set_running(Some(2));
        assert!(!status.fresh(2, Duration::from_secs(2)));
        status.beat(Some(1), now_ms());
        assert!(!status.fresh(2, Duration::from_secs(2)));
        status.beat(Some(2), now_ms());
        assert!(status.fresh(2, Duration::from_secs(2)));
        assert_eq!(status.stats().version, 2);
        // A worker that must give its partitions up is not fresh, even after a heartbeat.
        status.pause(Duration::from_secs(9));
        assert!(!status.fresh(2, Duration::from_secs(2)));
        status.beat(Some(2), now_ms());
        assert!(!status.fresh(2, Duration::from_secs(2)));
        status.lease().reset();
        assert!(status.fresh(2, Duration::from_secs(2)));
    }
}
