//! `paver run`: webhooks, watching a folder, drift reports, cost of a no-op, partitions.

use super::*;

#[test]
fn paver_run_applies_on_a_verified_webhook_and_rejects_a_forged_one() {
    let (_, kafka) = servers();
    let p = Platform::new("run");
    p.base();
    let first = p.push("v1");
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            &p.remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "3600",
        ])
        .env("PAVER_WEBHOOK_SECRET", "s3cret")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(p.dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let log = || std::fs::read_to_string(p.dir.path().join("run.log")).unwrap_or_default();
    // The first reconcile runs at start.
    let wait = |sha: &str, timeout: &str| {
        p.paver(
            &[
                "wait",
                "--revision",
                sha,
                "--timeout",
                timeout,
                "--server",
                &url,
            ],
            &[],
        )
    };
    // Generous: under the whole suite, on the 26.9 engine's single-threaded test front, the
    // first reconcile (fetch, lint, observe, apply) has taken over a minute.
    let out = wait(&first, "180s");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\npaver run said:\n{}",
        text(&out),
        log()
    );

    p.write_topic("late", 1, 1, "86400000");
    let second = p.push("add late");
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{second}"}}"#).into_bytes();
    let forged = http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", signature(b"wrong", &body)),
        ],
        &body,
    );
    assert_eq!(forged.0, 401, "{forged:?}");
    // Nothing woke the loop (polling is an hour): the commit is not applied.
    let out = wait(&second, "3s");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(topics(&kafka, &[p.topic("late")]).is_empty());

    let signed = http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", signature(b"s3cret", &body)),
        ],
        &body,
    );
    assert_eq!(signed.0, 202, "{signed:?}");
    let out = wait(&second, "60s");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(topics(&kafka, &[p.topic("late")]).len(), 1);

    let (code, status) = http(port, "GET", "/status", &[], b"");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["active"]["sha"], second);
    // A pull request's preview from elsewhere (a CI runner, no state of its own): the
    // running reconciler's inventory says what paver manages.
    let fresh = p.dir.path().join("elsewhere.db");
    let preview = Command::new(bin("paver"))
        .args([
            "plan",
            "--repo",
            &p.remote_url,
            "--state",
            fresh.to_str().unwrap(),
            "--inventory-from",
            &url,
            "--format",
            "markdown",
        ])
        .env("PAVER_CLICKHOUSE_URL", clickhouse_url())
        .env("PAVER_KAFKA_BROKERS", brokers())
        .output()
        .unwrap();
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview));
    assert!(
        text(&preview).contains("### paver plan for") && text(&preview).contains("No changes"),
        "{}",
        text(&preview)
    );
    let remote_status = p.paver(&["status", "--server", &url], &[]);
    let remote_status: serde_json::Value = serde_json::from_slice(&remote_status.stdout).unwrap();
    assert_eq!(remote_status["active"]["sha"], second);
    let human = p.paver(&["status", "--server", &url, "-o", "text"], &[]);
    assert!(
        text(&human).contains(&format!("Active revision   {}", &second[..12])),
        "{}",
        text(&human)
    );
    let table = p.paver(&["history", "--server", &url, "-o", "text"], &[]);
    assert!(
        text(&table).contains("OUTCOME") && text(&table).contains("applied"),
        "{}",
        text(&table)
    );
    let remote_history = p.paver(&["history", "--server", &url, "--limit", "5"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&remote_history.stdout)
            .lines()
            .count(),
        2,
        "{}",
        text(&remote_history)
    );
    let (_, metrics) = http(port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("paver_webhooks_rejected_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("paver_active_revision_info{{sha=\"{second}\"}} 1")),
        "{metrics}"
    );

    // SIGTERM: a graceful stop.
    let pid = server.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    loop {
        if let Some(code) = server.try_wait().unwrap() {
            assert!(code.success(), "{code:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "paver run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drift_is_only_reported_when_the_repo_says_so() {
    let (ch, _) = servers();
    let p = Platform::new("report");
    p.base();
    p.write(
        "paver.yaml",
        "defaults:\n  compatibility: FORWARD_TRANSITIVE\nreconcile:\n  drift: report\n",
    );
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    runtime()
        .block_on(ch.run(&format!("DROP TABLE {}.events", p.database())))
        .unwrap();
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("drift from the active revision"),
        "{}",
        text(&out)
    );
    assert!(tables(&ch, &p.database()).is_empty());
}

/// "N ClickHouse queries, M Kafka requests" from paver's output.
pub(super) fn requests(out: &Output) -> (u64, u64) {
    let t = text(out);
    let line = t
        .lines()
        .find(|l| l.contains("ClickHouse queries"))
        .unwrap_or_else(|| panic!("{t}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_no_op_reconcile_costs_the_same_whatever_the_number_of_resources() {
    servers();
    let small = Platform::new("small");
    small.base();
    small.push("v1");
    assert_eq!(small.apply().status.code(), Some(0));
    let large = Platform::new("large");
    large.base();
    for i in 0..6 {
        large.write_topic(&format!("extra{i}"), 1, 1, "86400000");
        large.write_pipeline(
            &format!("extra{i}"),
            1,
            &format!("extra{i}"),
            "SELECT id, at, amount FROM source",
        );
    }
    large.push("v1");
    let first = large.apply();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let (small_noop, large_noop) = (small.apply(), large.apply());
    assert!(
        text(&large_noop).contains("0 steps"),
        "{}",
        text(&large_noop)
    );
    // Observation only: the same number of round trips for 3 resources as for 21.
    assert_eq!(
        requests(&small_noop),
        requests(&large_noop),
        "{}\n{}",
        text(&small_noop),
        text(&large_noop)
    );
    assert!(
        requests(&large_noop).0 <= 5 && requests(&large_noop).1 <= 2,
        "{:?}",
        requests(&large_noop)
    );
}

#[test]
fn a_group_gets_offsets_before_it_starts_and_they_read_back() {
    let (_, kafka) = servers();
    let p = Platform::new("offsets");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    let group = format!("{}-v2", p.prefix);
    let topic = p.topic("events");
    let rt = runtime();
    let before = rt.block_on(kafka.group_offsets(&group, &topic, 3)).unwrap();
    assert!(before.is_empty(), "{before:?}");
    let wanted = BTreeMap::from([(0, 5i64), (1, 7), (2, 9)]);
    rt.block_on(kafka.set_group_offsets(&group, &topic, &wanted))
        .unwrap();
    let after = rt.block_on(kafka.group_offsets(&group, &topic, 3)).unwrap();
    assert_eq!(after, wanted);
}

#[test]
fn paver_run_watches_a_local_folder() {
    let (_, kafka) = servers();
    let p = Platform::new("watch");
    p.base();
    let port = free_port();
    let mut server = p
        .command(&[
            "run",
            "--repo",
            p.work.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "3600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = |what: &str, check: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("the first apply", &|| {
        topics(&kafka, &[p.topic("events")]).len() == 1
    });
    // A file written into the folder: applied without a webhook, long before the poll.
    p.write_topic("watched", 1, 1, "86400000");
    until("the watched change", &|| {
        topics(&kafka, &[p.topic("watched")]).len() == 1
    });
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Kafka adds partitions with CreatePartitions; the test broker (tansu) does not have it.
/// Either way nothing is half-applied: on Kafka the partitions grow, on tansu the revision
/// rolls back whole (the new topic of the same revision is removed again).
#[test]
fn a_partition_increase_applies_or_rolls_back_whole() {
    let (_, kafka) = servers();
    let p = Platform::new("partitions");
    p.base();
    p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_topic("events", 2, 6, "604800000");
    // Sorts before `events`: created first, so that the rollback has something to undo.
    p.write_topic("a-sidecar", 1, 1, "86400000");
    p.push("more partitions");
    let plan = text(&p.paver(&["plan", "--repo", &p.remote_url], &[]));
    assert!(
        plan.contains("increase partitions of topic") && plan.contains("(irreversible)"),
        "{plan}"
    );
    let out = p.apply();
    let found = topics(&kafka, &[p.topic("events"), p.topic("a-sidecar")]);
    match out.status.code() {
        Some(0) => {
            assert_eq!(found[&p.topic("events")].partitions, 6);
            assert!(found.contains_key(&p.topic("a-sidecar")));
            assert_plan_empty(&p);
        }
        _ => {
            let t = text(&out);
            assert!(
                t.contains("rolled back") && t.contains("CreatePartitions"),
                "{t}"
            );
            assert_eq!(found[&p.topic("events")].partitions, 3);
            assert!(!found.contains_key(&p.topic("a-sidecar")), "{found:?}");
        }
    }
}

#[test]
fn a_direct_push_that_edits_a_released_version_is_refused() {
    let (_, kafka) = servers();
    let p = Platform::new("edit");
    p.base();
    let good = p.push("v1");
    assert_eq!(p.apply().status.code(), Some(0));
    // Straight to main, past the PR check: v1 of the topic edited in place.
    p.write_topic("events", 1, 3, "1");
    let edit = p.push("sneaky edit");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("PV601") && text(&out).contains("the active revision"),
        "{}",
        text(&out)
    );
    assert_eq!(
        topics(&kafka, &[p.topic("events")])[&p.topic("events")].config["retention.ms"],
        "604800000"
    );
    assert_eq!(p.status()["active"]["sha"], good);
    assert_eq!(p.history()[0]["sha"], edit);
    assert_eq!(p.history()[0]["status"], "refused");
}
