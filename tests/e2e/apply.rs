//! Plans and applies: convergence, rollback, failures mid-apply, drift, saved plans.

use super::*;

#[test]
fn first_apply_converges_and_the_second_changes_nothing() {
    let (ch, kafka) = servers();
    let p = Platform::new("first");
    p.base();
    let sha = p.push("v1");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("applied {sha}")),
        "{}",
        text(&out)
    );
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    let cols = columns(&ch, &p.database(), "events");
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "kind", "at", "amount", "ingestedAt"]);
    // The computed column's type comes from ClickHouse itself.
    assert_eq!(cols[4].1, "DateTime");
    let found = topics(&kafka, &[p.topic("events"), p.topic("dlq")]);
    assert_eq!(found[&p.topic("events")].partitions, 3);
    assert_eq!(
        found[&p.topic("events")]
            .config
            .get("retention.ms")
            .map(String::as_str),
        Some("604800000")
    );
    assert_eq!(p.status()["active"]["sha"], sha);

    let again = p.apply();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("0 steps"), "{}", text(&again));
    assert!(text(&again).contains("no changes"), "{}", text(&again));
    assert_plan_empty(&p);
}

#[test]
fn a_pushed_commit_adding_a_topic_and_a_pipeline_converges() {
    let (ch, kafka) = servers();
    let p = Platform::new("push");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("audit", 1, 2, "86400000");
    p.write_pipeline("audit", 1, "audit", "SELECT id, at, amount FROM source");
    // A longer retention for the events topic: a config change in place.
    p.write_topic("events", 2, 3, "1209600000");
    let sha = p.push("add audit");
    let plan = p.paver(&["plan", "--repo", &p.remote_url], &[]);
    let shown = text(&plan);
    assert!(
        shown.contains(&format!("+ create topic {}", p.topic("audit"))),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("+ create table {}.audit", p.database())),
        "{shown}"
    );
    assert!(
        shown.contains("~ alter topic") && shown.contains("retention.ms=1209600000"),
        "{shown}"
    );
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(tables(&ch, &p.database()), ["audit", "events"]);
    let found = topics(&kafka, &[p.topic("audit"), p.topic("events")]);
    assert_eq!(found[&p.topic("audit")].partitions, 2);
    assert_eq!(
        found[&p.topic("events")].config["retention.ms"],
        "1209600000"
    );
    assert_eq!(p.status()["active"]["sha"], sha);
    assert_plan_empty(&p);
}

#[test]
fn removing_the_newest_version_rolls_back_to_the_one_before() {
    let (_, kafka) = servers();
    let p = Platform::new("revert");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("events", 2, 3, "1209600000");
    p.push("events v2");
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "1209600000"
    );
    // What `git revert` of v2's merge does: the file goes, v1 is active again.
    p.remove(&format!("topics/{}/v2.yaml", p.topic("events")));
    let revert = p.push("Revert \"events v2\"");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
    assert_eq!(p.status()["active"]["sha"], revert);
    assert_plan_empty(&p);
}

#[test]
fn a_revision_failing_mid_apply_leaves_nothing_behind() {
    let (ch, kafka) = servers();
    let p = Platform::new("fail");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    // A new topic (created first), then a table whose transform ClickHouse rejects (the
    // linter cannot know every server's functions): the table step fails.
    p.write_topic("extra", 1, 1, "86400000");
    p.write_pipeline(
        "broken",
        1,
        "broken",
        "SELECT id, at, noSuchFunction(amount) AS x FROM source",
    );
    let bad = p.push("broken");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rolled back"), "{}", text(&out));
    // Nothing of it stays: no topic, no table; the previous revision is still active.
    assert!(topics(&kafka, &[p.topic("extra")]).is_empty());
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(p.status()["active"]["sha"], good);
    let last = &p.history()[0];
    assert_eq!(
        (last["sha"].as_str(), last["status"].as_str()),
        (Some(bad.as_str()), Some("rolled-back"))
    );
    assert!(
        last["error"].as_str().unwrap().contains("noSuchFunction"),
        "{last}"
    );
    // An unknown function is the revision's fault: trying again cannot help.
    assert_eq!(last["error_kind"], "permanent", "{last}");
    let failure = &p.status()["failure"];
    assert_eq!(failure["kind"], "permanent", "{failure}");
    assert!(failure["nextTry"].is_null(), "{failure}");
}

#[test]
fn a_revision_that_does_not_lint_is_refused_and_changes_nothing() {
    let (ch, kafka) = servers();
    let p = Platform::new("refused");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("new", 1, 2, "86400000");
    p.write_pipeline("typo", 1, "typo", "SELECT idd, at FROM source");
    let bad = p.push("typo");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not lint clean") && text(&out).contains("PV304"),
        "{}",
        text(&out)
    );
    assert!(topics(&kafka, &[p.topic("new")]).is_empty());
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(p.status()["active"]["sha"], good);
    assert_eq!(p.history()[0]["status"], "refused");
    assert_eq!(p.history()[0]["sha"], bad);
}

#[test]
fn drift_made_by_hand_is_repaired() {
    let (ch, kafka) = servers();
    let p = Platform::new("drift");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    let rt = runtime();
    rt.block_on(ch.execute(&paver::plan::ClickHouseAction::DropTable {
        table: paver::plan::TableName {
            database: p.database(),
            name: "events".into(),
        },
    }))
    .unwrap();
    rt.block_on(kafka.execute(&paver::plan::KafkaAction::AlterTopicConfig {
        name: p.topic("events"),
        set: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        delete: Vec::new(),
    }))
    .unwrap();
    let plan = text(&p.paver(&["plan", "--repo", &p.remote_url], &[]));
    assert!(
        plan.contains(&format!("+ create table {}.events", p.database())),
        "{plan}"
    );
    assert!(plan.contains("retention.ms=604800000"), "{plan}");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
    assert_plan_empty(&p);
}

