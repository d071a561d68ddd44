//! Kafka's consumer-group protocol, as a worker takes part in it: the rebalance callback
//! records what the group coordinator decided, and the worker answers it later, in order,
//! from its own loop.
//!
//! librdkafka waits, in the middle of a rebalance, until the application calls
//! `assign`/`unassign` (or their incremental forms): the group does not move on before.
//! So the callback ([`GroupContext::rebalance`]) does not answer; it queues a [`Change`]
//! for the consume loop, which sends it down the same queue as the batches. The insert
//! loop meets it after every batch read before it:
//!
//! - a **revocation** is answered once the batches before it are inserted and their
//!   offsets committed (or abandoned, when the worker stops): when the partitions are given
//!   up, no insert of theirs is in flight or can start here any more, and the next owner
//!   starts after what this one inserted (its committed offset, or the ledger + 1);
//! - an **assignment** is answered with each partition's start, the furthest of the
//!   group's committed offset, the ledger + 1 and the previous version's position
//!   ([`super::offsets::start_offsets`]), read after the previous owner gave it up.
//!
//! A **lost** assignment (the session timed out, or the member was fenced) ends the run of
//! the version: the partitions may already be someone else's, so nothing read is inserted
//! or committed any more, and the worker joins again.
//!
//! Both protocols are handled: `cooperative-sticky` (only the partitions that move are
//! revoked and assigned) and the eager ones (`range`, `roundrobin`: every member gives up
//! everything, then gets its new share).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

use crate::providers::kafka::Context as LogContext;

/// What the group coordinator decided for this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These partitions are now this member's (eager: its whole assignment).
    Assign(Vec<i32>),
    /// Give these partitions up (eager: everything).
    Revoke(Vec<i32>),
    /// These partitions were taken away without asking (session timeout, fenced): they
    /// may already be another member's.
    Lost(Vec<i32>),
}

/// A change and the protocol it came under (which call answers it).
#[derive(Debug, Clone)]
struct Decision {
    change: Change,
    partitions: TopicPartitionList,
    cooperative: bool,
}

#[derive(Debug, Default)]
struct Pending {
    /// Decided, not yet seen by the consume loop.
    new: VecDeque<Change>,
    /// Decided, not yet answered (the answers are given in this order).
    unanswered: VecDeque<Decision>,
    /// The worker is closing: answer at once (nothing is inserted any more).
    closing: bool,
}

/// The rebalance decisions of one consumer, shared by the callback and the worker.
#[derive(Debug, Default)]
pub struct Rebalances {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
}

impl Rebalances {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes decided since the last call, oldest first.
    pub fn take_new(&self) -> Vec<Change> {
        self.lock().new.drain(..).collect()
    }

    /// Resolves when a change may be waiting (see [`Rebalances::take_new`]).
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Answer the oldest unanswered change, which must be `change`. An assignment is
    /// answered with `starts` (the partitions and their offsets); a revocation or a loss
    /// gives the partitions up.
    pub fn answer<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        change: &Change,
        starts: Option<&TopicPartitionList>,
    ) -> KafkaResult<()> {
        let decision = {
            let mut pending = self.lock();
            match pending.unanswered.front() {
                Some(d) if &d.change == change => pending.unanswered.pop_front(),
                _ => None,
            }
        };
        let Some(decision) = decision else {
            // Already answered when closing.
            return Ok(());
        };
        let starts = starts.unwrap_or(&decision.partitions);
        match (&decision.change, decision.cooperative) {
            (Change::Assign(_), true) => consumer.incremental_assign(starts),
            (Change::Assign(_), false) => consumer.assign(starts),
            (_, true) => consumer.incremental_unassign(&decision.partitions),
            (_, false) => consumer.unassign(),
        }
    }

    /// From now on changes are answered at once, and every one not answered yet is
    /// answered now (in order): the worker inserts nothing any more, so the consumer can
    /// leave the group when it is dropped.
    pub fn close<C: ConsumerContext>(&self, consumer: &impl Consumer<C>) {
        let unanswered: Vec<Decision> = {
            let mut pending = self.lock();
            pending.closing = true;
            pending.new.clear();
            pending.unanswered.drain(..).collect()
        };
        for d in unanswered {
            let answered = match (&d.change, d.cooperative) {
                (Change::Assign(_), true) => consumer.incremental_assign(&d.partitions),
                (Change::Assign(_), false) => consumer.assign(&d.partitions),
                (_, true) => consumer.incremental_unassign(&d.partitions),
                (_, false) => consumer.unassign(),
            };
            if let Err(e) = answered {
                tracing::warn!("answering the group's {:?} while closing: {e}", d.change);
            }
        }
    }
}

/// The context of a group member: librdkafka's log as every client of paver has it, and
/// the rebalance decisions kept for the worker.
#[derive(Default)]
pub struct GroupContext {
    log: LogContext,
    pub rebalances: Arc<Rebalances>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message)
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(error, reason)
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let cooperative = matches!(base.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let change = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Change::Assign(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if base.assignment_lost() => {
                Change::Lost(partitions)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Change::Revoke(partitions),
            other => {
                // librdkafka's advice: treat a rebalance error as the loss of everything.
                tracing::warn!("the consumer group's rebalance failed: {other:?}");
                let all = base
                    .assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_else(|_| partitions.clone());
                Change::Lost(all)
            }
        };
        let decision = Decision {
            change: change.clone(),
            partitions: tpl.clone(),
            cooperative,
        };
        let mut pending = self.rebalances.lock();
        if pending.closing {
            drop(pending);
            let answered = match (&decision.change, cooperative) {
                (Change::Assign(_), true) => base.incremental_assign(tpl),
                (Change::Assign(_), false) => base.assign(tpl),
                (_, true) => base.incremental_unassign(tpl),
                (_, false) => base.unassign(),
            };
            if let Err(e) = answered {
                tracing::warn!("answering the group's {change:?} while closing: {e}");
            }
            return;
        }
        pending.new.push_back(change);
        pending.unanswered.push_back(decision);
        drop(pending);
        self.rebalances.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_seen_once_and_answered_in_order() {
        let r = Rebalances::default();
        {
            let mut p = r.lock();
            for change in [Change::Assign(vec![0, 1]), Change::Revoke(vec![1])] {
                p.new.push_back(change.clone());
                p.unanswered.push_back(Decision {
                    change,
                    partitions: TopicPartitionList::new(),
                    cooperative: true,
                });
            }
        }
        assert_eq!(
            r.take_new(),
            [Change::Assign(vec![0, 1]), Change::Revoke(vec![1])]
        );
        assert!(r.take_new().is_empty());
        assert_eq!(r.lock().unanswered.len(), 2);
    }
}
