//! The ingestion worker of one pipeline. It follows the pipeline's live version in the
//! state store; for that version it:
//!
//! 1. waits until the version's views exist (a Null staging table without them would
//!    swallow rows);
//! 2. starts every partition at the furthest of: its own group's committed offset, the
//!    previous live version's committed offset (the blue/green hand-over), and the ledger's
//!    last inserted offset + 1 (what reached ClickHouse, whoever inserted it), and commits
//!    those starts to its group;
//! 3. consumes into batches and hands them over a bounded queue (a slow or stopped
//!    ClickHouse stops consumption instead of growing memory);
//! 4. inserts each batch into the staging table in one `INSERT`; ClickHouse's views run
//!    the transform into the sink and record the batch's offsets in the ledger in the same
//!    statement; records that cannot be decoded, or that ClickHouse rejects, go to the
//!    dead-letter topic with the reason in headers;
//! 5. commits the offsets after the insert.
//!
//! A worker killed between 4 and 5 restarts from the ledger: no row is lost or inserted
//! twice. When the live version changes, the running batches are finished and committed,
//! then the new version starts from where the old one stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::rows::{Decoder, RowError};
use super::spec::{Endpoints, IngestSpec};
use crate::providers::clickhouse::{literal, table_sql, ClickHouse, InsertError};
use crate::providers::kafka::Kafka;
use crate::store::{PipelineStatus, Store};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub state: PathBuf,
    pub pipeline: String,
    /// Shown in the status: `embedded`, or `pid <N>`.
    pub worker: String,
    /// Only these partitions (to split a pipeline over processes); all when `None`.
    pub partitions: Option<Vec<i32>>,
    /// A batch is sent when it has this many rows …
    pub batch_rows: usize,
    /// … or this many bytes …
    pub batch_bytes: usize,
    /// … or when its first record is this old.
    pub linger: Duration,
    /// Batches waiting for ClickHouse (the bounded queue).
    pub queue: usize,
    /// librdkafka's prefetch queue per worker, in KiB.
    pub prefetch_kib: usize,
}

impl Options {
    pub fn new(state: PathBuf, pipeline: &str, worker: &str) -> Options {
        Options {
            state,
            pipeline: pipeline.to_string(),
            worker: worker.to_string(),
            partitions: None,
            batch_rows: 20_000,
            batch_bytes: 8 << 20,
            linger: Duration::from_millis(250),
            queue: 2,
            prefetch_kib: 16 << 10,
        }
    }
}

/// Counters of a worker, reported to the state store.
#[derive(Debug, Default, Clone)]
struct Stats {
    version: u32,
    consumed: u64,
    inserted: u64,
    dead_lettered: u64,
    lag: Option<i64>,
    rows_per_sec: f64,
    last_error: Option<String>,
}

/// One record that goes to the dead-letter topic.
struct Dead {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    reason: String,
}

/// A record of a batch: where it came from and its row's bytes in the batch.
struct Item {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    row: std::ops::Range<usize>,
}

/// Records consumed together, inserted in one statement.
#[derive(Default)]
struct Batch {
    rows: Vec<u8>,
    items: Vec<Item>,
    dead: Vec<Dead>,
    /// Per partition, the offset after the last record of the batch.
    next: BTreeMap<i32, i64>,
    consumed: u64,
}

