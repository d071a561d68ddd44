//! Avro on the wire, as the ingestion reads it: a schema's Parsing Canonical Form and its
//! CRC-64-AVRO fingerprint (how the single-object encoding names the writer's schema), the
//! single-object header, and the binary decoding of a datum with the writer's schema.
//! Checked against Apache Avro's Python package in `tests/codec_oracle.rs`.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

/// A decoded Avro value.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    Record(Vec<(String, Datum)>),
    Enum(String),
    Array(Vec<Datum>),
    Map(Vec<(String, Datum)>),
    Fixed(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Ty>),
    Map(Box<Ty>),
    Union(Vec<Ty>),
    /// A record, enum or fixed: index into `Schema::named`.
    Named(usize),
}

#[derive(Debug, Clone)]
enum Named {
    Record(Vec<(String, Ty)>),
    Enum(Vec<String>),
    Fixed(usize),
}

/// A writer's schema, ready to decode with.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Ty,
    named: Vec<Named>,
    /// The Parsing Canonical Form.
    pub canonical: String,
    /// CRC-64-AVRO of the canonical form.
    pub fingerprint: u64,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

impl Schema {
    /// Parse a schema's JSON (any type at the top). Named types may be used by name after
    /// their definition, as in one `.avsc` file.
    pub fn parse(json: &Json) -> Result<Schema, String> {
        let mut b = Builder {
            index: HashMap::new(),
            slots: Vec::new(),
        };
        let mut canonical = String::new();
        let root = b.ty(json, None, &mut canonical)?;
        let named = b
            .slots
            .into_iter()
            .map(|n| n.ok_or_else(|| "a named type is used before it is complete".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let fingerprint = fingerprint(canonical.as_bytes());
        Ok(Schema {
            root,
            named,
            canonical,
            fingerprint,
        })
    }

    /// Decode one datum written with this schema; the whole input must be used.
    pub fn decode(&self, bytes: &[u8]) -> Result<Datum, String> {
        let mut r = Reader {
            bytes,
            at: 0,
            items_left: MAX_ITEMS,
        };
        let datum = self.read(&self.root, &mut r, 0)?;
        if r.at != bytes.len() {
            return Err(format!("{} bytes left after the datum", bytes.len() - r.at));
        }
        Ok(datum)
    }

    fn read(&self, ty: &Ty, r: &mut Reader, depth: usize) -> Result<Datum, String> {
        if depth > 64 {
            return Err("the datum nests deeper than 64 levels".to_string());
        }
        Ok(match ty {
            Ty::Null => Datum::Null,
            Ty::Boolean => match r.byte()? {
                0 => Datum::Boolean(false),
                1 => Datum::Boolean(true),
                b => return Err(format!("{b} is not a boolean")),
            },
            Ty::Int => {
                Datum::Int(i32::try_from(r.long()?).map_err(|_| "an int out of range".to_string())?)
            }
            Ty::Long => Datum::Long(r.long()?),
            Ty::Float => Datum::Float(f32::from_le_bytes(
                r.take(4)?.try_into().map_err(|_| "short float")?,
            )),
            Ty::Double => Datum::Double(f64::from_le_bytes(
                r.take(8)?.try_into().map_err(|_| "short double")?,
            )),
            Ty::Bytes => Datum::Bytes(r.sized()?.to_vec()),
            Ty::String => Datum::String(
                String::from_utf8(r.sized()?.to_vec())
                    .map_err(|_| "a string that is not UTF-8".to_string())?,
            ),
            Ty::Array(items) => {
                let mut out = Vec::new();
                r.blocks(|r| {
                    out.push(self.read(items, r, depth + 1)?);
                    Ok(())
                })?;
                Datum::Array(out)
            }
            Ty::Map(values) => {
                let mut out = Vec::new();
                r.blocks(|r| {
                    let key = String::from_utf8(r.sized()?.to_vec())
                        .map_err(|_| "a map key that is not UTF-8".to_string())?;
                    out.push((key, self.read(values, r, depth + 1)?));
                    Ok(())
                })?;
                Datum::Map(out)
            }
            Ty::Union(branches) => {
                let index = r.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("union branch {index} does not exist"))?;
                self.read(branch, r, depth + 1)?
            }
            Ty::Named(i) => match &self.named[*i] {
                Named::Record(fields) => {
                    let mut out = Vec::with_capacity(fields.len());
                    for (name, ty) in fields {
                        out.push((name.clone(), self.read(ty, r, depth + 1)?));
                    }
                    Datum::Record(out)
                }
                Named::Enum(symbols) => {
                    let index = r.long()?;
                    let symbol = usize::try_from(index)
                        .ok()
                        .and_then(|i| symbols.get(i))
                        .ok_or_else(|| format!("enum index {index} does not exist"))?;
                    Datum::Enum(symbol.clone())
                }
                Named::Fixed(size) => Datum::Fixed(r.take(*size)?.to_vec()),
            },
        })
    }
}

struct Builder {
    index: HashMap<String, usize>,
    slots: Vec<Option<Named>>,
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

impl Builder {
    /// Build the type and write its canonical form.
    fn ty(&mut self, json: &Json, namespace: Option<&str>, out: &mut String) -> Result<Ty, String> {
        match json {
            Json::String(name) => self.by_name(name, namespace, out),
            Json::Array(branches) => {
                out.push('[');
                let mut tys = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    tys.push(self.ty(b, namespace, out)?);
                }
                out.push(']');
                Ok(Ty::Union(tys))
            }
            Json::Object(map) => {
                let kind = map.get("type").ok_or("a type object needs `type`")?;
                match kind.as_str() {
                    Some("record" | "error") => self.record(map, namespace, out),
                    Some("enum") => {
                        let full = self.define_name(map, namespace, out, "enum")?;
                        let symbols: Vec<String> = map
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or("an enum needs `symbols`")?
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect();
                        out.push_str(",\"symbols\":[");
                        out.push_str(
                            &symbols
                                .iter()
                                .map(|s| Json::String(s.clone()).to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                        out.push_str("]}");
                        Ok(self.finish(&full, Named::Enum(symbols)))
                    }
                    Some("fixed") => {
                        let full = self.define_name(map, namespace, out, "fixed")?;
                        let size = map
                            .get("size")
                            .and_then(Json::as_u64)
                            .ok_or("a fixed needs `size`")?
                            as usize;
                        out.push_str(&format!(",\"size\":{size}}}"));
                        Ok(self.finish(&full, Named::Fixed(size)))
                    }
                    Some("array") => {
                        out.push_str("{\"type\":\"array\",\"items\":");
                        let items = self.ty(
                            map.get("items").ok_or("an array needs `items`")?,
                            namespace,
                            out,
                        )?;
                        out.push('}');
                        Ok(Ty::Array(Box::new(items)))
                    }
                    Some("map") => {
                        out.push_str("{\"type\":\"map\",\"values\":");
                        let values = self.ty(
                            map.get("values").ok_or("a map needs `values`")?,
                            namespace,
                            out,
                        )?;
                        out.push('}');
                        Ok(Ty::Map(Box::new(values)))
                    }
                    // `{"type": "long", "logicalType": ...}` and `{"type": "Name"}`.
                    _ => self.ty(kind, namespace, out),
                }
            }
            other => Err(format!("`{other}` is not a type")),
        }
    }

    fn by_name(
        &mut self,
        name: &str,
        namespace: Option<&str>,
        out: &mut String,
    ) -> Result<Ty, String> {
        if let Some(p) = PRIMITIVES.iter().position(|p| *p == name) {
            out.push_str(&format!("\"{}\"", PRIMITIVES[p]));
            return Ok([
                Ty::Null,
                Ty::Boolean,
                Ty::Int,
                Ty::Long,
                Ty::Float,
                Ty::Double,
                Ty::Bytes,
                Ty::String,
            ][p]
                .clone());
        }
        let full = full_name(name, namespace);
        let index = self
            .index
            .get(&full)
            .or_else(|| self.index.get(name))
            .ok_or_else(|| format!("unknown type `{name}`"))?;
        out.push_str(&Json::String(full).to_string());
        Ok(Ty::Named(*index))
    }

    /// Reserve a named type's slot and write `{"name":...,"type":...`.
    fn define_name(
        &mut self,
        map: &Map<String, Json>,
        namespace: Option<&str>,
        out: &mut String,
        kind: &str,
    ) -> Result<String, String> {
        let name = map
            .get("name")
            .and_then(Json::as_str)
            .ok_or("a named type needs `name`")?;
        let full = full_name(
            name,
            map.get("namespace").and_then(Json::as_str).or(namespace),
        );
        let index = self.slots.len();
        self.slots.push(None);
        self.index.insert(full.clone(), index);
        out.push_str(&format!(
            "{{\"name\":{},\"type\":\"{kind}\"",
            Json::String(full.clone())
        ));
        Ok(full)
    }

    fn finish(&mut self, full: &str, named: Named) -> Ty {
        let index = self.index[full];
        self.slots[index] = Some(named);
        Ty::Named(index)
    }

    fn record(
        &mut self,
        map: &Map<String, Json>,
        namespace: Option<&str>,
        out: &mut String,
    ) -> Result<Ty, String> {
        let kind = if map.get("type").and_then(Json::as_str) == Some("error") {
            "error"
        } else {
            "record"
        };
        let full = self.define_name(map, namespace, out, kind)?;
        let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
        out.push_str(",\"fields\":[");
        let mut fields = Vec::new();
        for (i, f) in map
            .get("fields")
            .and_then(Json::as_array)
            .ok_or("a record needs `fields`")?
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            let name = f
                .get("name")
                .and_then(Json::as_str)
                .ok_or("a field needs `name`")?;
            out.push_str(&format!(
                "{{\"name\":{},\"type\":",
                Json::String(name.to_string())
            ));
            let ty = self.ty(
                f.get("type").ok_or("a field needs `type`")?,
                ns.as_deref(),
                out,
            )?;
            out.push('}');
            fields.push((name.to_string(), ty));
        }
        out.push_str("]}");
        Ok(self.finish(&full, Named::Record(fields)))
    }
}

/// Array and map items one datum may hold. Items of zero width (`null`, an empty record)
/// take no bytes, so the input's size alone cannot bound them.
const MAX_ITEMS: u64 = 1_000_000;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    items_left: u64,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the datum ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("the datum ends early")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A zig-zag varint.
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("a varint longer than 64 bits".to_string());
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err("a varint longer than 64 bits".to_string())
    }

