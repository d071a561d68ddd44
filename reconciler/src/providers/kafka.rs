//! The Kafka provider: observes topics (partitions, replication, the topic's own config
//! overrides) in two requests, and runs the Kafka actions of a plan with librdkafka's admin
//! API. Config changes use IncrementalAlterConfigs (the legacy AlterConfigs replaces a
//! topic's whole config, and some Kafka-protocol brokers do not have it). Every client
//! starts from [`client_config`] (security included).

mod client;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

pub use client::{client_config, Context, KafkaOpenError};

use crate::error::ProviderError;
use crate::plan::{KafkaAction, Topic};

/// A librdkafka error, sorted by its code (no code: transient, the client could not talk).
fn kafka_error(e: rdkafka::error::KafkaError, what: impl std::fmt::Display) -> ProviderError {
    let text = format!("{what}: {e}");
    match e.rdkafka_error_code() {
        Some(code) => ProviderError::from_kafka(code, text),
        None => ProviderError::transient(text),
    }
}

/// An admin connection to a Kafka cluster. librdkafka's blocking calls run on tokio's
/// blocking threads (`spawn_blocking`), so that the provider works on any runtime, a
/// current-thread one included.
pub struct Kafka {
    admin: Arc<AdminClient<Context>>,
    /// A consumer that joins no group, for metadata: polled, it says why brokers failed.
    probe: Arc<rdkafka::consumer::BaseConsumer<Context>>,
    /// The connection settings (security included) every other client here starts from.
    base: ClientConfig,
    pub brokers: String,
    /// Admin and metadata requests sent, for the "requests per reconcile" count.
    pub requests: std::sync::atomic::AtomicU64,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Kafka {
    /// Connect to unsecured `brokers` (`host:port,host:port`).
    pub fn connect(brokers: &str) -> Result<Kafka, KafkaOpenError> {
        Kafka::open(&crate::model::connections::Kafka::plain(brokers), &|_| None)
    }

    /// An admin client for `target`, security as configured.
    pub fn open(
        target: &crate::model::connections::Kafka,
        env: crate::config::Env,
    ) -> Result<Kafka, KafkaOpenError> {
        let base = client_config(target, env)?;
        let failed = |e: rdkafka::error::KafkaError| KafkaOpenError::Client {
            brokers: target.brokers.clone(),
            reason: e.to_string(),
        };
        let admin = base
            .clone()
            .set("socket.timeout.ms", "10000")
            .create_with_context(Context::default())
            .map_err(failed)?;
        let probe = base
            .clone()
            .set("group.id", "paver-metadata")
            .set("socket.timeout.ms", "10000")
            .create_with_context(Context::default())
            .map_err(failed)?;
        Ok(Kafka {
            admin: Arc::new(admin),
            probe: Arc::new(probe),
            base,
            brokers: target.brokers.clone(),
            requests: Default::default(),
        })
    }

    /// The connection settings every client of this cluster starts from.
    pub fn base_config(&self) -> ClientConfig {
        self.base.clone()
    }

    /// Whether librdkafka reported no error or warning of these clients so far.
    pub fn quiet(&self) -> bool {
        use rdkafka::consumer::Consumer;
        let _ = self.probe.poll(Duration::ZERO);
        self.probe.context().errors().is_empty() && self.admin.inner().context().errors().is_empty()
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

    /// A failed first request in words: a refused connection names the address and what to
    /// check; anything else is librdkafka's error and its last reason.
    fn unreachable(&self, e: &rdkafka::error::KafkaError) -> String {
        let why = self.why();
        if !why.to_ascii_lowercase().contains("connection refused") {
            return format!("Kafka at {}: {e}{why}", self.brokers);
        }
        let address = why
            .split("ipv4#")
            .nth(1)
            .or_else(|| why.split("ipv6#").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or(&self.brokers);
        format!(
            "Kafka at {brokers}: connection refused by {address}\n  help: is a Kafka broker \
             running and listening on {address}? The brokers come from PAVER_KAFKA_BROKERS, else \
             `targets.kafka.brokers` in paver.yaml; `paver doctor --repo <repo>` checks every \
             connection",
            brokers = self.brokers
        )
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
    /// request and one DescribeConfigs for all of them, sent at the same time (the configs
    /// of wanted topics that do not exist are asked for too, and their answers ignored).
    pub async fn observe(
        &self,
        wanted: &BTreeMap<String, Topic>,
    ) -> Result<BTreeMap<String, Topic>, String> {
        use rdkafka::consumer::Consumer;
        if wanted.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.count();
        let probe = self.probe.clone();
        let names: std::collections::BTreeSet<String> = wanted.keys().cloned().collect();
        let metadata = blocking(move || {
            let metadata = probe.fetch_metadata(None, TIMEOUT)?;
            let mut found = BTreeMap::new();
            for t in metadata.topics() {
                if !names.contains(t.name()) || t.error().is_some() {
                    continue;
                }
                let partitions = t.partitions();
                found.insert(
                    t.name().to_string(),
                    Topic {
                        partitions: partitions.len() as i32,
                        replication_factor: partitions
                            .first()
                            .map_or(0, |p| p.replicas().len() as i32),
                        config: BTreeMap::new(),
                    },
                );
            }
            Ok::<_, rdkafka::error::KafkaError>(found)
        });
        self.count();
        let specifiers: Vec<ResourceSpecifier> =
            wanted.keys().map(|n| ResourceSpecifier::Topic(n)).collect();
        let options = Self::options();
        let describing = self.admin.describe_configs(specifiers.iter(), &options);
        let (metadata, described) = tokio::join!(metadata, describing);
        let mut found = metadata
            .map_err(failed)?
            .map_err(|e| self.unreachable(&e))?;
        let described = described.map_err(|e| format!("describing topic configs: {e}"))?;
        for (name, result) in wanted.keys().zip(described) {
            // A topic that does not exist has no config to read.
            let Some(topic) = found.get_mut(name) else {
                continue;
            };
            let resource =
                result.map_err(|e| format!("describing the config of topic `{name}`: {e}"))?;
            let keys = &wanted[name].config;
            topic.config = resource
                .entries
                .iter()
                .filter(|e| e.source == ConfigSource::DynamicTopic || keys.contains_key(&e.name))
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
        }
        Ok(found)
    }

    /// Run a Kafka action; its error says whether trying again may help.
    pub async fn execute(&self, action: &KafkaAction) -> Result<(), ProviderError> {
        use KafkaAction as Action;
        self.count();
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
                    .map_err(|e| kafka_error(e, format!("creating topic `{name}`")))?;
                for r in results {
                    r.map_err(|(t, e)| {
                        ProviderError::from_kafka(e, format!("creating topic `{t}`: {e}"))
                    })?;
                }
            }
            Action::DeleteTopic { name } => {
                let results = self
                    .admin
                    .delete_topics(&[name.as_str()], &Self::options())
                    .await
                    .map_err(|e| kafka_error(e, format!("deleting topic `{name}`")))?;
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                        Err((t, e)) => {
                            return Err(ProviderError::from_kafka(
                                e,
                                format!("deleting topic `{t}`: {e}"),
                            ))
                        }
                    }
                }
            }
            Action::CreatePartitions { name, count } => {
                let new = NewPartitions::new(name, *count as usize);
                let results = self
                    .admin
                    .create_partitions([&new], &Self::options())
                    .await
                    .map_err(|e| kafka_error(e, format!("CreatePartitions for topic `{name}`")))?;
                for r in results {
                    r.map_err(|(t, e)| {
                        ProviderError::from_kafka(
                            e,
                            format!("CreatePartitions for topic `{t}`: {e}"),
                        )
                    })?;
                }
            }
            Action::AlterTopicConfig { name, set, delete } => {
                let admin = self.admin.clone();
                let (name, set, delete) = (name.clone(), set.clone(), delete.clone());
                let what = format!("altering the config of topic `{name}`");
                blocking(move || {
                    // `admin` (moved here) keeps the client alive during the call.
                    let native = admin.inner().native_ptr() as usize;
                    incremental_alter(native, &name, &set, &delete)
                })
                .await
                .map_err(|e| ProviderError::transient(format!("{what}: {e}")))?
                .map_err(|e| {
                    let text = format!("{what}: {e}");
                    if e.contains("timed out") || e.contains("Timed out") {
                        ProviderError::transient(text)
                    } else {
                        ProviderError::permanent(text)
                    }
                })?;
            }
        }
        Ok(())
    }
}

impl Kafka {
    /// A consumer of `group` that never joins it (no subscription): it only reads and
    /// writes the group's committed offsets.
    fn group_client(
        &self,
        group: &str,
    ) -> Result<rdkafka::consumer::BaseConsumer<Context>, String> {
        self.base_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create_with_context(Context::default())
            .map_err(|e| format!("Kafka at {}: {e}", self.brokers))
    }

    /// The offsets `group` has committed on `topic`, by partition (partitions without a
    /// committed offset are left out).
    pub async fn group_offsets(
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
        let committed = blocking(move || consumer.committed_offsets(list, TIMEOUT))
            .await
            .map_err(failed)?
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
    pub async fn set_group_offsets(
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
        blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(failed)?
            .map_err(|e| format!("committing the offsets of group `{group}`: {e}"))
    }
}

/// Run a blocking librdkafka call on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(f).await
}

fn failed(e: tokio::task::JoinError) -> String {
    format!("a Kafka call failed: {e}")
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
