//! Differential test of paver's Avro compatibility checker against Apache Avro's own.
//!
//! Several hundred (reader, writer) schema pairs are generated deterministically the way
//! schemas really evolve (a random base schema, 1-3 random mutations, both orders), plus
//! fully random pairs, and every verdict of `paver_lint::avro::check_texts` must equal the
//! verdict of `avro.compatibility.ReaderWriterCompatibilityChecker` from the Python package
//! `avro` (a port of Java's `SchemaCompatibility`), run through `tests/avro_oracle.py`.
//! A second test does the same for the subject compatibility modes on chains of three
//! versions, including chains built so that a mode passes and its transitive form fails.
//!
//! The Python interpreter comes from `PAVER_PYTHON` (default: the venv of
//! `scripts/setup-python` when it exists, else `python3`); it must be able to
//! import `avro`: run `scripts/setup-python` and export `PAVER_PYTHON` to the path it prints.
//! `PAVER_ORACLE_DUMP=FILE` writes every generated pair with the oracle's verdict as JSON
//! lines, to replay a case by hand. `PAVER_ORACLE_SEED=N` generates another set (to hunt
//! for disagreements; the default set is fixed) and `PAVER_ORACLE_SCALE=K` K times as many.
//!
//! The generator keeps to schemas on which Java and Python agree: aliases of named types are
//! written fully qualified (Python compares them as written, Java qualifies them first), a
//! field alias never matches a writer field when the field's own name does too (Java throws
//! there), name references always resolve in the enclosing namespace or are written in full
//! (Java falls back to the null namespace, Python does not), and every default is valid for
//! its type (Java validates defaults, Python does not).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use paver_lint::avro::check_texts;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// A small seeded PRNG: xorshift64*.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        ((self.next() >> 11) % n as u64) as usize
    }
    /// True with probability pct %.
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The schema model: named types live in a table and are written inline where the JSON
// text first meets them and by name everywhere after.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prim {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

const PRIMS: [Prim; 8] = [
    Prim::Null,
    Prim::Boolean,
    Prim::Int,
    Prim::Long,
    Prim::Float,
    Prim::Double,
    Prim::Bytes,
    Prim::String,
];

impl Prim {
    fn name(self) -> &'static str {
        match self {
            Prim::Null => "null",
            Prim::Boolean => "boolean",
            Prim::Int => "int",
            Prim::Long => "long",
            Prim::Float => "float",
            Prim::Double => "double",
            Prim::Bytes => "bytes",
            Prim::String => "string",
        }
    }
    /// Logical types that may annotate this primitive.
    fn logical_types(self) -> &'static [&'static str] {
        match self {
            Prim::Int => &["date", "time-millis"],
            Prim::Long => &[
                "timestamp-millis",
                "timestamp-micros",
                "time-micros",
                "local-timestamp-millis",
            ],
            Prim::String => &["uuid"],
            Prim::Bytes => &["decimal"],
            _ => &[],
        }
    }
}

#[derive(Clone, Debug)]
enum Ty {
    /// A primitive, with a logical type or not.
    Prim(Prim, Option<&'static str>),
    Array(Box<Ty>),
    Map(Box<Ty>),
    Union(Vec<Ty>),
    /// A named type: index into `Schema::defs`.
    Named(usize),
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    ty: Ty,
    default: Option<Value>,
    aliases: Vec<String>,
}

#[derive(Clone, Debug)]
enum Body {
    Record(Vec<Field>),
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        size: usize,
        logical: Option<&'static str>,
    },
}

#[derive(Clone, Debug)]
struct Def {
    /// Short name, unique in the schema.
    name: String,
    /// Explicit namespace; None inherits the enclosing one.
    namespace: Option<String>,
    /// Full names.
    aliases: Vec<String>,
    body: Body,
}

impl Def {
    fn kind(&self) -> &'static str {
        match self.body {
            Body::Record(_) => "record",
            Body::Enum { .. } => "enum",
            Body::Fixed { .. } => "fixed",
        }
    }
}

#[derive(Clone, Debug)]
struct Schema {
    defs: Vec<Def>,
    root: Ty,
    /// Every named type has a namespace (else none has): a schema never mixes the null
    /// namespace with others, where Java and Python resolve names differently.
    namespaced: bool,
}

const DEFAULT_NS: &str = "dev.paver.events";
const NAMESPACES: &[&str] = &[
    "dev.paver.events",
    "dev.paver.orders",
    "com.acme.billing",
    "org.example.shared",
    "io.platform.v2",
];
const RECORD_NAMES: &[&str] = &[
    "Order", "User", "Payment", "Address", "LineItem", "Event", "Customer", "Shipment", "Invoice",
    "Session",
];
const ENUM_NAMES: &[&str] = &["Status", "Currency", "Kind", "Level", "Channel"];
const FIXED_NAMES: &[&str] = &["Md5", "Digest", "Hash", "Token"];
const FIELD_NAMES: &[&str] = &[
    "id",
    "name",
    "amount",
    "count",
    "createdAt",
    "email",
    "status",
    "price",
    "tags",
    "items",
    "address",
    "score",
    "active",
    "note",
    "payload",
    "version",
    "country",
    "quantity",
    "ratio",
    "hash",
];
const SYMBOLS: &[&str] = &[
    "ACTIVE", "INACTIVE", "PENDING", "DONE", "FAILED", "NEW", "USD", "EUR", "LOW", "HIGH",
];
const FIXED_SIZES: &[usize] = &[4, 8, 12, 16];

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn obj(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}: {}", quote(k), v))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn split_full(full: &str) -> (Option<&str>, &str) {
    match full.rfind('.') {
        Some(i) => (Some(&full[..i]), &full[i + 1..]),
        None => (None, full),
    }
}

/// What one schema's JSON text contains, for the coverage assertions.
#[derive(Default)]
struct Seen {
    features: BTreeSet<&'static str>,
}

struct Emitter<'a> {
    s: &'a Schema,
    /// Full name of each named type once written.
    full: Vec<Option<String>>,
    /// Named types being written (for recursion).
    open: Vec<usize>,
    seen: Seen,
}

impl Schema {
    /// The schema's JSON text, the full name of each named type written, and what it has.
    fn emit(&self) -> (String, Vec<Option<String>>, Seen) {
        let mut e = Emitter {
            s: self,
            full: vec![None; self.defs.len()],
            open: Vec::new(),
            seen: Seen::default(),
        };
        let text = e.ty(&self.root, None);
        if !matches!(&self.root, Ty::Named(i) if self.defs[*i].kind() == "record") {
            e.seen.features.insert("top-level non-record");
        }
        e.seen.features.insert(if self.namespaced {
            "namespaced"
        } else {
            "null namespace"
        });
        (text, e.full, e.seen)
    }

    fn text(&self) -> String {
        self.emit().0
    }

