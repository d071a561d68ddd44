use super::*;
use serde_json::json;

fn record(id: i64, sha: &str, status: &str, error: Option<&str>, plan: Option<&str>) -> Value {
    json!({
        "id": id,
        "sha": sha,
        "status": status,
        "error": error,
        "error_kind": error.map(|_| "permanent"),
        "steps": 3,
        "started_at": "2026-12-02 01:00:00",
        "finished_at": "2026-12-02 01:00:03",
        "plan": plan,
    })
}

fn running() -> (Value, Vec<Value>) {
    let plan = "+ create topic orders (3 partitions)\n+ create table analytics.orders\n";
    let active = record(7, "3f2c9e1a0b4c5d6e7f80", "applied", None, Some(plan));
    let last = record(
        8,
        "9a8b7c6d5e4f3a2b1c0d",
        "rolled-back",
        Some("ClickHouse refused: ALTER TABLE ... Code: 497"),
        Some("~ alter table analytics.orders\n"),
    );
    let status = json!({
        "repo": "https://git.example.com/platform.git",
        "branch": "main",
        "active": active,
        "last": last,
        "interrupted": null,
        "managed": 9,
        "failure": {
            "revision": "9a8b7c6d5e4f3a2b1c0d",
            "kind": "permanent",
            "error": "ClickHouse refused",
            "nextTry": null,
            "retry": "held: push a new revision, or `paver retry 9a8b7c6d5e4f3a2b1c0d`",
        },
        "pipelines": [
            {
                "name": "orders", "liveVersion": 2, "workerVersion": 2, "lag": 0,
                "rowsPerSec": 1250.5, "inserted": 40200, "deadLettered": 10,
                "lastError": null, "topic": "orders",
            },
            {
                "name": "payments-eu", "liveVersion": 1, "workerVersion": null, "lag": null,
                "rowsPerSec": null, "inserted": null, "deadLettered": null,
                "lastError": "cannot reach Kafka at 127.0.0.1:9092", "topic": "payments",
            },
        ],
        "alerts": [{
            "pipeline": "payments-eu", "alert": "onFailure", "owner": "team-payments",
            "version": 1, "reason": "cannot reach Kafka", "startsAt": "2026-12-02 01:00:10",
        }],
        "lastError": null,
        "leader": true,
    });
    (status, vec![last, active])
}

#[test]
fn main_of_a_running_paver() {
    let (status, history) = running();
    insta::assert_snapshot!(main(&status, &history, "2026-12-02 01:00:20"));
}

#[test]
fn a_fresh_store_says_there_is_nothing_yet() {
    let status = json!({"repo": "/srv/platform", "branch": "main", "active": null, "last": null,
        "interrupted": null, "managed": 0, "pipelines": [], "alerts": [], "failure": null,
        "lastError": null, "leader": null});
    let page = render(&status, &[], "2026-12-02 01:00:00");
    for wanted in [
        "none yet",
        "No pipelines.",
        "No revision applied yet.",
        "No attempts yet.",
    ] {
        assert!(page.contains(wanted), "no {wanted:?} in:\n{page}");
    }
}

#[test]
fn the_page_links_its_own_assets_only() {
    let (status, history) = running();
    let page = render(&status, &history, "now");
    assert!(page.contains(&format!("<script src=\"{SCRIPT_PATH}\" defer></script>")));
    assert!(page.contains(&format!("<link rel=\"stylesheet\" href=\"{STYLE_PATH}\">")));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "{page}"
    );
    for asset in [STYLE, SCRIPT] {
        assert!(!asset.contains("http://") && !asset.contains("https://"));
    }
}

/// Errors, plans and names are user data: whatever they hold is shown, never run.
#[test]
fn user_data_is_escaped() {
    let hostile = r#"</pre><script>alert("x")</script><img src=x onerror='alert(1)'>&amp;"#;
    let (mut status, mut history) = running();
    status["last"]["error"] = json!(hostile);
    status["lastError"] = json!(hostile);
    status["repo"] = json!(hostile);
    status["branch"] = json!(hostile);
    status["active"]["plan"] = json!(hostile);
    status["active"]["sha"] = json!(hostile);
    status["failure"]["retry"] = json!(hostile);
    status["pipelines"][0]["name"] = json!(hostile);
    status["pipelines"][0]["lastError"] = json!(hostile);
    status["pipelines"][1]["topic"] = json!(hostile);
    status["alerts"][0]["reason"] = json!(hostile);
    status["alerts"][0]["pipeline"] = json!(hostile);
    history[0]["error"] = json!(hostile);
    history[0]["plan"] = json!(hostile);
    let page = render(&status, &history, hostile);
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("onerror='"), "{page}");
    // Only the page's own <script src> and the one closing tag of it.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert_eq!(page.matches("</script>").count(), 1, "{page}");
    // Every place shows the text itself.
    let shown = escape(hostile);
    assert!(shown.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(shown.contains("&amp;amp;"));
    assert!(page.matches(&shown).count() >= 10, "{page}");
}

#[test]
fn escape_covers_the_five_characters() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}
