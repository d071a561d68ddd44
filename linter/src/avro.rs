//! Avro schemas: parsed with the position of every node, named types resolved within a
//! file and across the repo's files, and checked for compatibility exactly as Apache Avro's
//! `SchemaCompatibility` (Java; the Python package `avro` is a port) decides, reporting every
//! incompatibility rather than the first.
//!
//! The reference rules, which paver follows to the letter:
//! - primitives read themselves; promotions int→long→float→double, int→float/double,
//!   long→float/double, and string↔bytes;
//! - records, enums and fixed match by *short* name, or by a reader alias equal to the
//!   writer's full name (aliases are qualified with the reader's namespace, as Java does);
//! - a reader field absent from the writer (looked up by name, then by the reader field's
//!   aliases) needs a default; extra writer fields are skipped;
//! - a writer enum symbol unknown to the reader needs the reader enum's `default`;
//! - fixed sizes must be equal; a writer union needs every branch readable; a reader union
//!   needs one branch that reads the writer;
//! - logical types do not take part (only the underlying type does): paver warns about
//!   logical-type changes separately.

use std::collections::{BTreeSet, HashMap};

use crate::yaml::{Node, Span, Value};

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// A primitive Avro type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Primitive {
    fn from_name(name: &str) -> Option<Primitive> {
        Some(match name {
            "null" => Primitive::Null,
            "boolean" => Primitive::Boolean,
            "int" => Primitive::Int,
            "long" => Primitive::Long,
            "float" => Primitive::Float,
            "double" => Primitive::Double,
            "bytes" => Primitive::Bytes,
            "string" => Primitive::String,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Primitive::Null => "null",
            Primitive::Boolean => "boolean",
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::Bytes => "bytes",
            Primitive::String => "string",
        }
    }
}

/// A type as written at one place of a schema file.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeNode {
    pub ty: Type,
    /// `logicalType`, when the node has one.
    pub logical: Option<String>,
    /// `precision` and `scale`, for decimals.
    pub precision: Option<i64>,
    pub scale: Option<i64>,
    /// JSON pointer of the node in its file.
    pub pointer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Primitive(Primitive),
    Array(Box<TypeNode>),
    Map(Box<TypeNode>),
    Union(Vec<TypeNode>),
    /// A named type defined here: index into [`Parsed::named`].
    Defined(usize),
    /// A named type referenced by its full name, defined elsewhere in the file or in
    /// another file of the repo.
    Ref(String),
    /// A node that did not parse (its problem is reported); compatible with anything so
    /// that one mistake is reported once.
    Invalid,
}

/// A record, enum or fixed type.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedType {
    pub full: String,
    pub short: String,
    /// Full names (qualified with the type's namespace when written short).
    pub aliases: Vec<String>,
    pub kind: NamedKind,
    /// JSON pointer of the type's object.
    pub pointer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NamedKind {
    Record(Vec<Field>),
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        size: i64,
    },
}

impl NamedKind {
    fn tag(&self) -> &'static str {
        match self {
            NamedKind::Record(_) => "record",
            NamedKind::Enum { .. } => "enum",
            NamedKind::Fixed { .. } => "fixed",
        }
    }
}

/// A field of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub ty: TypeNode,
    pub has_default: bool,
    /// JSON pointer of the field's object (`/fields/3`).
    pub pointer: String,
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

/// One schema file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub root: TypeNode,
    pub named: Vec<NamedType>,
    /// Full name → index in `named`.
    pub by_name: HashMap<String, usize>,
    /// Names referenced but not defined in this file, with the pointer of each first use.
    pub external: Vec<(String, String)>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// The top-level record's fields, when the top is a record defined here.
    pub fn record_fields(&self) -> Option<&[Field]> {
        match &self.root.ty {
            Type::Defined(i) => match &self.named[*i].kind {
                NamedKind::Record(fields) => Some(fields),
                _ => None,
            },
            _ => None,
        }
    }
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

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

/// Parse a schema file's document (any type at the top).
pub fn parse(root: &Node) -> Parsed {
    let mut p = Parser {
        parsed: Parsed {
            root: TypeNode {
                ty: Type::Invalid,
                logical: None,
                precision: None,
                scale: None,
                pointer: String::new(),
            },
            named: Vec::new(),
            by_name: HashMap::new(),
            external: Vec::new(),
            problems: Vec::new(),
        },
        spans: HashMap::new(),
    };
    let top = p.schema(root, "", None);
    p.parsed.root = top;
    // References to names defined later in the file are local too.
    let mut external: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    collect_refs(&p.parsed, &p.parsed.root, &mut |name, pointer| {
        if !p.parsed.by_name.contains_key(name) && seen.insert(name.to_string()) {
            external.push((name.to_string(), pointer.to_string()));
        }
    });
    p.parsed.external = external;
    p.parsed
}

