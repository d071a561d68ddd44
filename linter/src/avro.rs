//! Avro schema files read with the position of every node: the structure a subject version
//! must have, and the top-level fields a pipeline's transform can read.

use std::collections::BTreeSet;

use crate::yaml::{Node, Span, Value};

/// A top-level field of a subject's record: a column of the stream `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub span: Span,
    /// The field's type, as written.
    pub ty: Node,
}

/// A structural problem of a schema file, with the JSON pointer and span it is at.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub pointer: String,
    pub span: Span,
    pub message: String,
    /// Where the same name was first defined, for duplicates.
    pub first: Option<Span>,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Check the structure of a subject's schema (a record at the top, every type well formed)
/// and return its top-level fields.
pub fn record_fields(root: &Node) -> Result<Vec<Field>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut check = Checker {
        problems: &mut problems,
        defined: std::collections::BTreeMap::new(),
    };
    if root.get("type").and_then(Node::as_str) != Some("record") {
        let (node, at) = match root.get("type") {
            Some(t) => (t, "/type"),
            None => (root, ""),
        };
        check.problem(
            node,
            at,
            "a subject's schema is a record: `\"type\": \"record\"` at the top",
        );
        return Err(problems);
    }
    check.schema(root, "", None);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(root
        .get("fields")
        .map(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            Some(Field {
                name: f.get("name")?.as_str()?.to_string(),
                span: f.span,
                ty: f.get("type")?.clone(),
            })
        })
        .collect())
}

struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
    /// Named types defined so far, with where.
    defined: std::collections::BTreeMap<String, Span>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_fullname(name: &str) -> bool {
    name.split('.').all(valid_name)
}

