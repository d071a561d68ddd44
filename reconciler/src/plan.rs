//! The plan: a pure function of what a revision wants ([`Desired`]), what exists
//! ([`Observed`]) and what paver manages, to the ordered steps that get from one to the
//! other, each with its compensation. No I/O here: it is tested without any server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

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
    pub ingest: crate::ingest::spec::IngestSpec,
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
    pub tables: BTreeMap<TableName, Table>,
    pub pipelines: BTreeMap<String, Pipeline>,
}

/// Names of a pipeline version's resources: `__paver_<pipeline>_v<N>` (the pipeline's
/// hyphens as underscores: names are DNS labels, so this is one to one).
pub fn staging_name(pipeline: &str, version: u32) -> String {
    format!("__paver_{}_v{version}", pipeline.replace('-', "_"))
}

/// The ledger of a database: the last offset every pipeline inserted, per partition.
pub const LEDGER: &str = "__paver_offsets";

/// Which pipeline version a paver table of a database belongs to, from its name.
pub fn version_of_staging(pipeline: &str, name: &str) -> Option<u32> {
    let prefix = format!("__paver_{}_v", pipeline.replace('-', "_"));
    name.strip_prefix(&prefix)?.parse().ok()
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
}

/// What exists in Kafka and ClickHouse (only the names paver could manage are observed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub topics: BTreeMap<String, Topic>,
    pub databases: BTreeSet<String>,
    pub tables: BTreeMap<TableName, ObservedTable>,
    /// The live version of every pipeline, as the state store has it.
    pub live: BTreeMap<String, crate::ingest::spec::IngestSpec>,
}

/// One change to the real systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Action {
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
    DropViews {
        view: TableName,
        offsets: TableName,
    },
    /// Make a version the live one: its views are made anew over the sink as it is then
    /// (`refresh`), and the ingestion switches to it (the previous version's worker stops
    /// and hands over its offsets).
    Activate {
        spec: Box<crate::ingest::spec::IngestSpec>,
        refresh: Option<Box<ViewSpec>>,
    },
    /// No version of the pipeline is live (it left the repo).
    Deactivate {
        pipeline: String,
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
    },
    /// Server-side apply of a Kubernetes object (field manager `paver`, forced). `create`:
    /// nothing was there; `changes`: the fields that differ from what is there.
    ApplyObject {
        object: serde_json::Value,
        create: bool,
        changes: Vec<String>,
    },
    /// Delete a Kubernetes object paver owns.
    DeleteObject {
        object: crate::kube::ObjectRef,
    },
}

/// A step of a plan: what to do, how to undo it, and whether it can be undone at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The managed resource it concerns: `topic:<name>`, `database:<name>`, `table:<db>.<t>`.
    pub resource: String,
    pub action: Action,
    pub compensation: Option<Action>,
    /// Cannot be undone (a partition increase): marked in the plan for review.
    pub irreversible: bool,
}

/// Why a revision cannot be applied to what exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub resource: String,
    pub message: String,
}

/// The plan for a revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub revision: String,
    pub steps: Vec<Step>,
    /// Differences that are there but not repaired by this plan (reported).
    pub notes: Vec<String>,
    /// A fingerprint of what was observed: applying a saved plan refuses if it moved.
    pub observed: String,
}

impl Plan {
    pub fn irreversible(&self) -> usize {
        self.steps.iter().filter(|s| s.irreversible).count()
    }
}

/// Resource ids, as in the inventory.
pub fn topic_id(name: &str) -> String {
    format!("topic:{name}")
}

pub fn database_id(name: &str) -> String {
    format!("database:{name}")
}

pub fn table_id(table: &TableName) -> String {
    format!("table:{table}")
}

/// ClickHouse rewrites keys (`(a, b)` is stored as `a, b`; spaces and quotes vary): compare
/// them in one spelling.
pub fn normalize_key(key: &str) -> String {
    let compact: String = key
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '`' && *c != '"')
        .collect();
    strip_outer_parens(&compact).to_string()
}

fn strip_outer_parens(text: &str) -> &str {
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return text;
    };
    // Only when the parentheses enclose the whole: `(a),(b)` keeps them.
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return text;
        }
    }
    inner
}

