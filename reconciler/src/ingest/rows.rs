//! Records to rows: a Kafka message in Avro's single-object encoding is decoded with the
//! writer's schema (found by its fingerprint among the subject's released versions),
//! resolved to the pipeline version's reader schema by field name (a field the writer did
//! not have takes the reader's default), and written as one row for the staging table, in
//! the form the server's column types take: `RowBinary` ([`row_binary`]) when every column
//! of the staging table has a type it writes, else one `JSONEachRow` line.
//!
//! [`row_binary`]: super::row_binary

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value as Json;

use super::codec::{self, Datum};
use super::registry::Answer;
use super::row_binary::{self, ColumnType};
use super::spec::IngestSpec;

/// Why a record has no row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowError {
    /// It cannot be ingested: the reason goes to the dead-letter topic.
    Dead(String),
    /// It is in the Confluent wire format with a schema id the decoder has not seen: ask
    /// the Schema Registry, [`Decoder::learn`] the answer, and try again.
    UnknownId(u32),
}

impl RowError {
    /// What the dead-letter header says.
    pub fn reason(&self) -> String {
        match self {
            RowError::Dead(reason) => reason.clone(),
            RowError::UnknownId(id) => format!("schema id {id} is unknown"),
        }
    }
}

impl From<String> for RowError {
    fn from(reason: String) -> Self {
        RowError::Dead(reason)
    }
}

/// Why the rows of a pipeline version are `JSONEachRow`, not `RowBinary`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotBinary {
    #[error("--insert-format json")]
    Asked,
    #[error("the staging table has no column `{0}`")]
    MissingColumn(String),
    #[error("column `{column}`: paver does not write {ty} in RowBinary")]
    Type { column: String, ty: String },
    #[error("the staging table's offset columns are not (Int32, Int64)")]
    OffsetColumns,
}

/// How rows are written for the staging table.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    JsonEachRow,
    /// `RowBinary`, with the columns in the order written (for the `INSERT`'s list).
    RowBinary(Vec<String>),
}

/// The writer schemas of a pipeline version and how to write its rows.
pub struct Decoder {
    writers: HashMap<u64, (u32, codec::Schema)>,
    /// Confluent schema ids seen: the fingerprint of a released version, or why not.
    ids: HashMap<u32, Result<u64, String>>,
    /// Whether a Schema Registry is configured (the Confluent wire format is read).
    pub registry: bool,
    /// (name, ClickHouse type as paver maps Avro, the type the server has).
    columns: Vec<(String, String, String)>,
    defaults: HashMap<String, Json>,
    /// With `RowBinary`: (paver's type, the staging table's type) of each column.
    binary: Option<Vec<(ColumnType, ColumnType)>>,
}

impl Decoder {
    /// A decoder for `spec`; `adapt` gives the server's type for a ClickHouse type.
    pub fn new(spec: &IngestSpec, adapt: impl Fn(&str) -> String) -> Result<Decoder, String> {
        let mut writers = HashMap::new();
        for (version, text) in &spec.writers {
            let json: Json =
                serde_json::from_str(text).map_err(|e| format!("schema version {version}: {e}"))?;
            // A version that uses named types of other files cannot be a writer's schema
            // by itself; records naming it are dead-lettered with that reason.
            if let Ok(schema) = codec::Schema::parse(&json) {
                writers.insert(schema.fingerprint, (*version, schema));
            }
        }
        let reader: Json =
            serde_json::from_str(&spec.reader).map_err(|e| format!("reader schema: {e}"))?;
        let defaults = reader["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["name"].as_str()?.to_string(), f.get("default")?.clone())))
            .collect();
        let columns = spec
            .columns
            .iter()
            .map(|c| {
                let ty = c.ty.clone().unwrap_or_else(|| "String".to_string());
                let server = adapt(&ty);
                (c.name.clone(), ty, server)
            })
            .collect();
        Ok(Decoder {
            writers,
            ids: HashMap::new(),
            registry: false,
            columns,
            defaults,
            binary: None,
        })
    }

    /// Write `RowBinary` for a staging table of these (name, type) columns, as
    /// `system.columns` has them. `Err` says why not (a type `RowBinary` is not written
    /// for, a column missing): the rows stay `JSONEachRow`.
    pub fn use_row_binary(&mut self, staging: &[(String, String)]) -> Result<(), NotBinary> {
        let parse = |name: &str, ty: &str| {
            ColumnType::parse(ty).ok_or_else(|| NotBinary::Type {
                column: name.to_string(),
                ty: ty.to_string(),
            })
        };
        let server = |name: &str| {
            let (_, ty) = staging
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| NotBinary::MissingColumn(name.to_string()))?;
            parse(name, ty)
        };
        let mut binary = Vec::new();
        for (name, ty, _) in &self.columns {
            binary.push((parse(name, ty)?, server(name)?));
        }
        let int = |bytes| ColumnType::Int {
            bytes,
            signed: true,
        };
        if server("_paver_partition")? != int(4) || server("_paver_offset")? != int(8) {
            return Err(NotBinary::OffsetColumns);
        }
        self.binary = Some(binary);
        Ok(())
    }

