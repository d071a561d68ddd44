//! The SQLite backend: one embedded file, WAL (readers never block the writer), `FULL`
//! sync (a journal entry is on disk before the step it announces runs).

use std::path::Path;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, TransactionBehavior};

use super::{migrations, Fence, Row, Statement, StoreError, Value};

pub struct Db {
    conn: Connection,
}

/// A statement of the store's dialect, as SQLite says it.
fn dialect(sql: &str) -> String {
    sql.replace("{now}", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        .replace(
            "{now_ms}",
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        )
        .replace("{for_share}", "")
}

fn bind(v: Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::Int(i) => Sql::Integer(i),
        Value::Real(f) => Sql::Real(f),
        Value::Text(s) => Sql::Text(s),
    }
}

fn read(v: Sql) -> Value {
    match v {
        Sql::Null => Value::Null,
        Sql::Integer(i) => Value::Int(i),
        Sql::Real(f) => Value::Real(f),
        Sql::Text(s) => Value::Text(s),
        Sql::Blob(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        let db = Db { conn };
        db.migrate()?;
        Ok(db)
    }

    /// Bring the file to the newest version, one migration per transaction.
    fn migrate(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )",
        )?;
        let current: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        if current > migrations::latest() {
            return Err(StoreError::TooNew {
                found: current,
                known: migrations::latest(),
            });
        }
        for (version, sql) in migrations::SQLITE.iter().filter(|(v, _)| *v > current) {
            let tx =
                rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            // Another process may have migrated meanwhile.
            let done: bool = tx
                .prepare("SELECT 1 FROM schema_migrations WHERE version = ?1")?
                .exists([version])?;
            if !done {
                tx.execute_batch(sql)?;
                if *version == 1 {
                    legacy_columns(&tx)?;
                }
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    [version],
                )?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    pub fn run(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        if fence.is_none() && statements.len() == 1 {
            return statements
                .into_iter()
                .map(|(sql, params)| self.query(sql, params))
                .collect();
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        if let Some(fence) = fence {
            let rows = self.query(super::lease::CURRENT_TERM, super::params![&fence.lease])?;
            fence.check(rows.first())?;
        }
        let out = statements
            .into_iter()
            .map(|(sql, params)| self.query(sql, params))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(out)
    }

    fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&dialect(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.into_iter().map(bind)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Row((0..columns)
                .map(|i| row.get::<_, Sql>(i).map(read))
                .collect::<Result<_, _>>()?));
        }
        Ok(out)
    }
}

/// Stores made before the migrations were numbered may lack columns added since.
fn legacy_columns(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    for column in ["plan", "error_kind"] {
        let present = tx
            .prepare("SELECT 1 FROM pragma_table_info('revisions') WHERE name = ?1")?
            .exists([column])?;
        if !present {
            tx.execute_batch(&format!("ALTER TABLE revisions ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(())
}
