//! Properties of the planner over pipeline histories: released versions that differ in
//! sink database, keys, column types and columns; revisions that move the live version
//! forward, back (a revert) and away; retention. Each revision is planned against what the
//! ones before it left, on the model of the real systems in `world`:
//!
//! - every step has a compensation or is marked irreversible;
//! - undoing any prefix of a plan returns to what was observed;
//! - applying a revision converges, and planning it again right after is empty.

use std::collections::BTreeSet;

use paver::plan::{
    self, Action, ClickHouseAction, Column, Desired, IngestSpec, KafkaAction, Observed, Pipeline,
    PipelineAction, PipelineVersion, Plan, ResourceId, Table, TableName, Transform, ViewSpec,
};
use proptest::prelude::*;

mod world;
use world::simulate;

/// The world has every table the revision wants, with every column.
fn satisfies(world: &Observed, desired: &Desired) -> Result<(), String> {
    for db in &desired.databases {
        if !world.databases.contains(db) {
            return Err(format!("database {db} missing"));
        }
    }
    for (name, want) in &desired.tables {
        let have = world
            .tables
            .get(name)
            .ok_or(format!("table {name} missing"))?;
        for c in &want.columns {
            if !have.columns.iter().any(|(n, _)| *n == c.name) {
                return Err(format!("column {} of {name} missing", c.name));
            }
        }
    }
    Ok(())
}

/// A released version of a pipeline: what its spec says about the sink. Released versions
/// never change (the linter refuses edits), so one history uses one set of them.
#[derive(Debug, Clone)]
struct Release {
    database: &'static str,
    order_by: &'static str,
    partition_by: Option<&'static str>,
    /// The type of column `n` (the key change and type change cases).
    n_type: &'static str,
    /// Column `note` (a column added, or removed by a later version).
    note: bool,
}

fn release() -> impl Strategy<Value = Release> {
    // Weighted towards what changes nothing, so that sinks also evolve in place.
    (
        prop::sample::select(vec!["sales", "sales", "sales", "archive"]),
        prop::sample::select(vec!["id", "id", "id", "(id, n)", "n"]),
        prop::option::weighted(0.25, prop::sample::select(vec!["n", "id"])),
        prop::sample::select(vec![
            "Int64",
            "Int64",
            "Int64",
            "Int32",
            "String",
            "Nullable(Int64)",
        ]),
        any::<bool>(),
    )
        .prop_map(|(database, order_by, partition_by, n_type, note)| Release {
            database,
            order_by,
            partition_by,
            n_type,
            note,
        })
}

const PIPELINES: [&str; 2] = ["clicks", "page-views"];
const RELEASES: usize = 5;

/// What one revision of the repo says of a pipeline: its newest version (the live one)
/// and how many versions it retains.
#[derive(Debug, Clone, Copy)]
struct Pick {
    live: u32,
    retain: u32,
}

fn pick() -> impl Strategy<Value = Option<Pick>> {
    prop::option::weighted(
        0.85,
        (1..=RELEASES as u32, 1..=3u32).prop_map(|(live, retain)| Pick { live, retain }),
    )
}

/// A history: each pipeline's released versions, and the revisions applied in turn.
fn history() -> impl Strategy<Value = (Vec<Vec<Release>>, Vec<Vec<Option<Pick>>>)> {
    (
        prop::collection::vec(prop::collection::vec(release(), RELEASES), PIPELINES.len()),
        prop::collection::vec(prop::collection::vec(pick(), PIPELINES.len()), 1..5),
    )
}

fn sink_of(pipeline: &str, release: &Release) -> TableName {
    TableName {
        database: release.database.into(),
        name: format!("{}_events", pipeline.replace('-', "_")),
    }
}

fn columns_of(release: &Release) -> Vec<Column> {
    let column = |name: &str, ty: &str| Column {
        name: name.into(),
        ty: Some(ty.into()),
    };
    let mut columns = vec![column("id", "String"), column("n", release.n_type)];
    if release.note {
        columns.push(column("note", "String"));
    }
    columns
}

fn in_db(database: &str, name: String) -> TableName {
    TableName {
        database: database.into(),
        name,
    }
}

/// A version as `desired::load` makes it from the pipeline's spec.
fn version_of(pipeline: &str, version: u32, release: &Release) -> PipelineVersion {
    let db = release.database;
    let staging = in_db(db, plan::staging_name(pipeline, version));
    let view = ViewSpec {
        pipeline: pipeline.into(),
        version,
        staging: staging.clone(),
        view: in_db(db, format!("{}_mv", staging.name)),
        offsets: in_db(db, format!("{}_mv_offsets", staging.name)),
        sink: sink_of(pipeline, release),
        ledger: in_db(db, plan::LEDGER.into()),
        source_columns: columns_of(release),
        query: None,
    };
    let ingest = IngestSpec {
        pipeline: pipeline.into(),
        version,
        topic: format!("{pipeline}-in"),
        group: format!("{pipeline}-v{version}"),
        previous_group: None,
        dead_letter_topic: format!("{pipeline}-dlq"),
        staging,
        views: vec![view.view.clone(), view.offsets.clone()],
        ledger: view.ledger.clone(),
        columns: columns_of(release),
        reader: format!("{{\"version\": {version}}}"),
        writers: Vec::new(),
    };
    PipelineVersion {
        version,
        view,
        ingest,
    }
}

