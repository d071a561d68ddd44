//! New physical tables, blue/green cut-overs and reverts, under live traffic.

use super::*;

#[test]
fn a_key_change_gets_a_new_physical_table_and_db_table_reads_them_all() {
    let ch = ch();
    let p = Platform::new("gen");
    p.base(2);
    let first = p.push("pipeline v1");
    let (mut server, url) = serve(&p);
    wait_applied(&p, &url, &first);
    let table = p.table();
    let poller = Poller::start(&table);
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    produce(&producer, &mut ledger, 1, 300, None);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // v2 orders the sink differently: a new physical table, db.table a Merge over both.
    p.write_pipeline_ordered(
        2,
        "events@1",
        "SELECT id, kind, at, amount FROM source WHERE kind != 'noise'",
        "(kind, id)",
    );
    let second = p.push("pipeline v2: ORDER BY (kind, id)");
    produce(&producer, &mut ledger, 2, 200, None);
    wait_applied(&p, &url, &second);
    wait_for_worker(&p, 2, Duration::from_secs(60));
    let mut late = Ledger::default();
    produce(&producer, &mut late, 3, 200, None);
    let by_v2 = late.ids.len();
    ledger.ids.extend(late.ids);
    ledger.malformed.extend(late.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    let db = p.prefix.replace('-', "_");
    let engine = query(
        &ch,
        &format!("SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'events'"),
    );
    assert_eq!(engine[0][0], "Merge");
    let keys = query(&ch, &format!("SELECT name, engine_full FROM system.tables WHERE database = '{db}' AND name LIKE 'events__v%' ORDER BY name"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[1][0] == "events__v2" && keys[1][1].contains("ORDER BY (kind, id)"),
        "{keys:?}"
    );
    assert!(count(&ch, &format!("{db}.events__v2")) >= by_v2);

    // git revert: v1 writes into its own layout's table again; db.table still reads all.
    std::fs::remove_file(p.work.join(format!("pipelines/{}/v2.yaml", p.pipeline()))).unwrap();
    let revert = p.push("Revert v2");
    wait_applied(&p, &url, &revert);
    wait_for_worker(&p, 1, Duration::from_secs(60));
    let in_v1 = count(&ch, &format!("{db}.{}", keys[0][0]));
    let mut after = Ledger::default();
    produce(&producer, &mut after, 4, 200, None);
    let by_v1 = after.ids.len();
    ledger.ids.extend(after.ids);
    ledger.malformed.extend(after.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));
    assert_eq!(count(&ch, &format!("{db}.{}", keys[0][0])), in_v1 + by_v1);
    poller.finish();
    assert_exactly_once(&ch, &table, &ledger);
    assert_dead_letters(&p, &ledger);
    kill(&mut server, "-TERM");
}

#[test]
fn blue_green_cut_over_and_git_revert_lose_nothing_and_duplicate_nothing() {
    let ch = ch();
    let p = Platform::new("bg");
    p.base(3);
    let first = p.push("pipeline v1");
    let (mut server, url) = serve(&p);
    let wait = |sha: &str| wait_applied(&p, &url, sha);
    wait(&first);
    let table = p.table();
    // db.table answers at every moment: polled from another thread all along.
    let poller = Poller::start(&table);

    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    // Phase 1: v1 ingests.
    produce(&producer, &mut ledger, 1, 500, None);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // Phase 2: v2 (reads events@2, adds the `region` column) is merged while events flow.
    produce(&producer, &mut ledger, 2, 200, Some("eu"));
    p.write_pipeline(
        2,
        "events@2",
        "SELECT id, kind, at, amount, region FROM source WHERE kind != 'noise'",
    );
    let second = p.push("pipeline v2: region");
    produce(&producer, &mut ledger, 5, 200, Some("eu"));
    wait(&second);
    // Applied means in effect: the worker already runs v2 when `paver wait` returns.
    assert_worker_runs(&p, 2);
    let mut late = Ledger::default();
    produce(&producer, &mut late, 3, 300, Some("us"));
    let v2_ids: BTreeSet<String> = late.ids.keys().cloned().collect();
    ledger.ids.extend(late.ids);
    ledger.malformed.extend(late.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    // Phase 3: `git revert` of v2's merge: v1 is live again and resumes where v2 stopped.
    std::fs::remove_file(p.work.join(format!("pipelines/{}/v2.yaml", p.pipeline()))).unwrap();
    let revert = p.push("Revert \"pipeline v2: region\"");
    wait(&revert);
    // In effect when reported: v1 ingests every record produced from now on (checked
    // below by their region), v2's staging table and views are retired in the same
    // revision, and planning it again finds nothing to do.
    assert_worker_runs(&p, 1);
    let v2_staging = format!("__paver_{}_v2", p.pipeline().replace('-', "_"));
    let database = p.table().split('.').next().unwrap().to_string();
    let left = query(
        &ch,
        &format!(
            "SELECT name FROM system.tables WHERE database = '{database}' AND name LIKE '{v2_staging}%'"
        ),
    );
    assert!(left.is_empty(), "v2's resources are still there: {left:?}");
    let plan = p
        .command(&["plan", "--repo", &p.remote_url])
        .output()
        .unwrap();
    assert!(
        text(&plan).contains("no changes: the real systems match the revision"),
        "plan after the revert is not empty:\n{}",
        text(&plan)
    );
    let mut after = Ledger::default();
    produce(&producer, &mut after, 4, 300, Some("ap"));
    let v1_again: BTreeSet<String> = after.ids.keys().cloned().collect();
    ledger.ids.extend(after.ids);
    ledger.malformed.extend(after.malformed);
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(60));

    poller.finish();

    // Every valid event exactly once; malformed ones in the dead-letter topic.
    assert_exactly_once(&ch, &table, &ledger);
    assert_dead_letters(&p, &ledger);
    // v2 filled the column; v1 (before and after) left it at its default, and the column
    // stayed after the rollback.
    let regions: BTreeMap<String, String> = query(&ch, &format!("SELECT id, region FROM {table}"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for id in &v2_ids {
        assert_eq!(regions[id], "us", "{id} was ingested by v2");
    }
    for id in &v1_again {
        assert_eq!(regions[id], "", "{id} was ingested by v1 after the revert");
    }
    for (id, phase) in &ledger.ids {
        if *phase == 1 {
            assert_eq!(regions[id], "", "{id}");
        }
    }
    // v2's resources are retired; v1's consumer group has v2's offsets; status says so.
    let status = p.status();
    assert_eq!(status["pipelines"][0]["liveVersion"], 1, "{status}");
    assert!(
        status["pipelines"][0]["deadLettered"].as_u64().unwrap() > 0,
        "{status}"
    );
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("{url}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !metrics.is_empty() {
        assert!(
            metrics.contains("paver_pipeline_live_version{pipeline="),
            "{metrics}"
        );
    }
    kill(&mut server, "-TERM");
}

#[test]
fn a_worker_killed_mid_batch_loses_and_duplicates_nothing() {
    let ch = ch();
    let p = Platform::new("crash");
    p.base(2);
    p.push("pipeline v1");
    p.apply();
    let table = p.table();
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();

    // Killed after its 2nd insert, before the commit: the rows are in, the offsets not.
    produce(&producer, &mut ledger, 1, 400, None);
    let mut worker = p.ingest(&[("PAVER_FAULT_PAUSE_AFTER_INSERT", "2")], "w1.log");
    let started = Instant::now();
    while !p.log("w1.log").contains("pausing") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            p.log("w1.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before_kill = count(&ch, &table);
    assert!(before_kill > 0, "nothing was inserted before the kill");
    kill(&mut worker, "-KILL");
    produce(&producer, &mut ledger, 2, 400, None);

    // Then killed at arbitrary moments while events keep coming.
    for round in 0..3 {
        let mut w = p.ingest(&[], &format!("r{round}.log"));
        produce(&producer, &mut ledger, 3 + round, 300, None);
        std::thread::sleep(Duration::from_millis(300 + 250 * round as u64));
        kill(&mut w, "-KILL");
    }
    let mut last = p.ingest(&[], "last.log");
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(90));
    kill(&mut last, "-TERM");
    assert_exactly_once(&ch, &table, &ledger);
    // Dead letters are at least once: a kill after producing one and before the commit
    // sends it again. None is missing.
    let dead: BTreeSet<(i32, i64)> = dead_letters(&p.dlq())
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(dead, ledger.malformed);
}