#[test]
fn an_unmanaged_table_in_the_way_is_an_error_not_dropped() {
    let (ch, _) = servers();
    let p = Platform::new("unmanaged");
    p.base();
    p.push("v1");
    let rt = runtime();
    let db = p.database();
    rt.block_on(ch.execute(&paver::plan::ClickHouseAction::CreateDatabase { name: db.clone() }))
        .unwrap();
    rt.block_on(ch.run(&format!(
        "CREATE TABLE {db}.events (x UInt8) ENGINE = Memory"
    )))
    .unwrap();
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("paver did not create it"),
        "{}",
        text(&out)
    );
    assert_eq!(
        columns(&ch, &db, "events"),
        [("x".to_string(), "UInt8".to_string())]
    );
}

#[test]
fn a_reconciler_killed_mid_apply_undoes_the_revision_on_restart() {
    let (ch, kafka) = servers();
    let p = Platform::new("kill");
    p.base();
    let sha = p.push("v1");
    // Steps: two topics, the database, the table. Kill after the second.
    let mut child = p
        .command(&["apply", "--repo", &p.remote_url])
        .env("PAVER_FAULT_PAUSE_AFTER_STEPS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let found = topics(&kafka, &[p.topic("events"), p.topic("dlq")]);
        if found.len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the apply never got to its pause"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(p.status()["interrupted"]["sha"], sha);
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("undid the interrupted revision"),
        "{}",
        text(&out)
    );
    assert_eq!(tables(&ch, &p.database()), ["events"]);
    assert_eq!(
        topics(&kafka, &[p.topic("events"), p.topic("dlq")]).len(),
        2
    );
    let history = p.history();
    assert_eq!(history[0]["status"], "applied");
    assert_eq!(history[1]["status"], "rolled-back");
    assert!(history[1]["error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
    assert_plan_empty(&p);
}

#[test]
fn a_saved_plan_is_refused_when_the_world_moved() {
    let (ch, _) = servers();
    let p = Platform::new("saved");
    p.base();
    p.push("v1");
    let plan_file = p.dir.path().join("plan.json");
    let out = p.saved_plan(&plan_file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Someone creates the database by hand in between.
    runtime()
        .block_on(ch.execute(&paver::plan::ClickHouseAction::CreateDatabase { name: p.database() }))
        .unwrap();
    let out = p.apply_saved(&plan_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("changed since"), "{}", text(&out));
}

/// The error policy of `paver run`: a revision whose failure cannot pass by itself is
/// applied once and then held (no new attempt on every poll), `paver status` says why and
/// that it waits; `paver retry <sha>` applies it once more.
#[test]
fn paver_run_holds_a_permanently_failing_revision_until_paver_retry() {
    let (_, _) = servers();
    let p = Platform::new("held");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_pipeline(
        "broken",
        1,
        "broken",
        "SELECT id, at, noSuchFunction(amount) AS x FROM source",
    );
    let bad = p.push("broken");
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            &p.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "1",
            "--ingest",
            "external",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let attempts = |p: &Platform| {
        p.history()
            .iter()
            .filter(|r| r["sha"] == bad.as_str())
            .count()
    };
    let started = Instant::now();
    while attempts(&p) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "never tried");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Several polls later: still one attempt, and the status says it is held.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(attempts(&p), 1, "{:?}", p.history());
    let (code, body) = http(port, "GET", "/status", &[], b"");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["failure"]["kind"], "permanent", "{status}");
    assert!(
        status["failure"]["retry"]
            .as_str()
            .unwrap()
            .contains(&format!("paver retry {bad}")),
        "{status}"
    );
    // `paver retry` against the server: one more attempt.
    let out = Command::new(paver_e2e::bin("paver"))
        .args([
            "retry",
            &bad,
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let started = Instant::now();
    while attempts(&p) < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "never retried");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(attempts(&p), 2, "{:?}", p.history());
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The world moves by a managed table dropped by hand, after a first apply (so that
/// tables exist: their fingerprint once failed and read as empty, the same whatever
/// existed). The saved plan is refused, and a fresh plan recreates the table.
#[test]
fn a_saved_plan_is_refused_when_a_managed_table_was_dropped_since() {
    let (ch, _) = servers();
    let p = Platform::new("stale");
    p.base();
    p.push("v1");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A change to plan: a topic config.
    p.write_topic("events", 2, 3, "86400000");
    p.push("v2");
    let plan_file = p.dir.path().join("plan.json");
    let out = p.saved_plan(&plan_file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    runtime()
        .block_on(ch.execute(&paver::plan::ClickHouseAction::DropTable {
            table: paver::plan::TableName {
                database: p.database(),
                name: "events".into(),
            },
        }))
        .unwrap();
    let out = p.apply_saved(&plan_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("changed since"), "{}", text(&out));
    assert!(!tables(&ch, &p.database()).contains(&"events".to_string()));
    // Planned again, the table comes back; after the apply, nothing is left to do.
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(tables(&ch, &p.database()).contains(&"events".to_string()));
    assert_plan_empty(&p);
}
