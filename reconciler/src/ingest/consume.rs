//! The consume loop of a worker: records into batches ([`super::batch`]), handed to the
//! insert loop over a bounded queue (a slow or stopped ClickHouse stops consumption
//! instead of growing memory), with the consumer group's decisions ([`super::group`]) in
//! the same queue, in the order they happened between the records.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use tokio::sync::mpsc;

use super::batch::{Batch, Batcher};
use super::group::{Change, GroupContext, Rebalances};
use super::registry;
use super::rows::Decoder;
use super::stop::Stop;
use super::worker::Options;
use crate::registry::SchemaRegistry;

/// What the insert loop receives, in order.
#[derive(Debug)]
pub enum Work {
    /// Records to insert, then commit.
    Batch(Batch),
    /// The group gave this member these partitions: start them and answer.
    Assign(Vec<i32>),
    /// The group takes these partitions back: every batch before this is inserted and
    /// committed (none after it holds their records), so answer.
    Revoke(Vec<i32>),
    /// The partitions were taken away without asking: stop inserting.
    Lost(Vec<i32>),
}

/// Which partitions the consume loop takes records of.
pub enum Held {
    /// A static assignment: every record the consumer reads.
    All,
    /// A group member: the partitions assigned and not revoked, as the loop last heard.
    Group {
        rebalances: Arc<Rebalances>,
        partitions: BTreeSet<i32>,
    },
}

/// Consume into batches until stopped; a full queue blocks (backpressure). A record in
/// the Confluent wire format with a schema id not seen yet waits for the Schema Registry's
/// definitive answer (a registry that cannot answer now is asked again, the record is not
/// dead-lettered for it).
///
/// A revocation first closes the batch in progress (its records are read before the
/// revocation and go first), then is passed on; records of partitions not held any more
/// (read ahead before the revocation was answered) are dropped: the next owner reads them.
pub async fn consume_loop(
    consumer: Arc<StreamConsumer<GroupContext>>,
    mut decoder: Decoder,
    registry: Option<SchemaRegistry>,
    options: Options,
    mut held: Held,
    tx: mpsc::Sender<Work>,
    stop: Stop,
) {
    let mut batcher = Batcher::new(options.limits());
    loop {
        if stop.is_stopped() {
            return;
        }
        if let Held::Group {
            rebalances,
            partitions,
        } = &mut held
        {
            for change in rebalances.take_new() {
                let work = match change {
                    Change::Assign(ps) => {
                        partitions.extend(ps.iter().copied());
                        Work::Assign(ps)
                    }
                    Change::Revoke(ps) => {
                        if !batcher.is_empty()
                            && !send(&tx, Work::Batch(batcher.take()), &stop).await
                        {
                            return;
                        }
                        for p in &ps {
                            partitions.remove(p);
                        }
                        Work::Revoke(ps)
                    }
                    Change::Lost(ps) => {
                        for p in &ps {
                            partitions.remove(p);
                        }
                        Work::Lost(ps)
                    }
                };
                if !send(&tx, work, &stop).await {
                    return;
                }
            }
        }
        let wait = batcher.wait(Instant::now(), Duration::from_millis(500));
        let rebalanced = async {
            match &held {
                Held::Group { rebalances, .. } => rebalances.changed().await,
                Held::All => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            m = consumer.recv() => Some(m),
            _ = tokio::time::sleep(wait) => None,
            _ = rebalanced => None,
            _ = stop.stopped() => return,
        };
        match received {
            Some(Ok(m)) => {
                let partition = m.partition();
                let ours = match &held {
                    Held::All => true,
                    Held::Group { partitions, .. } => partitions.contains(&partition),
                };
                if ours {
                    if let (Some(payload), Some(client)) = (m.payload(), &registry) {
                        if let Some(id) = decoder.unknown_id(payload) {
                            match registry::resolve(client, id, &stop).await {
                                Ok(answer) => decoder.learn(id, answer),
                                Err(_) => return,
                            }
                        }
                    }
                    let offset = m.offset();
                    batcher.add(
                        partition,
                        offset,
                        m.key(),
                        m.payload(),
                        Instant::now(),
                        |payload, out| decoder.row(payload, partition, offset, out),
                    );
                }
            }
            Some(Err(e)) => {
                eprintln!("paver ingest {}: consuming: {e}", options.pipeline);
                if !stop.sleep(Duration::from_millis(200)).await {
                    return;
                }
            }
            None => {}
        }
        if batcher.ready(Instant::now()) && !send(&tx, Work::Batch(batcher.take()), &stop).await {
            return;
        }
    }
}

/// Blocks while the queue is full (backpressure); `false` when stopped or the insert loop
/// is gone.
async fn send(tx: &mpsc::Sender<Work>, work: Work, stop: &Stop) -> bool {
    tokio::select! {
        sent = tx.send(work) => sent.is_ok(),
        _ = stop.stopped() => false,
    }
}