fn collect_refs(parsed: &Parsed, node: &TypeNode, f: &mut impl FnMut(&str, &str)) {
    match &node.ty {
        Type::Ref(name) => f(name, &node.pointer),
        Type::Array(t) | Type::Map(t) => collect_refs(parsed, t, f),
        Type::Union(branches) => branches.iter().for_each(|b| collect_refs(parsed, b, f)),
        Type::Defined(i) => {
            if let NamedKind::Record(fields) = &parsed.named[*i].kind {
                for field in fields {
                    collect_refs(parsed, &field.ty, f);
                }
            }
        }
        Type::Primitive(_) | Type::Invalid => {}
    }
}

struct Parser {
    parsed: Parsed,
    /// Where each named type's name was written, for "defined twice".
    spans: HashMap<String, Span>,
}

impl Parser {
    fn problem(&mut self, node: &Node, pointer: &str, message: impl Into<String>) {
        self.parsed.problems.push(Problem {
            pointer: pointer.to_string(),
            span: node.span,
            message: message.into(),
            first: None,
        });
    }

    fn invalid(&self, pointer: &str) -> TypeNode {
        TypeNode {
            ty: Type::Invalid,
            logical: None,
            precision: None,
            scale: None,
            pointer: pointer.to_string(),
        }
    }