/// A type's full name: a dotted name is already full; otherwise its own namespace, or the
/// enclosing one, comes first.
pub fn full_name(name: &str, own: Option<&str>, enclosing: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match own.or(enclosing) {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

impl Checker<'_> {
    fn problem(&mut self, node: &Node, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.to_string(),
            span: node.span,
            message: message.into(),
            first: None,
        });
    }

    fn duplicate(&mut self, node: &Node, pointer: &str, message: String, first: Span) {
        self.problem(node, pointer, message);
        if let Some(p) = self.problems.last_mut() {
            p.first = Some(first);
        }
    }

    fn schema(&mut self, node: &Node, at: &str, namespace: Option<&str>) {
        match &node.value {
            Value::Str(name, _) => {
                if !PRIMITIVES.contains(&name.as_str()) && !valid_fullname(name) {
                    self.problem(
                        node,
                        at,
                        format!("`{name}` is neither a primitive type nor a valid type name"),
                    );
                }
            }
            Value::Seq(branches) => {
                if branches.is_empty() {
                    self.problem(node, at, "a union needs at least one branch");
                }
                let mut seen = BTreeSet::new();
                for (i, branch) in branches.iter().enumerate() {
                    let here = format!("{at}/{i}");
                    if matches!(branch.value, Value::Seq(_)) {
                        self.problem(branch, &here, "a union may not contain another union");
                        continue;
                    }
                    // Branches are told apart by type, and named types by full name.
                    let key = match (&branch.value, branch.get("type").and_then(Node::as_str)) {
                        (Value::Str(s, _), _) if PRIMITIVES.contains(&s.as_str()) => s.clone(),
                        (Value::Str(s, _), _) => full_name(s, None, namespace),
                        (_, Some("record" | "error" | "enum" | "fixed")) => {
                            let name = branch.get("name").and_then(Node::as_str).unwrap_or("");
                            let ns = branch.get("namespace").and_then(Node::as_str);
                            full_name(name, ns, namespace)
                        }
                        (_, Some(t)) => t.to_string(),
                        _ => String::new(),
                    };
                    if !seen.insert(key.clone()) {
                        self.problem(branch, &here, format!("the union has `{key}` twice"));
                    }
                    self.schema(branch, &here, namespace);
                }
            }
            Value::Map(_) => self.complex(node, at, namespace),
            _ => self.problem(
                node,
                at,
                "a type is a name, a union (list) or an object with `type`",
            ),
        }
    }

    fn named(&mut self, node: &Node, at: &str, namespace: Option<&str>) -> Option<String> {
        let Some(name_node) = node.get("name") else {
            self.problem(node, at, "a named type needs a `name`");
            return None;
        };
        let Some(name) = name_node.as_str() else {
            self.problem(name_node, &format!("{at}/name"), "`name` is a string");
            return None;
        };
        if !valid_fullname(name) {
            self.problem(
                name_node,
                &format!("{at}/name"),
                format!("`{name}` is not a valid Avro name"),
            );
            return None;
        }
        let full = full_name(
            name,
            node.get("namespace").and_then(Node::as_str),
            namespace,
        );
        if let Some(first) = self.defined.get(&full).copied() {
            self.duplicate(
                name_node,
                &format!("{at}/name"),
                format!("the type `{full}` is defined twice"),
                first,
            );
        } else {
            self.defined.insert(full.clone(), name_node.span);
        }
        Some(full)
    }

    fn complex(&mut self, node: &Node, at: &str, namespace: Option<&str>) {
        let Some(ty) = node.get("type") else {
            self.problem(node, at, "a type object needs a `type`");
            return;
        };
        let ty_at = format!("{at}/type");
        match ty.as_str() {
            Some("record" | "error") => {
                let full = self.named(node, at, namespace);
                let ns = full
                    .as_deref()
                    .and_then(|f| f.rsplit_once('.').map(|(ns, _)| ns.to_string()));
                let Some(fields) = node.get("fields") else {
                    self.problem(node, at, "a record needs `fields`");
                    return;
                };
                let mut names = std::collections::BTreeMap::new();
                for (i, field) in fields.as_seq().iter().enumerate() {
                    let here = format!("{at}/fields/{i}");
                    match field.get("name").and_then(Node::as_str) {
                        Some(name) if valid_name(name) => {
                            let span = field.get("name").map_or(field.span, |n| n.span);
                            match names.get(name) {
                                Some(first) => self.duplicate(
                                    field,
                                    &here,
                                    format!("the field `{name}` is defined twice"),
                                    *first,
                                ),
                                None => {
                                    names.insert(name.to_string(), span);
                                }
                            }
                        }
                        Some(name) => self.problem(
                            field,
                            &here,
                            format!("`{name}` is not a valid field name"),
                        ),
                        None => self.problem(field, &here, "a field needs a `name`"),
                    }
                    match field.get("type") {
                        Some(t) => {
                            self.schema(t, &format!("{here}/type"), ns.as_deref().or(namespace))
                        }
                        None => self.problem(field, &here, "a field needs a `type`"),
                    }
                }
                if !matches!(fields.value, Value::Seq(_)) {
                    self.problem(fields, &format!("{at}/fields"), "`fields` is a list");
                }
            }
            Some("enum") => {
                self.named(node, at, namespace);
                let symbols = node.get("symbols").map(Node::as_seq).unwrap_or_default();
                if symbols.is_empty() {
                    self.problem(node, at, "an enum needs a non-empty `symbols` list");
                }
                let mut seen = BTreeSet::new();
                for (i, s) in symbols.iter().enumerate() {
                    match s.as_str() {
                        Some(sym) if valid_name(sym) && seen.insert(sym) => {}
                        _ => self.problem(
                            s,
                            &format!("{at}/symbols/{i}"),
                            "enum symbols are unique valid names",
                        ),
                    }
                }
            }
            Some("fixed") => {
                self.named(node, at, namespace);
                if node
                    .get("size")
                    .and_then(Node::as_i64)
                    .is_none_or(|s| s < 0)
                {
                    self.problem(node, at, "a fixed needs a non-negative integer `size`");
                }
            }
            Some("array") => match node.get("items") {
                Some(items) => self.schema(items, &format!("{at}/items"), namespace),
                None => self.problem(node, at, "an array needs `items`"),
            },
            Some("map") => match node.get("values") {
                Some(values) => self.schema(values, &format!("{at}/values"), namespace),
                None => self.problem(node, at, "a map needs `values`"),
            },
            Some(_) => self.schema(ty, &ty_at, namespace),
            None => self.schema(ty, &ty_at, namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{load, Limits};

    fn fields(text: &str) -> Result<Vec<String>, Vec<String>> {
        let doc = load(text, Limits::default()).unwrap();
        record_fields(&doc)
            .map(|f| f.into_iter().map(|f| f.name).collect())
            .map_err(|p| {
                p.into_iter()
                    .map(|p| format!("{} {}", p.pointer, p.message))
                    .collect()
            })
    }

    #[test]
    fn reads_top_level_fields() {
        let f = fields(
            r#"{"type":"record","name":"E","namespace":"a.b","fields":[{"name":"id","type":"string"},{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"m","type":{"type":"map","values":"string"}},{"name":"o","type":["null",{"type":"record","name":"Inner","fields":[]}],"default":null}]}"#,
        );
        assert_eq!(f.unwrap(), ["id", "t", "m", "o"]);
    }

    #[test]
    fn structural_problems_have_pointers() {
        let e = fields(r#"{"type":"record","name":"E","fields":[{"name":"a","type":"string"},{"name":"a","type":["null","null"]}]}"#).unwrap_err();
        assert!(e
            .iter()
            .any(|p| p.starts_with("/fields/1 ") && p.contains("twice")));
        assert!(e.iter().any(|p| p.starts_with("/fields/1/type/1 ")));
        assert!(fields(r#"{"type":"enum","name":"E","symbols":["A"]}"#).is_err());
        assert!(fields(r#"{"type":"record","name":"1E","fields":[]}"#).is_err());
        // Same short name, other namespaces: two types. Short and full name of one: the same.
        let two = r#"{"type":"record","name":"E","namespace":"a","fields":[{"name":"c","type":[{"type":"record","name":"C","namespace":"x","fields":[]},{"type":"record","name":"C","namespace":"y","fields":[]}]}]}"#;
        assert!(fields(two).is_ok());
        let same = r#"{"type":"record","name":"E","namespace":"a","fields":[{"name":"c","type":["null","C","a.C"]}]}"#;
        assert!(fields(same).unwrap_err()[0].contains("`a.C` twice"));
    }
}
