//! The dead-letter topic of a pipeline: records that cannot be decoded or that ClickHouse
//! rejects, with the reason and their source in headers. A record is written before the
//! offsets that pass it are committed, so none is lost (a crash may write one twice).
//!
//! Writing is bounded: a few attempts with a growing pause, each bounded by the producer's
//! delivery timeout, and the stop token ends the wait at once. A topic that does not take
//! the record is an error of the batch (it is neither committed nor lost: the next run
//! reads it again), never a worker that hangs on shutdown.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::batch::Dead;
use super::spec::IngestSpec;
use super::stop::{Backoff, Stop};

/// Why a dead letter was not written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(
        "the dead-letter topic {topic} did not take a record after {attempts} attempts: {last}"
    )]
    Unavailable {
        topic: String,
        attempts: u32,
        last: rdkafka::error::KafkaError,
    },
    #[error("stopped before the dead letter was written")]
    Stopped,
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_pause: Duration::from_millis(200),
            max_pause: Duration::from_secs(5),
        }
    }
}

/// A producer for dead letters, from the settings every Kafka client of the cluster starts
/// from (security included); `delivery` bounds each attempt (librdkafka's
/// `message.timeout.ms`).
pub fn producer(
    mut base: ClientConfig,
    delivery: Duration,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    base.set("message.timeout.ms", delivery.as_millis().to_string())
        .create()
}

/// Where a pipeline version's dead letters go.
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    pipeline: String,
    version: String,
    source: String,
    retry: Retry,
}

impl DeadLetters {
    pub fn new(producer: FutureProducer, spec: &IngestSpec, retry: Retry) -> DeadLetters {
        DeadLetters {
            producer,
            topic: spec.dead_letter_topic.clone(),
            pipeline: spec.pipeline.clone(),
            version: spec.version.to_string(),
            source: spec.topic.clone(),
            retry,
        }
    }

    fn headers(&self, d: &Dead) -> OwnedHeaders {
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        let fields = [
            ("paver.error", d.reason.as_str()),
            ("paver.pipeline", self.pipeline.as_str()),
            ("paver.version", self.version.as_str()),
            ("paver.source.topic", self.source.as_str()),
            ("paver.source.partition", partition.as_str()),
            ("paver.source.offset", offset.as_str()),
        ];
        fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(*value),
            })
        })
    }

    /// Write one dead letter: delivered, given up after the attempts, or stopped.
    pub async fn send(&self, d: &Dead, stop: &Stop) -> Result<(), DeadLetterError> {
        let headers = self.headers(d);
        let mut backoff = Backoff::new(self.retry.first_pause, self.retry.max_pause);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers.clone());
            if let Some(k) = &d.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &d.payload {
                record = record.payload(p.as_slice());
            }
            // The wait for room in librdkafka's queue is bounded too.
            let sent = tokio::select! {
                sent = self.producer.send(record, Duration::from_secs(5)) => sent,
                _ = stop.stopped() => return Err(DeadLetterError::Stopped),
            };
            let error = match sent {
                Ok(_) => return Ok(()),
                Err((e, _)) => e,
            };
            if attempt >= self.retry.attempts {
                return Err(DeadLetterError::Unavailable {
                    topic: self.topic.clone(),
                    attempts: attempt,
                    last: error,
                });
            }
            eprintln!(
                "paver ingest {}: writing to the dead-letter topic {}: {error}; attempt {attempt} of {}",
                self.pipeline, self.topic, self.retry.attempts
            );
            if !stop.sleep(backoff.pause()).await {
                return Err(DeadLetterError::Stopped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> IngestSpec {
        serde_json::from_value(serde_json::json!({
            "pipeline": "p", "version": 1, "topic": "t", "group": "g", "previous_group": null,
            "dead_letter_topic": "t-dlq",
            "staging": {"database": "d", "name": "s"}, "views": [],
            "ledger": {"database": "d", "name": "l"},
            "columns": [], "reader": "{}", "writers": []
        }))
        .unwrap()
    }

    fn dead() -> Dead {
        Dead {
            partition: 0,
            offset: 7,
            key: None,
            payload: Some(b"x".to_vec()),
            reason: "bad".to_string(),
        }
    }

    /// A broker address where nothing listens: no record is ever delivered.
    fn nowhere() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("127.0.0.1:{port}")
    }

    fn base(brokers: &str) -> ClientConfig {
        crate::providers::kafka::client_config(
            &crate::model::connections::Kafka::plain(brokers),
            &|_| None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_topic_that_never_takes_the_record_is_an_error_after_the_attempts() {
        let producer = producer(base(&nowhere()), Duration::from_millis(300)).unwrap();
        let retry = Retry {
            attempts: 2,
            first_pause: Duration::from_millis(10),
            max_pause: Duration::from_millis(10),
        };
        let letters = DeadLetters::new(producer, &spec(), retry);
        let (_stopper, stop) = Stop::new();
        let result = letters.send(&dead(), &stop).await;
        assert!(
            matches!(result, Err(DeadLetterError::Unavailable { attempts: 2, ref topic, .. }) if topic == "t-dlq"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_shutdown_ends_the_wait_for_a_dead_letter() {
        // Each attempt would wait an hour: only the stop token ends it.
        let producer = producer(base(&nowhere()), Duration::from_secs(3600)).unwrap();
        let letters = DeadLetters::new(producer, &spec(), Retry::default());
        let (stopper, stop) = Stop::new();
        let sending = tokio::spawn(async move { letters.send(&dead(), &stop).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stopper.stop();
        assert!(matches!(
            sending.await.unwrap(),
            Err(DeadLetterError::Stopped)
        ));
    }
}
