//! Kafka topics: created, given partitions (irreversible), their config altered with the
//! old values as the undo. A topic paver did not create is never taken over.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Blocker, KafkaAction, Step};
use crate::model::{Desired, Observed, ResourceId};

pub(super) fn plan_topics(
    desired: &Desired,
    observed: &Observed,
    managed: &BTreeSet<ResourceId>,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
    blockers: &mut Vec<Blocker>,
) {
    let mut block =
        |resource: ResourceId, message: String| blockers.push(Blocker { resource, message });
    for (name, want) in &desired.topics {
        let id = ResourceId::topic(name);
        let Some(have) = observed.topics.get(name) else {
            steps.push(Step::new(
                id,
                KafkaAction::CreateTopic {
                    name: name.clone(),
                    topic: want.clone(),
                },
                Some(KafkaAction::DeleteTopic { name: name.clone() }.into()),
            ));
            continue;
        };
        if !managed.contains(&id) {
            block(id, format!("the topic `{name}` exists and paver did not create it: paver never takes over or drops what it does not manage"));
            continue;
        }
        if want.partitions < have.partitions {
            block(id.clone(), format!("topic `{name}` has {} partitions; the revision wants {}: Kafka cannot remove partitions", have.partitions, want.partitions));
        } else if want.partitions > have.partitions {
            steps.push(Step::irreversible(
                id.clone(),
                KafkaAction::CreatePartitions {
                    name: name.clone(),
                    count: want.partitions,
                },
            ));
        }
        if want.replication_factor != have.replication_factor {
            notes.push(format!(
                "topic `{name}` has replication factor {}, the revision says {}: paver does not reassign partitions",
                have.replication_factor, want.replication_factor
            ));
        }
        let set: BTreeMap<String, String> = want
            .config
            .iter()
            .filter(|(k, v)| have.config.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let delete: Vec<String> = have
            .config
            .keys()
            .filter(|k| !want.config.contains_key(*k))
            .cloned()
            .collect();
        if !set.is_empty() || !delete.is_empty() {
            // The undo restores what was there: old values back, new keys removed.
            let restore: BTreeMap<String, String> = set
                .keys()
                .chain(delete.iter())
                .filter_map(|k| have.config.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let unset: Vec<String> = set
                .keys()
                .filter(|k| !have.config.contains_key(*k))
                .cloned()
                .collect();
            steps.push(Step::new(
                id,
                KafkaAction::AlterTopicConfig {
                    name: name.clone(),
                    set,
                    delete,
                },
                Some(Action::Kafka(KafkaAction::AlterTopicConfig {
                    name: name.clone(),
                    set: restore,
                    delete: unset,
                })),
            ));
        }
    }
}
