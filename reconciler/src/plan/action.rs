//! What a step does, grouped by who runs it: each provider runs its own actions, and the
//! dispatch is one exhaustive `match` ([`crate::providers::Targets`]).
//!
//! In JSON (saved plans, the journal) an action is one object tagged by `op`, whatever
//! its group: the groups are a Rust-side arrangement, so plans and journals written
//! before them still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Column, IngestSpec, ObjectRef, Table, TableName, Topic, Transform, ViewSpec};

/// One change to the real systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    Kafka(KafkaAction),
    ClickHouse(ClickHouseAction),
    /// The live version of a pipeline: recorded in the state store by the executor's
    /// cut-over, followed by the ingestion workers.
    Pipeline(PipelineAction),
    Kube(KubeAction),
}

/// Topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum KafkaAction {
    CreateTopic {
        name: String,
        topic: Topic,
    },
    DeleteTopic {
        name: String,
    },
    AlterTopicConfig {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    CreatePartitions {
        name: String,
        count: i32,
    },
}

/// Databases, sink tables, and the staging tables, views and ledgers of pipelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ClickHouseAction {
    CreateDatabase {
        name: String,
    },
    DropDatabase {
        name: String,
    },
    CreateTable {
        table: TableName,
        spec: Table,
    },
    DropTable {
        table: TableName,
    },
    AddColumn {
        table: TableName,
        column: Column,
        transform: Transform,
    },
    DropColumn {
        table: TableName,
        name: String,
    },
    /// The staging table of a pipeline version: the source's columns and the offsets,
    /// Null engine (it keeps nothing; its views do the work).
    CreateStaging {
        table: TableName,
        columns: Vec<Column>,
    },
    /// The ledger of a database's pipelines.
    CreateLedger {
        table: TableName,
    },
    /// The two views of a pipeline version (replaced if they exist: they hold no data).
    CreateViews {
        spec: Box<ViewSpec>,
    },
    /// Drop the two views of a pipeline version (they hold no data).
    DropViews {
        view: TableName,
        offsets: TableName,
    },
    /// Views made again from the statements ClickHouse had for them (`create_table_query`
    /// as observed): the undo of [`ClickHouseAction::DropViews`] for a version the
    /// revision no longer has.
    RestoreViews {
        view: TableName,
        statements: Vec<String>,
    },
    /// A sink needs a new physical table (its keys or a column type change): `create`
    /// gets the new layout, every physical table gets every column, and `table` becomes
    /// (or is replaced by) a Merge table over `<table>__v<N>`, switched in one RENAME. A
    /// MergeTree `table` is renamed to `original` in that same RENAME.
    SwitchGeneration {
        table: TableName,
        create: TableName,
        spec: Box<Table>,
        original: Option<TableName>,
        others: Vec<TableName>,
    },
    /// The undo: `original` back under the sink's name, the columns the switch added to
    /// older tables dropped (`(table, column)`, by their names after the undo), and
    /// `create` dropped if still empty.
    UnswitchGeneration {
        table: TableName,
        create: TableName,
        original: Option<TableName>,
        #[serde(default)]
        added: Vec<(TableName, String)>,
        /// On a cluster: the sharding key the `Distributed` table had before the switch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard_by: Option<String>,
    },
    /// On a cluster: `table` becomes (or is remade as) a `Distributed` table over
    /// `<table>__paver_merge`, on every node a Merge over the physical generations
    /// `<table>__v<N>`; their columns are those of `physical`, the rows spread by
    /// `shard_by` (`rand()` without one). A table that exists is swapped in one `RENAME`.
    CreateDistributed {
        table: TableName,
        physical: TableName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard_by: Option<String>,
    },
    /// The undo: the `Distributed` table and its Merge dropped on every node (they hold
    /// no rows: the physical tables do).
    DropDistributed {
        table: TableName,
    },
    /// On a cluster: a table that some nodes lack (dropped there by hand) made again
    /// there, from the statement of a node that has it (`IF NOT EXISTS`, `ON CLUSTER`): a
    /// replicated table joins its replicas again and fetches their rows. Not undone: it
    /// only makes the nodes agree.
    RepairTable {
        table: TableName,
        missing_on: Vec<String>,
    },
}

/// The cut-over of pipelines (see [`crate::cutover`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum PipelineAction {
    /// Make a version the live one: its views are made anew over the sink as it is then
    /// (`refresh`), and the ingestion switches to it (the previous version's worker stops
    /// and hands over its offsets).
    Activate {
        spec: Box<IngestSpec>,
        refresh: Option<Box<ViewSpec>>,
    },
    /// No version of the pipeline is live (it left the repo).
    Deactivate { pipeline: String },
    /// Wait until every running worker of the pipeline runs `version` (or none): after
    /// it, no worker inserts into another version's staging table, so those can be
    /// retired, and a revision reported applied is the one that ingests.
    AwaitHandover {
        pipeline: String,
        version: Option<u32>,
    },
}

/// Kubernetes objects rendered from ClickHouseClusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum KubeAction {
    /// Server-side apply of a Kubernetes object (field manager `paver`, forced). `create`:
    /// nothing was there; `changes`: the fields that differ from what is there.
    ApplyObject {
        object: serde_json::Value,
        create: bool,
        changes: Vec<String>,
    },
    /// Delete a Kubernetes object paver owns.
    DeleteObject { object: ObjectRef },
}

impl From<KafkaAction> for Action {
    fn from(a: KafkaAction) -> Action {
        Action::Kafka(a)
    }
}
impl From<ClickHouseAction> for Action {
    fn from(a: ClickHouseAction) -> Action {
        Action::ClickHouse(a)
    }
}
impl From<PipelineAction> for Action {
    fn from(a: PipelineAction) -> Action {
        Action::Pipeline(a)
    }
}
impl From<KubeAction> for Action {
    fn from(a: KubeAction) -> Action {
        Action::Kube(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_as_the_same_group_from_their_flat_json() {
        let actions: Vec<Action> = vec![
            KafkaAction::DeleteTopic { name: "t".into() }.into(),
            ClickHouseAction::CreateDatabase { name: "d".into() }.into(),
            PipelineAction::Deactivate {
                pipeline: "p".into(),
            }
            .into(),
            PipelineAction::AwaitHandover {
                pipeline: "p".into(),
                version: Some(2),
            }
            .into(),
            KubeAction::DeleteObject {
                object: ObjectRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: "n".into(),
                    name: "c".into(),
                },
            }
            .into(),
        ];
        for a in actions {
            let json = serde_json::to_value(&a).unwrap();
            assert!(json["op"].is_string(), "{json}");
            let back: Action = serde_json::from_value(json).unwrap();
            assert_eq!(back, a);
        }
        // A journal line written before the groups existed.
        let old: Action = serde_json::from_str(r#"{"op":"drop-database","name":"d"}"#).unwrap();
        assert_eq!(
            old,
            ClickHouseAction::DropDatabase { name: "d".into() }.into()
        );
    }
}
