//! `paver run`: the reconcile loop (a poll interval, woken at once by a verified GitHub push
//! webhook), with a JSON status endpoint, Prometheus metrics and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::ingest::stop::Backoff;
use crate::reconcile::{self, Options};
use crate::store::Store;

pub mod events;
pub mod page;

/// What the loop and the endpoints share.
struct Shared {
    options: Options,
    /// The poll interval of the last revision reconciled (its `reconcile.pollInterval`,
    /// or `--poll-seconds`).
    poll: Mutex<Duration>,
    secret: Option<Vec<u8>>,
    wake: Notify,
    metrics: Metrics,
    last_error: Mutex<Option<String>>,
    /// With leader election: whether this replica leads (only the leader reconciles).
    leadership: Option<crate::kube::lease::Leadership>,
    /// Every reconcile's start and outcome, for `/events` and `/revisions/<sha>/wait`.
    events: events::Events,
}

impl events::Source for Shared {
    fn events(&self) -> &events::Events {
        &self.events
    }
    fn state(&self) -> PathBuf {
        self.options.state.clone()
    }
}

#[derive(Default)]
struct Metrics {
    reconciles: AtomicU64,
    failures: AtomicU64,
    steps: AtomicU64,
    last_duration_ms: AtomicU64,
    duration_ms_total: AtomicU64,
    webhooks: AtomicU64,
    webhooks_rejected: AtomicU64,
}

/// Run until SIGINT or SIGTERM: reconcile now, then every poll interval (`--poll-seconds`,
/// else the revision's `reconcile.pollInterval`, else 30 s) or when a webhook says
/// the branch moved. A reconcile in progress finishes before the process exits. With an
/// `elector` (leader election), only the leader reconciles; a replica that becomes the
/// leader reconciles at once, and the lease is released after the last reconcile.
pub async fn run(
    mut options: Options,
    listen: SocketAddr,
    secret: Option<Vec<u8>>,
    ingest: bool,
    elector: Option<crate::election::Elector>,
) -> Result<(), String> {
    // Notifications: queued by the reconciles and the alert evaluator, sent by a task of
    // their own.
    let notifier = Arc::new(crate::notify::Notifier::new(
        options.state.clone(),
        format!("http://{listen}/status"),
    ));
    options.notifier = Some(notifier.clone());
    options.cache = Some(Default::default());
    let poll = options
        .flags
        .poll_interval
        .unwrap_or(crate::config::DEFAULT_POLL_INTERVAL);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        events: events::Events::new(stop_rx.clone()),
        options,
        poll: Mutex::new(poll),
        secret,
        wake: Notify::new(),
        metrics: Metrics::default(),
        last_error: Mutex::new(None),
        leadership: elector.as_ref().map(|_| Default::default()),
    });
    let app = Router::new()
        .route("/webhook", post(webhook))
        .route("/status", get(status))
        .route("/revisions/{sha}", get(revision))
        .route("/revisions/{sha}/wait", get(events::wait::<Shared>))
        .route("/events", get(events::stream::<Shared>))
        .route("/metrics", get(metrics))
        .route("/inventory", get(inventory))
        .route("/live", get(live))
        .route("/history", get(history))
        .route("/retry/{sha}", post(retry))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(status_page))
        .route(
            page::STYLE_PATH,
            get(|| async { ([("content-type", "text/css; charset=utf-8")], page::STYLE) }),
        )
        .route(
            page::SCRIPT_PATH,
            get(|| async {
                (
                    [("content-type", "text/javascript; charset=utf-8")],
                    page::SCRIPT,
                )
            }),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("paver: listening on {listen} (webhook /webhook, status /status, metrics /metrics)");
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await
    });
    // The ingestion workers of the live pipelines (unless they run as `paver ingest`).
    let workers = ingest.then(|| {
        let leadership = shared.leadership.clone();
        tokio::spawn(crate::ingest::worker::supervise(
            shared.options.state.clone(),
            stop_rx.clone(),
            move || leadership.as_ref().is_none_or(|l| l.is_leader()),
        ))
    });
    let delivery = tokio::spawn(crate::notify::deliver::run(
        notifier.clone(),
        stop_rx.clone(),
    ));
    let leadership = shared.leadership.clone();
    let alerts = tokio::spawn(crate::notify::alerts::run(
        notifier,
        stop_rx.clone(),
        move || leadership.as_ref().is_none_or(|l| l.is_leader()),
    ));
    let mut stop = stop_rx;
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    // A local folder is watched: a change reconciles at once (debounced), no webhook needed.
    let _watcher = if crate::source::is_url(&shared.options.repo) {
        None
    } else {
        Some(watch(
            std::path::Path::new(&shared.options.repo),
            shared.clone(),
        )?)
    };
    let (election_stop, election_stop_rx) = tokio::sync::watch::channel(false);
    let election = match (elector, shared.leadership.clone()) {
        (Some(elector), Some(leadership)) => {
            let woken = shared.clone();
            Some(tokio::spawn(crate::election::run(
                elector,
                leadership,
                election_stop_rx,
                move |leader| {
                    if leader {
                        eprintln!("paver: this replica leads: it applies revisions");
                        woken.wake.notify_one();
                    } else {
                        eprintln!("paver: this replica follows: it serves status only");
                    }
                },
            )))
        }
        _ => None,
    };
    // A reconcile that failed before it had an outcome (the remote, the state store or a
    // server not answering) is tried again after 1 s, 2 s, 4 s … (at most the poll
    // interval), not only at the next poll: a webhook's revision is not left waiting.
    let mut retry = None;
    loop {
        if shared.leadership.as_ref().is_none_or(|l| l.is_leader()) {
            let failed = reconcile_once(&shared).await;
            retry = failed.then(|| {
                retry.take().unwrap_or_else(|| {
                    Backoff::new(Duration::from_secs(1), Duration::from_secs(3600))
                })
            });
        }
        let pause = match retry.as_mut() {
            Some(backoff) => backoff.pause().min(shared.poll_interval()),
            None => shared.poll_interval(),
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.wake.notified() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    eprintln!("paver: stopping");
    // The lease goes only after the last reconcile: a follower must not start meanwhile.
    let _ = election_stop.send(true);
    if let Some(election) = election {
        let _ = election.await;
    }
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    let _ = delivery.await;
    let _ = alerts.await;
    let _ = server.await;
    Ok(())
}

/// Watch a folder; after a burst of changes settles (300 ms), wake the loop.
fn watch(
    path: &std::path::Path,
    shared: Arc<Shared>,
) -> Result<notify::RecommendedWatcher, String> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
    watcher
        .watch(path, notify::RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            shared.wake.notify_one();
        }
    });
    eprintln!("paver: watching {}", path.display());
    Ok(watcher)
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

