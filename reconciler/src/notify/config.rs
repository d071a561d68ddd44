//! paver.yaml's `notifications` block, typed: where revision outcomes, commit statuses and
//! pipeline alerts go. It names where secrets are (`…Env`, `…File`), never holds them; a
//! secret is read when a notification is sent and never printed ([`Secret`]'s `Debug`).
//!
//! Meant to be one field of the typed configuration (`config::Config`), parsed once per
//! revision from paver.yaml.

use std::collections::BTreeMap;
use std::time::Duration;

use paver_lint::yaml::Node;
use serde::Deserialize;

/// Why the `notifications` block, or a secret it names, cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyConfigError {
    /// What serde said of the block (kept as text: the error is cloned with the config's).
    #[error("paver.yaml: notifications: {0}")]
    Invalid(String),
    #[error("{field}: the environment variable {var} is not set")]
    EnvMissing { field: String, var: String },
    #[error("{field}: cannot read {path}: {reason}")]
    File {
        field: String,
        path: String,
        reason: String,
    },
    #[error("{field}: names neither an environment variable nor a file")]
    NoSource { field: String },
    #[error("a receiver `{0}`: paver sends to `slack://#<channel>`, `http://…` or `https://…`")]
    UnknownScheme(String),
    #[error("a receiver `slack://#{0}`: notifications.slack has no channel `{0}`")]
    UnknownChannel(String),
}

/// `notifications:` in paver.yaml.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Receivers of every revision's outcome.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Commit statuses on the repository the revisions come from.
    pub github: Option<GitHub>,
    /// Slack channels by name (without `#`): where their incoming-webhook URL is.
    #[serde(default)]
    pub slack: BTreeMap<String, SlackChannel>,
    /// Owner → receiver, for the alerts of pipelines without their own `onFailure`.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// The receiver of alerts no route covers.
    pub default_route: Option<String>,
    /// The link sent with alerts and statuses (paver's status page or endpoint); default:
    /// `http://<--listen>/status`.
    pub status_url: Option<String>,
    /// How long one delivery may take before it counts as failed (default 10).
    pub timeout_seconds: Option<u64>,
    /// When pipeline alerts fire.
    #[serde(default)]
    pub alerts: AlertSettings,
}

/// `notifications.alerts`: the conditions' durations and thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertSettings {
    /// `onFailure` fires once the pipeline has failed for this long without a success.
    #[serde(default = "default_failure_for")]
    pub failure_for_seconds: u64,
    /// `onBacklog` fires once the lag has stayed above the threshold for this long.
    #[serde(default = "default_backlog_for")]
    pub backlog_for_seconds: u64,
    /// `onFailure` also fires when, over `failureForSeconds`, at least this share of the
    /// consumed records went to the dead-letter topic.
    #[serde(default = "default_dead_letter_ratio")]
    pub dead_letter_ratio: f64,
}

fn default_failure_for() -> u64 {
    60
}
fn default_backlog_for() -> u64 {
    300
}
fn default_dead_letter_ratio() -> f64 {
    0.5
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            failure_for_seconds: default_failure_for(),
            backlog_for_seconds: default_backlog_for(),
            dead_letter_ratio: default_dead_letter_ratio(),
        }
    }
}

/// One receiver of revision outcomes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// The HMAC secret of `X-Hub-Signature-256` (unsigned without one).
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
}

/// `notifications.github`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHub {
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// `owner/name`.
    pub repository: String,
    /// Default `https://api.github.com` (GitHub Enterprise: `https://<host>/api/v3`).
    pub api_url: Option<String>,
}

/// `notifications.slack.<channel>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackChannel {
    pub webhook_url_env: Option<String>,
    pub webhook_url_file: Option<String>,
}

/// A secret's value: compared and sent, never printed.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Read a secret from an environment variable, else a file (trimmed).
fn read_secret(
    field: &str,
    env: Option<&str>,
    file: Option<&str>,
) -> Result<Secret, NotifyConfigError> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret(v)),
            _ => Err(NotifyConfigError::EnvMissing {
                field: field.to_string(),
                var: var.to_string(),
            }),
        };
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|v| Secret(v.trim().to_string()))
            .map_err(|e| NotifyConfigError::File {
                field: field.to_string(),
                path: path.to_string(),
                reason: e.to_string(),
            });
    }
    Err(NotifyConfigError::NoSource {
        field: field.to_string(),
    })
}

impl Webhook {
    /// The signing secret, when one is named.
    pub fn secret(&self) -> Result<Option<Secret>, NotifyConfigError> {
        if self.secret_env.is_none() && self.secret_file.is_none() {
            return Ok(None);
        }
        read_secret(
            &format!("notifications.webhooks[{}].secret", self.url),
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        )
        .map(Some)
    }
}

