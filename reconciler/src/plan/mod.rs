//! The plan: a pure function of what a revision wants ([`Desired`]), what exists
//! ([`Observed`]) and what paver manages, to the ordered steps that get from one to the
//! other, each with its compensation. No I/O here: it is tested without any server.
//!
//! One module per resource family ([`topics`], [`sinks`], [`pipelines`], [`kube`]);
//! [`render`] prints a plan, [`fingerprint`] hashes what it was planned over.

mod action;
pub mod distributed;
pub mod fingerprint;
mod kube;
mod pipelines;
pub mod render;
mod sinks;
mod topics;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use crate::model::{
    generation_name, generation_of, merge_of, normalize_key, short_hash, sink_of_generation,
    staging_name, version_of_staging, views_of, BadResourceId, Column, Desired, Endpoints,
    IngestSpec, ObjectRef, Observed, ObservedTable, Pipeline, PipelineVersion, ResourceId, Table,
    TableName, Topic, Transform, ViewSpec, LEDGER,
};
pub use action::{Action, ClickHouseAction, KafkaAction, KubeAction, PipelineAction};
pub use fingerprint::{fingerprint, fingerprint_json, FingerprintError};
pub use kube::plan_kube;
pub use render::{describe, render, render_markdown};

/// A step of a plan: what to do, how to undo it, and whether it can be undone at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The managed resource it concerns.
    pub resource: ResourceId,
    pub action: Action,
    pub compensation: Option<Action>,
    /// Cannot be undone (a partition increase): marked in the plan for review.
    pub irreversible: bool,
}

impl Step {
    /// A step and its undo.
    pub fn new(resource: ResourceId, action: impl Into<Action>, undo: Option<Action>) -> Step {
        Step {
            resource,
            action: action.into(),
            compensation: undo,
            irreversible: false,
        }
    }

    /// A step that cannot be undone: marked in the plan for review.
    pub fn irreversible(resource: ResourceId, action: impl Into<Action>) -> Step {
        Step {
            resource,
            action: action.into(),
            compensation: None,
            irreversible: true,
        }
    }

    /// A step that changes nothing (it waits for something): nothing to undo.
    pub fn wait(resource: ResourceId, action: impl Into<Action>) -> Step {
        Step {
            resource,
            action: action.into(),
            compensation: None,
            irreversible: false,
        }
    }

    /// Whether the step only waits and changes nothing in the real systems.
    pub fn changes_nothing(&self) -> bool {
        matches!(
            self.action,
            Action::Pipeline(PipelineAction::AwaitHandover { .. })
        )
    }
}

/// Why a revision cannot be applied to what exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub resource: ResourceId,
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
    /// The ClickHouse cluster the ClickHouse steps run `ON CLUSTER`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl Plan {
    pub fn irreversible(&self) -> usize {
        self.steps.iter().filter(|s| s.irreversible).count()
    }
}

/// Why there is no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// What exists is in the way (not paver's, or a change that cannot be made).
    #[error("{} blockers", .0.len())]
    Blocked(Vec<Blocker>),
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
}

impl PlanError {
    /// The blockers, when that is why.
    pub fn blockers(&self) -> Option<&[Blocker]> {
        match self {
            PlanError::Blocked(b) => Some(b),
            PlanError::Fingerprint(_) => None,
        }
    }
}