    fn schema(&mut self, node: &Node, at: &str, namespace: Option<&str>) -> TypeNode {
        match &node.value {
            Value::Str(name, _) => match Primitive::from_name(name) {
                Some(p) => TypeNode {
                    ty: Type::Primitive(p),
                    logical: None,
                    precision: None,
                    scale: None,
                    pointer: at.to_string(),
                },
                None if valid_fullname(name) => TypeNode {
                    ty: Type::Ref(full_name(name, None, namespace)),
                    logical: None,
                    precision: None,
                    scale: None,
                    pointer: at.to_string(),
                },
                None => {
                    self.problem(
                        node,
                        at,
                        format!("`{name}` is neither a primitive type nor a valid type name"),
                    );
                    self.invalid(at)
                }
            },
            Value::Seq(branches) => {
                if branches.is_empty() {
                    self.problem(node, at, "a union needs at least one branch");
                }
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut out = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    let here = format!("{at}/{i}");
                    if matches!(branch.value, Value::Seq(_)) {
                        self.problem(branch, &here, "a union may not contain another union");
                        out.push(self.invalid(&here));
                        continue;
                    }
                    let parsed = self.schema(branch, &here, namespace);
                    // Branches are told apart by type, and named types by full name.
                    let key = match &parsed.ty {
                        Type::Primitive(p) => p.name().to_string(),
                        Type::Array(_) => "array".to_string(),
                        Type::Map(_) => "map".to_string(),
                        Type::Defined(i) => self.parsed.named[*i].full.clone(),
                        Type::Ref(name) => name.clone(),
                        Type::Union(_) | Type::Invalid => String::new(),
                    };
                    if !key.is_empty() && seen.insert(key.clone(), i).is_some() {
                        self.problem(branch, &here, format!("the union has `{key}` twice"));
                    }
                    out.push(parsed);
                }
                TypeNode {
                    ty: Type::Union(out),
                    logical: None,
                    precision: None,
                    scale: None,
                    pointer: at.to_string(),
                }
            }
            Value::Map(_) => self.complex(node, at, namespace),
            _ => {
                self.problem(
                    node,
                    at,
                    "a type is a name, a union (list) or an object with `type`",
                );
                self.invalid(at)
            }
        }
    }

    fn complex(&mut self, node: &Node, at: &str, namespace: Option<&str>) -> TypeNode {
        let logical = node
            .get("logicalType")
            .and_then(Node::as_str)
            .map(str::to_string);
        let Some(ty) = node.get("type") else {
            self.problem(node, at, "a type object needs a `type`");
            return self.invalid(at);
        };
        let ty_at = format!("{at}/type");
        let parsed = match ty.as_str() {
            Some(kind @ ("record" | "error" | "enum" | "fixed")) => {
                self.named(node, at, namespace, kind)
            }
            Some("array") => match node.get("items") {
                Some(items) => Type::Array(Box::new(self.schema(
                    items,
                    &format!("{at}/items"),
                    namespace,
                ))),
                None => {
                    self.problem(node, at, "an array needs `items`");
                    Type::Invalid
                }
            },
            Some("map") => match node.get("values") {
                Some(values) => Type::Map(Box::new(self.schema(
                    values,
                    &format!("{at}/values"),
                    namespace,
                ))),
                None => {
                    self.problem(node, at, "a map needs `values`");
                    Type::Invalid
                }
            },
            // `{"type": "int", "logicalType": ...}`, `{"type": "Address"}`, `{"type": [..]}`.
            _ => self.schema(ty, &ty_at, namespace).ty,
        };
        TypeNode {
            ty: parsed,
            logical,
            precision: node.get("precision").and_then(Node::as_i64),
            scale: node.get("scale").and_then(Node::as_i64),
            pointer: at.to_string(),
        }
    }

    fn aliases(&mut self, node: &Node, at: &str, namespace: Option<&str>) -> Vec<String> {
        let Some(list) = node.get("aliases") else {
            return Vec::new();
        };
        if !matches!(list.value, Value::Seq(_)) {
            self.problem(
                list,
                &format!("{at}/aliases"),
                "`aliases` is a list of names",
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, alias) in list.as_seq().iter().enumerate() {
            match alias.as_str() {
                Some(a) if valid_fullname(a) => out.push(match namespace {
                    Some(_) => full_name(a, None, namespace),
                    None => a.to_string(),
                }),
                _ => self.problem(
                    alias,
                    &format!("{at}/aliases/{i}"),
                    "an alias is a valid name",
                ),
            }
        }
        out
    }

    fn named(&mut self, node: &Node, at: &str, namespace: Option<&str>, kind: &str) -> Type {
        let Some(name_node) = node.get("name") else {
            self.problem(node, at, format!("a {kind} needs a `name`"));
            return Type::Invalid;
        };
        let name_at = format!("{at}/name");
        let Some(name) = name_node.as_str().filter(|n| valid_fullname(n)) else {
            self.problem(
                name_node,
                &name_at,
                "`name` is a valid Avro name (letters, digits, `_`)",
            );
            return Type::Invalid;
        };
        let own_ns = node.get("namespace").and_then(Node::as_str);
        let full = full_name(name, own_ns, namespace);
        if PRIMITIVES.contains(&full.as_str()) {
            self.problem(
                name_node,
                &name_at,
                format!("`{full}` is a primitive type's name"),
            );
            return Type::Invalid;
        }
        let ns = namespace_of(&full).map(str::to_string);
        let aliases = self.aliases(node, at, ns.as_deref());
        let index = self.parsed.named.len();
        if let Some(first) = self.spans.get(&full).copied() {
            self.parsed.problems.push(Problem {
                pointer: name_at.clone(),
                span: name_node.span,
                message: format!("the type `{full}` is defined twice"),
                first: Some(first),
            });
        } else {
            self.spans.insert(full.clone(), name_node.span);
            self.parsed.by_name.insert(full.clone(), index);
        }
        // Reserve the slot first: fields may refer to the type itself (recursion).
        self.parsed.named.push(NamedType {
            short: full.rsplit('.').next().unwrap_or(&full).to_string(),
            full: full.clone(),
            aliases,
            kind: NamedKind::Fixed { size: 0 },
            pointer: at.to_string(),
        });
        let kind = match kind {
            "record" | "error" => NamedKind::Record(self.fields(node, at, ns.as_deref())),
            "enum" => self.enumeration(node, at),
            _ => match node.get("size").and_then(Node::as_i64) {
                Some(size) if size >= 0 => NamedKind::Fixed { size },
                _ => {
                    self.problem(node, at, "a fixed needs a non-negative integer `size`");
                    NamedKind::Fixed { size: -1 }
                }
            },
        };
        self.parsed.named[index].kind = kind;
        Type::Defined(index)
    }

    fn fields(&mut self, node: &Node, at: &str, namespace: Option<&str>) -> Vec<Field> {
        let Some(list) = node.get("fields") else {
            self.problem(node, at, "a record needs `fields`");
            return Vec::new();
        };
        if !matches!(list.value, Value::Seq(_)) {
            self.problem(list, &format!("{at}/fields"), "`fields` is a list");
            return Vec::new();
        }
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut out = Vec::new();
        for (i, field) in list.as_seq().iter().enumerate() {
            let here = format!("{at}/fields/{i}");
            let name = match field.get("name").and_then(Node::as_str) {
                Some(name) if valid_name(name) => {
                    let span = field.get("name").map_or(field.span, |n| n.span);
                    if let Some(first) = names.get(name).copied() {
                        self.parsed.problems.push(Problem {
                            pointer: here.clone(),
                            span: field.span,
                            message: format!("the field `{name}` is defined twice"),
                            first: Some(first),
                        });
                    } else {
                        names.insert(name.to_string(), span);
                    }
                    name.to_string()
                }
                Some(name) => {
                    self.problem(field, &here, format!("`{name}` is not a valid field name"));
                    continue;
                }
                None => {
                    self.problem(field, &here, "a field needs a `name`");
                    continue;
                }
            };
            let ty = match field.get("type") {
                Some(t) => self.schema(t, &format!("{here}/type"), namespace),
                None => {
                    self.problem(field, &here, "a field needs a `type`");
                    self.invalid(&here)
                }
            };
            let aliases = self.aliases(field, &here, None);
            if let Some(default) = field.get("default") {
                if let Some(expected) = self.default_mismatch(default, &ty) {
                    self.problem(
                        default,
                        &format!("{here}/default"),
                        format!("the default of `{name}` is not {expected}"),
                    );
                }
            }
            out.push(Field {
                name,
                aliases,
                ty,
                has_default: field.get("default").is_some(),
                pointer: here,
            });
        }
        out
    }

    /// What a field's default should have been, when it does not fit the field's type
    /// (the first branch of a union, as the Avro specification says). Types defined in
    /// other files are not checked here.
    fn default_mismatch(&self, value: &Node, ty: &TypeNode) -> Option<String> {
        let fits = |ok: bool, what: &str| if ok { None } else { Some(what.to_string()) };
        match &ty.ty {
            Type::Primitive(p) => match p {
                Primitive::Null => fits(matches!(value.value, Value::Null), "`null`"),
                Primitive::Boolean => {
                    fits(matches!(value.value, Value::Bool(_)), "`true` or `false`")
                }
                Primitive::Int => fits(
                    value.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    "a 32-bit integer (`int`)",
                ),
                Primitive::Long => fits(value.as_i64().is_some(), "an integer (`long`)"),
                Primitive::Float | Primitive::Double => fits(value.as_f64().is_some(), "a number"),
                Primitive::Bytes | Primitive::String => fits(value.as_str().is_some(), "a string"),
            },
            Type::Array(items) => {
                let Value::Seq(values) = &value.value else {
                    return Some("a list".to_string());
                };
                values.iter().find_map(|v| self.default_mismatch(v, items))
            }
            Type::Map(values) => {
                let Value::Map(entries) = &value.value else {
                    return Some("an object".to_string());
                };
                entries
                    .iter()
                    .find_map(|e| self.default_mismatch(&e.value, values))
            }
            Type::Union(branches) => {
                let first = branches.first()?;
                self.default_mismatch(value, first).map(|expected| {
                    format!("{expected}: a union's default must match its first branch (put that type first)")
                })
            }
            Type::Defined(index) => match &self.parsed.named.get(*index)?.kind {
                NamedKind::Enum { symbols, .. } => fits(
                    value
                        .as_str()
                        .is_some_and(|v| symbols.iter().any(|s| s == v)),
                    "one of the enum's symbols",
                ),
                NamedKind::Fixed { size } => fits(
                    value
                        .as_str()
                        .is_some_and(|v| v.chars().count() as i64 == *size),
                    &format!("a string of {size} characters"),
                ),
                NamedKind::Record(fields) => {
                    let Value::Map(_) = &value.value else {
                        return Some("an object".to_string());
                    };
                    fields.iter().find_map(|f| match value.get(&f.name) {
                        Some(v) => self.default_mismatch(v, &f.ty),
                        None if f.has_default => None,
                        None => Some(format!("an object with `{}`", f.name)),
                    })
                }
            },
            Type::Ref(_) | Type::Invalid => None,
        }
    }

    fn enumeration(&mut self, node: &Node, at: &str) -> NamedKind {
        let symbols_node = node.get("symbols");
        let symbols_list = symbols_node.map(Node::as_seq).unwrap_or_default();
        if symbols_list.is_empty() {
            let (n, pointer) = match symbols_node {
                Some(n) => (n, format!("{at}/symbols")),
                None => (node, at.to_string()),
            };
            self.problem(n, &pointer, "an enum needs a non-empty `symbols` list");
        }
        let mut symbols = Vec::new();
        for (i, s) in symbols_list.iter().enumerate() {
            match s.as_str() {
                Some(sym) if valid_name(sym) && !symbols.iter().any(|x| x == sym) => {
                    symbols.push(sym.to_string())
                }
                _ => self.problem(
                    s,
                    &format!("{at}/symbols/{i}"),
                    "enum symbols are unique valid names",
                ),
            }
        }
        let default = node
            .get("default")
            .and_then(Node::as_str)
            .map(str::to_string);
        if let (Some(d), Some(dn)) = (&default, node.get("default")) {
            if !symbols.contains(d) {
                self.problem(
                    dn,
                    &format!("{at}/default"),
                    format!("the enum default `{d}` is not one of its symbols"),
                );
            }
        }
        NamedKind::Enum { symbols, default }
    }
}

