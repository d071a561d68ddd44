//! Follows the live version of a pipeline and runs it ([`run`]), one task per live
//! pipeline inside `paver run` ([`supervise`]).
//!
//! The live record in the state store is the hand-off point between the reconciler and
//! the workers. A worker reads it every [`POLL`] and writes, every [`HEARTBEAT`] at most
//! apart, which version it runs (`ingest_workers`). When the live record changes, the
//! running version is stopped: its batch in flight is abandoned (not committed), and only
//! once no insert into its staging table is in flight or can start any more does the
//! worker say it runs the new version (or `None`). The reconciler's cut-over waits for
//! that ([`super::handover::await_handover`]) before it calls the revision applied and
//! retires the old version.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::spec::{Endpoints, IngestSpec};
use super::status::Status;
use super::stop::{Stop, Stopper};
use super::worker::{run_version, Options};
use super::IngestError;
use crate::store::{now_ms, Store, StoreError};

/// How often the live record is read.
pub const POLL: Duration = Duration::from_millis(200);
/// The longest time between two heartbeats.
pub const HEARTBEAT: Duration = Duration::from_millis(400);
/// How often the counters are written for `paver status`.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The state store, shared by a worker's tasks; every call runs on a blocking thread.
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    pub async fn open(path: PathBuf) -> Result<SharedStore, StoreError> {
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| StoreError::Recovery(format!("opening the state store: {e}")))??;
        Ok(SharedStore(Arc::new(Mutex::new(store))))
    }

    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(|e| e.into_inner());
            f(&store)
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("a state store call failed: {e}")))?
    }
}

/// The live version of a pipeline, as a worker runs it.
type Live = Option<(IngestSpec, Endpoints)>;

async fn live_of(store: &SharedStore, pipeline: &str) -> Result<Live, StoreError> {
    let pipeline = pipeline.to_string();
    store
        .with(move |s| {
            Ok(s.live()?
                .into_iter()
                .find(|l| l.spec.pipeline == pipeline)
                .map(|l| (l.spec, l.endpoints)))
        })
        .await
}

/// Who this worker is in `ingest_workers`: unique per process (a pipeline has one task per
/// process).
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host} pid {}", std::process::id())
}

/// Run the worker of a pipeline until `shutdown` turns true. It waits while the pipeline
/// has no live version.
pub async fn run(options: Options, shutdown: watch::Receiver<bool>) -> Result<(), IngestError> {
    follow(options, Stop::from_watch(shutdown)).await
}

/// Follow the live version of `options.pipeline` until `stop`.
pub async fn follow(options: Options, stop: Stop) -> Result<(), IngestError> {
    let store = SharedStore::open(options.state.clone()).await?;
    let id = worker_id();
    let status = Status::default();
    let first = live_of(&store, &options.pipeline).await?;
    let (live_tx, mut live) = watch::channel(first);
    let (stop_heartbeat, heartbeat_stop) = stop.child();
    let heartbeat = tokio::spawn(heartbeat(
        store.clone(),
        options.clone(),
        id.clone(),
        status.clone(),
        live_tx,
        heartbeat_stop,
    ));
    // The heartbeat ends only when stopped, or when it failed (then so does the worker).
    while !stop.is_stopped() && !heartbeat.is_finished() {
        let current = live.borrow_and_update().clone();
        // Nothing of the previous version is in flight here: say what runs now.
        status.set_running(current.as_ref().map(|(spec, _)| spec.version));
        let Some((spec, endpoints)) = current else {
            tokio::select! {
                changed = live.changed() => if changed.is_err() { break },
                _ = stop.stopped() => {}
            }
            continue;
        };
        let (stop_version, version_stop) = stop.child();
        let running = run_version(&options, &spec, &endpoints, &status, &version_stop);
        tokio::pin!(running);
        let result = loop {
            tokio::select! {
                result = &mut running => break result,
                changed = live.changed() => {
                    if changed.is_err() {
                        stop_version.stop();
                        break (&mut running).await;
                    }
                    if !is_live(&live.borrow(), &spec) {
                        stop_version.stop();
                    }
                }
            }
        };
        // Nothing of the run is in flight any more: the heartbeat writes again.
        status.lease().reset();
        if let Err(e) = result {
            eprintln!("paver ingest {}: v{}: {e}", options.pipeline, spec.version);
            status.update(|s| s.last_error = Some(e.to_string()));
            // Try again in a second, or at once when another version goes live.
            tokio::select! {
                _ = version_stop.sleep(Duration::from_secs(1)) => {}
                _ = live.wait_for(|l| !is_live(l, &spec)) => {}
            }
        }
    }
    stop_heartbeat.stop();
    heartbeat.await?;
    let (pipeline, worker) = (options.pipeline.clone(), id);
    store
        .with(move |s| s.forget_worker(&pipeline, &worker))
        .await?;
    Ok(())
}

