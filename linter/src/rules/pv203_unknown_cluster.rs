//! PV203 unknown-cluster: a pipeline's sink names a ClickHouse cluster the repo does not define.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a pipeline whose `sink.cluster` names no `ClickHouseCluster` in this repo
    /// (`clusters/<name>/`).
    ///
    /// ## Why is this bad?
    /// The cluster decides where the sink table lives, its retention and its cost owner.
    /// A sink on an undeclared cluster cannot be applied.
    ///
    /// ## Example
    /// ```yaml
    /// sink:
    ///   cluster: production-metric
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// sink:
    ///   cluster: production-metrics   # clusters/production-metrics/v1.yaml exists
    /// ```
    pub struct UnknownCluster {
        code: "PV203",
        name: "unknown-cluster",
        severity: Error,
        summary: "a pipeline's sink names a ClickHouse cluster that the repo does not define",
    }
}

impl Rule for UnknownCluster {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let clusters = ws.resources.get(&Kind::ClickHouseCluster);
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let Some(node) = root.path(&["spec", "sink", "cluster"]) else {
                continue;
            };
            let Some(cluster) = node.as_str() else {
                continue;
            };
            if ws.resource(Kind::ClickHouseCluster, cluster).is_some() {
                continue;
            }
            let names = clusters
                .into_iter()
                .flat_map(|c| c.keys().map(String::as_str));
            let d = self
                .diagnostic(
                    &file.path,
                    node.span,
                    format!("no ClickHouseCluster `{cluster}` in this repo"),
                )
                .label("unknown cluster");
            out.push(match did_you_mean(cluster, names) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!(
                    "add `clusters/{cluster}/v1.yaml`, or name one of the repo's clusters"
                )),
            });
        }
    }
}