/// A reference to a named type: which file, which type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedRef {
    pub file: usize,
    pub index: usize,
}

/// The schema files that may refer to each other's named types.
#[derive(Debug, Default)]
pub struct Universe<'a> {
    pub files: Vec<&'a Parsed>,
    /// Per file: names defined in other files, resolved.
    pub imports: Vec<HashMap<String, NamedRef>>,
}

impl<'a> Universe<'a> {
    pub fn add(&mut self, parsed: &'a Parsed) -> usize {
        self.files.push(parsed);
        self.imports.push(HashMap::new());
        self.files.len() - 1
    }

    fn resolve(&self, file: usize, name: &str) -> Option<NamedRef> {
        match self.files[file].by_name.get(name) {
            Some(index) => Some(NamedRef {
                file,
                index: *index,
            }),
            None => self.imports[file].get(name).copied(),
        }
    }

    fn named(&self, r: NamedRef) -> &'a NamedType {
        &self.files[r.file].named[r.index]
    }

    /// The named type a node defines or refers to (in `file`), with the file it is in.
    pub fn named_type(&self, file: usize, node: &TypeNode) -> Option<(usize, &'a NamedType)> {
        let r = match &node.ty {
            Type::Defined(index) => NamedRef {
                file,
                index: *index,
            },
            Type::Ref(name) => self.resolve(file, name)?,
            _ => return None,
        };
        Some((r.file, self.named(r)))
    }
}

