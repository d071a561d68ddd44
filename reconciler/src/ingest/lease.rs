//! The fence between a partition's old and new owner in a consumer group, for members that
//! are late without knowing it: a process frozen (SIGSTOP, a paused VM, a long stall) past
//! its group session, whose partitions the group gave to another member meanwhile.
//!
//! Three parts, each closing what the one before leaves open (the ordering argument is in
//! docs/architecture.md, "Exactly once", fact 6):
//!
//! - **Claims in the state store.** A member's heartbeat record lists the partitions it
//!   holds. A member newly assigned a partition first *claims* it (its record lists it),
//!   then waits until every other record that lists it has either dropped it (its worker
//!   gave it up: no insert of it is in flight there) or not changed for [`STALE`] (its
//!   worker can no longer start an insert: see below); only then does it read the ledger
//!   and start. A member whose heartbeat reads another worker's fresh claim on a partition
//!   it holds gives everything up (no insert starts any more) and joins again.
//! - **Only clean heartbeats count.** An insert starts only within `sink::FRESH` of a
//!   heartbeat that was written and then read back without another worker's claim on the
//!   member's partitions; a heartbeat that slept [`PAUSE`] past its time (the process was
//!   frozen) writes nothing more and gives everything up.
//! - **A ClickHouse session per sink.** Each insert is sent in an HTTP session with
//!   `session_check=1` that expires [`SESSION_TIMEOUT_S`] after its last query, and a
//!   member checks its heartbeat after the session's last query: a member frozen between
//!   its check and the insert's first byte finds its session gone when it wakes (the
//!   server refuses the insert), so an insert starts at most `FRESH` + the session's
//!   timeout after the member's last clean heartbeat.
//!
//! The new owner finally waits for the inserts into the staging table that ClickHouse
//! still runs (`system.processes`) when it took a partition from a stale record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::sink::FRESH;
use super::status::Status;
use super::stop::Stop;
use super::IngestError;
use crate::model::TableName;
use crate::providers::clickhouse::{literal, table_sql, ClickHouse, ClickHouseError};
use crate::store::WorkerRecord;

/// A heartbeat round that starts this long after the one before means the process was
/// frozen (or starved): its assignment may be lost, it gives its partitions up.
pub const PAUSE: Duration = Duration::from_secs(3);
/// The ClickHouse session of a sink expires this long after its last query.
pub const SESSION_TIMEOUT_S: u64 = 2;
/// ClickHouse closes expired sessions on a cycle of a second, 1 to 2 s after their
/// timeout (a 2 s session on 18.16: still there after 3.5 s, gone from 3.8 s); more for a busy
/// server.
const SESSION_SLACK: Duration = Duration::from_secs(3);
/// A record that has not changed for this long belongs to a worker that can start no
/// insert any more: its last clean heartbeat is older than the record, an insert starts
/// within `FRESH` of one, and the session of a member frozen before sending is gone
/// `SESSION_TIMEOUT_S` (+ the slack) after the check.
pub const STALE: Duration = Duration::from_millis(
    FRESH.as_millis() as u64 + SESSION_TIMEOUT_S * 1000 + SESSION_SLACK.as_millis() as u64 + 1000,
);
/// A claim not settled after this long (two members claiming at once, each waiting for
/// the other) is given up: the member joins again.
const CLAIM_MAX: Duration = Duration::from_secs(60);

/// Another worker's record, and since when (on this process's clock) it has not changed.
#[derive(Debug)]
struct Seen {
    record: (i64, Option<Vec<i32>>),
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Assigned, claimed, not started yet (the previous holders are awaited).
    claiming: BTreeSet<i32>,
    /// Bumped by each claim; `written` is the value the last observed heartbeat wrote.
    claims: u64,
    written: u64,
    /// The other workers of the pipeline, as the last heartbeat read them.
    others: BTreeMap<String, Seen>,
    /// Why this member gives its partitions up (frozen, or another one claimed them).
    lost: Option<String>,
}

