//! What `paver run` tells its listeners as it happens: every reconcile's start and outcome,
//! served as server-sent events (`GET /events`, for a page that refreshes itself) and as
//! a long poll on one revision (`GET /revisions/<sha>/wait`, what `paver wait --server`
//! asks), so that neither polls: an answer leaves as soon as the outcome is recorded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// The longest a long poll is held before it is answered "not yet" (the client asks again).
pub const MAX_HOLD: Duration = Duration::from_secs(30);

/// How many outcomes that the state store does not record (a revision blocked by its plan)
/// are remembered for the long poll.
const REMEMBERED: usize = 64;

/// One thing that happened in the run loop.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// A reconcile started (the loop woke: a webhook, the poll interval, a retry).
    ReconcileStarted { at: String },
    /// A reconcile reached a revision and ended: `status` is the revision's (`applied`,
    /// `refused`, `rolled-back`), or `waiting`/`held` when the error policy kept it back.
    Revision {
        sha: String,
        status: String,
        steps: u64,
        error: Option<String>,
        at: String,
    },
    /// A reconcile ended before it could read a revision (the remote, the store, a server
    /// that does not answer).
    ReconcileFailed { error: String, at: String },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::ReconcileStarted { .. } => "reconcile-started",
            Event::Revision { .. } => "revision",
            Event::ReconcileFailed { .. } => "reconcile-failed",
        }
    }
}

/// The run loop's broadcast of [`Event`]s, and the outcomes the store does not keep.
pub struct Events {
    sender: broadcast::Sender<Event>,
    /// Outcomes that are final but not in the store (a blocked plan): (sha, event).
    unrecorded: Mutex<VecDeque<(String, Event)>>,
    /// Set when `paver run` stops: every long poll and stream ends.
    stop: watch::Receiver<bool>,
}

impl Events {
    pub fn new(stop: watch::Receiver<bool>) -> Events {
        Events {
            sender: broadcast::channel(256).0,
            unrecorded: Mutex::new(VecDeque::new()),
            stop,
        }
    }

    /// Tell every listener (none listening is fine).
    pub fn send(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// A final outcome the store does not record (the plan was blocked): remembered so that
    /// `paver wait` hears of it even when it asks after the event went by.
    pub fn remember_unrecorded(&self, sha: &str, event: Event) {
        let mut list = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(s, _)| s != sha);
        if list.len() == REMEMBERED {
            list.pop_front();
        }
        list.push_back((sha.to_string(), event));
    }

    fn unrecorded(&self, sha: &str) -> Option<Event> {
        let list = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().find(|(s, _)| s == sha).map(|(_, e)| e.clone())
    }

    /// Forget an unrecorded outcome: the revision is tried again (the store then speaks).
    pub fn forget_unrecorded(&self, sha: &str) {
        let mut list = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(s, _)| s != sha);
    }
}

/// Now, as the store writes times.
pub fn now() -> String {
    crate::policy::format_ms(crate::policy::now_ms())
}

/// What the long poll needs from `paver run`'s shared state.
pub trait Source: Send + Sync + 'static {
    fn events(&self) -> &Events;
    fn state(&self) -> std::path::PathBuf;
}

/// Whether a revision's status is an outcome (`paver wait` stops there).
fn is_final(status: &str) -> bool {
    matches!(status, "applied" | "refused" | "rolled-back")
}

