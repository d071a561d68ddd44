//! The error policy's vocabulary: what went wrong when a step ran against a real system,
//! and whether trying again can help (kube-rs keeps `reconcile` and `error_policy` apart
//! the same way). Providers say the kind; the server loop decides what to do with it.

use serde::{Deserialize, Serialize};

/// Whether a failure may pass by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The server is down or slow, a replica or ZooKeeper is away, a table is being
    /// altered: the same revision is tried again, with capped exponential backoff.
    Transient,
    /// The revision itself cannot be applied as it is (a statement the server refuses,
    /// a value it rejects, authentication): waits for a new revision or `paver retry`.
    Permanent,
    /// Someone else changed what the step was about (it exists already, or is gone):
    /// like a permanent failure, waits; the next plan sees the new state.
    Conflict,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Conflict => "conflict",
        }
    }

    /// Whether trying the same revision again may succeed.
    pub fn retryable(self) -> bool {
        self == ErrorKind::Transient
    }
}

/// A step that failed against a real system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProviderError {
    pub fn transient(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::Permanent,
            message: message.into(),
        }
    }
    pub fn conflict(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::Conflict,
            message: message.into(),
        }
    }

    /// The same error with what it was about in front.
    pub fn context(self, what: impl std::fmt::Display) -> ProviderError {
        ProviderError {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl ProviderError {
    /// A Kafka client error, by librdkafka's error code.
    pub fn from_kafka(code: rdkafka::types::RDKafkaErrorCode, text: String) -> ProviderError {
        use rdkafka::types::RDKafkaErrorCode as C;
        match code {
            C::TopicAlreadyExists | C::UnknownTopicOrPartition | C::UnknownTopic => {
                ProviderError::conflict(text)
            }
            C::RequestTimedOut
            | C::OperationTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::NotController
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::ThrottlingQuotaExceeded
            | C::Resolve => ProviderError::transient(text),
            _ => ProviderError::permanent(text),
        }
    }
}
