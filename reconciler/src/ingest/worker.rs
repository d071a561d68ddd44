//! The worker of one pipeline version. For that version it:
//!
//! 1. waits until the version's views exist (a Null staging table without them would
//!    swallow rows);
//! 2. starts every partition where [`offsets::start_offsets`] says (the furthest of its
//!    group's committed offset, the previous version's, and the ledger's last + 1), and
//!    commits those starts to its group;
//! 3. consumes into batches ([`batch`]) and hands them over a bounded queue (a slow or
//!    stopped ClickHouse stops consumption instead of growing memory);
//! 4. inserts each batch through the [`sink`]; records that cannot be decoded, or that
//!    ClickHouse rejects, go to the dead-letter topic;
//! 5. commits the offsets after the insert.
//!
//! A worker killed between 4 and 5 restarts from the ledger: no row is lost or inserted
//! twice. When its stop token fires (a shutdown, or another version went live) the batch
//! in progress is abandoned (not committed), no insert starts any more, and [`run_version`]
//! returns only once none is in flight. The [`supervisor`] follows the live version.
//!
//! [`offsets::start_offsets`]: super::offsets::start_offsets
//! [`batch`]: super::batch
//! [`sink`]: super::sink
//! [`supervisor`]: super::supervisor

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::batch::Limits;
use super::consume::{consume_loop, Held, Work};
use super::dead_letter::{self, DeadLetters, Retry};
use super::group::{Change, GroupContext};
use super::handover::{self, HandoverOutcome};
use super::lease;
use super::offsets::{start_offsets, Offsets};
use super::rows::Decoder;
use super::shards::{self, Shards};
use super::sink::{self, Ingested, Sink};
use super::spec::{Endpoints, IngestSpec};
use super::status::Status;
use super::stop::{Stop, Stopper};
use super::IngestError;
use crate::providers::clickhouse::ClickHouse;
use crate::providers::kafka::Kafka;
use crate::registry::SchemaRegistry;

pub use super::supervisor::{run, supervise};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub state: PathBuf,
    pub pipeline: String,
    /// Shown in the status: `embedded`, or `pid <N>`.
    pub worker: String,
    /// A static assignment: only these partitions, whatever other workers do. `None`:
    /// the worker is a member of the version's consumer group and reads the partitions the
    /// group gives it.
    pub partitions: Option<Vec<i32>>,
    /// The group's assignment strategy (librdkafka's `partition.assignment.strategy`):
    /// `cooperative-sticky` (only the partitions that move stop), or `range`/`roundrobin`
    /// (eager: every member stops everything at each rebalance).
    pub assignor: String,
    /// A batch is sent when it has this many rows …
    pub batch_rows: usize,
    /// … or this many bytes …
    pub batch_bytes: usize,
    /// … or when its first record is this old.
    pub linger: Duration,
    /// Rows as `RowBinary` where the staging table allows it (else `JSONEachRow`).
    pub row_binary: bool,
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
            assignor: "cooperative-sticky".to_string(),
            batch_rows: 20_000,
            batch_bytes: 8 << 20,
            linger: Duration::from_millis(250),
            row_binary: true,
            queue: 2,
            prefetch_kib: 16 << 10,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            rows: self.batch_rows,
            bytes: self.batch_bytes,
            linger: self.linger,
        }
    }
}

/// The servers' clients of one version.
struct Clients {
    /// The node of each shard (one: the target's url).
    shards: Shards,
    consumer: Arc<StreamConsumer<GroupContext>>,
    producer: FutureProducer,
    admin: Kafka,
    registry: Option<SchemaRegistry>,
}

