//! YAML documents with the position of every node, loaded under limits.
//!
//! paver reads user-written YAML on every pull request, so the loader is built for hostile
//! input: one document per file, duplicate keys rejected, a budget on alias expansion (a
//! "billion laughs" file fails after a few thousand nodes instead of eating memory), a depth
//! limit, and only the YAML 1.2 core schema's tags. Every node keeps its span so that any
//! later finding — a JSON Schema error, a dangling reference — can point at the exact token.
//!
//! It is built on `saphyr-parser`'s event stream rather than a DOM loader because the DOM
//! loaders expand aliases eagerly and keep the last of duplicate keys silently.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// A position in a source file. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }

    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        }
    }
}

/// A range of a source file: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { start, end }
    }

    /// An empty span at one position.
    pub fn at(pos: Pos) -> Self {
        Span {
            start: pos,
            end: pos,
        }
    }
}

/// How a string scalar was written; block scalars need it to map positions inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    /// Single- or double-quoted.
    Quoted,
    /// A literal block (`|`): lines kept as written.
    Literal,
    /// A folded block (`>`): lines joined, so positions inside it are not exact.
    Folded,
}

/// The value of a node, typed by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String, Style),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One node of a document and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A mapping entry: the key (always a string scalar in paver's files) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// Limits that keep a hostile file from costing more than a normal one.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes in the document after alias expansion.
    pub max_nodes: usize,
    /// Nesting depth of collections.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 100_000,
            max_depth: 64,
        }
    }
}

/// Why a document could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not well-formed YAML, or a construct paver does not accept (tags, complex keys,
    /// several documents, an empty file).
    Syntax,
    /// The same key twice in one mapping; `first` is where it was first written.
    DuplicateKey { first: Span },
    /// Alias expansion, node count or depth went over [`Limits`].
    Budget,
}

/// A load error with the position it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub span: Span,
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        Error {
            kind,
            span,
            message: message.into(),
        }
    }
}

/// Load the single document of `text`.
pub fn load(text: &str, limits: Limits) -> Result<Node, Error> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        limits,
        nodes: 0,
        anchors: HashMap::new(),
        last: Pos::new(1, 1),
    };
    builder.document()
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    limits: Limits,
    /// Nodes built so far, aliases counted with their whole expansion.
    nodes: usize,
    /// Anchored nodes and the number of nodes each stands for.
    anchors: HashMap<usize, (Node, usize)>,
    last: Pos,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Error> {
        match self.events.next_event() {
            Some(Ok((event, span))) => {
                let span = Span::new(Pos::from_marker(&span.start), Pos::from_marker(&span.end));
                self.last = span.end;
                Ok((event, span))
            }
            Some(Err(e)) => {
                let pos = Pos::from_marker(e.marker());
                Err(Error::new(
                    ErrorKind::Syntax,
                    Span::at(pos),
                    e.info().to_string(),
                ))
            }
            None => Err(Error::new(
                ErrorKind::Syntax,
                Span::at(self.last),
                "unexpected end of the YAML stream",
            )),
        }
    }

    fn document(&mut self) -> Result<Node, Error> {
        let (first, _) = self.next()?;
        if first != Event::StreamStart {
            return Err(Error::new(
                ErrorKind::Syntax,
                Span::at(self.last),
                "expected a YAML stream",
            ));
        }
        match self.next()? {
            (Event::DocumentStart(_), _) => {}
            (Event::StreamEnd, span) => {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    "the file is empty: it must hold one YAML document",
                ))
            }
            (_, span) => {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    "expected a YAML document",
                ))
            }
        }
        let (event, span) = self.next()?;
        let root = self.node(event, span, 0)?;
        match self.next()? {
            (Event::DocumentEnd, _) => {}
            (_, span) => {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    "expected the end of the document",
                ))
            }
        }
        match self.next()? {
            (Event::StreamEnd, _) => Ok(root),
            (_, span) => Err(Error::new(
                ErrorKind::Syntax,
                span,
                "a second YAML document: each file holds exactly one",
            )),
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(Error::new(
                ErrorKind::Budget,
                span,
                format!(
                    "the document expands to more than {} nodes (alias expansion counted): refusing to load it",
                    self.limits.max_nodes
                ),
            ));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, Error> {
        if depth > self.limits.max_depth {
            return Err(Error::new(
                ErrorKind::Budget,
                span,
                format!("nesting deeper than {} levels", self.limits.max_depth),
            ));
        }
        let before = self.nodes;
        self.count(1, span)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (scalar(text, style, tag.as_deref(), span)?, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag.as_deref(), span)?;
                let mut items = Vec::new();
                let end = loop {
                    let (event, item_span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break item_span.end;
                    }
                    items.push(self.node(event, item_span, depth + 1)?);
                };
                (
                    Node {
                        value: Value::Seq(items),
                        span: Span::new(span.start, end),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag.as_deref(), span)?;
                let mut entries: Vec<Entry> = Vec::new();
                let mut seen: HashMap<String, Span> = HashMap::new();
                let end = loop {
                    let (event, key_span) = self.next()?;
                    let key = match event {
                        Event::MappingEnd => break key_span.end,
                        Event::Scalar(text, _, _, _) => text.into_owned(),
                        Event::Alias(_) => {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                key_span,
                                "an alias as a mapping key is not supported",
                            ))
                        }
                        _ => return Err(Error::new(
                            ErrorKind::Syntax,
                            key_span,
                            "only plain text keys are supported, not sequences or mappings as keys",
                        )),
                    };
                    self.count(1, key_span)?;
                    if let Some(first) = seen.get(&key) {
                        return Err(Error::new(
                            ErrorKind::DuplicateKey { first: *first },
                            key_span,
                            format!("duplicate key `{key}`"),
                        ));
                    }
                    seen.insert(key.clone(), key_span);
                    let (event, value_span) = self.next()?;
                    let value = self.node(event, value_span, depth + 1)?;
                    entries.push(Entry {
                        key,
                        key_span,
                        value,
                    });
                };
                (
                    Node {
                        value: Value::Map(entries),
                        span: Span::new(span.start, end),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                // The alias stands for a copy of the anchored node: charge its whole size
                // before copying, so that nested aliases cannot grow past the budget.
                let (node, size) = match self.anchors.get(&id) {
                    Some((node, size)) => (node, *size),
                    None => {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            span,
                            "alias to an unknown anchor",
                        ))
                    }
                };
                let node = Node {
                    value: node.value.clone(),
                    span,
                };
                self.nodes -= 1;
                self.count(size, span)?;
                return Ok(node);
            }
            _ => return Err(Error::new(ErrorKind::Syntax, span, "unexpected YAML event")),
        };
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - before));
        }
        Ok(node)
    }
}