    /// Named types in the order the JSON text meets them.
    fn reachable(&self) -> Vec<usize> {
        fn walk(s: &Schema, ty: &Ty, out: &mut Vec<usize>) {
            match ty {
                Ty::Prim(..) => {}
                Ty::Array(t) | Ty::Map(t) => walk(s, t, out),
                Ty::Union(ts) => ts.iter().for_each(|t| walk(s, t, out)),
                Ty::Named(i) => {
                    if out.contains(i) {
                        return;
                    }
                    out.push(*i);
                    if let Body::Record(fields) = &s.defs[*i].body {
                        for f in fields {
                            walk(s, &f.ty, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &self.root, &mut out);
        out
    }

    fn reachable_of(&self, kind: &str) -> Vec<usize> {
        self.reachable()
            .into_iter()
            .filter(|&i| self.defs[i].kind() == kind)
            .collect()
    }

    fn has_name(&self, name: &str) -> bool {
        self.defs.iter().any(|d| d.name == name)
    }

    fn fields_mut(&mut self, def: usize) -> &mut Vec<Field> {
        match &mut self.defs[def].body {
            Body::Record(fields) => fields,
            _ => panic!("not a record"),
        }
    }
}

impl Emitter<'_> {
    fn ty(&mut self, ty: &Ty, enclosing: Option<&str>) -> String {
        match ty {
            Ty::Prim(p, None) => quote(p.name()),
            Ty::Prim(p, Some(lt)) => {
                self.seen.features.insert("logical type");
                let mut m = vec![("type", quote(p.name())), ("logicalType", quote(lt))];
                if *lt == "decimal" {
                    m.push(("precision", "10".into()));
                    m.push(("scale", "2".into()));
                }
                obj(&m)
            }
            Ty::Array(t) => {
                if matches!(**t, Ty::Named(i) if self.s.defs[i].kind() == "record") {
                    self.seen.features.insert("array of records");
                }
                self.seen.features.insert("array");
                let items = self.ty(t, enclosing);
                obj(&[("type", quote("array")), ("items", items)])
            }
            Ty::Map(t) => {
                self.seen.features.insert("map");
                let values = self.ty(t, enclosing);
                obj(&[("type", quote("map")), ("values", values)])
            }
            Ty::Union(ts) => {
                self.seen.features.insert("union");
                let parts: Vec<String> = ts.iter().map(|t| self.ty(t, enclosing)).collect();
                format!("[{}]", parts.join(", "))
            }
            Ty::Named(i) => self.named(*i, enclosing),
        }
    }

    fn named(&mut self, i: usize, enclosing: Option<&str>) -> String {
        let s = self.s;
        let d = &s.defs[i];
        if let Some(full) = self.full[i].clone() {
            self.seen.features.insert("named type used twice");
            if self.open.contains(&i) {
                self.seen.features.insert("recursive type");
            }
            let (ns, short) = split_full(&full);
            // Both spellings of a reference: the short name where it resolves to the same
            // full name, the full name elsewhere.
            return if ns == enclosing && i.is_multiple_of(2) {
                quote(short)
            } else {
                quote(&full)
            };
        }
        let explicit_ns = d
            .namespace
            .clone()
            .or_else(|| (s.namespaced && enclosing.is_none()).then(|| DEFAULT_NS.to_string()));
        let ns = explicit_ns.clone().or(enclosing.map(str::to_string));
        let full = match &ns {
            Some(ns) => format!("{ns}.{}", d.name),
            None => d.name.clone(),
        };
        self.full[i] = Some(full);
        let mut m = vec![("type", quote(d.kind())), ("name", quote(&d.name))];
        if let Some(ns) = &explicit_ns {
            m.push(("namespace", quote(ns)));
            if enclosing.is_some() && enclosing != Some(ns.as_str()) {
                self.seen.features.insert("nested namespace");
            }
        }
        if !d.aliases.is_empty() {
            self.seen.features.insert("type aliases");
            let a: Vec<String> = d.aliases.iter().map(|a| quote(a)).collect();
            m.push(("aliases", format!("[{}]", a.join(", "))));
        }
        match &d.body {
            Body::Record(fields) => {
                if self.open.is_empty() && !matches!(s.root, Ty::Named(r) if r == i) {
                    self.seen.features.insert("record below a non-record");
                }
                if !self.open.is_empty() {
                    self.seen.features.insert("nested record");
                }
                self.open.push(i);
                let mut fs = Vec::new();
                for f in fields {
                    let t = self.ty(&f.ty, ns.as_deref());
                    let mut fm = vec![("name", quote(&f.name)), ("type", t)];
                    if let Some(v) = &f.default {
                        self.seen.features.insert("field default");
                        if v.is_null() {
                            self.seen
                                .features
                                .insert("nullable field defaulting to null");
                        }
                        fm.push(("default", v.to_string()));
                    }
                    if !f.aliases.is_empty() {
                        self.seen.features.insert("field aliases");
                        let a: Vec<String> = f.aliases.iter().map(|a| quote(a)).collect();
                        fm.push(("aliases", format!("[{}]", a.join(", "))));
                    }
                    fs.push(obj(&fm));
                }
                self.open.pop();
                m.push(("fields", format!("[{}]", fs.join(", "))));
            }
            Body::Enum { symbols, default } => {
                self.seen.features.insert("enum");
                let syms: Vec<String> = symbols.iter().map(|x| quote(x)).collect();
                m.push(("symbols", format!("[{}]", syms.join(", "))));
                if let Some(dflt) = default {
                    self.seen.features.insert("enum default");
                    m.push(("default", quote(dflt)));
                }
            }
            Body::Fixed { size, logical } => {
                self.seen.features.insert("fixed");
                m.push(("size", size.to_string()));
                match *logical {
                    Some("decimal") => {
                        self.seen.features.insert("logical type");
                        m.push(("logicalType", quote("decimal")));
                        m.push(("precision", "9".into()));
                        m.push(("scale", "3".into()));
                    }
                    Some(lt) => {
                        self.seen.features.insert("logical type");
                        m.push(("logicalType", quote(lt)));
                    }
                    None => {}
                }
            }
        }
        obj(&m)
    }
}

// ---------------------------------------------------------------------------------------
// Defaults: always valid for their type (the first branch of a union).

fn valid_default(s: &Schema, ty: &Ty, v: &Value) -> bool {
    match ty {
        Ty::Prim(p, _) => match p {
            Prim::Null => v.is_null(),
            Prim::Boolean => v.is_boolean(),
            Prim::Int | Prim::Long => v.is_i64() || v.is_u64(),
            Prim::Float | Prim::Double => v.is_number(),
            Prim::Bytes | Prim::String => v.is_string(),
        },
        Ty::Array(t) => v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| valid_default(s, t, x))),
        Ty::Map(t) => v
            .as_object()
            .is_some_and(|o| o.values().all(|x| valid_default(s, t, x))),
        Ty::Union(ts) => ts.first().is_some_and(|t| valid_default(s, t, v)),
        Ty::Named(i) => match &s.defs[*i].body {
            Body::Record(fields) => v.as_object().is_some_and(|o| {
                o.len() == fields.len()
                    && fields
                        .iter()
                        .all(|f| o.get(&f.name).is_some_and(|x| valid_default(s, &f.ty, x)))
            }),
            Body::Enum { symbols, .. } => {
                v.as_str().is_some_and(|x| symbols.iter().any(|y| y == x))
            }
            Body::Fixed { size, .. } => v.as_str().is_some_and(|x| x.chars().count() == *size),
        },
    }
}

fn make_default(s: &Schema, ty: &Ty, depth: usize) -> Option<Value> {
    if depth > 6 {
        return None;
    }
    Some(match ty {
        Ty::Prim(p, _) => match p {
            Prim::Null => Value::Null,
            Prim::Boolean => Value::Bool(false),
            Prim::Int | Prim::Long => Value::from(1),
            Prim::Float | Prim::Double => Value::from(0.5),
            Prim::Bytes => Value::from(""),
            Prim::String => Value::from("n/a"),
        },
        Ty::Array(_) => Value::Array(vec![]),
        Ty::Map(_) => Value::Object(Default::default()),
        Ty::Union(ts) => return make_default(s, ts.first()?, depth + 1),
        Ty::Named(i) => match &s.defs[*i].body {
            Body::Record(fields) => {
                let mut o = serde_json::Map::new();
                for f in fields {
                    o.insert(f.name.clone(), make_default(s, &f.ty, depth + 1)?);
                }
                Value::Object(o)
            }
            Body::Enum { symbols, .. } => Value::from(symbols.first()?.as_str()),
            Body::Fixed { size, .. } => Value::from("a".repeat(*size)),
        },
    })
}

/// Make the schema valid again after a mutation: no nested or duplicate union branches, enum
/// defaults among the symbols, field defaults valid for their (possibly new) types.
fn repair(s: &mut Schema) {
    fn union_key(s: &Schema, t: &Ty) -> String {
        match t {
            Ty::Prim(p, _) => p.name().to_string(),
            Ty::Array(_) => "array".into(),
            Ty::Map(_) => "map".into(),
            Ty::Union(_) => "union".into(),
            Ty::Named(i) => format!("named:{}", s.defs[*i].name),
        }
    }
    fn fix_ty(s: &Schema, ty: &mut Ty) {
        match ty {
            Ty::Prim(..) | Ty::Named(_) => {}
            Ty::Array(t) | Ty::Map(t) => fix_ty(s, t),
            Ty::Union(ts) => {
                let mut flat = Vec::new();
                for t in ts.drain(..) {
                    match t {
                        Ty::Union(inner) => flat.extend(inner),
                        t => flat.push(t),
                    }
                }
                let mut keys = BTreeSet::new();
                flat.retain(|t| keys.insert(union_key(s, t)));
                for t in &mut flat {
                    fix_ty(s, t);
                }
                if flat.is_empty() {
                    flat.push(Ty::Prim(Prim::Null, None));
                }
                *ts = flat;
            }
        }
    }
    let snapshot = s.clone();
    fix_ty(&snapshot, &mut s.root);
    for d in 0..s.defs.len() {
        if let Body::Record(fields) = &mut s.defs[d].body {
            for f in fields.iter_mut() {
                fix_ty(&snapshot, &mut f.ty);
            }
        }
        if let Body::Enum { symbols, default } = &mut s.defs[d].body {
            if default.as_ref().is_some_and(|x| !symbols.contains(x)) {
                *default = symbols.first().cloned();
            }
        }
    }
    let snapshot = s.clone();
    for d in 0..s.defs.len() {
        if let Body::Record(fields) = &mut s.defs[d].body {
            for f in fields.iter_mut() {
                if let Some(v) = &f.default {
                    if !valid_default(&snapshot, &f.ty, v) {
                        f.default = make_default(&snapshot, &f.ty, 0);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Random schemas.

struct Gen {
    rng: Rng,
    /// For fresh names: every name a mutation introduces is new across the whole run, so a
    /// field alias never matches a writer field that the field's own name also matches.
    counter: usize,
    mutations: BTreeMap<&'static str, usize>,
    /// Records being generated: not referred to from inside (no infinite types).
    open: Vec<usize>,
}

impl Gen {
    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}{}", self.counter)
    }

    fn def_name(&mut self, s: &Schema, pool: &[&str]) -> String {
        let stem = *self.rng.pick(pool);
        if s.has_name(stem) {
            self.fresh(stem)
        } else {
            stem.to_string()
        }
    }

    fn namespace(&mut self, s: &Schema, top: bool) -> Option<String> {
        if !s.namespaced {
            return None;
        }
        if top || self.rng.chance(25) {
            Some(self.rng.pick(NAMESPACES).to_string())
        } else {
            None
        }
    }

    fn base_schema(&mut self) -> Schema {
        let mut s = Schema {
            defs: Vec::new(),
            root: Ty::Prim(Prim::Null, None),
            namespaced: self.rng.chance(70),
        };
        let roll = self.rng.below(100);
        s.root = if roll < 72 {
            Ty::Named(self.record(&mut s, 0, true))
        } else if roll < 76 {
            Ty::Named(self.recursive_record(&mut s))
        } else if roll < 80 {
            Ty::Named(self.enumeration(&mut s, true))
        } else if roll < 83 {
            Ty::Named(self.fixed(&mut s, true))
        } else if roll < 88 {
            let items = if self.rng.chance(60) {
                Ty::Named(self.record(&mut s, 1, true))
            } else {
                self.ty(&mut s, 2)
            };
            Ty::Array(Box::new(items))
        } else if roll < 92 {
            let values = self.ty(&mut s, 1);
            Ty::Map(Box::new(values))
        } else if roll < 96 {
            let mut branches = vec![Ty::Prim(Prim::Null, None)];
            if self.rng.chance(60) {
                branches.push(Ty::Named(self.record(&mut s, 1, true)));
            }
            branches.push(self.prim());
            Ty::Union(branches)
        } else {
            self.prim()
        };
        repair(&mut s);
        s
    }

    fn prim(&mut self) -> Ty {
        let p = *self.rng.pick(&PRIMS[1..]);
        let lts = p.logical_types();
        if !lts.is_empty() && self.rng.chance(25) {
            Ty::Prim(p, Some(*self.rng.pick(lts)))
        } else {
            Ty::Prim(p, None)
        }
    }

    fn record(&mut self, s: &mut Schema, depth: usize, top: bool) -> usize {
        let name = self.def_name(s, RECORD_NAMES);
        let namespace = self.namespace(s, top);
        s.defs.push(Def {
            name,
            namespace,
            aliases: vec![],
            body: Body::Record(vec![]),
        });
        let me = s.defs.len() - 1;
        self.open.push(me);
        let n = if depth == 0 {
            2 + self.rng.below(5)
        } else {
            1 + self.rng.below(3)
        };
        let mut names: Vec<&str> = FIELD_NAMES.to_vec();
        self.rng.shuffle(&mut names);
        for name in names.into_iter().take(n) {
            let f = self.field(s, name.to_string(), depth + 1);
            s.fields_mut(me).push(f);
        }
        self.open.pop();
        me
    }

    /// A linked list / tree: a record that refers to itself.
    fn recursive_record(&mut self, s: &mut Schema) -> usize {
        let name = self.def_name(s, &["Node", "TreeNode", "Link"]);
        let namespace = self.namespace(s, true);
        s.defs.push(Def {
            name,
            namespace,
            aliases: vec![],
            body: Body::Record(vec![]),
        });
        let me = s.defs.len() - 1;
        let value = self.prim();
        let mut fields = vec![
            Field {
                name: "value".into(),
                ty: value,
                default: None,
                aliases: vec![],
            },
            Field {
                name: "next".into(),
                ty: Ty::Union(vec![Ty::Prim(Prim::Null, None), Ty::Named(me)]),
                default: Some(Value::Null),
                aliases: vec![],
            },
        ];
        if self.rng.chance(50) {
            fields.push(Field {
                name: "children".into(),
                ty: Ty::Array(Box::new(Ty::Named(me))),
                default: Some(Value::Array(vec![])),
                aliases: vec![],
            });
        }
        *s.fields_mut(me) = fields;
        me
    }

    fn enumeration(&mut self, s: &mut Schema, top: bool) -> usize {
        let name = self.def_name(s, ENUM_NAMES);
        let namespace = self.namespace(s, top);
        let mut syms: Vec<String> = SYMBOLS.iter().map(|x| x.to_string()).collect();
        self.rng.shuffle(&mut syms);
        syms.truncate(2 + self.rng.below(4));
        let default = self
            .rng
            .chance(30)
            .then(|| syms[self.rng.below(syms.len())].clone());
        s.defs.push(Def {
            name,
            namespace,
            aliases: vec![],
            body: Body::Enum {
                symbols: syms,
                default,
            },
        });
        s.defs.len() - 1
    }

    fn fixed(&mut self, s: &mut Schema, top: bool) -> usize {
        let name = self.def_name(s, FIXED_NAMES);
        let namespace = self.namespace(s, top);
        let size = *self.rng.pick(FIXED_SIZES);
        let logical = match self.rng.below(10) {
            0 | 1 => Some("decimal"),
            2 if size == 12 => Some("duration"),
            _ => None,
        };
        s.defs.push(Def {
            name,
            namespace,
            aliases: vec![],
            body: Body::Fixed { size, logical },
        });
        s.defs.len() - 1
    }

    fn field(&mut self, s: &mut Schema, name: String, depth: usize) -> Field {
        let ty = self.ty(s, depth);
        let nullable_null_first =
            matches!(&ty, Ty::Union(ts) if matches!(ts.first(), Some(Ty::Prim(Prim::Null, _))));
        let default = if nullable_null_first && self.rng.chance(75) {
            Some(Value::Null)
        } else if self.rng.chance(35) {
            make_default(s, &ty, 0)
        } else {
            None
        };
        Field {
            name,
            ty,
            default,
            aliases: vec![],
        }
    }

    /// A random type; named types it introduces are added to the schema.
    fn ty(&mut self, s: &mut Schema, depth: usize) -> Ty {
        let roll = self.rng.below(100);
        let deep = depth >= 3;
        if roll < 38 || (deep && roll < 70) {
            return self.prim();
        }
        if roll < 56 {
            let inner = if self.rng.chance(75) {
                self.prim()
            } else {
                self.non_union(s, depth + 1)
            };
            return if self.rng.chance(85) {
                Ty::Union(vec![Ty::Prim(Prim::Null, None), inner])
            } else {
                Ty::Union(vec![inner, Ty::Prim(Prim::Null, None)])
            };
        }
        if roll < 62 {
            let mut branches = vec![Ty::Prim(Prim::Null, None), self.prim(), self.prim()];
            if self.rng.chance(40) && !deep {
                branches.push(Ty::Named(self.record(s, depth, false)));
            }
            return Ty::Union(branches);
        }
        self.non_union(s, depth)
    }

    fn non_union(&mut self, s: &mut Schema, depth: usize) -> Ty {
        let deep = depth >= 3;
        let existing: Vec<usize> = (0..s.defs.len())
            .filter(|i| !self.open.contains(i))
            .collect();
        match self.rng.below(100) {
            0..=14 if !deep => Ty::Array(Box::new(self.ty(s, depth + 1))),
            15..=24 if !deep => Ty::Map(Box::new(self.ty(s, depth + 1))),
            25..=44 if !deep => Ty::Named(self.record(s, depth, false)),
            45..=62 => Ty::Named(self.enumeration(s, false)),
            63..=72 => Ty::Named(self.fixed(s, false)),
            73..=89 if !existing.is_empty() => Ty::Named(*self.rng.pick(&existing)),
            _ => self.prim(),
        }
    }
}

impl Schema {
    /// Does every record reachable have a finite value? A record that must contain itself
    /// (not through a union branch, an array or a map) is a valid schema for Avro but no
    /// one writes it; the generator keeps away from it.
    fn all_finite(&self) -> bool {
        fn finite(ty: &Ty, known: &[bool]) -> bool {
            match ty {
                Ty::Prim(..) | Ty::Array(_) | Ty::Map(_) => true,
                Ty::Union(ts) => ts.iter().any(|t| finite(t, known)),
                Ty::Named(i) => known[*i],
            }
        }
        let mut known: Vec<bool> = self
            .defs
            .iter()
            .map(|d| !matches!(d.body, Body::Record(_)))
            .collect();
        loop {
            let mut changed = false;
            for (i, d) in self.defs.iter().enumerate() {
                if let Body::Record(fields) = &d.body {
                    if !known[i] && fields.iter().all(|f| finite(&f.ty, &known)) {
                        known[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        self.reachable().iter().all(|&i| known[i]) && finite(&self.root, &known)
    }
}

// ---------------------------------------------------------------------------------------
// Mutations: how a schema evolves from one version to the next.

/// Where a type sits: the root, or a record field's type, then a path through arrays,
/// maps and union branches.
#[derive(Clone, Debug)]
struct Slot {
    field: Option<(usize, usize)>,
    path: Vec<usize>,
}

fn slots(s: &Schema) -> Vec<Slot> {
    fn walk(ty: &Ty, field: Option<(usize, usize)>, path: &mut Vec<usize>, out: &mut Vec<Slot>) {
        out.push(Slot {
            field,
            path: path.clone(),
        });
        match ty {
            Ty::Array(t) | Ty::Map(t) => {
                path.push(0);
                walk(t, field, path, out);
                path.pop();
            }
            Ty::Union(ts) => {
                for (k, t) in ts.iter().enumerate() {
                    path.push(k);
                    walk(t, field, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&s.root, None, &mut Vec::new(), &mut out);
    for d in s.reachable() {
        if let Body::Record(fields) = &s.defs[d].body {
            for (k, f) in fields.iter().enumerate() {
                walk(&f.ty, Some((d, k)), &mut Vec::new(), &mut out);
            }
        }
    }
    out
}

fn slot_mut<'a>(s: &'a mut Schema, slot: &Slot) -> &'a mut Ty {
    let mut ty = match slot.field {
        None => &mut s.root,
        Some((d, k)) => &mut s.fields_mut(d)[k].ty,
    };
    for &k in &slot.path {
        ty = match ty {
            Ty::Array(t) | Ty::Map(t) => t,
            Ty::Union(ts) => &mut ts[k],
            _ => panic!("bad slot path"),
        };
    }
    ty
}

fn slot_ty(s: &Schema, slot: &Slot) -> Ty {
    slot_mut(&mut s.clone(), slot).clone()
}

const MUTATIONS: &[&str] = &[
    "add field with default",
    "add field without default",
    "remove field",
    "rename field",
    "toggle field default",
    "promote primitive",
    "change primitive",
    "replace type",
    "make nullable",
    "drop null from union",
    "add union branch",
    "remove union branch",
    "wrap in array or map",
    "unwrap array or map",
    "add enum symbol",
    "remove enum symbol",
    "toggle enum default",
    "resize fixed",
    "rename named type",
    "change namespace",
    "toggle logical type",
    "swap named type",
    "reorder fields",
    "reorder enum symbols",
];

impl Gen {
    /// Apply one random mutation that changes something; returns its name.
    fn mutate(&mut self, s: &mut Schema) -> &'static str {
        // Mutations of enums and fixed types weigh more where the schema has some, so that
        // each kind of change is made often enough.
        let has_enum = !s.reachable_of("enum").is_empty();
        let has_fixed = !s.reachable_of("fixed").is_empty();
        let weighted: Vec<&'static str> = MUTATIONS
            .iter()
            .flat_map(|&m| {
                let w = match m {
                    "add enum symbol" | "remove enum symbol" | "toggle enum default"
                        if has_enum =>
                    {
                        3
                    }
                    "resize fixed" if has_fixed => 5,
                    "rename named type" | "promote primitive" | "toggle logical type" => 2,
                    _ => 1,
                };
                std::iter::repeat_n(m, w)
            })
            .collect();
        for _ in 0..200 {
            let m = *self.rng.pick(&weighted);
            let before = s.text();
            let mut t = s.clone();
            if self.apply(&mut t, m) {
                repair(&mut t);
                if t.text() != before && t.all_finite() {
                    *s = t;
                    *self.mutations.entry(m).or_default() += 1;
                    return m;
                }
            }
        }
        panic!("no mutation applies to {}", s.text());
    }

    fn apply(&mut self, s: &mut Schema, m: &str) -> bool {
        let records: Vec<usize> = s.reachable_of("record");
        let enums = s.reachable_of("enum");
        let fixeds = s.reachable_of("fixed");
        let all_slots = slots(s);
        match m {
            "add field with default" | "add field without default" => {
                let Some(&d) = self.rng_pick_opt(&records) else {
                    return false;
                };
                let name = self.fresh("f");
                let ty = self.ty(s, 2);
                let default = if m == "add field with default" {
                    make_default(s, &ty, 0)
                } else {
                    None
                };
                let fields = s.fields_mut(d);
                let at = self.rng.below(fields.len() + 1);
                fields.insert(
                    at,
                    Field {
                        name,
                        ty,
                        default,
                        aliases: vec![],
                    },
                );
                true
            }
            "remove field" => {
                let candidates: Vec<usize> = records
                    .iter()
                    .copied()
                    .filter(|&d| s.fields_mut(d).len() >= 2)
                    .collect();
                let Some(&d) = self.rng_pick_opt(&candidates) else {
                    return false;
                };
                let n = s.fields_mut(d).len();
                let k = self.rng.below(n);
                s.fields_mut(d).remove(k);
                true
            }
            "rename field" => {
                let Some(&d) = self.rng_pick_opt(&records) else {
                    return false;
                };
                let n = s.fields_mut(d).len();
                if n == 0 {
                    return false;
                }
                let k = self.rng.below(n);
                let new = self.fresh("renamed");
                let with_alias = self.rng.chance(65);
                let f = &mut s.fields_mut(d)[k];
                let old = std::mem::replace(&mut f.name, new);
                if with_alias {
                    f.aliases.push(old);
                }
                true
            }
            "toggle field default" => {
                let Some(&d) = self.rng_pick_opt(&records) else {
                    return false;
                };
                let n = s.fields_mut(d).len();
                if n == 0 {
                    return false;
                }
                let k = self.rng.below(n);
                let ty = s.fields_mut(d)[k].ty.clone();
                let new = if s.fields_mut(d)[k].default.is_some() {
                    None
                } else {
                    make_default(s, &ty, 0)
                };
                s.fields_mut(d)[k].default = new;
                true
            }
            "promote primitive" | "change primitive" | "toggle logical type" => {
                let prims: Vec<&Slot> = all_slots
                    .iter()
                    .filter(|sl| matches!(slot_ty(s, sl), Ty::Prim(..)))
                    .collect();
                let Some(&sl) = self.rng_pick_opt(&prims) else {
                    return false;
                };
                let Ty::Prim(p, lt) = slot_ty(s, sl) else {
                    unreachable!()
                };
                let new = match m {
                    "promote primitive" => {
                        let to: &[Prim] = match p {
                            Prim::Int => &[Prim::Long, Prim::Float, Prim::Double],
                            Prim::Long => &[Prim::Float, Prim::Double],
                            Prim::Float => &[Prim::Double],
                            Prim::String => &[Prim::Bytes],
                            Prim::Bytes => &[Prim::String],
                            _ => return false,
                        };
                        let q = *self.rng.pick(to);
                        // Keep the logical type where it still fits (ignored by the verdict).
                        let lt = lt.filter(|l| q.logical_types().contains(l));
                        Ty::Prim(q, lt)
                    }
                    "change primitive" => {
                        let q = *self.rng.pick(&PRIMS);
                        if q == p {
                            return false;
                        }
                        Ty::Prim(q, None)
                    }
                    _ => {
                        let lts = p.logical_types();
                        if lt.is_some() {
                            Ty::Prim(p, None)
                        } else if lts.is_empty() {
                            return false;
                        } else {
                            Ty::Prim(p, Some(*self.rng.pick(lts)))
                        }
                    }
                };
                *slot_mut(s, sl) = new;
                true
            }
            "replace type" => {
                let sl = self.rng.pick(&all_slots).clone();
                let new = self.ty(s, 2);
                *slot_mut(s, &sl) = new;
                true
            }
            "make nullable" => {
                let cands: Vec<&Slot> = all_slots
                    .iter()
                    .filter(|sl| !matches!(slot_ty(s, sl), Ty::Union(_) | Ty::Prim(Prim::Null, _)))
                    .collect();
                let Some(&sl) = self.rng_pick_opt(&cands) else {
                    return false;
                };
                let t = slot_ty(s, sl);
                let null_first = self.rng.chance(80);
                *slot_mut(s, sl) = if null_first {
                    Ty::Union(vec![Ty::Prim(Prim::Null, None), t])
                } else {
                    Ty::Union(vec![t, Ty::Prim(Prim::Null, None)])
                };
                if let (Some((d, k)), true) = (sl.field, sl.path.is_empty()) {
                    let f = &mut s.fields_mut(d)[k];
                    if null_first && self.rng.chance(70) {
                        f.default = Some(Value::Null);
                    }
                }
                true
            }
            "drop null from union" | "add union branch" | "remove union branch" => {
                let unions: Vec<&Slot> = all_slots
                    .iter()
                    .filter(|sl| matches!(slot_ty(s, sl), Ty::Union(_)))
                    .collect();
                let Some(&sl) = self.rng_pick_opt(&unions) else {
                    return false;
                };
                let Ty::Union(mut ts) = slot_ty(s, sl) else {
                    unreachable!()
                };
                match m {
                    "drop null from union" => {
                        let n = ts.len();
                        ts.retain(|t| !matches!(t, Ty::Prim(Prim::Null, _)));
                        if ts.len() == n || ts.is_empty() {
                            return false;
                        }
                    }
                    "add union branch" => {
                        let t = if self.rng.chance(70) {
                            self.prim()
                        } else {
                            self.non_union(s, 2)
                        };
                        let at = self.rng.below(ts.len() + 1);
                        ts.insert(at, t);
                    }
                    _ => {
                        if ts.len() < 2 {
                            return false;
                        }
                        let k = self.rng.below(ts.len());
                        ts.remove(k);
                    }
                }
                *slot_mut(s, sl) = if ts.len() == 1 && self.rng.chance(50) {
                    ts.pop().unwrap()
                } else {
                    Ty::Union(ts)
                };
                true
            }
            "wrap in array or map" => {
                let sl = self.rng.pick(&all_slots).clone();
                let t = slot_ty(s, &sl);
                *slot_mut(s, &sl) = if self.rng.chance(60) {
                    Ty::Array(Box::new(t))
                } else {
                    Ty::Map(Box::new(t))
                };
                true
            }
            "unwrap array or map" => {
                let cands: Vec<&Slot> = all_slots
                    .iter()
                    .filter(|sl| matches!(slot_ty(s, sl), Ty::Array(_) | Ty::Map(_)))
                    .collect();
                let Some(&sl) = self.rng_pick_opt(&cands) else {
                    return false;
                };
                let (Ty::Array(t) | Ty::Map(t)) = slot_ty(s, sl) else {
                    unreachable!()
                };
                *slot_mut(s, sl) = *t;
                true
            }
            "add enum symbol"
            | "remove enum symbol"
            | "toggle enum default"
            | "reorder enum symbols" => {
                let Some(&d) = self.rng_pick_opt(&enums) else {
                    return false;
                };
                let fresh = self.fresh("SYM");
                let Body::Enum { symbols, default } = &mut s.defs[d].body else {
                    unreachable!()
                };
                match m {
                    "add enum symbol" => {
                        let at = self.rng.below(symbols.len() + 1);
                        symbols.insert(at, fresh);
                    }
                    "remove enum symbol" => {
                        if symbols.len() < 2 {
                            return false;
                        }
                        let k = self.rng.below(symbols.len());
                        let gone = symbols.remove(k);
                        if default.as_ref() == Some(&gone) {
                            *default = Some(symbols[0].clone());
                        }
                    }
                    "toggle enum default" => {
                        *default = match default {
                            Some(_) => None,
                            None => Some(symbols[self.rng.below(symbols.len())].clone()),
                        };
                    }
                    _ => {
                        if symbols.len() < 2 {
                            return false;
                        }
                        self.rng.shuffle(symbols);
                    }
                }
                true
            }
            "resize fixed" => {
                let Some(&d) = self.rng_pick_opt(&fixeds) else {
                    return false;
                };
                let new = *self.rng.pick(FIXED_SIZES);
                let Body::Fixed { size, logical } = &mut s.defs[d].body else {
                    unreachable!()
                };
                if *size == new {
                    return false;
                }
                *size = new;
                if *logical == Some("duration") && new != 12 {
                    *logical = None;
                }
                true
            }
            "rename named type" => {
                let all = s.reachable();
                let Some(&d) = self.rng_pick_opt(&all) else {
                    return false;
                };
                let (_, full, _) = s.emit();
                let old_full = full[d].clone().expect("reachable types are written");
                let stem = s.defs[d]
                    .name
                    .trim_end_matches(|c: char| c.is_ascii_digit())
                    .to_string();
                let new = self.fresh(&stem);
                let alias = match self.rng.below(10) {
                    0..=5 => Some(old_full),
                    // An alias naming the old short name in another namespace: no match.
                    6 if s.namespaced => {
                        let (ns, short) = split_full(&old_full);
                        let other = NAMESPACES.iter().find(|n| Some(**n) != ns).unwrap();
                        Some(format!("{other}.{short}"))
                    }
                    _ => None,
                };
                let def = &mut s.defs[d];
                def.name = new;
                if let Some(a) = alias {
                    def.aliases.push(a);
                }
                true
            }
            "change namespace" => {
                if !s.namespaced {
                    return false;
                }
                let all = s.reachable();
                let Some(&d) = self.rng_pick_opt(&all) else {
                    return false;
                };
                let ns = self.rng.pick(NAMESPACES).to_string();
                let def = &mut s.defs[d];
                def.namespace = if def.namespace.as_deref() == Some(ns.as_str()) {
                    None
                } else {
                    Some(ns)
                };
                true
            }
            "swap named type" => {
                let named: Vec<&Slot> = all_slots
                    .iter()
                    .filter(|sl| matches!(slot_ty(s, sl), Ty::Named(_)))
                    .collect();
                let Some(&sl) = self.rng_pick_opt(&named) else {
                    return false;
                };
                let Ty::Named(i) = slot_ty(s, sl) else {
                    unreachable!()
                };
                let kind = s.defs[i].kind();
                let mut others: Vec<usize> = (0..s.defs.len())
                    .filter(|&j| j != i && s.defs[j].kind() == kind)
                    .collect();
                if others.is_empty() || self.rng.chance(40) {
                    // A copy of the same type under another name.
                    let mut copy = s.defs[i].clone();
                    copy.name =
                        self.fresh(copy.name.trim_end_matches(|c: char| c.is_ascii_digit()));
                    copy.aliases.clear();
                    s.defs.push(copy);
                    others = vec![s.defs.len() - 1];
                }
                let j = *self.rng.pick(&others);
                *slot_mut(s, sl) = Ty::Named(j);
                true
            }
            "reorder fields" => {
                let Some(&d) = self.rng_pick_opt(&records) else {
                    return false;
                };
                let mut fields = s.fields_mut(d).clone();
                if fields.len() < 2 {
                    return false;
                }
                self.rng.shuffle(&mut fields);
                *s.fields_mut(d) = fields;
                true
            }
            other => panic!("unknown mutation {other}"),
        }
    }

    fn rng_pick_opt<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            Some(self.rng.pick(xs))
        }
    }
}

/// The PRNG seed: fixed unless PAVER_ORACLE_SEED is set.
fn seed(default: u64) -> u64 {
    match std::env::var("PAVER_ORACLE_SEED") {
        Ok(s) if !s.is_empty() => s
            .parse::<u64>()
            .expect("PAVER_ORACLE_SEED is a number")
            .wrapping_add(default),
        _ => default,
    }
}

fn scale() -> usize {
    std::env::var("PAVER_ORACLE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

// ---------------------------------------------------------------------------------------
// The oracle.

#[derive(Clone, Debug)]
enum Verdict {
    Compatible(bool, Vec<String>),
    Error(String),
}

/// `PAVER_PYTHON`, else the venv `scripts/setup-python` makes by default, else `python3`.
fn python() -> String {
    if let Some(p) = std::env::var("PAVER_PYTHON").ok().filter(|p| !p.is_empty()) {
        return p;
    }
    let venv = std::env::var("PAVER_PYTHON_VENV")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/paver/venv")));
    match venv.map(|v| v.join("bin/python")) {
        Ok(p) if p.exists() => p.to_string_lossy().into_owned(),
        _ => "python3".into(),
    }
}

fn setup_hint() -> String {
    "run `scripts/setup-python` and `export PAVER_PYTHON=\"$(scripts/setup-python | tail -n1)\"` \
     (it installs avro==1.12.1 into a venv and prints its python)"
        .to_string()
}

/// Ask Apache Avro (Python) about every pair, in one process.
fn oracle(pairs: &[(String, String)]) -> Vec<Verdict> {
    let py = python();
    match Command::new(&py)
        .args(["-c", "import avro.schema, avro.compatibility"])
        .output()
    {
        Err(e) => panic!(
            "cannot run the Python interpreter `{py}` ({e}): {}",
            setup_hint()
        ),
        Ok(out) if !out.status.success() => panic!(
            "the Python `avro` package is not importable by `{py}`:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            setup_hint()
        ),
        Ok(_) => {}
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/avro_oracle.py");
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py} {}: {e}", script.display()));
    let mut input = String::new();
    for (r, w) in pairs {
        input.push_str(&format!("{{\"reader\": {r}, \"writer\": {w}}}\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("oracle output");
    let written = writer.join().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        setup_hint()
    );
    written.expect("writing to the oracle");
    let verdicts: Vec<Verdict> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("oracle line is JSON");
            if let Some(e) = v.get("error") {
                Verdict::Error(e.as_str().unwrap_or_default().to_string())
            } else {
                Verdict::Compatible(
                    v["compatible"].as_bool().expect("compatible"),
                    v["types"]
                        .as_array()
                        .expect("types")
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect(),
                )
            }
        })
        .collect();
    assert_eq!(verdicts.len(), pairs.len(), "one oracle verdict per pair");
    if let Ok(path) = std::env::var("PAVER_ORACLE_DUMP") {
        let mut f = std::fs::File::create(&path).expect("PAVER_ORACLE_DUMP file");
        for ((r, w), v) in pairs.iter().zip(&verdicts) {
            let v = match v {
                Verdict::Compatible(c, t) => format!("{{\"compatible\": {c}, \"types\": {t:?}}}"),
                Verdict::Error(e) => format!("{{\"error\": {}}}", quote(e)),
            };
            writeln!(f, "{{\"reader\": {r}, \"writer\": {w}, \"oracle\": {v}}}").unwrap();
        }
    }
    verdicts
}

// ---------------------------------------------------------------------------------------
// paver's side.

/// paver's verdict: Ok(incompatibility lines) or Err(parse error / panic).
fn paver(reader: &str, writer: &str) -> Result<Vec<String>, String> {
    match catch_unwind(AssertUnwindSafe(|| check_texts(reader, writer))) {
        Ok(Ok(found)) => Ok(found
            .iter()
            .map(|i| {
                format!(
                    "{} reader {} writer {}: {}",
                    i.kind.as_str(),
                    i.reader_pointer,
                    i.writer_pointer,
                    i.message
                )
            })
            .collect()),
        Ok(Err(e)) => Err(format!("not a valid schema: {e}")),
        Err(panic) => Err(format!(
            "PANICKED: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn describe_paver(p: &Result<Vec<String>, String>) -> String {
    match p {
        Ok(v) if v.is_empty() => "compatible".into(),
        Ok(v) => format!("incompatible:\n      {}", v.join("\n      ")),
        Err(e) => format!("error: {e}"),
    }
}

fn describe_oracle(v: &Verdict) -> String {
    match v {
        Verdict::Compatible(true, _) => "compatible".into(),
        Verdict::Compatible(false, t) => format!("incompatible {t:?}"),
        Verdict::Error(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// Test 1: pairs.

struct Case {
    label: String,
    reader: String,
    writer: String,
}

fn generate_pairs(stats: &mut BTreeMap<&'static str, usize>) -> (Vec<Case>, Gen) {
    let mut g = Gen {
        rng: Rng::new(seed(0x5EED_A7B0)),
        counter: 0,
        mutations: BTreeMap::new(),
        open: Vec::new(),
    };
    let mut cases = Vec::new();
    fn note(s: &Schema, stats: &mut BTreeMap<&'static str, usize>) {
        for f in s.emit().2.features {
            *stats.entry(f).or_default() += 1;
        }
    }
    // Evolutions: a base schema, 1-3 mutations, both orders.
    for i in 0..280 * scale() {
        let base = g.base_schema();
        let mut next = base.clone();
        let n = 1 + g.rng.below(3);
        let applied: Vec<&str> = (0..n).map(|_| g.mutate(&mut next)).collect();
        note(&base, stats);
        note(&next, stats);
        let (old, new) = (base.text(), next.text());
        let what = applied.join(", ");
        cases.push(Case {
            label: format!("evolution {i}, old reads new ({what})"),
            reader: old.clone(),
            writer: new.clone(),
        });
        cases.push(Case {
            label: format!("evolution {i}, new reads old ({what})"),
            reader: new,
            writer: old,
        });
    }
    // Fully random pairs; half of them with the same top-level name.
    for i in 0..80 * scale() {
        let a = g.base_schema();
        let mut b = g.base_schema();
        if i.is_multiple_of(2) {
            if let (Ty::Named(x), Ty::Named(y)) = (&a.root, &b.root) {
                let name = a.defs[*x].name.clone();
                if !b.has_name(&name) {
                    b.defs[*y].name = name;
                }
            }
        }
        note(&a, stats);
        note(&b, stats);
        cases.push(Case {
            label: format!("random pair {i}"),
            reader: a.text(),
            writer: b.text(),
        });
    }
    (cases, g)
}

#[test]
fn paver_agrees_with_apache_avro_on_generated_pairs() {
    let mut features = BTreeMap::new();
    let (cases, g) = generate_pairs(&mut features);
    let pairs: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.reader.clone(), c.writer.clone()))
        .collect();
    let verdicts = oracle(&pairs);

    // The generator writes valid schemas only.
    let invalid: Vec<String> = cases
        .iter()
        .zip(&verdicts)
        .filter_map(|(c, v)| match v {
            Verdict::Error(e) => Some(format!(
                "{}: {e}\n  reader: {}\n  writer: {}",
                c.label, c.reader, c.writer
            )),
            _ => None,
        })
        .collect();
    assert!(
        invalid.is_empty(),
        "the generator wrote schemas Apache Avro rejects (a bug of this test):\n{}",
        invalid.join("\n")
    );

    // Coverage.
    let compatible = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Compatible(true, _)))
        .count();
    let incompatible = verdicts.len() - compatible;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for v in &verdicts {
        if let Verdict::Compatible(false, types) = v {
            for t in types.iter().collect::<BTreeSet<_>>() {
                *kinds.entry(t.clone()).or_default() += 1;
            }
        }
    }
    println!(
        "{} pairs: {compatible} compatible, {incompatible} incompatible (Apache Avro)",
        cases.len()
    );
    println!("pairs per incompatibility type: {kinds:?}");
    println!("mutations applied: {:?}", g.mutations);
    println!("schemas per feature: {features:?}");
    assert!(compatible >= 100, "only {compatible} compatible pairs");
    assert!(
        incompatible >= 100,
        "only {incompatible} incompatible pairs"
    );
    for kind in [
        "NAME_MISMATCH",
        "FIXED_SIZE_MISMATCH",
        "MISSING_ENUM_SYMBOLS",
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "TYPE_MISMATCH",
        "MISSING_UNION_BRANCH",
    ] {
        let n = kinds.get(kind).copied().unwrap_or(0);
        assert!(
            n >= 5,
            "only {n} pairs with {kind} from Apache Avro: {kinds:?}"
        );
    }
    for m in MUTATIONS {
        let n = g.mutations.get(m).copied().unwrap_or(0);
        assert!(n >= 3, "mutation `{m}` applied only {n} times");
    }
    for f in [
        "array",
        "array of records",
        "enum",
        "enum default",
        "field aliases",
        "field default",
        "fixed",
        "logical type",
        "map",
        "named type used twice",
        "namespaced",
        "nested namespace",
        "nested record",
        "null namespace",
        "nullable field defaulting to null",
        "record below a non-record",
        "recursive type",
        "top-level non-record",
        "type aliases",
        "union",
    ] {
        let n = features.get(f).copied().unwrap_or(0);
        assert!(n >= 5, "only {n} schemas with {f}");
    }

    // The verdicts.
    let mut mismatches = Vec::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        let p = paver(&c.reader, &c.writer);
        let agree = match (v, &p) {
            (Verdict::Compatible(ok, _), Ok(found)) => *ok == found.is_empty(),
            _ => false,
        };
        if !agree {
            mismatches.push((c, v, p));
        }
    }
    // Smallest first: the easiest to read.
    mismatches.sort_by_key(|(c, _, _)| c.reader.len() + c.writer.len());
    if !mismatches.is_empty() {
        let mut msg = format!(
            "paver disagrees with Apache Avro on {} of {} pairs:\n",
            mismatches.len(),
            cases.len()
        );
        for (c, v, p) in &mismatches {
            msg.push_str(&format!(
                "\n--- {}\n  reader: {}\n  writer: {}\n  apache avro: {}\n  paver: {}\n",
                c.label,
                c.reader,
                c.writer,
                describe_oracle(v),
                describe_paver(p)
            ));
        }
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------------------
// Test 2: modes on chains of versions.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

const MODES: [Mode; 6] = [
    Mode::Backward,
    Mode::BackwardTransitive,
    Mode::Forward,
    Mode::ForwardTransitive,
    Mode::Full,
    Mode::FullTransitive,
];

/// Does the chain of versions pass `mode`, given a verdict for (reader index, writer index)?
/// Each version is checked against the previous one, or all earlier ones if transitive:
/// BACKWARD the new version reads the earlier ones, FORWARD the earlier ones read it,
/// FULL both.
fn chain_passes(
    mode: Mode,
    n: usize,
    compat: &mut dyn FnMut(usize, usize) -> Result<bool, String>,
) -> Result<bool, String> {
    let transitive = matches!(
        mode,
        Mode::BackwardTransitive | Mode::ForwardTransitive | Mode::FullTransitive
    );
    let backward = matches!(
        mode,
        Mode::Backward | Mode::BackwardTransitive | Mode::Full | Mode::FullTransitive
    );
    let forward = matches!(
        mode,
        Mode::Forward | Mode::ForwardTransitive | Mode::Full | Mode::FullTransitive
    );
    let mut ok = true;
    for new in 1..n {
        let earlier = if transitive { 0 } else { new - 1 };
        for old in earlier..new {
            if backward && !compat(new, old)? {
                ok = false;
            }
            if forward && !compat(old, new)? {
                ok = false;
            }
        }
    }
    Ok(ok)
}

struct Chain {
    label: String,
    versions: Vec<Schema>,
    /// (non-transitive, transitive) modes where the first must pass and the second fail.
    expect: Vec<(Mode, Mode)>,
}

/// Where the field or enum that changes lives.
fn host_record(g: &mut Gen, s: &mut Schema, top: usize) -> usize {
    match g.rng.below(4) {
        0 => top,
        k => {
            let name = g.def_name(s, RECORD_NAMES);
            let namespace = g.namespace(s, false);
            s.defs.push(Def {
                name,
                namespace,
                aliases: vec![],
                body: Body::Record(vec![]),
            });
            let inner = s.defs.len() - 1;
            let own = g.field(s, "label".into(), 3);
            s.fields_mut(inner).push(own);
            let (ty, default) = match k {
                1 => (Ty::Named(inner), None),
                2 => (
                    Ty::Array(Box::new(Ty::Named(inner))),
                    Some(Value::Array(vec![])),
                ),
                _ => (
                    Ty::Union(vec![Ty::Prim(Prim::Null, None), Ty::Named(inner)]),
                    Some(Value::Null),
                ),
            };
            let name = g.fresh("inner");
            s.fields_mut(top).push(Field {
                name,
                ty,
                default,
                aliases: vec![],
            });
            inner
        }
    }
}

fn designed_chain(g: &mut Gen, template: usize) -> Chain {
    let mut s = Schema {
        defs: vec![],
        root: Ty::Prim(Prim::Null, None),
        namespaced: g.rng.chance(70),
    };
    let top = g.record(&mut s, 1, true);
    s.root = Ty::Named(top);
    let host = host_record(g, &mut s, top);
    use Mode::*;
    let (label, versions, expect) = match template {
        // v1 has x without a default, v2 gives it one, v3 drops it: v1 cannot read v3.
        0 | 1 => {
            let x = g.fresh("x");
            let ty = match g.rng.below(5) {
                0 => Ty::Union(vec![Ty::Prim(Prim::Null, None), g.prim()]),
                1 => Ty::Array(Box::new(g.prim())),
                2 => Ty::Named(g.enumeration(&mut s, false)),
                3 => Ty::Named(g.fixed(&mut s, false)),
                _ => g.prim(),
            };
            let dflt = make_default(&s, &ty, 0).expect("a default");
            let mut v1 = s.clone();
            v1.fields_mut(host).push(Field {
                name: x.clone(),
                ty: ty.clone(),
                default: None,
                aliases: vec![],
            });
            let mut v2 = s.clone();
            v2.fields_mut(host).push(Field {
                name: x,
                ty,
                default: Some(dflt),
                aliases: vec![],
            });
            let v3 = s.clone();
            if template == 0 {
                (
                    "field loses its default then goes",
                    vec![v1, v2, v3],
                    vec![(Forward, ForwardTransitive), (Full, FullTransitive)],
                )
            } else {
                // The same, backwards: x arrives with a default, then loses it.
                (
                    "field arrives with a default then loses it",
                    vec![v3, v2, v1],
                    vec![(Backward, BackwardTransitive), (Full, FullTransitive)],
                )
            }
        }
        // v1 {A,B}, v2 {A,B} with an enum default, v3 {A,B,C}: v1 cannot read v3's C.
        _ => {
            let e = g.enumeration(&mut s, false);
            let Body::Enum { symbols, default } = &mut s.defs[e].body else {
                unreachable!()
            };
            *default = None;
            let fresh = g.fresh("SYM");
            let first = symbols[0].clone();
            let small = symbols.clone();
            let mut big = small.clone();
            let at = g.rng.below(big.len() + 1);
            big.insert(at, fresh);
            let ty = match g.rng.below(3) {
                0 => Ty::Named(e),
                1 => Ty::Array(Box::new(Ty::Named(e))),
                _ => Ty::Map(Box::new(Ty::Named(e))),
            };
            let name = g.fresh("kind");
            s.fields_mut(host).push(Field {
                name,
                ty,
                default: None,
                aliases: vec![],
            });
            let with = |syms: &Vec<String>, dflt: Option<&String>| {
                let mut v = s.clone();
                v.defs[e].body = Body::Enum {
                    symbols: syms.clone(),
                    default: dflt.cloned(),
                };
                v
            };
            if template == 2 {
                (
                    "enum gains a default then a symbol",
                    vec![
                        with(&small, None),
                        with(&small, Some(&first)),
                        with(&big, Some(&first)),
                    ],
                    vec![(Forward, ForwardTransitive), (Full, FullTransitive)],
                )
            } else {
                (
                    "enum loses a symbol with a default, then the default",
                    vec![
                        with(&big, None),
                        with(&small, Some(&first)),
                        with(&small, None),
                    ],
                    vec![(Backward, BackwardTransitive), (Full, FullTransitive)],
                )
            }
        }
    };
    let mut versions = versions;
    for v in &mut versions {
        repair(v);
    }
    Chain {
        label: format!("designed chain: {label}"),
        versions,
        expect,
    }
}

#[test]
fn compatibility_modes_agree_with_apache_avro_on_version_chains() {
    let mut g = Gen {
        rng: Rng::new(seed(0xC4A1_2025)),
        counter: 0,
        mutations: BTreeMap::new(),
        open: Vec::new(),
    };
    let mut chains = Vec::new();
    for i in 0..48 * scale() {
        let mut c = designed_chain(&mut g, i % 4);
        c.label = format!("{} #{i}", c.label);
        chains.push(c);
    }
    for i in 0..40 * scale() {
        let v1 = g.base_schema();
        let mut v2 = v1.clone();
        g.mutate(&mut v2);
        let mut v3 = v2.clone();
        g.mutate(&mut v3);
        chains.push(Chain {
            label: format!("evolved chain #{i}"),
            versions: vec![v1, v2, v3],
            expect: vec![],
        });
    }

    // Every ordered pair of versions of every chain, in one oracle run.
    let texts: Vec<Vec<String>> = chains
        .iter()
        .map(|c| c.versions.iter().map(Schema::text).collect())
        .collect();
    let mut pairs = Vec::new();
    let mut index = BTreeMap::new();
    for (ci, t) in texts.iter().enumerate() {
        for r in 0..t.len() {
            for w in 0..t.len() {
                if r != w {
                    index.insert((ci, r, w), pairs.len());
                    pairs.push((t[r].clone(), t[w].clone()));
                }
            }
        }
    }
    let verdicts = oracle(&pairs);

    let mut failures = Vec::new();
    let mut designed_checked = 0;
    for (ci, c) in chains.iter().enumerate() {
        let t = &texts[ci];
        let n = t.len();
        let mut oracle_ok = |r: usize, w: usize| match &verdicts[index[&(ci, r, w)]] {
            Verdict::Compatible(ok, _) => Ok(*ok),
            Verdict::Error(e) => Err(format!("Apache Avro rejects a version: {e}")),
        };
        let mut paver_ok = |r: usize, w: usize| paver(&t[r], &t[w]).map(|found| found.is_empty());
        let mut verdict = BTreeMap::new();
        for mode in MODES {
            let o = chain_passes(mode, n, &mut oracle_ok);
            let p = chain_passes(mode, n, &mut paver_ok);
            if o != p {
                let mut msg = format!(
                    "--- {}: {mode:?}: apache avro {o:?}, paver {p:?}\n",
                    c.label
                );
                for (k, v) in t.iter().enumerate() {
                    msg.push_str(&format!("  v{}: {v}\n", k + 1));
                }
                for r in 0..n {
                    for w in 0..n {
                        if r != w {
                            msg.push_str(&format!(
                                "  v{} reads v{}: apache avro {}; paver {}\n",
                                r + 1,
                                w + 1,
                                describe_oracle(&verdicts[index[&(ci, r, w)]]),
                                describe_paver(&paver(&t[r], &t[w]))
                            ));
                        }
                    }
                }
                failures.push(msg);
            }
            verdict.insert(mode, (o, p));
        }
        for &(plain, transitive) in &c.expect {
            designed_checked += 1;
            // The design itself, checked against Apache Avro.
            assert_eq!(
                (verdict[&plain].0.clone(), verdict[&transitive].0.clone()),
                (Ok(true), Ok(false)),
                "{}: Apache Avro does not pass {plain:?} and fail {transitive:?} on\n{}",
                c.label,
                t.join("\n")
            );
            if (verdict[&plain].1.clone(), verdict[&transitive].1.clone()) != (Ok(true), Ok(false))
            {
                failures.push(format!(
                    "--- {}: paver must pass {plain:?} and fail {transitive:?}, got {:?} and {:?}\n{}\n",
                    c.label,
                    verdict[&plain].1,
                    verdict[&transitive].1,
                    t.join("\n")
                ));
            }
        }
    }
    println!(
        "{} chains ({} oracle pairs), {designed_checked} designed (mode, transitive mode) checks",
        chains.len(),
        pairs.len()
    );
    assert!(
        failures.is_empty(),
        "paver's mode verdicts disagree with Apache Avro on {} chain/mode combinations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
