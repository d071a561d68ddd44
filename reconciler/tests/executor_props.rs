//! The executor's promise, whole or nothing, over random plans and a scripted provider: a
//! step that fails, a compensation that fails (before or after it took effect), a crash at
//! any step (before or after the step took effect, with the journal as it was written), a
//! crash while undoing: after the restarts that follow (`executor::recover`, as every
//! reconcile starts), the world is what it was before the revision or what the revision
//! wants, never something in between, and the state store says which.
//!
//! The world is a model (topics with partitions and config, databases) that the scripted
//! provider changes as Kafka and ClickHouse would; the store is the real SQLite store.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use paver::error::ProviderError;
use paver::executor::{self, Executes};
use paver::plan::{Action, ClickHouseAction, KafkaAction, Plan, ResourceId, Step, Topic};
use paver::store::{RevisionStatus, Store, StoreError};
use proptest::prelude::*;

/// What exists, as far as the model's actions go.
#[derive(Debug, Clone, Default, PartialEq)]
struct World {
    topics: BTreeMap<String, Topic>,
    databases: BTreeSet<String>,
}

impl World {
    /// What an action does, as the providers do it. Deletions of what is not there do
    /// nothing, as compensations must be idempotent.
    fn apply(&mut self, action: &Action) {
        match action {
            Action::Kafka(KafkaAction::CreateTopic { name, topic }) => {
                self.topics.insert(name.clone(), topic.clone());
            }
            Action::Kafka(KafkaAction::DeleteTopic { name }) => {
                self.topics.remove(name);
            }
            Action::Kafka(KafkaAction::AlterTopicConfig { name, set, delete }) => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.config.extend(set.clone());
                    for k in delete {
                        t.config.remove(k);
                    }
                }
            }
            Action::Kafka(KafkaAction::CreatePartitions { name, count }) => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions = t.partitions.max(*count);
                }
            }
            Action::ClickHouse(ClickHouseAction::CreateDatabase { name }) => {
                self.databases.insert(name.clone());
            }
            Action::ClickHouse(ClickHouseAction::DropDatabase { name }) => {
                self.databases.remove(name);
            }
            other => panic!("not in the model: {other:?}"),
        }
    }

    /// The world without what only irreversible steps change (partition counts).
    fn reversible(&self) -> World {
        let mut world = self.clone();
        for t in world.topics.values_mut() {
            t.partitions = 0;
        }
        world
    }
}

/// What the scripted provider does at one of its calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Fails without touching anything.
    Fail,
    /// Fails after the change took effect (a timeout on a request that went through). Only
    /// compensations meet it: the executor takes a failed step to have changed nothing, as
    /// long as provider errors do not say which failures leave the outcome unknown.
    FailAfterEffect,
    /// The process dies while the call runs, before it reached the system.
    Crash,
    /// The process dies after the change took effect, before it was journaled as done.
    CrashAfterEffect,
}

const FAULTS: [Fault; 4] = [
    Fault::Fail,
    Fault::FailAfterEffect,
    Fault::Crash,
    Fault::CrashAfterEffect,
];

/// A provider over the model world that follows a script: the n-th call of the whole
/// scenario (steps and compensations, across restarts) meets `faults[n]`, if any. A
/// crash is a call that never returns: the driver drops the executor's future there.
struct Scripted {
    world: RefCell<World>,
    calls: Cell<usize>,
    faults: BTreeMap<usize, Fault>,
    /// Whether the executor is undoing: every call after the first fault is a compensation.
    undoing: Cell<bool>,
}

impl Executes for Scripted {
    fn execute(
        &self,
        action: &Action,
        _store: &Store,
    ) -> impl Future<Output = Result<(), ProviderError>> {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let fault = match self.faults.get(&n).copied() {
            Some(Fault::FailAfterEffect) if !self.undoing.get() => Some(Fault::Fail),
            fault => fault,
        };
        if fault.is_some() {
            self.undoing.set(true);
        }
        if matches!(
            fault,
            None | Some(Fault::FailAfterEffect | Fault::CrashAfterEffect)
        ) {
            self.world.borrow_mut().apply(action);
        }
        let result = match fault {
            None => Some(Ok(())),
            Some(Fault::Fail | Fault::FailAfterEffect) => Some(Err(ProviderError::transient(
                format!("scripted failure at call {n}"),
            ))),
            Some(Fault::Crash | Fault::CrashAfterEffect) => None,
        };
        async move {
            match result {
                Some(result) => result,
                None => std::future::pending().await,
            }
        }
    }
}

/// Run a future of the executor to its end, or to the scripted crash (`None`): nothing in
/// it waits on anything but the provider, whose calls are ready at once unless they crash.
fn run<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// How a scenario ended.
#[derive(Debug)]
struct End {
    world: World,
    status: RevisionStatus,
    /// A revision still `applying`: the next start would undo it again.
    interrupted: bool,
}