/// Every client a version needs, built in this one place: from the connections recorded
/// with the version, the environment over them (the reconciler's precedence, see
/// [`crate::config`]); TLS, SASL and the secrets as they say, for every client alike.
async fn clients(
    options: &Options,
    spec: &IngestSpec,
    recorded: &Endpoints,
) -> Result<Clients, IngestError> {
    let env = &crate::config::process_env;
    let endpoints = recorded.clone().with_env(env);
    let ch = ClickHouse::open(&endpoints.clickhouse, env).await?;
    let shards = Shards::open(&endpoints.clickhouse, env, ch).await?;
    let admin = Kafka::open(&endpoints.kafka, env)?;
    let registry = endpoints
        .schema_registry
        .as_ref()
        .map(|r| SchemaRegistry::new(r, env))
        .transpose()?;
    let consumer: StreamConsumer<GroupContext> = admin
        .base_config()
        .set("group.id", &spec.group)
        .set("client.id", format!("paver {}", options.worker))
        .set("partition.assignment.strategy", options.assignor.as_str())
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
        // Once the prefetch queue is full, librdkafka waits this long before it fetches
        // again (1 s by default): the insert loop drained the queue in a fraction of that
        // and then waited for records (measured: 0.65–0.8 s without a batch after every
        // few, PAVER_LOG=debug).
        .set("fetch.queue.backoff.ms", "20")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(GroupContext::default())?;
    let producer = dead_letter::producer(admin.base_config(), Duration::from_secs(30))?;
    Ok(Clients {
        shards,
        consumer: Arc::new(consumer),
        producer,
        admin,
        registry,
    })
}

