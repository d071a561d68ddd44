//! Content hashes: of what was observed (a saved plan is applied only over the same world),
//! and of what a step made (the inventory). A hash that cannot be computed is an error,
//! never an empty string: an empty fingerprint would match any world.

use serde::Serialize;

/// A value that could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot fingerprint {what}: {source}")]
pub struct FingerprintError {
    pub what: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// A stable fingerprint of an observation: every topic, database, table (columns, keys,
/// engine, the views' statements) and live pipeline version.
pub fn fingerprint(observed: &crate::model::Observed) -> Result<String, FingerprintError> {
    fingerprint_json(observed, "what was observed")
}

/// A short content hash of anything serializable (maps are ordered: it is stable).
pub fn fingerprint_json(
    value: &impl Serialize,
    what: &'static str,
) -> Result<String, FingerprintError> {
    let json = serde_json::to_vec(value).map_err(|source| FingerprintError { what, source })?;
    Ok(short_hash(&json))
}

pub use crate::model::short_hash;
