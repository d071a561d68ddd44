//! Rows in ClickHouse's `RowBinary` format: each column's value in its binary form, in the
//! staging table's column order, no names, no text. The server copies the bytes into its
//! columns instead of parsing JSON (see the README's Performance section for what that
//! saves). `RowBinary` has no conversions: every value is written exactly in the type
//! the server's column has, read from `system.columns` when the worker starts, so a
//! staging table created by another server version is still written right. A column of a
//! type this module does not know makes the pipeline use `JSONEachRow` instead.

use super::codec::Datum;

/// Why a datum cannot be written into a column (the record goes to the dead-letter topic
/// with this reason).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowBinaryError {
    #[error("null for a {column} column")]
    Null { column: String },
    #[error("{value} is out of the range of {column}")]
    OutOfRange { value: String, column: String },
    #[error("{kind} cannot be written into a {column} column")]
    Mismatch { kind: &'static str, column: String },
    #[error("`{0}` is not a UUID")]
    NotUuid(String),
}

fn out_of_range(value: impl std::fmt::Display, column: &ColumnType) -> RowBinaryError {
    RowBinaryError::OutOfRange {
        value: value.to_string(),
        column: name_of(column),
    }
}

/// A column type, parsed from its ClickHouse name.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// `Int8` … `Int64` (`signed`), `UInt8` … `UInt64`, with their width in bytes.
    Int {
        bytes: usize,
        signed: bool,
    },
    Float32,
    Float64,
    Bool,
    String,
    FixedString(usize),
    /// Days since 1970-01-01 as `UInt16`.
    Date,
    /// Days since 1970-01-01 as `Int32`.
    Date32,
    /// Seconds since the epoch as `UInt32`.
    DateTime,
    /// Ticks of 10^-precision seconds as `Int64`.
    DateTime64(u32),
    Uuid,
    /// Unscaled, in 4, 8 or 16 bytes (by precision), with its scale.
    Decimal {
        bytes: usize,
        scale: u32,
    },
    Nullable(Box<ColumnType>),
    Array(Box<ColumnType>),
    /// `Map(String, T)`.
    Map(Box<ColumnType>),
    /// A named `Tuple`.
    Tuple(Vec<(String, ColumnType)>),
    LowCardinality(Box<ColumnType>),
}

impl ColumnType {
    /// Parse a type as ClickHouse names it (`Nullable(DateTime64(3, 'UTC'))`); `None` for
    /// a type this module does not write.
    pub fn parse(text: &str) -> Option<ColumnType> {
        let text = text.trim();
        let (head, args) = match text.find('(') {
            Some(i) => (&text[..i], Some(text[i + 1..].strip_suffix(')')?)),
            None => (text, None),
        };
        let int = |bytes, signed| Some(ColumnType::Int { bytes, signed });
        match (head, args) {
            ("Int8", None) => int(1, true),
            ("Int16", None) => int(2, true),
            ("Int32", None) => int(4, true),
            ("Int64", None) => int(8, true),
            ("UInt8", None) => int(1, false),
            ("UInt16", None) => int(2, false),
            ("UInt32", None) => int(4, false),
            ("UInt64", None) => int(8, false),
            ("Float32", None) => Some(ColumnType::Float32),
            ("Float64", None) => Some(ColumnType::Float64),
            ("Bool", None) => Some(ColumnType::Bool),
            ("String", None) => Some(ColumnType::String),
            ("FixedString", Some(n)) => n.trim().parse().ok().map(ColumnType::FixedString),
            ("Date", None) => Some(ColumnType::Date),
            ("Date32", None) => Some(ColumnType::Date32),
            // A time zone changes how the value is shown, not how it is stored.
            ("DateTime", _) => Some(ColumnType::DateTime),
            ("DateTime64", Some(args)) => {
                let precision: u32 = split_top(args).first()?.trim().parse().ok()?;
                (precision <= 9).then_some(ColumnType::DateTime64(precision))
            }
            ("UUID", None) => Some(ColumnType::Uuid),
            ("Decimal", Some(args)) => {
                let parts = split_top(args);
                let precision: u32 = parts.first()?.trim().parse().ok()?;
                let scale: u32 = parts.get(1).map_or(Some(0), |s| s.trim().parse().ok())?;
                let bytes = match precision {
                    1..=9 => 4,
                    10..=18 => 8,
                    19..=38 => 16,
                    _ => return None,
                };
                Some(ColumnType::Decimal { bytes, scale })
            }
            ("Nullable", Some(t)) => Some(ColumnType::Nullable(Box::new(ColumnType::parse(t)?))),
            ("Array", Some(t)) => Some(ColumnType::Array(Box::new(ColumnType::parse(t)?))),
            ("LowCardinality", Some(t)) => {
                Some(ColumnType::LowCardinality(Box::new(ColumnType::parse(t)?)))
            }
            ("Map", Some(args)) => match split_top(args).as_slice() {
                [k, v] if k.trim() == "String" => {
                    Some(ColumnType::Map(Box::new(ColumnType::parse(v)?)))
                }
                _ => None,
            },
            ("Tuple", Some(args)) => {
                let mut elements = Vec::new();
                for e in split_top(args) {
                    let (name, ty) = e.trim().split_once(char::is_whitespace)?;
                    elements.push((name.trim_matches('`').to_string(), ColumnType::parse(ty)?));
                }
                Some(ColumnType::Tuple(elements))
            }
            _ => None,
        }
    }
}

