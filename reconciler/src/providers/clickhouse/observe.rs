//! What exists on one server: databases, tables with their columns and keys, and the
//! views' statements, in a fixed number of queries whatever the number of tables.
//!
//! The keys come from `system.tables.partition_key`/`sorting_key`, which the server keeps
//! in memory. A view's statement (`create_table_query`) is costly: the server reads and
//! parses every table's metadata file to produce it, whatever the `WHERE` (1.9 s for
//! 15,000 tables on 18.16). A [`ViewCache`] kept across reconciles (by `paver run`) holds
//! the statements read before with their metadata file's modification time, which any
//! change of the view changes: a view is read again only when that time differs, and
//! everything is read again every [`ViewCache::REFRESH`] and after paver applied anything.
//! That time has a resolution of a second: a view replaced by hand within the second it was
//! read in is seen at the next full read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ClickHouse, ClickHouseError};
use crate::plan::{ObservedTable, TableName};

/// The views' statements read before, with the modification time of their metadata.
#[derive(Debug, Default)]
pub struct ViewCache {
    inner: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    /// When everything was last read; `None` before the first read.
    filled: Option<Instant>,
    /// View → (metadata modification time, statement).
    views: HashMap<TableName, (String, String)>,
}

impl ViewCache {
    /// How long a statement read before is trusted without a full read.
    pub const REFRESH: Duration = Duration::from_secs(600);

    /// The statement of `view` if it was read at this modification time (and the cache is
    /// not due for a full read).
    fn get(&self, view: &TableName, modified: &str) -> Option<String> {
        let cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if cached.filled.is_none_or(|at| at.elapsed() > Self::REFRESH) {
            return None;
        }
        cached
            .views
            .get(view)
            .filter(|(at, _)| at == modified)
            .map(|(_, statement)| statement.clone())
    }

    /// Whether a full read is due (nothing read yet, or read too long ago).
    fn cold(&self) -> bool {
        let cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        cached.filled.is_none_or(|at| at.elapsed() > Self::REFRESH)
    }

    /// The statement of `view` as last read, whatever its modification time then: after a
    /// read in this observe, it is what the server answered at about the same time as the
    /// other queries.
    fn latest(&self, view: &TableName) -> Option<String> {
        let cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .views
            .get(view)
            .map(|(_, statement)| statement.clone())
    }

    /// Forget everything (paver itself changed the views: the next observe reads them all,
    /// whatever the times, which have a resolution of a second).
    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Cached::default();
    }

    /// Keep what a read of every view returned (it replaces everything kept).
    fn fill(&self, views: HashMap<TableName, (String, String)>) {
        let mut cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        cached.filled = Some(Instant::now());
        cached.views = views;
    }
}

type Observation = (BTreeSet<String>, BTreeMap<TableName, ObservedTable>);

impl ClickHouse {
    /// Observe the given databases: which exist, and their tables with columns and keys.
    /// Three queries and a fourth when a view changed (two when the views are known and
    /// none changed), whatever the number of tables.
    pub async fn observe(
        &self,
        databases: &BTreeSet<String>,
    ) -> Result<Observation, ClickHouseError> {
        if self.cluster.is_some() {
            let (existing, tables, _) = self.observe_cluster(databases).await?;
            return Ok((existing, tables));
        }
        let existing: BTreeSet<String> = self
            .rows("SELECT name FROM system.databases")
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        let mut tables = BTreeMap::new();
        let Some(list) = super::existing_list(databases, &existing) else {
            return Ok((existing, tables));
        };
        let tables_sql = format!(
            "SELECT database, name, engine, partition_key, sorting_key, \
             toString(metadata_modification_time) FROM system.tables \
             WHERE database IN ({list}) AND name NOT LIKE '.inner%'"
        );
        let columns_sql = format!(
            "SELECT database, table, name, type FROM system.columns WHERE database IN ({list})"
        );
        let views_sql = format!(
            "SELECT database, name, toString(metadata_modification_time), create_table_query \
             FROM system.tables WHERE database IN ({list}) AND engine = 'MaterializedView'"
        );
        // Tables, columns (and, when nothing is known of the views, their statements) at the
        // same time: one round trip's wait.
        let (table_rows, column_rows, mut views) = if self.views.cold() {
            let (t, c, v) = tokio::try_join!(
                self.rows(&tables_sql),
                self.rows(&columns_sql),
                self.rows(&views_sql)
            )?;
            (t, c, Some(statements(v)))
        } else {
            let (t, c) = tokio::try_join!(self.rows(&tables_sql), self.rows(&columns_sql))?;
            (t, c, None)
        };
        let mut modified = BTreeMap::new();
        for row in table_rows {
            let [db, name, engine, partition_by, order_by, at] = row.as_slice() else {
                continue;
            };
            let table = TableName {
                database: db.clone(),
                name: name.clone(),
            };
            if engine == "MaterializedView" {
                modified.insert(table.clone(), at.clone());
            }
            tables.insert(
                table,
                ObservedTable {
                    columns: Vec::new(),
                    partition_by: partition_by.clone(),
                    // No sorting key is `ORDER BY tuple()`, as paver writes it.
                    order_by: if order_by.is_empty() {
                        "tuple()".to_string()
                    } else {
                        order_by.clone()
                    },
                    engine: engine.clone(),
                    create_query: String::new(),
                    sharding_key: String::new(),
                },
            );
        }
        // A view changed (or appeared) since the statements were read: all are read again.
        if views.is_none()
            && modified
                .iter()
                .any(|(view, at)| self.views.get(view, at).is_none())
        {
            views = Some(statements(self.rows(&views_sql).await?));
        }
        if let Some(views) = views {
            self.views.fill(views);
        }
        for view in modified.keys() {
            if let (Some(statement), Some(t)) = (self.views.latest(view), tables.get_mut(view)) {
                t.create_query = statement;
            }
        }
        for row in column_rows {
            if let [db, table, name, ty] = row.as_slice() {
                let key = TableName {
                    database: db.clone(),
                    name: table.clone(),
                };
                if let Some(t) = tables.get_mut(&key) {
                    t.columns.push((name.clone(), ty.clone()));
                }
            }
        }
        Ok((existing, tables))
    }
}

/// Rows of (database, name, modification time, statement) by view.
fn statements(rows: Vec<Vec<String>>) -> HashMap<TableName, (String, String)> {
    rows.into_iter()
        .filter_map(|row| match <[String; 4]>::try_from(row) {
            Ok([database, name, at, statement]) => {
                Some((TableName { database, name }, (at, statement)))
            }
            Err(_) => None,
        })
        .collect()
}
