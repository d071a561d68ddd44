//! PV603 impossible-change: a new version changes something that cannot change in place or by a new table.

use crate::changes::Impact;
use crate::diagnostic::Diagnostic;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Classifies what each new version changes (shown in the "changes" part of every
    /// output) and reports the changes that cannot be applied at all:
    /// - a topic's `partitions` decreasing (Kafka cannot remove partitions);
    /// - a topic's `replicationFactor` changing (it needs a partition reassignment, which
    ///   paver does not do);
    /// - a cluster's `shards` decreasing (the data on the removed shards would be lost).
    ///
    /// Without `--base`, the newest version of each resource is compared with the one
    /// before it; with `--base`, every version the pull request adds.
    ///
    /// ## Why is this bad?
    /// The reconciler would refuse the revision after the merge, and the branch would hold
    /// a version that can never be applied: every later change would be blocked behind it.
    ///
    /// ## Example
    /// ```yaml
    /// # topics/orders/v2.yaml (v1 has partitions: 12)
    /// spec:
    ///   partitions: 6
    /// ```
    ///
    /// ## Use instead
    /// Create a new topic with the partitions you need (`topics/orders-v2/v1.yaml`), move
    /// producers and the pipeline to it, then retire the old one.
    pub struct ImpossibleChange {
        code: "PV603",
        name: "impossible-change",
        severity: Error,
        summary: "a new version changes what cannot change (partitions down, replication factor, shards down)",
    }
}

impl Rule for ImpossibleChange {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for change in &ws.changes {
            let file = &ws.files[change.file];
            let Some(root) = &file.root else { continue };
            for item in change
                .items
                .iter()
                .filter(|i| i.impact == Impact::Impossible)
            {
                let keys: Vec<&str> = item.at.iter().map(String::as_str).collect();
                let span = root.path(&keys).map_or(root.span, |n| n.span);
                out.push(
                    self.diagnostic(&file.path, span, format!("v{} → v{}: {}", change.from, change.to, item.what))
                        .label("cannot be applied")
                        .help("create a new resource with the new setting and move to it; a version cannot make this change"),
                );
            }
        }
    }
}
