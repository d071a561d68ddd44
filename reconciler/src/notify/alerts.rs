//! Pipeline alerts, the Alertmanager way: a condition that holds for its duration starts
//! firing (one notification), and when it no longer holds the alert resolves (one more).
//! Evaluated every second by `paver run` from what the workers write into the state store,
//! so it covers embedded workers and `paver ingest` processes alike.
//!
//! - `onFailure` holds while the pipeline cannot make progress: its worker reports an error
//!   (an insert that keeps failing and is being retried, or a version that cannot start:
//!   ClickHouse or Kafka unreachable), or no worker of it has a heartbeat fresher than
//!   [`STALE_WORKER_MS`], or over the last `failureForSeconds` at least `deadLetterRatio` of
//!   the records consumed (10 at least) went to the dead-letter topic. It fires once it has
//!   held for `failureForSeconds`.
//! - `onBacklog` holds while the reported lag is above the threshold; it fires once it has
//!   held for `backlogForSeconds`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::config::{NotificationsConfig, Receiver};
use super::outbox::{FiringAlert, Outbox, Target};
use super::payload::{self, AlertStatus};
use super::{AlertRule, Notifier};
use crate::store::{now_ms, PipelineStatus, Store, StoreError, WorkerRecord};

/// A worker whose last heartbeat is older than this is not ingesting.
pub const STALE_WORKER_MS: i64 = 10_000;
/// Fewer consumed records than this over the window say nothing about a dead-letter rate.
pub const MIN_RECORDS_FOR_RATE: u64 = 10;

pub const ON_FAILURE: &str = "onFailure";
pub const ON_BACKLOG: &str = "onBacklog";

/// What the evaluator remembers between rounds (not stored: a restart waits the duration
/// again before firing; an alert that fired is in the store and resolves once).
#[derive(Debug, Default)]
pub struct Memory {
    /// (pipeline, alert) → since when its condition holds, in Unix ms.
    pending: BTreeMap<(String, String), i64>,
    /// Per pipeline: (at, consumed, dead-lettered) samples over the failure window.
    samples: BTreeMap<String, VecDeque<(i64, u64, u64)>>,
}

/// Whether `onFailure`'s condition holds, and why.
pub fn failing(
    status: Option<&PipelineStatus>,
    workers: &[WorkerRecord],
    samples: &VecDeque<(i64, u64, u64)>,
    ratio: f64,
    now: i64,
) -> Option<String> {
    if let Some(error) = status.and_then(|s| s.last_error.as_deref()) {
        return Some(format!("ingestion is failing: {error}"));
    }
    let freshest = workers.iter().map(|w| w.heartbeat_ms).max();
    if freshest.is_none_or(|at| now - at > STALE_WORKER_MS) {
        return Some(match freshest {
            Some(at) => format!(
                "no worker is ingesting it (the last heartbeat is {} s old)",
                (now - at) / 1000
            ),
            None => "no worker is ingesting it".to_string(),
        });
    }
    if let (Some(first), Some(last)) = (samples.front(), samples.back()) {
        let consumed = last.1.saturating_sub(first.1);
        let dead = last.2.saturating_sub(first.2);
        if consumed >= MIN_RECORDS_FOR_RATE && dead as f64 >= ratio * consumed as f64 {
            return Some(format!(
                "{dead} of {consumed} records consumed in the last {} s went to the dead-letter topic",
                (last.0 - first.0) / 1000
            ));
        }
    }
    None
}

/// Whether `onBacklog`'s condition holds, and why.
pub fn backlogged(status: Option<&PipelineStatus>, threshold: i64) -> Option<String> {
    let lag = status?.lag?;
    (lag > threshold).then(|| format!("lag {lag} records, above onBacklog {threshold}"))
}

