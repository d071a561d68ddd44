//! The codec oracle's JSON: bytes in hex, and a datum as `tests/codec_oracle.py` prints it.
//! Shared by `tests/codec_oracle.rs` and `examples/avro_codec.rs`.

use paver::ingest::codec::Datum;
use serde_json::{json, Value as Json};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A datum as the oracle prints it.
pub fn plain(datum: &Datum) -> Json {
    match datum {
        Datum::Null => Json::Null,
        Datum::Boolean(b) => json!(b),
        Datum::Int(i) => json!(i),
        Datum::Long(l) => json!(l),
        Datum::Float(f) => json!(f64::from(*f)),
        Datum::Double(d) => json!(d),
        Datum::Bytes(b) | Datum::Fixed(b) => json!(hex(b)),
        Datum::String(s) | Datum::Enum(s) => json!(s),
        Datum::Array(items) => Json::Array(items.iter().map(plain).collect()),
        Datum::Record(fields) | Datum::Map(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
    }
}
