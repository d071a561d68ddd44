//! PV001 invalid-yaml: a file is not one well-formed YAML (or, for .avsc, JSON) document in UTF-8

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a file that cannot be read as exactly one YAML document: a syntax error, an
    /// empty file, a second document after `---`, a custom tag (`!something`), a list or
    /// mapping used as a key, or bytes that are not UTF-8. `.avsc` files are read as JSON.
    ///
    /// ## Why is this bad?
    /// Nothing else can be checked in a file that does not parse, and tools disagree about
    /// the corners of YAML: a second document or a custom tag that one tool ignores, another
    /// applies. paver reads exactly one plain document, the same way in the PR check and in
    /// the reconciler.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   partitions: 12
    ///    replicationFactor: 3   # indented one space too far
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   partitions: 12
    ///   replicationFactor: 3
    /// ```
    pub struct InvalidYaml {
        code: "PV001",
        name: "invalid-yaml",
        severity: Error,
        summary: "a file is not one well-formed YAML (or, for .avsc, JSON) document in UTF-8",
    }
}

impl Rule for InvalidYaml {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
