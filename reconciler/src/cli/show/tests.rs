use super::*;
use serde_json::json;

fn record(id: i64, sha: &str, status: &str, error: Option<&str>) -> Value {
    json!({
        "id": id,
        "sha": sha,
        "status": status,
        "error": error,
        "error_kind": error.map(|_| "permanent"),
        "steps": 12,
        "started_at": "2026-12-02 01:00:00",
        "finished_at": "2026-12-02 01:00:03",
        "plan": null,
    })
}

fn plain() -> Paint {
    Paint { colour: false }
}

fn running() -> Value {
    json!({
        "repo": "https://git.example.com/platform.git",
        "branch": "main",
        "active": record(7, "3f2c9e1a0b4c5d6e7f80", "applied", None),
        "last": record(8, "9a8b7c6d5e4f3a2b1c0d", "rolled-back", Some("ClickHouse refused: ALTER TABLE ... Code: 497")),
        "interrupted": null,
        "managed": 9,
        "failure": {
            "revision": "9a8b7c6d5e4f3a2b1c0d",
            "kind": "permanent",
            "error": "ClickHouse refused",
            "at": "2026-12-02 01:00:03",
            "nextTry": null,
            "retry": "held: push a new revision, or `paver retry 9a8b7c6d5e4f3a2b1c0d`",
        },
        "pipelines": [
            {
                "name": "orders", "liveVersion": 2, "workerVersion": 2, "lag": 0,
                "rowsPerSec": 1250.5, "consumed": 40210, "inserted": 40200,
                "deadLettered": 10, "lastError": null, "topic": "orders",
            },
            {
                "name": "payments-eu", "liveVersion": 1, "workerVersion": null, "lag": null,
                "rowsPerSec": null, "consumed": null, "inserted": null,
                "deadLettered": null, "lastError": "cannot reach Kafka at 127.0.0.1:9092",
                "topic": "payments",
            },
        ],
        "lastError": null,
        "leader": null,
        "alerts": [{
            "pipeline": "payments-eu", "alert": "onFailure", "owner": "team-payments",
            "version": 1, "reason": "cannot reach Kafka", "startsAt": "2026-12-02 01:00:10",
        }],
    })
}

#[test]
fn status_of_a_running_paver() {
    insta::assert_snapshot!(status(&running(), plain()));
}

#[test]
fn status_of_a_fresh_store() {
    let fresh = json!({
        "active": null, "last": null, "interrupted": null, "managed": 0,
        "pipelines": [], "failure": null,
    });
    insta::assert_snapshot!(status(&fresh, plain()));
}

#[test]
fn status_with_an_interrupted_revision() {
    let mut s = running();
    s["interrupted"] = record(9, "0123456789abcdef0123", "applying", None);
    s["failure"] = Value::Null;
    s["last"] = s["interrupted"].clone();
    insta::assert_snapshot!(status(&s, plain()));
}

#[test]
fn history_table() {
    let records = vec![
        record(
            8,
            "9a8b7c6d5e4f3a2b1c0d",
            "rolled-back",
            Some("ClickHouse refused"),
        ),
        record(7, "3f2c9e1a0b4c5d6e7f80", "applied", None),
        record(
            6,
            "aaaabbbbccccdddd",
            "refused",
            Some("PV012 at pipelines/orders.yaml:3:5"),
        ),
    ];
    insta::assert_snapshot!(history(&records, plain()));
}

#[test]
fn history_when_empty() {
    assert_eq!(history(&[], plain()), "No attempts yet.\n");
}

#[test]
fn colour_only_when_asked() {
    let records = vec![record(7, "3f2c9e1a0b4c5d6e7f80", "applied", None)];
    let coloured = history(&records, Paint { colour: true });
    assert!(coloured.contains("\x1b[32mapplied"), "{coloured:?}");
    assert!(!history(&records, plain()).contains('\x1b'));
    assert!(!status(&running(), plain()).contains('\x1b'));
}