/// The steps from `observed` to `desired`. `managed` holds the resources paver created;
/// anything else in the way is a blocker, never something to drop.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    managed: &BTreeSet<String>,
    revision: &str,
) -> Result<Plan, Vec<Blocker>> {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut blockers = Vec::new();
    let mut block =
        |resource: String, message: String| blockers.push(Blocker { resource, message });

    for (name, want) in &desired.topics {
        let id = topic_id(name);
        let Some(have) = observed.topics.get(name) else {
            steps.push(Step {
                resource: id,
                action: Action::CreateTopic {
                    name: name.clone(),
                    topic: want.clone(),
                },
                compensation: Some(Action::DeleteTopic { name: name.clone() }),
                irreversible: false,
            });
            continue;
        };
        if !managed.contains(&id) {
            block(id, format!("the topic `{name}` exists and paver did not create it: paver never takes over or drops what it does not manage"));
            continue;
        }
        if want.partitions < have.partitions {
            block(id.clone(), format!("topic `{name}` has {} partitions; the revision wants {}: Kafka cannot remove partitions", have.partitions, want.partitions));
        } else if want.partitions > have.partitions {
            steps.push(Step {
                resource: id.clone(),
                action: Action::CreatePartitions {
                    name: name.clone(),
                    count: want.partitions,
                },
                compensation: None,
                irreversible: true,
            });
        }
        if want.replication_factor != have.replication_factor {
            notes.push(format!(
                "topic `{name}` has replication factor {}, the revision says {}: paver does not reassign partitions",
                have.replication_factor, want.replication_factor
            ));
        }
        let set: BTreeMap<String, String> = want
            .config
            .iter()
            .filter(|(k, v)| have.config.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let delete: Vec<String> = have
            .config
            .keys()
            .filter(|k| !want.config.contains_key(*k))
            .cloned()
            .collect();
        if !set.is_empty() || !delete.is_empty() {
            // The undo restores what was there: old values back, new keys removed.
            let restore: BTreeMap<String, String> = set
                .keys()
                .chain(delete.iter())
                .filter_map(|k| have.config.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let unset: Vec<String> = set
                .keys()
                .filter(|k| !have.config.contains_key(*k))
                .cloned()
                .collect();
            steps.push(Step {
                resource: id,
                action: Action::AlterTopicConfig {
                    name: name.clone(),
                    set,
                    delete,
                },
                compensation: Some(Action::AlterTopicConfig {
                    name: name.clone(),
                    set: restore,
                    delete: unset,
                }),
                irreversible: false,
            });
        }
    }

    for name in &desired.databases {
        if !observed.databases.contains(name) {
            steps.push(Step {
                resource: database_id(name),
                action: Action::CreateDatabase { name: name.clone() },
                compensation: Some(Action::DropDatabase { name: name.clone() }),
                irreversible: false,
            });
        }
    }

    // The sink of every pipeline: created, evolved in place, or given a new physical
    // table (a new generation) when its keys or a column type change; `physical` is where
    // the live version's transform writes.
    let mut physical = BTreeMap::new();
    for (table, want) in &desired.tables {
        // The pipeline whose live version writes this sink: its version names a new
        // generation, and the version live until now names the table it replaces.
        let owner = desired.pipelines.iter().find(|(_, p)| {
            p.versions
                .get(&p.live)
                .is_some_and(|v| &v.view.sink == table)
        });
        let generation = owner.map_or(1, |(_, p)| p.live);
        let previous = owner
            .and_then(|(name, _)| observed.live.get(name))
            .map(|s| s.version);
        if let Some(target) = plan_sink(
            table,
            want,
            observed,
            managed,
            generation,
            previous,
            &mut steps,
            &mut blockers,
        ) {
            physical.insert(table.clone(), target);
        }
    }
    plan_pipelines(
        desired,
        observed,
        managed,
        &physical,
        &mut steps,
        &mut blockers,
    );
    // What paver created and the revision no longer has: kept, never dropped (data and
    // consumers may still depend on it); reported so that someone can retire it by hand.
    for id in managed {
        let gone = match id.split_once(':') {
            Some(("topic", name)) => {
                !desired.topics.contains_key(name) && observed.topics.contains_key(name)
            }
            Some(("table", name)) => {
                let generation_of = |t: &TableName| {
                    name.strip_prefix(&format!("{t}__v"))
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                };
                !name.contains(".__paver_")
                    && !desired
                        .tables
                        .keys()
                        .any(|t| t.to_string() == name || generation_of(t))
            }
            _ => false,
        };
        if gone {
            notes.push(format!(
                "{id} is no longer in the repo: kept (paver never deletes topics or tables)"
            ));
        }
    }
    if !blockers.is_empty() {
        return Err(blockers);
    }
    Ok(Plan {
        revision: revision.to_string(),
        steps,
        notes,
        observed: fingerprint(observed),
    })
}

/// Why a table cannot take what a revision wants in place (its keys, a column's type).
fn incompatibilities(table: &TableName, want: &Table, have: &ObservedTable) -> Vec<String> {
    let mut out = Vec::new();
    if normalize_key(&want.order_by) != normalize_key(&have.order_by) {
        out.push(format!(
            "`{table}` is ordered by `{}`; {} wants `{}`",
            have.order_by, want.owner, want.order_by
        ));
    }
    let want_partition = want
        .partition_by
        .as_deref()
        .map(normalize_key)
        .unwrap_or_default();
    if want_partition != normalize_key(&have.partition_by) {
        out.push(format!(
            "`{table}` is partitioned by `{}`; {} wants `{}`",
            have.partition_by,
            want.owner,
            want.partition_by.as_deref().unwrap_or("")
        ));
    }
    for column in &want.columns {
        if let (Some((_, ty)), Some(want_ty)) = (
            have.columns.iter().find(|(n, _)| *n == column.name),
            &column.ty,
        ) {
            if !paver_lint::clickhouse::holds(ty, want_ty) {
                out.push(format!(
                    "column `{}` of `{table}` is {ty}; {} writes {want_ty}",
                    column.name, want.owner
                ));
            }
        }
    }
    out
}

/// The physical tables of a sink that became a Merge table: `<name>__v<N>`, newest first.
pub fn generations(table: &TableName, observed: &Observed) -> Vec<(u32, TableName)> {
    let prefix = format!("{}__v", table.name);
    let mut out: Vec<(u32, TableName)> = observed
        .tables
        .keys()
        .filter(|t| t.database == table.database)
        .filter_map(|t| Some((t.name.strip_prefix(&prefix)?.parse().ok()?, t.clone())))
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.0));
    out
}