fn reject_tag(tag: Option<&Tag>, span: Span) -> Result<(), Error> {
    match tag {
        None => Ok(()),
        Some(tag) if tag.is_yaml_core_schema() && matches!(tag.suffix.as_str(), "map" | "seq") => {
            Ok(())
        }
        Some(tag) => Err(Error::new(
            ErrorKind::Syntax,
            span,
            format!("the tag `{tag}` is not supported: paver reads plain YAML"),
        )),
    }
}

fn scalar(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    span: Span,
) -> Result<Node, Error> {
    let value = match tag {
        Some(tag) if tag.is_yaml_core_schema() => match tag.suffix.as_str() {
            "str" => Value::Str(text.into_owned(), Style::Quoted),
            "int" | "float" | "bool" | "null" => match resolve_plain(&text) {
                v @ (Value::Int(_) | Value::Float(_))
                    if matches!(tag.suffix.as_str(), "int" | "float") =>
                {
                    v
                }
                v @ Value::Bool(_) if tag.suffix == "bool" => v,
                v @ Value::Null if tag.suffix == "null" => v,
                _ => {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        span,
                        format!("`{text}` is not a valid !!{}", tag.suffix),
                    ))
                }
            },
            _ => {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    format!("the tag `{tag}` is not supported here"),
                ))
            }
        },
        Some(tag) => {
            return Err(Error::new(
                ErrorKind::Syntax,
                span,
                format!("the tag `{tag}` is not supported: paver reads plain YAML"),
            ))
        }
        None => match style {
            ScalarStyle::Plain => resolve_plain(&text),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                Value::Str(text.into_owned(), Style::Quoted)
            }
            ScalarStyle::Literal => Value::Str(text.into_owned(), Style::Literal),
            ScalarStyle::Folded => Value::Str(text.into_owned(), Style::Folded),
        },
    };
    Ok(Node { value, span })
}