/// What a revision wants: for each pipeline it has, the live version's sink and the
/// retained versions that write into the same database, as `desired::load` does.
fn desired_of(releases: &[Vec<Release>], picks: &[Option<Pick>]) -> Desired {
    let mut desired = Desired::default();
    for ((pipeline, releases), pick) in PIPELINES.iter().zip(releases).zip(picks) {
        let Some(pick) = pick else { continue };
        let live = &releases[pick.live as usize - 1];
        let sink = sink_of(pipeline, live);
        desired.databases.insert(sink.database.clone());
        desired.tables.insert(
            sink,
            Table {
                columns: columns_of(live),
                partition_by: live.partition_by.map(str::to_string),
                order_by: live.order_by.into(),
                ttl_days: None,
                transform: Transform {
                    source_columns: columns_of(live),
                    query: None,
                },
                owner: format!("pipelines/{pipeline} v{}", pick.live),
            },
        );
        let first = pick.live.saturating_sub(pick.retain - 1).max(1);
        let versions = (first..=pick.live)
            .filter(|v| releases[*v as usize - 1].database == live.database)
            .map(|v| (v, version_of(pipeline, v, &releases[v as usize - 1])))
            .collect();
        desired.pipelines.insert(
            pipeline.to_string(),
            Pipeline {
                live: pick.live,
                versions,
                database: live.database.into(),
            },
        );
    }
    desired
}

/// What the inventory holds after a plan is applied, as the executor records it: what the
/// steps created becomes paver's, what they retired is forgotten.
fn record(managed: &mut BTreeSet<ResourceId>, plan: &Plan) {
    for step in &plan.steps {
        match &step.action {
            Action::Kafka(KafkaAction::CreateTopic { .. })
            | Action::ClickHouse(
                ClickHouseAction::CreateDatabase { .. }
                | ClickHouseAction::CreateTable { .. }
                | ClickHouseAction::CreateStaging { .. }
                | ClickHouseAction::CreateLedger { .. }
                | ClickHouseAction::CreateViews { .. }
                | ClickHouseAction::RestoreViews { .. },
            ) => {
                managed.insert(step.resource.clone());
            }
            Action::Pipeline(PipelineAction::Activate {
                refresh: Some(view),
                ..
            }) => {
                managed.insert(ResourceId::table(&view.view));
            }
            Action::ClickHouse(ClickHouseAction::SwitchGeneration {
                create, original, ..
            }) => {
                managed.extend(
                    std::iter::once(create)
                        .chain(original)
                        .map(ResourceId::table),
                );
            }
            Action::ClickHouse(
                ClickHouseAction::DropTable { .. } | ClickHouseAction::DropViews { .. },
            ) => {
                managed.remove(&step.resource);
            }
            _ => {}
        }
    }
}

/// The world a revision's pipelines want: each live version live, the staging table and
/// views of every retained version, the sink with every column.
fn pipelines_satisfied(world: &Observed, desired: &Desired) -> Result<(), String> {
    satisfies(world, desired)?;
    for (name, pipeline) in &desired.pipelines {
        let live = world.live.get(name).map(|s| s.version);
        if live != Some(pipeline.live) {
            return Err(format!(
                "pipeline {name}: live {live:?}, wanted {}",
                pipeline.live
            ));
        }
        for version in pipeline.versions.values() {
            for table in [
                &version.view.staging,
                &version.view.view,
                &version.view.offsets,
            ] {
                if !world.tables.contains_key(table) {
                    return Err(format!("{name} v{}: {table} missing", version.version));
                }
            }
        }
    }
    for name in world.live.keys() {
        if !desired.pipelines.contains_key(name) {
            return Err(format!("pipeline {name} left the repo and is still live"));
        }
    }
    Ok(())
}

/// The world after `steps[..cut]` ran and were compensated in reverse order, and the world
/// that must be: what was observed, plus what the irreversible ones among them changed.
fn undo_prefix(observed: &Observed, plan: &Plan, cut: usize) -> (Observed, Observed) {
    let done = &plan.steps[..cut];
    let mut world = observed.clone();
    for step in done {
        simulate(&mut world, &step.action);
    }
    for step in done.iter().rev() {
        if let Some(undo) = &step.compensation {
            simulate(&mut world, undo);
        }
    }
    let mut expected = observed.clone();
    for step in done.iter().filter(|s| s.irreversible) {
        simulate(&mut expected, &step.action);
    }
    (world, expected)
}

