//! Ingestion on Kafka's consumer groups: several `paver ingest` processes share a
//! pipeline's partitions through the version's group, under live traffic, while members
//! join, leave and are killed.

use super::*;

/// Events produced from another thread until stopped; what was produced when it stops.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Ledger>,
}

impl Traffic {
    /// Batches of `per_batch` events, a new phase each, with a short pause between.
    fn start(topic: &str, per_batch: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, topic) = (stop.clone(), topic.to_string());
        let thread = std::thread::spawn(move || {
            let producer = Producer::new(&topic);
            let mut ledger = Ledger::default();
            let mut phase = 0;
            while !s.load(Ordering::SeqCst) {
                phase += 1;
                produce(&producer, &mut ledger, phase, per_batch, None);
                std::thread::sleep(Duration::from_millis(100));
            }
            ledger
        });
        Traffic { stop, thread }
    }

    fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// The partitions each worker with a fresh heartbeat holds, by pid, as `paver status`
/// reports them.
fn holders(p: &Platform) -> BTreeMap<u32, Vec<i32>> {
    let status = p.status();
    let mut out = BTreeMap::new();
    for w in status["pipelines"][0]["workers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if w["fresh"] != true {
            continue;
        }
        let pid = w["worker"]
            .as_str()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|pid| pid.parse().ok());
        let partitions: Vec<i32> = w["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_i64().map(|p| p as i32))
            .collect();
        if let Some(pid) = pid {
            out.insert(pid, partitions);
        }
    }
    out
}

