//! The one typed configuration of a revision: paver.yaml's settings, the environment and
//! the command line's flags, resolved once and used by every command, the reconciler, the
//! ingestion workers and the Kubernetes target.
//!
//! Precedence, field by field: a flag, else an environment variable (`PAVER_…`), else the
//! revision's paver.yaml, else the default. Secrets never appear here: only where they are
//! read from ([`SecretSource`], an environment variable or a file), read when a client is
//! made ([`SecretSource::read`]); [`Config::resolve`] checks that every one can be read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;

pub use crate::model::connections::{
    ClickHouse, Connections, Kafka, Registry, SaslMechanism, SecretSource, SecurityProtocol, Tls,
};

/// Reads an environment variable (`None` when unset or empty). Tests pass a map.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process's environment, empty values counting as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The ClickHouse URL when nothing names one.
pub const DEFAULT_CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
/// The Kafka brokers when nothing names them.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";
/// How often `paver run` polls when nothing says.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} names the environment variable {var}, which is not set\n  help: export {var}, or change {field} in paver.yaml")]
    EnvNotSet { field: String, var: String },
    #[error("{field}: cannot read {path}: {reason}")]
    FileUnreadable {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{field}: `{value}` is not one of {allowed}")]
    Invalid {
        field: String,
        value: String,
        allowed: String,
    },
    #[error("{0}")]
    Incomplete(String),
    #[error(transparent)]
    Kubernetes(#[from] crate::kube::TargetError),
    #[error(transparent)]
    Notifications(#[from] crate::notify::NotifyConfigError),
}

/// A secret's value. Its `Debug` is redacted, it has no `Display` and no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that hands it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl SecretSource {
    /// Read the secret; `field` names the setting in errors.
    pub fn read(&self, field: &str, env: Env) -> Result<Secret, ConfigError> {
        match self {
            SecretSource::Env(var) => env(var).map(Secret).ok_or(ConfigError::EnvNotSet {
                field: field.to_string(),
                var: var.clone(),
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|text| Secret(text.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| ConfigError::FileUnreadable {
                    field: field.to_string(),
                    path: path.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

/// What to do on drift (`reconcile.drift`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Drift {
    #[default]
    Repair,
    Report,
}

/// The reconciler's options (`reconcile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    pub poll_interval: Duration,
    pub drift: Drift,
    pub retain_versions: u32,
}

/// What the command line sets (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `paver run --poll-seconds`.
    pub poll_interval: Option<Duration>,
}

/// The resolved configuration of one revision.
#[derive(Debug, Clone)]
pub struct Config {
    pub connections: Connections,
    /// Per-cluster ClickHouse servers (`targets.clusters.<name>.clickhouse`).
    pub clusters: BTreeMap<String, ClickHouse>,
    /// The Kubernetes target, when one is configured.
    pub kubernetes: Option<crate::kube::Target>,
    pub reconcile: Reconcile,
    /// `defaults` and `lint`, as the linter read them.
    pub lint: paver_lint::workspace::Settings,
    /// `notifications`: webhooks, GitHub statuses, Slack channels, alert routes (its
    /// secrets are read when a notification is sent).
    pub notifications: crate::notify::NotificationsConfig,
}

impl Config {
    /// The ClickHouse target of the ClickHouseClusters (`used`) that a revision's pipelines
    /// write into: `targets.clusters.<name>.clickhouse` where paver.yaml has one, else the
    /// default. paver applies a revision to one ClickHouse target: clusters that name
    /// different ones are an error.
    pub fn clickhouse_for(
        &self,
        used: &std::collections::BTreeSet<String>,
    ) -> Result<ClickHouse, ConfigError> {
        let mut chosen: Option<(&String, &ClickHouse)> = None;
        for name in used {
            let target = self
                .clusters
                .get(name)
                .unwrap_or(&self.connections.clickhouse);
            match chosen {
                Some((first, t)) if t != target => {
                    return Err(ConfigError::Invalid {
                        field: format!("targets.clusters.{name}.clickhouse"),
                        value: format!("{} (cluster {})", target.url, target.cluster.as_deref().unwrap_or("none")),
                        allowed: format!("the ClickHouse target of `{first}` ({}, cluster {}), which the same revision writes into: paver applies a revision to one ClickHouse target", t.url, t.cluster.as_deref().unwrap_or("none")),
                    })
                }
                Some(_) => {}
                None => chosen = Some((name, target)),
            }
        }
        Ok(chosen
            .map_or(&self.connections.clickhouse, |(_, t)| t)
            .clone())
    }
}

/// paver.yaml's settings node of a linted workspace: the one place that finds it.
pub fn settings_node(ws: &Workspace) -> Option<&Node> {
    ws.files
        .iter()
        .find(|f| f.path == "paver.yaml")
        .and_then(|f| f.root.as_ref())
}

fn text(node: Option<&Node>, key: &str) -> Option<String> {
    node.and_then(|n| n.get(key))
        .and_then(Node::as_str)
        .map(str::to_string)
}

/// One secret of a target: `<key>Env` or `<key>File` of paver.yaml.
fn secret(node: Option<&Node>, key: &str) -> Option<SecretSource> {
    text(node, &format!("{key}Env"))
        .map(SecretSource::Env)
        .or_else(|| text(node, &format!("{key}File")).map(|f| SecretSource::File(f.into())))
}

fn tls(node: Option<&Node>) -> Tls {
    Tls {
        ca_file: text(node, "caFile").map(PathBuf::from),
        cert_file: text(node, "certFile").map(PathBuf::from),
        key_file: text(node, "keyFile").map(PathBuf::from),
    }
}

fn one_of<T: Copy>(
    field: &str,
    value: Option<String>,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    all.iter()
        .copied()
        .find(|v| name(*v) == value)
        .map(Some)
        .ok_or_else(|| ConfigError::Invalid {
            field: field.to_string(),
            value,
            allowed: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

/// `<number><unit>`, unit ms, s, m or h.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    match &text[digits.len()..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

impl ClickHouse {
    fn from_node(node: Option<&Node>, base: Option<&ClickHouse>) -> ClickHouse {
        let base_url = base.map_or(DEFAULT_CLICKHOUSE_URL.to_string(), |b| b.url.clone());
        ClickHouse {
            url: text(node, "url").unwrap_or(base_url),
            user: text(node, "user").or_else(|| base.and_then(|b| b.user.clone())),
            password: secret(node, "password").or_else(|| base.and_then(|b| b.password.clone())),
            tls: if node.is_some_and(|n| {
                ["caFile", "certFile", "keyFile"]
                    .iter()
                    .any(|k| n.get(k).is_some())
            }) {
                tls(node)
            } else {
                base.map(|b| b.tls.clone()).unwrap_or_default()
            },
            cluster: text(node, "cluster").or_else(|| base.and_then(|b| b.cluster.clone())),
            shards: match node.and_then(|n| n.get("shards")) {
                Some(list) => list
                    .as_seq()
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                None => base.map(|b| b.shards.clone()).unwrap_or_default(),
            },
        }
    }

    /// The password, if one is configured.
    pub fn password(&self, env: Env) -> Result<Option<Secret>, ConfigError> {
        self.password
            .as_ref()
            .map(|s| s.read("targets.clickhouse.password", env))
            .transpose()
    }

    fn check(&self, field: &str, env: Env) -> Result<(), ConfigError> {
        if let Some(p) = &self.password {
            p.read(&format!("{field}.password"), env)?;
        }
        self.tls.check(field)
    }
}

impl Tls {
    fn check(&self, field: &str) -> Result<(), ConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ConfigError::Incomplete(format!(
                "{field}: certFile and keyFile go together (a client certificate and its key)"
            )));
        }
        Ok(())
    }
}

impl Kafka {
    /// The SASL user name and password, when the protocol is SASL.
    pub fn credentials(&self, env: Env) -> Result<Option<(Secret, Secret)>, ConfigError> {
        if !self.security_protocol.sasl() {
            return Ok(None);
        }
        let missing = |what: &str| {
            ConfigError::Incomplete(format!(
                "targets.kafka.securityProtocol {} needs {what}",
                self.security_protocol.as_str()
            ))
        };
        let user = self
            .username
            .as_ref()
            .ok_or_else(|| missing("usernameEnv or usernameFile"))?
            .read("targets.kafka.username", env)?;
        let password = self
            .password
            .as_ref()
            .ok_or_else(|| missing("passwordEnv or passwordFile"))?
            .read("targets.kafka.password", env)?;
        Ok(Some((user, password)))
    }

    fn check(&self, env: Env) -> Result<(), ConfigError> {
        if self.security_protocol.sasl() && self.sasl_mechanism.is_none() {
            return Err(ConfigError::Incomplete(format!(
                "targets.kafka.securityProtocol {} needs a saslMechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                self.security_protocol.as_str()
            )));
        }
        self.credentials(env)?;
        self.tls.check("targets.kafka")
    }
}

impl Registry {
    /// The basic-auth user name and password, when configured.
    pub fn credentials(&self, env: Env) -> Result<Option<(Secret, Secret)>, ConfigError> {
        match (&self.username, &self.password) {
            (None, None) => Ok(None),
            (Some(u), Some(p)) => Ok(Some((
                u.read("targets.schemaRegistry.username", env)?,
                p.read("targets.schemaRegistry.password", env)?,
            ))),
            _ => Err(ConfigError::Incomplete(
                "targets.schemaRegistry: a user name and a password go together".to_string(),
            )),
        }
    }
}

impl Connections {
    /// The connections paver.yaml's `targets` names (defaults where it says nothing).
    fn from_settings(settings: Option<&Node>) -> Result<Connections, ConfigError> {
        let targets = settings.and_then(|s| s.get("targets"));
        let kafka = targets.and_then(|t| t.get("kafka"));
        let registry = targets.and_then(|t| t.get("schemaRegistry"));
        Ok(Connections {
            clickhouse: ClickHouse::from_node(targets.and_then(|t| t.get("clickhouse")), None),
            kafka: Kafka {
                brokers: text(kafka, "brokers").unwrap_or_else(|| DEFAULT_KAFKA_BROKERS.into()),
                security_protocol: one_of(
                    "targets.kafka.securityProtocol",
                    text(kafka, "securityProtocol"),
                    &SecurityProtocol::ALL,
                    SecurityProtocol::as_str,
                )?
                .unwrap_or_default(),
                sasl_mechanism: one_of(
                    "targets.kafka.saslMechanism",
                    text(kafka, "saslMechanism"),
                    &SaslMechanism::ALL,
                    SaslMechanism::as_str,
                )?,
                username: secret(kafka, "username"),
                password: secret(kafka, "password"),
                tls: tls(kafka),
            },
            schema_registry: text(registry, "url").map(|url| Registry {
                url,
                username: secret(registry, "username"),
                password: secret(registry, "password"),
                tls: tls(registry),
            }),
        })
    }

    /// The environment over these connections: `PAVER_CLICKHOUSE_URL`,
    /// `PAVER_CLICKHOUSE_USER`, `PAVER_CLICKHOUSE_PASSWORD` (the variable, when set, is the
    /// password's source), `PAVER_KAFKA_BROKERS`, `PAVER_SCHEMA_REGISTRY_URL`. The workers
    /// apply it over the recorded connections too.
    pub fn with_env(mut self, env: Env) -> Connections {
        if let Some(url) = env("PAVER_CLICKHOUSE_URL") {
            self.clickhouse.url = url;
        }
        if let Some(user) = env("PAVER_CLICKHOUSE_USER") {
            self.clickhouse.user = Some(user);
        }
        if env("PAVER_CLICKHOUSE_PASSWORD").is_some() {
            self.clickhouse.password = Some(SecretSource::Env("PAVER_CLICKHOUSE_PASSWORD".into()));
        }
        if let Some(brokers) = env("PAVER_KAFKA_BROKERS") {
            self.kafka.brokers = brokers;
        }
        if let Some(url) = env("PAVER_SCHEMA_REGISTRY_URL") {
            match &mut self.schema_registry {
                Some(r) => r.url = url,
                None => {
                    self.schema_registry = Some(Registry {
                        url,
                        username: None,
                        password: None,
                        tls: Tls::default(),
                    })
                }
            }
        }
        self
    }
}

impl Config {
    /// Resolve a linted revision's configuration: flags over the environment over
    /// paver.yaml over the defaults. Every secret named must be readable.
    pub fn resolve(ws: &Workspace, env: Env, flags: &Flags) -> Result<Config, ConfigError> {
        let config = Config::unchecked(ws, env, flags)?;
        config.check(env)?;
        Ok(config)
    }

    /// Resolve without reading the secrets (for `paver doctor`, which reports each one).
    pub fn unchecked(ws: &Workspace, env: Env, flags: &Flags) -> Result<Config, ConfigError> {
        let settings = settings_node(ws);
        let connections = Connections::from_settings(settings)?.with_env(env);
        let targets = settings.and_then(|s| s.get("targets"));
        let clusters = targets
            .and_then(|t| t.get("clusters"))
            .map(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| {
                let own = entry.value.get("clickhouse")?;
                Some((
                    entry.key.clone(),
                    ClickHouse::from_node(Some(own), Some(&connections.clickhouse)),
                ))
            })
            .collect();
        let kubernetes = crate::kube::Target::resolve(
            settings,
            env("PAVER_KUBERNETES_CONTEXT"),
            env("PAVER_KUBERNETES_NAMESPACE"),
            false,
        )?;
        let reconcile_node = settings.and_then(|s| s.get("reconcile"));
        let poll = match text(reconcile_node, "pollInterval") {
            Some(t) => Some(parse_duration(&t).ok_or(ConfigError::Invalid {
                field: "reconcile.pollInterval".into(),
                value: t,
                allowed: "<number><unit>, unit ms, s, m or h".into(),
            })?),
            None => None,
        };
        let reconcile = Reconcile {
            poll_interval: flags
                .poll_interval
                .or(poll)
                .unwrap_or(DEFAULT_POLL_INTERVAL)
                .max(Duration::from_secs(1)),
            drift: match text(reconcile_node, "drift").as_deref() {
                Some("report") => Drift::Report,
                _ => Drift::Repair,
            },
            retain_versions: reconcile_node
                .and_then(|r| r.get("retainVersions"))
                .and_then(Node::as_i64)
                .map_or(3, |n| n.clamp(1, 100) as u32),
        };
        Ok(Config {
            connections,
            clusters,
            kubernetes,
            reconcile,
            lint: ws.settings.clone(),
            notifications: crate::notify::config_of(settings)?,
        })
    }

    /// Every secret readable, every setting complete.
    pub fn check(&self, env: Env) -> Result<(), ConfigError> {
        self.connections
            .clickhouse
            .check("targets.clickhouse", env)?;
        for (name, ch) in &self.clusters {
            ch.check(&format!("targets.clusters.{name}.clickhouse"), env)?;
        }
        self.connections.kafka.check(env)?;
        if let Some(r) = &self.connections.schema_registry {
            r.credentials(env)?;
            r.tls.check("targets.schemaRegistry")?;
        }
        Ok(())
    }

    /// The configuration as text, secrets shown by where they come from only.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let opt = |o: &Option<PathBuf>| o.as_ref().map(|p| p.display().to_string());
        let tls_line = |t: &Tls| {
            let mut parts = Vec::new();
            if let Some(ca) = opt(&t.ca_file) {
                parts.push(format!("caFile {ca}"));
            }
            if let Some(c) = opt(&t.cert_file) {
                parts.push(format!("certFile {c}"));
            }
            if let Some(k) = opt(&t.key_file) {
                parts.push(format!("keyFile {k}"));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!(", {}", parts.join(", "))
            }
        };
        let secret = |s: &Option<SecretSource>| {
            s.as_ref()
                .map_or("none".to_string(), |s| format!("<redacted> from {s}"))
        };
        let ch = |out: &mut String, name: &str, c: &ClickHouse| {
            let _ = writeln!(
                out,
                "  {name}: {} user {} password {}{}",
                c.url,
                c.user.as_deref().unwrap_or("default"),
                secret(&c.password),
                tls_line(&c.tls)
            );
        };
        let _ = writeln!(out, "configuration:");
        ch(&mut out, "clickhouse", &self.connections.clickhouse);
        for (name, c) in &self.clusters {
            ch(&mut out, &format!("clusters.{name}.clickhouse"), c);
        }
        let k = &self.connections.kafka;
        let _ = writeln!(
            out,
            "  kafka: {} {}{}{}{}",
            k.brokers,
            k.security_protocol.as_str(),
            k.sasl_mechanism
                .map_or(String::new(), |m| format!(" {}", m.as_str())),
            if k.security_protocol.sasl() {
                format!(
                    " user {} password {}",
                    secret(&k.username),
                    secret(&k.password)
                )
            } else {
                String::new()
            },
            tls_line(&k.tls)
        );
        match &self.connections.schema_registry {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "  schemaRegistry: {}{}{}",
                    r.url,
                    if r.username.is_some() {
                        format!(
                            " user {} password {}",
                            secret(&r.username),
                            secret(&r.password)
                        )
                    } else {
                        String::new()
                    },
                    tls_line(&r.tls)
                );
            }
            None => {
                let _ = writeln!(out, "  schemaRegistry: none");
            }
        }
        match &self.kubernetes {
            Some(k) => {
                let _ = writeln!(
                    out,
                    "  kubernetes: context {} namespace {}",
                    k.context.as_deref().unwrap_or("(current)"),
                    k.defaults.namespace
                );
            }
            None => {
                let _ = writeln!(out, "  kubernetes: none");
            }
        }
        let _ = writeln!(
            out,
            "  reconcile: pollInterval {:?}, drift {}, retainVersions {}",
            self.reconcile.poll_interval,
            match self.reconcile.drift {
                Drift::Repair => "repair",
                Drift::Report => "report",
            },
            self.reconcile.retain_versions
        );
        out
    }
}

#[cfg(test)]
mod tests;