/// One round: every live pipeline with a rule, both alerts.
pub fn evaluate(
    store: &Store,
    outbox: &mut Outbox,
    config: &NotificationsConfig,
    rules: &BTreeMap<String, AlertRule>,
    link: &str,
    memory: &mut Memory,
    now: i64,
) -> Result<(), StoreError> {
    let statuses = store.pipeline_status()?;
    let statuses: BTreeMap<&str, _> = statuses.iter().map(|s| (s.name.as_str(), s)).collect();
    let workers = store.workers()?;
    let firing: BTreeMap<(String, String), FiringAlert> = outbox
        .firing()?
        .into_iter()
        .map(|a| ((a.pipeline.clone(), a.alert.clone()), a))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (name, live_version) in store.live_versions()? {
        let Some(rule) = rules.get(&name) else {
            continue;
        };
        let status = statuses.get(name.as_str()).copied();
        let window = Duration::from_secs(config.alerts.failure_for_seconds).as_millis() as i64;
        let samples = memory.samples.entry(name.clone()).or_default();
        if let Some(s) = status {
            samples.push_back((now, s.consumed, s.dead_lettered));
        }
        while samples.front().is_some_and(|(at, _, _)| now - at > window) {
            samples.pop_front();
        }
        let receiver = config.route(rule.on_failure.as_deref(), &rule.owner);
        let mut checks: Vec<(&str, u64, Option<String>)> = Vec::new();
        if receiver.is_some() {
            checks.push((
                ON_FAILURE,
                config.alerts.failure_for_seconds,
                failing(
                    status,
                    workers.get(&name).map_or(&[], Vec::as_slice),
                    samples,
                    config.alerts.dead_letter_ratio,
                    now,
                ),
            ));
        }
        if let Some(threshold) = rule.on_backlog {
            checks.push((
                ON_BACKLOG,
                config.alerts.backlog_for_seconds,
                backlogged(status, threshold),
            ));
        }
        for (alert, for_seconds, reason) in checks {
            let key = (name.clone(), alert.to_string());
            seen.insert(key.clone());
            match (reason, firing.get(&key)) {
                (Some(reason), None) => {
                    let since = *memory.pending.entry(key.clone()).or_insert(now);
                    if now - since >= for_seconds as i64 * 1000 {
                        let started = FiringAlert {
                            pipeline: name.clone(),
                            alert: alert.to_string(),
                            owner: rule.owner.clone(),
                            version: live_version,
                            reason,
                            starts_at: crate::policy::format_ms(since as u64),
                        };
                        eprintln!("paver: alert {alert} of {name} fires: {}", started.reason);
                        let note = notification(
                            config,
                            &receiver,
                            &started,
                            AlertStatus::Firing,
                            None,
                            link,
                        );
                        outbox.fire(
                            &started,
                            note.as_ref().map(|(k, t, b)| (k.as_str(), t, b.as_str())),
                        )?;
                        memory.pending.remove(&key);
                    }
                }
                (Some(_), Some(_)) => {}
                (None, Some(was)) => resolve(outbox, config, &receiver, was, link, now)?,
                (None, None) => {
                    memory.pending.remove(&key);
                }
            }
        }
    }
    // An alert of a pipeline (or a rule) that went away resolves.
    for (key, was) in &firing {
        if !seen.contains(key) {
            let receiver = rules
                .get(&was.pipeline)
                .and_then(|r| config.route(r.on_failure.as_deref(), &r.owner))
                .or_else(|| config.route(None, &was.owner));
            resolve(outbox, config, &receiver, was, link, now)?;
        }
    }
    memory.pending.retain(|k, _| seen.contains(k));
    Ok(())
}