    /// The format [`Decoder::row`] writes.
    pub fn format(&self) -> Format {
        match self.binary {
            Some(_) => Format::RowBinary(
                self.columns
                    .iter()
                    .map(|(n, _, _)| n.clone())
                    .chain(["_paver_partition".to_string(), "_paver_offset".to_string()])
                    .collect(),
            ),
            None => Format::JsonEachRow,
        }
    }

    /// What the Schema Registry definitively said schema `id` is (a transient failure is
    /// no answer: nothing is remembered, and the id is asked again). Only a schema that is
    /// a released version of the subject is accepted: the registry names the writer's
    /// schema, the repo says what may be read.
    pub fn learn(&mut self, id: u32, answer: Answer) {
        let known = match answer {
            Answer::NotFound => Err(format!("the Schema Registry has no schema id {id}")),
            Answer::Schema(text) => (|| {
                let json: Json =
                    serde_json::from_str(&text).map_err(|e| format!("schema id {id}: {e}"))?;
                let parsed =
                    codec::Schema::parse(&json).map_err(|e| format!("schema id {id}: {e}"))?;
                if self.writers.contains_key(&parsed.fingerprint) {
                    Ok(parsed.fingerprint)
                } else {
                    Err(format!(
                        "schema id {id} of the Schema Registry is not a released version of the subject"
                    ))
                }
            })(),
        };
        self.ids.insert(id, known);
    }

    /// The Confluent schema id of a message that the registry must be asked about first.
    pub fn unknown_id(&self, message: &[u8]) -> Option<u32> {
        match self.writer(message) {
            Err(RowError::UnknownId(id)) => Some(id),
            _ => None,
        }
    }