impl Shared {
    fn poll_interval(&self) -> Duration {
        *self.poll.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether this replica may still apply (checked before every step of a revision).
struct Leading<'a>(&'a Option<crate::kube::lease::Leadership>);

impl crate::executor::Leadership for Leading<'_> {
    fn still_leader(&self) -> bool {
        self.0.as_ref().is_none_or(|l| l.is_leader())
    }
}

/// One reconcile; `true` when it failed before it had an outcome (not a revision that
/// failed and was rolled back, nor the policy waiting: those follow the retry policy).
async fn reconcile_once(shared: &Shared) -> bool {
    let started = Instant::now();
    shared
        .events
        .send(events::Event::ReconcileStarted { at: events::now() });
    // With the election through the state store, every write of this reconcile carries
    // the term it started in, and is refused once another replica took over.
    let fence = shared.leadership.as_ref().and_then(|l| l.fence());
    let result = match Store::open(&shared.options.state).map(|s| s.fenced(fence)) {
        Ok(store) => reconcile::apply(
            &shared.options,
            &store,
            reconcile::Retry::Policy,
            &Leading(&shared.leadership),
        )
        .await
        .map_err(|e| {
            announce_failure(&shared.events, &e);
            // Waiting out a backoff or holding a revision is the policy working, not a
            // new failure: said once, not counted.
            let quiet = matches!(
                e,
                reconcile::ReconcileError::Waiting { .. } | reconcile::ReconcileError::Held { .. }
            );
            (e.to_string(), quiet)
        }),
        Err(e) => {
            shared.events.send(events::Event::ReconcileFailed {
                error: e.to_string(),
                at: events::now(),
            });
            Err((e.to_string(), false))
        }
    };
    let m = &shared.metrics;
    let elapsed = started.elapsed().as_millis() as u64;
    m.reconciles.fetch_add(1, Ordering::Relaxed);
    m.last_duration_ms.store(elapsed, Ordering::Relaxed);
    m.duration_ms_total.fetch_add(elapsed, Ordering::Relaxed);
    let mut failed = false;
    let error = match result {
        Ok((planned, outcome)) => {
            shared.events.forget_unrecorded(&planned.sha);
            shared.events.send(events::Event::Revision {
                sha: planned.sha.clone(),
                status: outcome.status.as_str().to_string(),
                steps: outcome.applied as u64,
                error: outcome.error.clone(),
                at: events::now(),
            });
            let poll = planned.config.reconcile.poll_interval;
            let before = std::mem::replace(
                &mut *shared.poll.lock().unwrap_or_else(|e| e.into_inner()),
                poll,
            );
            if before != poll {
                eprintln!("paver: polling every {poll:?}");
            }
            m.steps.fetch_add(outcome.applied as u64, Ordering::Relaxed);
            if outcome.applied > 0 || outcome.error.is_some() {
                eprintln!(
                    "paver: {}: {} steps, {}",
                    planned.sha,
                    outcome.applied,
                    outcome.status.as_str()
                );
            }
            if outcome.error.is_some() {
                m.failures.fetch_add(1, Ordering::Relaxed);
            }
            outcome.error
        }
        Err((e, quiet)) => {
            if !quiet {
                m.failures.fetch_add(1, Ordering::Relaxed);
                failed = true;
            }
            Some(e)
        }
    };
    let mut last = shared.last_error.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = &error {
        if last.as_deref() != Some(e.as_str()) {
            eprintln!("paver: {e}");
        }
    }
    *last = error;
    failed
}

