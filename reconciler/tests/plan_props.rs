//! Properties of the planner and its compensations, over random desired and observed
//! states, checked on a model of the real systems (each action's effect, as the providers
//! produce it). The providers themselves are tested against the real servers in
//! tests/e2e.rs.
//!
//! - applying a plan makes the world what the revision wants, and planning again finds
//!   nothing to do;
//! - compensating every step in reverse order returns the world to what was observed
//!   (except what an irreversible step changed, which the plan marks).
//!
//! Two kinds of inputs: independent topics and tables (an older state of the same
//! resources), and pipeline histories: a chain of revisions over pipelines whose released
//! versions differ in sink database, keys, column types and columns, each revision planned
//! against what the ones before it left (live versions, retained and retired versions,
//! sinks that became Merge tables over generations, reverts to older versions).

use std::collections::{BTreeMap, BTreeSet};

use paver::ingest::spec::IngestSpec;
use paver::plan::{
    self, Action, Column, Desired, Observed, ObservedTable, Pipeline, PipelineVersion, Plan, Table,
    TableName, Topic, Transform, ViewSpec,
};
use proptest::prelude::*;

/// What an action does to the world, as Kafka and ClickHouse do it.
fn simulate(world: &mut Observed, action: &Action) {
    match action {
        Action::CreateTopic { name, topic } => {
            world.topics.insert(name.clone(), topic.clone());
        }
        Action::DeleteTopic { name } => {
            world.topics.remove(name);
        }
        Action::AlterTopicConfig { name, set, delete } => {
            if let Some(t) = world.topics.get_mut(name) {
                t.config.extend(set.clone());
                for k in delete {
                    t.config.remove(k);
                }
            }
        }
        Action::CreatePartitions { name, count } => {
            if let Some(t) = world.topics.get_mut(name) {
                t.partitions = *count;
            }
        }
        Action::CreateDatabase { name } => {
            world.databases.insert(name.clone());
        }
        Action::DropDatabase { name } => {
            world.databases.remove(name);
            world.tables.retain(|t, _| &t.database != name);
        }
        Action::CreateTable { table, spec } => {
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns: spec
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                        .collect(),
                    partition_by: spec.partition_by.clone().unwrap_or_default(),
                    order_by: spec.order_by.clone(),
                    engine: "MergeTree".into(),
                },
            );
        }
        Action::DropTable { table } => {
            world.tables.remove(table);
        }
        Action::AddColumn { table, column, .. } => {
            if let Some(t) = world.tables.get_mut(table) {
                t.columns
                    .push((column.name.clone(), column.ty.clone().unwrap_or_default()));
            }
        }
        Action::DropColumn { table, name } => {
            if let Some(t) = world.tables.get_mut(table) {
                t.columns.retain(|(n, _)| n != name);
            }
        }
        Action::CreateStaging { table, columns } => {
            let mut cols: Vec<(String, String)> = columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                .collect();
            cols.push(("_paver_partition".into(), "Int32".into()));
            cols.push(("_paver_offset".into(), "Int64".into()));
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns: cols,
                    partition_by: String::new(),
                    order_by: String::new(),
                    engine: "Null".into(),
                },
            );
        }
        Action::CreateLedger { table } => {
            world.tables.insert(table.clone(), ObservedTable::default());
        }
        Action::CreateViews { spec } => {
            world
                .tables
                .insert(spec.view.clone(), ObservedTable::default());
            world
                .tables
                .insert(spec.offsets.clone(), ObservedTable::default());
        }
        Action::DropViews { view, offsets } => {
            world.tables.remove(view);
            world.tables.remove(offsets);
        }
        Action::Activate { spec, refresh } => {
            if let Some(v) = refresh {
                world
                    .tables
                    .insert(v.view.clone(), ObservedTable::default());
                world
                    .tables
                    .insert(v.offsets.clone(), ObservedTable::default());
            }
            world.live.insert(spec.pipeline.clone(), (**spec).clone());
        }
        Action::Deactivate { pipeline } => {
            world.live.remove(pipeline);
        }
        Action::SwitchGeneration {
            table,
            create,
            spec,
            original,
            ..
        } => {
            // As the provider does: every physical table gets every column.
            let mut columns: Vec<(String, String)> = spec
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                .collect();
            let mut old = world.tables.remove(table).unwrap_or_default();
            for c in &old.columns {
                if !columns.iter().any(|(n, _)| *n == c.0) {
                    columns.push(c.clone());
                }
            }
            for c in &columns {
                if !old.columns.iter().any(|(n, _)| *n == c.0) {
                    old.columns.push(c.clone());
                }
            }
            world.tables.insert(
                create.clone(),
                ObservedTable {
                    columns: columns.clone(),
                    partition_by: spec.partition_by.clone().unwrap_or_default(),
                    order_by: spec.order_by.clone(),
                    engine: "MergeTree".into(),
                },
            );
            if let Some(original) = original {
                world.tables.insert(original.clone(), old);
            }
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns,
                    engine: "Merge".into(),
                    ..Default::default()
                },
            );
        }
        Action::UnswitchGeneration {
            table,
            create,
            original,
            added,
        } => {
            world.tables.remove(create);
            if let Some(original) = original {
                if let Some(old) = world.tables.remove(original) {
                    world.tables.insert(table.clone(), old);
                }
            }
            for (t, column) in added {
                if let Some(h) = world.tables.get_mut(t) {
                    h.columns.retain(|(n, _)| n != column);
                }
            }
        }
        // Kubernetes objects are modelled in kube_plan_props.rs.
        Action::ApplyObject { .. } | Action::DeleteObject { .. } => {}
    }
}