/// Schema Registry's names for the kinds of incompatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl IncompatibilityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => {
                "READER_FIELD_MISSING_DEFAULT_VALUE"
            }
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

/// One reason a reader cannot read what a writer writes, at a place of each schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// The reader's file (an index of the universe) and the JSON pointer in it.
    pub reader_file: usize,
    pub reader_pointer: String,
    pub writer_file: usize,
    pub writer_pointer: String,
    pub message: String,
}

/// A type at a place: the file it is written in and its node.
#[derive(Clone, Copy)]
struct At<'a> {
    file: usize,
    node: &'a TypeNode,
}

/// What a node is, once references are followed.
enum Shape<'a> {
    Primitive(Primitive),
    Array(&'a TypeNode),
    Map(&'a TypeNode),
    Union(&'a [TypeNode]),
    Named(NamedRef),
    Unknown,
}

impl Shape<'_> {
    fn tag(&self, u: &Universe) -> &'static str {
        match self {
            Shape::Primitive(p) => p.name(),
            Shape::Array(_) => "array",
            Shape::Map(_) => "map",
            Shape::Union(_) => "union",
            Shape::Named(r) => u.named(*r).kind.tag(),
            Shape::Unknown => "unknown",
        }
    }
}

/// Checks reader/writer pairs of one universe.
pub struct Checker<'u, 'a> {
    universe: &'u Universe<'a>,
    /// Named pairs: `None` while being checked (a recursive type meets itself: compatible),
    /// then the result.
    memo: HashMap<(NamedRef, NamedRef), Option<Vec<Incompatibility>>>,
}

impl<'u, 'a> Checker<'u, 'a> {
    pub fn new(universe: &'u Universe<'a>) -> Self {
        Checker {
            universe,
            memo: HashMap::new(),
        }
    }

    /// Every incompatibility of reading data written with the root of `writer` using the
    /// root of `reader` (files of the universe).
    pub fn check(&mut self, reader: usize, writer: usize) -> Vec<Incompatibility> {
        let r = At {
            file: reader,
            node: &self.universe.files[reader].root,
        };
        let w = At {
            file: writer,
            node: &self.universe.files[writer].root,
        };
        self.compat(r, w)
    }

