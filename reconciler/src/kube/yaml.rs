//! Kubernetes objects as YAML, for `paver render`: block style, one document per object,
//! strings quoted whenever a plain scalar could read as something else, multi-line strings
//! as literal blocks (a PromQL expression or a script stays readable in a pull request).

use serde_json::Value;

/// Objects as a multi-document YAML stream (`---` before each).
pub fn documents(objects: &[Value]) -> String {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&document(object));
    }
    out
}

/// One value as a YAML document.
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, level: usize) {
    for (key, value) in map {
        indent(out, level);
        out.push_str(&key_text(key));
        out.push(':');
        write_nested(out, value, level);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            // `- key: value` with the rest of the mapping aligned under the first key.
            Value::Object(map) if !map.is_empty() => {
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(out, level + 2);
                    }
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_nested(out, value, level + 2);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, level + 2);
            }
            scalar => write_nested(out, scalar, level),
        }
    }
}

/// After `key:` or `-`: a nested collection on the next lines, else ` scalar`.
fn write_nested(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, level + 2);
        }
        // Sequences in a mapping are not indented further (the usual Kubernetes style).
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, level);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, level + 2);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s, level),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_string(out: &mut String, text: &str, level: usize) {
    if let Some(block) = literal_block(text, level) {
        out.push_str(&block);
    } else if is_plain(text) {
        out.push_str(text);
    } else {
        out.push_str(&quoted(text));
    }
}

fn key_text(key: &str) -> String {
    if is_plain(key) {
        key.to_string()
    } else {
        quoted(key)
    }
}

/// A double-quoted scalar: JSON's escapes are all YAML escapes too.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// A literal block (`|`, `|-` or `|+`) for a multi-line string whose lines survive one
/// verbatim: no tabs or carriage returns, no trailing spaces, no leading space on the first
/// line (it would set the indentation).
fn literal_block(text: &str, level: usize) -> Option<String> {
    if !text.contains('\n')
        || text.contains(['\r', '\t'])
        || text.starts_with([' ', '\n'])
        || text.lines().any(|l| l.ends_with(' '))
        || text.chars().any(|c| c.is_control() && c != '\n')
    {
        return None;
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(&mut out, level);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}

/// Whether a string can be written plain and still read back as that same string: it
/// starts with a letter, `/` or `_`, holds only characters that mean nothing to YAML in a
/// block context, and is not one of YAML 1.1's booleans or nulls.
fn is_plain(text: &str) -> bool {
    const RESERVED: [&str; 12] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "~",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_'
                        | '.'
                        | '/'
                        | ':'
                        | '@'
                        | '='
                        | '+'
                        | ' '
                        | '('
                        | ')'
                        | '$'
                        | '%'
                        | '^'
                        | '<'
                        | '>'
                )
        })
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !RESERVED.contains(&text.to_ascii_lowercase().as_str())
}

/// A value's YAML, line by line.
pub fn lines(value: &Value) -> Vec<String> {
    document(value).lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The linter's own YAML loader (strict: no duplicates, no tags) reads it back equal.
    fn round_trip(value: &Value) {
        let text = document(value);
        let node = paver_lint::yaml::load(&text, Default::default())
            .unwrap_or_else(|e| panic!("does not load: {e:?}\n{text}"));
        assert_eq!(&node.to_json(), value, "\n{text}");
    }

    #[test]
    fn strings_that_could_read_as_other_things_are_quoted() {
        for text in [
            "true",
            "False",
            "yes",
            "NO",
            "on",
            "null",
            "~",
            "",
            "123",
            "1.5",
            "0x1f",
            "1e3",
            "-1",
            ".inf",
            "- item",
            "a: b",
            "a #b",
            "#comment",
            "'single'",
            "\"double\"",
            "{flow}",
            "[seq]",
            "&anchor",
            "*alias",
            "!tag",
            "|block",
            ">folded",
            "%percent",
            "@at",
            "`tick`",
            "trailing ",
            " leading",
            "key:",
            "tab\there",
            "back\\slash",
            "unicode é",
            "emoji 🚀",
            "ctrl\u{1}",
        ] {
            round_trip(&json!({ "k": text }));
            round_trip(&json!({ text: 1 }));
        }
        assert_eq!(document(&json!({"k": "true"})), "k: \"true\"\n");
        assert_eq!(document(&json!({"k": "team-a"})), "k: team-a\n");
        assert_eq!(document(&json!({"k": "128Gi"})), "k: \"128Gi\"\n");
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        for text in [
            "a\nb",
            "a\nb\n",
            "a\nb\n\n",
            "a\n\nb",
            "set -eu\nexec x \\\n  --y \"$Z\"\n",
            " leading\nspace",
            "trailing \nspace",
        ] {
            round_trip(&json!({ "script": text, "list": [text] }));
        }
        assert_eq!(document(&json!({"s": "a\nb\n"})), "s: |\n  a\n  b\n");
    }

    #[test]
    fn nesting_numbers_and_empty_collections() {
        let value = json!({
            "apiVersion": "v1",
            "items": [{"a": 1, "b": [1, 2.5, -3], "c": {}}, [], [[1], {"x": null}], "s", true],
            "empty": [],
            "map": {"nested": {"deeper": {"k": false}}},
        });
        round_trip(&value);
        assert_eq!(
            lines(&json!({"a": [{"b": 1, "c": 2}]})),
            ["a:", "- b: 1", "  c: 2"]
        );
    }
}
