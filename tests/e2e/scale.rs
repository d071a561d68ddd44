//! What a no-op reconcile costs as a repo grows: a count of requests per provider, not a
//! timing (`bench/reconcile.sh` times it, at 10,000 resources).

use super::*;

/// A repo of `extra` more topics and `extra` more pipelines (each its own sink table) than
/// the base one, applied; then the requests of a no-op reconcile.
fn no_op_requests(test: &str, extra: usize) -> (u64, u64) {
    let p = Platform::new(test);
    p.base();
    for i in 0..extra {
        p.write_topic(&format!("t{i}"), 1, 1, "86400000");
        p.write_pipeline(
            &format!("p{i}"),
            1,
            &format!("sink{i}"),
            "SELECT id, at, amount FROM source",
        );
    }
    p.push("v1");
    let first = p.apply();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let again = p.apply();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("0 steps"), "{}", text(&again));
    super::run::requests(&again)
}

#[test]
fn a_no_op_reconcile_asks_each_provider_the_same_at_3_and_at_123_resources() {
    servers();
    // 3 resources (two topics, a pipeline), then 123 (60 topics and 60 pipelines more):
    // enough for a request per resource, or per batch of a few dozen, to show.
    let small = no_op_requests("noop-small", 0);
    let large = no_op_requests("noop-large", 60);
    assert_eq!(small, large, "ClickHouse queries, Kafka requests");
    // Kafka: metadata + DescribeConfigs; ClickHouse: version, databases, tables, columns
    // (and the settings probe).
    assert!(large.0 <= 5 && large.1 <= 2, "{large:?}");
}
