//! Strict JSON (RFC 8259) with the position of every node, for `.avsc` files: the same
//! [`Node`] tree as the YAML loader gives, under the same limits, in one fast pass.
//!
//! A YAML loader would also take YAML-only syntax (comments, single quotes, trailing
//! commas) that Avro tools reject; `serde_json` keeps no positions. Duplicate keys are
//! refused, as for YAML.

use std::collections::HashMap;

use crate::yaml::{Entry, Error, ErrorKind, Limits, Node, Pos, Span, Style, Value};

/// Load one JSON document.
pub fn load(text: &str, limits: Limits) -> Result<Node, Error> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
        line: 1,
        line_start: 0,
        nodes: 0,
        limits,
    };
    p.skip_ws();
    if p.at == p.bytes.len() {
        return Err(p.error("the file is empty: it must hold one JSON document"));
    }
    let node = p.value(0)?;
    p.skip_ws();
    if p.at != p.bytes.len() {
        return Err(p.error("unexpected text after the JSON document"));
    }
    Ok(node)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    line: u32,
    line_start: usize,
    nodes: usize,
    limits: Limits,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        // Columns count characters, as the YAML loader's do.
        let col = self.text[self.line_start..self.at].chars().count() as u32 + 1;
        Pos::new(self.line, col)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Syntax,
            span: Span::at(self.pos()),
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                _ => break,
            }
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), Error> {
        self.skip_ws();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn count(&mut self, start: Pos) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(Error {
                kind: ErrorKind::Budget,
                span: Span::at(start),
                message: format!(
                    "the document has more than {} nodes: refusing to load it",
                    self.limits.max_nodes
                ),
            });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Node, Error> {
        self.skip_ws();
        let start = self.pos();
        self.count(start)?;
        if depth > self.limits.max_depth {
            return Err(Error {
                kind: ErrorKind::Budget,
                span: Span::at(start),
                message: format!("nesting deeper than {} levels", self.limits.max_depth),
            });
        }
        let value = match self.bytes.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut entries = Vec::new();
                let mut seen: HashMap<String, Span> = HashMap::new();
                self.skip_ws();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                } else {
                    loop {
                        self.skip_ws();
                        let key_start = self.pos();
                        if self.bytes.get(self.at) != Some(&b'"') {
                            return Err(self.error("expected a key in double quotes"));
                        }
                        let key = self.string()?;
                        let key_span = Span::new(key_start, self.pos());
                        if let Some(first) = seen.get(&key) {
                            return Err(Error {
                                kind: ErrorKind::DuplicateKey { first: *first },
                                span: key_span,
                                message: format!("duplicate key `{key}`"),
                            });
                        }
                        seen.insert(key.clone(), key_span);
                        self.expect(b':', "`:` after the key")?;
                        let value = self.value(depth + 1)?;
                        entries.push(Entry {
                            key,
                            key_span,
                            value,
                        });
                        self.skip_ws();
                        match self.bytes.get(self.at) {
                            Some(b',') => self.at += 1,
                            Some(b'}') => {
                                self.at += 1;
                                break;
                            }
                            _ => return Err(self.error("expected `,` or `}`")),
                        }
                    }
                }
                Value::Map(entries)
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                } else {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.skip_ws();
                        match self.bytes.get(self.at) {
                            Some(b',') => self.at += 1,
                            Some(b']') => {
                                self.at += 1;
                                break;
                            }
                            _ => return Err(self.error("expected `,` or `]`")),
                        }
                    }
                }
                Value::Seq(items)
            }
            Some(b'"') => Value::Str(self.string()?, Style::Quoted),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.error("expected a value")),
            None => return Err(self.error("unexpected end of the file")),
        };
        Ok(Node {
            value,
            span: Span::new(start, self.pos()),
        })
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, Error> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn number(&mut self) -> Result<Value, Error> {
        let begin = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.bytes.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        if digits(self) == 0 || (self.bytes[int_start] == b'0' && self.at - int_start > 1) {
            return Err(self.error("invalid number"));
        }
        let mut float = false;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.error("invalid number: digits expected after `.`"));
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            float = true;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number: digits expected in the exponent"));
            }
        }
        let text = &self.text[begin..self.at];
        if !float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Int(i));
            }
        }
        text.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| self.error("invalid number"))
    }

    fn string(&mut self) -> Result<String, Error> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        loop {
            let run = self.at;
            while let Some(&b) = self.bytes.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(&self.text[run..self.at]);
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = match self.bytes.get(self.at) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.error("invalid escape in a string")),
                    };
                    self.at += 1;
                    out.push(escaped);
                }
                Some(_) => return Err(self.error("a control character in a string: escape it")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let value =
            u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(value)
    }

    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.bytes[self.at..].starts_with(b"\\u") {
                return Err(self.error("a lone surrogate in a \\u escape"));
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("a lone surrogate in a \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Node {
        load(text, Limits::default()).expect("loads")
    }

    fn err(text: &str) -> Error {
        load(text, Limits::default()).expect_err("must fail")
    }

    #[test]
    fn positions_match_the_yaml_loader() {
        let text = "{\"type\": \"record\",\n \"fields\": [{\"name\": \"a\", \"type\": \"int\"}]}";
        let json = ok(text);
        let yaml = crate::yaml::load(text, Limits::default()).unwrap();
        for pointer in ["/type", "/fields", "/fields/0", "/fields/0/type"] {
            assert_eq!(
                json.pointer_span(pointer, false).start,
                yaml.pointer_span(pointer, false).start,
                "{pointer}"
            );
            assert_eq!(
                json.pointer_span(pointer, true).start,
                yaml.pointer_span(pointer, true).start,
                "{pointer}"
            );
        }
        assert_eq!(
            json.to_json(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }

    #[test]
    fn values_and_escapes() {
        let doc =
            ok(r#"{"a": -1.5e2, "b": 7, "c": "x\n\u00e9\ud83d\ude00", "d": [true, false, null]}"#);
        assert_eq!(doc.get("a").unwrap().as_f64(), Some(-150.0));
        assert_eq!(doc.get("b").unwrap().as_i64(), Some(7));
        assert_eq!(doc.get("c").unwrap().as_str(), Some("x\né😀"));
        assert_eq!(doc.get("d").unwrap().as_seq().len(), 3);
    }

    #[test]
    fn refuses_what_json_does_not_allow() {
        assert_eq!(err("[1, 2,]").span.start, Pos::new(1, 7));
        assert!(err("{'a': 1}").message.contains("double quotes"));
        assert!(err("{\"a\": 1} // x").message.contains("after the JSON"));
        assert!(err("{\"a\": 01}").message.contains("number"));
        assert!(err("").message.contains("empty"));
        assert!(matches!(
            err("{\"a\": 1, \"a\": 2}").kind,
            ErrorKind::DuplicateKey { .. }
        ));
        assert_eq!(err(&"[".repeat(100)).kind, ErrorKind::Budget);
        assert!(err("\"abc").message.contains("unterminated"));
    }
}