/// A reconcile that failed, as its listeners hear it: with the revision when it got that far.
/// A blocked plan is final for its revision but not recorded in the store: remembered.
fn announce_failure(events: &events::Events, e: &reconcile::ReconcileError) {
    use reconcile::ReconcileError as E;
    let (sha, status) = match e {
        E::Refused { sha, .. } | E::Blocked { sha, .. } => (sha, "refused"),
        E::Held { sha, .. } => (sha, "held"),
        E::Waiting { sha, .. } => (sha, "waiting"),
        other => {
            events.send(events::Event::ReconcileFailed {
                error: other.to_string(),
                at: events::now(),
            });
            return;
        }
    };
    let event = events::Event::Revision {
        sha: sha.clone(),
        status: status.to_string(),
        steps: 0,
        error: Some(e.to_string()),
        at: events::now(),
    };
    if matches!(e, E::Blocked { .. }) {
        events.remember_unrecorded(sha, event.clone());
    }
    events.send(event);
}

/// `X-Hub-Signature-256: sha256=<hex>` over the raw body, with the shared secret.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn webhook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    shared.metrics.webhooks.fetch_add(1, Ordering::Relaxed);
    let Some(secret) = &shared.secret else {
        return (
            StatusCode::NOT_FOUND,
            "webhooks are off: start paver run with a webhook secret",
        )
            .into_response();
    };
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_valid(secret, &body, header) {
        shared
            .metrics
            .webhooks_rejected
            .fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    if event == "ping" {
        return (StatusCode::OK, "pong").into_response();
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the payload is not JSON: {e}"),
            )
                .into_response()
        }
    };
    let wanted = format!("refs/heads/{}", shared.options.branch);
    if event == "push" && payload["ref"].as_str() == Some(wanted.as_str()) {
        shared.wake.notify_one();
        return (StatusCode::ACCEPTED, "reconciling").into_response();
    }
    (StatusCode::ACCEPTED, "not the tracked branch: ignored").into_response()
}

