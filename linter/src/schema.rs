//! The JSON Schemas of the spec kinds, embedded at compile time, and their findings mapped
//! back to the line and column of the offending key or value.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value as Json;

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::rules::{self, Rule as _};
use crate::yaml::Node;

/// The files that have a JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    KafkaTopic,
    ClickHouseCluster,
    DataPipeline,
    Settings,
    Subject,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 5] = [
        SchemaKind::KafkaTopic,
        SchemaKind::ClickHouseCluster,
        SchemaKind::DataPipeline,
        SchemaKind::Settings,
        SchemaKind::Subject,
    ];

    /// The schema's file name in the project's `schemas/` folder.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::KafkaTopic => "kafka-topic.schema.json",
            SchemaKind::ClickHouseCluster => "clickhouse-cluster.schema.json",
            SchemaKind::DataPipeline => "data-pipeline.schema.json",
            SchemaKind::Settings => "paver.schema.json",
            SchemaKind::Subject => "subject.schema.json",
        }
    }

    /// The schema's text, as embedded in the binary.
    pub fn source(self) -> &'static str {
        match self {
            SchemaKind::KafkaTopic => include_str!("../../schemas/kafka-topic.schema.json"),
            SchemaKind::ClickHouseCluster => {
                include_str!("../../schemas/clickhouse-cluster.schema.json")
            }
            SchemaKind::DataPipeline => include_str!("../../schemas/data-pipeline.schema.json"),
            SchemaKind::Settings => include_str!("../../schemas/paver.schema.json"),
            SchemaKind::Subject => include_str!("../../schemas/subject.schema.json"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Compiled {
    schema: Json,
    validator: Validator,
}

static COMPILED: [OnceLock<Compiled>; 5] = [const { OnceLock::new() }; 5];

fn compiled(kind: SchemaKind) -> &'static Compiled {
    COMPILED[kind.index()].get_or_init(|| {
        // The schemas are part of this binary and tested; failing here is a build defect.
        let schema: Json =
            serde_json::from_str(kind.source()).expect("embedded schema is valid JSON");
        let validator = jsonschema::options()
            .build(&schema)
            .expect("embedded schema compiles");
        Compiled { schema, validator }
    })
}

/// Validate a loaded document against its kind's schema; every finding, not just the first.
pub fn validate(kind: SchemaKind, doc: &Node, file: &str) -> Vec<Diagnostic> {
    let compiled = compiled(kind);
    let instance = doc.to_json();
    if compiled.validator.is_valid(&instance) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for error in compiled.validator.iter_errors(&instance) {
        let at = error.instance_path().to_string();
        let schema_path = error.schema_path().to_string();
        let rule = rules::pv010_schema_violation::SchemaViolation;
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = schema_path
                    .strip_suffix("/additionalProperties")
                    .unwrap_or(&schema_path);
                let known = schema_at(&compiled.schema, parent)
                    .and_then(|s| s.get("properties"))
                    .and_then(Json::as_object)
                    .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
                    .unwrap_or_default();
                for key in unexpected {
                    let span = doc.pointer_span(&format!("{at}/{}", escape(key)), true);
                    let mut d = rule
                        .diagnostic(file, span, format!("unknown field `{key}`"))
                        .label("not a field of this object");
                    d = match did_you_mean(key, known.iter().copied()) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None if !known.is_empty() => {
                            d.help(format!("the fields here are: {}", known.join(", ")))
                        }
                        None => d,
                    };
                    out.push(d);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let span = if at.is_empty() {
                    doc.span
                } else {
                    doc.pointer_span(&at, true)
                };
                let parent = if at.is_empty() {
                    "the document".to_string()
                } else {
                    format!("`{}`", at.trim_start_matches('/').replace('/', "."))
                };
                let mut d = rule
                    .diagnostic(
                        file,
                        span,
                        format!("missing required field `{name}` in {parent}"),
                    )
                    .label(format!("`{name}` is missing here"));
                let required_at = schema_path
                    .strip_suffix("/required")
                    .unwrap_or(&schema_path);
                if let Some(desc) = schema_at(
                    &compiled.schema,
                    &format!("{required_at}/properties/{name}"),
                )
                .and_then(|s| s.get("description"))
                .and_then(Json::as_str)
                {
                    d = d.help(format!("add `{name}`: {desc}"));
                }
                out.push(d);
            }
            kind => {
                let span = doc.pointer_span(&at, false);
                let field = at.trim_start_matches('/').replace('/', ".");
                let message = match kind {
                    ValidationErrorKind::Pattern { pattern } => {
                        format!(
                            "{} does not match the pattern `{pattern}`",
                            error.instance()
                        )
                    }
                    ValidationErrorKind::Enum { options } => {
                        let words: Vec<&str> = options
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Json::as_str)
                            .collect();
                        let mut m =
                            format!("{} is not one of: {}", error.instance(), words.join(", "));
                        if let Some(s) = error
                            .instance()
                            .as_str()
                            .and_then(|v| did_you_mean(v, words.iter().copied()))
                        {
                            m.push_str(&format!(" (did you mean `{s}`?)"));
                        }
                        m
                    }
                    _ => error.to_string(),
                };
                let message = if field.is_empty() {
                    message
                } else {
                    format!("`{field}`: {message}")
                };
                let mut d = rule.diagnostic(file, span, message);
                let keyword_parent = schema_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                if let Some(desc) = schema_at(&compiled.schema, keyword_parent)
                    .and_then(|s| s.get("description"))
                    .and_then(Json::as_str)
                {
                    d = d.help(desc.to_string());
                }
                out.push(d);
            }
        }
    }
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The subschema at a keyword location, following `$ref`s inside the same document.
fn schema_at<'a>(root: &'a Json, pointer: &str) -> Option<&'a Json> {
    let mut node = root;
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
            node = root.pointer(target)?;
            continue;
        }
        node = match node {
            Json::Object(map) => map.get(&segment)?,
            Json::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{load, Limits, Pos};

    #[test]
    fn every_embedded_schema_compiles() {
        for kind in SchemaKind::ALL {
            let _ = compiled(kind);
        }
    }

    #[test]
    fn findings_point_at_the_key_or_value() {
        let text = "apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: t\n  version: 1\n  owner: x\nspec:\n  partitons: 3\n  replicationFactor: nope\n";
        let doc = load(text, Limits::default()).unwrap();
        let found = validate(SchemaKind::KafkaTopic, &doc, "topics/t/v1.yaml");
        let unknown = found
            .iter()
            .find(|d| d.message.contains("unknown field `partitons`"))
            .unwrap();
        assert_eq!(unknown.span.start, Pos::new(8, 3));
        assert_eq!(unknown.help.as_deref(), Some("did you mean `partitions`?"));
        let missing = found
            .iter()
            .find(|d| d.message.contains("`partitions`") && d.message.contains("missing"))
            .unwrap();
        assert_eq!(missing.span.start, Pos::new(7, 1));
        let typed = found
            .iter()
            .find(|d| d.message.contains("spec.replicationFactor"))
            .unwrap();
        assert_eq!(typed.span.start, Pos::new(9, 22));
    }
}