/// The steps from `observed` to `desired`. `managed` holds the resources paver created;
/// anything else in the way is a blocker, never something to drop.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    revision: &str,
) -> Result<Plan, PlanError> {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut blockers = Vec::new();

    topics::plan_topics(
        desired,
        observed,
        managed,
        &mut steps,
        &mut notes,
        &mut blockers,
    );
    sinks::plan_databases(desired, observed, &mut steps);
    if desired.cluster.is_some() {
        distributed::plan_repairs(observed, managed, &mut steps);
    }
    // The sink of every pipeline: created, evolved in place, or given a new physical
    // table (a new generation) when its keys or a column type change; `physical` is where
    // the live version's transform writes.
    let mut physical = std::collections::BTreeMap::new();
    // The pipeline whose live version writes each sink (the first, by name): looked up
    // per sink, not searched for.
    let mut owners = std::collections::BTreeMap::new();
    for (name, p) in &desired.pipelines {
        if let Some(v) = p.versions.get(&p.live) {
            owners.entry(&v.view.sink).or_insert((name, p));
        }
    }
    for (table, want) in &desired.tables {
        // The pipeline whose live version writes this sink: its version names a new
        // generation, and the version live until now names the table it replaces.
        let owner = owners.get(table).copied();
        let generation = owner.map_or(1, |(_, p)| p.live);
        let previous = owner
            .and_then(|(name, _)| observed.live.get(name))
            .map(|s| s.version);
        let target = if desired.cluster.is_some() {
            distributed::plan_distributed_sink(
                table,
                want,
                observed,
                managed,
                generation,
                &mut steps,
                &mut blockers,
            )
        } else {
            sinks::plan_sink(
                table,
                want,
                observed,
                managed,
                generation,
                previous,
                &mut steps,
                &mut blockers,
            )
        };
        if let Some(target) = target {
            physical.insert(table.clone(), target);
        }
    }
    pipelines::plan_pipelines(
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
        let gone = match id {
            ResourceId::Topic(name) => {
                !desired.topics.contains_key(name) && observed.topics.contains_key(name)
            }
            ResourceId::Table(table) => {
                !table.name.starts_with("__paver_")
                    && !desired.tables.contains_key(table)
                    && !sink_of_generation(table)
                        .is_some_and(|(sink, _)| desired.tables.contains_key(&sink))
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
        return Err(PlanError::Blocked(blockers));
    }
    Ok(Plan {
        revision: revision.to_string(),
        steps,
        notes,
        observed: fingerprint(observed)?,
        cluster: desired.cluster.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        let (view, offsets) = views_of(&staging);
        let view = ViewSpec {
            pipeline: "p".into(),
            version,
            staging: staging.clone(),
            view,
            offsets,
            sink: t("s".into()),
            ledger: t(LEDGER.into()),
            source_columns: vec![],
            query: None,
        };
        PipelineVersion {
            version,
            ingest: IngestSpec {
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

    /// v2 was live with its resources, and the revision (a revert) wants v1 only.
    fn reverted() -> (
        Desired,
        Observed,
        BTreeSet<ResourceId>,
        PipelineVersion,
        PipelineVersion,
    ) {
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
        let mut observed = Observed::default();
        let mut managed = BTreeSet::new();
        for v in [&v1, &v2] {
            for t in [&v.view.staging, &v.view.view, &v.view.offsets] {
                let create_query = if t == &v.view.staging {
                    String::new()
                } else {
                    format!("CREATE MATERIALIZED VIEW {t} TO db.s AS SELECT 1")
                };
                observed.tables.insert(
                    t.clone(),
                    ObservedTable {
                        create_query,
                        ..Default::default()
                    },
                );
                managed.insert(ResourceId::table(t));
            }
        }
        observed
            .tables
            .insert(v1.view.ledger.clone(), ObservedTable::default());
        managed.insert(ResourceId::table(&v1.view.ledger));
        observed.live.insert("p".into(), v2.ingest.clone());
        (desired, observed, managed, v1, v2)
    }

    #[test]
    fn a_reverted_version_is_retired_in_the_same_revision_after_its_workers_hand_over() {
        let (desired, mut observed, managed, v1, v2) = reverted();
        let revert = plan(&desired, &observed, &managed, "r").unwrap();
        let position = |f: &dyn Fn(&Action) -> bool| revert.steps.iter().position(|s| f(&s.action));
        let activate = position(&|a| {
            matches!(a, Action::Pipeline(PipelineAction::Activate { spec, refresh: Some(_) })
                if spec.version == 1 && spec.previous_group.as_deref() == Some("g-v2"))
        })
        .expect("a cut-over to v1");
        let handover = position(&|a| {
            matches!(
                a,
                Action::Pipeline(PipelineAction::AwaitHandover {
                    version: Some(1),
                    ..
                })
            )
        })
        .expect("a wait for the hand-over");
        let drop_views = position(&|a| {
            matches!(a, Action::ClickHouse(ClickHouseAction::DropViews { view, .. }) if *view == v2.view.view)
        })
        .expect("v2's views retired");
        let drop_staging = position(&|a| {
            matches!(a, Action::ClickHouse(ClickHouseAction::DropTable { table }) if *table == v2.view.staging)
        })
        .expect("v2's staging table retired");
        assert!(activate < handover && handover < drop_views && drop_views < drop_staging);
        // Every step can be undone, or changes nothing: the views come back as they were.
        let undo = revert.steps[drop_views].compensation.as_ref().unwrap();
        assert!(
            matches!(undo, Action::ClickHouse(ClickHouseAction::RestoreViews { statements, .. }) if statements.len() == 2),
            "{undo:?}"
        );
        for step in &revert.steps {
            assert!(
                step.compensation.is_some() || step.irreversible || step.changes_nothing(),
                "{step:?}"
            );
        }
        // After it: v1 live, v2's resources gone. Nothing left to do.
        observed.live.insert("p".into(), v1.ingest.clone());
        for t in [&v2.view.staging, &v2.view.view, &v2.view.offsets] {
            observed.tables.remove(t);
        }
        let mut managed = managed;
        for t in [&v2.view.staging, &v2.view.view, &v2.view.offsets] {
            managed.remove(&ResourceId::table(t));
        }
        let next = plan(&desired, &observed, &managed, "r").unwrap();
        assert!(next.steps.is_empty(), "{:?}", next.steps);
    }

    #[test]
    fn a_cut_over_to_a_version_without_views_makes_them_in_a_step_its_undo_drops() {
        let (mut desired, observed, managed, _, v2) = reverted();
        // Forward to a v3 that has nothing yet.
        let v3 = pipeline_version(3);
        let p = desired.pipelines.get_mut("p").unwrap();
        p.live = 3;
        p.versions.insert(3, v3.clone());
        let plan = plan(&desired, &observed, &managed, "r").unwrap();
        let position = |f: &dyn Fn(&Action) -> bool| plan.steps.iter().position(|s| f(&s.action));
        let views = position(&|a| {
            matches!(a, Action::ClickHouse(ClickHouseAction::CreateViews { spec }) if spec.version == 3)
        })
        .expect("v3's views made by a step of their own");
        let activate = position(&|a| {
            matches!(a, Action::Pipeline(PipelineAction::Activate { spec, .. }) if spec.version == 3)
        })
        .unwrap();
        assert!(views < activate);
        assert!(matches!(
            &plan.steps[views].compensation,
            Some(Action::ClickHouse(ClickHouseAction::DropViews { view, .. })) if *view == v3.view.view
        ));
        // v2, live until now and not retained, is retired after the hand-over to v3.
        let handover = position(&|a| {
            matches!(
                a,
                Action::Pipeline(PipelineAction::AwaitHandover {
                    version: Some(3),
                    ..
                })
            )
        })
        .unwrap();
        let retired = position(&|a| {
            matches!(a, Action::ClickHouse(ClickHouseAction::DropTable { table }) if *table == v2.view.staging)
        })
        .unwrap();
        assert!(activate < handover && handover < retired);
    }

    #[test]
    fn a_view_the_server_does_not_describe_is_retired_as_irreversible() {
        let (desired, mut observed, managed, _, v2) = reverted();
        for t in [&v2.view.view, &v2.view.offsets] {
            observed.tables.get_mut(t).unwrap().create_query.clear();
        }
        let p = plan(&desired, &observed, &managed, "r").unwrap();
        let step = p
            .steps
            .iter()
            .find(|s| {
                matches!(
                    &s.action,
                    Action::ClickHouse(ClickHouseAction::DropViews { .. })
                )
            })
            .unwrap();
        assert!(step.irreversible && step.compensation.is_none());
    }

    #[test]
    fn the_fingerprint_changes_when_a_table_goes() {
        let (desired, mut observed, managed, _, _) = reverted();
        let before = plan(&desired, &observed, &managed, "r").unwrap().observed;
        assert_eq!(before.len(), 24);
        let ledger = TableName {
            database: "db".into(),
            name: LEDGER.into(),
        };
        observed.tables.remove(&ledger);
        let managed: BTreeSet<ResourceId> = managed;
        let after = plan(&desired, &observed, &managed, "r").unwrap().observed;
        assert_ne!(before, after);
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
        let managed = BTreeSet::from([ResourceId::topic("t"), ResourceId::database("db")]);
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
            &BTreeSet::from([ResourceId::topic("old")]),
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
        let e = plan(&desired, &observed, &BTreeSet::new(), "r").unwrap_err();
        assert!(e.blockers().unwrap()[0]
            .message
            .contains("paver did not create it"));
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
        let p = plan(
            &desired,
            &observed,
            &BTreeSet::from([ResourceId::topic("t")]),
            "r",
        )
        .unwrap();
        assert!(p.steps[0].irreversible);
        let Action::Kafka(KafkaAction::AlterTopicConfig { set, delete, .. }) = &p.steps[1].action
        else {
            panic!()
        };
        assert_eq!(set.len(), 2);
        assert_eq!(delete, &["segment.ms"]);
        let Some(Action::Kafka(KafkaAction::AlterTopicConfig {
            set: restore,
            delete: unset,
            ..
        })) = &p.steps[1].compensation
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
