//! PV204 shared-consumer-group: two pipelines use the same Kafka consumer group.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Span;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a `source.consumerGroup` used by more than one pipeline. The versions of one
    /// pipeline share their group; different pipelines may not.
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
        // group -> the first pipeline that uses it, with where.
        let mut owners: BTreeMap<&str, (&str, &str, Span)> = BTreeMap::new();
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let (Some((_, pipeline, _)), Some(node)) = (file.spec(), root.path(&["spec", "source", "consumerGroup"]))
            else {
                continue;
            };
            let Some(group) = node.as_str() else { continue };
            match owners.get(group) {
                None => {
                    owners.insert(group, (pipeline, &file.path, node.span));
                }
                Some((owner, _, _)) if *owner == pipeline => {}
                Some((owner, owner_file, owner_span)) => out.push(
                    self.diagnostic(
                        &file.path,
                        node.span,
                        format!("the consumer group `{group}` is already used by the pipeline `{owner}`"),
                    )
                    .label("shared consumer group")
                    .related(*owner_file, *owner_span, format!("used by `{owner}` here"))
                    .help(format!("give `{pipeline}` a group of its own, e.g. `{group}-{pipeline}`")),
                ),
            }
        }
    }
}