fn generation_name(table: &TableName, n: u32) -> TableName {
    TableName {
        database: table.database.clone(),
        name: format!("{}__v{n}", table.name),
    }
}

fn add_missing_columns(
    table: &TableName,
    want: &Table,
    have: &ObservedTable,
    steps: &mut Vec<Step>,
    resource: &str,
) {
    for column in &want.columns {
        if !have.columns.iter().any(|(n, _)| *n == column.name) {
            steps.push(Step {
                resource: resource.to_string(),
                action: Action::AddColumn {
                    table: table.clone(),
                    column: column.clone(),
                    transform: want.transform.clone(),
                },
                compensation: Some(Action::DropColumn {
                    table: table.clone(),
                    name: column.name.clone(),
                }),
                irreversible: false,
            });
        }
    }
}

/// The steps of one sink table; returns the physical table the live version writes into.
#[allow(clippy::too_many_arguments)]
fn plan_sink(
    table: &TableName,
    want: &Table,
    observed: &Observed,
    managed: &BTreeSet<String>,
    generation: u32,
    previous: Option<u32>,
    steps: &mut Vec<Step>,
    blockers: &mut Vec<Blocker>,
) -> Option<TableName> {
    let id = table_id(table);
    let Some(have) = observed.tables.get(table) else {
        steps.push(Step {
            resource: id,
            action: Action::CreateTable {
                table: table.clone(),
                spec: want.clone(),
            },
            compensation: Some(Action::DropTable {
                table: table.clone(),
            }),
            irreversible: false,
        });
        return Some(table.clone());
    };
    if !managed.contains(&id) {
        blockers.push(Blocker { resource: id, message: format!("the table `{table}` exists and paver did not create it: paver never takes over or drops what it does not manage") });
        return None;
    }
    let new_generation = |original: Option<TableName>,
                          others: Vec<TableName>,
                          steps: &mut Vec<Step>,
                          blockers: &mut Vec<Blocker>| {
        let create = generation_name(table, generation);
        if observed.tables.contains_key(&create)
            || original
                .as_ref()
                .is_some_and(|o| observed.tables.contains_key(o))
        {
            blockers.push(Blocker {
                resource: table_id(table),
                message: format!("`{table}` needs a new physical table, and `{create}` exists already: remove it or release the change as a newer version"),
            });
            return None;
        }
        let action = Action::SwitchGeneration {
            table: table.clone(),
            create: create.clone(),
            spec: Box::new(want.clone()),
            original: original.clone(),
            others: others.clone(),
        };
        // What the switch adds to the older tables, for its undo.
        let mut added = Vec::new();
        let older: Vec<(&TableName, TableName)> = match &original {
            Some(_) => vec![(table, table.clone())],
            None => others.iter().map(|t| (t, t.clone())).collect(),
        };
        for (observed_as, undo_as) in older {
            if let Some(h) = observed.tables.get(observed_as) {
                for c in &want.columns {
                    if !h.columns.iter().any(|(n, _)| *n == c.name) {
                        added.push((undo_as.clone(), c.name.clone()));
                    }
                }
            }
        }
        steps.push(Step {
            resource: table_id(table),
            compensation: Some(Action::UnswitchGeneration {
                table: table.clone(),
                create: create.clone(),
                original,
                added,
            }),
            action,
            irreversible: false,
        });
        Some(create)
    };
    if have.engine != "Merge" {
        let problems = incompatibilities(table, want, have);
        if problems.is_empty() {
            add_missing_columns(table, want, have, steps, &id);
            return Some(table.clone());
        }
        // Keys or a type changed: the table's rows stay where they are, under a new name;
        // a new physical table takes the new layout; `db.table` becomes a Merge table
        // that reads them all, switched in one RENAME.
        let original = generation_name(
            table,
            previous.unwrap_or(generation.saturating_sub(1)).max(1),
        );
        let original = if original.name == generation_name(table, generation).name {
            generation_name(table, 0)
        } else {
            original
        };
        return new_generation(Some(original), Vec::new(), steps, blockers);
    }
    // Already a Merge of generations: the newest physical table that can take the
    // revision in place, else a new one.
    let physicals = generations(table, observed);
    let others: Vec<TableName> = physicals.iter().map(|(_, t)| t.clone()).collect();
    for (_, p) in &physicals {
        let Some(ph) = observed.tables.get(p) else {
            continue;
        };
        if incompatibilities(p, want, ph).is_empty() {
            // Every physical table and the Merge table get the new columns (18.16's Merge
            // reads a column only if every table has it).
            for t in others.iter().chain(std::iter::once(table)) {
                if let Some(h) = observed.tables.get(t) {
                    add_missing_columns(t, want, h, steps, &id);
                }
            }
            return Some(p.clone());
        }
    }
    new_generation(None, others, steps, blockers)
}

