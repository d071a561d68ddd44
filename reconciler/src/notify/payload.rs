//! What each notification says: a revision's outcome (JSON for webhooks), a GitHub commit
//! status (GitHub's documented body), and an alert (JSON for URLs, Slack's incoming-webhook
//! payload). Pure functions of what happened.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The outcome of a revision, as the webhooks and commit statuses say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionEvent {
    /// Its apply starts (commit statuses only: `pending`).
    Started,
    Applied,
    Refused,
    RolledBack,
}

impl RevisionEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionEvent::Started => "applying",
            RevisionEvent::Applied => "applied",
            RevisionEvent::Refused => "refused",
            RevisionEvent::RolledBack => "rolled-back",
        }
    }
}

/// A revision's outcome for `notifications.webhooks`.
pub fn revision(
    sha: &str,
    event: RevisionEvent,
    error: Option<&str>,
    plan: Option<&PlanSummary>,
    link: &str,
) -> Value {
    json!({
        "event": "revision",
        "revision": sha,
        "status": event.as_str(),
        "error": error,
        "plan": plan.map(|p| json!({"steps": p.steps, "irreversible": p.irreversible, "summary": p.text})),
        "link": link,
    })
}

/// What a plan does, in a few words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub steps: usize,
    pub irreversible: usize,
    /// The plan as `paver plan` prints it (at most 4000 characters).
    pub text: String,
}

impl PlanSummary {
    pub fn of(plan: &crate::plan::Plan) -> PlanSummary {
        let text = crate::plan::render(plan);
        PlanSummary {
            steps: plan.steps.len(),
            irreversible: plan.irreversible(),
            text: text.chars().take(4000).collect(),
        }
    }
}

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}`: `state`, `target_url`,
/// `description` (GitHub keeps 140 characters), `context`.
pub fn github_status(
    event: RevisionEvent,
    error: Option<&str>,
    steps: Option<usize>,
    link: &str,
) -> Value {
    let (state, description) = match event {
        RevisionEvent::Started => ("pending", "paver is applying this revision".to_string()),
        RevisionEvent::Applied => (
            "success",
            match steps {
                Some(n) => format!("applied ({n} steps)"),
                None => "applied".to_string(),
            },
        ),
        RevisionEvent::Refused => (
            "failure",
            format!("refused: {}", error.unwrap_or("see paver")),
        ),
        RevisionEvent::RolledBack => (
            "failure",
            format!("rolled back: {}", error.unwrap_or("see paver")),
        ),
    };
    let one_line: String = description.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = if one_line.chars().count() > 140 {
        one_line.chars().take(139).chain(['…']).collect()
    } else {
        one_line
    };
    json!({
        "state": state,
        "target_url": link,
        "description": short,
        "context": "paver/deploy",
    })
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// An alert's transition, for an `http(s)://` receiver.
pub fn alert(
    alert: &super::outbox::FiringAlert,
    status: AlertStatus,
    ends_at: Option<&str>,
    link: &str,
) -> Value {
    json!({
        "event": "alert",
        "alert": alert.alert,
        "pipeline": alert.pipeline,
        "version": alert.version,
        "owner": alert.owner,
        "status": status.as_str(),
        "reason": alert.reason,
        "startsAt": alert.starts_at,
        "endsAt": ends_at,
        "link": link,
    })
}

/// The same for Slack: an incoming webhook's `{"text": …}` (mrkdwn).
pub fn slack_alert(
    alert: &super::outbox::FiringAlert,
    status: AlertStatus,
    ends_at: Option<&str>,
    link: &str,
) -> Value {
    let text = match status {
        AlertStatus::Firing => format!(
            ":red_circle: *FIRING* `{}` v{} ({}) — {}: {}\nsince {} · <{}|status>",
            alert.pipeline,
            alert.version,
            alert.owner,
            alert.alert,
            alert.reason,
            alert.starts_at,
            link
        ),
        AlertStatus::Resolved => format!(
            ":large_green_circle: *RESOLVED* `{}` v{} ({}) — {}: {}\nfrom {} to {} · <{}|status>",
            alert.pipeline,
            alert.version,
            alert.owner,
            alert.alert,
            alert.reason,
            alert.starts_at,
            ends_at.unwrap_or("now"),
            link
        ),
    };
    json!({ "text": text })
}

/// `sha256=<hex>` of the body with the secret, as GitHub signs its webhooks.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_like_github_webhooks() {
        let body = br#"{"revision":"abc"}"#;
        let header = signature(b"s3cret", body);
        assert!(crate::server::signature_valid(
            b"s3cret",
            body,
            Some(&header)
        ));
        assert!(!crate::server::signature_valid(
            b"other",
            body,
            Some(&header)
        ));
    }

    #[test]
    fn a_commit_status_is_one_short_line() {
        let long = "x ".repeat(200);
        let status = github_status(
            RevisionEvent::RolledBack,
            Some(&long),
            None,
            "http://p/status",
        );
        assert_eq!(status["state"], "failure");
        assert_eq!(status["context"], "paver/deploy");
        assert_eq!(status["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(
            github_status(RevisionEvent::Started, None, None, "l")["state"],
            "pending"
        );
    }
}