/// Apply `plan` to `before` with the scripted faults, then restart (a new process opens
/// the store and recovers) until a start completes, as the reconcile loop does.
fn play(plan: &Plan, before: &World, faults: BTreeMap<usize, Fault>) -> End {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paver.db");
    let provider = Scripted {
        world: RefCell::new(before.clone()),
        calls: Cell::new(0),
        faults,
        undoing: Cell::new(false),
    };
    let mut starts_left = provider.faults.len() + 2;
    {
        let store = Store::open(&path).unwrap();
        if let Some(outcome) = run(executor::apply(&store, plan, &provider, &executor::Alone)) {
            outcome.expect("the store works");
        }
    }
    loop {
        let store = Store::open(&path).unwrap();
        match run(executor::recover(&store, &provider)) {
            Some(Ok(_)) => break,
            // An undo failed: the revision waits for the next start.
            Some(Err(StoreError::Recovery(_))) | None => {}
            Some(Err(e)) => panic!("the store failed: {e}"),
        }
        starts_left -= 1;
        assert!(starts_left > 0, "recovery does not end");
    }
    let store = Store::open(&path).unwrap();
    let record = store
        .latest_for(&plan.revision)
        .unwrap()
        .expect("the revision is recorded");
    End {
        world: provider.world.into_inner(),
        status: record.status,
        interrupted: store.interrupted().unwrap().is_some(),
    }
}

/// The world after every step.
fn after(plan: &Plan, before: &World) -> World {
    let mut world = before.clone();
    for step in &plan.steps {
        world.apply(&step.action);
    }
    world
}

/// Whole or nothing: applied and equal to `after`, or rolled back and equal to `before`
/// but for what irreversible steps changed (partitions only grow: each topic has at least
/// the count it had before and at most the one the revision wants).
fn check(end: &End, plan: &Plan, before: &World) -> Result<(), String> {
    let after = after(plan, before);
    if end.interrupted {
        return Err("a revision is left `applying`".into());
    }
    match end.status {
        RevisionStatus::Applied if end.world == after => Ok(()),
        RevisionStatus::RolledBack if end.world.reversible() == before.reversible() => {
            for (name, topic) in &end.world.topics {
                let was = before.topics[name].partitions;
                let wanted = after.topics.get(name).map_or(was, |t| t.partitions);
                if !(was..=wanted).contains(&topic.partitions) {
                    return Err(format!(
                        "topic {name} has {} partitions: not between {was} and {wanted}",
                        topic.partitions
                    ));
                }
            }
            Ok(())
        }
        status => Err(format!(
            "{status:?}, and the world is in between:\n  before: {before:?}\n  after:  {after:?}\n  now:    {:?}",
            end.world
        )),
    }
}

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

/// One step of a random plan: what kind, and on which resource (an index into the
/// existing or new names).
#[derive(Debug, Clone, Copy)]
enum Intent {
    CreateTopic(usize),
    AlterConfig(usize, usize),
    CreateDatabase(usize),
    GrowPartitions(usize),
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        (0..3usize).prop_map(Intent::CreateTopic),
        (0..4usize, 0..3usize).prop_map(|(t, v)| Intent::AlterConfig(t, v)),
        (0..3usize).prop_map(Intent::CreateDatabase),
        (0..4usize).prop_map(Intent::GrowPartitions),
    ]
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::btree_map(
            prop::sample::select(vec!["orders", "payments", "users"]),
            (
                1..4i32,
                prop::option::of(prop::sample::select(vec!["1000", "2000"])),
            ),
            0..3,
        ),
        prop::collection::btree_set(prop::sample::select(vec!["analytics", "raw"]), 0..2),
    )
        .prop_map(|(topics, databases)| World {
            topics: topics
                .into_iter()
                .map(|(name, (partitions, retention))| {
                    let config: Vec<(&str, &str)> =
                        retention.map(|r| ("retention.ms", r)).into_iter().collect();
                    (name.to_string(), topic(partitions, &config))
                })
                .collect(),
            databases: databases.into_iter().map(str::to_string).collect(),
        })
}

