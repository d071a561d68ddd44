//! Pipelines, blue/green: the ledger of each database, each retained version's staging
//! table and views, the cut-over to the live version, the hand-over from the version that
//! was live (its workers confirm that they stopped), and then, in the same revision, the
//! retirement of the versions no longer retained (their staging tables and views hold no
//! data: the rows are in the sink).

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Blocker, ClickHouseAction, PipelineAction, Step};
use crate::model::{
    version_of_staging, views_of, Column, Desired, IngestSpec, Observed, ResourceId, TableName,
    ViewSpec, LEDGER,
};

pub(super) fn plan_pipelines(
    desired: &Desired,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    physical: &BTreeMap<TableName, TableName>,
    steps: &mut Vec<Step>,
    blockers: &mut Vec<Blocker>,
) {
    let mut ledgers = BTreeSet::new();
    let owned = |table: &TableName, blockers: &mut Vec<Blocker>| -> bool {
        let id = ResourceId::table(table);
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
            steps.push(Step::new(
                ResourceId::table(&ledger),
                ClickHouseAction::CreateLedger {
                    table: ledger.clone(),
                },
                Some(ClickHouseAction::DropTable { table: ledger }.into()),
            ));
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
        for v in pipeline.versions.values() {
            let spec = &with_target(&v.view);
            if !owned(&spec.staging, blockers) || !owned(&spec.view, blockers) {
                continue;
            }
            if !observed.tables.contains_key(&spec.staging) {
                steps.push(Step::new(
                    ResourceId::table(&spec.staging),
                    ClickHouseAction::CreateStaging {
                        table: spec.staging.clone(),
                        columns: spec.source_columns.clone(),
                    },
                    Some(
                        ClickHouseAction::DropTable {
                            table: spec.staging.clone(),
                        }
                        .into(),
                    ),
                ));
            }
            // Missing views are made by a step of their own, the live version's too (the
            // cut-over then makes them anew over the sink as it is): its undo drops them,
            // where the cut-over's undo (the previous version live again) would leave them.
            let missing = !observed.tables.contains_key(&spec.view)
                || !observed.tables.contains_key(&spec.offsets);
            if missing {
                steps.push(Step::new(
                    ResourceId::table(&spec.view),
                    ClickHouseAction::CreateViews {
                        spec: Box::new(spec.clone()),
                    },
                    Some(
                        ClickHouseAction::DropViews {
                            view: spec.view.clone(),
                            offsets: spec.offsets.clone(),
                        }
                        .into(),
                    ),
                ));
            }
        }
        cut_over(
            name,
            live.ingest.clone(),
            current,
            switching,
            &with_target(&live.view),
            steps,
        );
        retire(
            name,
            pipeline.database.as_str(),
            &pipeline.versions,
            observed,
            managed,
            steps,
        );
    }
    // Pipelines that left the repo: no version is live any more (their tables are kept).
    for (name, now) in &observed.live {
        if !desired.pipelines.contains_key(name) {
            steps.push(Step::new(
                ResourceId::pipeline(name),
                PipelineAction::Deactivate {
                    pipeline: name.clone(),
                },
                Some(
                    PipelineAction::Activate {
                        spec: Box::new(now.clone()),
                        refresh: None,
                    }
                    .into(),
                ),
            ));
            steps.push(Step::wait(
                ResourceId::pipeline(name),
                PipelineAction::AwaitHandover {
                    pipeline: name.clone(),
                    version: None,
                },
            ));
        }
    }
}

/// The cut-over: one step after everything it needs exists, then, when another version
/// was live, the wait for its workers to hand over.
fn cut_over(
    name: &str,
    mut want: IngestSpec,
    current: Option<&IngestSpec>,
    switching: bool,
    refresh: &ViewSpec,
    steps: &mut Vec<Step>,
) {
    let comparable = |s: &IngestSpec| {
        let mut s = s.clone();
        s.previous_group = None;
        s
    };
    let id = ResourceId::pipeline(name);
    match current {
        Some(now) if !switching => {
            if comparable(now) != comparable(&want) {
                want.previous_group = now.previous_group.clone();
                steps.push(Step::new(
                    id,
                    PipelineAction::Activate {
                        spec: Box::new(want),
                        refresh: None,
                    },
                    Some(
                        PipelineAction::Activate {
                            spec: Box::new(now.clone()),
                            refresh: None,
                        }
                        .into(),
                    ),
                ));
            }
        }
        _ => {
            want.previous_group = current.map(|c| c.group.clone());
            let version = want.version;
            steps.push(Step::new(
                id.clone(),
                PipelineAction::Activate {
                    spec: Box::new(want),
                    refresh: Some(Box::new(refresh.clone())),
                },
                Some(match current {
                    Some(now) => PipelineAction::Activate {
                        spec: Box::new(now.clone()),
                        refresh: None,
                    }
                    .into(),
                    None => PipelineAction::Deactivate {
                        pipeline: name.to_string(),
                    }
                    .into(),
                }),
            ));
            if current.is_some() {
                steps.push(Step::wait(
                    id,
                    PipelineAction::AwaitHandover {
                        pipeline: name.to_string(),
                        version: Some(version),
                    },
                ));
            }
        }
    }
}

/// Retirement of the versions that are no longer kept: their views, then their staging
/// table. It comes after the hand-over, so the version that was live until this revision's
/// cut-over is retired too: its workers have stopped inserting into its staging table (a
/// Null table without its views would swallow rows). Both steps have their undo: the
/// views are made again from the statements ClickHouse had for them, the staging table
/// from its observed columns.
fn retire(
    name: &str,
    database: &str,
    retained: &BTreeMap<u32, crate::model::PipelineVersion>,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    steps: &mut Vec<Step>,
) {
    // Only the tables named `__paver_<p>_v…` in the pipeline's database: a range of the
    // ordered map, not a scan of every table per pipeline (10,000 resources made that
    // 10^8 comparisons).
    let prefix = TableName {
        database: database.to_string(),
        name: crate::model::staging_prefix(name),
    };
    let candidates = observed
        .tables
        .range(&prefix..)
        .take_while(|(t, _)| t.database == prefix.database && t.name.starts_with(&prefix.name));
    for (table, have) in candidates {
        let Some(version) = version_of_staging(name, &table.name) else {
            continue;
        };
        // `__paver_<p>_v<N>` also prefixes the views' names: only the staging table itself.
        if table.name != crate::model::staging_name(name, version)
            || retained.contains_key(&version)
            || !managed.contains(&ResourceId::table(table))
        {
            continue;
        }
        let (view, offsets) = views_of(table);
        let statements: Vec<String> = [&view, &offsets]
            .into_iter()
            .filter_map(|v| observed.tables.get(v))
            .map(|t| t.create_query.clone())
            .collect();
        if !statements.is_empty() {
            let restore = if statements.iter().all(|s| !s.is_empty()) {
                Some(Action::from(ClickHouseAction::RestoreViews {
                    view: view.clone(),
                    statements,
                }))
            } else {
                None
            };
            let drop = ClickHouseAction::DropViews {
                view: view.clone(),
                offsets,
            };
            steps.push(match restore {
                Some(undo) => Step::new(ResourceId::table(&view), drop, Some(undo)),
                // A server that does not say how a view was made: it cannot be undone.
                None => Step::irreversible(ResourceId::table(&view), drop),
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
        steps.push(Step::new(
            ResourceId::table(table),
            ClickHouseAction::DropTable {
                table: table.clone(),
            },
            Some(
                ClickHouseAction::CreateStaging {
                    table: table.clone(),
                    columns,
                }
                .into(),
            ),
        ));
    }
}