fn topic() -> impl Strategy<Value = Topic> {
    (
        1..4i32,
        prop::collection::btree_map(
            prop::sample::select(vec!["retention.ms", "cleanup.policy", "segment.ms"]),
            prop::sample::select(vec!["1", "2", "delete"]),
            0..3,
        ),
    )
        .prop_map(|(partitions, config)| Topic {
            partitions,
            replication_factor: 1,
            config: config
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
}

fn table_name() -> impl Strategy<Value = TableName> {
    (
        prop::sample::select(vec!["db1", "db2"]),
        prop::sample::select(vec!["t1", "t2"]),
    )
        .prop_map(|(d, n)| TableName {
            database: d.to_string(),
            name: n.to_string(),
        })
}

fn columns() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(prop::sample::select(vec!["id", "a", "b", "c"]), 1..4).prop_map(
        |set| {
            std::iter::once("id".to_string())
                .chain(set.into_iter().filter(|c| *c != "id").map(str::to_string))
                .collect()
        },
    )
}

fn table(cols: Vec<String>) -> Table {
    Table {
        columns: cols
            .iter()
            .map(|c| Column {
                name: c.clone(),
                ty: Some("String".into()),
            })
            .collect(),
        partition_by: None,
        order_by: "id".into(),
        ttl_days: None,
        transform: Transform {
            source_columns: Vec::new(),
            query: None,
        },
        owner: "pipelines/p v1".into(),
    }
}

prop_compose! {
    fn desired()(topics in prop::collection::btree_map(prop::sample::select(vec!["t-a", "t-b", "t-c"]), topic(), 0..3),
                 tables in prop::collection::btree_map(table_name(), columns(), 0..3)) -> Desired {
        let mut d = Desired {
            topics: topics.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Desired::default()
        };
        for (name, cols) in tables {
            d.databases.insert(name.database.clone());
            d.tables.insert(name, table(cols));
        }
        d
    }
}

prop_compose! {
    /// What exists: an older state of the same resources (fewer partitions, other
    /// configs, fewer columns), all created by paver.
    fn observed()(topics in prop::collection::btree_map(prop::sample::select(vec!["t-a", "t-b", "t-c"]), topic(), 0..3),
                  tables in prop::collection::btree_map(table_name(), columns(), 0..3)) -> Observed {
        let mut o = Observed {
            topics: topics.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Observed::default()
        };
        for (name, cols) in tables {
            o.databases.insert(name.database.clone());
            o.tables.insert(name, ObservedTable {
                columns: cols.into_iter().map(|c| (c, "String".to_string())).collect(),
                partition_by: String::new(),
                order_by: "id".into(),
                engine: "MergeTree".into(),
            });
        }
        o
    }
}

fn managed(observed: &Observed) -> BTreeSet<String> {
    observed
        .topics
        .keys()
        .map(|t| plan::topic_id(t))
        .chain(observed.databases.iter().map(|d| plan::database_id(d)))
        .chain(observed.tables.keys().map(plan::table_id))
        .collect()
}

/// The world matches what is wanted: every topic, database and table with its settings.
fn satisfies(world: &Observed, desired: &Desired) -> Result<(), String> {
    for (name, want) in &desired.topics {
        let have = world
            .topics
            .get(name)
            .ok_or(format!("topic {name} missing"))?;
        if have.partitions != want.partitions || have.config != want.config {
            return Err(format!("topic {name}: {have:?} != {want:?}"));
        }
    }
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applying_a_plan_converges_and_is_idempotent(desired in desired(), observed in observed()) {
        let managed = managed(&observed);
        let Ok(plan) = plan::plan(&desired, &observed, &managed, "r") else {
            // Blocked (fewer partitions wanted than exist): nothing to apply.
            return Ok(());
        };
        let mut world = observed.clone();
        for step in &plan.steps {
            simulate(&mut world, &step.action);
        }
        prop_assert_eq!(satisfies(&world, &desired), Ok(()));
        let mut managed_after = managed.clone();
        managed_after.extend(plan.steps.iter().map(|s| s.resource.clone()));
        let again = plan::plan(&desired, &world, &managed_after, "r").expect("plans again");
        prop_assert!(again.steps.is_empty(), "second plan: {:?}", again.steps);
    }

    #[test]
    fn compensating_every_step_returns_to_what_was_observed(desired in desired(), observed in observed()) {
        let managed = managed(&observed);
        let Ok(plan) = plan::plan(&desired, &observed, &managed, "r") else { return Ok(()); };
        let mut world = observed.clone();
        for step in &plan.steps {
            simulate(&mut world, &step.action);
        }
        for step in plan.steps.iter().rev() {
            match &step.compensation {
                Some(undo) => simulate(&mut world, undo),
                None => prop_assert!(step.irreversible, "a step without compensation must be marked irreversible: {:?}", step),
            }
        }
        // Irreversible steps (partitions added) are the only difference left.
        let mut expected = observed.clone();
        for step in plan.steps.iter().filter(|s| s.irreversible) {
            simulate(&mut expected, &step.action);
        }
        prop_assert_eq!(world, expected);
    }

    #[test]
    fn compensating_a_failed_prefix_returns_to_what_was_observed(desired in desired(), observed in observed(), cut in 0usize..8) {
        let managed = managed(&observed);
        let Ok(plan) = plan::plan(&desired, &observed, &managed, "r") else { return Ok(()); };
        let done = cut.min(plan.steps.len());
        let mut world = observed.clone();
        for step in &plan.steps[..done] {
            simulate(&mut world, &step.action);
        }
        for step in plan.steps[..done].iter().rev() {
            if let Some(undo) = &step.compensation {
                simulate(&mut world, undo);
            }
        }
        let mut expected = observed.clone();
        for step in plan.steps[..done].iter().filter(|s| s.irreversible) {
            simulate(&mut expected, &step.action);
        }
        prop_assert_eq!(world, expected);
    }
}

#[test]
fn the_model_counts_topics_and_tables() {
    // A guard that the generators make non-trivial plans (not only empty ones).
    let mut d = Desired::default();
    d.topics.insert(
        "t".into(),
        Topic {
            partitions: 2,
            replication_factor: 1,
            config: BTreeMap::new(),
        },
    );
    let p = plan::plan(&d, &Observed::default(), &BTreeSet::new(), "r").unwrap();
    let mut world = Observed::default();
    simulate(&mut world, &p.steps[0].action);
    assert_eq!(world.topics["t"].partitions, 2);
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
fn record(managed: &mut BTreeSet<String>, plan: &Plan) {
    for step in &plan.steps {
        match &step.action {
            Action::CreateTopic { .. }
            | Action::CreateDatabase { .. }
            | Action::CreateTable { .. }
            | Action::CreateStaging { .. }
            | Action::CreateLedger { .. }
            | Action::CreateViews { .. } => {
                managed.insert(step.resource.clone());
            }
            Action::Activate {
                refresh: Some(view),
                ..
            } => {
                managed.insert(plan::table_id(&view.view));
            }
            Action::SwitchGeneration {
                create, original, ..
            } => {
                managed.extend(std::iter::once(create).chain(original).map(plan::table_id));
            }
            Action::DropTable { .. } | Action::DropViews { .. } => {
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
    mut check: impl FnMut(&Desired, &Observed, &BTreeSet<String>, &Plan) -> Result<(), TestCaseError>,
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
                    step.compensation.is_some() || step.irreversible,
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
            let again = again.map(|p| steps_text(&p));
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
                    Action::Activate {
                        refresh: Some(_),
                        spec,
                    } => match observed.live.get(&spec.pipeline) {
                        Some(now) if now.version > spec.version => "revert",
                        Some(_) => "cut-over",
                        None => "first version",
                    },
                    Action::SwitchGeneration {
                        original: Some(_), ..
                    } => "first generation",
                    Action::SwitchGeneration { original: None, .. } => "another generation",
                    Action::AddColumn { .. } => "column added",
                    Action::DropViews { .. } => "views retired",
                    Action::DropTable { .. } => "version retired",
                    Action::Deactivate { .. } => "pipeline removed",
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
