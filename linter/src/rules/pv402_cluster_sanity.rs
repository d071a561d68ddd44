//! PV402 cluster-sanity: a ClickHouse cluster sized or monitored in a way that fails in production.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

crate::rules::declare_rule! {
    /// ## What it does
    /// Warns about a `ClickHouseCluster` that is likely to hurt:
    /// - `replication: 1` with `backupToS3` off: one lost disk is all the data lost;
    /// - `memoryGB` under 8: ClickHouse's merges and inserts need more;
    /// - `monitoring.alertOnDisk` above 90: merges need free disk, so the alert would
    ///   fire after inserts already fail.
    ///
    /// Only the active (newest) version of a cluster is checked: an older one is released
    /// and can no longer change. (Shards and replication of at least 1 are enforced by the
    /// schema.)
    ///
    /// ## Why is this bad?
    /// Each of these works on day one and pages someone later.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   replication: 1
    ///   shards: 2
    ///   memoryGB: 4
    ///   backupToS3: false
    ///   monitoring: { alertOnDisk: 98 }
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   replication: 2
    ///   shards: 2
    ///   memoryGB: 32
    ///   backupToS3: true
    ///   monitoring: { alertOnDisk: 85 }
    /// ```
    pub struct ClusterSanity {
        code: "PV402",
        name: "cluster-sanity",
        severity: Warning,
        summary: "a ClickHouse cluster is sized or monitored in a way that fails in production",
    }
}

impl Rule for ClusterSanity {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.active_specs(Kind::ClickHouseCluster) {
            let spec = |k: &str| root.path(&["spec", k]);
            if let Some(node) = spec("replication").filter(|n| n.as_i64() == Some(1)) {
                if spec("backupToS3").and_then(Node::as_bool) != Some(true) {
                    out.push(
                        self.diagnostic(
                            &file.path,
                            node.span,
                            "one replica and no backup: a lost disk loses the data",
                        )
                        .help("set `replication: 2` or more, or `backupToS3: true`"),
                    );
                }
            }
            if let Some(node) = spec("memoryGB").filter(|n| n.as_f64().is_some_and(|m| m < 8.0)) {
                out.push(
                    self.diagnostic(&file.path, node.span, "under 8 GB of memory per replica")
                        .help("ClickHouse needs 8 GB or more for merges and inserts; 32 GB is a common minimum"),
                );
            }
            if let Some(node) = root
                .path(&["spec", "monitoring", "alertOnDisk"])
                .filter(|n| n.as_f64().is_some_and(|d| d > 90.0))
            {
                out.push(
                    self.diagnostic(&file.path, node.span, "the disk alert fires after merges and inserts already fail")
                        .help("alert at 90% or less (85% is common): merges need free space as large as the parts they merge"),
                );
            }
        }
    }
}
