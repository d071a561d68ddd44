//! The PostgreSQL backend.
//!
//! A connection lives on a thread of its own, driven by the blocking `postgres` client
//! (tokio-postgres under its own small runtime); callers hand it a job and wait for the
//! answer on a channel. Why a thread: the store's API is synchronous (each call is one short
//! transaction, as SQLite's fsync'd ones are) and is called from blocking threads, from
//! async code on the multi-threaded runtime, and from current-thread runtimes in tests; a
//! client that blocks on a runtime of its own panics inside another runtime, a channel to a
//! thread does not. The thread reconnects when the connection dropped; statements are
//! prepared once per connection.
//!
//! Connections are shared within a process, one per connection string ([`Db::shared`]):
//! opening the store for every status request or reconcile costs nothing. The leader
//! election has its own ([`Db::connect`]).
//!
//! TLS: with `sslmode=require` (or libpq's `verify-ca`/`verify-full`) the connection is
//! TLS by rustls, the server's certificate verified against `sslrootcert` (else the
//! system's CAs) and for the host connected to, with a client certificate from
//! `sslcert`/`sslkey` where given: libpq's names, read from the connection string (the
//! `postgres` crate knows none of them). Otherwise it is plain, as libpq's `disable`; the
//! default `prefer` is plain too (libpq's `prefer` takes an unverified TLS, which paver
//! does not do).

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Config};

use super::{migrations, Fence, Row, Statement, StoreError, Value};

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// A handle on a connection's thread.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
}

/// The connection, as its thread holds it.
struct Conn {
    config: Config,
    tls: Tls,
    client: Option<Client>,
    statements: HashMap<String, postgres::Statement>,
}

/// How a connection is made.
#[derive(Clone)]
enum Tls {
    Plain,
    Verified(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Tls {
    fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Plain => config.connect(postgres::NoTls),
            Tls::Verified(tls) => config.connect(tls.clone()),
        }
    }
}

/// libpq's TLS settings in a connection string, which the `postgres` crate does not read:
/// the string without them (`verify-ca`/`verify-full` as `require`, which paver verifies
/// fully), and the files they name.
fn tls_settings(url: &str) -> (String, crate::model::connections::Tls) {
    let mut files = crate::model::connections::Tls::default();
    let mut keep = |key: &str, value: &str| -> Option<String> {
        let path = || {
            Some(std::path::PathBuf::from(
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned(),
            ))
        };
        match key {
            "sslrootcert" => files.ca_file = path(),
            "sslcert" => files.cert_file = path(),
            "sslkey" => files.key_file = path(),
            "sslmode" if value == "verify-ca" || value == "verify-full" => {
                return Some("sslmode=require".to_string())
            }
            _ => return Some(format!("{key}={value}")),
        }
        None
    };
    let url = match url.split_once('?') {
        Some((base, query)) if url.contains("://") => {
            let kept: Vec<String> = query
                .split('&')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    keep(k, v)
                })
                .collect();
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        Some(_) | None if url.contains("://") => url.to_string(),
        // `host=… sslmode=…`: key=value pairs.
        _ => url
            .split_whitespace()
            .filter_map(|pair| match pair.split_once('=') {
                Some((k, v)) => keep(k, v),
                None => Some(pair.to_string()),
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    (url, files)
}

/// The client's configuration and how it connects, from a connection string.
fn config_of(url: &str) -> Result<(Config, Tls), StoreError> {
    let bad = |reason: String| StoreError::Url {
        location: super::redact(url),
        reason,
    };
    let (parsed, files) = tls_settings(url);
    let config: Config = parsed
        .parse()
        .map_err(|e: postgres::Error| bad(e.to_string()))?;
    let tls = match config.get_ssl_mode() {
        postgres::config::SslMode::Require => {
            Tls::Verified(tokio_postgres_rustls::MakeRustlsConnect::new(
                crate::tls::client_config(&files).map_err(|e| bad(e.to_string()))?,
            ))
        }
        _ => Tls::Plain,
    };
    Ok((config, tls))
}

static SHARED: OnceLock<Mutex<HashMap<String, Db>>> = OnceLock::new();

impl Db {
    /// The process's connection to `url`, opened and migrated on first use.
    pub fn shared(url: &str) -> Result<Db, StoreError> {
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(db) = shared.get(url) {
            return Ok(db.clone());
        }
        let db = Db::connect(url)?;
        shared.insert(url.to_string(), db.clone());
        Ok(db)
    }

    /// A new connection to `url`, on a thread of its own, migrated.
    pub fn connect(url: &str) -> Result<Db, StoreError> {
        let (mut config, tls) = config_of(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.keepalives(true);
        if let Ok(password) = std::env::var("PAVER_STATE_PASSWORD") {
            if config.get_password().is_none() && !password.is_empty() {
                config.password(password);
            }
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("paver-postgres".to_string())
            .spawn(move || {
                let mut conn = Conn {
                    config,
                    tls,
                    client: None,
                    statements: HashMap::new(),
                };
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })?;
        let db = Db { jobs };
        db.call(|conn| conn.migrate())?;
        Ok(db)
    }

    /// Run `f` on the connection's thread and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |conn: &mut Conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::Disconnected)?;
        rx.recv().map_err(|_| StoreError::Disconnected)?
    }

    pub fn run(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        let fence = fence.cloned();
        self.call(move |conn| {
            let result = conn.run(fence.as_ref(), statements);
            if let Err(StoreError::Postgres(e)) = &result {
                // A broken connection is made anew by the next call.
                if e.is_closed() || conn.client.as_ref().is_some_and(Client::is_closed) {
                    conn.client = None;
                }
            }
            result
        })
    }
}

/// A statement of the store's dialect, as PostgreSQL says it: `$N` parameters.
fn dialect(sql: &str) -> String {
    let sql = sql
        .replace(
            "{now}",
            r#"to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#,
        )
        .replace(
            "{now_ms}",
            "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        )
        .replace("{for_share}", "FOR SHARE");
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl Conn {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(self.tls.connect(&self.config)?);
        }
        self.client.as_mut().ok_or(StoreError::Disconnected)
    }

    /// Bring the database to the newest version, in one transaction under an advisory lock
    /// (replicas that start together migrate once).
    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client()?.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(7203114119)", &[])?;
        tx.batch_execute(
            r#"CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT (to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
            )"#,
        )?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0);
        if current > migrations::latest() {
            return Err(StoreError::TooNew {
                found: current,
                known: migrations::latest(),
            });
        }
        for (version, sql) in migrations::POSTGRES.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn run(
        &mut self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        self.client()?;
        let Conn {
            client,
            statements: cache,
            ..
        } = self;
        let client = client.as_mut().ok_or(StoreError::Disconnected)?;
        if fence.is_none() && statements.len() == 1 {
            return statements
                .into_iter()
                .map(|(sql, params)| query(client, cache, sql, params))
                .collect();
        }
        let mut tx = client.transaction()?;
        if let Some(fence) = fence {
            let rows = query(
                &mut tx,
                cache,
                super::lease::CURRENT_TERM,
                super::params![&fence.lease],
            )?;
            fence.check(rows.first())?;
        }
        let out = statements
            .into_iter()
            .map(|(sql, params)| query(&mut tx, cache, sql, params))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(out)
    }
}

/// Run one statement (prepared once per connection) and read its rows.
fn query(
    client: &mut impl postgres::GenericClient,
    cache: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<Row>, StoreError> {
    let statement = match cache.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = client.prepare(&dialect(sql))?;
            cache.insert(sql.to_string(), s.clone());
            s
        }
    };
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    client
        .query(&statement, &refs)?
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| read(row, i, sql))
                .collect::<Result<Vec<_>, _>>()
                .map(Row)
        })
        .collect()
}

