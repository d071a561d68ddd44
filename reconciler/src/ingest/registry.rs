//! The Confluent Schema Registry's read API, as the worker uses it: what schema an id
//! names. Only a definitive answer (the schema, or "no such id") may be remembered; a
//! registry that cannot answer now (refused, timed out, a 5xx, and also refused
//! credentials or a certificate, which a fixed Secret or CA mends) is asked again later.
//! The client itself (https, basic auth, caFile) is [`crate::registry`].

use std::time::Duration;

use super::stop::{Backoff, Stop};
use crate::registry::{RegistryError, SchemaRegistry};

/// What the registry said about a schema id.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The schema's JSON text.
    Schema(String),
    /// It has no schema with that id (404).
    NotFound,
}

/// Why the registry gave no definitive answer. Always worth asking again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    #[error("the Schema Registry did not answer for schema id {id}: {reason}")]
    Unavailable { id: u32, reason: String },
    #[error("stopped while waiting for the Schema Registry")]
    Stopped,
}

/// One lookup: `GET {url}/schemas/ids/{id}`, bounded by `timeout`.
pub async fn lookup(
    registry: &SchemaRegistry,
    id: u32,
    timeout: Duration,
) -> Result<Answer, LookupError> {
    let unavailable = |reason: String| LookupError::Unavailable { id, reason };
    let answer = tokio::time::timeout(timeout, registry.schema(id))
        .await
        .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?;
    match answer {
        Ok(schema) => Ok(Answer::Schema(schema)),
        Err(RegistryError::NotFound { .. }) => Ok(Answer::NotFound),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// Ask until the registry answers definitively, with a growing pause between attempts;
/// `Err(Stopped)` when `stop` comes first.
pub async fn resolve(
    registry: &SchemaRegistry,
    id: u32,
    stop: &Stop,
) -> Result<Answer, LookupError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut said = None;
    loop {
        let attempt = tokio::select! {
            a = lookup(registry, id, Duration::from_secs(10)) => a,
            _ = stop.stopped() => return Err(LookupError::Stopped),
        };
        match attempt {
            Ok(answer) => return Ok(answer),
            Err(e) => {
                let text = e.to_string();
                if said.as_ref() != Some(&text) {
                    eprintln!("paver ingest: {text}; asking again");
                    said = Some(text);
                }
                if !stop.sleep(backoff.pause()).await {
                    return Err(LookupError::Stopped);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A registry that answers each request with the next of `answers` (status, body).
    async fn registry(answers: Vec<(&'static str, String)>) -> SchemaRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client =
            SchemaRegistry::new(&crate::model::connections::Registry::plain(&url), &|_| None)
                .unwrap();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        client
    }

    #[tokio::test]
    async fn a_5xx_or_a_refused_connection_is_not_an_answer() {
        let client = registry(vec![("503 Service Unavailable", "{}".to_string())]).await;
        assert!(matches!(
            lookup(&client, 3, Duration::from_secs(10)).await,
            Err(LookupError::Unavailable { id: 3, .. })
        ));
        // Nobody listens there any more.
        assert!(matches!(
            lookup(&client, 3, Duration::from_secs(10)).await,
            Err(LookupError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn a_404_and_a_schema_are_answers() {
        let client = registry(vec![
            ("404 Not Found", r#"{"error_code":40403}"#.to_string()),
            ("200 OK", r#"{"schema":"\"long\""}"#.to_string()),
        ])
        .await;
        assert_eq!(
            lookup(&client, 1, Duration::from_secs(10)).await,
            Ok(Answer::NotFound)
        );
        assert_eq!(
            lookup(&client, 2, Duration::from_secs(10)).await,
            Ok(Answer::Schema("\"long\"".to_string()))
        );
    }

    #[tokio::test]
    async fn resolve_asks_again_until_the_registry_answers() {
        let client = registry(vec![
            ("500 Internal Server Error", "{}".to_string()),
            ("503 Service Unavailable", "{}".to_string()),
            ("200 OK", r#"{"schema":"\"long\""}"#.to_string()),
        ])
        .await;
        let (_stopper, stop) = Stop::new();
        assert_eq!(
            resolve(&client, 5, &stop).await,
            Ok(Answer::Schema("\"long\"".to_string()))
        );
    }

    #[tokio::test]
    async fn resolve_gives_up_when_stopped() {
        let client = registry(vec![]).await;
        let (stopper, stop) = Stop::new();
        let waiting = tokio::spawn(async move { resolve(&client, 5, &stop).await });
        stopper.stop();
        assert_eq!(waiting.await.unwrap(), Err(LookupError::Stopped));
    }
}