/// A history played revision by revision, each planned against what the ones before left.
/// `check` sees every plan with what it was planned from; a blocked revision changes
/// nothing (it is refused), as in `paver apply`. Returns how many plans were not blocked.
fn play_history(
    releases: &[Vec<Release>],
    revisions: &[Vec<Option<Pick>>],
    mut check: impl FnMut(
        &Desired,
        &Observed,
        &BTreeSet<ResourceId>,
        &Plan,
    ) -> Result<(), TestCaseError>,
) -> Result<usize, TestCaseError> {
    let mut world = Observed::default();
    let mut managed = BTreeSet::new();
    let mut planned = 0;
    for (n, picks) in revisions.iter().enumerate() {
        let desired = desired_of(releases, picks);
        let Ok(plan) = plan::plan(&desired, &world, &managed, &format!("r{n}")) else {
            continue;
        };
        planned += 1;
        check(&desired, &world, &managed, &plan)?;
        for step in &plan.steps {
            simulate(&mut world, &step.action);
        }
        record(&mut managed, &plan);
    }
    Ok(planned)
}

fn steps_text(plan: &Plan) -> String {
    plan.steps
        .iter()
        .map(|s| format!("{}\n", plan::describe(&s.action).1))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The documented invariant: every step has a compensation or is marked irreversible.
    #[test]
    fn every_pipeline_step_has_a_compensation_or_is_marked_irreversible((releases, revisions) in history()) {
        play_history(&releases, &revisions, |_, _, _, plan| {
            for step in &plan.steps {
                prop_assert!(
                    step.compensation.is_some() || step.irreversible || step.changes_nothing(),
                    "a step without compensation that is not marked irreversible: {:?}\nplan:\n{}",
                    step.action,
                    steps_text(plan)
                );
            }
            Ok(())
        })?;
    }

    /// Undoing any prefix of a plan (a step failed, the ones before it are compensated in
    /// reverse order) returns the world to what was observed.
    #[test]
    fn undoing_any_prefix_of_a_pipeline_plan_returns_to_what_was_observed((releases, revisions) in history()) {
        play_history(&releases, &revisions, |_, observed, _, plan| {
            for cut in 0..=plan.steps.len() {
                let (world, expected) = undo_prefix(observed, plan, cut);
                prop_assert_eq!(
                    world,
                    expected,
                    "after undoing the first {} steps of:\n{}",
                    cut,
                    steps_text(plan)
                );
            }
            Ok(())
        })?;
    }

    /// Applying a revision makes its pipelines live on their sinks, and planning it again
    /// right after finds nothing to do (as `paver plan` after `paver apply`).
    #[test]
    fn applying_a_pipeline_revision_converges_and_planning_again_is_empty((releases, revisions) in history()) {
        play_history(&releases, &revisions, |desired, observed, managed, plan| {
            let mut world = observed.clone();
            for step in &plan.steps {
                simulate(&mut world, &step.action);
            }
            prop_assert_eq!(pipelines_satisfied(&world, desired), Ok(()), "plan:\n{}", steps_text(plan));
            let mut managed = managed.clone();
            record(&mut managed, plan);
            let again = plan::plan(desired, &world, &managed, "again");
            let again = again.map(|p| steps_text(&p)).map_err(|e| e.to_string());
            prop_assert_eq!(
                again,
                Ok(String::new()),
                "planning the same revision again after:\n{}",
                steps_text(plan)
            );
            Ok(())
        })?;
    }
}

/// The histories are not trivial: across a fixed sample, they make every kind of step the
/// properties are about (cut-overs, reverts, new generations, retirements).
#[test]
fn pipeline_histories_make_every_kind_of_step() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..256 {
        let (releases, revisions) = history().new_tree(&mut runner).unwrap().current();
        play_history(&releases, &revisions, |_, observed, _, plan| {
            for step in &plan.steps {
                let kind = match &step.action {
                    Action::Pipeline(PipelineAction::Activate {
                        refresh: Some(_),
                        spec,
                    }) => match observed.live.get(&spec.pipeline) {
                        Some(now) if now.version > spec.version => "revert",
                        Some(_) => "cut-over",
                        None => "first version",
                    },
                    Action::ClickHouse(ClickHouseAction::SwitchGeneration {
                        original: Some(_),
                        ..
                    }) => "first generation",
                    Action::ClickHouse(ClickHouseAction::SwitchGeneration {
                        original: None,
                        ..
                    }) => "another generation",
                    Action::ClickHouse(ClickHouseAction::AddColumn { .. }) => "column added",
                    Action::ClickHouse(ClickHouseAction::DropViews { .. }) => "views retired",
                    Action::ClickHouse(ClickHouseAction::DropTable { .. }) => "version retired",
                    Action::Pipeline(PipelineAction::Deactivate { .. }) => "pipeline removed",
                    _ => continue,
                };
                seen.insert(kind);
            }
            Ok(())
        })
        .unwrap();
    }
    let all = BTreeSet::from([
        "revert",
        "cut-over",
        "first version",
        "first generation",
        "another generation",
        "column added",
        "views retired",
        "version retired",
        "pipeline removed",
    ]);
    assert_eq!(seen, all);
}