/// `a, b(c, d), e` split at the top-level commas.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The unsigned LEB128 length of strings, arrays and maps.
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// How a datum is written into a column: `ty` is paver's mapping of the field's Avro type
/// (it says what the datum means: milliseconds or microseconds), `server` the column's type.
/// On error, what was written is left for the caller to cut.
pub fn write(
    out: &mut Vec<u8>,
    d: &Datum,
    ty: &ColumnType,
    server: &ColumnType,
) -> Result<(), RowBinaryError> {
    let ty = match ty {
        ColumnType::LowCardinality(t) => t,
        t => t,
    };
    match server {
        ColumnType::LowCardinality(s) => return write(out, d, ty, s),
        ColumnType::Nullable(s) => {
            if matches!(d, Datum::Null) {
                out.push(1);
                return Ok(());
            }
            out.push(0);
            let t = match ty {
                ColumnType::Nullable(t) => t,
                t => t,
            };
            return write(out, d, t, s);
        }
        _ => {}
    }
    let ty = match ty {
        ColumnType::Nullable(t) => t.as_ref(),
        t => t,
    };
    match (d, server) {
        // A nullable composite has no Nullable: null becomes empty (as `JSONEachRow` does).
        (Datum::Null, ColumnType::Array(_) | ColumnType::Map(_)) => out.push(0),
        // A map kept as JSON text (no Map type on the server): `{}`.
        (Datum::Null, ColumnType::String) if matches!(ty, ColumnType::Map(_)) => bytes(out, b"{}"),
        (Datum::Null, ColumnType::String) => out.push(0),
        (Datum::Null, ColumnType::Tuple(elements)) => {
            for (_, e) in elements {
                default(out, e);
            }
        }
        (Datum::Null, _) => {
            return Err(RowBinaryError::Null {
                column: name_of(server),
            })
        }
        (Datum::Boolean(b), ColumnType::Bool) => out.push(u8::from(*b)),
        (Datum::Boolean(b), ColumnType::Int { .. } | ColumnType::Float32 | ColumnType::Float64) => {
            number(out, i64::from(*b), server)?
        }
        // Days (a default read from the reader's schema is a Long).
        (Datum::Int(_) | Datum::Long(_), ColumnType::Date | ColumnType::Date32) => {
            let days = match d {
                Datum::Int(i) => i64::from(*i),
                Datum::Long(l) => *l,
                _ => 0,
            };
            let range =
                |_| out_of_range(format!("the date {days} (days since 1970-01-01)"), server);
            if *server == ColumnType::Date {
                out.extend_from_slice(&u16::try_from(days).map_err(range)?.to_le_bytes());
            } else {
                out.extend_from_slice(&i32::try_from(days).map_err(range)?.to_le_bytes());
            }
        }
        (Datum::Long(v), ColumnType::DateTime64(p)) => {
            let from = precision_of(ty);
            let ticks = rescale(*v, from, *p, server)?;
            out.extend_from_slice(&ticks.to_le_bytes());
        }
        (Datum::Long(v), ColumnType::DateTime) => {
            let secs = rescale(*v, precision_of(ty), 0, server)?.clamp(0, i64::from(u32::MAX));
            out.extend_from_slice(&(secs as u32).to_le_bytes());
        }
        (Datum::Int(i), _) => number(out, i64::from(*i), server)?,
        (Datum::Long(i), _) => number(out, *i, server)?,
        (Datum::Float(f), ColumnType::Float32) => out.extend_from_slice(&f.to_le_bytes()),
        (Datum::Float(f), ColumnType::Float64) => {
            out.extend_from_slice(&f64::from(*f).to_le_bytes())
        }
        (Datum::Double(f), ColumnType::Float64) => out.extend_from_slice(&f.to_le_bytes()),
        (Datum::Double(f), ColumnType::Float32) => {
            out.extend_from_slice(&(*f as f32).to_le_bytes())
        }
        (Datum::String(s), ColumnType::Uuid) => uuid(out, s)?,
        (Datum::String(s) | Datum::Enum(s), ColumnType::String) => bytes(out, s.as_bytes()),
        // A string into a fixed or a decimal is a default of the reader's schema: Avro
        // writes bytes defaults as text whose code points 0-255 are the bytes.
        (Datum::String(s), ColumnType::FixedString(n)) => fixed(out, &code_points(s, server)?, *n)?,
        (Datum::String(s), ColumnType::Decimal { bytes: width, .. }) => {
            decimal(out, &code_points(s, server)?, *width)?
        }
        (Datum::Enum(s), ColumnType::FixedString(n)) => fixed(out, s.as_bytes(), *n)?,
        (Datum::Bytes(b) | Datum::Fixed(b), ColumnType::Decimal { bytes: width, .. }) => {
            decimal(out, b, *width)?
        }
        // Bytes as they are: a ClickHouse String holds any bytes (`JSONEachRow` can only
        // carry text, and replaces invalid UTF-8 with U+FFFD).
        (Datum::Bytes(b) | Datum::Fixed(b), ColumnType::String) => bytes(out, b),
        (Datum::Bytes(b) | Datum::Fixed(b), ColumnType::FixedString(n)) => fixed(out, b, *n)?,
        (Datum::Array(items), ColumnType::Array(s)) => {
            let t = match ty {
                ColumnType::Array(t) => t.as_ref(),
                _ => s.as_ref(),
            };
            varint(out, items.len() as u64);
            for item in items {
                write(out, item, t, s)?;
            }
        }
        (Datum::Map(entries), ColumnType::Map(s)) => {
            let t = match ty {
                ColumnType::Map(t) => t.as_ref(),
                _ => s.as_ref(),
            };
            varint(out, entries.len() as u64);
            for (k, v) in entries {
                bytes(out, k.as_bytes());
                write(out, v, t, s)?;
            }
        }
        // A record into a named Tuple: the elements in the column's order; a field the
        // record lacks takes the element's default.
        // (A record default of the reader's schema is read as a map.)
        (Datum::Record(fields) | Datum::Map(fields), ColumnType::Tuple(elements)) => {
            let types = match ty {
                ColumnType::Tuple(t) => Some(t),
                _ => None,
            };
            for (name, s) in elements {
                match fields.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => {
                        let t = types
                            .and_then(|t| t.iter().find(|(n, _)| n == name))
                            .map_or(s, |(_, t)| t);
                        write(out, v, t, s)?
                    }
                    None => default(out, s),
                }
            }
        }
        // Records into a String, maps on servers without Map, and other unions: the value
        // as JSON text.
        (other, ColumnType::String) => {
            bytes(out, super::rows::generic(other).to_string().as_bytes())
        }
        (other, _) => {
            return Err(RowBinaryError::Mismatch {
                kind: kind_of(other),
                column: name_of(server),
            })
        }
    }
    Ok(())
}

