//! The Kafka provider against the real broker (`scripts/test-servers start`), called from
//! a current-thread runtime (`#[tokio::test]`): every blocking librdkafka call of the
//! provider must run off the runtime's only thread (`block_in_place` panics there).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paver::plan::{KafkaAction, Topic};
use paver::providers::kafka::Kafka;

fn brokers() -> String {
    std::env::var("PAVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn unique(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kp-{kind}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn observe_alter_and_group_offsets_run_on_a_current_thread_runtime() {
    let kafka = Kafka::connect(&brokers()).unwrap();
    let name = unique("topic");
    let topic = Topic {
        partitions: 2,
        replication_factor: 1,
        config: BTreeMap::from([("retention.ms".to_string(), "3600000".to_string())]),
    };
    let create = KafkaAction::CreateTopic {
        name: name.clone(),
        topic: topic.clone(),
    };
    kafka.execute(&create).await.unwrap();
    let wanted = BTreeMap::from([(name.clone(), topic.clone())]);
    // Metadata may lag the creation a little.
    let mut seen = BTreeMap::new();
    for _ in 0..50 {
        seen = kafka.observe(&wanted).await.unwrap();
        if seen.contains_key(&name) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen[&name].partitions, 2, "{seen:?}");

    let alter = KafkaAction::AlterTopicConfig {
        name: name.clone(),
        set: BTreeMap::from([("retention.ms".to_string(), "7200000".to_string())]),
        delete: Vec::new(),
    };
    kafka.execute(&alter).await.unwrap();

    let group = unique("group");
    assert!(kafka
        .group_offsets(&group, &name, 2)
        .await
        .unwrap()
        .is_empty());
    let offsets = BTreeMap::from([(0, 0i64), (1, 0i64)]);
    kafka
        .set_group_offsets(&group, &name, &offsets)
        .await
        .unwrap();
    assert_eq!(
        kafka.group_offsets(&group, &name, 2).await.unwrap(),
        offsets
    );

    let delete = KafkaAction::DeleteTopic { name: name.clone() };
    kafka.execute(&delete).await.unwrap();
}
