//! What a worker runs: the live pipeline version's record (kept in [`crate::model`]).

pub use crate::model::ingest::{Endpoints, IngestSpec};
