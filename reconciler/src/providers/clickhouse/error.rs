//! What went wrong talking to ClickHouse, read once where it happens: the statement, the
//! server's exception code, whether an answer came at all. The error policy then reads
//! the code ([`ClickHouseError::kind`]) instead of searching message text.

use crate::error::{ErrorKind, ProviderError};

/// A ClickHouse statement that failed, or a state of the server a step cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The server refused the statement with an exception (`Code: 60. DB::Exception: …`).
    #[error("{message} (in `{statement}`)")]
    Server {
        code: u32,
        message: String,
        statement: String,
    },
    /// No answer: the connection was refused or reset, the HTTP client timed out, or
    /// something between paver and the server answered without a ClickHouse exception.
    #[error("{message} (in `{statement}`)")]
    Network { message: String, statement: String },
    /// An answer that is not what the statement returns.
    #[error("unexpected answer to `{statement}`: {why}")]
    Answer { statement: String, why: String },
    /// What the server has is not what the step needs (a sink without columns, a type
    /// without a default, a transform that does not render over the server's tables).
    #[error("{0}")]
    State(String),
    /// An `ON CLUSTER` statement that some nodes did not run in time.
    #[error("{source} (nodes of cluster {cluster} not answering: {down})")]
    NodesDown {
        source: Box<ClickHouseError>,
        cluster: String,
        down: String,
    },
    /// A step that failed, and what became of undoing what it made on the nodes that ran it.
    #[error("{source}; {undo}")]
    Undone {
        source: Box<ClickHouseError>,
        undo: String,
    },
    /// The same error, with what it was about in front.
    #[error("{context}: {source}")]
    Context {
        context: String,
        source: Box<ClickHouseError>,
    },
}

/// ClickHouse's exception codes that pass by themselves: timeouts, a table being altered
/// or read-only while ZooKeeper is away, too many parts/queries, a replica or distributed
/// DDL not answering, a network error between servers, memory limits.
const TRANSIENT: &[u32] = &[
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
const CONFLICT: &[u32] = &[
    57, // TABLE_ALREADY_EXISTS
    60, // UNKNOWN_TABLE
    81, // UNKNOWN_DATABASE
    82, // DATABASE_ALREADY_EXISTS
    15, // DUPLICATE_COLUMN
    16, // NO_SUCH_COLUMN_IN_TABLE
];

/// The code of a ClickHouse exception in the server's answer: `Code: 27, e.displayText()
/// = …` (18.16) or `Code: 27. DB::Exception: …` (current servers).
pub fn error_code(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

impl ClickHouseError {
    /// The client's error for `statement`: a server exception with its code, or no answer.
    pub fn from_client(e: &clickhouse::error::Error, statement: &str) -> ClickHouseError {
        let message = e.to_string();
        let statement = statement.to_string();
        match e {
            clickhouse::error::Error::BadResponse(text) => match error_code(text) {
                Some(code) => ClickHouseError::Server {
                    code,
                    message: text.trim_end().to_string(),
                    statement,
                },
                None => ClickHouseError::Network { message, statement },
            },
            _ => ClickHouseError::Network { message, statement },
        }
    }

    /// The server's exception code, if the server answered with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            ClickHouseError::Server { code, .. } => Some(*code),
            ClickHouseError::NodesDown { source, .. }
            | ClickHouseError::Undone { source, .. }
            | ClickHouseError::Context { source, .. } => source.code(),
            ClickHouseError::Network { .. }
            | ClickHouseError::Answer { .. }
            | ClickHouseError::State(_) => None,
        }
    }

    /// Whether trying again may help, by the server's code. Without one (no answer, an
    /// answer paver cannot read, a state of the server that may change): transient.
    pub fn kind(&self) -> ErrorKind {
        match self.code() {
            Some(code) if TRANSIENT.contains(&code) => ErrorKind::Transient,
            Some(code) if CONFLICT.contains(&code) => ErrorKind::Conflict,
            Some(_) => ErrorKind::Permanent,
            None => ErrorKind::Transient,
        }
    }

    /// The same error with what it was about in front.
    pub fn context(self, context: impl Into<String>) -> ClickHouseError {
        ClickHouseError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

impl From<ClickHouseError> for ProviderError {
    fn from(e: ClickHouseError) -> ProviderError {
        ProviderError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> ClickHouseError {
        let e = clickhouse::error::Error::BadResponse(text.to_string());
        ClickHouseError::from_client(&e, "SELECT 1")
    }

    #[test]
    fn errors_are_sorted_by_the_servers_code() {
        let cases = [
            (
                "Code: 242, e.displayText() = DB::Exception: Table is in readonly mode",
                Some(242),
                ErrorKind::Transient,
            ),
            (
                "Code: 62. DB::Exception: Syntax error: failed at position 1",
                Some(62),
                ErrorKind::Permanent,
            ),
            (
                "Code: 57, e.displayText() = DB::Exception: Table db.t already exists",
                Some(57),
                ErrorKind::Conflict,
            ),
            ("502 Bad Gateway", None, ErrorKind::Transient),
        ];
        for (text, code, kind) in cases {
            let e = server(text);
            assert_eq!((e.code(), e.kind()), (code, kind), "{text}");
            assert!(e.to_string().ends_with("(in `SELECT 1`)"), "{e}");
        }
        let refused = ClickHouseError::from_client(&clickhouse::error::Error::TimedOut, "SELECT 1");
        assert_eq!(
            (refused.code(), refused.kind()),
            (None, ErrorKind::Transient)
        );
    }

    #[test]
    fn a_wrapped_error_keeps_its_code_and_says_its_context_first() {
        let e = ClickHouseError::NodesDown {
            source: Box::new(server("Code: 159. DB::Exception: Watching task is executing longer than distributed_ddl_task_timeout")),
            cluster: "`c`".to_string(),
            down: "127.0.0.1:9133".to_string(),
        }
        .context("restoring the views db.v");
        assert_eq!((e.code(), e.kind()), (Some(159), ErrorKind::Transient));
        let text = e.to_string();
        assert!(
            text.starts_with("restoring the views db.v: Code: 159"),
            "{text}"
        );
        assert!(text.ends_with("not answering: 127.0.0.1:9133)"), "{text}");
        let p = ProviderError::from(e);
        assert_eq!(p.kind, ErrorKind::Transient);
        assert_eq!(p.message, text);
    }
}