    fn shape(&self, at: At<'a>) -> Shape<'a> {
        match &at.node.ty {
            Type::Primitive(p) => Shape::Primitive(*p),
            Type::Array(t) => Shape::Array(t),
            Type::Map(t) => Shape::Map(t),
            Type::Union(b) => Shape::Union(b),
            Type::Defined(index) => Shape::Named(NamedRef {
                file: at.file,
                index: *index,
            }),
            Type::Ref(name) => match self.universe.resolve(at.file, name) {
                Some(r) => Shape::Named(r),
                None => Shape::Unknown,
            },
            Type::Invalid => Shape::Unknown,
        }
    }

    fn incompatible(
        &self,
        kind: IncompatibilityKind,
        r: (usize, String),
        w: (usize, String),
        message: String,
    ) -> Vec<Incompatibility> {
        vec![Incompatibility {
            kind,
            reader_file: r.0,
            reader_pointer: r.1,
            writer_file: w.0,
            writer_pointer: w.1,
            message,
        }]
    }

    fn mismatch(&self, r: At<'a>, w: At<'a>, rs: &Shape, ws: &Shape) -> Vec<Incompatibility> {
        let (rt, wt) = (rs.tag(self.universe), ws.tag(self.universe));
        self.incompatible(
            IncompatibilityKind::TypeMismatch,
            (r.file, r.node.pointer.clone()),
            (w.file, w.node.pointer.clone()),
            format!("reader type `{rt}` cannot read writer type `{wt}`"),
        )
    }

    fn compat(&mut self, r: At<'a>, w: At<'a>) -> Vec<Incompatibility> {
        let rs = self.shape(r);
        let ws = self.shape(w);
        use Primitive::*;
        match (&rs, &ws) {
            (Shape::Unknown, _) | (_, Shape::Unknown) => Vec::new(),
            (Shape::Primitive(a), Shape::Primitive(b)) if a == b => Vec::new(),
            (Shape::Array(a), Shape::Array(b)) | (Shape::Map(a), Shape::Map(b)) => self.compat(
                At {
                    file: r.file,
                    node: a,
                },
                At {
                    file: w.file,
                    node: b,
                },
            ),
            (Shape::Named(a), Shape::Named(b))
                if self.universe.named(*a).kind.tag() == self.universe.named(*b).kind.tag() =>
            {
                self.named(*a, *b)
            }
            (Shape::Union(_), Shape::Union(writer_branches)) => {
                let mut out = Vec::new();
                for (i, branch) in writer_branches.iter().enumerate() {
                    let wb = At {
                        file: w.file,
                        node: branch,
                    };
                    if !self.compat(r, wb).is_empty() {
                        let tag = self.shape(wb).tag(self.universe);
                        out.extend(self.incompatible(
                            IncompatibilityKind::MissingUnionBranch,
                            (r.file, r.node.pointer.clone()),
                            (w.file, branch.pointer.clone()),
                            format!("the reader's union has no branch for the writer's `{tag}` (branch {i})"),
                        ));
                    }
                }
                out
            }
            (_, Shape::Union(writer_branches)) => {
                let mut out = Vec::new();
                for branch in *writer_branches {
                    out.extend(self.compat(
                        r,
                        At {
                            file: w.file,
                            node: branch,
                        },
                    ));
                }
                out
            }
            (Shape::Primitive(Long), Shape::Primitive(Int))
            | (Shape::Primitive(Float), Shape::Primitive(Int | Long))
            | (Shape::Primitive(Double), Shape::Primitive(Int | Long | Float))
            | (Shape::Primitive(Bytes), Shape::Primitive(String))
            | (Shape::Primitive(String), Shape::Primitive(Bytes)) => Vec::new(),
            (Shape::Union(reader_branches), _) => {
                for branch in *reader_branches {
                    if self
                        .compat(
                            At {
                                file: r.file,
                                node: branch,
                            },
                            w,
                        )
                        .is_empty()
                    {
                        return Vec::new();
                    }
                }
                let tag = ws.tag(self.universe);
                self.incompatible(
                    IncompatibilityKind::MissingUnionBranch,
                    (r.file, r.node.pointer.clone()),
                    (w.file, w.node.pointer.clone()),
                    format!("the reader's union has no branch that reads the writer's `{tag}`"),
                )
            }
            _ => self.mismatch(r, w, &rs, &ws),
        }
    }

    fn named(&mut self, r: NamedRef, w: NamedRef) -> Vec<Incompatibility> {
        match self.memo.get(&(r, w)) {
            Some(None) => return Vec::new(),
            Some(Some(done)) => return done.clone(),
            None => {}
        }
        self.memo.insert((r, w), None);
        let (rn, wn) = (self.universe.named(r), self.universe.named(w));
        let mut out = Vec::new();
        if rn.short != wn.short && !rn.aliases.contains(&wn.full) {
            out.extend(self.incompatible(
                IncompatibilityKind::NameMismatch,
                (r.file, format!("{}/name", rn.pointer)),
                (w.file, format!("{}/name", wn.pointer)),
                format!(
                    "the reader's `{}` does not match the writer's `{}` (nor by an alias)",
                    rn.full, wn.full
                ),
            ));
        }
        match (&rn.kind, &wn.kind) {
            (NamedKind::Fixed { size: a }, NamedKind::Fixed { size: b }) if a != b => {
                out.extend(self.incompatible(
                    IncompatibilityKind::FixedSizeMismatch,
                    (r.file, format!("{}/size", rn.pointer)),
                    (w.file, format!("{}/size", wn.pointer)),
                    format!(
                        "the reader's fixed `{}` has size {a}, the writer's {b}",
                        rn.full
                    ),
                ))
            }
            (
                NamedKind::Enum {
                    symbols: rs,
                    default,
                },
                NamedKind::Enum { symbols: ws, .. },
            ) => {
                let missing: Vec<&str> = ws
                    .iter()
                    .filter(|s| !rs.contains(s))
                    .map(String::as_str)
                    .collect();
                let has_default = default
                    .as_ref()
                    .is_some_and(|d| !d.is_empty() && rs.contains(d));
                if !missing.is_empty() && !has_default {
                    out.extend(self.incompatible(
                        IncompatibilityKind::MissingEnumSymbols,
                        (r.file, format!("{}/symbols", rn.pointer)),
                        (w.file, format!("{}/symbols", wn.pointer)),
                        format!(
                            "the reader's enum `{}` lacks the writer's symbols {} and has no `default`",
                            rn.full,
                            missing.join(", ")
                        ),
                    ));
                }
            }
            (NamedKind::Record(reader_fields), NamedKind::Record(writer_fields)) => {
                for rf in reader_fields {
                    let wf = writer_fields
                        .iter()
                        .find(|f| f.name == rf.name)
                        .or_else(|| {
                            rf.aliases
                                .iter()
                                .find_map(|a| writer_fields.iter().find(|f| &f.name == a))
                        });
                    match wf {
                        Some(wf) => out.extend(self.compat(
                            At {
                                file: r.file,
                                node: &rf.ty,
                            },
                            At {
                                file: w.file,
                                node: &wf.ty,
                            },
                        )),
                        None if rf.has_default => {}
                        None => {
                            // As Java does: a reader enum field with an enum default is
                            // checked against the writer record itself (and so mismatches).
                            let enum_default = matches!(
                                self.shape(At { file: r.file, node: &rf.ty }),
                                Shape::Named(e) if matches!(&self.universe.named(e).kind, NamedKind::Enum { default: Some(d), .. } if !d.is_empty())
                            );
                            if enum_default {
                                out.extend(self.incompatible(
                                    IncompatibilityKind::TypeMismatch,
                                    (r.file, rf.ty.pointer.clone()),
                                    (w.file, wn.pointer.clone()),
                                    format!(
                                        "the reader's field `{}` is not written by the writer's `{}`; its enum default does not stand in for a field default",
                                        rf.name, wn.full
                                    ),
                                ));
                            } else {
                                out.extend(self.incompatible(
                                    IncompatibilityKind::ReaderFieldMissingDefaultValue,
                                    (r.file, rf.pointer.clone()),
                                    (w.file, format!("{}/fields", wn.pointer)),
                                    format!(
                                        "the reader's field `{}` is not written by the writer's `{}` and has no default",
                                        rf.name, wn.full
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        self.memo.insert((r, w), Some(out.clone()));
        out
    }
}

/// Can a reader using schema `reader` read data written with schema `writer`? Both are the
/// JSON text of one self-contained Avro schema (any type at the top, not only records).
/// `Err(message)` when either text is not a valid schema; `Ok(vec![])` means compatible.
pub fn check_texts(reader: &str, writer: &str) -> Result<Vec<Incompatibility>, String> {
    let load = |text: &str| -> Result<Parsed, String> {
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| format!("invalid JSON: {e}"))?;
        let node =
            crate::yaml::load(text, crate::yaml::Limits::default()).map_err(|e| e.message)?;
        let parsed = parse(&node);
        if let Some(p) = parsed.problems.first() {
            return Err(format!("{} (at `{}`)", p.message, p.pointer));
        }
        if let Some((name, _)) = parsed.external.first() {
            return Err(format!("the type `{name}` is not defined"));
        }
        Ok(parsed)
    };
    let (r, w) = (load(reader)?, load(writer)?);
    let mut universe = Universe::default();
    let (ri, wi) = (universe.add(&r), universe.add(&w));
    Ok(Checker::new(&universe).check(ri, wi))
}

/// Record fields at the top of a schema file: what a pipeline's transform can read.
pub fn record_fields(root: &Node) -> Result<Vec<Field>, Vec<Problem>> {
    let parsed = parse(root);
    if !parsed.problems.is_empty() {
        return Err(parsed.problems);
    }
    match parsed.record_fields() {
        Some(fields) => Ok(fields.to_vec()),
        None => {
            let (node, at) = match root.get("type") {
                Some(t) => (t, "/type"),
                None => (root, ""),
            };
            Err(vec![Problem {
                pointer: at.to_string(),
                span: node.span,
                message: "a subject's schema is a record: `\"type\": \"record\"` at the top"
                    .to_string(),
                first: None,
            }])
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

    fn kinds(reader: &str, writer: &str) -> Vec<&'static str> {
        check_texts(reader, writer)
            .unwrap()
            .iter()
            .map(|i| i.kind.as_str())
            .collect()
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
        let same = r#"{"type":"record","name":"E","namespace":"a","fields":[{"name":"c","type":["null",{"type":"record","name":"C","fields":[]},"a.C"]}]}"#;
        assert!(fields(same).unwrap_err()[0].contains("`a.C` twice"));
    }

    #[test]
    fn defaults_must_fit_their_type() {
        let field = |ty: &str, default: &str| {
            fields(&format!(
                r#"{{"type":"record","name":"R","fields":[{{"name":"f","type":{ty},"default":{default}}}]}}"#
            ))
        };
        assert!(field(r#""int""#, "1").is_ok());
        assert!(field(r#""int""#, "1.5").unwrap_err()[0].contains("32-bit integer"));
        assert!(field(r#""int""#, "4294967296").is_err());
        assert!(field(r#"["null","string"]"#, "null").is_ok());
        assert!(field(r#"["string","null"]"#, "null").unwrap_err()[0].contains("first branch"));
        assert!(field(r#"{"type":"array","items":"long"}"#, "[1, 2]").is_ok());
        assert!(field(r#"{"type":"enum","name":"E","symbols":["A"]}"#, r#""B""#).is_err());
    }

    #[test]
    fn promotions_follow_avro() {
        assert!(kinds(r#""long""#, r#""int""#).is_empty());
        assert!(kinds(r#""double""#, r#""float""#).is_empty());
        assert!(kinds(r#""string""#, r#""bytes""#).is_empty());
        assert_eq!(kinds(r#""int""#, r#""long""#), ["TYPE_MISMATCH"]);
        assert_eq!(kinds(r#""float""#, r#""double""#), ["TYPE_MISMATCH"]);
    }

    #[test]
    fn records_report_every_incompatibility() {
        let old = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"},{"name":"c","type":"long"}]}"#;
        let new = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
        let found = check_texts(old, new).unwrap();
        let summary: Vec<_> = found
            .iter()
            .map(|i| (i.kind.as_str(), i.reader_pointer.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("TYPE_MISMATCH", "/fields/0/type"),
                ("TYPE_MISMATCH", "/fields/1/type"),
                ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/2")
            ]
        );
    }

    #[test]
    fn names_aliases_enums_fixed_unions() {
        let rec = |name: &str, extra: &str| {
            format!(r#"{{"type":"record","name":"{name}","namespace":"n"{extra},"fields":[]}}"#)
        };
        assert_eq!(kinds(&rec("New", ""), &rec("Old", "")), ["NAME_MISMATCH"]);
        assert!(kinds(&rec("New", r#","aliases":["Old"]"#), &rec("Old", "")).is_empty());
        let e = |symbols: &str, default: &str| {
            format!(r#"{{"type":"enum","name":"E","symbols":[{symbols}]{default}}}"#)
        };
        assert_eq!(
            kinds(&e(r#""A""#, ""), &e(r#""A","B""#, "")),
            ["MISSING_ENUM_SYMBOLS"]
        );
        assert!(kinds(&e(r#""A""#, r#","default":"A""#), &e(r#""A","B""#, "")).is_empty());
        let f = |size: u32| format!(r#"{{"type":"fixed","name":"F","size":{size}}}"#);
        assert_eq!(kinds(&f(16), &f(8)), ["FIXED_SIZE_MISMATCH"]);
        assert_eq!(
            kinds(r#"["null","int"]"#, r#"["null","string"]"#),
            ["MISSING_UNION_BRANCH"]
        );
        assert!(kinds(r#"["null","long"]"#, r#""int""#).is_empty());
        assert_eq!(kinds(r#""int""#, r#"["null","int"]"#), ["TYPE_MISMATCH"]);
    }

    #[test]
    fn recursive_types_terminate() {
        let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
        assert!(check_texts(list, list).unwrap().is_empty());
    }
}
