//! `paver doctor`: resolve a revision's configuration, print it (secrets redacted), then
//! check every target and print one line each: reachable, authenticated, TLS verified, the
//! server's version; or exactly what is wrong.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, Env};
use crate::providers::clickhouse::ClickHouse;
use crate::providers::kafka::Context;
use crate::reconcile::{Options, ReconcileError};

/// How long a Kafka check waits for the brokers.
const KAFKA_WAIT: Duration = Duration::from_secs(15);

/// The exit code: 0 every target is fine, 1 one is not, 2 the check could not run.
pub async fn run(options: &Options, out: &mut impl Write) -> i32 {
    let env = &config::process_env;
    let config = match resolve(options, env, out) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("paver doctor: {e}");
            return 2;
        }
    };
    let mut fine = true;
    let mut line = |ok: bool, text: String| {
        fine &= ok;
        let _ = writeln!(out, "{} {text}", if ok { "ok  " } else { "FAIL" });
    };
    let (ok, text) = clickhouse("clickhouse", &config.connections.clickhouse, env).await;
    line(ok, text);
    for (name, target) in &config.clusters {
        let (ok, text) = clickhouse(&format!("clusters.{name}.clickhouse"), target, env).await;
        line(ok, text);
    }
    let (ok, text) = kafka(&config.connections.kafka, env).await;
    line(ok, text);
    if let Some(registry) = &config.connections.schema_registry {
        let (ok, text) = schema_registry(registry, env).await;
        line(ok, text);
    }
    if let Some(kube) = &config.kubernetes {
        let (ok, text) = kubernetes(kube).await;
        line(ok, text);
    }
    i32::from(!fine)
}

/// Load the revision and resolve its configuration, printing it.
fn resolve(options: &Options, env: Env, out: &mut impl Write) -> Result<Config, ReconcileError> {
    let (revision, _) = crate::reconcile::read_revision(options)?;
    let report = paver_lint::lint(revision.collected);
    let config = Config::unchecked(&report.workspace, env, &options.flags)?;
    let _ = writeln!(out, "revision {}", revision.sha);
    if report.errors() > 0 {
        let _ = writeln!(
            out,
            "note: the revision has {} lint errors (paver-lint says which): paver would refuse it",
            report.errors()
        );
    }
    let _ = write!(out, "{}", config.render());
    Ok(config)
}

fn tls_words(url: &str) -> &'static str {
    if url.starts_with("https://") {
        "TLS verified"
    } else {
        "no TLS"
    }
}

async fn clickhouse(name: &str, target: &config::ClickHouse, env: Env<'_>) -> (bool, String) {
    let ch = match ClickHouse::open(target, env).await {
        Ok(ch) => ch,
        Err(e) => return (false, format!("{name}: {e}")),
    };
    let line = format!(
        "{name} {}: reachable, authenticated as `{}`, {}, ClickHouse {}",
        target.url,
        target.user.as_deref().unwrap_or("default"),
        tls_words(&target.url),
        ch.version_text
    );
    let Some(cluster) = &target.cluster else {
        return (true, line);
    };
    // Where the workers insert each shard's rows, checked as they check it.
    match crate::ingest::shards::Shards::open(target, env, ch).await {
        Ok(shards) => {
            let urls: Vec<&str> = shards.nodes().iter().map(|n| n.url.as_str()).collect();
            (
                true,
                format!(
                    "{line}\n{name} cluster `{cluster}`: {} shard(s), rows inserted into {}",
                    urls.len(),
                    urls.join(", ")
                ),
            )
        }
        Err(e) => (false, format!("{line}\n{name}: {e}")),
    }
}