/// The steps of the pipelines: the ledger of each database, each retained version's
/// staging table and views, the cut-over to the live version, and the retirement of
/// versions no longer retained (their staging tables and views hold no data: the rows are
/// in the sink).
fn plan_pipelines(
    desired: &Desired,
    observed: &Observed,
    managed: &BTreeSet<String>,
    physical: &BTreeMap<TableName, TableName>,
    steps: &mut Vec<Step>,
    blockers: &mut Vec<Blocker>,
) {
    let mut ledgers = BTreeSet::new();
    let owned = |table: &TableName, blockers: &mut Vec<Blocker>| -> bool {
        let id = table_id(table);
        if observed.tables.contains_key(table) && !managed.contains(&id) {
            blockers.push(Blocker {
                resource: id,
                message: format!("the table `{table}` exists and paver did not create it: paver never takes over or drops what it does not manage"),
            });
            return false;
        }
        true
    };
    for (name, pipeline) in &desired.pipelines {
        let ledger = TableName {
            database: pipeline.database.clone(),
            name: LEDGER.to_string(),
        };
        if ledgers.insert(ledger.clone())
            && owned(&ledger, blockers)
            && !observed.tables.contains_key(&ledger)
        {
            steps.push(Step {
                resource: table_id(&ledger),
                action: Action::CreateLedger {
                    table: ledger.clone(),
                },
                compensation: Some(Action::DropTable { table: ledger }),
                irreversible: false,
            });
        }
        let Some(live) = pipeline.versions.get(&pipeline.live) else {
            continue;
        };
        let current = observed.live.get(name);
        let switching = current.map(|c| c.version) != Some(pipeline.live);
        // The views write into the physical table the live version's layout lives in.
        let with_target = |v: &ViewSpec| {
            let mut v = v.clone();
            if let Some(p) = physical.get(&v.sink) {
                v.sink = p.clone();
            }
            v
        };
        for (version, v) in &pipeline.versions {
            let spec = &with_target(&v.view);
            if !owned(&spec.staging, blockers) || !owned(&spec.view, blockers) {
                continue;
            }
            if !observed.tables.contains_key(&spec.staging) {
                steps.push(Step {
                    resource: table_id(&spec.staging),
                    action: Action::CreateStaging {
                        table: spec.staging.clone(),
                        columns: spec.source_columns.clone(),
                    },
                    compensation: Some(Action::DropTable {
                        table: spec.staging.clone(),
                    }),
                    irreversible: false,
                });
            }
            let refreshed = switching && *version == pipeline.live;
            let missing = !observed.tables.contains_key(&spec.view)
                || !observed.tables.contains_key(&spec.offsets);
            if missing && !refreshed {
                steps.push(Step {
                    resource: table_id(&spec.view),
                    action: Action::CreateViews {
                        spec: Box::new(spec.clone()),
                    },
                    compensation: Some(Action::DropViews {
                        view: spec.view.clone(),
                        offsets: spec.offsets.clone(),
                    }),
                    irreversible: false,
                });
            }
        }
        // The cut-over: one step, last, so that everything it needs exists when it runs.
        let mut want = live.ingest.clone();
        let comparable = |s: &crate::ingest::spec::IngestSpec| {
            let mut s = s.clone();
            s.previous_group = None;
            s
        };
        match current {
            Some(now) if !switching => {
                if comparable(now) != comparable(&want) {
                    want.previous_group = now.previous_group.clone();
                    steps.push(Step {
                        resource: pipeline_id(name),
                        action: Action::Activate {
                            spec: Box::new(want),
                            refresh: None,
                        },
                        compensation: Some(Action::Activate {
                            spec: Box::new(now.clone()),
                            refresh: None,
                        }),
                        irreversible: false,
                    });
                }
            }
            _ => {
                want.previous_group = current.map(|c| c.group.clone());
                steps.push(Step {
                    resource: pipeline_id(name),
                    action: Action::Activate {
                        spec: Box::new(want),
                        refresh: Some(Box::new(with_target(&live.view))),
                    },
                    compensation: Some(match current {
                        Some(now) => Action::Activate {
                            spec: Box::new(now.clone()),
                            refresh: None,
                        },
                        None => Action::Deactivate {
                            pipeline: name.clone(),
                        },
                    }),
                    irreversible: false,
                });
            }
        }
        // Retirement of the versions that are no longer kept. Not the version that is live
        // until this revision's cut-over: its worker may still be inserting into its staging
        // table for a moment, and a Null table without its views would swallow those rows.
        // It is retired by the next reconcile.
        let live_now = current.map(|c| c.version);
        for (table, have) in &observed.tables {
            if table.database != pipeline.database {
                continue;
            }
            let Some(version) = version_of_staging(name, &table.name) else {
                continue;
            };
            if pipeline.versions.contains_key(&version)
                || !managed.contains(&table_id(table))
                || live_now == Some(version)
            {
                continue;
            }
            let view = TableName {
                database: table.database.clone(),
                name: format!("{}_mv", table.name),
            };
            let offsets = TableName {
                database: table.database.clone(),
                name: format!("{}_mv_offsets", table.name),
            };
            if observed.tables.contains_key(&view) || observed.tables.contains_key(&offsets) {
                steps.push(Step {
                    resource: table_id(&view),
                    action: Action::DropViews { view, offsets },
                    compensation: None,
                    irreversible: false,
                });
            }
            let columns = have
                .columns
                .iter()
                .filter(|(n, _)| !n.starts_with("_paver_"))
                .map(|(n, t)| Column {
                    name: n.clone(),
                    ty: Some(t.clone()),
                })
                .collect();
            steps.push(Step {
                resource: table_id(table),
                action: Action::DropTable {
                    table: table.clone(),
                },
                compensation: Some(Action::CreateStaging {
                    table: table.clone(),
                    columns,
                }),
                irreversible: false,
            });
        }
    }
    // Pipelines that left the repo: no version is live any more (their tables are kept).
    for (name, now) in &observed.live {
        if !desired.pipelines.contains_key(name) {
            steps.push(Step {
                resource: pipeline_id(name),
                action: Action::Deactivate {
                    pipeline: name.clone(),
                },
                compensation: Some(Action::Activate {
                    spec: Box::new(now.clone()),
                    refresh: None,
                }),
                irreversible: false,
            });
        }
    }
}

