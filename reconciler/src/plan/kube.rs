//! Kubernetes: the steps from the objects paver observed to the objects a revision renders
//! (from its ClickHouseClusters, see [`crate::kube::render`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Blocker, KubeAction, Step};
use crate::model::kube;
use crate::model::ObjectRef;

/// The Kubernetes steps from `observed` to `desired` (rendered objects): create what is
/// missing (undo: delete it), apply what differs (undo: apply what paver had applied
/// before), delete what paver owns and the revision no longer renders (undo: apply it
/// again). An object in the way that paver does not own is a blocker, never taken over.
/// Appended to [`super::plan`]'s steps when a Kubernetes target is configured.
pub fn plan_kube(
    desired: &[serde_json::Value],
    observed: &BTreeMap<ObjectRef, serde_json::Value>,
) -> Result<Vec<Step>, Vec<Blocker>> {
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
            None => steps.push(Step::new(
                r.id(),
                KubeAction::ApplyObject {
                    object: apply,
                    create: true,
                    changes: Vec::new(),
                },
                Some(KubeAction::DeleteObject { object: r }.into()),
            )),
            Some(have)
                if have["metadata"]["labels"][kube::MANAGED_BY].as_str() != Some(kube::MANAGER) =>
            {
                blockers.push(Blocker {
                    resource: r.id(),
                    message: format!("{r} exists and paver did not create it (it has no `{}: {}` label): paver never takes over what it does not manage", kube::MANAGED_BY, kube::MANAGER),
                });
            }
            Some(have) if !kube::contains(have, &apply) => steps.push(Step::new(
                r.id(),
                KubeAction::ApplyObject {
                    changes: kube::differences(have, object),
                    object: apply,
                    create: false,
                },
                Some(
                    KubeAction::ApplyObject {
                        object: kube::previous(have),
                        create: false,
                        changes: Vec::new(),
                    }
                    .into(),
                ),
            )),
            Some(_) => {}
        }
    }
    for (r, have) in observed {
        if !wanted.contains(r) && kube::is_paver_owned(have) {
            steps.push(Step::new(
                r.id(),
                KubeAction::DeleteObject { object: r.clone() },
                Some(
                    KubeAction::ApplyObject {
                        object: kube::previous(have),
                        create: true,
                        changes: Vec::new(),
                    }
                    .into(),
                ),
            ));
        }
    }
    if blockers.is_empty() {
        Ok(steps)
    } else {
        Err(blockers)
    }
}