fn resolve(
    outbox: &mut Outbox,
    config: &NotificationsConfig,
    receiver: &Option<Result<Receiver, super::NotifyConfigError>>,
    was: &FiringAlert,
    link: &str,
    now: i64,
) -> Result<(), StoreError> {
    eprintln!("paver: alert {} of {} resolved", was.alert, was.pipeline);
    let ends_at = crate::policy::format_ms(now as u64);
    let note = notification(
        config,
        receiver,
        was,
        AlertStatus::Resolved,
        Some(&ends_at),
        link,
    );
    outbox.resolve(
        &was.pipeline,
        &was.alert,
        note.as_ref().map(|(k, t, b)| (k.as_str(), t, b.as_str())),
    )
}

/// The outbox row of an alert's transition, when a receiver routes it.
fn notification(
    config: &NotificationsConfig,
    receiver: &Option<Result<Receiver, super::NotifyConfigError>>,
    alert: &FiringAlert,
    status: AlertStatus,
    ends_at: Option<&str>,
    link: &str,
) -> Option<(String, Target, String)> {
    let key = format!(
        "alert {} {} {} {}",
        alert.pipeline,
        alert.alert,
        alert.starts_at,
        status.as_str()
    );
    match receiver {
        Some(Ok(Receiver::Slack(channel))) => Some((
            key,
            Target::Slack {
                channel: channel.clone(),
            },
            payload::slack_alert(alert, status, ends_at, link).to_string(),
        )),
        Some(Ok(Receiver::Http(url))) => Some((
            key,
            Target::Http { url: url.clone() },
            payload::alert(alert, status, ends_at, link).to_string(),
        )),
        Some(Err(e)) => {
            eprintln!(
                "paver: alert {} of {} is not sent: {e}",
                alert.alert, alert.pipeline
            );
            None
        }
        None => {
            let _ = config;
            None
        }
    }
}