/// Read the state store off the async workers (SQLite calls block).
async fn read_store<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || {
        Store::open(&path)
            .and_then(|s| f(&s))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Why `/status` could not be put together: the state store or the notifications could
/// not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StatusError(String);

/// What `/status` serves (and the status page shows).
async fn status_json(shared: &Shared) -> Result<serde_json::Value, StatusError> {
    let path = shared.options.state.clone();
    let last_error = shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let state = shared.options.state.clone();
    let notifications = tokio::task::spawn_blocking(move || crate::notify::snapshot(&state))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(StatusError)?;
    let (active, last, interrupted, managed, pipelines, attempts) = read_store(path, |s| {
        Ok((
            s.active()?,
            s.history(1)?,
            s.interrupted()?,
            s.inventory()?.len(),
            s.pipelines_summary()?,
            match s.history(1)?.first() {
                Some(l) => s.attempts_of(&l.sha)?,
                None => Vec::new(),
            },
        ))
    })
    .await
    .map_err(StatusError)?;
    Ok(serde_json::json!({
        "failure": failure_of(&attempts),
        "repo": shared.options.repo,
        "branch": shared.options.branch,
        "active": active,
        "last": last.into_iter().next(),
        "interrupted": interrupted,
        "managed": managed,
        "pipelines": pipelines,
        "lastError": last_error,
        "leader": shared.leadership.as_ref().map(|l| l.is_leader()),
        "alerts": notifications.firing,
        "notifications": notifications,
    }))
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match status_json(&shared).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/`: the status page (`page`), from what `/status` and `/history` serve.
async fn status_page(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let path = shared.options.state.clone();
    let found = match status_json(&shared).await {
        Ok(status) => read_store(path, |s| s.history(20))
            .await
            .and_then(|records| {
                let records = records
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                Ok((status, records))
            }),
        Err(e) => Err(e.to_string()),
    };
    match found {
        Ok((status, records)) => (
            [
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", page::CONTENT_SECURITY_POLICY),
                ("cache-control", "no-store"),
            ],
            page::render(
                &status,
                &records,
                &crate::policy::format_ms(crate::policy::now_ms()),
            ),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn revision(State(shared): State<Arc<Shared>>, Path(sha): Path<String>) -> impl IntoResponse {
    let path = shared.options.state.clone();
    match read_store(path, move |s| s.latest_for(&sha)).await {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"status": "unknown"})),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// Every attempt, newest first (`?limit=N`, default 20).
async fn history(
    State(shared): State<Arc<Shared>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> impl IntoResponse {
    let limit = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let path = shared.options.state.clone();
    match read_store(path, move |s| s.history(limit)).await {
        Ok(records) => Json(records).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// The live version of every pipeline (what a pull request's plan needs besides the
/// inventory).
async fn live(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let path = shared.options.state.clone();
    match read_store(path, |s| s.live()).await {
        Ok(list) => Json(serde_json::json!(list
            .into_iter()
            .map(|l| l.spec)
            .collect::<Vec<_>>()))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// The resources paver manages: what a pull request's plan needs to judge the live state.
async fn inventory(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let path = shared.options.state.clone();
    match read_store(path, |s| s.inventory()).await {
        Ok(items) => Json(serde_json::json!(items
            .into_iter()
            .map(|i| i.resource)
            .collect::<Vec<_>>()))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let m = &shared.metrics;
    let path = shared.options.state.clone();
    // Without the store, the counters still answer; the store's own figures say it is down.
    let (store_up, (active, pipelines)) =
        match read_store(path, |s| Ok((s.active()?, s.pipeline_status()?))).await {
            Ok(found) => (1, found),
            Err(_) => (0, (None, Vec::new())),
        };
    let state = shared.options.state.clone();
    let notifications = tokio::task::spawn_blocking(move || crate::notify::snapshot(&state))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let mut out = String::new();
    if let Ok(n) = &notifications {
        out.push_str(&crate::notify::metrics(n));
    }
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "paver_state_store_up",
        "gauge",
        "Whether the state store could be read for this scrape.",
        store_up.to_string(),
    );
    metric(
        "paver_reconciles_total",
        "counter",
        "Reconciles run.",
        m.reconciles.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "paver_reconcile_failures_total",
        "counter",
        "Reconciles that refused, rolled back or could not run.",
        m.failures.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "paver_steps_applied_total",
        "counter",
        "Steps applied and kept.",
        m.steps.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "paver_reconcile_duration_seconds_last",
        "gauge",
        "Duration of the last reconcile.",
        format!(
            "{:.3}",
            m.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0
        ),
    );
    metric(
        "paver_reconcile_duration_seconds_sum",
        "counter",
        "Total time spent reconciling.",
        format!(
            "{:.3}",
            m.duration_ms_total.load(Ordering::Relaxed) as f64 / 1000.0
        ),
    );
    metric(
        "paver_webhooks_total",
        "counter",
        "Webhook requests received.",
        m.webhooks.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "paver_webhooks_rejected_total",
        "counter",
        "Webhook requests with a bad signature.",
        m.webhooks_rejected.load(Ordering::Relaxed).to_string(),
    );
    if let Some(leadership) = &shared.leadership {
        metric(
            "paver_leader",
            "gauge",
            "1 when this replica holds the lease and applies revisions.",
            u8::from(leadership.is_leader()).to_string(),
        );
    }
    if let Some(active) = active {
        out.push_str(&format!(
            "# HELP paver_active_revision_info The active revision.\n# TYPE paver_active_revision_info gauge\npaver_active_revision_info{{sha=\"{}\"}} 1\n",
            active.sha
        ));
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&crate::store::PipelineStatus) -> Option<f64>,
    );
    let families: [Family; 6] = [
        (
            "paver_pipeline_failing",
            "gauge",
            "1 while the pipeline's worker reports an error (inserts retried, a version that cannot start).",
            |p| Some(if p.last_error.is_some() { 1.0 } else { 0.0 }),
        ),
        (
            "paver_pipeline_live_version",
            "gauge",
            "The version of the pipeline being ingested.",
            |p| Some(f64::from(p.version)),
        ),
        (
            "paver_pipeline_lag",
            "gauge",
            "Records in the source topic not yet ingested.",
            |p| p.lag.map(|l| l as f64),
        ),
        (
            "paver_pipeline_rows_per_second",
            "gauge",
            "Rows inserted per second, over the last report interval.",
            |p| Some(p.rows_per_sec),
        ),
        (
            "paver_pipeline_rows_inserted_total",
            "counter",
            "Rows inserted by the current worker.",
            |p| Some(p.inserted as f64),
        ),
        (
            "paver_pipeline_dead_lettered_total",
            "counter",
            "Records sent to the dead-letter topic by the current worker.",
            |p| Some(p.dead_lettered as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for p in &pipelines {
            if let Some(v) = value(p) {
                out.push_str(&format!("{name}{{pipeline=\"{}\"}} {v}\n", p.name));
            }
        }
    }
    ([("content-type", "text/plain; version=0.0.4")], out)
}

/// What failed in the last attempt at a revision (its attempts, oldest first), why,
/// whether it is retried by itself, and when.
pub fn failure_of(attempts: &[crate::store::RevisionRecord]) -> Option<serde_json::Value> {
    let last = attempts.last()?;
    if last.status != crate::store::RevisionStatus::RolledBack {
        return None;
    }
    let kind = last
        .error_kind
        .unwrap_or(crate::error::ErrorKind::Transient);
    let next = match crate::policy::decide(attempts, crate::policy::now_ms()) {
        crate::policy::Decision::Wait { at_ms, .. } => Some(crate::policy::format_ms(at_ms)),
        crate::policy::Decision::Go => Some("now".to_string()),
        crate::policy::Decision::Hold { .. } => None,
    };
    Some(serde_json::json!({
        "revision": last.sha,
        "kind": kind.as_str(),
        "error": last.error,
        "at": last.finished_at,
        "nextTry": next,
        "retry": if kind.retryable() {
            "by itself, with backoff".to_string()
        } else {
            format!("held: push a new revision, or `paver retry {}`", last.sha)
        },
    }))
}

/// `POST /retry/<sha>`: apply a held revision again (what `paver retry <sha> --server` sends).
async fn retry(State(shared): State<Arc<Shared>>, Path(sha): Path<String>) -> impl IntoResponse {
    let path = shared.options.state.clone();
    let wanted = sha.clone();
    match read_store(path, move |s| s.request_retry(&wanted)).await {
        Ok(()) => {
            shared.wake.notify_one();
            (StatusCode::ACCEPTED, format!("retrying {sha}")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn webhook_signatures() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        assert!(signature_valid(b"s3cret", body, Some(&good)));
        assert!(!signature_valid(b"other", body, Some(&good)));
        assert!(!signature_valid(b"s3cret", b"{}", Some(&good)));
        assert!(!signature_valid(b"s3cret", body, None));
        assert!(!signature_valid(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_valid(b"s3cret", body, Some("sha1=abcd")));
    }
}
