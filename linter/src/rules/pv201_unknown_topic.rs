//! PV201 unknown-topic: a pipeline reads or dead-letters to a topic the repo does not define.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a pipeline whose `source.topic` or `source.deadLetterTopic` names no
    /// `KafkaTopic` in this repo (`topics/<name>/`).
    ///
    /// ## Why is this bad?
    /// paver creates topics only from their specs. A pipeline on a topic nobody declared
    /// would wait forever for data, or, with auto-creation on, read a topic with the
    /// broker's default partitions and retention.
    ///
    /// ## Example
    /// ```yaml
    /// source:
    ///   topic: user-event
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// source:
    ///   topic: user-events   # topics/user-events/v1.yaml exists
    /// ```
    pub struct UnknownTopic {
        code: "PV201",
        name: "unknown-topic",
        severity: Error,
        summary: "a pipeline names a Kafka topic that the repo does not define",
    }
}

impl Rule for UnknownTopic {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let topics = ws.resources.get(&Kind::KafkaTopic);
        let names = || {
            topics
                .into_iter()
                .flat_map(|t| t.keys().map(String::as_str))
        };
        for (file, root) in ws.specs(Kind::DataPipeline) {
            for field in ["topic", "deadLetterTopic"] {
                let Some(node) = root.path(&["spec", "source", field]) else {
                    continue;
                };
                let Some(topic) = node.as_str() else { continue };
                if ws.resource(Kind::KafkaTopic, topic).is_some() {
                    continue;
                }
                let mut d = self
                    .diagnostic(
                        &file.path,
                        node.span,
                        format!("no KafkaTopic `{topic}` in this repo"),
                    )
                    .label("unknown topic");
                d = match did_you_mean(topic, names()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "add `topics/{topic}/v1.yaml`, or name one of the repo's topics"
                    )),
                };
                out.push(d);
            }
        }
    }
}