pub fn pipeline_id(name: &str) -> String {
    format!("pipeline:{name}")
}

/// A stable fingerprint of an observation.
pub fn fingerprint(observed: &Observed) -> String {
    fingerprint_json(observed)
}

/// A short content hash of anything serializable (maps are ordered: it is stable).
pub fn fingerprint_json(value: &impl Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The plan as a reviewer reads it, Terraform-style.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let short = &plan.revision[..plan.revision.len().min(12)];
    let _ = writeln!(
        out,
        "paver plan for {short}: {} steps, {} irreversible",
        plan.steps.len(),
        plan.irreversible()
    );
    for step in &plan.steps {
        let (sign, text) = describe(&step.action);
        let mark = if step.irreversible {
            "  (irreversible)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {sign} {text}{mark}");
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  ! {note}");
    }
    if plan.steps.is_empty() {
        let _ = writeln!(out, "  no changes: the real systems match the revision");
    }
    out
}

/// The plan as Markdown, for a pull-request comment (the Atlantis-style preview).
pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let short = &plan.revision[..plan.revision.len().min(12)];
    let _ = writeln!(out, "### paver plan for `{short}`\n");
    if plan.steps.is_empty() {
        let _ = writeln!(out, "No changes: the real systems match this revision.");
    } else {
        let _ = writeln!(
            out,
            "**{} steps**, {} irreversible.\n\n| | step | irreversible |\n|---|---|---|",
            plan.steps.len(),
            plan.irreversible()
        );
        for step in &plan.steps {
            let (sign, text) = describe(&step.action);
            let mark = if step.irreversible {
                ":warning: yes"
            } else {
                ""
            };
            let _ = writeln!(out, "| `{sign}` | {} | {mark} |", text.replace('|', "\\|"));
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "\n> {note}");
    }
    out
}

