//! PV002 duplicate-key: a mapping has the same key twice

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a key written twice in the same mapping, with both places.
    ///
    /// ## Why is this bad?
    /// Most YAML loaders keep the last value silently, so a reviewer reads one value and
    /// production gets another. A duplicate is almost always a merge accident.
    ///
    /// ## Example
    /// ```yaml
    /// config:
    ///   retention.ms: "604800000"
    ///   retention.ms: "86400000"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// config:
    ///   retention.ms: "86400000"
    /// ```
    pub struct DuplicateKey {
        code: "PV002",
        name: "duplicate-key",
        severity: Error,
        summary: "a mapping has the same key twice",
    }
}

impl Rule for DuplicateKey {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