    /// The writer's schema and the datum's bytes of a message: the single-object
    /// encoding, or (with a registry) the Confluent wire format (`00`, a 4-byte big-endian
    /// schema id, the datum).
    fn writer<'m>(&self, message: &'m [u8]) -> Result<(&(u32, codec::Schema), &'m [u8]), RowError> {
        if message.first() == Some(&0) && message.len() >= 5 {
            let id = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
            if !self.registry {
                return Err(RowError::Dead(format!(
                    "Confluent wire format (schema id {id}), and no Schema Registry is configured (targets.schemaRegistry.url or PAVER_SCHEMA_REGISTRY_URL)"
                )));
            }
            return match self.ids.get(&id) {
                None => Err(RowError::UnknownId(id)),
                Some(Err(reason)) => Err(RowError::Dead(reason.clone())),
                Some(Ok(fp)) => Ok((&self.writers[fp], &message[5..])),
            };
        }
        let (fingerprint, body) = codec::single_object(message)
            .ok_or_else(|| "not Avro single-object encoded (no C3 01 header)".to_string())?;
        let writer = self.writers.get(&fingerprint).ok_or_else(|| {
            format!(
                "written with an unknown schema (fingerprint {}): not a released version of the subject",
                hex(&fingerprint.to_le_bytes())
            )
        })?;
        Ok((writer, body))
    }

    /// Append the row of one message to `out` (in [`Decoder::format`]), with its source
    /// partition and offset. On error `out` is unchanged and the reason is returned.
    pub fn row(
        &self,
        message: &[u8],
        partition: i32,
        offset: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let ((version, schema), body) = self.writer(message)?;
        let datum = schema
            .decode(body)
            .map_err(|e| format!("cannot decode with schema version {version}: {e}"))?;
        let Datum::Record(fields) = datum else {
            return Err(RowError::Dead(
                "the record is not an Avro record".to_string(),
            ));
        };
        let at = out.len();
        let written = match &self.binary {
            Some(types) => self.binary_row(&fields, types, partition, offset, out),
            None => self.json_row(&fields, body.len(), partition, offset, out),
        };
        if written.is_err() {
            out.truncate(at);
        }
        written
    }

    /// The datum of a column: the writer's field, else the reader's default.
    fn field<'d>(
        &self,
        fields: &'d [(String, Datum)],
        name: &str,
    ) -> Result<std::borrow::Cow<'d, Datum>, RowError> {
        match fields.iter().find(|(n, _)| n == name) {
            Some((_, d)) => Ok(std::borrow::Cow::Borrowed(d)),
            None => match self.defaults.get(name) {
                Some(default) => Ok(std::borrow::Cow::Owned(from_json(default))),
                None => Err(RowError::Dead(format!(
                    "field `{name}`: missing from the writer's schema, and the reader's has no default"
                ))),
            },
        }
    }

    fn binary_row(
        &self,
        fields: &[(String, Datum)],
        types: &[(ColumnType, ColumnType)],
        partition: i32,
        offset: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        for ((name, _, _), (ty, server)) in self.columns.iter().zip(types) {
            let d = self.field(fields, name)?;
            row_binary::write(out, &d, ty, server)
                .map_err(|e| RowError::Dead(format!("field `{name}`: {e}")))?;
        }
        out.extend_from_slice(&partition.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        Ok(())
    }

    fn json_row(
        &self,
        fields: &[(String, Datum)],
        size: usize,
        partition: i32,
        offset: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let mut line = String::with_capacity(size * 2 + 64);
        line.push('{');
        for (name, ty, server) in &self.columns {
            let d = self.field(fields, name)?;
            let value = write_value(&d, ty, server).map_err(|e| format!("field `{name}`: {e}"))?;
            push_string(&mut line, name);
            line.push(':');
            line.push_str(&value);
            line.push(',');
        }
        let _ = writeln!(
            line,
            "\"_paver_partition\":{partition},\"_paver_offset\":{offset}}}"
        );
        out.extend_from_slice(line.as_bytes());
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON default as a datum.
fn from_json(json: &Json) -> Datum {
    match json {
        Json::Null => Datum::Null,
        Json::Bool(b) => Datum::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Datum::Long(i),
            None => Datum::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Datum::String(s.clone()),
        Json::Array(items) => Datum::Array(items.iter().map(from_json).collect()),
        Json::Object(map) => {
            Datum::Map(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// The elements of a named Tuple's inside, `x Int32, label String`: (name, type) pairs,
/// split at the top-level commas.
fn tuple_elements(inside: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inside.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&inside[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&inside[start..]);
    out.into_iter()
        .filter_map(|e| e.trim().split_once(' '))
        .map(|(n, t)| (n.trim_matches('`'), t.trim()))
        .collect()
}

fn inner<'a>(ty: &'a str, wrapper: &str) -> Option<&'a str> {
    ty.strip_prefix(wrapper)?.strip_suffix(')')
}

/// A datum as a JSON value for a column of paver's type `ty`, which the server has as
/// `server` (an older server's nearest equivalent).
fn write_value(d: &Datum, ty: &str, server: &str) -> Result<String, String> {
    let ty = inner(ty, "LowCardinality(").unwrap_or(ty);
    let server = inner(server, "LowCardinality(").unwrap_or(server);
    if let (Some(t), s) = (inner(ty, "Nullable("), server) {
        if matches!(d, Datum::Null) {
            return Ok("null".to_string());
        }
        return write_value(d, t, inner(s, "Nullable(").unwrap_or(s));
    }
    let mut out = String::new();
    match (d, ty) {
        // A nullable composite has no Nullable: null becomes empty.
        (Datum::Null, t) if t.starts_with("Array(") => out.push_str("[]"),
        (Datum::Null, t) if t.starts_with("Map(") => {
            out.push_str(if server == "String" { "\"{}\"" } else { "{}" })
        }
        (Datum::Null, t) if t.starts_with("Tuple(") => {
            // Every element at its default (the server fills the missing ones).
            out.push_str(if server.starts_with("Tuple(") {
                "{}"
            } else {
                "\"\""
            })
        }
        (Datum::Null, "String") => out.push_str("\"\""),
        (Datum::Null, _) => return Err(format!("null for a {ty} column")),
        (Datum::Boolean(b), "Bool") => out.push_str(match (server, b) {
            ("Bool", true) => "true",
            ("Bool", false) => "false",
            (_, true) => "1",
            (_, false) => "0",
        }),
        (Datum::Int(i), t) if t == "Date32" || t == "Date" => {
            push_string(&mut out, &civil_date(i64::from(*i)))
        }
        // A default of the reader's schema is read as a Long.
        (Datum::Long(i), t) if t == "Date32" || t == "Date" => {
            push_string(&mut out, &civil_date(*i))
        }
        (Datum::Long(v), t) if t.starts_with("DateTime64(") => {
            let per_second = if t == "DateTime64(6)" {
                1_000_000
            } else {
                1_000
            };
            if server.starts_with("DateTime64") {
                let secs = v.div_euclid(per_second);
                let frac = v.rem_euclid(per_second);
                let width = if per_second == 1_000 { 3 } else { 6 };
                push_string(&mut out, &format!("{}.{frac:0width$}", civil_time(secs)));
            } else {
                let _ = write!(out, "{}", v.div_euclid(per_second).max(0));
            }
        }
        // A number or a boolean of a union kept as text: its JSON, as a string (a server
        // does not read a bare number into a String column).
        (
            Datum::Int(_) | Datum::Long(_) | Datum::Float(_) | Datum::Double(_) | Datum::Boolean(_),
            "String",
        ) => push_string(&mut out, &generic(d).to_string()),
        (Datum::Int(i), _) => {
            let _ = write!(out, "{i}");
        }
        (Datum::Long(i), _) => {
            let _ = write!(out, "{i}");
        }
        (Datum::Float(f), _) => out.push_str(&float(f64::from(*f))),
        (Datum::Double(f), _) => out.push_str(&float(*f)),
        (Datum::Boolean(b), _) => out.push_str(if *b { "1" } else { "0" }),
        // A decimal default of the reader's schema: text whose code points are the bytes.
        (Datum::String(s), t) if t.starts_with("Decimal(") && s.chars().all(|c| c <= '\u{ff}') => {
            let bytes: Vec<u8> = s.chars().map(|c| c as u8).collect();
            out.push_str(&decimal(&bytes, t))
        }
        (Datum::String(s), _) | (Datum::Enum(s), _) => push_string(&mut out, s),
        (Datum::Bytes(b), t) | (Datum::Fixed(b), t) if t.starts_with("Decimal(") => {
            out.push_str(&decimal(b, t))
        }
        (Datum::Bytes(b), _) | (Datum::Fixed(b), _) => {
            push_string(&mut out, &String::from_utf8_lossy(b))
        }
        (Datum::Array(items), t) => {
            let (it, is) = (
                inner(t, "Array(").unwrap_or("String"),
                inner(server, "Array(").unwrap_or("String"),
            );
            if !t.starts_with("Array(") {
                push_string(&mut out, &generic(d).to_string());
            } else {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&write_value(item, it, is)?);
                }
                out.push(']');
            }
        }
        (Datum::Map(entries), t) if t.starts_with("Map(") && server != "String" => {
            let vt = t["Map(String, ".len()..t.len() - 1].to_string();
            let vs = server
                .strip_prefix("Map(String, ")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or("String")
                .to_string();
            out.push('{');
            for (n, (k, v)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                push_string(&mut out, k);
                out.push(':');
                out.push_str(&write_value(v, &vt, &vs)?);
            }
            out.push('}');
        }
        // A record into a named Tuple: a JSON object, each field in its element's type.
        // (A record default of the reader's schema is read as a map.)
        (Datum::Record(fields) | Datum::Map(fields), t)
            if t.starts_with("Tuple(") && server.starts_with("Tuple(") =>
        {
            let (types, server_types) = (
                tuple_elements(inner(t, "Tuple(").unwrap_or("")),
                tuple_elements(inner(server, "Tuple(").unwrap_or("")),
            );
            out.push('{');
            for (n, (name, value)) in fields.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let et = types
                    .iter()
                    .find(|(e, _)| e == name)
                    .map(|(_, t)| *t)
                    .unwrap_or("String");
                let es = server_types
                    .iter()
                    .find(|(e, _)| e == name)
                    .map(|(_, t)| *t)
                    .unwrap_or(et);
                push_string(&mut out, name);
                out.push(':');
                out.push_str(&write_value(value, et, es)?);
            }
            out.push('}');
        }
        // Records into a String, maps on servers without Map, and other unions: the value
        // as JSON text.
        (other, _) => push_string(&mut out, &generic(other).to_string()),
    }
    Ok(out)
}

/// A datum as plain JSON (bytes as text).
pub(super) fn generic(d: &Datum) -> Json {
    match d {
        Datum::Null => Json::Null,
        Datum::Boolean(b) => Json::Bool(*b),
        Datum::Int(i) => Json::from(*i),
        Datum::Long(i) => Json::from(*i),
        Datum::Float(f) => Json::from(f64::from(*f)),
        Datum::Double(f) => Json::from(*f),
        Datum::Bytes(b) | Datum::Fixed(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Datum::String(s) | Datum::Enum(s) => Json::String(s.clone()),
        Datum::Array(items) => Json::Array(items.iter().map(generic).collect()),
        Datum::Map(entries) | Datum::Record(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), generic(v)))
                .collect(),
        ),
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "\"nan\"".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "\"inf\"" } else { "\"-inf\"" }.to_string()
    } else {
        format!("{f}")
    }
}

