//! What an ingestion worker needs to run one pipeline version: written into the state
//! store when the version goes live, read by the workers (inside `paver run`, or
//! `paver ingest` processes of their own).

use serde::{Deserialize, Serialize};

use super::{Column, TableName};

/// One live pipeline version, as the worker runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestSpec {
    pub pipeline: String,
    pub version: u32,
    pub topic: String,
    /// The consumer group of this version (`<consumerGroup>-v<N>`).
    pub group: String,
    /// The consumer group of the version that was live before, whose committed offsets
    /// this one starts from.
    pub previous_group: Option<String>,
    pub dead_letter_topic: String,
    /// Where the worker inserts: the staging table (Null engine).
    pub staging: TableName,
    /// The views that must exist on the staging table before anything is inserted (a
    /// Null table without them would swallow rows).
    pub views: Vec<TableName>,
    /// The ledger of inserted offsets.
    pub ledger: TableName,
    /// The staging table's columns: the reader schema's fields, as ClickHouse types.
    pub columns: Vec<Column>,
    /// The reader schema (this version's `<subject>@<N>`), as JSON text.
    pub reader: String,
    /// Every released version of the subject (the writers' schemas a record may name by
    /// its fingerprint): (version, JSON text).
    pub writers: Vec<(u32, String)>,
}

/// Where a worker finds the servers and how it connects, recorded with the live version
/// (no secrets: only where they are read from).
pub type Endpoints = super::connections::Connections;
