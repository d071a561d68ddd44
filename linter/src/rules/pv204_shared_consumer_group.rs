//! PV204 shared-consumer-group: two pipelines use the same Kafka consumer group.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Span;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a `source.consumerGroup` used by the active versions of more than one
    /// pipeline, on each of them. The versions of one pipeline share their group;
    /// different pipelines may not.
    ///
    /// ## Why is this bad?
    /// Kafka splits a topic's partitions among the members of a group. Two pipelines in one
    /// group each see only part of the stream, and each commits offsets for the other:
    /// rows silently go missing from both sinks.
    ///
    /// ## Example
    /// ```yaml
    /// # pipelines/user-events-ingestion/v1.yaml and pipelines/user-events-audit/v1.yaml
    /// source:
    ///   consumerGroup: ingest-prod
    /// ```
    ///
    /// ## Use instead
    /// Give each pipeline its own group, e.g. `ingest-prod` and `audit-prod`.
    pub struct SharedConsumerGroup {
        code: "PV204",
        name: "shared-consumer-group",
        severity: Error,
        summary: "a Kafka consumer group is used by more than one pipeline",
    }
}

impl Rule for SharedConsumerGroup {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        // Only the active version of a pipeline consumes; which of two pipelines is "the
        // new one" cannot be told from one tree, so each of them is reported.
        let mut users: BTreeMap<&str, Vec<(&str, &str, Span)>> = BTreeMap::new();
        for (file, root) in ws.active_specs(Kind::DataPipeline) {
            let (Some((_, pipeline, _)), Some(node)) =
                (file.spec(), root.path(&["spec", "source", "consumerGroup"]))
            else {
                continue;
            };
            if let Some(group) = node.as_str() {
                users
                    .entry(group)
                    .or_default()
                    .push((pipeline, &file.path, node.span));
            }
        }
        for (group, pipelines) in users.iter().filter(|(_, p)| p.len() > 1) {
            for (pipeline, path, span) in pipelines {
                let others: Vec<_> = pipelines.iter().filter(|(p, _, _)| p != pipeline).collect();
                let names: Vec<String> = others.iter().map(|(p, _, _)| format!("`{p}`")).collect();
                let mut d = self
                    .diagnostic(
                        path,
                        *span,
                        format!("the consumer group `{group}` is also used by {}", names.join(", ")),
                    )
                    .label("shared consumer group")
                    .help(format!(
                        "add a new version of one of these pipelines with a group of its own, e.g. `{group}-{pipeline}`"
                    ));
                for (other, other_path, other_span) in others {
                    d = d.related(*other_path, *other_span, format!("used by `{other}` here"));
                }
                out.push(d);
            }
        }
    }
}