/// Run one pipeline version until `stop`. Returns once nothing of it is in flight: no
/// insert into its staging table runs or can start any more.
pub(crate) async fn run_version(
    options: &Options,
    spec: &IngestSpec,
    recorded: &Endpoints,
    status: &Status,
    stop: &Stop,
) -> Result<(), IngestError> {
    let Clients {
        shards,
        consumer,
        producer,
        admin,
        registry,
    } = clients(options, spec, recorded).await?;
    let rebalances = consumer.context().rebalances.clone();
    let outcome = run_clients(
        options, spec, status, stop, &shards, &consumer, producer, &admin, registry,
    )
    .await;
    // Nothing is inserted any more: the group may have every partition back at once, and
    // the consumer leaves it when dropped.
    rebalances.close(&*consumer);
    status.set_partitions(None);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn run_clients(
    options: &Options,
    spec: &IngestSpec,
    status: &Status,
    stop: &Stop,
    shards: &Shards,
    consumer: &Arc<StreamConsumer<GroupContext>>,
    producer: FutureProducer,
    admin: &Kafka,
    registry: Option<SchemaRegistry>,
) -> Result<(), IngestError> {
    let ch = shards.home();
    let mut decoder = Decoder::new(spec, |t| ch.adapt_type(t)).map_err(IngestError::Schemas)?;
    decoder.registry = registry.is_some();
    if !sink::wait_for_views(ch, spec, stop).await? {
        return Ok(());
    }
    // RowBinary where every column of the staging table allows it, else JSONEachRow.
    let binary = match options.row_binary {
        true => decoder.use_row_binary(&sink::staging_columns(ch, spec).await?),
        false => Err(super::rows::NotBinary::Asked),
    };
    if let Err(why) = binary {
        eprintln!(
            "paver ingest {}: v{}: rows as JSONEachRow, not RowBinary: {why}",
            spec.pipeline, spec.version
        );
    }
    let format = decoder.format();

    let starts = Starts {
        shards,
        admin,
        spec,
    };
    let rebalances = consumer.context().rebalances.clone();
    let held_partitions: HeldPartitions = Arc::default();
    let (mut position, held) = match &options.partitions {
        // A static assignment: these partitions, from where they start.
        Some(only) => {
            let partitions: Vec<i32> = partitions_of(consumer, &spec.topic)
                .await?
                .into_iter()
                .filter(|p| only.contains(p))
                .collect();
            let position = starts.of(&partitions).await?;
            if !position.is_empty() {
                admin
                    .set_group_offsets(&spec.group, &spec.topic, &position)
                    .await
                    .map_err(IngestError::Kafka)?;
            }
            consumer.assign(&starts.list(&partitions, &position)?)?;
            set_held(&held_partitions, status, partitions.iter().copied(), true);
            eprintln!(
                "paver ingest {}: v{} consuming {} partition(s) of {} as group {} from {:?}",
                spec.pipeline,
                spec.version,
                partitions.len(),
                spec.topic,
                spec.group,
                position
            );
            (position, Held::All)
        }
        // A member of the version's consumer group: partitions come and go with the
        // group's decisions. First every other worker of the pipeline must have left the
        // previous version (its inserts end before it says so), else a partition could
        // start here before the ledger holds its last insert there.
        None => {
            if !handover_done(options, spec, stop).await? {
                return Ok(());
            }
            consumer.subscribe(&[spec.topic.as_str()])?;
            status.set_partitions(Some(Vec::new()));
            eprintln!(
                "paver ingest {}: v{} joining group {} on {} ({})",
                spec.pipeline, spec.version, spec.group, spec.topic, options.assignor
            );
            (
                Offsets::new(),
                Held::Group {
                    rebalances: rebalances.clone(),
                    partitions: BTreeSet::new(),
                },
            )
        }
    };
    // Running: an error of an earlier start no longer holds (an insert that fails says so).
    status.update(|s| s.last_error = None);
    // The high watermarks, asked of the brokers every 2 s (ListOffsets): the ones in fetch
    // responses stop moving while the prefetch queue is full, which is when lag matters.
    let highs: Highs = Arc::default();
    let (stop_watermarks, watermarks_stop) = stop.child();
    let watermarks = tokio::spawn(query_watermarks(
        consumer.clone(),
        spec.topic.clone(),
        held_partitions.clone(),
        highs.clone(),
        watermarks_stop,
    ));
    // A member whose assignment librdkafka declares lost (its session timed out: the group
    // may have given its partitions to another) starts no insert any more.
    let (stop_inserts, inserts_stop) = stop.child();
    let (stop_watching, watching) = stop.child();
    let lost_watch = tokio::spawn(watch_lost(
        consumer.clone(),
        status.clone(),
        stop_inserts,
        watching,
    ));

    // Consume → bounded queue → insert.
    let (tx, mut rx) = mpsc::channel::<Work>(options.queue.max(1));
    let (stop_consuming, consuming) = stop.child();
    let consume = tokio::spawn(consume_loop(
        consumer.clone(),
        decoder,
        registry,
        options.clone(),
        held,
        tx,
        consuming,
    ));
    let dead_letters = DeadLetters::new(producer, spec, Retry::default());
    // One sink per shard: a partition's rows go to its shard's node.
    let sinks: Vec<Sink> = shards
        .nodes()
        .iter()
        .map(|ch| Sink {
            ch,
            spec,
            dead_letters: &dead_letters,
            status,
            stop: &inserts_stop,
            // A group member may be late: its partitions given to another, which inserted.
            fence: options.partitions.is_none(),
            format: format.clone(),
            session: lease::Session::default(),
        })
        .collect();
    let lost = || lease::lost(status, spec.version);
    let mut rates = Rates::new(status);
    let mut inserts = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut idle_since = Instant::now();
    let outcome = loop {
        tokio::select! {
            work = rx.recv() => {
                let Some(work) = work else { break Ok(()) };
                let waited = idle_since.elapsed();
                // Once stopping, a batch is neither inserted nor committed: the next start
                // (of this version or the next, here or in another worker) reads it again.
                if stop.is_stopped() {
                    break Ok(());
                }
                if inserts_stop.is_stopped() {
                    break Err(lost());
                }
                let batch = match work {
                    Work::Batch(batch) => batch,
                    Work::Assign(partitions) => {
                        // Claimed first: the previous holders can insert no more (`lease`).
                        set_held(&held_partitions, status, partitions.iter().copied(), true);
                        let label = format!("{} v{}", spec.pipeline, spec.version);
                        match lease::take(status, &partitions, shards.nodes(), &spec.staging, &inserts_stop, &label).await {
                            Ok(true) => {}
                            Ok(false) if stop.is_stopped() => break Ok(()),
                            Ok(false) => break Err(lost()),
                            Err(e) => break Err(e),
                        }
                        let position_of = match starts.of(&partitions).await {
                            Ok(p) => p,
                            Err(e) => break Err(e),
                        };
                        let list = match starts.list(&partitions, &position_of) {
                            Ok(list) => list,
                            Err(e) => break Err(e),
                        };
                        let change = Change::Assign(partitions.clone());
                        if let Err(e) = rebalances.answer(&**consumer, &change, Some(&list)) {
                            break Err(e.into());
                        }
                        // The starts as this version's own committed offsets (what the next
                        // version continues from, even where nothing gets inserted).
                        commit(consumer, &spec.topic, &position_of).await;
                        eprintln!(
                            "paver ingest {}: v{} took partition(s) {partitions:?} of {} from {position_of:?}",
                            spec.pipeline, spec.version, spec.topic
                        );
                        position.extend(position_of);
                        set_held(&held_partitions, status, partitions, true);
                        continue;
                    }
                    Work::Revoke(partitions) => {
                        let change = Change::Revoke(partitions.clone());
                        if let Err(e) = rebalances.answer(&**consumer, &change, None) {
                            break Err(e.into());
                        }
                        eprintln!(
                            "paver ingest {}: v{} gave partition(s) {partitions:?} up (inserted and committed up to {:?})",
                            spec.pipeline,
                            spec.version,
                            partitions.iter().filter_map(|p| position.get(p).map(|o| (p, o))).collect::<Vec<_>>()
                        );
                        for p in &partitions {
                            position.remove(p);
                        }
                        set_held(&held_partitions, status, partitions, false);
                        continue;
                    }
                    Work::Lost(_) => break Err(lost()),
                };
                status.update(|s| s.consumed += batch.consumed);
                let (records, bytes, started) = (batch.consumed, batch.rows.len(), Instant::now());
                // The lag is reported while the insert runs too: an insert retried while
                // ClickHouse cannot take it is when records wait (`onBacklog` alerts on it).
                let ingesting = shards::ingest(&sinks, batch);
                tokio::pin!(ingesting);
                let ingested = loop {
                    tokio::select! {
                        ingested = &mut ingesting => break ingested,
                        _ = tick.tick() => rates.update(status, consumer, spec, &position, &highs),
                    }
                };
                match ingested {
                    Ok(Ingested::Done(next)) => {
                        inserts += 1;
                        fault_pause(inserts, stop).await;
                        if stop.is_stopped() {
                            // In ClickHouse and in the ledger: the next start knows it.
                            break Ok(());
                        }
                        let inserted = started.elapsed();
                        commit(consumer, &spec.topic, &next).await;
                        tracing::debug!(
                            "{} v{}: batch of {records} records ({bytes} bytes of rows): waited {waited:?} for it, inserted in {inserted:?}, committed in {:?}",
                            spec.pipeline, spec.version, started.elapsed() - inserted
                        );
                        idle_since = Instant::now();
                        position.extend(next);
                        status.update(|s| s.last_error = None);
                    }
                    Ok(Ingested::Abandoned) if inserts_stop.is_stopped() && !stop.is_stopped() => {
                        break Err(lost())
                    }
                    Ok(Ingested::Abandoned) => break Ok(()),
                    Ok(Ingested::Taken(sink::Passed { partition, offset, ledger })) => {
                        break Err(IngestError::Kafka(format!(
                            "v{}: partition {partition} is another worker's now (the ledger has offset {ledger}, this batch starts at {offset}): not inserted, joining again",
                            spec.version
                        )))
                    }
                    Err(e) => break Err(e),
                }
            }
            _ = tick.tick() => rates.update(status, consumer, spec, &position, &highs),
            _ = stop.stopped() => break Ok(()),
            _ = inserts_stop.stopped() => break if stop.is_stopped() { Ok(()) } else { Err(lost()) },
        }
    };
    stop_consuming.stop();
    stop_watermarks.stop();
    drop(rx);
    consume.await?;
    watermarks.await?;
    stop_watching.stop();
    lost_watch.await?;
    rates.update(status, consumer, spec, &position, &highs);
    if options.partitions.is_none() {
        let held: Vec<i32> = held_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if !held.is_empty() {
            eprintln!(
                "paver ingest {}: v{} gave partition(s) {held:?} up, leaving the group (no insert of theirs in flight)",
                spec.pipeline, spec.version
            );
        }
    }
    outcome
}

/// Where partitions start, from the three places that know.
struct Starts<'a> {
    shards: &'a Shards,
    admin: &'a Kafka,
    spec: &'a IngestSpec,
}