/// `GET /revisions/<sha>/wait?timeout_ms=N`: answers `200` with the revision's record as
/// soon as its latest attempt is final (applied, refused, rolled back; a plan refused as
/// blocked, which the store does not record, comes as `{"sha", "status": "refused",
/// "error"}`); `202` with the record so far (or `{"status": "unknown"}`) when `timeout_ms`
/// (at most 30 s, default 30 s) passes first; `503` when `paver run` stops meanwhile.
pub async fn wait<S: Source>(
    State(shared): State<Arc<S>>,
    Path(sha): Path<String>,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    let asked = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("timeout_ms=")));
    let hold = match asked.map(str::parse::<u64>) {
        None => MAX_HOLD,
        Some(Ok(ms)) => Duration::from_millis(ms).min(MAX_HOLD),
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("timeout_ms: not a number of milliseconds: {e}"),
            )
                .into_response()
        }
    };
    let deadline = tokio::time::Instant::now() + hold;
    let events = shared.events();
    // Subscribed before the store is read: an outcome recorded in between still wakes us.
    let mut heard = events.sender.subscribe();
    let mut stop = events.stop.clone();
    loop {
        let state = shared.state();
        let wanted = sha.clone();
        let record = tokio::task::spawn_blocking(move || {
            crate::store::Store::open(&state).and_then(|s| s.latest_for(&wanted))
        })
        .await;
        let record = match record {
            Ok(Ok(record)) => record,
            Ok(Err(e)) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        if let Some(record) = record.as_ref().filter(|r| is_final(r.status.as_str())) {
            return Json(record).into_response();
        }
        if let Some(Event::Revision { status, error, .. }) = events.unrecorded(&sha) {
            return Json(serde_json::json!({"sha": sha, "status": status, "error": error}))
                .into_response();
        }
        let so_far = match &record {
            Some(r) => serde_json::json!(r),
            None => serde_json::json!({"status": "unknown"}),
        };
        if *stop.borrow() {
            return (StatusCode::SERVICE_UNAVAILABLE, Json(so_far)).into_response();
        }
        tokio::select! {
            heard = heard.recv() => match heard {
                // Any reconcile's end may have recorded this revision: read the store again.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return (StatusCode::SERVICE_UNAVAILABLE, Json(so_far)).into_response()
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                return (StatusCode::ACCEPTED, Json(so_far)).into_response()
            }
            _ = stop.changed() => {
                return (StatusCode::SERVICE_UNAVAILABLE, Json(so_far)).into_response()
            }
        }
    }
}

/// `GET /events`: server-sent events, one per [`Event`] (`event: <type>`, `data: <JSON>`),
/// with a keep-alive comment every 15 s; the stream ends when `paver run` stops. A client
/// too slow to read loses the oldest events and gets `event: lagged` with how many.
pub async fn stream<S: Source>(State(shared): State<Arc<S>>) -> impl IntoResponse {
    let events = shared.events();
    let heard = events.sender.subscribe();
    let stop = events.stop.clone();
    let stream = futures::stream::unfold((heard, stop), |(mut heard, mut stop)| async move {
        if *stop.borrow() {
            return None;
        }
        let next = tokio::select! {
            heard = heard.recv() => heard,
            _ = stop.changed() => return None,
        };
        let event = match next {
            Ok(event) => SseEvent::default()
                .event(event.name())
                .json_data(&event)
                .unwrap_or_else(|e| SseEvent::default().event("error").data(e.to_string())),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                SseEvent::default().event("lagged").data(n.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(event), (heard, stop)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrecorded_outcomes_are_bounded_and_replaced() {
        let (_tx, rx) = watch::channel(false);
        let events = Events::new(rx);
        let outcome = |n: u64| Event::Revision {
            sha: "s".into(),
            status: "refused".into(),
            steps: n,
            error: None,
            at: String::new(),
        };
        for i in 0..(REMEMBERED as u64 + 10) {
            events.remember_unrecorded(&format!("sha{i}"), outcome(i));
        }
        assert_eq!(events.unrecorded("sha0"), None);
        assert_eq!(
            events.unrecorded(&format!("sha{}", REMEMBERED + 9)),
            Some(outcome(REMEMBERED as u64 + 9))
        );
        events.remember_unrecorded("sha20", outcome(1));
        events.remember_unrecorded("sha20", outcome(2));
        assert_eq!(events.unrecorded("sha20"), Some(outcome(2)));
        events.forget_unrecorded("sha20");
        assert_eq!(events.unrecorded("sha20"), None);
    }

    #[test]
    fn events_serialize_with_their_type() {
        let e = Event::Revision {
            sha: "abc".into(),
            status: "applied".into(),
            steps: 2,
            error: None,
            at: "t".into(),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"type": "revision", "sha": "abc", "status": "applied", "steps": 2, "error": null, "at": "t"})
        );
        assert_eq!(e.name(), "revision");
    }
}
