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

/// ClickHouse's exception codes that pass by themselves: timeouts, a table being altered
/// or read-only while ZooKeeper is away, too many parts/queries, a replica or distributed
/// DDL not answering, a network error between servers, memory limits.
const CLICKHOUSE_TRANSIENT: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    164, // READONLY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    225, // NO_ZOOKEEPER
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED (a node of a cluster is down)
    286, // UNFINISHED (distributed DDL)
    319, // UNKNOWN_STATUS_OF_INSERT
    473, // DEADLOCK_AVOIDED
    999, // KEEPER_EXCEPTION
];

/// ClickHouse's codes for "it exists already" or "it is not there": someone else moved.
const CLICKHOUSE_CONFLICT: &[u32] = &[
    57, // TABLE_ALREADY_EXISTS
    60, // UNKNOWN_TABLE
    81, // UNKNOWN_DATABASE
    82, // DATABASE_ALREADY_EXISTS
    15, // DUPLICATE_COLUMN
    16, // NO_SUCH_COLUMN_IN_TABLE
];

/// The code of a ClickHouse exception in an error text (`Code: 27, e.displayText() …`).
pub fn error_code(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

impl ProviderError {
    /// A ClickHouse client error, by the server's exception code; no code (connection
    /// refused, reset, a timeout of the HTTP client) is transient.
    pub fn from_clickhouse(text: String) -> ProviderError {
        match error_code(&text) {
            Some(code) if CLICKHOUSE_TRANSIENT.contains(&code) => ProviderError::transient(text),
            Some(code) if CLICKHOUSE_CONFLICT.contains(&code) => ProviderError::conflict(text),
            Some(_) => ProviderError::permanent(text),
            None => ProviderError::transient(text),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickhouse_errors_are_sorted_by_their_code() {
        let e = |t: &str| ProviderError::from_clickhouse(t.to_string()).kind;
        assert_eq!(
            e("Code: 242, e.displayText() = DB::Exception: Table is in readonly mode"),
            ErrorKind::Transient
        );
        assert_eq!(
            e("Code: 62, e.displayText() = DB::Exception: Syntax error"),
            ErrorKind::Permanent
        );
        assert_eq!(
            e("Code: 57, e.displayText() = DB::Exception: Table db.t already exists"),
            ErrorKind::Conflict
        );
        assert_eq!(
            e("network error: client error (Connect)"),
            ErrorKind::Transient
        );
    }
}