/// The claims and the fence of one worker (shared by its heartbeat and its version).
#[derive(Debug, Default)]
pub struct Lease {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

impl Lease {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the worker must give everything up, if it must.
    pub fn lost(&self) -> Option<String> {
        self.lock().lost.clone()
    }

    /// The process was frozen for `gap`: its partitions may be someone else's now.
    pub fn pause(&self, gap: Duration) {
        self.lose(format!(
            "this process was stopped or starved for {:.1} s (more than {PAUSE:?}): its partitions may be another worker's now",
            gap.as_secs_f64()
        ));
    }

    fn lose(&self, why: String) {
        let mut state = self.lock();
        if state.lost.is_none() {
            state.lost = Some(why);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// The run of a version ended: nothing is held or claimed any more.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.lost = None;
        state.claiming.clear();
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether a claim waits to be written (the heartbeat writes at once).
    pub fn unwritten(&self) -> bool {
        let state = self.lock();
        state.claims > state.written
    }

    /// The claims counter, read when the heartbeat takes the partitions it writes.
    pub fn claims(&self) -> u64 {
        self.lock().claims
    }

    /// What a heartbeat read after writing its record (which held `held`, the claims up
    /// to `claims`): the other workers' records. Returns why the worker must give its
    /// partitions up, when that is new: another worker's fresh record lists one it holds
    /// (not one it still claims). `group`: only a consumer group's members yield.
    pub fn observe(
        &self,
        me: &str,
        records: &[WorkerRecord],
        held: &[i32],
        claims: u64,
        group: bool,
        now_ms: i64,
    ) -> Option<String> {
        let mut state = self.lock();
        let now = Instant::now();
        state
            .others
            .retain(|w, _| records.iter().any(|r| &r.worker == w));
        for r in records.iter().filter(|r| r.worker != me) {
            let record = (r.heartbeat_ms, r.partitions.clone());
            match state.others.get_mut(&r.worker) {
                Some(seen) if seen.record == record => {}
                Some(seen) => *seen = Seen { record, since: now },
                None => {
                    state
                        .others
                        .insert(r.worker.clone(), Seen { record, since: now });
                }
            }
        }
        state.written = state.written.max(claims);
        let fresh = super::handover::FRESH.as_millis() as i64;
        let conflict = records.iter().find_map(|r| {
            let theirs = r.partitions.as_deref().unwrap_or_default();
            let taken: Vec<i32> = held
                .iter()
                .filter(|p| theirs.contains(p) && !state.claiming.contains(p))
                .copied()
                .collect();
            (r.worker != me && now_ms - r.heartbeat_ms <= fresh && !taken.is_empty())
                .then(|| format!("worker {} claimed partition(s) {taken:?}", r.worker))
        });
        let newly = match conflict {
            Some(why) if group && state.lost.is_none() => {
                state.lost = Some(why.clone());
                Some(why)
            }
            _ => None,
        };
        drop(state);
        self.changed.notify_waiters();
        newly
    }

    /// Claim `partitions` (the worker lists them already); returns the claim's number.
    fn claim(&self, partitions: &[i32]) -> u64 {
        let mut state = self.lock();
        state.claiming.extend(partitions.iter().copied());
        state.claims += 1;
        state.claims
    }

    fn settle(&self, partitions: &[i32]) {
        let mut state = self.lock();
        for p in partitions {
            state.claiming.remove(p);
        }
    }

    /// Once the heartbeat wrote claim `claim`: the other workers whose records list one of
    /// `partitions` and changed within [`STALE`] (still to wait for), and whether a record
    /// listing one had not changed for longer (its worker's inserts in flight are awaited).
    fn blockers(&self, partitions: &[i32], claim: u64) -> Option<(Vec<String>, bool)> {
        let state = self.lock();
        if state.written < claim {
            return None;
        }
        let mut waiting = Vec::new();
        let mut stale = false;
        for (worker, seen) in &state.others {
            let theirs = seen.record.1.as_deref().unwrap_or_default();
            if !partitions.iter().any(|p| theirs.contains(p)) {
                continue;
            }
            if seen.since.elapsed() < STALE {
                waiting.push(worker.clone());
            } else {
                stale = true;
            }
        }
        Some((waiting, stale))
    }
}

/// Why a member stops inserting: what [`Lease::lost`] says, else its group session
/// timed out (librdkafka says the assignment is lost).
pub fn lost(status: &Status, version: u32) -> IngestError {
    match status.lease().lost() {
        Some(why) => IngestError::Fenced(why),
        None => IngestError::Kafka(format!(
            "v{version}: the consumer group took this worker's partitions away (its session timed out): nothing more is inserted, joining again"
        )),
    }
}

/// Take `partitions`, newly assigned to this member: claim them in the state store, wait
/// until no other worker can insert into them any more, and until ClickHouse runs no insert
/// into `staging` that started before. `Ok(false)` when stopped first; an error when the
/// worker must give its partitions up (or the claim did not settle).
pub async fn take(
    status: &Status,
    partitions: &[i32],
    nodes: &[ClickHouse],
    staging: &TableName,
    stop: &Stop,
    label: &str,
) -> Result<bool, IngestError> {
    if partitions.is_empty() {
        return Ok(true);
    }
    let lease = status.lease();
    let claim = lease.claim(partitions);
    status.wake_heartbeat();
    let started = Instant::now();
    let mut said = BTreeSet::new();
    let stale = loop {
        if stop.is_stopped() {
            return Ok(false);
        }
        if let Some(why) = lease.lost() {
            return Err(IngestError::Fenced(why));
        }
        let changed = lease.changed.notified();
        if let Some((waiting, stale)) = lease.blockers(partitions, claim) {
            if waiting.is_empty() {
                break stale;
            }
            for w in waiting {
                if said.insert(w.clone()) {
                    eprintln!(
                        "paver ingest {label}: partition(s) {partitions:?}: waiting until worker {w} gives them up (or its record is {STALE:?} old)"
                    );
                }
            }
        }
        if started.elapsed() > CLAIM_MAX {
            return Err(IngestError::Fenced(format!(
                "the claim of partition(s) {partitions:?} did not settle in {CLAIM_MAX:?}"
            )));
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.stopped() => return Ok(false),
        }
    };
    // On every shard's node: a partition's inserts go to its shard's.
    if stale {
        for ch in nodes {
            if !inserts_ended(ch, staging, stop).await? {
                return Ok(false);
            }
        }
    }
    lease.settle(partitions);
    Ok(true)
}

/// Wait until every insert into `staging` that ClickHouse runs now has ended (a frozen
/// member's insert sent before its session expired). `Ok(false)` when stopped first.
async fn inserts_ended(
    ch: &ClickHouse,
    staging: &TableName,
    stop: &Stop,
) -> Result<bool, IngestError> {
    let statement = format!(
        "SELECT query_id FROM system.processes WHERE position(query, {}) = 1",
        literal(&format!("INSERT INTO {}", table_sql(staging)))
    );
    let first: BTreeSet<String> = running(ch, &statement).await?;
    let mut left = first;
    let mut said = false;
    while !left.is_empty() {
        if !said {
            eprintln!(
                "paver ingest: waiting for {} insert(s) into {} in flight before starting",
                left.len(),
                table_sql(staging)
            );
            said = true;
        }
        if !stop.sleep(Duration::from_millis(200)).await {
            return Ok(false);
        }
        let now = running(ch, &statement).await?;
        left.retain(|id| now.contains(id));
    }
    Ok(true)
}

async fn running(ch: &ClickHouse, statement: &str) -> Result<BTreeSet<String>, ClickHouseError> {
    Ok(ch
        .rows(statement)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// The HTTP session a sink's inserts are sent in (see the module's notes): opened before
/// the check that precedes an insert, never by the insert itself.
#[derive(Debug, Default)]
pub struct Session {
    state: Mutex<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    id: Option<String>,
    /// When its last query ended.
    used: Option<Instant>,
    /// Whether the server refuses a query in a session that does not exist (a server
    /// without sessions ignores them: then the inserts are sent without).
    enforced: Option<bool>,
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

fn new_id() -> String {
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let worker: String = super::supervisor::worker_id()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("paver-{worker}-{nanos}-{n}")
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before the check that precedes an insert: open a new session unless the current one
    /// was used within half its timeout.
    pub async fn prepare(&self, ch: &ClickHouse, label: &str) -> Result<(), ClickHouseError> {
        let (enforced, recent) = {
            let s = self.lock();
            let half = Duration::from_millis(SESSION_TIMEOUT_S * 500);
            (s.enforced, s.used.is_some_and(|u| u.elapsed() < half))
        };
        let enforced = match enforced {
            Some(e) => e,
            None => {
                let probe = [
                    ("session_id", new_id()),
                    ("session_check", "1".to_string()),
                    ("session_timeout", SESSION_TIMEOUT_S.to_string()),
                ];
                let enforced = match ch.ping_with(&probe).await {
                    Ok(()) => false,
                    Err(e) if e.code() == Some(372) => true,
                    Err(e) => return Err(e),
                };
                if !enforced {
                    eprintln!(
                        "paver ingest {label}: this ClickHouse server does not enforce HTTP sessions: an insert frozen between its heartbeat check and its first byte is not fenced"
                    );
                }
                self.lock().enforced = Some(enforced);
                enforced
            }
        };
        if !enforced || recent {
            return Ok(());
        }
        let id = new_id();
        ch.ping_with(&[
            ("session_id", id.clone()),
            ("session_timeout", SESSION_TIMEOUT_S.to_string()),
        ])
        .await?;
        let mut s = self.lock();
        s.id = Some(id);
        s.used = Some(Instant::now());
        Ok(())
    }

    /// The parameters of an insert in the session (none where sessions are not enforced).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let s = self.lock();
        match (&s.id, s.enforced) {
            (Some(id), Some(true)) => vec![
                ("session_id", id.clone()),
                ("session_check", "1".to_string()),
                ("session_timeout", SESSION_TIMEOUT_S.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// An insert in the session ended (the server keeps it for its timeout from now).
    pub fn used(&self) {
        self.lock().used = Some(Instant::now());
    }

    /// ClickHouse refused an insert for its session: `true` when this process was frozen
    /// (the session was last used half its timeout ago or more, by this process's clock).
    /// Else the endpoint does not keep sessions (a load balancer sending each query to
    /// another server): from now on the inserts are sent without, as where sessions are
    /// not enforced.
    pub fn refused(&self, label: &str) -> bool {
        let mut s = self.lock();
        let half = Duration::from_millis(SESSION_TIMEOUT_S * 500);
        if s.used.is_none_or(|u| u.elapsed() >= half) {
            return true;
        }
        s.enforced = Some(false);
        eprintln!(
            "paver ingest {label}: ClickHouse lost an HTTP session just used (a load balancer in front?): inserts go without sessions, and an insert frozen between its heartbeat check and its first byte is not fenced"
        );
        false
    }
}

/// For the fence's test: with `PAVER_FAULT_STOP_BEFORE_INSERT=N`, the process stops
/// itself (SIGSTOP) after the checks of its N-th insert, before the insert's first byte:
/// where a frozen member is the longest out of reach of every check of its own. Never set
/// in production.
pub fn fault_stop_before_insert() {
    static INSERTS: AtomicU64 = AtomicU64::new(0);
    let wanted = std::env::var("PAVER_FAULT_STOP_BEFORE_INSERT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if wanted.is_some_and(|n| INSERTS.fetch_add(1, Ordering::SeqCst) + 1 == n) {
        eprintln!(
            "paver ingest: PAVER_FAULT_STOP_BEFORE_INSERT: stopping this process before an insert"
        );
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status();
        eprintln!("paver ingest: PAVER_FAULT_STOP_BEFORE_INSERT: continued, sending the insert");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(worker: &str, heartbeat_ms: i64, partitions: &[i32]) -> WorkerRecord {
        WorkerRecord {
            worker: worker.to_string(),
            version: Some(1),
            heartbeat_ms,
            partitions: Some(partitions.to_vec()),
        }
    }

    #[test]
    fn a_holder_gives_up_to_a_fresh_claim_not_to_a_stale_record_nor_while_claiming() {
        let now = 1_000_000;
        let lease = Lease::default();
        // Another worker's stale record lists partition 1: not a claim.
        let stale = record("b", now - 10_000, &[1]);
        assert_eq!(lease.observe("a", &[stale], &[0, 1], 0, true, now), None);
        assert!(lease.lost().is_none());
        // Its own record never counts.
        let mine = record("a", now, &[0, 1]);
        assert_eq!(lease.observe("a", &[mine], &[0, 1], 0, true, now), None);
        // While it claims partition 1 itself, the other's fresh record is waited for.
        let claim = lease.claim(&[1]);
        let fresh = record("b", now - 100, &[1]);
        assert_eq!(
            lease.observe("a", std::slice::from_ref(&fresh), &[0, 1], claim, true, now),
            None
        );
        assert_eq!(
            lease.blockers(&[1], claim),
            Some((vec!["b".to_string()], false))
        );
        // Once it holds it, a fresh claim of another makes it give everything up.
        lease.settle(&[1]);
        let why = lease.observe("a", &[fresh], &[0, 1], claim, true, now);
        assert_eq!(why.as_deref(), Some("worker b claimed partition(s) [1]"));
        assert_eq!(lease.lost(), why);
        lease.reset();
        assert!(lease.lost().is_none());
        // A static assignment does not yield.
        let fresh = record("b", now - 100, &[0]);
        assert_eq!(lease.observe("a", &[fresh], &[0], claim, false, now), None);
    }

    #[test]
    fn a_claim_waits_for_its_own_record_then_for_records_that_still_change() {
        let now = 1_000_000;
        let lease = Lease::default();
        let claim = lease.claim(&[2]);
        assert!(lease.unwritten());
        assert_eq!(lease.blockers(&[2], claim), None, "not written yet");
        lease.observe("a", &[record("b", now, &[3])], &[2], claim, true, now);
        assert!(!lease.unwritten());
        assert_eq!(lease.blockers(&[2], claim), Some((vec![], false)));
        // b lists 2: waited for until it drops it (a newer record without it) ...
        lease.observe("a", &[record("b", now, &[2, 3])], &[2], claim, true, now);
        assert_eq!(
            lease.blockers(&[2], claim),
            Some((vec!["b".to_string()], false))
        );
        lease.observe("a", &[record("b", now + 400, &[3])], &[2], claim, true, now);
        assert_eq!(lease.blockers(&[2], claim), Some((vec![], false)));
        // ... or until its record has not changed for STALE (then its inserts in flight
        // are awaited).
        lease.observe("a", &[record("c", now, &[2])], &[2], claim, true, now);
        lease.lock().others.get_mut("c").unwrap().since = Instant::now() - STALE;
        assert_eq!(lease.blockers(&[2], claim), Some((vec![], true)));
        // A worker gone from the store is forgotten.
        lease.observe("a", &[], &[2], claim, true, now);
        assert_eq!(lease.blockers(&[2], claim), Some((vec![], false)));
    }

    #[test]
    fn a_session_refused_right_after_its_use_was_lost_by_the_endpoint_not_by_a_freeze() {
        let session = |used: Instant| {
            let s = Session::default();
            *s.lock() = SessionState {
                id: Some("paver-x".to_string()),
                used: Some(used),
                enforced: Some(true),
            };
            s
        };
        let frozen = session(Instant::now() - Duration::from_secs(9));
        assert!(frozen.refused("p"));
        assert_eq!(frozen.params().len(), 3, "still in sessions");
        let balanced = session(Instant::now());
        assert!(!balanced.refused("p"));
        assert!(balanced.params().is_empty(), "sessions given up");
    }

    #[test]
    fn stale_covers_the_check_the_session_and_its_slack() {
        assert!(STALE > FRESH + Duration::from_secs(SESSION_TIMEOUT_S) + SESSION_SLACK);
        assert!(
            PAUSE < Duration::from_secs(6),
            "well under the group session"
        );
    }
}
