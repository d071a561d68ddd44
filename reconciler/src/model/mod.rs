//! The model: what a revision wants ([`Desired`]), what exists ([`Observed`]), and the
//! names and ids of the resources paver manages. A leaf: it imports no other module of the
//! crate, so the planner, the providers, the executor and the workers can all use it.

pub mod connections;
pub mod ingest;
pub mod kube;
mod names;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use ingest::{Endpoints, IngestSpec};
pub use kube::ObjectRef;
pub use names::*;

/// `db.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub database: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.name)
    }
}

/// A column; `ty` is `None` when ClickHouse infers it from the transform at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: Option<String>,
}

/// A Kafka topic as wanted or as found (for a found one, `config` holds the topic's own
/// overrides, not the broker's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub partitions: i32,
    pub replication_factor: i32,
    pub config: BTreeMap<String, String>,
}

/// How ClickHouse computes a sink table's columns from a pipeline's source: the source's
/// columns (from the Avro schema) and the transform over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transform {
    pub source_columns: Vec<Column>,
    /// The transform, `FROM source` included; `None` copies the source's columns.
    pub query: Option<String>,
}

/// A sink table as a revision wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub partition_by: Option<String>,
    pub order_by: String,
    pub ttl_days: Option<u32>,
    pub transform: Transform,
    /// The pipeline and version that own it, for messages.
    pub owner: String,
}

/// One version of a pipeline, with the resources it runs on beside the other versions'
/// (blue/green): a staging table (Null engine) the worker inserts into, and two
/// materialized views on it: the transform into the sink, and the offsets into the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineVersion {
    pub version: u32,
    pub view: ViewSpec,
    /// What the ingestion worker needs to run this version.
    pub ingest: IngestSpec,
}

/// The staging table of a pipeline version and its two materialized views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSpec {
    pub pipeline: String,
    pub version: u32,
    pub staging: TableName,
    /// The transform into the sink (named so that ClickHouse runs it before `offsets`).
    pub view: TableName,
    /// The offsets of every inserted block into the ledger.
    pub offsets: TableName,
    /// The table the transform writes into.
    pub sink: TableName,
    pub ledger: TableName,
    /// The source's columns (the pipeline version's Avro schema).
    pub source_columns: Vec<Column>,
    /// The transform as the user wrote it (validated by the linter; rendered from its parse).
    pub query: Option<String>,
}

/// A pipeline: its live version and the versions whose resources are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub live: u32,
    /// The retained versions (the `retainVersions` newest of the repo), the live one included.
    pub versions: BTreeMap<u32, PipelineVersion>,
    /// The sink's database, where the staging tables, views and the ledger live.
    pub database: String,
}

/// What a revision wants to exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub topics: BTreeMap<String, Topic>,
    pub databases: BTreeSet<String>,
    #[serde(with = "pairs")]
    pub tables: BTreeMap<TableName, Table>,
    pub pipelines: BTreeMap<String, Pipeline>,
}

impl Desired {
    /// Rewrite every column type (a server without a type gets its nearest equivalent).
    pub fn map_types(&mut self, f: impl Fn(&str) -> String) {
        for table in self.tables.values_mut() {
            for column in table
                .columns
                .iter_mut()
                .chain(table.transform.source_columns.iter_mut())
            {
                if let Some(ty) = &column.ty {
                    column.ty = Some(f(ty));
                }
            }
        }
        for pipeline in self.pipelines.values_mut() {
            for version in pipeline.versions.values_mut() {
                // The worker's columns keep paver's types: it adapts values itself.
                for column in version.view.source_columns.iter_mut() {
                    if let Some(ty) = &column.ty {
                        column.ty = Some(f(ty));
                    }
                }
            }
        }
    }
}

/// A table as found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTable {
    pub columns: Vec<(String, String)>,
    pub partition_by: String,
    pub order_by: String,
    /// The engine's name (`MergeTree`, `Merge`, `Null`, `MaterializedView`, …).
    #[serde(default)]
    pub engine: String,
    /// How ClickHouse says the table was made (`create_table_query`), for views: what
    /// makes a retired version's views again if its retirement is undone. Empty where
    /// the server does not say.
    #[serde(default)]
    pub create_query: String,
}

/// What exists in Kafka and ClickHouse (only the names paver could manage are observed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub topics: BTreeMap<String, Topic>,
    pub databases: BTreeSet<String>,
    #[serde(with = "pairs")]
    pub tables: BTreeMap<TableName, ObservedTable>,
    /// The live version of every pipeline, as the state store has it.
    pub live: BTreeMap<String, IngestSpec>,
}

/// Maps keyed by a [`TableName`] as a list of `[key, value]` pairs: JSON object keys must
/// be strings, and a fingerprint of the map must never fail.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_observed_serializes_with_every_table() {
        let mut observed = Observed::default();
        let table = TableName {
            database: "db".into(),
            name: "t".into(),
        };
        observed.tables.insert(
            table.clone(),
            ObservedTable {
                order_by: "id".into(),
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&observed).unwrap();
        assert!(json.contains("\"order_by\":\"id\""), "{json}");
        let back: Observed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, observed);
    }
}
