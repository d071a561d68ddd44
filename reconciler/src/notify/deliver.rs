//! The delivery task: sends what the outbox holds, apart from everything else. Each
//! notification is one HTTP(S) POST with a timeout; a failure (refused, 5xx, 4xx, a
//! timeout) is retried with capped exponential backoff. A receiver that is down, failing or
//! slow holds back its own lane only, never a reconcile, an ingestion or another receiver.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::config::{NotificationsConfig, NotifyConfigError};
use super::outbox::{Outbox, Pending, Target};
use super::Notifier;
use crate::store::now_ms;

/// The first retry's pause; each failure doubles it, up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: i64 = 1_000;
pub const MAX_BACKOFF_MS: i64 = 60_000;

/// The pause after `attempts` failed attempts.
pub fn backoff_ms(attempts: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 16) as u32;
    (FIRST_BACKOFF_MS << doublings).min(MAX_BACKOFF_MS)
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Config(#[from] NotifyConfigError),
    #[error("no `notifications` entry sends to {0} any more")]
    Unconfigured(String),
    #[error("{0}: not a valid URL")]
    BadUrl(String),
    #[error("the TLS roots of this machine cannot be loaded: {0}")]
    Roots(#[source] std::io::Error),
    #[error("{url}: {source}")]
    Request {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> Result<HttpsClient, DeliveryError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(DeliveryError::Roots)?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// One request: the URL, its headers and its JSON body.
pub struct Request {
    pub url: String,
    /// The URL as errors may print it (a Slack webhook URL is a secret).
    pub shown: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// POST a request; any 2xx is delivered.
async fn post(
    client: &HttpsClient,
    request: Request,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let uri: hyper::Uri = request
        .url
        .parse()
        .map_err(|_| DeliveryError::BadUrl(request.shown.clone()))?;
    let mut builder = hyper::Request::post(uri)
        .header("content-type", "application/json")
        .header("user-agent", "paver");
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|_| DeliveryError::BadUrl(request.shown.clone()))?;
    let url = request.shown.clone();
    let exchange = async {
        let answer = client
            .request(req)
            .await
            .map_err(|source| DeliveryError::Request {
                url: url.clone(),
                source,
            })?;
        let status = answer.status().as_u16();
        // The body is read (and bounded) so that the connection can be reused.
        let body = match answer.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes())
                .chars()
                .take(200)
                .collect(),
            Err(e) => format!("(the body could not be read: {e})"),
        };
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(DeliveryError::Status {
                url: url.clone(),
                status,
                body,
            })
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Timeout { url, timeout }),
    }
}

/// A URL as it may be printed: a Slack webhook's path is its secret.
fn redact(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => match url[start..].find('/') {
            Some(slash) if url.contains("hooks.slack.com") || url.contains("/services/") => {
                format!("{}/…", &url[..start + slash])
            }
            _ => url.to_string(),
        },
        None => "(a URL)".to_string(),
    }
}

/// The request of a pending notification, with its secrets read now.
pub fn request(config: &NotificationsConfig, pending: &Pending) -> Result<Request, DeliveryError> {
    match &pending.target {
        Target::Webhook { url } => {
            let hook = config
                .webhooks
                .iter()
                .find(|w| &w.url == url)
                .ok_or_else(|| DeliveryError::Unconfigured(url.clone()))?;
            let mut headers = vec![("x-paver-event", "revision".to_string())];
            if let Some(secret) = hook.secret()? {
                headers.push((
                    "x-hub-signature-256",
                    super::payload::signature(secret.expose().as_bytes(), pending.body.as_bytes()),
                ));
            }
            Ok(Request {
                url: url.clone(),
                shown: redact(url),
                headers,
                body: pending.body.clone(),
            })
        }
        Target::GitHubStatus { sha } => {
            let github = config
                .github
                .as_ref()
                .ok_or_else(|| DeliveryError::Unconfigured("GitHub".into()))?;
            let token = github.token()?;
            let url = format!(
                "{}/repos/{}/statuses/{sha}",
                github.api_url(),
                github.repository
            );
            Ok(Request {
                shown: url.clone(),
                url,
                headers: vec![
                    ("accept", "application/vnd.github+json".to_string()),
                    ("authorization", format!("Bearer {}", token.expose())),
                    ("x-github-api-version", "2022-11-28".to_string()),
                ],
                body: pending.body.clone(),
            })
        }
        Target::Slack { channel } => {
            let slack = config
                .slack
                .get(channel)
                .ok_or_else(|| DeliveryError::Unconfigured(format!("slack://#{channel}")))?;
            Ok(Request {
                url: slack.webhook_url(channel)?.expose().to_string(),
                shown: format!("slack://#{channel}"),
                headers: Vec::new(),
                body: pending.body.clone(),
            })
        }
        Target::Http { url } => Ok(Request {
            url: url.clone(),
            shown: redact(url),
            headers: vec![("x-paver-event", "alert".to_string())],
            body: pending.body.clone(),
        }),
    }
}