fn is_live(live: &Live, spec: &IngestSpec) -> bool {
    live.as_ref().is_some_and(|(now, _)| now == spec)
}

/// Reads the live record every [`POLL`] (published to the version loop) and writes the
/// heartbeat (at least every [`HEARTBEAT`], and at once when the running version changes)
/// and the counters. A store that cannot be read counts as "no live version": a worker
/// that cannot say what it runs stops inserting.
async fn heartbeat(
    store: SharedStore,
    options: Options,
    id: String,
    status: Status,
    live_tx: watch::Sender<Live>,
    stop: Stop,
) {
    let pipeline = options.pipeline.clone();
    let mut last_beat: Option<(tokio::time::Instant, Option<u32>)> = None;
    let mut last_status = tokio::time::Instant::now();
    let mut complained = false;
    let mut live_changed = super::signal::on_live_change();
    let group = options.partitions.is_none();
    let mut rested = tokio::time::Instant::now();
    loop {
        // A pause between two rounds far longer than the round's sleep: the process was
        // frozen (or starved), maybe past its group session. Nothing is written until its
        // run of the version ended (the record keeps what it held: the new owners wait for
        // it, see `lease`). The store's calls do not count (a store that is slow to answer
        // is no freeze; a freeze during a call leaves a stale `at`, not a fresh one).
        let gap = rested.elapsed();
        // The heartbeat's time, taken here: a round frozen after this point writes a record
        // as old as the freeze (the others do not take it for a fresh one, nor does the
        // worker's own check).
        let at = now_ms();
        let holds = status.partitions().is_some_and(|p| !p.is_empty());
        if gap > super::lease::PAUSE && holds && status.lease().lost().is_none() {
            status.pause(gap);
            eprintln!(
                "paver ingest {pipeline}: {}: giving partition(s) {:?} up, no insert starts any more",
                status.lease().lost().unwrap_or_default(),
                status.partitions().unwrap_or_default()
            );
        }
        let live = live_of(&store, &pipeline).await;
        let failed = match live {
            Ok(live) => {
                live_tx.send_if_modified(|old| {
                    let changed = old.as_ref().map(|(s, _)| s) != live.as_ref().map(|(s, _)| s);
                    if changed {
                        *old = live;
                    }
                    changed
                });
                None
            }
            Err(e) => {
                live_tx.send_if_modified(|old| old.take().is_some());
                Some(e)
            }
        };
        let mut failed = failed.map(|e| e.to_string());
        let running = status.running();
        let due_switch = last_beat.is_none_or(|(_, said)| said != running);
        let due = due_switch
            || status.lease().unwritten()
            || last_beat.is_some_and(|(at, _)| at.elapsed() >= HEARTBEAT - POLL / 2);
        // Paused: the record stays as it was until the run of the version ended.
        let paused = status.lease().lost().is_some() && status.partitions().is_some();
        if due && !paused {
            let (p, w, s) = (pipeline.clone(), id.clone(), status.clone());
            // The counters too when the version changed, written first: `paver status`
            // names the new version by the time the hand-over (woken below) sees it.
            let record = due_switch.then(|| status.stats().record(&pipeline, &options.worker));
            // The partitions as they are when written (under the store's lock: a claim
            // written by an earlier round is never overwritten by an older list), then the
            // other workers' records, read after the write.
            let beat = move |store: &Store| {
                if let Some(record) = &record {
                    store.report(record)?;
                }
                // The claims first: a claim counted here listed its partitions before.
                let claims = s.lease().claims();
                let held = s.partitions();
                store.worker_report_at(&p, &w, running, at)?;
                store.worker_partitions(&p, &w, held.as_deref())?;
                Ok((held, claims, store.workers_of(&p)?))
            };
            match store.with(beat).await {
                Ok((held, claims, records)) => {
                    super::signal::worker_reported();
                    let held = held.unwrap_or_default();
                    let lost =
                        status
                            .lease()
                            .observe(&id, &records, &held, claims, group, now_ms());
                    if let Some(why) = lost {
                        eprintln!(
                            "paver ingest {pipeline}: {why}: giving partition(s) {held:?} up, no insert starts any more"
                        );
                    } else {
                        status.beat(running, at);
                    }
                    last_beat = Some((tokio::time::Instant::now(), running));
                    if due_switch {
                        last_status = tokio::time::Instant::now();
                    }
                }
                Err(e) => failed = Some(e.to_string()),
            }
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = tokio::time::Instant::now();
            let record = status.stats().record(&pipeline, &options.worker);
            if let Err(e) = store.with(move |s| s.report(&record)).await {
                failed = Some(e.to_string());
            }
        }
        match failed {
            Some(e) if !complained => {
                eprintln!("paver ingest {pipeline}: the state store: {e}");
                complained = true;
            }
            None => complained = false,
            _ => {}
        }
        rested = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = status.running_changed() => {}
            // The cut-over in this process switched a live record: read it now.
            _ = live_changed.changed() => {}
            _ = stop.stopped() => break,
        }
    }
    let record = status.stats().record(&pipeline, &options.worker);
    let _ = store.with(move |s| s.report(&record)).await;
}