/// A sign (`+`, `~`, `-`) and a line for an action.
pub fn describe(action: &Action) -> (char, String) {
    let kv = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match action {
        Action::CreateTopic { name, topic } => (
            '+',
            format!(
                "create topic {name} ({} partitions, replication factor {}{})",
                topic.partitions,
                topic.replication_factor,
                if topic.config.is_empty() {
                    String::new()
                } else {
                    format!(", {}", kv(&topic.config))
                }
            ),
        ),
        Action::DeleteTopic { name } => ('-', format!("delete topic {name}")),
        Action::AlterTopicConfig { name, set, delete } => {
            let mut parts = Vec::new();
            if !set.is_empty() {
                parts.push(format!("set {}", kv(set)));
            }
            if !delete.is_empty() {
                parts.push(format!("reset {}", delete.join(", ")));
            }
            (
                '~',
                format!("alter topic {name} config: {}", parts.join("; ")),
            )
        }
        Action::CreatePartitions { name, count } => (
            '~',
            format!("increase partitions of topic {name} to {count}"),
        ),
        Action::CreateDatabase { name } => ('+', format!("create database {name}")),
        Action::DropDatabase { name } => ('-', format!("drop database {name}")),
        Action::CreateTable { table, spec } => (
            '+',
            format!(
                "create table {table} ({} columns, ORDER BY {}{})",
                spec.columns.len(),
                spec.order_by,
                spec.partition_by
                    .as_ref()
                    .map(|p| format!(", PARTITION BY {p}"))
                    .unwrap_or_default()
            ),
        ),
        Action::DropTable { table } => ('-', format!("drop table {table}")),
        Action::AddColumn { table, column, .. } => (
            '~',
            format!(
                "add column {} {} to {table}",
                column.name,
                column.ty.as_deref().unwrap_or("(type from the transform)")
            ),
        ),
        Action::DropColumn { table, name } => ('-', format!("drop column {name} of {table}")),
        Action::CreateStaging { table, columns } => (
            '+',
            format!("create staging table {table} ({} columns, Null engine)", columns.len()),
        ),
        Action::CreateLedger { table } => ('+', format!("create offsets ledger {table}")),
        Action::CreateViews { spec } => (
            '+',
            format!(
                "create views of {} v{}: {} -> {}",
                spec.pipeline, spec.version, spec.staging, spec.sink
            ),
        ),
        Action::DropViews { view, .. } => ('-', format!("retire views {view} (no data)")),
        Action::Activate { spec, refresh } => (
            '~',
            match (refresh, &spec.previous_group) {
                (Some(_), Some(previous)) => format!(
                    "cut over pipeline {} to v{} (consumer group {}, from the offsets of {previous})",
                    spec.pipeline, spec.version, spec.group
                ),
                (Some(_), None) => format!(
                    "start pipeline {} at v{} (consumer group {})",
                    spec.pipeline, spec.version, spec.group
                ),
                (None, _) => format!("update the ingestion of pipeline {} v{}", spec.pipeline, spec.version),
            },
        ),
        Action::Deactivate { pipeline } => ('-', format!("stop the ingestion of pipeline {pipeline}")),
        Action::SwitchGeneration { table, create, spec, original, .. } => (
            '~',
            format!(
                "new physical table {create} (ORDER BY {}) for {table}; {table} becomes a Merge over all of them{}",
                spec.order_by,
                original
                    .as_ref()
                    .map(|o| format!(", its rows kept as {o}"))
                    .unwrap_or_default()
            ),
        ),
        Action::UnswitchGeneration { table, create, .. } => (
            '~',
            format!("switch {table} back from its new physical table {create}"),
        ),
        Action::ApplyObject {
            object,
            create,
            changes,
        } => describe_apply(object, *create, changes),
        Action::DeleteObject { object } => ('-', format!("delete {object}")),
    }
}

// ---- Kubernetes: the objects rendered from ClickHouseClusters (crate::kube) --------------