impl GitHub {
    pub fn token(&self) -> Result<Secret, NotifyConfigError> {
        read_secret(
            "notifications.github.token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
    }

    pub fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or("https://api.github.com")
            .trim_end_matches('/')
    }
}

impl SlackChannel {
    pub fn webhook_url(&self, channel: &str) -> Result<Secret, NotifyConfigError> {
        read_secret(
            &format!("notifications.slack.{channel}.webhookUrl"),
            self.webhook_url_env.as_deref(),
            self.webhook_url_file.as_deref(),
        )
    }
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    /// `slack://#<channel>`.
    Slack(String),
    /// An `http://` or `https://` URL receiving JSON.
    Http(String),
}

impl Receiver {
    pub fn parse(text: &str) -> Result<Receiver, NotifyConfigError> {
        if let Some(channel) = text.strip_prefix("slack://#") {
            if !channel.is_empty() {
                return Ok(Receiver::Slack(channel.to_string()));
            }
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Receiver::Http(text.to_string()));
        }
        Err(NotifyConfigError::UnknownScheme(text.to_string()))
    }
}

impl NotificationsConfig {
    /// The `notifications` block of paver.yaml's document (absent: nothing is sent).
    pub fn from_settings(
        settings: Option<&Node>,
    ) -> Result<NotificationsConfig, NotifyConfigError> {
        match settings.and_then(|s| s.get("notifications")) {
            Some(node) => serde_json::from_value(node.to_json())
                .map_err(|e| NotifyConfigError::Invalid(e.to_string())),
            None => Ok(NotificationsConfig::default()),
        }
    }

    /// Whether anything is configured at all.
    pub fn is_empty(&self) -> bool {
        *self == NotificationsConfig::default()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.unwrap_or(10).max(1))
    }

    /// The receiver of a pipeline's alerts: its own `onFailure`, else its owner's route,
    /// else the default route; `None` when nothing routes it.
    pub fn route(
        &self,
        on_failure: Option<&str>,
        owner: &str,
    ) -> Option<Result<Receiver, NotifyConfigError>> {
        let text = on_failure
            .or_else(|| self.routes.get(owner).map(String::as_str))
            .or(self.default_route.as_deref())?;
        Some(Receiver::parse(text).and_then(|r| match &r {
            Receiver::Slack(channel) if !self.slack.contains_key(channel) => {
                Err(NotifyConfigError::UnknownChannel(channel.clone()))
            }
            _ => Ok(r),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<NotificationsConfig, NotifyConfigError> {
        let node = paver_lint::yaml::load(yaml, Default::default()).unwrap();
        NotificationsConfig::from_settings(Some(&node))
    }

    #[test]
    fn the_block_parses_and_routes_by_owner_then_default() {
        let config = parse(
            "notifications:\n  webhooks:\n    - {url: \"http://h/x\", secretEnv: S}\n  github: {tokenEnv: T, repository: o/r}\n  slack:\n    data-alerts: {webhookUrlEnv: W}\n  routes:\n    team-a: \"slack://#data-alerts\"\n  defaultRoute: \"https://alerts.example/hook\"\n",
        )
        .unwrap();
        assert_eq!(config.webhooks[0].secret_env.as_deref(), Some("S"));
        assert_eq!(
            config.github.as_ref().unwrap().api_url(),
            "https://api.github.com"
        );
        assert_eq!(
            config.route(None, "team-a").unwrap().unwrap(),
            Receiver::Slack("data-alerts".into())
        );
        assert_eq!(
            config.route(None, "team-b").unwrap().unwrap(),
            Receiver::Http("https://alerts.example/hook".into())
        );
        assert_eq!(
            config.route(Some("http://own"), "team-a").unwrap().unwrap(),
            Receiver::Http("http://own".into())
        );
        assert!(matches!(
            config.route(Some("slack://#nowhere"), "x").unwrap(),
            Err(NotifyConfigError::UnknownChannel(_))
        ));
        assert!(matches!(
            config.route(Some("mailto://x"), "x").unwrap(),
            Err(NotifyConfigError::UnknownScheme(_))
        ));
    }

    #[test]
    fn unknown_fields_are_refused_and_secrets_never_print() {
        let err = parse("notifications:\n  webhook: []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `webhook`"), "{err}");
        std::env::set_var("PAVER_TEST_NOTIFY_SECRET", "hunter2");
        let hook = Webhook {
            url: "http://h".into(),
            secret_env: Some("PAVER_TEST_NOTIFY_SECRET".into()),
            secret_file: None,
        };
        let secret = hook.secret().unwrap().unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let missing = Webhook {
            secret_env: Some("PAVER_TEST_NOTIFY_UNSET".into()),
            ..hook
        };
        assert!(matches!(
            missing.secret(),
            Err(NotifyConfigError::EnvMissing { .. })
        ));
    }
}
