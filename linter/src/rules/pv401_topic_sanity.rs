//! PV401 topic-sanity: a topic's replication settings that lose data or block producers.

use crate::diagnostic::{Diagnostic, Severity};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

crate::rules::declare_rule! {
    /// ## What it does
    /// Checks a topic's replication against its `min.insync.replicas`:
    /// - error: `min.insync.replicas` above `replicationFactor` (no write with `acks=all`
    ///   can ever succeed);
    /// - warning: `min.insync.replicas` equal to a `replicationFactor` above 1 (one broker
    ///   down stops every producer);
    /// - warning: `replicationFactor: 1` (one broker lost is data lost).
    ///
    /// The warnings look only at a topic's active (newest) version: an older one is
    /// released and can no longer change.
    ///
    /// ## Why is this bad?
    /// These topics work in a test cluster and fail in production on the first broker
    /// restart. (Partition and replication counts of at least 1 are enforced by the schema.)
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   partitions: 12
    ///   replicationFactor: 2
    ///   config:
    ///     min.insync.replicas: 3
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   partitions: 12
    ///   replicationFactor: 3
    ///   config:
    ///     min.insync.replicas: 2
    /// ```
    pub struct TopicSanity {
        code: "PV401",
        name: "topic-sanity",
        severity: Error,
        summary: "a topic's replication and min.insync.replicas lose data or block producers",
    }
}

impl Rule for TopicSanity {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::KafkaTopic) {
            let Some(rf_node) = root.path(&["spec", "replicationFactor"]) else {
                continue;
            };
            let Some(rf) = rf_node.as_i64() else { continue };
            let isr_node = root.path(&["spec", "config", "min.insync.replicas"]);
            let isr = isr_node
                .and_then(Node::scalar_text)
                .and_then(|t| t.trim().parse::<i64>().ok());
            if let (Some(node), Some(isr)) = (isr_node, isr) {
                if isr > rf {
                    out.push(
                        self.diagnostic(
                            &file.path,
                            node.span,
                            format!(
                                "`min.insync.replicas` is {isr}, above `replicationFactor` {rf}"
                            ),
                        )
                        .label("no acks=all write can succeed")
                        .help(format!(
                            "set `min.insync.replicas` to at most {}",
                            (rf - 1).max(1)
                        )),
                    );
                } else if isr == rf && rf > 1 && ws.is_active(file) {
                    out.push(
                        self.diagnostic(
                            &file.path,
                            node.span,
                            format!("`min.insync.replicas` equals `replicationFactor` ({rf})"),
                        )
                        .with_severity(Severity::Warning)
                        .label("one broker down stops every producer")
                        .help(format!("set `min.insync.replicas: {}`", rf - 1)),
                    );
                }
            }
            if rf == 1 && ws.is_active(file) {
                out.push(
                    self.diagnostic(
                        &file.path,
                        rf_node.span,
                        "`replicationFactor: 1` keeps a single copy of the data",
                    )
                    .with_severity(Severity::Warning)
                    .help(
                        "use 3 replicas in production; losing one broker loses this topic's data",
                    ),
                );
            }
        }
    }
}
