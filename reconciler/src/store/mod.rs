//! The state store: the revisions paver has seen, the journal of every step it ran (written
//! before and after each step, with the step's compensation), the inventory of what paver
//! created, the live pipeline versions, what the workers report, the notifications' outbox
//! and, with several replicas, the leader's lease. In an embedded SQLite file (the default)
//! or in PostgreSQL (`--state postgres://…`), behind the one API of [`Store`].
//!
//! Every write is its own transaction, committed before the step it records runs or after
//! it finished, so a process killed at any point leaves a journal that says exactly what
//! may have happened. A store [`Store::fenced`] with a leader's term refuses, in the
//! write's own transaction, any write once that term is over (see [`lease`]).
//!
//! The API is synchronous on both backends: each call is one short transaction, as SQLite's
//! were (a `FULL` fsync), and callers that must not block run it on a blocking thread. The
//! PostgreSQL connection lives on a thread of its own ([`postgres`]), so the same calls work
//! from blocking threads and from async code on any runtime.

pub mod lease;
mod migrations;
mod postgres;
mod records;
mod sqlite;
#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};

pub use lease::{Fence, LeaseRecord};
pub use postgres::schema_url as postgres_schema;
pub use records::{
    InventoryItem, JournalEntry, LiveRecord, PipelineStatus, RevisionRecord, RevisionStatus,
    StepState, WorkerRecord,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store (PostgreSQL): {}", postgres_words(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("state store: {location} is not a PostgreSQL connection string: {reason}")]
    Url { location: String, reason: String },
    #[error("state store (PostgreSQL): the connection's thread stopped")]
    Disconnected,
    #[error("state store: column {index} of `{sql}` is not {expected}")]
    Column {
        index: usize,
        expected: &'static str,
        sql: String,
    },
    #[error("state store: a journal entry does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("cannot create the state store's folder: {0}")]
    Io(#[from] std::io::Error),
    #[error("state store: it was migrated to version {found} by a newer paver (this one knows up to {known}); upgrade paver")]
    TooNew { found: i64, known: i64 },
    /// A fenced write after the leader's term ended: another replica leads.
    #[error("state store: the write was refused: this replica's term {term} of lease {lease} is over (the lease is at term {current}); another replica leads")]
    Deposed {
        lease: String,
        term: i64,
        current: i64,
    },
    #[error("{0}")]
    Recovery(String),
}

/// Where the state is: a SQLite file, or a PostgreSQL database.
///
/// `--state` takes either; a value that starts with `postgres://` or `postgresql://` is a
/// PostgreSQL connection string (libpq's URL form; `?sslmode=require` for TLS), anything else
/// a file path. Its `Display` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// The location `--state` names.
    pub fn of(state: &Path) -> Location {
        match state.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Location::Postgres(url.to_string())
            }
            _ => Location::Sqlite(state.to_path_buf()),
        }
    }

    /// Where this process keeps what is only a cache (the git mirrors): beside a SQLite
    /// file; with PostgreSQL, `$PAVER_CACHE_DIR`, else `paver` in the temporary folder (a
    /// replica needs no volume).
    pub fn cache_dir(&self) -> PathBuf {
        match self {
            Location::Sqlite(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            Location::Postgres(_) => std::env::var_os("PAVER_CACHE_DIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| std::env::temp_dir().join("paver"), PathBuf::from),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A PostgreSQL error with its causes: a refused certificate in words (the client says
/// only that the handshake failed).
fn postgres_words(e: &::postgres::Error) -> String {
    match crate::tls::problem(e) {
        Some(problem) => {
            format!("{e}: {problem} (the CA file is the connection string's `sslrootcert`)")
        }
        None => crate::registry::error_chain(e),
    }
}

/// A connection string with its password (in the user part or as `password=`) replaced by
/// `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A value bound to, or read from, a statement: the few types the store's tables hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// `params![a, b]`: the values of a statement.
macro_rules! params {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::Value::from($v)),*] };
}
pub(crate) use params;

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn column(&self, index: usize, expected: &'static str) -> StoreError {
        StoreError::Column {
            index,
            expected,
            sql: format!("{:?}", self.0.get(index)),
        }
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Ok(Some(*v)),
            Some(Value::Null) => Ok(None),
            _ => Err(self.column(i, "an integer")),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| self.column(i, "an integer"))
    }

    pub(crate) fn real(&self, i: usize) -> Result<f64, StoreError> {
        match self.0.get(i) {
            Some(Value::Real(v)) => Ok(*v),
            Some(Value::Int(v)) => Ok(*v as f64),
            _ => Err(self.column(i, "a number")),
        }
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.0.get(i) {
            Some(Value::Text(v)) => Ok(Some(v.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(self.column(i, "text")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| self.column(i, "text"))
    }
}

/// A statement in the store's dialect: SQLite's, with `?N` parameters, and `{now}` (the
/// time as ISO 8601 text, UTC, milliseconds), `{now_ms}` (Unix milliseconds, the database's
/// clock) and `{for_share}` (a row lock, PostgreSQL only) for what the backends say
/// differently.
pub(crate) type Statement = (&'static str, Vec<Value>);

/// A connection to one of the backends.
pub(crate) enum Db {
    Sqlite(sqlite::Db),
    Postgres(postgres::Db),
}

impl Db {
    /// Run `statements` in one transaction (when there are several, or a fence), after
    /// checking the fence in it; the rows each returned.
    fn run(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        match self {
            Db::Sqlite(db) => db.run(fence, statements),
            Db::Postgres(db) => db.run(fence, statements),
        }
    }
}

/// The state store.
pub struct Store {
    db: Db,
    location: Location,
    /// The leader's term every write carries (and is refused without).
    fence: Option<Fence>,
}

impl Store {
    /// Open the store `--state` names (a SQLite file is created with its folder; a
    /// PostgreSQL database must exist). Migrates it to the current version.
    pub fn open(state: &Path) -> Result<Store, StoreError> {
        Store::at(&Location::of(state))
    }

    /// Open the store at `location`. PostgreSQL connections are shared within the process
    /// (one per connection string, opened and migrated once).
    pub fn at(location: &Location) -> Result<Store, StoreError> {
        let db = match location {
            Location::Sqlite(path) => Db::Sqlite(sqlite::Db::open(path)?),
            Location::Postgres(url) => Db::Postgres(postgres::Db::shared(url)?),
        };
        Ok(Store {
            db,
            location: location.clone(),
            fence: None,
        })
    }

    /// A store on a connection of its own (the leader election's, so that its renewals
    /// never wait behind other calls).
    pub fn at_own_connection(location: &Location) -> Result<Store, StoreError> {
        let db = match location {
            Location::Sqlite(path) => Db::Sqlite(sqlite::Db::open(path)?),
            Location::Postgres(url) => Db::Postgres(postgres::Db::connect(url)?),
        };
        Ok(Store {
            db,
            location: location.clone(),
            fence: None,
        })
    }

    /// The same store whose writes carry `fence`'s term and are refused once it is over.
    pub fn fenced(mut self, fence: Option<Fence>) -> Store {
        self.fence = fence;
        self
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The term the writes carry, if fenced.
    pub(crate) fn term(&self) -> Option<i64> {
        self.fence.as_ref().map(|f| f.term)
    }

    /// A read (no transaction, no fence).
    pub(crate) fn read(
        &self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self
            .db
            .run(None, vec![(sql, params)])?
            .into_iter()
            .flatten()
            .collect())
    }

    /// A write, checked against the fence in its transaction.
    pub(crate) fn write(
        &self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self
            .db
            .run(self.fence.as_ref(), vec![(sql, params)])?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Several writes in one transaction, checked against the fence.
    pub(crate) fn write_all(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        self.db.run(self.fence.as_ref(), statements)?;
        Ok(())
    }

    /// Whether the fence's term is still the lease's (always, unfenced): checked before a
    /// compensation runs, which is journaled only after it ran.
    pub fn check_fence(&self) -> Result<(), StoreError> {
        match &self.fence {
            Some(fence) => self.db.run(Some(fence), Vec::new()).map(|_| ()),
            None => Ok(()),
        }
    }

    /// A write that is never fenced (the lease itself, what workers report).
    pub(crate) fn write_unfenced(
        &self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        self.read(sql, params)
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
