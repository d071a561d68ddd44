//! The Schema Registry client: `GET /schemas/ids/{id}` over http:// or https:// (hyper and
//! rustls, the CAs of `caFile`), with basic auth when credentials are configured.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::config::{ConfigError, Env, Registry};

/// Why the Schema Registry did not answer with a schema.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the Schema Registry: {0}")]
    Config(#[from] ConfigError),
    #[error("the Schema Registry: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Not reached, a timeout, a 5xx: may pass later.
    #[error("the Schema Registry at {url}: {detail}")]
    Unavailable { url: String, detail: String },
    #[error("the Schema Registry at {url}: {problem}")]
    Certificate {
        url: String,
        problem: crate::tls::Problem,
    },
    #[error("the Schema Registry at {url} refused the credentials (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    #[error("the Schema Registry has no schema id {id}")]
    NotFound { id: u32 },
    #[error("the Schema Registry's answer for {what} is not what was expected: {detail}")]
    Malformed { what: String, detail: String },
}

impl RegistryError {
    /// Whether asking again later may give another answer.
    pub fn transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// A client of one Schema Registry.
pub struct SchemaRegistry {
    url: String,
    /// `Basic …`, when credentials are configured (never printed).
    authorization: Option<String>,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl SchemaRegistry {
    pub fn new(target: &Registry, env: Env) -> Result<SchemaRegistry, RegistryError> {
        let authorization = target.credentials(env)?.map(|(user, password)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                user.expose(),
                password.expose()
            ));
            format!("Basic {token}")
        });
        Ok(SchemaRegistry {
            url: target.url.trim_end_matches('/').to_string(),
            authorization,
            http: crate::tls::https_client(&target.tls)?,
        })
    }

    /// GET a JSON document; `Ok(None)` on 404.
    async fn get(&self, path: &str) -> Result<Option<serde_json::Value>, RegistryError> {
        let url = format!("{}{path}", self.url);
        let unavailable = |detail: String| RegistryError::Unavailable {
            url: self.url.clone(),
            detail,
        };
        let mut request = hyper::Request::get(&url).header("Accept", "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| unavailable(e.to_string()))?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.http.request(request),
        )
        .await
        .map_err(|_| unavailable("no answer within 30 s".into()))?
        .map_err(|e| match crate::tls::problem(&e) {
            Some(problem) => RegistryError::Certificate {
                url: self.url.clone(),
                problem,
            },
            None => unavailable(error_chain(&e)),
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .to_bytes();
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| RegistryError::Malformed {
                    what: path.to_string(),
                    detail: e.to_string(),
                }),
            404 => Ok(None),
            401 | 403 => Err(RegistryError::Unauthorized {
                url: self.url.clone(),
                status,
            }),
            s if s >= 500 || s == 429 => Err(unavailable(format!("HTTP {s}"))),
            s => Err(RegistryError::Malformed {
                what: path.to_string(),
                detail: format!("HTTP {s}"),
            }),
        }
    }

    /// The schema with id `id`, as JSON text.
    pub async fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let answer = self
            .get(&format!("/schemas/ids/{id}"))
            .await?
            .ok_or(RegistryError::NotFound { id })?;
        answer["schema"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Malformed {
                what: format!("schema id {id}"),
                detail: "no `schema`".into(),
            })
    }

    /// Reachable and authenticated: `GET /subjects` answers 200.
    pub async fn check(&self) -> Result<(), RegistryError> {
        self.get("/subjects").await.map(|_| ())
    }
}

/// An error and its causes, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(c) = next {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = c.source();
    }
    parts.join(": ")
}