impl Starts<'_> {
    /// The start of each of `partitions` that has one ([`start_offsets`]): read when the
    /// partitions are taken, after their previous owner inserted its last batch.
    async fn of(&self, partitions: &[i32]) -> Result<Offsets, IngestError> {
        let spec = self.spec;
        let count = partitions.iter().max().map_or(0, |m| m + 1);
        let own = self
            .admin
            .group_offsets(&spec.group, &spec.topic, count)
            .await
            .map_err(IngestError::Kafka)?;
        let previous = match &spec.previous_group {
            Some(g) => self
                .admin
                .group_offsets(g, &spec.topic, count)
                .await
                .map_err(IngestError::Kafka)?,
            None => Offsets::new(),
        };
        let ledger = self.shards.ledger_offsets(spec).await?;
        Ok(start_offsets(partitions, &own, &previous, &ledger))
    }

    /// The partitions with their starts (the beginning where none is known).
    fn list(
        &self,
        partitions: &[i32],
        starts: &Offsets,
    ) -> Result<TopicPartitionList, IngestError> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            let offset = starts
                .get(p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            list.add_partition_offset(&self.spec.topic, *p, offset)?;
        }
        Ok(list)
    }
}

/// Wait until every other worker of the pipeline with a fresh heartbeat runs this version
/// (or none is left); `Ok(false)` when stopped first.
async fn handover_done(
    options: &Options,
    spec: &IngestSpec,
    stop: &Stop,
) -> Result<bool, IngestError> {
    let mut said = false;
    loop {
        let outcome = handover::await_handover(
            &options.state,
            &spec.pipeline,
            Some(spec.version),
            Duration::from_millis(500),
        )
        .await?;
        match outcome {
            HandoverOutcome::Confirmed | HandoverOutcome::NoWorkers => return Ok(true),
            HandoverOutcome::TimedOut { worker, reported } => {
                if !said {
                    eprintln!(
                        "paver ingest {}: v{} waits for worker {worker} to leave {} before joining the group",
                        spec.pipeline,
                        spec.version,
                        reported.map_or("its version".to_string(), |v| format!("v{v}"))
                    );
                    said = true;
                }
            }
        }
        if stop.is_stopped() {
            return Ok(false);
        }
    }
}

