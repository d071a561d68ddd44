//! The Kafka provider: observes topics (partitions, replication, the topic's own config
//! overrides) in two requests, and runs the Kafka actions of a plan with librdkafka's admin
//! API. Config changes use IncrementalAlterConfigs (the legacy AlterConfigs replaces a
//! topic's whole config, and some Kafka-protocol brokers do not have it).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::plan::{Action, Topic};

/// Why a Kafka client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOpenError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("Kafka at {brokers}: {reason}")]
    Client { brokers: String, reason: String },
}

/// An admin connection to a Kafka cluster.
pub struct Kafka {
    admin: AdminClient<Context>,
    /// A consumer that joins no group, for metadata: polled, it says why brokers failed.
    probe: rdkafka::consumer::BaseConsumer<Context>,
    /// The connection settings (security included) every other client here starts from.
    base: ClientConfig,
    pub brokers: String,
    /// Admin and metadata requests sent, for the "requests per reconcile" count.
    pub requests: std::sync::atomic::AtomicU64,
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// The librdkafka configuration of every Kafka client paver makes (admin, consumers, the
/// dead-letter producer): the brokers, `security.protocol`, SASL and TLS from the config.
/// The secrets are read here, and only handed to librdkafka.
pub fn client_config(
    target: &crate::config::Kafka,
    env: crate::config::Env,
) -> Result<ClientConfig, crate::config::ConfigError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &target.brokers)
        .set("security.protocol", target.security_protocol.as_str())
        // librdkafka logs through the `log` facade (see `crate::logging`), errors and
        // warnings only unless asked.
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    if target.security_protocol.sasl() {
        if let Some(mechanism) = target.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some((user, password)) = target.credentials(env)? {
            config
                .set("sasl.username", user.expose())
                .set("sasl.password", password.expose());
        }
    }
    if target.security_protocol.tls() {
        if let Some(ca) = &target.tls.ca_file {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &target.tls.cert_file {
            config.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &target.tls.key_file {
            config.set("ssl.key.location", key.display().to_string());
        }
        config.set("ssl.endpoint.identification.algorithm", "https");
    }
    Ok(config)
}

/// The context of paver's diagnostic Kafka clients: librdkafka's errors and warnings are
/// remembered (they say why the brokers cannot be reached, for `paver doctor`) and logged
/// through the `log` facade (see `crate::logging`).
#[derive(Default)]
pub struct Context {
    errors: std::sync::Mutex<Vec<String>>,
}

impl Context {
    fn remember(&self, reason: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 64 {
            errors.push(reason.to_string());
        }
    }

    /// What librdkafka reported so far, oldest first.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl rdkafka::client::ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if (level as i32) <= (L::Warning as i32) {
            self.remember(message);
        }
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                log::error!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            L::Warning => log::warn!(target: "librdkafka", "librdkafka: {fac} {message}"),
            L::Notice | L::Info => log::info!(target: "librdkafka", "librdkafka: {fac} {message}"),
            L::Debug => log::debug!(target: "librdkafka", "librdkafka: {fac} {message}"),
        }
    }

    fn error(&self, _error: rdkafka::error::KafkaError, reason: &str) {
        log::warn!(target: "librdkafka", "librdkafka: {reason}");
        self.remember(reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Context {}

impl Kafka {
    /// Connect to unsecured `brokers` (`host:port,host:port`).
    pub fn connect(brokers: &str) -> Result<Kafka, String> {
        let target = crate::config::Kafka {
            brokers: brokers.to_string(),
            security_protocol: Default::default(),
            sasl_mechanism: None,
            username: None,
            password: None,
            tls: Default::default(),
        };
        Kafka::open(&target, &|_| None).map_err(|e| e.to_string())
    }

    /// An admin client for `target`, security as configured.
    pub fn open(
        target: &crate::config::Kafka,
        env: crate::config::Env,
    ) -> Result<Kafka, KafkaOpenError> {
        let base = client_config(target, env)?;
        let admin = base
            .clone()
            .set("socket.timeout.ms", "10000")
            .create_with_context(Context::default())
            .map_err(|e| KafkaOpenError::Client {
                brokers: target.brokers.clone(),
                reason: e.to_string(),
            })?;
        let probe = base
            .clone()
            .set("group.id", "paver-metadata")
            .set("socket.timeout.ms", "10000")
            .create_with_context(Context::default())
            .map_err(|e| KafkaOpenError::Client {
                brokers: target.brokers.clone(),
                reason: e.to_string(),
            })?;
        Ok(Kafka {
            admin,
            probe,
            base,
            brokers: target.brokers.clone(),
            requests: Default::default(),
        })
    }

    /// The connection settings every client of this cluster starts from.
    pub fn base_config(&self) -> ClientConfig {
        self.base.clone()
    }

    /// What librdkafka last reported of the brokers (a refused connection, a failed
    /// handshake), to say why a request failed; empty when it said nothing.
    fn why(&self) -> String {
        use rdkafka::consumer::Consumer;
        // Polling serves librdkafka's queued error events to the context.
        let _ = self.probe.poll(Duration::ZERO);
        self.probe
            .context()
            .errors()
            .into_iter()
            .find(|reason| !reason.contains("brokers are down"))
            .map(|reason| format!(" ({})", reason.split(" (after ").next().unwrap_or(&reason)))
            .unwrap_or_default()
    }

    fn count(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(TIMEOUT))
            .operation_timeout(Some(TIMEOUT))
    }

    /// The topics among `wanted` that exist, with their partitions, replication factor and
    /// config: the topic's own overrides, and the effective value of every key the revision
    /// sets (so that a default equal to the wanted value needs no change). One metadata
    /// request and one DescribeConfigs for all of them.
    pub async fn observe(
        &self,
        wanted: &BTreeMap<String, Topic>,
    ) -> Result<BTreeMap<String, Topic>, String> {
        use rdkafka::consumer::Consumer;
        self.count();
        let metadata = tokio::task::block_in_place(|| self.probe.fetch_metadata(None, TIMEOUT))
            .map_err(|e| format!("Kafka at {}: {e}{}", self.brokers, self.why()))?;
        let mut found = BTreeMap::new();
        for t in metadata.topics() {
            if !wanted.contains_key(t.name()) || t.error().is_some() {
                continue;
            }
            let partitions = t.partitions();
            found.insert(
                t.name().to_string(),
                Topic {
                    partitions: partitions.len() as i32,
                    replication_factor: partitions.first().map_or(0, |p| p.replicas().len() as i32),
                    config: BTreeMap::new(),
                },
            );
        }
        if found.is_empty() {
            return Ok(found);
        }
        self.count();
        let specifiers: Vec<ResourceSpecifier> =
            found.keys().map(|n| ResourceSpecifier::Topic(n)).collect();
        let described = self
            .admin
            .describe_configs(specifiers.iter(), &Self::options())
            .await
            .map_err(|e| format!("describing topic configs: {e}"))?;
        let names: Vec<String> = found.keys().cloned().collect();
        for (name, result) in names.iter().zip(described) {
            let resource =
                result.map_err(|e| format!("describing the config of topic `{name}`: {e}"))?;
            let keys = wanted.get(name).map(|t| &t.config);
            let config: BTreeMap<String, String> = resource
                .entries
                .iter()
                .filter(|e| {
                    e.source == ConfigSource::DynamicTopic
                        || keys.is_some_and(|k| k.contains_key(&e.name))
                })
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
            if let Some(topic) = found.get_mut(name) {
                topic.config = config;
            }
        }
        Ok(found)
    }

    /// Run a Kafka action; `Ok(false)` when the action is not Kafka's.
    pub async fn execute(&self, action: &Action) -> Result<bool, String> {
        if matches!(
            action,
            Action::CreateTopic { .. }
                | Action::DeleteTopic { .. }
                | Action::CreatePartitions { .. }
                | Action::AlterTopicConfig { .. }
        ) {
            self.count();
        }
        match action {
            Action::CreateTopic { name, topic } => {
                let mut new = NewTopic::new(
                    name,
                    topic.partitions,
                    TopicReplication::Fixed(topic.replication_factor),
                );
                for (k, v) in &topic.config {
                    new = new.set(k, v);
                }
                let results = self
                    .admin
                    .create_topics([&new], &Self::options())
                    .await
                    .map_err(|e| e.to_string())?;
                for r in results {
                    r.map_err(|(t, e)| format!("creating topic `{t}`: {e}"))?;
                }
            }
            Action::DeleteTopic { name } => {
                let results = self
                    .admin
                    .delete_topics(&[name.as_str()], &Self::options())
                    .await
                    .map_err(|e| e.to_string())?;
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                        Err((t, e)) => return Err(format!("deleting topic `{t}`: {e}")),
                    }
                }
            }
            Action::CreatePartitions { name, count } => {
                let new = NewPartitions::new(name, *count as usize);
                let results = self
                    .admin
                    .create_partitions([&new], &Self::options())
                    .await
                    .map_err(|e| format!("CreatePartitions for topic `{name}`: {e}"))?;
                for r in results {
                    r.map_err(|(t, e)| format!("CreatePartitions for topic `{t}`: {e}"))?;
                }
            }
            Action::AlterTopicConfig { name, set, delete } => {
                let native = self.admin.inner().native_ptr() as usize;
                let (name, set, delete) = (name.clone(), set.clone(), delete.clone());
                tokio::task::block_in_place(move || {
                    incremental_alter(native, &name, &set, &delete)
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Kafka {
    /// A consumer of `group` that never joins it (no subscription): it only reads and
    /// writes the group's committed offsets.
    fn group_client(&self, group: &str) -> Result<rdkafka::consumer::BaseConsumer, String> {
        self.base_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("Kafka at {}: {e}", self.brokers))
    }

    /// The offsets `group` has committed on `topic`, by partition (partitions without a
    /// committed offset are left out).
    pub fn group_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<BTreeMap<i32, i64>, String> {
        use rdkafka::consumer::Consumer;
        use rdkafka::{Offset, TopicPartitionList};
        self.count();
        let consumer = self.group_client(group)?;
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let committed = tokio::task::block_in_place(|| consumer.committed_offsets(list, TIMEOUT))
            .map_err(|e| format!("reading the offsets of group `{group}`: {e}"))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// Commit offsets for `group` on `topic` before the group starts consuming (a new
    /// pipeline version starts where the previous one stopped).
    pub fn set_group_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), String> {
        use rdkafka::consumer::{CommitMode, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        self.count();
        let consumer = self.group_client(group)?;
        let mut list = TopicPartitionList::new();
        for (p, o) in offsets {
            list.add_partition_offset(topic, *p, Offset::Offset(*o))
                .map_err(|e| format!("offset {o} of partition {p}: {e}"))?;
        }
        tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync))
            .map_err(|e| format!("committing the offsets of group `{group}`: {e}"))
    }
}

/// IncrementalAlterConfigs for one topic, through librdkafka's C API (the `rdkafka` crate
/// only wraps the legacy AlterConfigs).
fn incremental_alter(
    native: usize,
    topic: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<(), String> {
    use rdkafka::bindings as rd;
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("`{s}` contains a NUL byte"));
    let rk = native as *mut rd::rd_kafka_t;
    let name = cstr(topic)?;
    let mut keys = Vec::new();
    for (k, v) in set {
        keys.push((cstr(k)?, Some(cstr(v)?)));
    }
    for k in delete {
        keys.push((cstr(k)?, None));
    }
    // SAFETY: every pointer passed to librdkafka below is either one it returned (checked
    // for null) or a CString that outlives the call; each object is destroyed once.
    unsafe {
        let resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        );
        if resource.is_null() {
            return Err("librdkafka could not make a config resource".to_string());
        }
        for (key, value) in &keys {
            let (op, value) = match value {
                Some(v) => (
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    v.as_ptr(),
                ),
                None => (
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                    std::ptr::null(),
                ),
            };
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource,
                key.as_ptr(),
                op,
                value,
            );
            if !error.is_null() {
                let message = CStr::from_ptr(rd::rd_kafka_error_string(error))
                    .to_string_lossy()
                    .into_owned();
                rd::rd_kafka_error_destroy(error);
                rd::rd_kafka_ConfigResource_destroy(resource);
                return Err(message);
            }
        }
        let queue = rd::rd_kafka_queue_new(rk);
        let mut resources = [resource];
        rd::rd_kafka_IncrementalAlterConfigs(
            rk,
            resources.as_mut_ptr(),
            1,
            std::ptr::null(),
            queue,
        );
        let event = rd::rd_kafka_queue_poll(queue, TIMEOUT.as_millis() as i32);
        let outcome = if event.is_null() {
            Err(format!(
                "altering the config of topic `{topic}`: no answer within {TIMEOUT:?}"
            ))
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                .to_string_lossy()
                .into_owned())
        } else {
            let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
            let mut count = 0usize;
            let list = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
            let mut outcome = Ok(());
            for i in 0..count {
                let r = *list.add(i);
                if rd::rd_kafka_ConfigResource_error(r)
                    != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    let message = rd::rd_kafka_ConfigResource_error_string(r);
                    let text = if message.is_null() {
                        "unknown error".to_string()
                    } else {
                        CStr::from_ptr(message).to_string_lossy().into_owned()
                    };
                    outcome = Err(format!("altering the config of topic `{topic}`: {text}"));
                }
            }
            outcome
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_ConfigResource_destroy(resource);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, SaslMechanism, SecretSource, SecurityProtocol};

    fn target(protocol: SecurityProtocol) -> config::Kafka {
        config::Kafka {
            brokers: "b1:9096,b2:9096".into(),
            security_protocol: protocol,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            username: Some(SecretSource::Env("KU".into())),
            password: Some(SecretSource::Env("KP".into())),
            tls: config::Tls {
                ca_file: Some("/ca.pem".into()),
                cert_file: Some("/c.pem".into()),
                key_file: Some("/k.pem".into()),
            },
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "KU" => Some("user-1".into()),
            "KP" => Some("pw-1".into()),
            _ => None,
        }
    }

    #[test]
    fn sasl_ssl_sets_the_mechanism_the_credentials_and_the_cas() {
        let c = client_config(&target(SecurityProtocol::SaslSsl), &env).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("b1:9096,b2:9096"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("user-1"));
        assert_eq!(c.get("sasl.password"), Some("pw-1"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(c.get("ssl.certificate.location"), Some("/c.pem"));
        assert_eq!(c.get("ssl.key.location"), Some("/k.pem"));
        assert_eq!(
            c.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
    }

    #[test]
    fn each_protocol_sets_only_what_it_uses() {
        let plain = client_config(&target(SecurityProtocol::Plaintext), &env).unwrap();
        assert_eq!(plain.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(plain.get("sasl.password"), None);
        assert_eq!(plain.get("ssl.ca.location"), None);
        let ssl = client_config(&target(SecurityProtocol::Ssl), &env).unwrap();
        assert_eq!(ssl.get("sasl.username"), None);
        assert_eq!(ssl.get("ssl.key.location"), Some("/k.pem"));
        let sasl = client_config(&target(SecurityProtocol::SaslPlaintext), &env).unwrap();
        assert_eq!(sasl.get("sasl.username"), Some("user-1"));
        assert_eq!(sasl.get("ssl.ca.location"), None);
        // Missing credentials: an error naming the variable, not an unauthenticated client.
        let err = client_config(&target(SecurityProtocol::SaslSsl), &|_| None)
            .err()
            .unwrap();
        assert!(
            matches!(err, config::ConfigError::EnvNotSet { .. }),
            "{err}"
        );
    }

    /// librdkafka (with OpenSSL) accepts every mechanism paver offers: a client is made.
    #[test]
    fn librdkafka_has_sasl_plain_and_scram_and_tls() {
        for mechanism in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ] {
            let mut t = target(SecurityProtocol::SaslSsl);
            t.sasl_mechanism = Some(mechanism);
            t.tls = Default::default();
            let made: Result<AdminClient<Context>, _> = client_config(&t, &env)
                .unwrap()
                .create_with_context(Context::default());
            assert!(made.is_ok(), "{mechanism:?}: {:?}", made.err());
        }
    }
}