/// Evaluate every second until `stop`, while `leading` (with leader election, only the
/// leader evaluates: one notification per transition).
pub async fn run(
    notifier: Arc<Notifier>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    leading: impl Fn() -> bool + Send + 'static,
) {
    let memory = Arc::new(std::sync::Mutex::new(Memory::default()));
    let mut said: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(config) = notifier.config().filter(|_| leading()) {
            let rules = notifier.rules();
            let link = notifier.link(&config);
            let path = notifier.state.clone();
            let memory = memory.clone();
            let round = tokio::task::spawn_blocking(move || {
                let store = Store::open(&path)?;
                let mut outbox = Outbox::open(&path)?;
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                evaluate(
                    &store,
                    &mut outbox,
                    &config,
                    &rules,
                    &link,
                    &mut memory,
                    now_ms(),
                )
            })
            .await;
            let error = match round {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = &error {
                if said.as_ref() != Some(e) {
                    eprintln!("paver: alerts: {e}");
                }
            }
            said = error;
            notifier.wake.notify_one();
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: Option<&str>, lag: Option<i64>) -> PipelineStatus {
        PipelineStatus {
            name: "p".into(),
            last_error: error.map(str::to_string),
            lag,
            ..Default::default()
        }
    }

    fn worker(at: i64) -> WorkerRecord {
        WorkerRecord {
            worker: "w".into(),
            version: Some(1),
            heartbeat_ms: at,
            partitions: None,
        }
    }

    #[test]
    fn failure_conditions() {
        let now = 1_000_000;
        let quiet = VecDeque::new();
        assert_eq!(
            failing(Some(&status(None, None)), &[worker(now)], &quiet, 0.5, now),
            None
        );
        assert!(failing(
            Some(&status(Some("refused"), None)),
            &[worker(now)],
            &quiet,
            0.5,
            now
        )
        .unwrap()
        .contains("refused"));
        assert!(failing(
            Some(&status(None, None)),
            &[worker(now - 60_000)],
            &quiet,
            0.5,
            now
        )
        .unwrap()
        .contains("60 s old"));
        assert!(failing(None, &[], &quiet, 0.5, now).is_some());
        let rate: VecDeque<_> = [(now - 30_000, 100, 0), (now, 200, 60)].into();
        assert!(
            failing(Some(&status(None, None)), &[worker(now)], &rate, 0.5, now)
                .unwrap()
                .contains("60 of 100")
        );
        let low: VecDeque<_> = [(now - 30_000, 100, 0), (now, 200, 10)].into();
        assert_eq!(
            failing(Some(&status(None, None)), &[worker(now)], &low, 0.5, now),
            None
        );
    }

    #[test]
    fn backlog_condition() {
        assert_eq!(backlogged(Some(&status(None, Some(5))), 10), None);
        assert_eq!(backlogged(Some(&status(None, None)), 10), None);
        assert!(backlogged(Some(&status(None, Some(11))), 10).is_some());
    }

    #[test]
    fn an_alert_fires_once_after_its_duration_and_resolves_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paver.db");
        let store = Store::open(&path).unwrap();
        let mut outbox = Outbox::open(&path).unwrap();
        let spec: crate::model::IngestSpec = serde_json::from_value(serde_json::json!({
            "pipeline": "p", "version": 2, "topic": "t", "group": "g", "previous_group": null,
            "dead_letter_topic": "d", "staging": {"database": "db", "name": "s"}, "views": [],
            "ledger": {"database": "db", "name": "l"}, "columns": [], "reader": "{}", "writers": []
        }))
        .unwrap();
        let endpoints = crate::model::Endpoints::from_recorded(
            r#"{"clickhouse_url": "http://ch:8123", "kafka_brokers": "k:9092"}"#,
        )
        .unwrap();
        store.set_live(&spec, &endpoints).unwrap();
        let config: NotificationsConfig = serde_json::from_value(serde_json::json!({
            "routes": {"team": "http://127.0.0.1:9/alerts"},
            "alerts": {"failureForSeconds": 30, "backlogForSeconds": 60}
        }))
        .unwrap();
        let rules = BTreeMap::from([(
            "p".to_string(),
            AlertRule {
                owner: "team".into(),
                version: 2,
                on_failure: None,
                on_backlog: Some(100),
            },
        )]);
        let mut memory = Memory::default();
        // In the past: the heartbeats written now are fresh at every round.
        let t0 = now_ms() - 120_000;
        let mut round = |outbox: &mut Outbox, at: i64, error: Option<&str>, lag: i64| {
            store.worker_report("p", "w", Some(2)).unwrap();
            store
                .report(&PipelineStatus {
                    name: "p".into(),
                    version: 2,
                    lag: Some(lag),
                    last_error: error.map(str::to_string),
                    ..Default::default()
                })
                .unwrap();
            let link = "http://paver/status";
            evaluate(&store, outbox, &config, &rules, link, &mut memory, at).unwrap();
        };
        round(&mut outbox, t0, Some("ClickHouse is down"), 500);
        round(&mut outbox, t0 + 29_000, Some("ClickHouse is down"), 500);
        assert!(outbox.firing().unwrap().is_empty(), "not for 30 s yet");
        round(&mut outbox, t0 + 30_000, Some("ClickHouse is down"), 500);
        round(&mut outbox, t0 + 31_000, Some("ClickHouse is down"), 500);
        let firing = outbox.firing().unwrap();
        assert_eq!(firing.len(), 1);
        assert_eq!(
            (firing[0].alert.as_str(), firing[0].version),
            (ON_FAILURE, 2)
        );
        round(&mut outbox, t0 + 60_000, None, 500);
        assert_eq!(
            outbox
                .firing()
                .unwrap()
                .iter()
                .map(|a| a.alert.as_str())
                .collect::<Vec<_>>(),
            [ON_BACKLOG]
        );
        round(&mut outbox, t0 + 61_000, None, 5);
        assert!(outbox.firing().unwrap().is_empty());
        let keys: Vec<String> = outbox
            .all()
            .unwrap()
            .iter()
            .map(|n| {
                n["key"]
                    .as_str()
                    .unwrap()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(keys, ["firing", "resolved", "firing", "resolved"]);
    }
}