async fn kafka(target: &config::Kafka, env: Env<'_>) -> (bool, String) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let fail = |text: String| (false, format!("kafka: Kafka at {}: {text}", target.brokers));
    let config = match crate::providers::kafka::client_config(target, env) {
        Ok(config) => config,
        Err(e) => return (false, format!("kafka: {e}")),
    };
    // A consumer that joins nothing: polling it serves librdkafka's error events.
    let client: Result<BaseConsumer<Context>, _> = config
        .clone()
        .set("group.id", "paver-doctor")
        .create_with_context(Context::default());
    let client = match client {
        Ok(client) => Arc::new(client),
        Err(e) => return fail(e.to_string()),
    };
    // The metadata request blocks; librdkafka's errors arrive meanwhile. The first of the
    // two decides (a wrong password or an untrusted certificate need not wait the timeout).
    // The request is made in short slices so that, told to stop, the thread lets go of the
    // client within one slice: doctor must not exit while librdkafka's threads still run
    // (OpenSSL's exit handlers under a live TLS handshake crash the process; CI saw it).
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fetcher = {
        let (client, stop) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + KAFKA_WAIT;
            let result = loop {
                let result = client.fetch_metadata(None, Duration::from_millis(250));
                let timed_out = matches!(
                    &result,
                    Err(e) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)
                );
                if !timed_out
                    || stop.load(std::sync::atomic::Ordering::Relaxed)
                    || std::time::Instant::now() >= deadline
                {
                    break result;
                }
            };
            drop(client);
            let _ = tx.send(result);
        })
    };
    let finish = move || {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = fetcher.join();
    };
    let explain = |client: &BaseConsumer<Context>| {
        client
            .context()
            .errors()
            .iter()
            .find_map(|reason| kafka_problem(target, env, reason))
    };
    let result = loop {
        let _ = client.poll(Duration::ZERO);
        if let Some(problem) = explain(&client) {
            let _ = tokio::task::spawn_blocking(finish).await;
            return fail(refine(target, problem).await);
        }
        match rx.try_recv() {
            Ok(result) => break result.map_err(|e| e.to_string()),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                break Err("the metadata request ended without an answer".into())
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match result {
        Ok(metadata) => {
            let protocol = target.security_protocol;
            let auth = match (protocol.sasl(), target.sasl_mechanism) {
                (true, Some(m)) => format!("authenticated with SASL {}", m.as_str()),
                _ => "no authentication".to_string(),
            };
            (
                true,
                format!(
                    "kafka {}: reachable, {auth}, {}, {} brokers (the Kafka protocol does not report a server version)",
                    target.brokers,
                    if protocol.tls() { "TLS verified" } else { "no TLS" },
                    metadata.brokers().len()
                ),
            )
        }
        Err(e) => {
            let _ = client.poll(Duration::from_millis(500));
            match explain(&client) {
                Some(problem) => fail(refine(target, problem).await),
                None => fail(e),
            }
        }
    }
}

/// librdkafka says only that a certificate could not be verified: a TLS handshake of our
/// own with the first broker says why (unknown CA, name mismatch, expired).
async fn refine(target: &config::Kafka, problem: String) -> String {
    if !problem.starts_with("certificate problem") && !problem.starts_with("TLS problem") {
        return problem;
    }
    let first = target.brokers.split(',').next().unwrap_or_default().trim();
    match crate::tls::probe(first, &target.tls).await {
        Some(found) => found.to_string(),
        None => problem,
    }
}

/// What one of librdkafka's error reasons means, when it says something definite.
pub fn kafka_problem(target: &config::Kafka, env: Env, reason: &str) -> Option<String> {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("connection refused") {
        let address = reason
            .split("ipv4#")
            .nth(1)
            .or_else(|| reason.split("ipv6#").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or(&target.brokers);
        return Some(format!("connection refused by {address}"));
    }
    let sasl_refused = lower.contains("sasl") && lower.contains("handshake failed");
    if sasl_refused
        || lower.contains("sasl authentication error")
        || lower.contains("authentication failed")
    {
        let user = target
            .credentials(env)
            .ok()
            .flatten()
            .map_or("?".to_string(), |(u, _)| u.expose().to_string());
        let mechanism = target.sasl_mechanism.map_or("?", |m| m.as_str());
        // What the broker said of a refused handshake (`… handshake failed: <this> (after …`),
        // or of a refused SCRAM exchange (`… broker responded with <this> (after …`, e.g.
        // `unknown-user`, `invalid-proof`).
        let until_after = |rest: &str| rest.split(" (after ").next().unwrap_or(rest).to_string();
        let said = if sasl_refused {
            reason.split_once("handshake failed: ").map(|(_, rest)| {
                let rest = until_after(rest);
                format!(": {}", rest.split(": broker's").next().unwrap_or(&rest))
            })
        } else {
            reason
                .split_once("broker responded with ")
                .map(|(_, rest)| format!(": the broker says {}", until_after(rest)))
        }
        .unwrap_or_default();
        return Some(format!(
            "authentication failed for user `{user}` (SASL {mechanism}){said}"
        ));
    }
    // The server's alert about this client's certificate (or the lack of one), e.g.
    // `Receive failed: error:0A00045C:SSL routines::tlsv13 alert certificate required`.
    for alert in [
        "alert certificate required",
        "alert bad certificate",
        "alert unknown ca",
        "alert certificate unknown",
    ] {
        if lower.contains(alert) {
            let words = alert.trim_start_matches("alert ").to_string();
            return Some(crate::tls::Problem::ClientRefused(words).to_string());
        }
    }
    if lower.contains("ssl handshake failed") || lower.contains("certificate verify failed") {
        let problem =
            if lower.contains("hostname mismatch") || lower.contains("ip address mismatch") {
                crate::tls::Problem::NameMismatch
            } else if lower.contains("expired") {
                crate::tls::Problem::Expired
            } else if lower.contains("unable to get local issuer")
                || lower.contains("self-signed")
                || lower.contains("self signed")
                || lower.contains("could not be verified")
            {
                crate::tls::Problem::UnknownCa
            } else {
                crate::tls::Problem::Other(reason.to_string())
            };
        return Some(problem.to_string());
    }
    None
}

async fn schema_registry(target: &config::Registry, env: Env<'_>) -> (bool, String) {
    let checked = match crate::registry::SchemaRegistry::new(target, env) {
        Ok(client) => client.check().await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => (
            true,
            format!(
                "schemaRegistry {}: reachable, {}, {} (the Schema Registry API does not report a version)",
                target.url,
                if target.username.is_some() {
                    "authenticated"
                } else {
                    "no authentication"
                },
                tls_words(&target.url)
            ),
        ),
        Err(e) => (false, format!("schemaRegistry: {e}")),
    }
}

async fn kubernetes(target: &crate::kube::Target) -> (bool, String) {
    let context = target.context.as_deref().unwrap_or("(current)");
    match crate::kube::provider::client(target.context.as_deref()).await {
        Ok(client) => match client.apiserver_version().await {
            Ok(v) => (
                true,
                format!(
                    "kubernetes {context}: reachable, authenticated, Kubernetes {}.{}",
                    v.major, v.minor
                ),
            ),
            Err(e) => (false, format!("kubernetes {context}: {e}")),
        },
        Err(e) => (false, format!("kubernetes {context}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SaslMechanism, SecretSource, SecurityProtocol};

    fn target() -> config::Kafka {
        config::Kafka {
            brokers: "b:9093".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha256),
            username: Some(SecretSource::Env("KU".into())),
            password: Some(SecretSource::Env("KP".into())),
            tls: Default::default(),
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "KU" || name == "KP").then(|| format!("{name}-value"))
    }

    /// librdkafka's own words (2.12), as its error callback gives them.
    #[test]
    fn librdkafka_errors_in_words() {
        let cases = [
            ("b:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state CONNECT)",
             "connection refused by 127.0.0.1:9093"),
            ("sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256 (after 312ms in state AUTH_REQ)",
             "authentication failed for user `KU-value` (SASL SCRAM-SHA-256)"),
            ("ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 4ms in state SSL_HANDSHAKE)",
             "certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)"),
            ("ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: Hostname mismatch (after 4ms in state SSL_HANDSHAKE)",
             "certificate problem: name mismatch (the server's certificate is for another name)"),
            ("ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: certificate has expired (after 4ms in state SSL_HANDSHAKE)",
             "certificate problem: expired"),
        ];
        for (reason, want) in cases {
            assert_eq!(
                kafka_problem(&target(), &env, reason).as_deref(),
                Some(want),
                "{reason}"
            );
        }
        assert_eq!(
            kafka_problem(&target(), &env, "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-256 (after 0ms in state AUTH_HANDSHAKE)").as_deref(),
            Some("authentication failed for user `KU-value` (SASL SCRAM-SHA-256): Broker: Unsupported SASL mechanism")
        );
        assert_eq!(
            kafka_problem(&target(), &env, "ssl://127.0.0.1:44943/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 alert certificate required: SSL alert number 116 (after 0ms in state APIVERSION_QUERY)").as_deref(),
            Some("the server refused the client certificate (certificate required): check certFile and keyFile")
        );
        assert_eq!(
            kafka_problem(&target(), &env, "sasl_plaintext://127.0.0.1:39093/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with unknown-user (after 134ms in state AUTH_REQ)").as_deref(),
            Some("authentication failed for user `KU-value` (SASL SCRAM-SHA-256): the broker says unknown-user")
        );
        assert_eq!(kafka_problem(&target(), &env, "1/1 brokers are down"), None);
    }
}