    fn sized(&mut self) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("a negative length {n}"))?;
        self.take(n)
    }

    /// Array and map blocks: a count (negative: followed by the block's size in bytes),
    /// items, until a zero count.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("a bad block count")?;
                self.long()?;
            }
            if count as u64 > self.items_left {
                return Err(format!(
                    "more than {MAX_ITEMS} array or map items in one datum"
                ));
            }
            self.items_left -= count as u64;
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

/// CRC-64-AVRO (the Rabin fingerprint of the Avro specification).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            }
            *slot = fp;
        }
        t
    });
    bytes.iter().fold(EMPTY, |fp, b| {
        (fp >> 8) ^ table[((fp ^ u64::from(*b)) & 0xff) as usize]
    })
}

/// The single-object encoding: `C3 01`, the writer schema's fingerprint (8 bytes, little
/// endian), then the datum. Returns the fingerprint and the datum's bytes.
pub fn single_object(message: &[u8]) -> Option<(u64, &[u8])> {
    if message.len() < 10 || message[0] != 0xC3 || message[1] != 0x01 {
        return None;
    }
    let fp = u64::from_le_bytes(message[2..10].try_into().ok()?);
    Some((fp, &message[10..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_and_fingerprint_of_the_spec_example() {
        let schema = Schema::parse(&serde_json::json!({"type": "record", "name": "E", "namespace": "a.b", "doc": "x",
            "fields": [{"name": "id", "type": "string", "doc": "d"}, {"name": "n", "type": ["null", "long"], "default": null}]}))
        .unwrap();
        assert_eq!(
            schema.canonical,
            r#"{"name":"a.b.E","type":"record","fields":[{"name":"id","type":"string"},{"name":"n","type":["null","long"]}]}"#
        );
        // The Python avro package gives 1e8a364e8936fb77 for this schema (its bytes, little endian).
        assert_eq!(
            schema.fingerprint.to_le_bytes(),
            [0x1e, 0x8a, 0x36, 0x4e, 0x89, 0x36, 0xfb, 0x77]
        );
        // {"id": "x", "n": 5}
        let datum = schema.decode(&[0x02, 0x78, 0x02, 0x0a]).unwrap();
        assert_eq!(
            datum,
            Datum::Record(vec![
                ("id".into(), Datum::String("x".into())),
                ("n".into(), Datum::Long(5))
            ])
        );
        assert!(schema.decode(&[0x02, 0x78, 0x04]).is_err());
        assert!(schema.decode(&[0x02, 0x78, 0x00, 0x00]).is_err());
    }

    #[test]
    fn single_object_header() {
        let mut message = vec![0xC3, 0x01];
        message.extend_from_slice(&42u64.to_le_bytes());
        message.push(7);
        assert_eq!(single_object(&message), Some((42, &[7u8][..])));
        assert_eq!(single_object(&[0, 1, 2]), None);
    }
}
