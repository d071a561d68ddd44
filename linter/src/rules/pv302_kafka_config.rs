//! PV302 kafka-config: a topic config key that Kafka does not know, or a value it rejects.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

/// How a topic config's value is checked.
#[derive(Clone, Copy)]
enum Kafka {
    /// A whole number >= the bound (`-1` means "unlimited" where the bound is -1).
    Long(i64),
    Bool,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Free text.
    Text,
}

/// The topic-level configs of Apache Kafka 3.x/4.x (`kafka-configs --describe --all`).
const CONFIGS: &[(&str, Kafka)] = &[
    (
        "cleanup.policy",
        Kafka::OneOf(&["delete", "compact", "compact,delete", "delete,compact"]),
    ),
    (
        "compression.type",
        Kafka::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("compression.gzip.level", Kafka::Long(-1)),
    ("compression.lz4.level", Kafka::Long(1)),
    ("compression.zstd.level", Kafka::Long(-131072)),
    ("delete.retention.ms", Kafka::Long(0)),
    ("file.delete.delay.ms", Kafka::Long(0)),
    ("flush.messages", Kafka::Long(1)),
    ("flush.ms", Kafka::Long(0)),
    ("follower.replication.throttled.replicas", Kafka::Text),
    ("index.interval.bytes", Kafka::Long(0)),
    ("leader.replication.throttled.replicas", Kafka::Text),
    ("local.retention.bytes", Kafka::Long(-2)),
    ("local.retention.ms", Kafka::Long(-2)),
    ("max.compaction.lag.ms", Kafka::Long(1)),
    ("max.message.bytes", Kafka::Long(0)),
    ("message.downconversion.enable", Kafka::Bool),
    ("message.format.version", Kafka::Text),
    ("message.timestamp.after.max.ms", Kafka::Long(0)),
    ("message.timestamp.before.max.ms", Kafka::Long(0)),
    ("message.timestamp.difference.max.ms", Kafka::Long(0)),
    (
        "message.timestamp.type",
        Kafka::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", Kafka::Text),
    ("min.compaction.lag.ms", Kafka::Long(0)),
    ("min.insync.replicas", Kafka::Long(1)),
    ("preallocate", Kafka::Bool),
    ("remote.log.copy.disable", Kafka::Bool),
    ("remote.log.delete.on.disable", Kafka::Bool),
    ("remote.storage.enable", Kafka::Bool),
    ("retention.bytes", Kafka::Long(-1)),
    ("retention.ms", Kafka::Long(-1)),
    ("segment.bytes", Kafka::Long(14)),
    ("segment.index.bytes", Kafka::Long(4)),
    ("segment.jitter.ms", Kafka::Long(0)),
    ("segment.ms", Kafka::Long(1)),
    ("unclean.leader.election.enable", Kafka::Bool),
];

crate::rules::declare_rule! {
    /// ## What it does
    /// Checks every key of a topic's `spec.config` against the topic configs Apache Kafka
    /// knows, and its value against the config's type: whole numbers for sizes and
    /// durations (`-1` for unlimited retention), `true`/`false`, or one of a fixed set of
    /// words (`cleanup.policy`, `compression.type`, `message.timestamp.type`).
    ///
    /// ## Why is this bad?
    /// The broker rejects an unknown key or a bad value only when the change is applied, in
    /// production, after the merge. A misspelt `retention.msec` is refused there; a
    /// `retention.ms: 7d` too. Catching it in review costs nothing.
    ///
    /// ## Example
    /// ```yaml
    /// config:
    ///   retention.msec: "604800000"
    ///   cleanup.policy: compacted
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// config:
    ///   retention.ms: "604800000"
    ///   cleanup.policy: compact
    /// ```
    pub struct KafkaConfig {
        code: "PV302",
        name: "kafka-config",
        severity: Error,
        summary: "a topic config key is unknown to Kafka, or its value has the wrong type",
    }
}

impl KafkaConfig {
    fn check_value(&self, kind: Kafka, key: &str, value: &Node) -> Option<(String, String)> {
        let text = value.scalar_text().unwrap_or_default();
        match kind {
            Kafka::Long(min) => match text.trim().parse::<i64>() {
                Ok(n) if n >= min => None,
                Ok(n) => Some((
                    format!("`{key}` is {n}, below its minimum {min}"),
                    format!("use a value >= {min}"),
                )),
                Err(_) => Some((
                    format!("`{key}` is `{text}`, not a whole number"),
                    "write the number itself, e.g. `604800000` for 7 days in milliseconds"
                        .to_string(),
                )),
            },
            Kafka::Bool => match text.as_str() {
                "true" | "false" => None,
                _ => Some((
                    format!("`{key}` is `{text}`, not true or false"),
                    "write `true` or `false`".to_string(),
                )),
            },
            Kafka::OneOf(words) => {
                // Kafka splits list values on commas and trims each item.
                let normal = text.split(',').map(str::trim).collect::<Vec<_>>().join(",");
                if words.contains(&normal.as_str()) {
                    return None;
                }
                let help = match did_you_mean(&text, words.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("one of: {}", words.join(", ")),
                };
                Some((
                    format!("`{key}` is `{text}`, which Kafka does not accept"),
                    help,
                ))
            }
            Kafka::Text => None,
        }
    }
}

impl Rule for KafkaConfig {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::KafkaTopic) {
            let Some(config) = root.path(&["spec", "config"]) else {
                continue;
            };
            for entry in config.as_map() {
                match CONFIGS.iter().find(|(k, _)| *k == entry.key) {
                    Some((_, kind)) => {
                        if let Some((message, help)) =
                            self.check_value(*kind, &entry.key, &entry.value)
                        {
                            out.push(
                                self.diagnostic(&file.path, entry.value.span, message)
                                    .help(help),
                            );
                        }
                    }
                    None => {
                        let d = self
                            .diagnostic(
                                &file.path,
                                entry.key_span,
                                format!("`{}` is not a Kafka topic config", entry.key),
                            )
                            .label("unknown config");
                        out.push(
                            match did_you_mean(&entry.key, CONFIGS.iter().map(|(k, _)| *k)) {
                                Some(s) => d.help(format!("did you mean `{s}`?")),
                                None => d.help("see the topic configs of the Kafka documentation"),
                            },
                        );
                    }
                }
            }
        }
    }
}
