//! PV010 schema-violation: a spec does not match its kind's JSON Schema

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Validates `paver.yaml`, `subject.yaml` and every spec against the JSON Schema of its kind
    /// (in the project's `schemas/`, embedded in paver-lint): unknown fields, missing fields,
    /// wrong types, out-of-range numbers, names and identifiers that do not match their pattern.
    /// Every violation is reported at the key or value it concerns.
    ///
    /// ## Why is this bad?
    /// A misspelt optional field (`partitons`) would otherwise be ignored, and the platform
    /// would run with a default nobody chose.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   partitons: 12
    ///   replicationFactor: "3"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   partitions: 12
    ///   replicationFactor: 3
    /// ```
    ///
    /// ## References
    /// Point your editor at the schemas with a first line such as
    /// `# yaml-language-server: $schema=../../schemas/kafka-topic.schema.json`.
    pub struct SchemaViolation {
        code: "PV010",
        name: "schema-violation",
        severity: Error,
        summary: "a spec does not match its kind's JSON Schema",
    }
}

impl Rule for SchemaViolation {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