/// Deliver until `stop`: every 250 ms (or when woken), what is due and not in flight goes
/// out, each in a task of its own.
pub async fn run(notifier: Arc<Notifier>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let mut said: Option<String> = None;
    let client = client();
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(config) = notifier.config() {
            let path = notifier.state.clone();
            let due = tokio::task::spawn_blocking(move || {
                Outbox::open(&path).and_then(|o| o.due(now_ms(), 64))
            })
            .await;
            match due {
                Ok(Ok(due)) => {
                    said = None;
                    for pending in due {
                        let fresh = in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(pending.id);
                        if !fresh {
                            continue;
                        }
                        let client = match &client {
                            Ok(c) => Ok(c.clone()),
                            Err(e) => {
                                Err(DeliveryError::Roots(std::io::Error::other(e.to_string())))
                            }
                        };
                        tokio::spawn(send(
                            notifier.clone(),
                            config.clone(),
                            client,
                            pending,
                            in_flight.clone(),
                        ));
                    }
                }
                Ok(Err(e)) => say(&mut said, format!("paver: notifications: {e}")),
                Err(e) => say(&mut said, format!("paver: notifications: {e}")),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = notifier.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

fn say(said: &mut Option<String>, text: String) {
    if said.as_deref() != Some(text.as_str()) {
        eprintln!("{text}");
        *said = Some(text);
    }
}

async fn send(
    notifier: Arc<Notifier>,
    config: Arc<NotificationsConfig>,
    client: Result<HttpsClient, DeliveryError>,
    pending: Pending,
    in_flight: Arc<Mutex<BTreeSet<i64>>>,
) {
    // The outbox row's id: a receiver that got a request but answered too late gets it
    // again, and can tell.
    let request = request(&config, &pending).map(|mut r| {
        r.headers.push(("x-paver-delivery", pending.id.to_string()));
        r
    });
    let result = match (client, request) {
        (Ok(client), Ok(request)) => post(&client, request, config.timeout()).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (id, attempts) = (pending.id, pending.attempts + 1);
    let error = result.as_ref().err().map(ToString::to_string);
    if let Some(e) = &error {
        eprintln!(
            "paver: notification {} (attempt {attempts}) failed, retrying in {} s: {e}",
            pending.key,
            backoff_ms(attempts) / 1000
        );
    }
    let path = notifier.state.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        let outbox = Outbox::open(&path)?;
        match error {
            None => outbox.delivered(id),
            Some(e) => outbox.failed(id, &e, now_ms() + backoff_ms(attempts)),
        }
    })
    .await;
    match recorded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!(
            "paver: notification {}: recording the attempt: {e}",
            pending.key
        ),
        Err(e) => eprintln!(
            "paver: notification {}: recording the attempt: {e}",
            pending.key
        ),
    }
    in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    notifier.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(
            (1..=9).map(backoff_ms).collect::<Vec<_>>(),
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
    }

    #[test]
    fn slack_webhook_urls_are_redacted() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
    }
}
