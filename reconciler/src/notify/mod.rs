//! Notifications: revision outcomes to webhooks, GitHub commit statuses, and pipeline
//! alerts (firing once, resolved once) to Slack or HTTP receivers.
//!
//! Nothing here runs inside a reconcile or an ingestion: the reconcile only writes a row
//! into the outbox ([`outbox`], in the state store) and wakes the delivery task
//! ([`deliver`]), which sends with timeouts and retries on its own. The alert evaluator
//! ([`alerts`]) reads what the workers report and queues transitions the same way.

pub mod alerts;
pub mod config;
pub mod deliver;
pub mod outbox;
pub mod payload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use paver_lint::layout::Kind;
use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;

pub use config::{NotificationsConfig, NotifyConfigError, Receiver};
use outbox::{Outbox, Target};
use payload::{PlanSummary, RevisionEvent};

/// What a pipeline's live version says about its alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub owner: String,
    pub version: u32,
    /// `alerting.onFailure`: its receiver (else the owner's route, else the default).
    pub on_failure: Option<String>,
    /// `alerting.onBacklog`: the lag above which it fires.
    pub on_backlog: Option<i64>,
}

/// The alert rules of a revision: one per pipeline, from its highest (live) version.
pub fn rules(ws: &Workspace) -> BTreeMap<String, AlertRule> {
    ws.active_specs(Kind::DataPipeline)
        .filter_map(|(file, root)| {
            let (_, name, version) = file.spec()?;
            Some((
                name.to_string(),
                AlertRule {
                    owner: root
                        .path(&["metadata", "owner"])
                        .and_then(Node::as_str)
                        .unwrap_or("unknown")
                        .to_string(),
                    version,
                    on_failure: root
                        .path(&["spec", "alerting", "onFailure"])
                        .and_then(Node::as_str)
                        .map(str::to_string),
                    on_backlog: root
                        .path(&["spec", "alerting", "onBacklog"])
                        .and_then(Node::as_i64),
                },
            ))
        })
        .collect()
}

/// The notifications of one `paver run`: the configuration of the last revision read, the
/// outbox's location, and the delivery task's wake-up.
pub struct Notifier {
    pub(crate) state: PathBuf,
    /// `http://<listen>/status`, unless `notifications.statusUrl` says otherwise.
    default_link: String,
    config: RwLock<Option<Arc<NotificationsConfig>>>,
    rules: RwLock<BTreeMap<String, AlertRule>>,
    pub(crate) wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(state: PathBuf, default_link: String) -> Notifier {
        Notifier {
            state,
            default_link,
            config: RwLock::new(None),
            rules: RwLock::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The configuration and alert rules of the revision being reconciled.
    pub fn configure(&self, config: NotificationsConfig, rules: BTreeMap<String, AlertRule>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(config));
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
        self.wake.notify_one();
    }

    /// `None` until a revision has been read (pending notifications wait for it).
    pub fn config(&self) -> Option<Arc<NotificationsConfig>> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn rules(&self) -> BTreeMap<String, AlertRule> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The link sent with every notification.
    pub fn link(&self, config: &NotificationsConfig) -> String {
        config
            .status_url
            .clone()
            .unwrap_or_else(|| self.default_link.clone())
    }

    /// Queue what a revision's event says to the webhooks and GitHub: once per revision,
    /// event and receiver, whatever the number of polls. Never fails the caller: a store
    /// that cannot take it is said on stderr.
    pub fn revision(
        &self,
        sha: &str,
        event: RevisionEvent,
        error: Option<&str>,
        plan: Option<&PlanSummary>,
    ) {
        let Some(config) = self.config() else {
            return;
        };
        if config.webhooks.is_empty() && config.github.is_none() {
            return;
        }
        let link = self.link(&config);
        let mut queued = Vec::new();
        if event != RevisionEvent::Started {
            let body = payload::revision(sha, event, error, plan, &link).to_string();
            for hook in &config.webhooks {
                queued.push((
                    format!("revision {sha} {} webhook {}", event.as_str(), hook.url),
                    Target::Webhook {
                        url: hook.url.clone(),
                    },
                    body.clone(),
                ));
            }
        }
        if config.github.is_some() {
            let body =
                payload::github_status(event, error, plan.map(|p| p.steps), &link).to_string();
            queued.push((
                format!("revision {sha} {} github", event.as_str()),
                Target::GitHubStatus {
                    sha: sha.to_string(),
                },
                body,
            ));
        }
        let result = Outbox::open(&self.state).and_then(|outbox| {
            for (key, target, body) in &queued {
                outbox.enqueue(key, target, body)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            eprintln!("paver: notifications of {sha} not queued: {e}");
        }
        self.wake.notify_one();
    }
}

/// The notifications block of a paver.yaml document.
pub fn config_of(settings: Option<&Node>) -> Result<NotificationsConfig, NotifyConfigError> {
    NotificationsConfig::from_settings(settings)
}

/// The alerts that fire and the outbox's counts, as `paver status`, `/status` and
/// `/metrics` show them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub firing: Vec<outbox::FiringAlert>,
    pub queued: i64,
    pub delivered: i64,
    pub given_up: i64,
    pub waiting: i64,
}

/// Read the snapshot from the state store.
pub fn snapshot(state: &std::path::Path) -> Result<Snapshot, crate::store::StoreError> {
    let outbox = Outbox::open(state)?;
    let (queued, delivered, given_up, waiting) = outbox.counts()?;
    Ok(Snapshot {
        firing: outbox.firing()?,
        queued,
        delivered,
        given_up,
        waiting,
    })
}

/// The Prometheus text of a snapshot: `paver_alert_firing` per firing alert, and the
/// outbox's counts.
pub fn metrics(n: &Snapshot) -> String {
    let mut out = String::from(
        "# HELP paver_alert_firing 1 per pipeline alert that fires (onFailure, onBacklog).\n# TYPE paver_alert_firing gauge\n",
    );
    for a in &n.firing {
        out.push_str(&format!(
            "paver_alert_firing{{pipeline=\"{}\",alert=\"{}\",owner=\"{}\"}} 1\n",
            a.pipeline, a.alert, a.owner
        ));
    }
    for (name, kind, help, value) in [
        (
            "paver_notifications_queued_total",
            "counter",
            "Notifications queued.",
            n.queued,
        ),
        (
            "paver_notifications_delivered_total",
            "counter",
            "Notifications delivered.",
            n.delivered,
        ),
        (
            "paver_notifications_given_up_total",
            "counter",
            "Notifications given up after a day of failed attempts.",
            n.given_up,
        ),
        (
            "paver_notifications_waiting",
            "gauge",
            "Notifications not delivered yet.",
            n.waiting,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}
