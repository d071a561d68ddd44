//! Properties of the planner and its compensations, over random desired and observed
//! states, checked on a model of the real systems (each action's effect, as the providers
//! produce it). The providers themselves are tested against the real servers in e2e.rs.
//!
//! - applying a plan makes the world what the revision wants, and planning again finds
//!   nothing to do;
//! - compensating every step in reverse order returns the world to what was observed
//!   (except what an irreversible step changed, which the plan marks).

use std::collections::{BTreeMap, BTreeSet};

use paver::plan::{
    self, Column, Desired, Observed, ObservedTable, ResourceId, Table, TableName, Topic, Transform,
};
use proptest::prelude::*;

mod world;
use world::simulate;

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
                ..Default::default()
            });
        }
        o
    }
}

fn managed(observed: &Observed) -> BTreeSet<ResourceId> {
    observed
        .topics
        .keys()
        .map(|t| ResourceId::topic(t))
        .chain(observed.databases.iter().map(|d| ResourceId::database(d)))
        .chain(observed.tables.keys().map(ResourceId::table))
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
