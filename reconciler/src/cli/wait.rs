//! `paver wait`: until a revision is applied (exit 0), refused or rolled back (exit 1), or
//! the timeout passes (exit 2). Against a `paver run` it long-polls
//! `/revisions/<sha>/wait`, which answers the moment the outcome is recorded; against an
//! older `paver run` (no such route) it asks `/revisions/<sha>` every second, as before;
//! without a server it reads the state store every 100 ms.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::Store;

/// How long to wait between two attempts to reach a server that does not answer (it may be
/// restarting).
const UNREACHABLE_RETRY: Duration = Duration::from_millis(250);

/// How often the state store is read when there is no server.
const STORE_POLL: Duration = Duration::from_millis(100);

/// How often an older `paver run` (without the long poll) is asked.
const LEGACY_POLL: Duration = Duration::from_secs(1);

/// How a wait ended, when it did not find the revision applied.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Refused or rolled back: exit 1.
    #[error("{sha} was {status}: {error}")]
    Failed {
        sha: String,
        status: String,
        error: String,
    },
    /// Not decided in time: exit 2.
    #[error("{sha} is still {status} after {timeout:?}{}", .last_error.as_ref().map_or(String::new(), |e| format!(" (last error: {e})")))]
    TimedOut {
        sha: String,
        status: String,
        timeout: Duration,
        last_error: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the revision's record cannot be read: {0}")]
    Record(#[from] serde_json::Error),
}

/// What one look at the revision found.
enum Seen {
    /// Applied: its record (the plan is printed).
    Applied(serde_json::Value),
    Failed {
        status: String,
        error: String,
    },
    /// Not decided yet: its status so far (`unknown` when not seen).
    Pending(String),
}

fn seen(record: Option<serde_json::Value>) -> Seen {
    let Some(record) = record else {
        return Seen::Pending("not seen by the reconciler".to_string());
    };
    match record["status"].as_str() {
        Some("applied") => Seen::Applied(record),
        Some(s @ ("refused" | "rolled-back")) => Seen::Failed {
            status: s.to_string(),
            error: record["error"].as_str().unwrap_or("").to_string(),
        },
        Some("unknown") | None => Seen::Pending("not seen by the reconciler".to_string()),
        Some(other) => Seen::Pending(other.to_string()),
    }
}

/// Wait for `sha`, from a `paver run` at `server` or the state store at `state`. Returns
/// the applied revision's record.
pub async fn wait(
    sha: &str,
    timeout: Duration,
    server: Option<&str>,
    state: &Path,
) -> Result<serde_json::Value, WaitError> {
    let deadline = Instant::now() + timeout;
    let mut last_error: Option<String> = None;
    let mut status = "not seen by the reconciler".to_string();
    let mut legacy = false;
    loop {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let (found, pause) = match server {
            None => {
                let record = Store::open(state)?.latest_for(sha)?;
                (
                    seen(record.map(serde_json::to_value).transpose()?),
                    STORE_POLL,
                )
            }
            Some(url) if legacy => {
                let url = format!("{}/revisions/{sha}", url.trim_end_matches('/'));
                match crate::http::get_json(&url).await {
                    Ok(record) => (seen(record), LEGACY_POLL),
                    Err(e) => {
                        last_error = Some(e.to_string());
                        (Seen::Pending(status.clone()), UNREACHABLE_RETRY)
                    }
                }
            }
            Some(url) => {
                let hold = left.min(crate::server::events::MAX_HOLD);
                let url = format!(
                    "{}/revisions/{sha}/wait?timeout_ms={}",
                    url.trim_end_matches('/'),
                    hold.as_millis()
                );
                // The server answers within `hold`; a server that hangs is given up on.
                let asked = tokio::time::timeout(
                    hold + Duration::from_secs(5),
                    crate::http::get_with_status(&url),
                )
                .await;
                match asked {
                    Ok(Ok((200, record))) => (seen(Some(record)), Duration::ZERO),
                    Ok(Ok((202, record))) => (seen(Some(record)), Duration::ZERO),
                    Ok(Ok((404, _))) => {
                        legacy = true;
                        (Seen::Pending(status.clone()), Duration::ZERO)
                    }
                    Ok(Ok((code, body))) => {
                        last_error = Some(format!("{url} answered {code}: {body}"));
                        (Seen::Pending(status.clone()), UNREACHABLE_RETRY)
                    }
                    Ok(Err(e)) => {
                        last_error = Some(e.to_string());
                        (Seen::Pending(status.clone()), UNREACHABLE_RETRY)
                    }
                    Err(_) => {
                        last_error = Some(format!("{url} did not answer in {hold:?}"));
                        (Seen::Pending(status.clone()), Duration::ZERO)
                    }
                }
            }
        };
        match found {
            Seen::Applied(record) => return Ok(record),
            Seen::Failed { status, error } => {
                return Err(WaitError::Failed {
                    sha: sha.to_string(),
                    status,
                    error,
                })
            }
            Seen::Pending(s) => status = s,
        }
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                sha: sha.to_string(),
                status,
                timeout,
                last_error,
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_as_outcomes() {
        assert!(matches!(
            seen(Some(serde_json::json!({"status": "applied"}))),
            Seen::Applied(_)
        ));
        assert!(matches!(
            seen(Some(serde_json::json!({"status": "rolled-back", "error": "boom"}))),
            Seen::Failed { status, error } if status == "rolled-back" && error == "boom"
        ));
        assert!(matches!(
            seen(Some(serde_json::json!({"status": "applying"}))),
            Seen::Pending(s) if s == "applying"
        ));
        assert!(matches!(
            seen(Some(serde_json::json!({"status": "unknown"}))),
            Seen::Pending(s) if s == "not seen by the reconciler"
        ));
        assert!(matches!(seen(None), Seen::Pending(_)));
    }
}
