//! PV403 cost-budget: a cluster's estimated monthly cost is over its `costBudget`.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

crate::rules::declare_rule! {
    /// ## What it does
    /// Estimates a `ClickHouseCluster`'s monthly cost as
    /// `shards × replication × memoryGB × costPerMemoryGBMonth` and warns when it is over
    /// `costBudget`. The price per GB of memory per month is `lint.costPerMemoryGBMonth` in
    /// `paver.yaml` (default 0.30 USD): set it to what your platform pays. Only the active
    /// (newest) version of a cluster is checked.
    ///
    /// ## Why is this bad?
    /// Doubling shards or replication in a one-line change doubles the bill. The warning
    /// puts the number in the pull request, where the owner can decide.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   replication: 3
    ///   shards: 8
    ///   memoryGB: 128
    ///   costBudget: 500      # estimate: 8 × 3 × 128 × 0.30 = 921.60
    /// ```
    ///
    /// ## Use instead
    /// Raise `costBudget` deliberately, or size the cluster down.
    pub struct CostBudget {
        code: "PV403",
        name: "cost-budget",
        severity: Warning,
        summary: "a cluster's estimated monthly cost is over its costBudget",
    }
}

impl Rule for CostBudget {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let price = ws.settings.cost_per_memory_gb_month;
        for (file, root) in ws.active_specs(Kind::ClickHouseCluster) {
            let num = |k: &str| root.path(&["spec", k]).and_then(Node::as_f64);
            let (Some(shards), Some(replication), Some(memory), Some(budget_node)) = (
                num("shards"),
                num("replication"),
                num("memoryGB"),
                root.path(&["spec", "costBudget"]),
            ) else {
                continue;
            };
            let Some(budget) = budget_node.as_f64() else {
                continue;
            };
            let estimate = shards * replication * memory * price;
            // In cents, so that an estimate equal to the budget is not "over" by rounding.
            if (estimate * 100.0).round() > (budget * 100.0).round() {
                out.push(
                    self.diagnostic(
                        &file.path,
                        budget_node.span,
                        format!("estimated cost {estimate:.2} USD/month is over the budget of {budget:.2}"),
                    )
                    .label(format!(
                        "{shards} shard{} × {replication} replica{} × {memory} GB × {price} USD per GB-month",
                        if shards == 1.0 { "" } else { "s" },
                        if replication == 1.0 { "" } else { "s" },
                    ))
                    .help("raise `costBudget` deliberately, or size the cluster down"),
                );
            }
        }
    }
}