/// Resolve a plain scalar by the YAML 1.2 core schema (so `yes`, `on` and `0777` stay text
/// and numbers, unlike YAML 1.1).
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Int(i);
        }
    }
    if is_core_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_string(), Style::Plain)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let b = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

impl Node {
    /// The value at `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry at `key` of a mapping node.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    /// Follow a path of keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// An integer, also when written as a whole decimal (`2.0`), as JSON Schema counts it.
    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_map(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn as_seq(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// A scalar rendered as text (for config values that may be numbers or booleans).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s, _) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The span of the node a JSON pointer (`/spec/source/topic`, `/fields/3/type`) names,
    /// or of the deepest node on the way that exists. With `key`, the span of the last
    /// step's key rather than its value (for "unknown field" findings).
    pub fn pointer_span(&self, pointer: &str, key: bool) -> Span {
        let mut node = self;
        let mut span = self.span;
        for raw in pointer.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            match &node.value {
                Value::Map(entries) => match entries.iter().find(|e| e.key == segment) {
                    Some(e) => {
                        span = if key { e.key_span } else { e.value.span };
                        node = &e.value;
                    }
                    None => return span,
                },
                Value::Seq(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i))
                {
                    Some(item) => {
                        span = item.span;
                        node = item;
                    }
                    None => return span,
                },
                _ => return span,
            }
        }
        span
    }

    /// The document as JSON, for JSON Schema validation.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::Number((*i).into()),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::Str(s, _) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
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
    fn spans_are_one_based() {
        let doc = ok("a:\n  b: [1, two]\n");
        let b = doc.path(&["a", "b"]).unwrap();
        assert_eq!(b.span.start, Pos::new(2, 6));
        let entry = doc.get("a").unwrap().entry("b").unwrap();
        assert_eq!(entry.key_span.start, Pos::new(2, 3));
        assert_eq!(doc.pointer_span("/a/b/1", false).start, Pos::new(2, 10));
        assert_eq!(doc.pointer_span("/a/b", true).start, Pos::new(2, 3));
    }

    #[test]
    fn core_schema_scalars() {
        let doc = ok("a: yes\nb: 0777\nc: 1.5e3\nd: ~\ne: 'true'\nf: 0x1F\ng: -12\nh: .5\n");
        assert_eq!(doc.get("a").unwrap().as_str(), Some("yes"));
        assert_eq!(doc.get("b").unwrap().as_i64(), Some(777));
        assert_eq!(doc.get("c").unwrap().as_f64(), Some(1500.0));
        assert_eq!(doc.get("d").unwrap().value, Value::Null);
        assert_eq!(doc.get("e").unwrap().as_str(), Some("true"));
        assert_eq!(doc.get("f").unwrap().as_i64(), Some(31));
        assert_eq!(doc.get("g").unwrap().as_i64(), Some(-12));
        assert_eq!(doc.get("h").unwrap().as_f64(), Some(0.5));
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.span.start, Pos::new(3, 1));
        assert_eq!(
            e.kind,
            ErrorKind::DuplicateKey {
                first: Span::new(Pos::new(1, 1), Pos::new(1, 2))
            }
        );
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let e = err(&text);
        assert_eq!(e.kind, ErrorKind::Budget);
        assert!(e.span.start.line < 10, "stops early, at {:?}", e.span);
    }

    #[test]
    fn small_aliases_are_expanded() {
        let doc = ok("base: &b {x: 1}\nother: *b\n");
        assert_eq!(doc.path(&["other", "x"]).unwrap().as_i64(), Some(1));
    }

    #[test]
    fn rejects_what_paver_does_not_read() {
        assert_eq!(err("").kind, ErrorKind::Syntax);
        assert!(err("a: 1\n---\nb: 2\n")
            .message
            .contains("second YAML document"));
        assert!(err("a: !custom 1\n").message.contains("not supported"));
        assert!(err("? [a]\n: 1\n").message.contains("keys"));
        let e = err("a: [1, 2\nb: 3\n");
        assert_eq!(e.kind, ErrorKind::Syntax);
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(err(&deep).kind, ErrorKind::Budget);
    }

    #[test]
    fn json_is_yaml() {
        let doc = ok("{\"type\": \"record\", \"fields\": [{\"name\": \"a\", \"type\": \"int\"}]}");
        assert_eq!(
            doc.pointer_span("/fields/0/type", false).start,
            Pos::new(1, 53)
        );
        assert_eq!(doc.to_json()["fields"][0]["name"], "a");
    }
}
