//! The lint rules: one file each, a stable `PV###` id, and the doc comment that
//! `paver-lint --explain` prints.
//!
//! Ids are grouped by hundreds: `PV0xx` the files themselves (YAML, limits, layout,
//! JSON Schema), `PV1xx` identity and versions, `PV2xx` references between resources,
//! `PV3xx` SQL and Kafka identifiers and the transform, `PV4xx` sizing and cost,
//! `PV5xx` Avro schemas, `PV6xx` what a pull request changes against the released state.

use crate::diagnostic::{Diagnostic, Severity};
use crate::workspace::Workspace;
use crate::yaml::Span;

/// What `--explain` and the outputs know of a rule.
#[derive(Debug)]
pub struct RuleMeta {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// One line: what the rule checks.
    pub summary: &'static str,
    /// The rule's doc comment: what it does, why, an example, what to do instead.
    pub explanation: &'static str,
}

/// A lint rule. Rules whose findings come from loading files (YAML, JSON Schema, layout)
/// keep the default `check`, which does nothing: the loader reports in their name.
pub trait Rule: Sync {
    fn meta(&self) -> &'static RuleMeta;

    /// Inspect the loaded workspace and report findings.
    fn check(&self, _ws: &Workspace, _out: &mut Vec<Diagnostic>) {}

    /// A finding of this rule at its default severity.
    fn diagnostic(&self, file: &str, span: Span, message: impl Into<String>) -> Diagnostic
    where
        Self: Sized,
    {
        let meta = self.meta();
        Diagnostic {
            code: meta.code,
            name: meta.name,
            severity: meta.severity,
            file: file.to_string(),
            span,
            message: message.into(),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }
}

/// Declares a rule's unit struct and its metadata, the explanation taken from its doc comment.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            code: $code:literal,
            name: $kebab:literal,
            severity: $severity:ident,
            summary: $summary:literal $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl $name {
            pub const META: $crate::rules::RuleMeta = $crate::rules::RuleMeta {
                code: $code,
                name: $kebab,
                severity: $crate::diagnostic::Severity::$severity,
                summary: $summary,
                explanation: concat!($($doc, "\n"),*),
            };
        }
    };
}
pub(crate) use declare_rule;

pub mod pv001_invalid_yaml;
pub mod pv002_duplicate_key;
pub mod pv003_resource_limit;
pub mod pv004_symlink_escape;
pub mod pv005_unexpected_file;
pub mod pv010_schema_violation;
pub mod pv101_name_mismatch;
pub mod pv102_version_mismatch;
pub mod pv103_version_gap;
pub mod pv104_wrong_kind;
pub mod pv201_unknown_topic;
pub mod pv202_unknown_schema;
pub mod pv203_unknown_cluster;
pub mod pv204_shared_consumer_group;
pub mod pv205_unknown_receiver;
pub mod pv301_sql_identifier;
pub mod pv302_kafka_config;
pub mod pv303_transform_query;
pub mod pv304_unknown_column;
pub mod pv305_key_column;
pub mod pv401_topic_sanity;
pub mod pv402_cluster_sanity;
pub mod pv403_cost_budget;
pub mod pv501_invalid_avro;
pub mod pv502_incompatible_schema;
pub mod pv503_unresolved_type;
pub mod pv504_logical_type_change;
pub mod pv601_released_version_edited;
pub mod pv602_released_version_removed;
pub mod pv603_impossible_change;

/// Every rule, in id order.
pub static ALL: &[&dyn Rule] = &[
    &pv001_invalid_yaml::InvalidYaml,
    &pv002_duplicate_key::DuplicateKey,
    &pv003_resource_limit::ResourceLimit,
    &pv004_symlink_escape::SymlinkEscape,
    &pv005_unexpected_file::UnexpectedFile,
    &pv010_schema_violation::SchemaViolation,
    &pv101_name_mismatch::NameMismatch,
    &pv102_version_mismatch::VersionMismatch,
    &pv103_version_gap::VersionGap,
    &pv104_wrong_kind::WrongKind,
    &pv201_unknown_topic::UnknownTopic,
    &pv202_unknown_schema::UnknownSchema,
    &pv203_unknown_cluster::UnknownCluster,
    &pv204_shared_consumer_group::SharedConsumerGroup,
    &pv205_unknown_receiver::UnknownReceiver,
    &pv301_sql_identifier::SqlIdentifier,
    &pv302_kafka_config::KafkaConfig,
    &pv303_transform_query::TransformQuery,
    &pv304_unknown_column::UnknownColumn,
    &pv305_key_column::KeyColumn,
    &pv401_topic_sanity::TopicSanity,
    &pv402_cluster_sanity::ClusterSanity,
    &pv403_cost_budget::CostBudget,
    &pv501_invalid_avro::InvalidAvro,
    &pv502_incompatible_schema::IncompatibleSchema,
    &pv503_unresolved_type::UnresolvedType,
    &pv504_logical_type_change::LogicalTypeChange,
    &pv601_released_version_edited::ReleasedVersionEdited,
    &pv602_released_version_removed::ReleasedVersionRemoved,
    &pv603_impossible_change::ImpossibleChange,
];

/// The rule with this id (case-insensitive) or kebab-case name.
pub fn find(id: &str) -> Option<&'static dyn Rule> {
    ALL.iter()
        .copied()
        .find(|r| r.meta().code.eq_ignore_ascii_case(id) || r.meta().name == id)
}

/// The explanation as `--explain` prints it: the doc comment without its leading spaces.
pub fn explain(rule: &dyn Rule) -> String {
    let meta = rule.meta();
    let mut text = format!(
        "{} {} ({})\n\n{}\n\n",
        meta.code,
        meta.name,
        meta.severity.as_str(),
        meta.summary
    );
    for line in meta.explanation.lines() {
        text.push_str(line.strip_prefix(' ').unwrap_or(line));
        text.push('\n');
    }
    text
}

/// The span in the file of a position inside a SQL string scalar, `len` characters long.
pub(crate) fn sql_span(
    file: &crate::workspace::File,
    node: &crate::yaml::Node,
    pos: Option<crate::sql::SqlPos>,
) -> Span {
    match pos {
        Some(p) => {
            let start = crate::workspace::position_in_scalar(file, node, p.line, p.col);
            if start == node.span.start && (p.line, p.col) != (1, 1) {
                // Not mapped exactly (a folded block, escapes): the whole scalar.
                return node.span;
            }
            let end = crate::yaml::Pos::new(start.line, start.col + p.len.max(1));
            Span::new(start, end)
        }
        None => node.span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_documented() {
        let mut last = "";
        for rule in ALL {
            let m = rule.meta();
            assert!(m.code > last, "{} out of order", m.code);
            last = m.code;
            assert!(m.code.len() == 5 && m.code.starts_with("PV"));
            for section in ["## What it does", "## Why is this bad?", "## Example"] {
                assert!(
                    m.explanation.contains(section),
                    "{} lacks {section}",
                    m.code
                );
            }
        }
    }
}