/// The embedded workers of `paver run`: one per pipeline that has a live version, started
/// as pipelines go live; each stops on shutdown after its batch in progress. With leader
/// election, only the leader ingests (`leads` says whether this replica does): a replica
/// that stops leading stops its workers.
pub async fn supervise(
    state: PathBuf,
    shutdown: watch::Receiver<bool>,
    leads: impl Fn() -> bool + Send + 'static,
) {
    let shutdown = Stop::from_watch(shutdown);
    let mut running: BTreeMap<String, (Stopper, tokio::task::JoinHandle<()>)> = BTreeMap::new();
    let mut complained = false;
    loop {
        if !leads() {
            for (_, (stop, handle)) in std::mem::take(&mut running) {
                stop.stop();
                let _ = handle.await;
            }
        } else {
            let path = state.clone();
            let live = match tokio::task::spawn_blocking(move || Store::open(&path)?.live()).await {
                Ok(read) => read.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match live {
                Ok(live) => {
                    complained = false;
                    for record in live {
                        let name = record.spec.pipeline;
                        if running.get(&name).is_some_and(|(_, h)| !h.is_finished()) {
                            continue;
                        }
                        let options = Options::new(state.clone(), &name, "embedded");
                        let (stopper, stop) = shutdown.child();
                        let task_name = name.clone();
                        let task = tokio::spawn(async move {
                            if let Err(e) = follow(options, stop).await {
                                eprintln!("paver ingest {task_name}: stopped: {e}");
                            }
                        });
                        running.insert(name, (stopper, task));
                    }
                }
                Err(e) => {
                    if !complained {
                        eprintln!("paver ingest: reading the live pipelines: {e}");
                        complained = true;
                    }
                }
            }
        }
        if !shutdown.sleep(Duration::from_secs(1)).await {
            break;
        }
    }
    for (_, (stop, handle)) in running {
        stop.stop();
        let _ = handle.await;
    }
}
