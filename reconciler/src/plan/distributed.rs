//! Sink tables on a ClickHouse cluster: physical generations `<table>__v<N>`
//! (ReplicatedMergeTree, on every node), and `db.table` a `Distributed` table that reads
//! every shard through `<table>__paver_merge` (on every node, a Merge over its physical
//! generations). A new physical generation is just one more table that the Merge finds:
//! no `RENAME` of the sink is needed, and `db.table` keeps reading every row any version
//! ingested. Also the repair of tables that some nodes lack.

use std::collections::BTreeSet;

use super::sinks::{add_missing_columns, generations, incompatibilities};
use super::{Blocker, ClickHouseAction, Step};
use crate::model::{
    generation_name, merge_of, normalize_key, Observed, ResourceId, Table, TableName,
};

/// The default sharding key of a cluster's `Distributed` table: rows spread evenly.
pub const DEFAULT_SHARDING_KEY: &str = "rand()";

/// The steps of one sink table on a cluster; returns the physical table the live
/// version writes into.
pub(super) fn plan_distributed_sink(
    table: &TableName,
    want: &Table,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    generation: u32,
    steps: &mut Vec<Step>,
    blockers: &mut Vec<Blocker>,
) -> Option<TableName> {
    let id = ResourceId::table(table);
    let physicals = generations(table, observed);
    let Some(have) = observed.tables.get(table) else {
        // The first physical table (or, when db.table alone is gone everywhere, the
        // newest one that is there), then the Distributed table over it.
        let physical = match physicals.first() {
            Some((_, p)) if managed.contains(&id) => p.clone(),
            Some((_, p)) => {
                blockers.push(Blocker {
                    resource: ResourceId::table(p),
                    message: format!("the table `{p}` exists and paver did not create it: paver never takes over or drops what it does not manage"),
                });
                return None;
            }
            None => {
                let physical = generation_name(table, generation.max(1));
                steps.push(Step::new(
                    id.clone(),
                    ClickHouseAction::CreateTable {
                        table: physical.clone(),
                        spec: want.clone(),
                    },
                    Some(
                        ClickHouseAction::DropTable {
                            table: physical.clone(),
                        }
                        .into(),
                    ),
                ));
                physical
            }
        };
        steps.push(Step::new(
            id,
            ClickHouseAction::CreateDistributed {
                table: table.clone(),
                physical: physical.clone(),
                shard_by: want.shard_by.clone(),
            },
            Some(
                ClickHouseAction::DropDistributed {
                    table: table.clone(),
                }
                .into(),
            ),
        ));
        return Some(physical);
    };
    if !managed.contains(&id) {
        blockers.push(Blocker { resource: id, message: format!("the table `{table}` exists and paver did not create it: paver never takes over or drops what it does not manage") });
        return None;
    }
    if have.engine != "Distributed" {
        blockers.push(Blocker {
            resource: id,
            message: format!("`{table}` is a {} table, but on a ClickHouse cluster paver makes it a Distributed table over replicated physical tables: was it made before the target named a cluster? Move its rows to a new table name, or keep the target without `cluster`", have.engine),
        });
        return None;
    }
    let want_key = want.shard_by.as_deref().unwrap_or(DEFAULT_SHARDING_KEY);
    if normalize_key(want_key) != normalize_key(&have.sharding_key) {
        // The rows already on a shard stay there; what is inserted through db.table from
        // now on is spread by the new key. Its undo restores the old one.
        let previous = Some(have.sharding_key.clone()).filter(|k| !k.is_empty());
        let physical = physicals.first().map(|(_, p)| p.clone())?;
        steps.push(Step::new(
            id.clone(),
            ClickHouseAction::CreateDistributed {
                table: table.clone(),
                physical: physical.clone(),
                shard_by: want.shard_by.clone(),
            },
            Some(
                ClickHouseAction::CreateDistributed {
                    table: table.clone(),
                    physical,
                    shard_by: previous,
                }
                .into(),
            ),
        ));
    }
    let others: Vec<TableName> = physicals.iter().map(|(_, t)| t.clone()).collect();
    for (_, p) in &physicals {
        let Some(ph) = observed.tables.get(p) else {
            continue;
        };
        if incompatibilities(p, want, ph).is_empty() {
            // Every physical table and db.table get the new columns (a Merge reads a
            // column only if every table it reads has it).
            for t in others.iter().chain(std::iter::once(table)) {
                if let Some(h) = observed.tables.get(t) {
                    add_missing_columns(t, want, h, steps, &id);
                }
            }
            return Some(p.clone());
        }
    }
    // Keys or a type changed: a new physical table, found by every node's Merge.
    let create = generation_name(table, generation.max(1));
    if observed.tables.contains_key(&create) {
        blockers.push(Blocker {
            resource: id,
            message: format!("`{table}` needs a new physical table, and `{create}` exists already: remove it or release the change as a newer version"),
        });
        return None;
    }
    let mut added = Vec::new();
    for t in others.iter().chain(std::iter::once(table)) {
        if let Some(h) = observed.tables.get(t) {
            for c in &want.columns {
                if !h.columns.iter().any(|(n, _)| *n == c.name) {
                    added.push((t.clone(), c.name.clone()));
                }
            }
        }
    }
    steps.push(Step::new(
        id,
        ClickHouseAction::SwitchGeneration {
            table: table.clone(),
            create: create.clone(),
            spec: Box::new(want.clone()),
            original: None,
            others,
        },
        Some(
            ClickHouseAction::UnswitchGeneration {
                table: table.clone(),
                create: create.clone(),
                original: None,
                added,
                shard_by: want.shard_by.clone(),
            }
            .into(),
        ),
    ));
    Some(create)
}

/// Tables that some nodes of the cluster lack (dropped there by hand): made again there.
/// Only paver's own (or the Merge under a sink of paver's).
pub(super) fn plan_repairs(
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    steps: &mut Vec<Step>,
) {
    for (table, missing_on) in &observed.missing {
        let ours = managed.contains(&ResourceId::table(table))
            || table
                .name
                .strip_suffix("__paver_merge")
                .is_some_and(|sink| {
                    let sink = TableName {
                        database: table.database.clone(),
                        name: sink.to_string(),
                    };
                    merge_of(&sink) == *table && managed.contains(&ResourceId::table(&sink))
                })
            // A physical generation of a managed sink.
            || crate::model::sink_of_generation(table)
                .is_some_and(|(sink, _)| managed.contains(&ResourceId::table(&sink)));
        if ours {
            steps.push(Step {
                resource: ResourceId::table(table),
                action: ClickHouseAction::RepairTable {
                    table: table.clone(),
                    missing_on: missing_on.clone(),
                }
                .into(),
                compensation: None,
                irreversible: false,
            });
        }
    }
}