/// A plan from intents, each step built on the world the previous ones made, with the
/// compensation that restores that world (or none, marked irreversible).
fn plan_of(before: &World, intents: &[Intent]) -> Plan {
    let mut world = before.clone();
    let mut steps = Vec::new();
    for intent in intents {
        let existing: Vec<String> = world.topics.keys().cloned().collect();
        let step = match *intent {
            Intent::CreateTopic(n) => {
                let name = format!("new-{n}");
                if world.topics.contains_key(&name) {
                    continue;
                }
                Step {
                    resource: ResourceId::topic(&name),
                    action: Action::Kafka(KafkaAction::CreateTopic {
                        name: name.clone(),
                        topic: topic(1 + n as i32, &[]),
                    }),
                    compensation: Some(Action::Kafka(KafkaAction::DeleteTopic { name })),
                    irreversible: false,
                }
            }
            Intent::AlterConfig(t, v) => {
                let Some(name) = existing.get(t % existing.len().max(1)) else {
                    continue;
                };
                let key = "retention.ms".to_string();
                let value = ["1000", "3000", "4000"][v].to_string();
                let undo = match world.topics[name].config.get(&key) {
                    Some(old) => Action::Kafka(KafkaAction::AlterTopicConfig {
                        name: name.clone(),
                        set: BTreeMap::from([(key.clone(), old.clone())]),
                        delete: Vec::new(),
                    }),
                    None => Action::Kafka(KafkaAction::AlterTopicConfig {
                        name: name.clone(),
                        set: BTreeMap::new(),
                        delete: vec![key.clone()],
                    }),
                };
                Step {
                    resource: ResourceId::topic(name),
                    action: Action::Kafka(KafkaAction::AlterTopicConfig {
                        name: name.clone(),
                        set: BTreeMap::from([(key, value)]),
                        delete: Vec::new(),
                    }),
                    compensation: Some(undo),
                    irreversible: false,
                }
            }
            Intent::CreateDatabase(n) => {
                let name = format!("db{n}");
                if world.databases.contains(&name) {
                    continue;
                }
                Step {
                    resource: ResourceId::database(&name),
                    action: Action::ClickHouse(ClickHouseAction::CreateDatabase {
                        name: name.clone(),
                    }),
                    compensation: Some(Action::ClickHouse(ClickHouseAction::DropDatabase { name })),
                    irreversible: false,
                }
            }
            Intent::GrowPartitions(t) => {
                let Some(name) = existing.get(t % existing.len().max(1)) else {
                    continue;
                };
                Step {
                    resource: ResourceId::topic(name),
                    action: Action::Kafka(KafkaAction::CreatePartitions {
                        name: name.clone(),
                        count: world.topics[name].partitions + 1,
                    }),
                    compensation: None,
                    irreversible: true,
                }
            }
        };
        world.apply(&step.action);
        steps.push(step);
    }
    Plan {
        revision: "r1".into(),
        steps,
        notes: Vec::new(),
        observed: String::new(),
        cluster: None,
    }
}

/// The provider calls of a run without faults: every step, then none (it is applied).
/// With a failure, compensations add at most as many again.
fn most_calls(plan: &Plan) -> usize {
    2 * plan.steps.len() + 1
}

proptest! {
    // Each case plays every fault at every call (some fifty scenarios, each on a store of
    // its own that syncs every journal entry to disk).
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// One fault, of every kind, at every call: a step, a compensation, a recovery.
    #[test]
    fn one_fault_at_any_call_leaves_the_world_before_or_after(
        before in world(),
        intents in prop::collection::vec(intent(), 1..7),
    ) {
        let plan = plan_of(&before, &intents);
        for call in 0..most_calls(&plan) {
            for fault in FAULTS {
                let end = play(&plan, &before, BTreeMap::from([(call, fault)]));
                prop_assert_eq!(
                    check(&end, &plan, &before),
                    Ok(()),
                    "{:?} at call {}, plan {:#?}",
                    fault,
                    call,
                    plan.steps
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Several faults in one scenario: a failure whose compensation fails, a crash while
    /// recovering from a crash, and so on.
    #[test]
    fn faults_in_a_row_leave_the_world_before_or_after(
        before in world(),
        intents in prop::collection::vec(intent(), 1..7),
        faults in prop::collection::btree_map(0..14usize, prop::sample::select(FAULTS.to_vec()), 1..4),
    ) {
        let plan = plan_of(&before, &intents);
        let end = play(&plan, &before, faults.clone());
        prop_assert_eq!(check(&end, &plan, &before), Ok(()), "faults {:?}, plan {:#?}", faults, plan.steps);
    }
}

/// Without faults, the plan is applied whole: a guard that the model and the driver do
/// what the properties assume.
#[test]
fn without_faults_the_revision_is_applied() {
    let before = World {
        topics: BTreeMap::from([("orders".to_string(), topic(1, &[]))]),
        databases: BTreeSet::new(),
    };
    let plan = plan_of(
        &before,
        &[
            Intent::CreateTopic(0),
            Intent::AlterConfig(0, 1),
            Intent::CreateDatabase(0),
            Intent::GrowPartitions(0),
        ],
    );
    assert_eq!(plan.steps.len(), 4);
    let end = play(&plan, &before, BTreeMap::new());
    assert_eq!(end.status, RevisionStatus::Applied);
    assert_eq!(end.world, after(&plan, &before));
    assert_ne!(end.world, before);
}

/// A step that fails is undone with the steps before it: the world is as before.
#[test]
fn a_failed_step_rolls_back_what_ran() {
    let before = World::default();
    let plan = plan_of(
        &before,
        &[
            Intent::CreateDatabase(0),
            Intent::CreateTopic(0),
            Intent::CreateTopic(1),
        ],
    );
    let end = play(&plan, &before, BTreeMap::from([(2, Fault::Fail)]));
    assert_eq!(end.status, RevisionStatus::RolledBack);
    assert_eq!(end.world, before);
}