/// Stops `inserts` once librdkafka says the assignment is lost, or the member must give
/// its partitions up ([`lease`]: frozen, or another worker claimed one).
async fn watch_lost(
    consumer: Arc<StreamConsumer<GroupContext>>,
    status: Status,
    inserts: Stopper,
    stop: Stop,
) {
    loop {
        if status.lease().lost().is_some() {
            inserts.stop();
            return;
        }
        if consumer.assignment_lost() {
            eprintln!(
                "paver ingest: the consumer group's assignment was lost: no insert starts any more"
            );
            inserts.stop();
            return;
        }
        if !stop.sleep(Duration::from_millis(200)).await {
            return;
        }
    }
}

/// The partitions a worker holds, for the lag and `paver status`.
type HeldPartitions = Arc<std::sync::Mutex<BTreeSet<i32>>>;

fn set_held(
    held: &HeldPartitions,
    status: &Status,
    partitions: impl IntoIterator<Item = i32>,
    taken: bool,
) {
    let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
    for p in partitions {
        if taken {
            held.insert(p);
        } else {
            held.remove(&p);
        }
    }
    status.set_partitions(Some(held.iter().copied().collect()));
}

/// The rate and the lag, as the status reports them.
struct Rates {
    at: Instant,
    inserted: u64,
}