/// Wait until `paver status` says what `done` wants of the holders; returns them.
fn wait_for_holders(
    p: &Platform,
    what: &str,
    logs: &[&str],
    done: impl Fn(&BTreeMap<u32, Vec<i32>>) -> bool,
) -> BTreeMap<u32, Vec<i32>> {
    let started = Instant::now();
    loop {
        let now = holders(p);
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never {what}: {now:?}\n{}",
            logs_of(p, logs)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The workers' logs, for a failure's message.
fn logs_of(p: &Platform, logs: &[&str]) -> String {
    logs.iter()
        .map(|l| format!("--- {l}\n{}", p.log(l)))
        .collect()
}

/// Every partition of `0..partitions` held by exactly one of `pids`, none by another.
fn shared_by(holders: &BTreeMap<u32, Vec<i32>>, pids: &[u32], partitions: i32) -> bool {
    let mut all: Vec<i32> = holders.values().flatten().copied().collect();
    all.sort();
    all == (0..partitions).collect::<Vec<_>>()
        && pids
            .iter()
            .all(|pid| holders.get(pid).is_some_and(|ps| !ps.is_empty()))
        && holders.keys().all(|pid| pids.contains(pid))
}

/// Pipeline v1 on a topic of `partitions` applied, and traffic on it: the sink's table.
fn applied_with_traffic(p: &Platform, partitions: i32) -> (String, Traffic) {
    p.base(partitions as u32);
    p.push("pipeline v1");
    p.apply();
    (p.table(), Traffic::start(&p.topic(), 100))
}

#[test]
fn three_ingest_processes_share_a_pipeline_exactly_once_while_one_is_killed_and_one_added() {
    let ch = ch();
    let p = Platform::new("groups");
    let partitions = 6;
    let (table, traffic) = applied_with_traffic(&p, partitions);
    let logs = ["w1.log", "w2.log", "w3.log", "w4.log"];

    // Three members: each gets a share of the six partitions.
    let mut w1 = p.ingest(&[], "w1.log");
    let mut w2 = p.ingest(&[], "w2.log");
    let mut w3 = p.ingest(&[], "w3.log");
    let three = [w1.id(), w2.id(), w3.id()];
    let shared = wait_for_holders(&p, "shared by three", &logs, |h| {
        shared_by(h, &three, partitions)
    });
    eprintln!("three workers: {shared:?}");

    // One is SIGKILLed mid-stream: the others take its partitions over, from the ledger.
    kill(&mut w2, "-KILL");
    let two = [w1.id(), w3.id()];
    let taken = wait_for_holders(&p, "taken over by the other two", &logs, |h| {
        shared_by(h, &two, partitions)
    });
    eprintln!("after the kill: {taken:?}");

    // One joins later: it gets a share, the others give theirs up after their inserts.
    let mut w4 = p.ingest(&[], "w4.log");
    let three = [w1.id(), w3.id(), w4.id()];
    let joined = wait_for_holders(&p, "shared with the one added", &logs, |h| {
        shared_by(h, &three, partitions)
    });
    eprintln!("after the join: {joined:?}");

    // And one leaves cleanly (SIGTERM): its share moves after its last insert.
    kill(&mut w1, "-TERM");
    let two = [w3.id(), w4.id()];
    wait_for_holders(&p, "left to the last two", &logs, |h| {
        shared_by(h, &two, partitions)
    });

    let ledger = traffic.finish();
    assert!(
        ledger.ids.len() > 1000,
        "too little traffic: {}",
        ledger.ids.len()
    );
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(120));
    kill(&mut w3, "-TERM");
    kill(&mut w4, "-TERM");
    assert_exactly_once(&ch, &table, &ledger);
    // Dead letters are at least once (a kill between sending one and the commit sends it
    // again); none is missing.
    let dead: BTreeSet<(i32, i64)> = dead_letters(&p.dlq())
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(dead, ledger.malformed);
    // Each process said in its log which partitions it took and gave up.
    for log in ["w1.log", "w3.log", "w4.log"] {
        assert!(
            p.log(log).contains("took partition"),
            "{log}: {}",
            p.log(log)
        );
    }
    assert!(
        p.log("w1.log").contains("gave partition"),
        "{}",
        p.log("w1.log")
    );
}

/// Send a signal to a process, without waiting for it to end.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

/// Whether a process is stopped (SIGSTOP): state `T` in `/proc/<pid>/stat`.
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

/// Wait until `done`, showing the logs when it never comes.
fn wait_until(p: &Platform, what: &str, logs: &[&str], done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never {what}:\n{}",
            logs_of(p, logs)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Freeze `frozen` (it is stopped already, or is SIGSTOPped now) until `other` holds every
/// partition and inserted more rows after the take-over, then wake it (SIGCONT) and wait
/// until the two share the partitions again.
fn freeze_past_the_session(
    p: &Platform,
    ch: &ClickHouse,
    (frozen, other): (u32, u32),
    partitions: i32,
    logs: &[&str],
) {
    if !stopped(frozen) {
        signal(frozen, "-STOP");
    }
    wait_for_holders(p, "taken over by the other member", logs, |h| {
        shared_by(h, &[other], partitions)
    });
    // The other one inserts past the frozen one's batch (it started after the ledger).
    let before = count(ch, &p.table());
    wait_until(p, "inserting after the take-over", logs, || {
        count(ch, &p.table()) > before + 500
    });
    signal(frozen, "-CONT");
    wait_for_holders(p, "shared again after the wake-up", logs, |h| {
        shared_by(h, &[frozen, other], partitions)
    });
}

#[test]
fn a_member_frozen_past_its_session_with_a_batch_in_hand_inserts_nothing_when_it_wakes() {
    let ch = ch();
    // The state in PostgreSQL, as on many machines: a SQLite file shared by processes is
    // locked by the one writing, and a process frozen while it writes would stop every
    // other worker's heartbeat for as long (no insert anywhere, no take-over).
    let mut repo = paver_e2e::Repo::new("ing", "frozen");
    let url = std::env::var("PAVER_TEST_POSTGRES_URL").expect("PAVER_TEST_POSTGRES_URL");
    repo.state = paver::store::postgres_schema(&url, "frozen")
        .unwrap()
        .into();
    let p = Platform(repo);
    let partitions = 4;
    let (table, traffic) = applied_with_traffic(&p, partitions);
    let logs = ["w1.log", "w2.log"];

    // w1 stops itself (SIGSTOP) at its 40th insert, once every check passed and before
    // the insert's first byte: the worst moment to freeze.
    let mut w1 = p.ingest(&[("PAVER_FAULT_STOP_BEFORE_INSERT", "40")], "w1.log");
    let mut w2 = p.ingest(&[], "w2.log");
    let (id1, id2) = (w1.id(), w2.id());
    wait_until(&p, "w1 stopped before an insert", &logs, || stopped(id1));
    freeze_past_the_session(&p, &ch, (id1, id2), partitions, &logs);
    // Then w2, frozen from outside at whatever moment it is in.
    freeze_past_the_session(&p, &ch, (id2, id1), partitions, &logs);

    let ledger = traffic.finish();
    wait_for_count(&ch, &table, ledger.ids.len(), Duration::from_secs(120));
    kill(&mut w1, "-TERM");
    kill(&mut w2, "-TERM");
    assert_exactly_once(&ch, &table, &ledger);
    // w1 woke with its insert in hand: ClickHouse refused it (its session expired), and
    // it gave its partitions up; w2, woken, gave its partitions up too.
    let log1 = p.log("w1.log");
    assert!(log1.contains("continued, sending the insert"), "{log1}");
    assert!(log1.contains("HTTP session expired"), "{log1}");
    assert!(log1.contains("no insert starts any more"), "{log1}");
    let log2 = p.log("w2.log");
    assert!(log2.contains("no insert starts any more"), "{log2}");
}