/// The unscaled two's-complement big-endian integer of an Avro decimal, as decimal text.
fn decimal(bytes: &[u8], ty: &str) -> String {
    let scale: usize = inner(ty, "Decimal(")
        .and_then(|ps| ps.split(',').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude as base-10 digits (schoolbook; decimals are at most 38 digits).
    let mut mag: Vec<u8> = if negative {
        let mut inv: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in inv.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        inv
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let text = String::from_utf8(digits).unwrap_or_default();
    let (int, frac) = text.split_at(text.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the epoch as `YYYY-MM-DD hh:mm:ss` (UTC).
fn civil_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}",
        civil_date(days),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, TableName};

    fn spec(reader: &str, writers: &[&str], columns: &[(&str, &str)]) -> IngestSpec {
        let t = TableName {
            database: "d".into(),
            name: "t".into(),
        };
        IngestSpec {
            pipeline: "p".into(),
            version: 2,
            topic: "t".into(),
            group: "g".into(),
            previous_group: None,
            dead_letter_topic: "dlq".into(),
            staging: t.clone(),
            views: vec![],
            ledger: t,
            columns: columns
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    ty: Some(t.to_string()),
                })
                .collect(),
            reader: reader.into(),
            writers: writers
                .iter()
                .enumerate()
                .map(|(i, w)| (i as u32 + 1, w.to_string()))
                .collect(),
        }
    }

    fn message(schema: &str, body: &[u8]) -> Vec<u8> {
        let s = codec::Schema::parse(&serde_json::from_str(schema).unwrap()).unwrap();
        let mut m = vec![0xC3, 0x01];
        m.extend_from_slice(&s.fingerprint.to_le_bytes());
        m.extend_from_slice(body);
        m
    }

    const V1: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
    const V2: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"s","type":["null","string"],"default":null}]}"#;

    #[test]
    fn resolves_the_writer_to_the_reader_and_adapts_to_the_server() {
        let cols = [
            ("id", "Int64"),
            ("at", "DateTime64(3)"),
            ("s", "Nullable(String)"),
        ];
        let old = Decoder::new(&spec(V2, &[V1, V2], &cols), |t| {
            t.replace("DateTime64(3)", "DateTime")
        })
        .unwrap();
        // id = 5 (zigzag 10), at = 1546300800123 ms.
        let mut body = vec![10];
        let mut v = (1_546_300_800_123i64 << 1) as u64;
        while v >= 0x80 {
            body.push((v as u8) | 0x80);
            v >>= 7;
        }
        body.push(v as u8);
        let mut out = Vec::new();
        old.row(&message(V1, &body), 3, 42, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":5,\"at\":1546300800,\"s\":null,\"_paver_partition\":3,\"_paver_offset\":42}\n"
        );
        let new = Decoder::new(&spec(V2, &[V1, V2], &cols), |t| t.to_string()).unwrap();
        let mut with_s = body.clone();
        with_s.extend_from_slice(&[2, 2, b'x']);
        let mut out = Vec::new();
        new.row(&message(V2, &with_s), 0, 1, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\"at\":\"2019-01-01 00:00:00.123\",\"s\":\"x\""));
        // Garbage, an unknown schema and a truncated body are refused with a reason.
        let mut out = Vec::new();
        assert!(new
            .row(b"nope", 0, 0, &mut out)
            .unwrap_err()
            .reason()
            .contains("single-object"));
        let unknown = message(r#"{"type":"record","name":"X","fields":[]}"#, &[]);
        assert!(new
            .row(&unknown, 0, 0, &mut out)
            .unwrap_err()
            .reason()
            .contains("unknown schema"));
        assert!(new.row(&message(V2, &body[..2]), 0, 0, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn the_confluent_wire_format_names_a_released_version_through_the_registry() {
        let cols = [
            ("id", "Int64"),
            ("at", "DateTime64(3)"),
            ("s", "Nullable(String)"),
        ];
        let mut d = Decoder::new(&spec(V2, &[V1, V2], &cols), |t| t.to_string()).unwrap();
        // id 7 (00 00 00 07), written with V1: id = 1, at = 0.
        let framed = [0u8, 0, 0, 0, 7, 2, 0];
        let mut out = Vec::new();
        // No registry configured: a dead letter that says so.
        assert!(
            matches!(d.row(&framed, 0, 0, &mut out), Err(RowError::Dead(r)) if r.contains("no Schema Registry"))
        );
        d.registry = true;
        assert_eq!(d.row(&framed, 0, 0, &mut out), Err(RowError::UnknownId(7)));
        assert_eq!(d.unknown_id(&framed), Some(7));
        d.learn(7, Answer::Schema(V1.to_string()));
        assert_eq!(d.unknown_id(&framed), None);
        d.row(&framed, 0, 5, &mut out).unwrap();
        assert!(String::from_utf8(out.clone())
            .unwrap()
            .starts_with("{\"id\":1,"));
        // A registry schema that is not released in the repo is refused.
        d.learn(
            8,
            Answer::Schema(r#"{"type":"record","name":"Other","fields":[]}"#.to_string()),
        );
        assert!(
            matches!(d.row(&[0, 0, 0, 0, 8], 0, 0, &mut out), Err(RowError::Dead(r)) if r.contains("not a released version"))
        );
        d.learn(9, Answer::NotFound);
        assert!(
            matches!(d.row(&[0, 0, 0, 0, 9, 1], 0, 0, &mut out), Err(RowError::Dead(r)) if r.contains("no schema id 9"))
        );
    }

    #[tokio::test]
    async fn a_registry_that_cannot_answer_now_is_asked_again_not_remembered() {
        use crate::ingest::registry::{lookup, LookupError};
        let cols = [
            ("id", "Int64"),
            ("at", "DateTime64(3)"),
            ("s", "Nullable(String)"),
        ];
        let mut d = Decoder::new(&spec(V2, &[V1, V2], &cols), |t| t.to_string()).unwrap();
        d.registry = true;
        let framed = [0u8, 0, 0, 0, 7, 2, 0];
        // The registry is down (nobody listens): no answer, nothing learnt.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = crate::registry::SchemaRegistry::new(
            &crate::model::connections::Registry::plain(&format!("http://127.0.0.1:{port}")),
            &|_| None,
        )
        .unwrap();
        let down = lookup(&client, 7, std::time::Duration::from_secs(10)).await;
        assert!(matches!(down, Err(LookupError::Unavailable { id: 7, .. })));
        let mut out = Vec::new();
        assert_eq!(d.row(&framed, 0, 0, &mut out), Err(RowError::UnknownId(7)));
        assert_eq!(d.unknown_id(&framed), Some(7), "asked again, not dead");
        // Back up: the answer is learnt and the record decodes.
        d.learn(7, Answer::Schema(V1.to_string()));
        d.row(&framed, 0, 0, &mut out).unwrap();
    }

    #[test]
    fn dates_decimals_and_strings() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(17_897), "2019-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
        assert_eq!(civil_time(1_546_300_861), "2019-01-01 00:01:01");
        assert_eq!(decimal(&[0x30, 0x39], "Decimal(9, 2)"), "123.45");
        assert_eq!(decimal(&[0xff, 0x85], "Decimal(9, 2)"), "-1.23");
        assert_eq!(decimal(&[0x05], "Decimal(9, 0)"), "5");
        let mut s = String::new();
        push_string(&mut s, "a\"b\\\n\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\\\n\\u0001\"");
    }
}

#[cfg(test)]
mod tuple_tests {
    use super::*;

    #[test]
    fn a_record_goes_into_a_named_tuple_as_an_object() {
        let d = Datum::Record(vec![
            ("x".into(), Datum::Int(1)),
            ("label".into(), Datum::String("z".into())),
        ]);
        let t = "Tuple(x Int32, label String)";
        assert_eq!(write_value(&d, t, t).unwrap(), r#"{"x":1,"label":"z"}"#);
        // A server without Tuple keeps the record's JSON text.
        assert!(write_value(&d, t, "String").unwrap().starts_with('"'));
        assert_eq!(write_value(&Datum::Null, t, t).unwrap(), "{}");
    }
}

#[cfg(test)]
mod record_row_tests {
    use super::*;
    use crate::plan::{Column, TableName};

    #[test]
    fn a_nested_record_is_written_as_an_object() {
        let schema = r#"{"type":"record","name":"E","fields":[{"name":"r","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"},{"name":"label","type":"string"}]}}]}"#;
        let t = TableName {
            database: "d".into(),
            name: "t".into(),
        };
        let spec = IngestSpec {
            pipeline: "p".into(),
            version: 1,
            topic: "t".into(),
            group: "g".into(),
            previous_group: None,
            dead_letter_topic: "dlq".into(),
            staging: t.clone(),
            views: vec![],
            ledger: t,
            columns: vec![Column {
                name: "r".into(),
                ty: Some("Tuple(x Int32, label String)".into()),
            }],
            reader: schema.into(),
            writers: vec![(1, schema.to_string())],
        };
        let d = Decoder::new(&spec, |t| t.to_string()).unwrap();
        let s = codec::Schema::parse(&serde_json::from_str(schema).unwrap()).unwrap();
        let mut m = vec![0xC3, 0x01];
        m.extend_from_slice(&s.fingerprint.to_le_bytes());
        m.extend_from_slice(&[2, 2, b'z']);
        let mut out = Vec::new();
        d.row(&m, 0, 0, &mut out).map_err(|_| "row").unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains(r#""r":{"x":1,"label":"z"}"#), "{line}");
    }
}