impl Rates {
    fn new(status: &Status) -> Rates {
        Rates {
            at: Instant::now(),
            inserted: status.stats().inserted,
        }
    }

    fn update(
        &mut self,
        status: &Status,
        consumer: &StreamConsumer<GroupContext>,
        spec: &IngestSpec,
        position: &Offsets,
        highs: &Highs,
    ) {
        // Lag: per partition, the high watermark (the newest of the one last asked for and
        // the one librdkafka last saw in a fetch) minus the next offset to insert.
        let asked = highs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut lag = None;
        for (p, at) in position {
            let seen = cached_high_watermark(consumer, &spec.topic, *p);
            if let Some(high) = seen.into_iter().chain(asked.get(p).copied()).max() {
                *lag.get_or_insert(0) += (high - at).max(0);
            }
        }
        let elapsed = self.at.elapsed().as_secs_f64().max(0.001);
        let inserted = status.stats().inserted;
        let rate = inserted.saturating_sub(self.inserted) as f64 / elapsed;
        if elapsed >= 1.0 {
            self.at = Instant::now();
            self.inserted = inserted;
            status.update(|s| s.rows_per_sec = rate);
        }
        status.update(|s| s.lag = lag);
    }
}

/// Per partition, the high watermark last asked of the brokers.
type Highs = Arc<std::sync::Mutex<std::collections::BTreeMap<i32, i64>>>;

/// Ask the brokers for the partitions' high watermarks every 2 s until stopped.
async fn query_watermarks(
    consumer: Arc<StreamConsumer<GroupContext>>,
    topic: String,
    held: HeldPartitions,
    highs: Highs,
    stop: Stop,
) {
    loop {
        let partitions: Vec<i32> = held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for p in &partitions {
            let (c, t, p) = (consumer.clone(), topic.clone(), *p);
            let asked = tokio::task::spawn_blocking(move || {
                c.fetch_watermarks(&t, p, Duration::from_secs(5))
            })
            .await;
            // A broker that does not answer now leaves the last known value (the lag is
            // then what the fetches say).
            if let Ok(Ok((_, high))) = asked {
                highs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(p, high);
            }
        }
        if !stop.sleep(Duration::from_secs(2)).await {
            return;
        }
    }
}

/// The high watermark librdkafka last saw in a fetch response (no request is sent).
fn cached_high_watermark(
    consumer: &StreamConsumer<GroupContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
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
async fn fault_pause(inserts: usize, stop: &Stop) {
    let wanted = std::env::var("PAVER_FAULT_PAUSE_AFTER_INSERT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if wanted == Some(inserts) {
        eprintln!("paver ingest: PAVER_FAULT_PAUSE_AFTER_INSERT={inserts}: pausing");
        stop.sleep(Duration::from_secs(60)).await;
    }
}

async fn partitions_of(
    consumer: &Arc<StreamConsumer<GroupContext>>,
    topic: &str,
) -> Result<Vec<i32>, IngestError> {
    let c = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = c
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| IngestError::Kafka(format!("metadata of topic {topic}: {e}")))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| IngestError::Kafka(format!("topic {topic} not found")))?;
        if t.partitions().is_empty() {
            return Err(IngestError::Kafka(format!(
                "topic {topic} has no partitions (does it exist?)"
            )));
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    })
    .await?
}

/// Commit offsets after their insert. A failed commit is not fatal: the ledger knows what
/// was inserted.
async fn commit(consumer: &Arc<StreamConsumer<GroupContext>>, topic: &str, next: &Offsets) {
    if next.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (p, o) in next {
        if let Err(e) = list.add_partition_offset(topic, *p, Offset::Offset(*o)) {
            eprintln!(
                "paver ingest: committing offset {o} of partition {p}: {e} (the ledger has it)"
            );
            return;
        }
    }
    let c = consumer.clone();
    match tokio::task::spawn_blocking(move || c.commit(&list, CommitMode::Sync)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("paver ingest: committing offsets: {e} (the ledger has them)"),
        Err(e) => eprintln!("paver ingest: committing offsets: {e} (the ledger has them)"),
    }
}
