//! Sink tables: created, evolved in place (`ADD COLUMN`), or given a new physical table
//! (a generation) when their keys or a column type change; and the databases they live in.

use std::collections::BTreeSet;

use super::{Blocker, ClickHouseAction, Step};
use crate::model::{
    generation_name, normalize_key, Desired, Observed, ObservedTable, ResourceId, Table, TableName,
};

pub(super) fn plan_databases(desired: &Desired, observed: &Observed, steps: &mut Vec<Step>) {
    for name in &desired.databases {
        if !observed.databases.contains(name) {
            steps.push(Step::new(
                ResourceId::database(name),
                ClickHouseAction::CreateDatabase { name: name.clone() },
                Some(ClickHouseAction::DropDatabase { name: name.clone() }.into()),
            ));
        }
    }
}

/// Why a table cannot take what a revision wants in place (its keys, a column's type).
pub(super) fn incompatibilities(
    table: &TableName,
    want: &Table,
    have: &ObservedTable,
) -> Vec<String> {
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
pub(crate) fn generations(table: &TableName, observed: &Observed) -> Vec<(u32, TableName)> {
    // A range of the ordered map (the tables named `<name>__v…` in its database), not a
    // scan of every table per sink.
    let prefix = TableName {
        database: table.database.clone(),
        name: format!("{}__v", table.name),
    };
    let mut out: Vec<(u32, TableName)> = observed
        .tables
        .range(&prefix..)
        .map(|(t, _)| t)
        .take_while(|t| t.database == prefix.database && t.name.starts_with(&prefix.name))
        .filter_map(|t| Some((t.name.strip_prefix(&prefix.name)?.parse().ok()?, t.clone())))
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.0));
    out
}

pub(super) fn add_missing_columns(
    table: &TableName,
    want: &Table,
    have: &ObservedTable,
    steps: &mut Vec<Step>,
    resource: &ResourceId,
) {
    for column in &want.columns {
        if !have.columns.iter().any(|(n, _)| *n == column.name) {
            steps.push(Step::new(
                resource.clone(),
                ClickHouseAction::AddColumn {
                    table: table.clone(),
                    column: column.clone(),
                    transform: want.transform.clone(),
                },
                Some(
                    ClickHouseAction::DropColumn {
                        table: table.clone(),
                        name: column.name.clone(),
                    }
                    .into(),
                ),
            ));
        }
    }
}

/// The steps of one sink table; returns the physical table the live version writes into.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_sink(
    table: &TableName,
    want: &Table,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    generation: u32,
    previous: Option<u32>,
    steps: &mut Vec<Step>,
    blockers: &mut Vec<Blocker>,
) -> Option<TableName> {
    let id = ResourceId::table(table);
    let Some(have) = observed.tables.get(table) else {
        steps.push(Step::new(
            id,
            ClickHouseAction::CreateTable {
                table: table.clone(),
                spec: want.clone(),
            },
            Some(
                ClickHouseAction::DropTable {
                    table: table.clone(),
                }
                .into(),
            ),
        ));
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
                resource: ResourceId::table(table),
                message: format!("`{table}` needs a new physical table, and `{create}` exists already: remove it or release the change as a newer version"),
            });
            return None;
        }
        let action = ClickHouseAction::SwitchGeneration {
            table: table.clone(),
            create: create.clone(),
            spec: Box::new(want.clone()),
            original: original.clone(),
            others: others.clone(),
        };
        // What the switch adds to the older tables, for its undo: first to the Merge table
        // it replaces (its new columns go before the physical tables' do, as a Merge reads
        // a column only if every table has it), then to the physical tables.
        let mut added = Vec::new();
        if original.is_none() {
            if let Some(merge) = observed.tables.get(table) {
                for c in &want.columns {
                    if !merge.columns.iter().any(|(n, _)| *n == c.name) {
                        added.push((table.clone(), c.name.clone()));
                    }
                }
            }
        }
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
        steps.push(Step::new(
            ResourceId::table(table),
            action,
            Some(
                ClickHouseAction::UnswitchGeneration {
                    table: table.clone(),
                    create: create.clone(),
                    original,
                    added,
                    shard_by: None,
                }
                .into(),
            ),
        ));
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
