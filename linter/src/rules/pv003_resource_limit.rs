//! PV003 resource-limit: a file is over the size limit, or its aliases expand past the node budget

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Refuses a file over 1 MiB without reading it, and a document whose anchors and aliases
    /// expand to more than 100,000 nodes or nest deeper than 64 levels (a "billion laughs"
    /// file), stopping as soon as the budget is spent.
    ///
    /// ## Why is this bad?
    /// A spec is a few hundred bytes. A huge file or an alias bomb in a pull request would
    /// stall the check, or the reconciler, for everyone: a denial of service by review.
    ///
    /// ## Example
    /// ```yaml
    /// a: &a [x, x, x, x, x, x, x, x, x, x]
    /// b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    /// c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    /// # ... nine more levels: 10^12 nodes
    /// ```
    ///
    /// ## Use instead
    /// Write the values out. Small aliases are fine; paver counts what they expand to.
    pub struct ResourceLimit {
        code: "PV003",
        name: "resource-limit",
        severity: Error,
        summary: "a file is over the size limit, or its aliases expand past the node budget",
    }
}

impl Rule for ResourceLimit {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
