//! Connecting to a ClickHouse server: TLS and credentials as configured, the server's
//! version read, and a failed first query said in words (refused, authentication,
//! certificate).

use super::{error_code, ClickHouse};
use crate::config::{ConfigError, Env};
use crate::model::connections;

/// Why a ClickHouse server cannot be used, in the words `paver doctor` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ClickHouse at {url}: {source}")]
    Config { url: String, source: ConfigError },
    #[error("ClickHouse at {url}: {source}")]
    Tls {
        url: String,
        source: crate::tls::TlsError,
    },
    #[error("ClickHouse at {url}: connection refused by {address}")]
    Refused { url: String, address: String },
    #[error("ClickHouse at {url}: authentication failed for user `{user}` (password): {detail}")]
    Authentication {
        url: String,
        user: String,
        detail: String,
    },
    #[error("ClickHouse at {url}: {problem}")]
    Certificate {
        url: String,
        problem: crate::tls::Problem,
    },
    #[error("ClickHouse at {url}: {detail}")]
    Other { url: String, detail: String },
}

impl ConnectError {
    /// What to check, for a command that needed the server (`plan`, `apply`): empty when
    /// the error says it all.
    pub fn help(&self) -> String {
        match self {
            ConnectError::Refused { address, .. } => format!(
                "\n  help: is ClickHouse running and listening on {address}? The URL comes from \
                 PAVER_CLICKHOUSE_URL, else `targets.clickhouse.url` in paver.yaml; \
                 `paver doctor --repo <repo>` checks every connection"
            ),
            _ => String::new(),
        }
    }
}

/// ClickHouse's codes for an unknown user, a wrong password, a failed authentication.
const AUTH_ERRORS: &[u32] = &[192, 193, 194, 516];

/// `host:port` of a URL, the port defaulted by its scheme.
pub fn address(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else if scheme == "https" {
        format!("{host}:443")
    } else {
        format!("{host}:80")
    }
}

impl ClickHouse {
    /// Connect to an unsecured server (tests, local use) and read its version.
    pub async fn connect(
        url: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<ClickHouse, ConnectError> {
        let target = connections::ClickHouse {
            user: user.map(str::to_string),
            password: password.map(|_| connections::SecretSource::Env("PASSWORD".into())),
            ..connections::ClickHouse::plain(url)
        };
        let env = |_: &str| password.map(str::to_string);
        ClickHouse::open(&target, &env).await
    }

    /// Connect to `target` (TLS and credentials as configured) and read the server's version.
    pub async fn open(
        target: &connections::ClickHouse,
        env: Env<'_>,
    ) -> Result<ClickHouse, ConnectError> {
        let url = target.url.clone();
        let http = crate::tls::https_client(&target.tls).map_err(|source| ConnectError::Tls {
            url: url.clone(),
            source,
        })?;
        let mut client = clickhouse::Client::with_http_client(http)
            .with_url(&url)
            .with_validation(false);
        if let Some(user) = &target.user {
            client = client.with_user(user);
        }
        let password = target
            .password(env)
            .map_err(|source| ConnectError::Config {
                url: url.clone(),
                source,
            })?;
        if let Some(password) = &password {
            client = client.with_password(password.expose());
        }
        let mut ch = ClickHouse {
            client,
            queries: Default::default(),
            version: (0, 0),
            version_text: String::new(),
            url: url.clone(),
            user: target.user.clone(),
            password: password.as_ref().map(|p| p.expose().to_string()),
            cluster: target.cluster.clone(),
            nodes: std::sync::OnceLock::new(),
            insert_settings: std::sync::OnceLock::new(),
            views: Default::default(),
        };
        ch.count();
        let bytes = match ch.client.query("SELECT version()").fetch_bytes("TSV") {
            Ok(mut cursor) => cursor.collect().await,
            Err(e) => Err(e),
        }
        .map_err(|e| ch.connect_error(&e))?;
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ch.version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        ch.version_text = text;
        Ok(ch)
    }

    /// What a failed first query means.
    fn connect_error(&self, e: &clickhouse::error::Error) -> ConnectError {
        let url = self.url.clone();
        if let Some(problem) = crate::tls::problem(e) {
            return ConnectError::Certificate { url, problem };
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            {
                return ConnectError::Refused {
                    address: address(&url),
                    url,
                };
            }
            cause = c.source();
        }
        let text = e.to_string();
        if error_code(&text).is_some_and(|c| AUTH_ERRORS.contains(&c)) {
            // `Code: 193, e.displayText() = DB::Exception: Wrong password for user x, e.what() = …`
            let detail = text.split("e.displayText() = ").nth(1).unwrap_or(&text);
            let detail = detail.split(", e.what() = ").next().unwrap_or(detail);
            let detail = detail
                .trim()
                .trim_start_matches("DB::Exception: ")
                .trim_end_matches(['.', '\n'])
                .to_string();
            return ConnectError::Authentication {
                user: self.user.clone().unwrap_or_else(|| "default".to_string()),
                url,
                detail,
            };
        }
        ConnectError::Other { url, detail: text }
    }
}