/// The precision of a datum of paver's type: microseconds for `DateTime64(6)`, else
/// milliseconds (the timestamp logical types).
fn precision_of(ty: &ColumnType) -> u32 {
    match ty {
        ColumnType::DateTime64(p) => *p,
        _ => 3,
    }
}

fn rescale(v: i64, from: u32, to: u32, server: &ColumnType) -> Result<i64, RowBinaryError> {
    if from >= to {
        Ok(v.div_euclid(10i64.pow(from - to)))
    } else {
        v.checked_mul(10i64.pow(to - from))
            .ok_or_else(|| out_of_range(format!("the timestamp {v}"), server))
    }
}

/// A text whose code points are bytes (0-255), as Avro writes a bytes default.
fn code_points(s: &str, server: &ColumnType) -> Result<Vec<u8>, RowBinaryError> {
    s.chars()
        .map(|c| {
            u8::try_from(c).map_err(|_| RowBinaryError::Mismatch {
                kind: "a bytes default with a character above U+00FF",
                column: name_of(server),
            })
        })
        .collect()
}

fn number(out: &mut Vec<u8>, v: i64, server: &ColumnType) -> Result<(), RowBinaryError> {
    match server {
        ColumnType::Int { bytes, signed } => {
            let fits = match (bytes, signed) {
                (8, true) => true,
                (8, false) => v >= 0,
                (n, true) => {
                    let half = 1i64 << (n * 8 - 1);
                    (-half..half).contains(&v)
                }
                (n, false) => (0..1i64 << (n * 8)).contains(&v),
            };
            if !fits {
                return Err(out_of_range(v, server));
            }
            out.extend_from_slice(&v.to_le_bytes()[..*bytes]);
        }
        ColumnType::Float32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        ColumnType::Float64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
        ColumnType::Bool => out.push(u8::from(v != 0)),
        ColumnType::String => bytes(out, v.to_string().as_bytes()),
        _ => {
            return Err(RowBinaryError::Mismatch {
                kind: "a number",
                column: name_of(server),
            })
        }
    }
    Ok(())
}

