//! How the servers are reached: what paver.yaml's `targets` resolve to (see
//! [`crate::config`]) and what is recorded with each live pipeline version for the
//! ingestion workers. Secrets appear only as where they are read from ([`SecretSource`]),
//! never as values.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a secret is read from. Only this is ever recorded or shown, never the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (its content, less a trailing newline).
    File(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "${var}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// TLS settings of a client: the CAs to trust (else the system's) and a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// A ClickHouse server (`targets.clickhouse`, or a cluster's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouse {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<SecretSource>,
    #[serde(default)]
    pub tls: Tls,
    /// The ClickHouse cluster (`remote_servers` entry) that holds the tables, made
    /// `ON CLUSTER`; `None`: one server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// With `cluster`: the HTTP address of the node each shard's rows are inserted into,
    /// in `shard_num` order. Empty: derived from `system.clusters` (the url's own node for
    /// its shard; another shard's first replica at its `host_name` with the url's scheme
    /// and port), each checked to answer as its shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
}

impl ClickHouse {
    /// A server without TLS, user or password (tests, local use).
    pub fn plain(url: &str) -> ClickHouse {
        ClickHouse {
            url: url.to_string(),
            user: None,
            password: None,
            tls: Tls::default(),
            cluster: None,
            shards: Vec::new(),
        }
    }
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityProtocol {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in the order the documentation lists them.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Kafka's `sasl.mechanism` (those librdkafka implements itself, without Cyrus SASL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// Every mechanism, in the order the documentation lists them.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The Kafka cluster (`targets.kafka`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kafka {
    pub brokers: String,
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub username: Option<SecretSource>,
    pub password: Option<SecretSource>,
    #[serde(default)]
    pub tls: Tls,
}

impl Kafka {
    /// Brokers without TLS or SASL (tests, local use).
    pub fn plain(brokers: &str) -> Kafka {
        Kafka {
            brokers: brokers.to_string(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            username: None,
            password: None,
            tls: Tls::default(),
        }
    }
}

/// The Schema Registry (`targets.schemaRegistry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub url: String,
    pub username: Option<SecretSource>,
    pub password: Option<SecretSource>,
    #[serde(default)]
    pub tls: Tls,
}

impl Registry {
    /// A registry without TLS settings or credentials.
    pub fn plain(url: &str) -> Registry {
        Registry {
            url: url.to_string(),
            username: None,
            password: None,
            tls: Tls::default(),
        }
    }
}

/// Where the servers are and how to connect: what the ingestion workers need too, so it is
/// recorded with each live pipeline version (no secret values in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connections {
    pub clickhouse: ClickHouse,
    pub kafka: Kafka,
    pub schema_registry: Option<Registry>,
}

/// What a live version recorded before the connections were typed (URLs and the user
/// only; the workers read the ClickHouse password from `PAVER_CLICKHOUSE_PASSWORD`).
#[derive(Deserialize)]
struct Recorded {
    clickhouse_url: String,
    clickhouse_user: Option<String>,
    kafka_brokers: String,
    #[serde(default)]
    schema_registry: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EitherRecord {
    Now(Box<Connections>),
    Before(Recorded),
}

impl Connections {
    /// The connections recorded with a live version, in today's form or the one state
    /// stores written before it hold.
    pub fn from_recorded(json: &str) -> Result<Connections, serde_json::Error> {
        Ok(match serde_json::from_str(json)? {
            EitherRecord::Now(c) => *c,
            EitherRecord::Before(r) => Connections {
                clickhouse: ClickHouse {
                    user: r.clickhouse_user,
                    ..ClickHouse::plain(&r.clickhouse_url)
                },
                kafka: Kafka::plain(&r.kafka_brokers),
                schema_registry: r.schema_registry.as_deref().map(Registry::plain),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_either_form_is_read() {
        let now = Connections {
            clickhouse: ClickHouse {
                password: Some(SecretSource::Env("CH_PASSWORD".into())),
                ..ClickHouse::plain("https://ch:8443")
            },
            kafka: Kafka::plain("k:9092"),
            schema_registry: None,
        };
        let text = serde_json::to_string(&now).unwrap();
        assert_eq!(Connections::from_recorded(&text).unwrap(), now);
        let before = r#"{"clickhouse_url":"http://c:8123","clickhouse_user":"u","kafka_brokers":"k:9092","schema_registry":"http://sr:8081"}"#;
        let read = Connections::from_recorded(before).unwrap();
        assert_eq!(read.clickhouse.url, "http://c:8123");
        assert_eq!(read.clickhouse.user.as_deref(), Some("u"));
        assert_eq!(read.kafka.brokers, "k:9092");
        assert_eq!(read.schema_registry.unwrap().url, "http://sr:8081");
        assert!(Connections::from_recorded("{}").is_err());
    }
}