fn describe_apply(object: &serde_json::Value, create: bool, changes: &[String]) -> (char, String) {
    let name = crate::kube::ObjectRef::of(object)
        .map(|r| r.to_string())
        .unwrap_or_else(|| "an object".to_string());
    if create {
        ('+', format!("create {name} (server-side apply)"))
    } else if changes.is_empty() {
        ('~', format!("apply {name}"))
    } else {
        ('~', format!("apply {name}: {}", changes.join(", ")))
    }
}

/// The Kubernetes steps from `observed` to `desired` (rendered objects): create what is
/// missing (undo: delete it), apply what differs (undo: apply what paver had applied
/// before), delete what paver owns and the revision no longer renders (undo: apply it
/// again). An object in the way that paver does not own is a blocker, never taken over.
/// Appended to [`plan`]'s steps when a Kubernetes target is configured.
pub fn plan_kube(
    desired: &[serde_json::Value],
    observed: &BTreeMap<crate::kube::ObjectRef, serde_json::Value>,
) -> Result<Vec<Step>, Vec<Blocker>> {
    use crate::kube::{self, ObjectRef};
    let mut steps = Vec::new();
    let mut blockers = Vec::new();
    let mut wanted = BTreeSet::new();
    for object in desired {
        let Some(r) = ObjectRef::of(object) else {
            continue;
        };
        wanted.insert(r.clone());
        let apply = kube::with_applied(object);
        match observed.get(&r) {
            None => steps.push(Step {
                resource: r.id(),
                action: Action::ApplyObject {
                    object: apply,
                    create: true,
                    changes: Vec::new(),
                },
                compensation: Some(Action::DeleteObject { object: r }),
                irreversible: false,
            }),
            Some(have)
                if have["metadata"]["labels"][kube::MANAGED_BY].as_str() != Some(kube::MANAGER) =>
            {
                blockers.push(Blocker {
                    resource: r.id(),
                    message: format!("{r} exists and paver did not create it (it has no `{}: {}` label): paver never takes over what it does not manage", kube::MANAGED_BY, kube::MANAGER),
                });
            }
            Some(have) if !kube::contains(have, &apply) => steps.push(Step {
                resource: r.id(),
                action: Action::ApplyObject {
                    changes: kube::differences(have, object),
                    object: apply,
                    create: false,
                },
                compensation: Some(Action::ApplyObject {
                    object: kube::previous(have),
                    create: false,
                    changes: Vec::new(),
                }),
                irreversible: false,
            }),
            Some(_) => {}
        }
    }
    for (r, have) in observed {
        if !wanted.contains(r) && kube::is_paver_owned(have) {
            steps.push(Step {
                resource: r.id(),
                action: Action::DeleteObject { object: r.clone() },
                compensation: Some(Action::ApplyObject {
                    object: kube::previous(have),
                    create: true,
                    changes: Vec::new(),
                }),
                irreversible: false,
            });
        }
    }
    if blockers.is_empty() {
        Ok(steps)
    } else {
        Err(blockers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(partitions: i32, config: &[(&str, &str)]) -> Topic {
        Topic {
            partitions,
            replication_factor: 1,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn pipeline_version(version: u32) -> PipelineVersion {
        let t = |n: String| TableName {
            database: "db".into(),
            name: n,
        };
        let staging = t(staging_name("p", version));
        let view = ViewSpec {
            pipeline: "p".into(),
            version,
            staging: staging.clone(),
            view: t(format!("{}_mv", staging.name)),
            offsets: t(format!("{}_mv_offsets", staging.name)),
            sink: t("s".into()),
            ledger: t(LEDGER.into()),
            source_columns: vec![],
            query: None,
        };
        PipelineVersion {
            version,
            ingest: crate::ingest::spec::IngestSpec {
                pipeline: "p".into(),
                version,
                topic: "t".into(),
                group: format!("g-v{version}"),
                previous_group: None,
                dead_letter_topic: "d".into(),
                staging,
                views: vec![view.view.clone(), view.offsets.clone()],
                ledger: view.ledger.clone(),
                columns: vec![],
                reader: String::new(),
                writers: vec![],
            },
            view,
        }
    }

    #[test]
    fn a_reverted_version_is_retired_only_once_its_worker_has_stopped() {
        let v1 = pipeline_version(1);
        let v2 = pipeline_version(2);
        let mut desired = Desired::default();
        desired.pipelines.insert(
            "p".into(),
            Pipeline {
                live: 1,
                versions: BTreeMap::from([(1, v1.clone())]),
                database: "db".into(),
            },
        );
        // v2 was live and has its resources; the revision (a revert) wants v1 only.
        let mut observed = Observed::default();
        let mut managed = BTreeSet::new();
        for v in [&v1, &v2] {
            for t in [&v.view.staging, &v.view.view, &v.view.offsets] {
                observed.tables.insert(t.clone(), ObservedTable::default());
                managed.insert(table_id(t));
            }
        }
        observed
            .tables
            .insert(v1.view.ledger.clone(), ObservedTable::default());
        managed.insert(table_id(&v1.view.ledger));
        observed.live.insert("p".into(), v2.ingest.clone());
        let retires = |p: &Plan| {
            p.steps.iter().any(
                |s| matches!(&s.action, Action::DropTable { table } if *table == v2.view.staging),
            )
        };
        let revert = plan(&desired, &observed, &managed, "r").unwrap();
        assert!(
            matches!(&revert.steps[0].action, Action::Activate { spec, refresh: Some(_) } if spec.version == 1 && spec.previous_group.as_deref() == Some("g-v2"))
        );
        assert!(!retires(&revert), "{:?}", revert.steps);
        // The next reconcile, v1 live: v2's views and staging table go.
        observed.live.insert("p".into(), v1.ingest.clone());
        let next = plan(&desired, &observed, &managed, "r").unwrap();
        assert!(retires(&next), "{:?}", next.steps);
        assert!(next
            .steps
            .iter()
            .any(|s| matches!(&s.action, Action::DropViews { view, .. } if *view == v2.view.view)));
    }

    #[test]
    fn keys_compare_in_one_spelling() {
        assert_eq!(normalize_key("(userId, eventTime)"), "userId,eventTime");
        assert_eq!(normalize_key("userId, eventTime"), "userId,eventTime");
        assert_eq!(normalize_key("toYYYYMM(eventTime)"), "toYYYYMM(eventTime)");
        assert_eq!(normalize_key("(a),(b)"), "(a),(b)");
    }

    #[test]
    fn creates_what_is_missing_and_nothing_twice() {
        let mut desired = Desired::default();
        desired
            .topics
            .insert("t".into(), topic(3, &[("retention.ms", "1000")]));
        desired.databases.insert("db".into());
        let first = plan(&desired, &Observed::default(), &BTreeSet::new(), "r1").unwrap();
        assert_eq!(first.steps.len(), 2);
        assert!(render(&first)
            .contains("+ create topic t (3 partitions, replication factor 1, retention.ms=1000)"));
        let mut observed = Observed::default();
        observed
            .topics
            .insert("t".into(), topic(3, &[("retention.ms", "1000")]));
        observed.databases.insert("db".into());
        let managed = BTreeSet::from([topic_id("t"), database_id("db")]);
        let second = plan(&desired, &observed, &managed, "r1").unwrap();
        assert!(second.steps.is_empty(), "{second:?}");
    }

    #[test]
    fn resources_that_leave_the_repo_are_kept_and_reported() {
        let mut observed = Observed::default();
        observed.topics.insert("old".into(), topic(3, &[]));
        let p = plan(
            &Desired::default(),
            &observed,
            &BTreeSet::from([topic_id("old")]),
            "r",
        )
        .unwrap();
        assert!(p.steps.is_empty());
        assert!(p.notes[0].contains("topic:old is no longer in the repo: kept"));
    }

    #[test]
    fn never_takes_over_what_paver_did_not_create() {
        let mut desired = Desired::default();
        desired.topics.insert("t".into(), topic(3, &[]));
        let mut observed = Observed::default();
        observed.topics.insert("t".into(), topic(3, &[]));
        let blockers = plan(&desired, &observed, &BTreeSet::new(), "r").unwrap_err();
        assert!(blockers[0].message.contains("paver did not create it"));
    }

    #[test]
    fn config_changes_carry_their_undo_and_partitions_are_irreversible() {
        let mut desired = Desired::default();
        desired.topics.insert(
            "t".into(),
            topic(6, &[("retention.ms", "2000"), ("cleanup.policy", "delete")]),
        );
        let mut observed = Observed::default();
        observed.topics.insert(
            "t".into(),
            topic(3, &[("retention.ms", "1000"), ("segment.ms", "5")]),
        );
        let p = plan(&desired, &observed, &BTreeSet::from([topic_id("t")]), "r").unwrap();
        assert!(p.steps[0].irreversible);
        let Action::AlterTopicConfig { set, delete, .. } = &p.steps[1].action else {
            panic!()
        };
        assert_eq!(set.len(), 2);
        assert_eq!(delete, &["segment.ms"]);
        let Some(Action::AlterTopicConfig {
            set: restore,
            delete: unset,
            ..
        }) = &p.steps[1].compensation
        else {
            panic!()
        };
        assert_eq!(
            restore.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(restore.get("segment.ms").map(String::as_str), Some("5"));
        assert_eq!(unset, &["cleanup.policy"]);
    }
}