/// Run the worker of a pipeline until `shutdown` turns true. It waits while the pipeline
/// has no live version.
pub async fn run(options: Options, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
    // Behind a mutex: the store is used between awaits, by one task at a time.
    let store = StoreCell::new(Store::open(&options.state).map_err(|e| e.to_string())?);
    let mut stats = Stats::default();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let live = live_of(&store, &options.pipeline)?;
        let Some((spec, endpoints)) = live else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        stats.version = spec.version;
        if let Err(e) = run_version(
            &options,
            &store,
            &spec,
            &endpoints,
            &mut stats,
            &mut shutdown,
        )
        .await
        {
            eprintln!("paver ingest {}: v{}: {e}", options.pipeline, spec.version);
            stats.last_error = Some(e);
            report(&store, &options, &stats);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

type StoreCell = std::sync::Mutex<Store>;

fn live_of(store: &StoreCell, pipeline: &str) -> Result<Option<(IngestSpec, Endpoints)>, String> {
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    Ok(store
        .live()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|l| l.spec.pipeline == pipeline)
        .map(|l| (l.spec, l.endpoints)))
}

fn report(store: &StoreCell, options: &Options, stats: &Stats) {
    let status = PipelineStatus {
        name: options.pipeline.clone(),
        version: stats.version,
        worker: options.worker.clone(),
        consumed: stats.consumed,
        inserted: stats.inserted,
        dead_lettered: stats.dead_lettered,
        lag: stats.lag,
        rows_per_sec: stats.rows_per_sec,
        last_error: stats.last_error.clone(),
        updated_at: String::new(),
    };
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = store.report(&status) {
        eprintln!(
            "paver ingest {}: cannot record the status: {e}",
            options.pipeline
        );
    }
}

/// The clients of a version, built from the recorded connections with the environment
/// over them (the same precedence as the reconciler's, `crate::config`): ClickHouse, the
/// Kafka settings every Kafka client starts from, the admin client, the Schema Registry.
async fn clients(
    recorded: &Endpoints,
) -> Result<
    (
        ClickHouse,
        ClientConfig,
        Kafka,
        Option<crate::registry::SchemaRegistry>,
    ),
    String,
> {
    let env = &crate::config::process_env;
    let endpoints = recorded.clone().with_env(env);
    let ch = ClickHouse::open(&endpoints.clickhouse, env)
        .await
        .map_err(|e| e.to_string())?;
    let kafka =
        crate::providers::kafka::client_config(&endpoints.kafka, env).map_err(|e| e.to_string())?;
    let admin = Kafka::open(&endpoints.kafka, env).map_err(|e| e.to_string())?;
    let registry = endpoints
        .schema_registry
        .as_ref()
        .map(|r| crate::registry::SchemaRegistry::new(r, env))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((ch, kafka, admin, registry))
}

/// Why the version's run ended normally.
enum Stop {
    /// Another version is live, or none.
    Switched,
    Shutdown,
}

async fn run_version(
    options: &Options,
    store: &StoreCell,
    spec: &IngestSpec,
    recorded: &Endpoints,
    stats: &mut Stats,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Stop, String> {
    let (ch, kafka, admin, registry) = clients(recorded).await?;
    let mut decoder = Decoder::new(spec, |t| ch.adapt_type(t))?;
    decoder.registry = registry.is_some();
    wait_for_views(&ch, spec).await?;

    let consumer: Arc<StreamConsumer> = Arc::new(
        kafka
            .clone()
            .set("group.id", &spec.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "queued.max.messages.kbytes",
                options.prefetch_kib.to_string(),
            )
            .set(
                "fetch.max.bytes",
                if options.prefetch_kib >= 4096 {
                    "4194304"
                } else {
                    "1100000"
                },
            )
            .set("max.partition.fetch.bytes", "1048576")
            .set("session.timeout.ms", "6000")
            .create()
            .map_err(|e| format!("Kafka consumer: {e}"))?,
    );
    let producer: FutureProducer = kafka
        .clone()
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(|e| format!("Kafka producer: {e}"))?;

    // Partitions and where each starts.
    let partitions = partitions_of(&consumer, &spec.topic).await?;
    let partitions: Vec<i32> = match &options.partitions {
        Some(only) => partitions
            .into_iter()
            .filter(|p| only.contains(p))
            .collect(),
        None => partitions,
    };
    let count = partitions.iter().max().map_or(0, |m| m + 1);
    let own = admin.group_offsets(&spec.group, &spec.topic, count)?;
    let previous = match &spec.previous_group {
        Some(g) => admin.group_offsets(g, &spec.topic, count)?,
        None => BTreeMap::new(),
    };
    let ledger = ledger_offsets(&ch, spec).await?;
    let mut start = BTreeMap::new();
    for p in &partitions {
        let candidates = [
            own.get(p).copied(),
            previous.get(p).copied(),
            ledger.get(p).map(|o| o + 1),
        ];
        if let Some(o) = candidates.into_iter().flatten().max() {
            start.insert(*p, o);
        }
    }
    if !start.is_empty() {
        admin.set_group_offsets(&spec.group, &spec.topic, &start)?;
    }
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let offset = start
            .get(p)
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        assignment
            .add_partition_offset(&spec.topic, *p, offset)
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("assigning partitions: {e}"))?;
    eprintln!(
        "paver ingest {}: v{} consuming {} partition(s) of {} as group {} from {:?}",
        spec.pipeline,
        spec.version,
        partitions.len(),
        spec.topic,
        spec.group,
        start
    );

    // Consume → bounded queue → insert.
    let (tx, mut rx) = mpsc::channel::<Batch>(options.queue.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let consume = tokio::spawn(consume_loop(
        consumer.clone(),
        decoder,
        registry,
        options.clone(),
        tx,
        stop_rx,
    ));
    let mut last_report = Instant::now();
    let mut inserted_at_report = stats.inserted;
    let mut inserts = 0usize;
    let mut stop = None;
    loop {
        let received = tokio::select! {
            b = rx.recv() => match b {
                Some(batch) => Some(batch),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => None,
            _ = shutdown.changed() => {
                stop = Some(Stop::Shutdown);
                let _ = stop_tx.send(true);
                None
            }
        };
        if let Some(batch) = received {
            stats.consumed += batch.consumed;
            // Once stopping, a batch is neither inserted nor committed: the next start (of
            // this version or the next) reads it again.
            if stop.is_none() {
                let guard = Guard {
                    store,
                    options,
                    spec,
                    shutdown,
                };
                match ingest_batch(&ch, &producer, spec, batch, stats, &guard).await? {
                    Some(next) => {
                        inserts += 1;
                        fault_pause(inserts);
                        commit(&consumer, &spec.topic, &next).await?;
                        start.extend(next);
                        stats.last_error = None;
                    }
                    None => {
                        stop = Some(guard.should_stop()?.unwrap_or(Stop::Shutdown));
                        let _ = stop_tx.send(true);
                    }
                }
            }
        }
        // Once a second: the status, and whether another version went live.
        if last_report.elapsed() >= Duration::from_secs(1) {
            update_rates(
                stats,
                &consumer,
                spec,
                &start,
                &mut inserted_at_report,
                &mut last_report,
            );
            report(store, options, stats);
            if stop.is_none() {
                stop = check_stop(store, spec, shutdown)?;
                if stop.is_some() {
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
    let _ = consume.await;
    update_rates(
        stats,
        &consumer,
        spec,
        &start,
        &mut inserted_at_report,
        &mut last_report,
    );
    report(store, options, stats);
    Ok(stop.unwrap_or(Stop::Switched))
}

/// Whether the worker must stop this version: shutdown, or another live version.
fn check_stop(
    store: &StoreCell,
    spec: &IngestSpec,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Stop>, String> {
    if *shutdown.borrow() {
        return Ok(Some(Stop::Shutdown));
    }
    let live = live_of(store, &spec.pipeline)?;
    Ok(match live {
        Some((now, _)) if now == *spec => None,
        _ => Some(Stop::Switched),
    })
}

fn update_rates(
    stats: &mut Stats,
    consumer: &StreamConsumer,
    spec: &IngestSpec,
    position: &BTreeMap<i32, i64>,
    inserted_at_report: &mut u64,
    last_report: &mut Instant,
) {
    let elapsed = last_report.elapsed().as_secs_f64().max(0.001);
    stats.rows_per_sec = (stats.inserted - *inserted_at_report) as f64 / elapsed;
    *inserted_at_report = stats.inserted;
    *last_report = Instant::now();
    // The lag from the high watermarks librdkafka last saw (no request).
    let mut lag = 0i64;
    let mut known = false;
    for (p, at) in position {
        if let Some(high) = cached_high_watermark(consumer, &spec.topic, *p) {
            lag += (high - at).max(0);
            known = true;
        }
    }
    stats.lag = known.then_some(lag);
}

/// The high watermark librdkafka last saw in a fetch response (no request is sent).
fn cached_high_watermark(consumer: &StreamConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the out-pointers are
    // local variables.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// For the crash tests: with `PAVER_FAULT_PAUSE_AFTER_INSERT=N`, the worker stops for a
/// minute after its N-th insert, before committing, so that a test can kill it in the
/// window where rows are in ClickHouse and the offsets are not committed. Never set in
/// production.
fn fault_pause(inserts: usize) {
    let wanted = std::env::var("PAVER_FAULT_PAUSE_AFTER_INSERT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if wanted == Some(inserts) {
        eprintln!("paver ingest: PAVER_FAULT_PAUSE_AFTER_INSERT={inserts}: pausing");
        std::thread::sleep(Duration::from_secs(60));
    }
}

async fn partitions_of(consumer: &Arc<StreamConsumer>, topic: &str) -> Result<Vec<i32>, String> {
    let c = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = c
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| format!("metadata of topic {topic}: {e}"))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("topic {topic} not found"))?;
        if t.partitions().is_empty() {
            return Err(format!("topic {topic} has no partitions (does it exist?)"));
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Wait until the version's views exist on its staging table.
async fn wait_for_views(ch: &ClickHouse, spec: &IngestSpec) -> Result<(), String> {
    for attempt in 0.. {
        if views_exist(ch, spec).await? {
            return Ok(());
        }
        if attempt == 0 {
            eprintln!(
                "paver ingest {}: v{}: waiting for its views",
                spec.pipeline, spec.version
            );
        }
        if attempt > 120 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "the views of v{} ({}) do not exist: refusing to insert into a staging table that would swallow rows",
        spec.version,
        spec.views
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

async fn views_exist(ch: &ClickHouse, spec: &IngestSpec) -> Result<bool, String> {
    let names: Vec<String> = spec.views.iter().map(|v| literal(&v.name)).collect();
    if names.is_empty() {
        return Ok(true);
    }
    let rows = ch
        .rows(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name IN ({})",
            literal(&spec.staging.database),
            names.join(", ")
        ))
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|c| c.parse::<usize>().ok())
        == Some(spec.views.len()))
}

/// The last offset the ledger has for the pipeline, per partition (any version).
async fn ledger_offsets(ch: &ClickHouse, spec: &IngestSpec) -> Result<BTreeMap<i32, i64>, String> {
    let rows = ch
        .rows(&format!(
            "SELECT partition, max(last_offset) FROM {} WHERE pipeline = {} GROUP BY partition",
            table_sql(&spec.ledger),
            literal(&spec.pipeline)
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
        .collect())
}

async fn commit(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    next: &BTreeMap<i32, i64>,
) -> Result<(), String> {
    if next.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (p, o) in next {
        list.add_partition_offset(topic, *p, Offset::Offset(*o))
            .map_err(|e| e.to_string())?;
    }
    let c = consumer.clone();
    // A failed commit is not fatal: the ledger knows what was inserted.
    match tokio::task::spawn_blocking(move || c.commit(&list, CommitMode::Sync)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("paver ingest: committing offsets: {e} (the ledger has them)"),
        Err(e) => eprintln!("paver ingest: committing offsets: {e}"),
    }
    Ok(())
}

async fn consume_loop(
    consumer: Arc<StreamConsumer>,
    mut decoder: Decoder,
    registry: Option<crate::registry::SchemaRegistry>,
    options: Options,
    tx: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Batch::default();
    let mut first_at: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match first_at {
            Some(t) => options.linger.saturating_sub(t.elapsed()),
            None => Duration::from_millis(500),
        };
        let received = tokio::select! {
            m = consumer.recv() => Some(m),
            _ = tokio::time::sleep(wait) => None,
            _ = stop.changed() => break,
        };
        if let Some(received) = received {
            match received {
                Ok(m) => {
                    let partition = m.partition();
                    let offset = m.offset();
                    batch.consumed += 1;
                    batch.next.insert(partition, offset + 1);
                    first_at.get_or_insert_with(Instant::now);
                    let key = m.key().map(<[u8]>::to_vec);
                    match m.payload() {
                        Some(payload) => {
                            let at = batch.rows.len();
                            let mut result =
                                decoder.row(payload, partition, offset, &mut batch.rows);
                            if let (Err(RowError::UnknownId(id)), Some(registry)) =
                                (&result, &registry)
                            {
                                decoder.learn(
                                    *id,
                                    registry.schema(*id).await.map_err(|e| e.to_string()),
                                );
                                result = decoder.row(payload, partition, offset, &mut batch.rows);
                            }
                            match result {
                                Ok(()) => batch.items.push(Item {
                                    partition,
                                    offset,
                                    key,
                                    payload: Some(payload.to_vec()),
                                    row: at..batch.rows.len(),
                                }),
                                Err(e) => batch.dead.push(Dead {
                                    partition,
                                    offset,
                                    key,
                                    payload: Some(payload.to_vec()),
                                    reason: e.reason(),
                                }),
                            }
                        }
                        None => batch.dead.push(Dead {
                            partition,
                            offset,
                            key,
                            payload: None,
                            reason: "an empty record (no value)".to_string(),
                        }),
                    }
                }
                Err(e) => {
                    eprintln!("paver ingest {}: consuming: {e}", options.pipeline);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let full = batch.items.len() + batch.dead.len() >= options.batch_rows
            || batch.rows.len() >= options.batch_bytes;
        let due = first_at.is_some_and(|t| t.elapsed() >= options.linger);
        if (full || due) && batch.consumed > 0 {
            let ready = std::mem::take(&mut batch);
            first_at = None;
            // Blocks while the queue is full: backpressure.
            tokio::select! {
                sent = tx.send(ready) => if sent.is_err() { return },
                _ = stop.changed() => break,
            }
        }
    }
    if batch.consumed > 0 {
        let _ = tx.send(batch).await;
    }
}

/// What an insert that keeps failing checks between attempts: whether to give the batch
/// up (shutdown, or another version went live: the batch is not committed, whoever runs
/// next reads it again), and where to report.
struct Guard<'a> {
    store: &'a StoreCell,
    options: &'a Options,
    spec: &'a IngestSpec,
    shutdown: &'a watch::Receiver<bool>,
}

impl Guard<'_> {
    fn should_stop(&self) -> Result<Option<Stop>, String> {
        check_stop(self.store, self.spec, self.shutdown)
    }
}

/// Insert a batch and dead-letter what cannot be inserted. Returns the offsets to commit,
/// or `None` when the worker is shutting down before the batch got in.
async fn ingest_batch(
    ch: &ClickHouse,
    producer: &FutureProducer,
    spec: &IngestSpec,
    batch: Batch,
    stats: &mut Stats,
    guard: &Guard<'_>,
) -> Result<Option<BTreeMap<i32, i64>>, String> {
    let mut dead = batch.dead;
    // One buffer for the batch and for its rows one by one (no copy).
    let rows = bytes::Bytes::from(batch.rows);
    if !batch.items.is_empty() {
        match insert_retrying(ch, spec, rows.clone(), stats, guard).await? {
            Outcome::Inserted => stats.inserted += batch.items.len() as u64,
            Outcome::ShuttingDown => return Ok(None),
            Outcome::Rejected(_) => {
                // Some row is bad: insert them one by one, dead-letter the rejected.
                for item in batch.items {
                    let row = rows.slice(item.row.clone());
                    match insert_retrying(ch, spec, row, stats, guard).await? {
                        Outcome::Inserted => stats.inserted += 1,
                        Outcome::ShuttingDown => return Ok(None),
                        Outcome::Rejected(reason) => dead.push(Dead {
                            partition: item.partition,
                            offset: item.offset,
                            key: item.key,
                            payload: item.payload,
                            reason: format!("rejected by ClickHouse: {reason}"),
                        }),
                    }
                }
            }
        }
    }
    for d in &dead {
        dead_letter(producer, spec, d).await?;
        stats.dead_lettered += 1;
    }
    Ok(Some(batch.next))
}

enum Outcome {
    Inserted,
    Rejected(String),
    ShuttingDown,
}

/// Insert rows, retrying what may pass later (ClickHouse down, a table being changed) with
/// a growing pause; a rejection of the data itself is returned.
async fn insert_retrying(
    ch: &ClickHouse,
    spec: &IngestSpec,
    rows: bytes::Bytes,
    stats: &mut Stats,
    guard: &Guard<'_>,
) -> Result<Outcome, String> {
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = async {
            if !views_exist(ch, spec)
                .await
                .map_err(InsertError::Transient)?
            {
                return Err(InsertError::Transient(format!(
                    "the views of v{} are missing",
                    spec.version
                )));
            }
            ch.insert_json_rows(&spec.staging, rows.clone()).await
        };
        match attempt.await {
            Ok(()) => return Ok(Outcome::Inserted),
            Err(InsertError::Data(reason)) => return Ok(Outcome::Rejected(reason)),
            Err(InsertError::Transient(reason)) => {
                if stats.last_error.as_deref() != Some(reason.as_str()) {
                    eprintln!(
                        "paver ingest {}: v{}: insert failed, retrying: {reason}",
                        spec.pipeline, spec.version
                    );
                }
                stats.last_error = Some(reason);
                report(guard.store, guard.options, stats);
                if guard.should_stop()?.is_some() {
                    return Ok(Outcome::ShuttingDown);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn dead_letter(producer: &FutureProducer, spec: &IngestSpec, d: &Dead) -> Result<(), String> {
    let partition = d.partition.to_string();
    let offset = d.offset.to_string();
    let version = spec.version.to_string();
    let fields = [
        ("paver.error", d.reason.as_str()),
        ("paver.pipeline", spec.pipeline.as_str()),
        ("paver.version", version.as_str()),
        ("paver.source.topic", spec.topic.as_str()),
        ("paver.source.partition", partition.as_str()),
        ("paver.source.offset", offset.as_str()),
    ];
    let headers = fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(*value),
        })
    });
    let mut pause = Duration::from_millis(200);
    loop {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&spec.dead_letter_topic).headers(headers.clone());
        if let Some(k) = &d.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &d.payload {
            record = record.payload(p.as_slice());
        }
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err((e, _)) => {
                eprintln!(
                    "paver ingest {}: writing to the dead-letter topic {}: {e}; retrying",
                    spec.pipeline, spec.dead_letter_topic
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The embedded workers of `paver run`: one per pipeline that has a live version, started
/// as pipelines go live; each stops on shutdown after its batch in progress. With leader
/// election, only the leader ingests (`leads` says whether this replica does): a replica
/// that stops leading stops its workers.
pub async fn supervise(
    state: PathBuf,
    mut shutdown: watch::Receiver<bool>,
    leads: impl Fn() -> bool + Send + 'static,
) {
    let mut running: BTreeMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
        BTreeMap::new();
    loop {
        if !leads() {
            for (_, (stop, handle)) in std::mem::take(&mut running) {
                let _ = stop.send(true);
                let _ = handle.await;
            }
        } else if let Ok(store) = Store::open(&state) {
            for live in store.live().unwrap_or_default() {
                let name = live.spec.pipeline;
                if running.get(&name).is_some_and(|(_, h)| !h.is_finished()) {
                    continue;
                }
                let options = Options::new(state.clone(), &name, "embedded");
                let (stop_tx, stop_rx) = watch::channel(false);
                let task_name = name.clone();
                running.insert(
                    name,
                    (
                        stop_tx,
                        tokio::spawn(async move {
                            if let Err(e) = run(options, stop_rx).await {
                                eprintln!("paver ingest {task_name}: stopped: {e}");
                            }
                        }),
                    ),
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, (stop, handle)) in running {
        let _ = stop.send(true);
        let _ = handle.await;
    }
}
