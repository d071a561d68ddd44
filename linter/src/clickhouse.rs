//! How Avro types become ClickHouse column types, and which column type can take values of
//! another: the mapping the reconciler creates sink tables with, and the linter checks
//! schema changes against.
//!
//! | Avro | ClickHouse |
//! | --- | --- |
//! | `boolean` | `Bool` |
//! | `int` / `long` | `Int32` / `Int64` |
//! | `float` / `double` | `Float32` / `Float64` |
//! | `string`, `bytes` | `String` |
//! | `int` + `date` | `Date32` |
//! | `long` + `timestamp-millis` / `-micros` (and `local-` ones) | `DateTime64(3)` / `DateTime64(6)` |
//! | `int` + `time-millis`, `long` + `time-micros` | `Int32`, `Int64` |
//! | `string` + `uuid` | `UUID` |
//! | `bytes`/`fixed` + `decimal(p, s)` | `Decimal(p, s)` |
//! | `fixed(n)` | `FixedString(n)` |
//! | `enum` | `LowCardinality(String)` |
//! | `array<T>` | `Array(T)` |
//! | `map<T>` | `Map(String, T)` |
//! | `record` | `Tuple(name T, …)` |
//! | `["null", T]` | `Nullable(T)` (`T` itself when T is an array, map or record: they cannot be Nullable; null becomes empty) |
//! | any other union | `String` (the value as JSON) |

use crate::avro::{NamedKind, Primitive, Type, TypeNode, Universe};

/// The ClickHouse column type of an Avro type written in `file` of the universe.
pub fn column_type(universe: &Universe, file: usize, node: &TypeNode) -> String {
    column_type_depth(universe, file, node, 0)
}

fn column_type_depth(universe: &Universe, file: usize, node: &TypeNode, depth: usize) -> String {
    if depth > 32 {
        // A recursive record cannot be a column type.
        return "String".to_string();
    }
    let logical = node.logical.as_deref();
    match &node.ty {
        Type::Primitive(p) => match (p, logical) {
            (Primitive::Int, Some("date")) => "Date32".to_string(),
            (Primitive::Long, Some("timestamp-millis" | "local-timestamp-millis")) => {
                "DateTime64(3)".to_string()
            }
            (Primitive::Long, Some("timestamp-micros" | "local-timestamp-micros")) => {
                "DateTime64(6)".to_string()
            }
            (Primitive::String, Some("uuid")) => "UUID".to_string(),
            (Primitive::Bytes, Some("decimal")) => decimal(universe, file, node),
            (Primitive::Null, _) => "Nothing".to_string(),
            (Primitive::Boolean, _) => "Bool".to_string(),
            (Primitive::Int, _) => "Int32".to_string(),
            (Primitive::Long, _) => "Int64".to_string(),
            (Primitive::Float, _) => "Float32".to_string(),
            (Primitive::Double, _) => "Float64".to_string(),
            (Primitive::Bytes | Primitive::String, _) => "String".to_string(),
        },
        Type::Array(items) => format!(
            "Array({})",
            column_type_depth(universe, file, items, depth + 1)
        ),
        Type::Map(values) => format!(
            "Map(String, {})",
            column_type_depth(universe, file, values, depth + 1)
        ),
        Type::Union(branches) => {
            let non_null: Vec<&TypeNode> = branches
                .iter()
                .filter(|b| !matches!(b.ty, Type::Primitive(Primitive::Null)))
                .collect();
            let nullable = non_null.len() < branches.len();
            match non_null.as_slice() {
                [only] => {
                    let inner = column_type_depth(universe, file, only, depth + 1);
                    let composite = ["Array(", "Map(", "Tuple("]
                        .iter()
                        .any(|p| inner.starts_with(p));
                    if nullable && !composite {
                        format!("Nullable({inner})")
                    } else {
                        inner
                    }
                }
                _ => "String".to_string(),
            }
        }
        Type::Defined(_) | Type::Ref(_) => match universe.named_type(file, node) {
            Some((in_file, named)) => match &named.kind {
                NamedKind::Enum { .. } => "LowCardinality(String)".to_string(),
                NamedKind::Fixed { .. } if logical == Some("decimal") => {
                    decimal(universe, file, node)
                }
                NamedKind::Fixed { size } => format!("FixedString({size})"),
                NamedKind::Record(fields) => {
                    let inner: Vec<String> = fields
                        .iter()
                        .map(|f| {
                            format!(
                                "{} {}",
                                f.name,
                                column_type_depth(universe, in_file, &f.ty, depth + 1)
                            )
                        })
                        .collect();
                    format!("Tuple({})", inner.join(", "))
                }
            },
            None => "String".to_string(),
        },
        Type::Invalid => "String".to_string(),
    }
}

fn decimal(_universe: &Universe, _file: usize, node: &TypeNode) -> String {
    match (node.precision, node.scale) {
        (Some(p), s) => format!("Decimal({p}, {})", s.unwrap_or(0)),
        _ => "String".to_string(),
    }
}

/// Whether a column of type `old` can take every value of type `new` without a new table:
/// the same type, a wider number, or a Nullable of one of those.
pub fn holds(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    if let Some(inner) = old
        .strip_prefix("Nullable(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let new_inner = new
            .strip_prefix("Nullable(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(new);
        return holds(inner, new_inner);
    }
    matches!(
        (old, new),
        ("Int64", "Int32")
            | ("Float32", "Int32" | "Int64")
            | ("Float64", "Int32" | "Int64" | "Float32")
            | ("DateTime64(6)", "DateTime64(3)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::parse;
    use crate::yaml::{load, Limits};

    fn ch(schema: &str) -> String {
        let node = load(schema, Limits::default()).unwrap();
        let parsed = parse(&node);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let mut u = Universe::default();
        let f = u.add(&parsed);
        column_type(&u, f, &parsed.root)
    }

    #[test]
    fn maps_avro_to_clickhouse() {
        assert_eq!(ch(r#""long""#), "Int64");
        assert_eq!(
            ch(r#"{"type":"long","logicalType":"timestamp-millis"}"#),
            "DateTime64(3)"
        );
        assert_eq!(ch(r#"["null","string"]"#), "Nullable(String)");
        assert_eq!(
            ch(r#"["null",{"type":"array","items":"int"}]"#),
            "Array(Int32)"
        );
        assert_eq!(
            ch(r#"{"type":"map","values":"double"}"#),
            "Map(String, Float64)"
        );
        assert_eq!(
            ch(r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#),
            "Decimal(10, 2)"
        );
        assert_eq!(
            ch(r#"{"type":"enum","name":"S","symbols":["A"]}"#),
            "LowCardinality(String)"
        );
        assert_eq!(
            ch(r#"{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}"#),
            "Tuple(x Int32)"
        );
        assert_eq!(ch(r#"["int","string"]"#), "String");
    }

    #[test]
    fn wider_columns_hold_narrower_values() {
        assert!(holds("Int64", "Int32"));
        assert!(holds("Nullable(Int64)", "Int32"));
        assert!(!holds("Int32", "Int64"));
        assert!(!holds("Int64", "Nullable(Int64)"));
        assert!(!holds("String", "Int64"));
    }
}
