//! Signals between the reconciler and the embedded workers when they share a process
//! (`paver run`): the live record changed, a worker reported the version it runs. The state
//! store stays the hand-off point and both sides still read it on their own clock (workers in
//! other processes know nothing of these); a signal only spares a waiter the rest of its
//! poll interval, so a cut-over is confirmed as soon as the worker has handed over.

use std::sync::LazyLock;

use tokio::sync::watch;

static LIVE_CHANGED: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);
static WORKER_REPORTED: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// The live record of some pipeline was written (by the cut-over).
pub fn live_changed() {
    LIVE_CHANGED.send_modify(|n| *n = n.wrapping_add(1));
}

/// Hears [`live_changed`] from the moment it is called (none is lost between two waits).
pub fn on_live_change() -> watch::Receiver<u64> {
    LIVE_CHANGED.subscribe()
}

/// A worker wrote which version it runs.
pub fn worker_reported() {
    WORKER_REPORTED.send_modify(|n| *n = n.wrapping_add(1));
}

/// Hears [`worker_reported`] from the moment it is called.
pub fn on_worker_report() -> watch::Receiver<u64> {
    WORKER_REPORTED.subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_sent_between_two_waits_is_not_lost() {
        let mut heard = on_live_change();
        live_changed();
        // Sent before anyone waited: the next wait returns at once.
        heard.changed().await.unwrap();
        let reports = on_worker_report();
        worker_reported();
        assert!(reports.has_changed().unwrap());
    }
}