fn read(row: &postgres::Row, i: usize, sql: &str) -> Result<Value, StoreError> {
    let ty = row.columns()[i].type_().clone();
    let value = if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into()))
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into()))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into()))
    } else if ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
    } else if ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(i)?
            .map(|v| Value::Real(v.into()))
    } else if ty == Type::TEXT || ty == Type::VARCHAR || ty == Type::NAME {
        row.try_get::<_, Option<String>>(i)?.map(Value::Text)
    } else {
        return Err(StoreError::Column {
            index: i,
            expected: "a type the store reads (integer, number, text)",
            sql: format!("{sql} ({ty})"),
        });
    };
    Ok(value.unwrap_or(Value::Null))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Real(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A schema of its own, made in the database at `base`, and the connection string whose
/// tables live in it: for tests (and deployments) that share one database.
pub fn schema_url(base: &str, name: &str) -> Result<String, StoreError> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let schema = format!(
        "paver_{clean}_{}_{}_{}",
        std::process::id(),
        super::now_ms() % 1_000_000_000,
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let (config, tls) = config_of(base)?;
    let create = format!("CREATE SCHEMA \"{schema}\"");
    // On a thread of its own: the blocking client must not run inside a runtime.
    std::thread::spawn(move || -> Result<(), StoreError> {
        let mut client = tls.connect(&config)?;
        client.batch_execute(&create)?;
        Ok(())
    })
    .join()
    .map_err(|_| StoreError::Disconnected)??;
    Ok(with_query(
        base,
        &format!("options=-csearch_path%3D{schema}"),
    ))
}

/// `url` with `query` (`key=value&…`) added to its query string.
pub(crate) fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_settings_are_taken_out_of_the_connection_string() {
        let (url, files) = tls_settings(
            "postgres://u:p@db:5432/paver?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&sslcert=/c.pem&sslkey=/c.key&options=-csearch_path%3Dx",
        );
        assert_eq!(
            url,
            "postgres://u:p@db:5432/paver?sslmode=require&options=-csearch_path%3Dx"
        );
        assert_eq!(
            files.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(
            files.cert_file.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        assert_eq!(
            files.key_file.as_deref(),
            Some(std::path::Path::new("/c.key"))
        );
        let (url, files) = tls_settings("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(url, "host=db user=u sslmode=require");
        assert_eq!(
            files.ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        let (url, files) = tls_settings("postgres://db/paver?sslrootcert=/ca.pem");
        assert_eq!(url, "postgres://db/paver");
        assert!(files.cert_file.is_none());
        assert_eq!(tls_settings("postgres://db/paver").0, "postgres://db/paver");
    }
}
