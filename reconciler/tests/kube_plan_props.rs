//! Properties of `plan_kube` over random rendered and observed objects, on a model of the
//! API server (server-side apply stores the manifest plus the server's own fields; delete
//! removes):
//!
//! - applying the plan makes every rendered object hold its manifest, removes what paver
//!   owns and no longer renders, leaves everything else alone, and planning again finds
//!   nothing to do;
//! - compensating every step in reverse order (or any failed prefix) returns every object
//!   to what paver had applied before, and removes what the plan created.

use std::collections::BTreeMap;

use paver::kube::{contains, with_applied, ObjectRef};
use paver::plan::{plan_kube, Action, KubeAction};
use proptest::prelude::*;
use serde_json::{json, Value};

type World = BTreeMap<ObjectRef, Value>;

fn manifest(kind: &str, name: &str, size: u8, owned: bool) -> Value {
    let (api_version, kind) = match kind {
        "CronJob" => ("batch/v1", "CronJob"),
        _ => ("monitoring.coreos.com/v1", "PrometheusRule"),
    };
    let mut labels = json!({"team": "a"});
    if owned {
        labels["app.kubernetes.io/managed-by"] = json!("paver");
        labels["paver.dev/cluster"] = json!(name);
    }
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": "data", "labels": labels},
           "spec": {"size": size, "list": (0..size % 3).collect::<Vec<_>>()}})
}

/// What the server stores after applying `object`: it, and fields of its own.
fn stored(object: &Value, version: u64) -> Value {
    let mut out = object.clone();
    out["metadata"]["resourceVersion"] = json!(version.to_string());
    out["metadata"]["uid"] = json!("u");
    out["status"] = json!({"observed": version});
    out
}

fn simulate(world: &mut World, action: &Action, version: &mut u64) {
    *version += 1;
    match action {
        Action::Kube(KubeAction::ApplyObject { object, .. }) => {
            let r = ObjectRef::of(object).expect("a manifest names its object");
            world.insert(r, stored(object, *version));
        }
        Action::Kube(KubeAction::DeleteObject { object }) => {
            world.remove(object);
        }
        other => panic!("plan_kube planned a non-Kubernetes action: {other:?}"),
    }
}

/// Rendered objects, and what exists: some of them as paver applied them earlier (maybe
/// another size), paver-owned objects no longer rendered, and foreign objects.
fn case() -> impl Strategy<Value = (Vec<Value>, World)> {
    let names = ["a", "b", "c", "d"];
    let kinds = ["CronJob", "PrometheusRule"];
    let slot = (0..4usize, 0..2usize);
    (
        prop::collection::btree_map(slot.clone(), 1..6u8, 0..6),
        prop::collection::btree_map(slot, (1..6u8, 0..3u8), 0..6),
    )
        .prop_map(move |(want, have)| {
            let desired: Vec<Value> = want
                .iter()
                .map(|((n, k), size)| manifest(kinds[*k], names[*n], *size, true))
                .collect();
            let mut world = World::new();
            for ((n, k), (size, how)) in have {
                // 0: applied by paver; 1: paver-labelled, applied before the annotation
                // existed; 2: someone else's (only where nothing is rendered: else a blocker).
                let object = match how {
                    0 => with_applied(&manifest(kinds[k], names[n], size, true)),
                    1 => manifest(kinds[k], names[n], size, true),
                    _ if want.contains_key(&(n, k)) => continue,
                    _ => manifest(kinds[k], names[n], size, false),
                };
                world.insert(ObjectRef::of(&object).unwrap(), stored(&object, 1));
            }
            (desired, world)
        })
}

proptest! {
    #[test]
    fn applying_the_plan_converges_and_planning_again_finds_nothing((desired, observed) in case()) {
        let steps = plan_kube(&desired, &observed).expect("no blockers in these cases");
        let mut world = observed.clone();
        let mut version = 10;
        for step in &steps {
            simulate(&mut world, &step.action, &mut version);
        }
        for object in &desired {
            let r = ObjectRef::of(object).unwrap();
            prop_assert!(world.get(&r).is_some_and(|have| contains(have, object)));
        }
        for (r, have) in &observed {
            let rendered = desired.iter().any(|o| ObjectRef::of(o).as_ref() == Some(r));
            if !rendered {
                let owned = paver::kube::is_paver_owned(have);
                prop_assert_eq!(world.contains_key(r), !owned, "{}", r);
                if !owned {
                    prop_assert_eq!(&world[r], have, "a foreign object was touched");
                }
            }
        }
        prop_assert_eq!(plan_kube(&desired, &world).unwrap(), vec![]);
    }

    #[test]
    fn compensating_any_prefix_restores_what_was_there((desired, observed) in case(), cut in 0..8usize) {
        let steps = plan_kube(&desired, &observed).expect("no blockers in these cases");
        let done = &steps[..cut.min(steps.len())];
        let mut world = observed.clone();
        let mut version = 10;
        for step in done {
            simulate(&mut world, &step.action, &mut version);
        }
        for step in done.iter().rev() {
            let undo = step.compensation.as_ref().expect("every Kubernetes step has an undo");
            simulate(&mut world, undo, &mut version);
        }
        prop_assert_eq!(world.keys().collect::<Vec<_>>(), observed.keys().collect::<Vec<_>>());
        for (r, before) in &observed {
            // What paver had applied is back (the server's own fields may differ).
            let mut applied = paver::kube::previous(before);
            if let Some(meta) = applied["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            prop_assert!(contains(&world[r], &applied), "{} is not restored", r);
        }
    }
}
