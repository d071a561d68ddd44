//! The one stop token of the ingestion worker: every wait and every retry loop of a
//! worker races it, so that a shutdown (SIGTERM) or a cut-over ends the work promptly.
//!
//! A token is stopped by its own [`Stopper`] or by any token it was derived from: the
//! supervisor's shutdown stops every pipeline, a pipeline's stop stops its running version,
//! and a version is stopped alone when another version goes live.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Says "stop" to a [`Stop`] token and every token derived from it.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Whether to stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A new token and what stops it.
    pub fn new() -> (Stopper, Stop) {
        let (tx, rx) = watch::channel(false);
        (Stopper(Arc::new(tx)), Stop(rx))
    }

    /// A token that stops when `shutdown` turns true (what `main` and `server` hold).
    pub fn from_watch(shutdown: watch::Receiver<bool>) -> Stop {
        Stop(shutdown)
    }

    /// A token stopped by its own stopper or by this one. It follows this one through a
    /// small task, which ends when this one stops or every clone of the new token is dropped.
    pub fn child(&self) -> (Stopper, Stop) {
        let (stopper, child) = Stop::new();
        if self.is_stopped() {
            stopper.stop();
            return (stopper, child);
        }
        let parent = self.clone();
        let forward = stopper.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = parent.stopped() => forward.stop(),
                _ = forward.0.closed() => {}
            }
        });
        (stopper, child)
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopped. A token whose stopper is gone can no longer be stopped:
    /// this then never resolves.
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleep for `pause` unless stopped first; `true` when the whole pause was slept.
    pub async fn sleep(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(pause) => !self.is_stopped(),
            _ = self.stopped() => false,
        }
    }
}

/// A growing pause between attempts: doubled after each, up to a ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// The pause before the next attempt.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_parent_stops_its_children_and_a_child_stops_alone() {
        let (root_stopper, root) = Stop::new();
        let (a_stopper, a) = root.child();
        let (_b_stopper, b) = root.child();
        let (_c_stopper, c) = a.child();
        a_stopper.stop();
        c.stopped().await;
        assert!(a.is_stopped() && c.is_stopped());
        assert!(!root.is_stopped() && !b.is_stopped());
        root_stopper.stop();
        b.stopped().await;
        assert!(!b.sleep(Duration::from_secs(3600)).await);
        // Derived from a stopped token: stopped at once.
        assert!(root.child().1.is_stopped());
    }

    #[tokio::test]
    async fn a_token_from_a_watch_follows_it() {
        let (tx, rx) = watch::channel(false);
        let stop = Stop::from_watch(rx);
        assert!(stop.sleep(Duration::from_millis(1)).await);
        tx.send(true).unwrap();
        stop.stopped().await;
        assert!(stop.is_stopped());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<u128> = (0..4).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350]);
    }
}
