//! The ClickHouse provider: observes databases, tables and columns in a fixed number of
//! queries, and runs the ClickHouse actions of a plan. It talks HTTP with the official
//! `clickhouse` crate and detects the server's version, using what it offers: old servers
//! (18.16, on the test machines) have no `Bool`, `Date32`, `DateTime64`, `Map` or
//! `LowCardinality` and no TTL, so their nearest equivalents are used. How it connects
//! (TLS, credentials, what a failed first query means) is in `connect`.

mod connect;
mod error;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

pub use connect::{address, ConnectError};
pub use error::{error_code, ClickHouseError};

use crate::error::ProviderError;
use crate::plan::{ClickHouseAction, Column, Table, TableName, Transform, ViewSpec};

mod cluster;
mod merge;
mod observe;
pub use cluster::with_on_cluster;
pub use observe::ViewCache;

/// The wanted databases that exist, as a list of SQL literals for `IN (…)`; `None` when
/// none exists (nothing to observe in them).
fn existing_list(wanted: &BTreeSet<String>, existing: &BTreeSet<String>) -> Option<String> {
    let list: Vec<String> = wanted
        .iter()
        .filter(|d| existing.contains(*d))
        .map(|d| literal(d))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// A connection to one ClickHouse server.
pub struct ClickHouse {
    client: clickhouse::Client,
    /// Queries sent, for the "queries per reconcile" count.
    pub queries: std::sync::atomic::AtomicU64,
    /// `(major, minor)` of the server.
    pub version: (u32, u32),
    pub version_text: String,
    pub url: String,
    pub user: Option<String>,
    /// Used only by `remote()` when observing a cluster's nodes (never shown).
    password: Option<String>,
    /// The cluster (`remote_servers` entry) every statement runs `ON CLUSTER`, if any.
    pub cluster: Option<String>,
    /// The cluster's nodes, read once (see `nodes`).
    nodes: std::sync::OnceLock<Vec<String>>,
    /// The settings of [`INSERT_SETTINGS`] this server knows, read on the first insert.
    insert_settings: std::sync::OnceLock<Vec<(&'static str, &'static str)>>,
    /// The views' statements read before (kept across reconciles by `paver run`).
    pub views: std::sync::Arc<ViewCache>,
}

/// Settings every insert of rows carries, where the server knows them, whatever the
/// server's or the user's profile says (see "Exactly once" in docs/architecture.md):
/// - `async_insert=0`: the insert is one block of its own, written when the answer comes.
///   Queued (asynchronous) inserts are merged with other clients' rows, and with
///   `wait_for_async_insert=0` they are acknowledged before they are written: offsets
///   would be committed for rows that may never arrive.
/// - `parallel_view_processing=0`: the staging table's views run one after the other, in
///   the order of their names, so that a block whose transform fails stops before the
///   ledger's view runs. With it on, the ledger may record such a block, on 18.16 and on
///   26.9 alike (`tests/clickhouse_engine.rs`).
/// - `materialized_views_ignore_errors=0`: a failing transform fails the insert, instead
///   of dropping the sink's rows while the ledger records the block.
/// - `insert_deduplicate=0`: on a cluster's replicated tables, ClickHouse drops a block
///   identical to one of the last 100 it took: a batch of events alike in every byte to an
///   earlier batch would be lost while the ledger records its offsets. The ledger already
///   keeps a retried batch from going in twice (the worker asks it before retrying).
pub const INSERT_SETTINGS: &[(&str, &str)] = &[
    ("async_insert", "0"),
    ("parallel_view_processing", "0"),
    ("materialized_views_ignore_errors", "0"),
    ("insert_deduplicate", "0"),
];

/// A name in backquotes, as ClickHouse reads identifiers (names are validated by the linter
/// already; quoting keeps them names whatever they are).
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `db`.`table`, quoted.
pub fn table_sql(t: &TableName) -> String {
    format!("{}.{}", quote(&t.database), quote(&t.name))
}

/// Why an insert failed: the data itself (it will never pass), or anything else (the
/// server is down, a table is being changed: it may pass later).
#[derive(Debug, Clone, PartialEq)]
pub enum InsertError {
    Data(String),
    Transient(String),
}

/// How an insert refused for its HTTP session (`SESSION_NOT_FOUND`: the session expired,
/// see `ingest::lease`) begins its [`InsertError::Transient`] reason.
pub const SESSION_EXPIRED: &str = "the insert's HTTP session expired";

/// ClickHouse error codes that mean "this data cannot be inserted": parse errors, values
/// out of range, a transform's `throwIf`.
const DATA_ERRORS: &[u32] = &[
    6, 25, 26, 27, 32, 33, 36, 38, 41, 43, 53, 69, 70, 72, 117, 131, 321, 395, 407,
];

/// `CREATE MATERIALIZED VIEW x …` as `CREATE MATERIALIZED VIEW IF NOT EXISTS x …`: a
/// compensation may run again after a crash.
fn if_not_exists(statement: &str) -> String {
    for head in ["CREATE MATERIALIZED VIEW ", "CREATE VIEW ", "CREATE TABLE "] {
        if let Some(rest) = statement.strip_prefix(head) {
            if !rest.starts_with("IF NOT EXISTS ") {
                return format!("{head}IF NOT EXISTS {rest}");
            }
        }
    }
    statement.to_string()
}

/// A string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl ClickHouse {
    /// Run every statement `ON CLUSTER` this cluster (its `remote_servers` entry).
    pub fn on_cluster(mut self, cluster: Option<String>) -> ClickHouse {
        self.cluster = cluster;
        self
    }

    /// Run a query and return ClickHouse's JSONCompact answer (one round trip).
    async fn json(&self, sql: &str) -> Result<Json, ClickHouseError> {
        self.count();
        let failed = |e: clickhouse::error::Error| ClickHouseError::from_client(&e, sql);
        let bytes = self
            .client
            .query(sql)
            .fetch_bytes("JSONCompact")
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?;
        serde_json::from_slice(&bytes).map_err(|e| ClickHouseError::Answer {
            statement: sql.to_string(),
            why: e.to_string(),
        })
    }

    /// `SELECT 1` with these HTTP parameters (to open an HTTP session, or to see whether
    /// the server refuses one that does not exist).
    pub async fn ping_with(
        &self,
        params: &[(&'static str, String)],
    ) -> Result<(), ClickHouseError> {
        self.count();
        let sql = "SELECT 1";
        let mut query = self.client.query(sql);
        for (name, value) in params {
            query = query.with_setting(*name, value.as_str());
        }
        query
            .fetch_bytes("TabSeparated")
            .map_err(|e| ClickHouseError::from_client(&e, sql))?
            .collect()
            .await
            .map_err(|e| ClickHouseError::from_client(&e, sql))?;
        Ok(())
    }

    /// Run a query and return its rows as text.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>, ClickHouseError> {
        let mut doc = self.json(sql).await?;
        // Taken, not copied: an observe of thousands of tables answers megabytes.
        let Some(Json::Array(rows)) = doc.get_mut("data").map(Json::take) else {
            return Err(ClickHouseError::Answer {
                statement: sql.to_string(),
                why: "no `data`".to_string(),
            });
        };
        Ok(rows
            .into_iter()
            .map(|row| match row {
                Json::Array(values) => values
                    .into_iter()
                    .map(|v| match v {
                        Json::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect())
    }

    /// The columns and types a query returns, without running it on data.
    async fn meta(&self, sql: &str) -> Result<Vec<(String, String)>, ClickHouseError> {
        let doc = self.json(sql).await?;
        Ok(doc["meta"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["name"].as_str()?.to_string(),
                    m["type"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Run a statement (DDL). On a cluster, the server answers only once every node has
    /// (`wait_end_of_query`): a node that failed or timed out is an error naming it, not
    /// a line inside a successful answer.
    pub async fn run(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.count();
        let mut query = self.client.query(sql);
        if self.cluster.is_some() {
            query = query.with_setting("wait_end_of_query", "1");
        }
        let Err(e) = query.execute().await else {
            return Ok(());
        };
        let e = ClickHouseError::from_client(&e, sql);
        let Some(cluster) = self.cluster.as_deref().filter(|_| e.code() == Some(159)) else {
            return Err(e);
        };
        // An ON CLUSTER statement that some node did not run in time stays in the
        // cluster's DDL queue, and that node runs it when it is back. A DROP (what an undo
        // and a retirement do) is then as good as done: the nodes that answer ran it, the
        // others will. Anything else failed, and says which node.
        if sql.starts_with("DROP ") {
            eprintln!("paver: `{sql}`: not every node answered in time; the nodes that did ran it, the others will when they are back ({e})");
            return Ok(());
        }
        let down = match self.down_nodes().await {
            Ok(down) if down.is_empty() => "none found: a slow node".to_string(),
            Ok(down) => down.join(", "),
            Err(why) => format!("unknown ({why})"),
        };
        Err(ClickHouseError::NodesDown {
            source: Box::new(e),
            cluster: quote(cluster),
            down,
        })
    }

    /// ` ON CLUSTER `c`` on a cluster, else nothing: what every DDL statement carries.
    pub fn on(&self) -> String {
        match &self.cluster {
            Some(c) => format!(" ON CLUSTER {}", quote(c)),
            None => String::new(),
        }
    }

    /// The settings of [`INSERT_SETTINGS`] that this server has (one query, the first time).
    async fn insert_settings(&self) -> Result<&[(&'static str, &'static str)], ClickHouseError> {
        if let Some(known) = self.insert_settings.get() {
            return Ok(known);
        }
        let names: Vec<String> = INSERT_SETTINGS.iter().map(|(n, _)| literal(n)).collect();
        let have: BTreeSet<String> = self
            .rows(&format!(
                "SELECT name FROM system.settings WHERE name IN ({})",
                names.join(", ")
            ))
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        let known = INSERT_SETTINGS
            .iter()
            .filter(|(n, _)| have.contains(*n))
            .copied()
            .collect();
        Ok(self.insert_settings.get_or_init(|| known))
    }

    /// Insert `JSONEachRow` rows into a table in one statement, with [`INSERT_SETTINGS`].
    pub async fn insert_json_rows(
        &self,
        table: &TableName,
        rows: bytes::Bytes,
    ) -> Result<(), InsertError> {
        self.insert_rows(table, None, "JSONEachRow", rows).await
    }

    /// Insert rows in `format` into a table (into these columns, in this order, when
    /// given) in one statement, with [`INSERT_SETTINGS`].
    pub async fn insert_rows(
        &self,
        table: &TableName,
        columns: Option<&[String]>,
        format: &str,
        rows: bytes::Bytes,
    ) -> Result<(), InsertError> {
        self.insert_rows_in(table, columns, format, rows, &[]).await
    }

    /// [`ClickHouse::insert_rows`] with these HTTP parameters too (an ingestion worker's
    /// session: `session_id`, `session_check`).
    pub async fn insert_rows_in(
        &self,
        table: &TableName,
        columns: Option<&[String]>,
        format: &str,
        rows: bytes::Bytes,
        params: &[(&'static str, String)],
    ) -> Result<(), InsertError> {
        let settings = self
            .insert_settings()
            .await
            .map_err(|e| InsertError::Transient(e.to_string()))?;
        self.count();
        let columns = match columns {
            Some(c) => format!(
                " ({})",
                c.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
            ),
            None => String::new(),
        };
        let statement = format!("INSERT INTO {}{columns} FORMAT {format}", table_sql(table));
        let classify = |e: clickhouse::error::Error| {
            let e = ClickHouseError::from_client(&e, &statement);
            match e.code() {
                Some(code) if DATA_ERRORS.contains(&code) => InsertError::Data(e.to_string()),
                Some(372) => InsertError::Transient(format!("{SESSION_EXPIRED}: {e}")),
                _ => InsertError::Transient(e.to_string()),
            }
        };
        let mut insert = self.client.insert_formatted_with(statement.clone());
        for (name, value) in settings {
            insert = insert.with_setting(*name, *value);
        }
        for (name, value) in params {
            insert = insert.with_setting(*name, value.as_str());
        }
        insert.send(rows).await.map_err(classify)?;
        insert.end().await.map_err(classify)
    }

    fn count(&self) {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A column type this server has, for one of paver's mapping (see the README).
    pub fn adapt_type(&self, ty: &str) -> String {
        let modern = self.version >= (21, 12);
        if modern {
            return ty.to_string();
        }
        let mut t = ty.to_string();
        if self.version < (21, 12) {
            t = t.replace("Bool", "UInt8");
        }
        if self.version < (21, 9) {
            t = t.replace("Date32", "Date");
        }
        if self.version < (20, 1) {
            for p in ["DateTime64(3)", "DateTime64(6)"] {
                t = t.replace(p, "DateTime");
            }
        }
        if self.version < (19, 0) {
            t = t.replace("LowCardinality(String)", "String");
        }
        if self.version < (21, 1) && t.contains("Map(") {
            // No Map type: the map is kept as its JSON text.
            t = "String".to_string();
        }
        if t.contains("Tuple(") && self.version < (21, 1) {
            t = "String".to_string();
        }
        t
    }

    /// The columns of a table, types inferred by the server where the spec leaves them to
    /// the transform: the transform runs (on no rows) over a Null table with the source's
    /// columns.
    async fn resolve_columns(
        &self,
        table: &TableName,
        columns: &[Column],
        transform: &Transform,
    ) -> Result<Vec<(String, String)>, ClickHouseError> {
        let mut inferred = BTreeMap::new();
        if columns.iter().any(|c| c.ty.is_none()) {
            let probe = TableName {
                database: table.database.clone(),
                name: format!("__paver_probe_{}", table.name),
            };
            let source: Vec<String> = transform
                .source_columns
                .iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        quote(&c.name),
                        self.adapt_type(c.ty.as_deref().unwrap_or("String"))
                    )
                })
                .collect();
            self.run(&format!("DROP TABLE IF EXISTS {}", table_sql(&probe)))
                .await?;
            self.run(&format!(
                "CREATE TABLE {} ({}) ENGINE = Null",
                table_sql(&probe),
                source.join(", ")
            ))
            .await?;
            let query = transform
                .query
                .as_deref()
                .and_then(|q| paver_lint::sql::render_query_over(q, &probe.database, &probe.name));
            let result = match query {
                Some(q) => self.meta(&format!("SELECT * FROM ({q}) LIMIT 0")).await,
                None => Err(ClickHouseError::State(
                    "the transform could not be rendered".to_string(),
                )),
            };
            self.run(&format!("DROP TABLE IF EXISTS {}", table_sql(&probe)))
                .await?;
            inferred.extend(result?);
        }
        columns
            .iter()
            .map(|c| match &c.ty {
                Some(ty) => Ok((c.name.clone(), self.adapt_type(ty))),
                None => inferred
                    .get(&c.name)
                    .map(|ty| (c.name.clone(), ty.clone()))
                    .ok_or_else(|| {
                        ClickHouseError::State(format!(
                            "ClickHouse gave no type for the column `{}`",
                            c.name
                        ))
                    }),
            })
            .collect()
    }

    async fn create_table(&self, table: &TableName, spec: &Table) -> Result<(), ClickHouseError> {
        let columns = self
            .resolve_columns(table, &spec.columns, &spec.transform)
            .await?;
        let defs: Vec<String> = columns
            .iter()
            .map(|(n, t)| format!("{} {t}", quote(n)))
            .collect();
        let mut ddl = format!(
            "CREATE TABLE IF NOT EXISTS {}{} ({}) ENGINE = {}",
            table_sql(table),
            self.on(),
            defs.join(", "),
            self.engine(table, "MergeTree", "").await?
        );
        if let Some(p) = &spec.partition_by {
            ddl.push_str(&format!(" PARTITION BY {p}"));
        }
        ddl.push_str(&format!(" ORDER BY {}", spec.order_by));
        // TTL from the cluster's retentionDays, where the server has TTL (19.6+) and the
        // table has a time column.
        if let (Some(days), true) = (spec.ttl_days, self.version >= (19, 6)) {
            if let Some((col, _)) = columns
                .iter()
                .find(|(_, t)| t.starts_with("DateTime") || t.starts_with("Date"))
            {
                ddl.push_str(&format!(
                    " TTL toDateTime({}) + INTERVAL {days} DAY",
                    quote(col)
                ));
            }
        }
        self.run(&ddl).await
    }

    /// `DROP TABLE IF EXISTS` (idempotent, as compensations must be).
    async fn drop_table(&self, table: &TableName) -> Result<(), ClickHouseError> {
        self.run(&format!(
            "DROP TABLE IF EXISTS {}{}",
            table_sql(table),
            self.on()
        ))
        .await
    }

    /// Drop a column if the table has it (idempotent).
    async fn drop_column(&self, table: &TableName, name: &str) -> Result<(), ClickHouseError> {
        if self.column_exists(table, name).await? {
            if self.is_distributed(table).await? {
                return self.rebuild_distributed(table, &[], &[name], None).await;
            }
            self.run(&format!(
                "ALTER TABLE {}{} DROP COLUMN {}",
                table_sql(table),
                self.on(),
                quote(name)
            ))
            .await?;
        }
        Ok(())
    }

    async fn column_exists(&self, table: &TableName, name: &str) -> Result<bool, ClickHouseError> {
        let rows = self
            .rows(&format!(
                "SELECT name FROM system.columns WHERE database = {} AND table = {} AND name = {}",
                literal(&table.database),
                literal(&table.name),
                literal(name)
            ))
            .await?;
        Ok(!rows.is_empty())
    }

    /// Run a ClickHouse action; its error says whether trying again may help (by the
    /// server's exception code).
    pub async fn execute(&self, action: &ClickHouseAction) -> Result<(), ProviderError> {
        match self.run_action(action).await {
            // On a cluster, a statement that timed out ran on the nodes that answered (and
            // waits in the DDL queue for the others): the executor does not undo a failed
            // step, so what it made is dropped here, on every node.
            Err(e) if self.cluster.is_some() && e.code() == Some(159) => {
                let undo = match self.undo_after_timeout(action).await {
                    Ok(()) => "what the step made on the nodes that answered was dropped again"
                        .to_string(),
                    Err(undo) => format!(
                        "dropping what the step made on the nodes that answered failed too: {undo}"
                    ),
                };
                Err(ClickHouseError::Undone {
                    source: Box::new(e),
                    undo,
                }
                .into())
            }
            result => result.map_err(ProviderError::from),
        }
    }

    async fn run_action(&self, action: &ClickHouseAction) -> Result<(), ClickHouseError> {
        use ClickHouseAction as Action;
        match action {
            Action::CreateDatabase { name } => {
                self.run(&format!(
                    "CREATE DATABASE IF NOT EXISTS {}{}",
                    quote(name),
                    self.on()
                ))
                .await?
            }
            Action::DropDatabase { name } => {
                self.run(&format!(
                    "DROP DATABASE IF EXISTS {}{}",
                    quote(name),
                    self.on()
                ))
                .await?
            }
            Action::CreateTable { table, spec } => self.create_table(table, spec).await?,
            Action::DropTable { table } => {
                self.drop_table(table).await?
            }
            Action::AddColumn {
                table,
                column,
                transform,
            } => {
                if !self.column_exists(table, &column.name).await? {
                    let resolved = self
                        .resolve_columns(table, std::slice::from_ref(column), transform)
                        .await?;
                    let (name, ty) = &resolved[0];
                    if self.is_distributed(table).await? {
                        self.rebuild_distributed(table, &[(name.clone(), ty.clone())], &[], None)
                            .await?;
                    } else {
                        self.run(&format!(
                            "ALTER TABLE {}{} ADD COLUMN {} {ty}",
                            table_sql(table),
                            self.on(),
                            quote(name)
                        ))
                        .await?;
                    }
                }
            }
            Action::DropColumn { table, name } => self.drop_column(table, name).await?,
            Action::CreateStaging { table, columns } => {
                let mut defs: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}",
                            quote(&c.name),
                            self.adapt_type(c.ty.as_deref().unwrap_or("String"))
                        )
                    })
                    .collect();
                defs.push("`_paver_partition` Int32".to_string());
                defs.push("`_paver_offset` Int64".to_string());
                self.run(&format!(
                    "CREATE TABLE IF NOT EXISTS {}{} ({}) ENGINE = Null",
                    table_sql(table),
                    self.on(),
                    defs.join(", ")
                ))
                .await?
            }
            Action::CreateLedger { table } => {
                self.run(&format!(
                    "CREATE TABLE IF NOT EXISTS {}{} (pipeline String, version UInt32, partition Int32, last_offset Int64, rows UInt64, at DateTime) ENGINE = {} ORDER BY (pipeline, partition)",
                    table_sql(table),
                    self.on(),
                    self.engine(table, "ReplacingMergeTree", "last_offset").await?
                ))
                .await?
            }
            Action::CreateDistributed {
                table,
                physical,
                shard_by,
            } => {
                let columns = self.columns_of(physical).await?;
                if columns.is_empty() {
                    return Err(ClickHouseError::State(format!("{physical} has no columns (does it exist?)")));
                }
                self.rebuild_distributed(table, &columns, &[], Some(shard_by.as_deref()))
                    .await?
            }
            Action::DropDistributed { table } => {
                self.drop_table(table).await?;
                self.drop_table(&crate::plan::merge_of(table)).await?
            }
            Action::RepairTable { table, .. } => self.repair_table(table).await?,
            Action::CreateViews { spec } => self.create_views(spec).await?,
            Action::SwitchGeneration {
                table,
                create,
                spec,
                original,
                others,
            } if self.cluster.is_some() => {
                self.switch_generation_on_cluster(table, create, spec, others)
                    .await?
            }
            Action::SwitchGeneration {
                table,
                create,
                spec,
                original,
                others,
            } => self.switch_generation(table, create, spec, original.as_ref(), others).await?,
            Action::UnswitchGeneration {
                table,
                create,
                added,
                shard_by,
                ..
            } if self.cluster.is_some() => {
                self.unswitch_generation_on_cluster(table, create, added, shard_by.as_deref())
                    .await?
            }
            Action::UnswitchGeneration {
                table,
                create,
                original,
                added,
                ..
            } => {
                self.unswitch_generation(table, create, original.as_ref())
                    .await?;
                for (t, column) in added {
                    self.drop_column(t, column).await?;
                }
            }
            Action::DropViews { view, offsets } => {
                for t in [view, offsets] {
                    self.drop_table(t).await?;
                }
            }
            Action::RestoreViews { view, statements } => {
                // In name order, as ClickHouse then runs them: the transform first.
                for statement in statements {
                    self.run(&self.with_on(&if_not_exists(statement)))
                        .await
                        .map_err(|e| ClickHouseError::State(format!("restoring the views {view}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// The two materialized views of a pipeline version, made anew over the sink as it is
    /// now: the transform into the sink, with the sink's columns the transform does not
    /// fill at their defaults (a column a newer version added stays, and an older
    /// transform leaves it at its default; 18.16 insists on every column), and the offsets
    /// of every inserted block into the ledger. ClickHouse runs a table's views in the
    /// order of their names: `…_mv` before `…_mv_offsets`, so that a block whose transform
    /// failed is not recorded as inserted.
    pub async fn create_views(&self, spec: &ViewSpec) -> Result<(), ClickHouseError> {
        let sink_columns = self
            .rows(&format!(
                "SELECT name, type, default_kind FROM system.columns WHERE database = {} AND table = {}",
                literal(&spec.sink.database),
                literal(&spec.sink.name)
            ))
            .await?;
        if sink_columns.is_empty() {
            return Err(ClickHouseError::State(format!(
                "the sink {} has no columns (does it exist?)",
                spec.sink
            )));
        }
        let source: Vec<String> = spec.source_columns.iter().map(|c| c.name.clone()).collect();
        let bare = paver_lint::sql::render_view_query(
            spec.query.as_deref(),
            &spec.staging.database,
            &spec.staging.name,
            &source,
            &[],
        )
        .ok_or_else(|| {
            ClickHouseError::State(format!(
                "the transform of {} v{} could not be rendered",
                spec.pipeline, spec.version
            ))
        })?;
        let produced: BTreeSet<String> = self
            .meta(&format!("SELECT * FROM ({bare}) LIMIT 0"))
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut extra = Vec::new();
        for row in &sink_columns {
            let [name, ty, kind] = row.as_slice() else {
                continue;
            };
            if produced.contains(name) || kind == "MATERIALIZED" || kind == "ALIAS" {
                continue;
            }
            extra.push((self.default_of(ty)?, name.clone()));
        }
        let query = paver_lint::sql::render_view_query(
            spec.query.as_deref(),
            &spec.staging.database,
            &spec.staging.name,
            &source,
            &extra,
        )
        .ok_or_else(|| {
            ClickHouseError::State(format!(
                "the view of {} v{} could not be rendered",
                spec.pipeline, spec.version
            ))
        })?;
        for t in [&spec.view, &spec.offsets] {
            self.drop_table(t).await?;
        }
        self.run(&format!(
            "CREATE MATERIALIZED VIEW {}{} TO {} AS {query}",
            table_sql(&spec.view),
            self.on(),
            table_sql(&spec.sink)
        ))
        .await?;
        self.run(&format!(
            "CREATE MATERIALIZED VIEW {}{} TO {} AS SELECT {} AS pipeline, toUInt32({}) AS version, `_paver_partition` AS partition, max(`_paver_offset`) AS last_offset, count() AS rows, now() AS at FROM {} GROUP BY `_paver_partition`",
            table_sql(&spec.offsets),
            self.on(),
            table_sql(&spec.ledger),
            literal(&spec.pipeline),
            spec.version,
            table_sql(&spec.staging)
        ))
        .await
    }

    async fn columns_of(
        &self,
        table: &TableName,
    ) -> Result<Vec<(String, String)>, ClickHouseError> {
        Ok(self
            .rows(&format!(
                "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
                literal(&table.database),
                literal(&table.name)
            ))
            .await?
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
            .collect())
    }

    /// An expression of a column type's default value, on this server.
    fn default_of(&self, ty: &str) -> Result<String, ClickHouseError> {
        // Types come from the server's own catalogue; they still go into SQL only as a
        // string literal, and only when they look like a type.
        if !ty
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_(), ".contains(c))
        {
            return Err(ClickHouseError::State(format!(
                "cannot give a default for the column type `{ty}`"
            )));
        }
        Ok(if self.version >= (21, 1) {
            format!("defaultValueOfTypeName({})", literal(ty))
        } else if ty.starts_with("Nullable(") {
            format!("CAST(NULL, {})", literal(ty))
        } else if ty.starts_with("Array(") {
            format!("CAST([], {})", literal(ty))
        } else {
            format!(
                "assumeNotNull(CAST(NULL, {}))",
                literal(&format!("Nullable({ty})"))
            )
        })
    }
}

/// `PARTITION BY` and `ORDER BY` of a MergeTree's `engine_full`.
pub fn keys_of(engine_full: &str) -> (String, String) {
    let find = |keyword: &str| -> String {
        let Some(start) = engine_full.find(keyword) else {
            return String::new();
        };
        let rest = &engine_full[start + keyword.len()..];
        let end = [
            " ORDER BY ",
            " PARTITION BY ",
            " PRIMARY KEY ",
            " SAMPLE BY ",
            " TTL ",
            " SETTINGS ",
        ]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()
        .unwrap_or(rest.len());
        rest[..end].trim().to_string()
    };
    (find("PARTITION BY "), find("ORDER BY "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_from_engine_full() {
        let (p, o) = keys_of("MergeTree() PARTITION BY toYYYYMM(eventTime) ORDER BY (userId, eventTime) SETTINGS index_granularity = 8192");
        assert_eq!(
            (p.as_str(), o.as_str()),
            ("toYYYYMM(eventTime)", "(userId, eventTime)")
        );
        assert_eq!(
            keys_of("MergeTree ORDER BY tuple()"),
            (String::new(), "tuple()".to_string())
        );
    }

    #[test]
    fn quotes_names() {
        assert_eq!(quote("a`b"), "`a\\`b`");
        assert_eq!(literal("it's"), "'it\\'s'");
    }
}