fn fixed(out: &mut Vec<u8>, b: &[u8], n: usize) -> Result<(), RowBinaryError> {
    if b.len() > n {
        return Err(out_of_range(
            format!("a value of {} bytes", b.len()),
            &ColumnType::FixedString(n),
        ));
    }
    out.extend_from_slice(b);
    out.resize(out.len() + n - b.len(), 0);
    Ok(())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` as ClickHouse stores it: each half as a
/// little-endian 64-bit integer.
fn uuid(out: &mut Vec<u8>, s: &str) -> Result<(), RowBinaryError> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let parsed = (hex.len() == 32)
        .then(|| std::str::from_utf8(&hex).ok())
        .flatten()
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .ok_or_else(|| RowBinaryError::NotUuid(s.to_string()))?;
    out.extend_from_slice(&((parsed >> 64) as u64).to_le_bytes());
    out.extend_from_slice(&(parsed as u64).to_le_bytes());
    Ok(())
}

/// An Avro decimal (two's complement, big endian) as a little-endian integer of `width`
/// bytes: sign-extended, or refused when it does not fit.
fn decimal(out: &mut Vec<u8>, b: &[u8], width: usize) -> Result<(), RowBinaryError> {
    let negative = b.first().is_some_and(|x| x & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    let (extra, digits) = b.split_at(b.len().saturating_sub(width));
    // The bytes beyond the width must be the sign's, and so must the top bit left.
    let sign_kept = extra.is_empty() || digits.first().is_none_or(|x| (x & 0x80 != 0) == negative);
    if extra.iter().any(|x| *x != fill) || !sign_kept {
        return Err(RowBinaryError::OutOfRange {
            value: format!("a decimal of {} bytes", b.len()),
            column: format!("a decimal of {width} bytes"),
        });
    }
    out.extend(digits.iter().rev());
    out.resize(out.len() + width - digits.len(), fill);
    Ok(())
}

/// The default value of a column type (what the server fills in for a missing value).
fn default(out: &mut Vec<u8>, ty: &ColumnType) {
    match ty {
        ColumnType::Int { bytes, .. } => out.resize(out.len() + bytes, 0),
        ColumnType::Float32 | ColumnType::Date32 | ColumnType::DateTime => {
            out.extend_from_slice(&[0; 4])
        }
        ColumnType::Float64 | ColumnType::DateTime64(_) => out.extend_from_slice(&[0; 8]),
        ColumnType::Bool => out.push(0),
        ColumnType::String | ColumnType::Array(_) | ColumnType::Map(_) => out.push(0),
        ColumnType::FixedString(n) => out.resize(out.len() + n, 0),
        ColumnType::Date => out.extend_from_slice(&[0; 2]),
        ColumnType::Uuid => out.extend_from_slice(&[0; 16]),
        ColumnType::Decimal { bytes, .. } => out.resize(out.len() + bytes, 0),
        ColumnType::Nullable(_) => out.push(1),
        ColumnType::Tuple(elements) => elements.iter().for_each(|(_, e)| default(out, e)),
        ColumnType::LowCardinality(t) => default(out, t),
    }
}

fn kind_of(d: &Datum) -> &'static str {
    match d {
        Datum::Null => "null",
        Datum::Boolean(_) => "a boolean",
        Datum::Int(_) | Datum::Long(_) => "a number",
        Datum::Float(_) | Datum::Double(_) => "a floating-point number",
        Datum::Bytes(_) | Datum::Fixed(_) => "bytes",
        Datum::String(_) | Datum::Enum(_) => "a string",
        Datum::Record(_) => "a record",
        Datum::Array(_) => "an array",
        Datum::Map(_) => "a map",
    }
}

fn name_of(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int { bytes, signed } => {
            format!("{}Int{}", if *signed { "" } else { "U" }, bytes * 8)
        }
        ColumnType::Float32 => "Float32".into(),
        ColumnType::Float64 => "Float64".into(),
        ColumnType::Bool => "Bool".into(),
        ColumnType::String => "String".into(),
        ColumnType::FixedString(n) => format!("FixedString({n})"),
        ColumnType::Date => "Date".into(),
        ColumnType::Date32 => "Date32".into(),
        ColumnType::DateTime => "DateTime".into(),
        ColumnType::DateTime64(p) => format!("DateTime64({p})"),
        ColumnType::Uuid => "UUID".into(),
        ColumnType::Decimal { scale, .. } => format!("Decimal(_, {scale})"),
        ColumnType::Nullable(t) => format!("Nullable({})", name_of(t)),
        ColumnType::Array(t) => format!("Array({})", name_of(t)),
        ColumnType::Map(t) => format!("Map(String, {})", name_of(t)),
        ColumnType::Tuple(_) => "Tuple".into(),
        ColumnType::LowCardinality(t) => format!("LowCardinality({})", name_of(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(d: &Datum, ty: &str, server: &str) -> Result<Vec<u8>, RowBinaryError> {
        let mut out = Vec::new();
        write(
            &mut out,
            d,
            &ColumnType::parse(ty).unwrap(),
            &ColumnType::parse(server).unwrap(),
        )?;
        Ok(out)
    }

    #[test]
    fn types_are_parsed_as_clickhouse_names_them() {
        assert_eq!(
            ColumnType::parse("Nullable(DateTime64(3, 'UTC'))"),
            Some(ColumnType::Nullable(Box::new(ColumnType::DateTime64(3))))
        );
        assert_eq!(
            ColumnType::parse("Decimal(12, 3)"),
            Some(ColumnType::Decimal { bytes: 8, scale: 3 })
        );
        assert_eq!(
            ColumnType::parse("Tuple(x Int32, label String)"),
            Some(ColumnType::Tuple(vec![
                (
                    "x".into(),
                    ColumnType::Int {
                        bytes: 4,
                        signed: true
                    }
                ),
                ("label".into(), ColumnType::String)
            ]))
        );
        assert_eq!(ColumnType::parse("Enum8('a' = 1)"), None);
        assert_eq!(ColumnType::parse("Map(Int64, String)"), None);
    }

    #[test]
    fn values_in_their_binary_form() {
        assert_eq!(
            enc(&Datum::Int(-7), "Int32", "Int32").unwrap(),
            (-7i32).to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Int(-7), "Int32", "Int64").unwrap(),
            (-7i64).to_le_bytes()
        );
        assert!(enc(&Datum::Long(1 << 40), "Int64", "Int32").is_err());
        assert_eq!(enc(&Datum::Boolean(true), "Bool", "UInt8").unwrap(), [1]);
        assert_eq!(
            enc(&Datum::String("ab".into()), "String", "String").unwrap(),
            [2, b'a', b'b']
        );
        assert_eq!(
            enc(&Datum::Null, "Nullable(Int32)", "Nullable(Int32)").unwrap(),
            [1]
        );
        assert_eq!(
            enc(&Datum::Int(1), "Nullable(Int32)", "Nullable(Int32)").unwrap(),
            [0, 1, 0, 0, 0]
        );
        // Milliseconds into DateTime64(3), and into DateTime (seconds) on an old server.
        assert_eq!(
            enc(&Datum::Long(1_500), "DateTime64(3)", "DateTime64(3)").unwrap(),
            1_500i64.to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Long(1_500), "DateTime64(3)", "DateTime").unwrap(),
            1u32.to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Long(1_000_001), "DateTime64(6)", "DateTime64(6)").unwrap(),
            1_000_001i64.to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Int(20_454), "Date32", "Date").unwrap(),
            20_454u16.to_le_bytes()
        );
        // 123.45 and -0.001.
        assert_eq!(
            enc(
                &Datum::Bytes(vec![0x30, 0x39]),
                "Decimal(9, 2)",
                "Decimal(9, 2)"
            )
            .unwrap(),
            12_345i32.to_le_bytes()
        );
        assert_eq!(
            enc(
                &Datum::Fixed(vec![0xff; 6]),
                "Decimal(12, 3)",
                "Decimal(12, 3)"
            )
            .unwrap(),
            (-1i64).to_le_bytes()
        );
        assert!(enc(
            &Datum::Bytes(vec![1, 0, 0, 0, 0]),
            "Decimal(9, 2)",
            "Decimal(9, 2)"
        )
        .is_err());
        assert_eq!(
            enc(
                &Datum::Fixed(b"ab".to_vec()),
                "FixedString(4)",
                "FixedString(4)"
            )
            .unwrap(),
            [b'a', b'b', 0, 0]
        );
        assert_eq!(
            enc(
                &Datum::String("61f0c404-5cb3-11e7-907b-a6006ad3dba0".into()),
                "UUID",
                "UUID"
            )
            .unwrap(),
            [
                0xe7, 0x11, 0xb3, 0x5c, 0x04, 0xc4, 0xf0, 0x61, 0xa0, 0xdb, 0xd3, 0x6a, 0x00, 0xa6,
                0x7b, 0x90
            ]
        );
        assert_eq!(
            enc(
                &Datum::Array(vec![Datum::Int(1), Datum::Int(2)]),
                "Array(Int32)",
                "Array(Int32)"
            )
            .unwrap(),
            [2, 1, 0, 0, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            enc(&Datum::Null, "Array(String)", "Array(String)").unwrap(),
            [0]
        );
        // A record into a named tuple, a missing element at its default; into a String as JSON.
        let r = Datum::Record(vec![("label".into(), Datum::String("z".into()))]);
        let t = "Tuple(x Int32, label String)";
        assert_eq!(enc(&r, t, t).unwrap(), [0, 0, 0, 0, 1, b'z']);
        assert_eq!(enc(&r, t, "String").unwrap(), b"\x0d{\"label\":\"z\"}");
    }

    #[test]
    fn defaults_of_the_reader_schema_are_written_in_the_columns_type() {
        // A date default is read as a Long; bytes defaults are text of code points 0-255;
        // a record default is read as a map.
        assert_eq!(
            enc(&Datum::Long(20_454), "Date32", "Date32").unwrap(),
            20_454i32.to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Long(20_454), "Date32", "Date").unwrap(),
            20_454u16.to_le_bytes()
        );
        assert_eq!(
            enc(
                &Datum::String("\u{ff}\u{1}".into()),
                "FixedString(2)",
                "FixedString(2)"
            )
            .unwrap(),
            [0xff, 0x01]
        );
        assert_eq!(
            enc(
                &Datum::String("09".into()),
                "Decimal(9, 2)",
                "Decimal(9, 2)"
            )
            .unwrap(),
            0x3039i32.to_le_bytes()
        );
        assert!(matches!(
            enc(
                &Datum::String("€".into()),
                "FixedString(3)",
                "FixedString(3)"
            ),
            Err(RowBinaryError::Mismatch { .. })
        ));
        let m = Datum::Map(vec![("x".into(), Datum::Long(4))]);
        let t = "Tuple(x Int32, label String)";
        assert_eq!(enc(&m, t, t).unwrap(), [4, 0, 0, 0, 0]);
    }

    #[test]
    fn strings_and_bytes_keep_every_byte() {
        let text = "a\"b\\c\nd\te\0f 😀 ü";
        let mut want = vec![text.len() as u8];
        want.extend_from_slice(text.as_bytes());
        assert_eq!(
            enc(&Datum::String(text.into()), "String", "String").unwrap(),
            want
        );
        // Invalid UTF-8 stays as it is (a String column holds bytes).
        assert_eq!(
            enc(&Datum::Bytes(vec![0xff, 0, b'x']), "String", "String").unwrap(),
            [3, 0xff, 0, b'x']
        );
        assert_eq!(
            enc(
                &Datum::Fixed(vec![0xff, 0xfe]),
                "FixedString(2)",
                "FixedString(2)"
            )
            .unwrap(),
            [0xff, 0xfe]
        );
        // A long string: its length as LEB128 in two bytes.
        let long = "x".repeat(300);
        let out = enc(&Datum::String(long), "String", "String").unwrap();
        assert_eq!((out[0], out[1], out.len()), (0xac, 0x02, 302));
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            (
                enc(&Datum::Null, "Int32", "Int32"),
                "null for a Int32 column",
            ),
            (
                enc(&Datum::Long(70_000), "Int32", "UInt16"),
                "70000 is out of the range of UInt16",
            ),
            (
                enc(&Datum::Int(-1), "Date32", "Date"),
                "the date -1 (days since 1970-01-01) is out of the range of Date",
            ),
            (
                enc(&Datum::String("nope".into()), "UUID", "UUID"),
                "`nope` is not a UUID",
            ),
            (
                enc(&Datum::Array(vec![]), "Int32", "Int32"),
                "an array cannot be written into a Int32 column",
            ),
            (
                enc(
                    &Datum::Fixed(vec![1, 2, 3]),
                    "FixedString(2)",
                    "FixedString(2)",
                ),
                "a value of 3 bytes is out of the range of FixedString(2)",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn nested_nullable_and_low_cardinality() {
        let a = Datum::Array(vec![Datum::Null, Datum::Int(3)]);
        let t = "Array(Nullable(Int32))";
        assert_eq!(enc(&a, t, t).unwrap(), [2, 1, 0, 3, 0, 0, 0]);
        let m = Datum::Map(vec![("k".into(), Datum::Null)]);
        let t = "Map(String, Nullable(Float64))";
        assert_eq!(enc(&m, t, t).unwrap(), [1, 1, b'k', 1]);
        assert_eq!(
            enc(
                &Datum::Enum("RED".into()),
                "LowCardinality(String)",
                "LowCardinality(String)"
            )
            .unwrap(),
            [3, b'R', b'E', b'D']
        );
        assert_eq!(
            enc(&Datum::Null, "Map(String, Int64)", "String").unwrap(),
            [2, b'{', b'}']
        );
        // A timestamp before 1970 into DateTime (an old server): clamped at the epoch.
        assert_eq!(
            enc(&Datum::Long(-1), "DateTime64(3)", "DateTime").unwrap(),
            0u32.to_le_bytes()
        );
        assert_eq!(
            enc(&Datum::Long(-1), "DateTime64(3)", "DateTime64(3)").unwrap(),
            (-1i64).to_le_bytes()
        );
    }
}
