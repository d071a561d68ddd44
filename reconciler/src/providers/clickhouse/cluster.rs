//! The ClickHouse provider on a cluster (`targets.clusters.<name>.clickhouse.cluster`):
//! every statement runs `ON CLUSTER`, physical tables and the ledger are replicated, a
//! sink's `db.table` is a `Distributed` table, and observing reads every node's catalogue
//! through `remote()` in one query per system table, whatever the number of nodes.
//!
//! ClickHouse 18.16 refuses `ALTER … ON CLUSTER` of a table that is not replicated on a
//! cluster whose shards are (Code 371): the `Distributed` table and the Merge under it
//! are therefore never altered but made anew beside the old ones and swapped in one
//! `RENAME … ON CLUSTER` (atomic on each node), which needs no connection to each node.

use std::collections::{BTreeMap, BTreeSet};

use super::{literal, quote, table_sql, ClickHouse, ClickHouseError};
use crate::plan::{merge_of, ObservedTable, Table, TableName};

/// `CREATE [MATERIALIZED] VIEW|TABLE [IF NOT EXISTS] <name> …` with ` ON CLUSTER <c>`
/// after the name (a statement ClickHouse gave, run again on every node).
pub fn with_on_cluster(statement: &str, cluster: &str) -> String {
    if statement.contains(" ON CLUSTER ") {
        return statement.to_string();
    }
    for head in ["CREATE MATERIALIZED VIEW ", "CREATE VIEW ", "CREATE TABLE "] {
        let Some(rest) = statement.strip_prefix(head) else {
            continue;
        };
        let (ine, rest) = match rest.strip_prefix("IF NOT EXISTS ") {
            Some(r) => ("IF NOT EXISTS ", r),
            None => ("", rest),
        };
        let end = name_end(rest);
        return format!(
            "{head}{ine}{} ON CLUSTER {}{}",
            &rest[..end],
            quote(cluster),
            &rest[end..]
        );
    }
    statement.to_string()
}

/// Where a (possibly backquoted, `db.name`) table name ends.
fn name_end(text: &str) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '`' => quoted = !quoted,
            c if !quoted && (c.is_whitespace() || c == '(') => return i,
            _ => {}
        }
    }
    text.len()
}

/// The sharding key of a `Distributed(cluster, db, table, key)` engine, if it has one.
pub fn sharding_key_of(engine_full: &str) -> String {
    let Some(args) = engine_full
        .strip_prefix("Distributed(")
        .and_then(|a| a.rfind(')').map(|end| &a[..end]))
    else {
        return String::new();
    };
    // The fourth top-level argument.
    let mut depth = 0i32;
    let mut quoted: Option<char> = None;
    let mut commas = 0;
    for (i, c) in args.char_indices() {
        match (quoted, c) {
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, '\'' | '`') => quoted = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                commas += 1;
                if commas == 3 {
                    return args[i + 1..].trim().to_string();
                }
            }
            _ => {}
        }
    }
    String::new()
}

/// What a cluster's observation found: the databases, the tables (as the first node that
/// has each shows it), and the tables some nodes lack.
pub type ClusterObservation = (
    BTreeSet<String>,
    BTreeMap<TableName, ObservedTable>,
    BTreeMap<TableName, Vec<String>>,
);

impl ClickHouse {
    /// A statement with ` ON CLUSTER` after its table name, on a cluster.
    pub(super) fn with_on(&self, statement: &str) -> String {
        match &self.cluster {
            Some(c) => with_on_cluster(statement, c),
            None => statement.to_string(),
        }
    }

    /// The engine of a new physical table: `<base>(<arg>)`, or on a cluster
    /// `Replicated<base>('<path>', '{replica}', <arg>)` with a ZooKeeper path of its own:
    /// the one its replicas already have (a table made again on a node), else a new one
    /// (`…/<db>/<table>/<token>`), so that a new table never meets an old or dropped
    /// one's metadata.
    pub(super) async fn engine(
        &self,
        table: &TableName,
        base: &str,
        arg: &str,
    ) -> Result<String, ClickHouseError> {
        if self.cluster.is_none() {
            return Ok(format!("{base}({arg})"));
        }
        let path = match self.zookeeper_path(table).await? {
            Some(p) => p,
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .map_err(|e| ClickHouseError::State(format!("the clock: {e}")))?;
                let token = crate::model::short_hash(
                    format!("{table} {nanos} {}", std::process::id()).as_bytes(),
                );
                format!(
                    "/clickhouse/tables/{{shard}}/paver/{}/{}/{}",
                    table.database,
                    table.name,
                    &token[..16]
                )
            }
        };
        let arg = if arg.is_empty() {
            String::new()
        } else {
            format!(", {arg}")
        };
        Ok(format!(
            "Replicated{base}({}, '{{replica}}'{arg})",
            literal(&path)
        ))
    }

    /// The ZooKeeper path of a replicated table on any node of the cluster (macros as
    /// written, `{shard}` included).
    async fn zookeeper_path(&self, table: &TableName) -> Result<Option<String>, ClickHouseError> {
        let filter = format!(
            "database = {} AND name = {}",
            literal(&table.database),
            literal(&table.name)
        );
        let rows = self
            .over_nodes("create_table_query", "tables", &filter)
            .await?;
        Ok(rows.iter().find_map(|r| {
            let query = r.get(1)?;
            let start = query.find("Replicated")?;
            let open = query[start..].find("('")? + start + 2;
            let close = query[open..].find('\'')? + open;
            Some(query[open..close].to_string())
        }))
    }

    /// The cluster's nodes, `host:port` (native protocol), as `system.clusters` lists them.
    pub async fn nodes(&self) -> Result<Vec<String>, ClickHouseError> {
        let Some(cluster) = &self.cluster else {
            return Ok(Vec::new());
        };
        if let Some(nodes) = self.nodes.get() {
            return Ok(nodes.clone());
        }
        let nodes: Vec<String> = self
            .rows(&format!(
                "SELECT host_address, port FROM system.clusters WHERE cluster = {} ORDER BY shard_num, replica_num",
                literal(cluster)
            ))
            .await?
            .into_iter()
            .filter_map(|r| Some(format!("{}:{}", r.first()?, r.get(1)?)))
            .collect();
        if nodes.is_empty() {
            return Err(ClickHouseError::State(format!(
                "the ClickHouse server at {} has no cluster `{cluster}` in its remote_servers (system.clusters): name the cluster the servers define",
                self.url
            )));
        }
        Ok(self.nodes.get_or_init(|| nodes).clone())
    }

    /// What a step that timed out on a cluster made, dropped again on every node. The
    /// planner makes a thing only where it is missing, so what is dropped here is what
    /// the step made; a repair (the thing is on other nodes) is left as it is.
    pub(super) async fn undo_after_timeout(
        &self,
        action: &crate::plan::ClickHouseAction,
    ) -> Result<(), ClickHouseError> {
        use crate::plan::ClickHouseAction as A;
        match action {
            A::CreateDatabase { name } => {
                self.run(&format!(
                    "DROP DATABASE IF EXISTS {}{}",
                    quote(name),
                    self.on()
                ))
                .await
            }
            A::CreateTable { table, .. }
            | A::CreateStaging { table, .. }
            | A::CreateLedger { table } => self.drop_table(table).await,
            A::CreateViews { spec } => {
                self.drop_table(&spec.view).await?;
                self.drop_table(&spec.offsets).await
            }
            A::AddColumn { table, column, .. } => self.drop_column(table, &column.name).await,
            A::CreateDistributed { table, .. } | A::SwitchGeneration { table, .. } => {
                let named = |suffix: &str| TableName {
                    database: table.database.clone(),
                    name: format!("{}__paver_{suffix}", table.name),
                };
                for t in [named("next"), named("merge_next")] {
                    self.drop_table(&t).await?;
                }
                if let A::SwitchGeneration { create, .. } = action {
                    if self.rows_on_cluster(create).await? == 0 {
                        self.drop_table(create).await?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The nodes that do not answer (one `remote()` probe each): what a timed-out
    /// `ON CLUSTER` statement names.
    pub(super) async fn down_nodes(&self) -> Result<Vec<String>, ClickHouseError> {
        let mut down = Vec::new();
        for node in self.nodes().await? {
            let probe = format!("SELECT 1 FROM remote({}, system, one)", literal(&node));
            if self.rows(&probe).await.is_err() {
                down.push(node);
            }
        }
        Ok(down)
    }

    /// One query over a system table of every node: each row starts with its node.
    async fn over_nodes(
        &self,
        columns: &str,
        system_table: &str,
        filter: &str,
    ) -> Result<Vec<Vec<String>>, ClickHouseError> {
        let credentials = match (&self.user, &self.password) {
            (Some(u), Some(p)) => format!(", {}, {}", literal(u), literal(p)),
            (Some(u), None) => format!(", {}", literal(u)),
            _ => String::new(),
        };
        let parts: Vec<String> = self
            .nodes()
            .await?
            .iter()
            .map(|node| {
                format!(
                    "SELECT {} AS node, {columns} FROM remote({}, system, {system_table}{credentials}) WHERE {filter}",
                    literal(node),
                    literal(node)
                )
            })
            .collect();
        self.rows(&parts.join(" UNION ALL ")).await
    }

    /// Observe the given databases on every node: three queries (and one for the list of
    /// nodes), whatever the number of nodes and tables.
    pub async fn observe_cluster(
        &self,
        databases: &BTreeSet<String>,
    ) -> Result<ClusterObservation, ClickHouseError> {
        let nodes = self.nodes().await?;
        let existing: BTreeSet<String> = self
            .over_nodes("name", "databases", "1")
            .await?
            .into_iter()
            .filter_map(|r| r.get(1).cloned())
            .collect();
        let mut tables = BTreeMap::new();
        let mut missing = BTreeMap::new();
        let Some(list) = super::existing_list(databases, &existing) else {
            return Ok((existing, tables, missing));
        };
        let mut seen: BTreeMap<TableName, (String, BTreeSet<String>)> = BTreeMap::new();
        let mut rows = self
            .over_nodes(
                "database, name, engine_full, engine, if(engine = 'MaterializedView', create_table_query, '')",
                "tables",
                &format!("database IN ({list}) AND name NOT LIKE '.inner%'"),
            )
            .await?;
        // The first node (in the cluster's order) that has a table describes it.
        let rank = |n: &str| nodes.iter().position(|x| x == n).unwrap_or(usize::MAX);
        rows.sort_by_key(|r| rank(&r[0]));
        for row in rows {
            let [node, db, name, engine_full, engine, create_query] = row.as_slice() else {
                continue;
            };
            let key = TableName {
                database: db.clone(),
                name: name.clone(),
            };
            let entry = seen
                .entry(key.clone())
                .or_insert_with(|| (node.clone(), BTreeSet::new()));
            entry.1.insert(node.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = tables.entry(key) {
                let (partition_by, order_by) = super::keys_of(engine_full);
                slot.insert(ObservedTable {
                    columns: Vec::new(),
                    partition_by,
                    order_by,
                    engine: engine.clone(),
                    create_query: create_query.clone(),
                    sharding_key: if engine == "Distributed" {
                        sharding_key_of(engine_full)
                    } else {
                        String::new()
                    },
                });
            }
        }
        for row in self
            .over_nodes(
                "database, table, name, type",
                "columns",
                &format!("database IN ({list})"),
            )
            .await?
        {
            let [node, db, table, name, ty] = row.as_slice() else {
                continue;
            };
            let key = TableName {
                database: db.clone(),
                name: table.clone(),
            };
            if seen.get(&key).is_some_and(|(first, _)| first == node) {
                if let Some(t) = tables.get_mut(&key) {
                    t.columns.push((name.clone(), ty.clone()));
                }
            }
        }
        for (table, (_, on)) in seen {
            let lacking: Vec<String> = nodes.iter().filter(|n| !on.contains(*n)).cloned().collect();
            if !lacking.is_empty() {
                missing.insert(table, lacking);
            }
        }
        Ok((existing, tables, missing))
    }

    pub(super) async fn is_distributed(&self, table: &TableName) -> Result<bool, ClickHouseError> {
        if self.cluster.is_none() {
            return Ok(false);
        }
        let rows = self
            .rows(&format!(
                "SELECT engine, engine_full FROM system.tables WHERE database = {} AND name = {}",
                literal(&table.database),
                literal(&table.name)
            ))
            .await?;
        Ok(rows.first().and_then(|r| r.first()).map(String::as_str) == Some("Distributed"))
    }

    /// `table` (re)made as a `Distributed` table over `<table>__paver_merge`, with its
    /// columns plus `add` minus `drop`, sharded by `shard_by` (`None`: the key it has;
    /// `Some(None)`: the default). Both are made beside the old ones and swapped in one
    /// `RENAME … ON CLUSTER`.
    pub(super) async fn rebuild_distributed(
        &self,
        table: &TableName,
        add: &[(String, String)],
        drop: &[&str],
        shard_by: Option<Option<&str>>,
    ) -> Result<(), ClickHouseError> {
        let Some(cluster) = self.cluster.clone() else {
            return Err(ClickHouseError::State(format!(
                "{table}: a Distributed table needs a cluster"
            )));
        };
        let current = self
            .rows(&format!(
                "SELECT engine_full FROM system.tables WHERE database = {} AND name = {}",
                literal(&table.database),
                literal(&table.name)
            ))
            .await?;
        let exists = !current.is_empty();
        let key = match shard_by {
            Some(k) => k
                .unwrap_or(crate::plan::distributed::DEFAULT_SHARDING_KEY)
                .to_string(),
            None => current
                .first()
                .and_then(|r| r.first())
                .map(|e| sharding_key_of(e))
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| crate::plan::distributed::DEFAULT_SHARDING_KEY.to_string()),
        };
        let mut columns = if exists {
            self.columns_of(table).await?
        } else {
            Vec::new()
        };
        for (n, t) in add {
            if !columns.iter().any(|(c, _)| c == n) {
                columns.push((n.clone(), t.clone()));
            }
        }
        columns.retain(|(n, _)| !drop.contains(&n.as_str()));
        let merge = merge_of(table);
        let named = |suffix: &str| TableName {
            database: table.database.clone(),
            name: format!("{}__paver_{suffix}", table.name),
        };
        let (next, merge_next) = (named("next"), named("merge_next"));
        let (prev, merge_prev) = (named("prev"), named("merge_prev"));
        // Leftovers of an interrupted rebuild (one query to find them, not a DROP each).
        let helpers: Vec<String> = [&next, &merge_next, &prev, &merge_prev]
            .iter()
            .map(|t| literal(&t.name))
            .collect();
        let left: BTreeSet<String> = self
            .rows(&format!(
                "SELECT name FROM system.tables WHERE database = {} AND name IN ({})",
                literal(&table.database),
                helpers.join(", ")
            ))
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        for t in [&next, &merge_next, &prev, &merge_prev] {
            if left.contains(&t.name) {
                self.drop_table(t).await?;
            }
        }
        let defs: Vec<String> = columns
            .iter()
            .map(|(n, t)| format!("{} {t}", quote(n)))
            .collect();
        let regex: String = table
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            })
            .collect();
        self.run(&format!(
            "CREATE TABLE {}{} ({}) ENGINE = Merge({}, {})",
            table_sql(&merge_next),
            self.on(),
            defs.join(", "),
            literal(&table.database),
            literal(&format!("^{regex}__v[0-9]+$"))
        ))
        .await?;
        self.run(&format!(
            "CREATE TABLE {}{} ({}) ENGINE = Distributed({}, {}, {}, {key})",
            table_sql(&next),
            self.on(),
            defs.join(", "),
            quote(&cluster),
            literal(&table.database),
            literal(&merge.name)
        ))
        .await?;
        let merge_exists = !self
            .rows(&format!(
                "SELECT 1 FROM system.tables WHERE database = {} AND name = {}",
                literal(&merge.database),
                literal(&merge.name)
            ))
            .await?
            .is_empty();
        let mut pairs = Vec::new();
        if merge_exists {
            pairs.push(format!(
                "{} TO {}",
                table_sql(&merge),
                table_sql(&merge_prev)
            ));
        }
        pairs.push(format!(
            "{} TO {}",
            table_sql(&merge_next),
            table_sql(&merge)
        ));
        if exists {
            pairs.push(format!("{} TO {}", table_sql(table), table_sql(&prev)));
        }
        pairs.push(format!("{} TO {}", table_sql(&next), table_sql(table)));
        // 18.16 reads ON CLUSTER after the last pair.
        self.run(&format!("RENAME TABLE {}{}", pairs.join(", "), self.on()))
            .await?;
        for t in [&prev, &merge_prev] {
            self.drop_table(t).await?;
        }
        Ok(())
    }

    /// A new physical generation on a cluster: made (replicated), every physical table
    /// given every column, and the Distributed table and its Merge remade with them all.
    /// The Merge finds the new table by its name: db.table reads every generation.
    pub(super) async fn switch_generation_on_cluster(
        &self,
        table: &TableName,
        create: &TableName,
        spec: &Table,
        others: &[TableName],
    ) -> Result<(), ClickHouseError> {
        self.create_table(create, spec).await?;
        let mut physicals: Vec<TableName> = others.to_vec();
        physicals.push(create.clone());
        let mut union: Vec<(String, String)> = Vec::new();
        for p in physicals.iter().rev() {
            for (n, t) in self.columns_of(p).await? {
                if !union.iter().any(|(u, _)| *u == n) {
                    union.push((n, t));
                }
            }
        }
        for p in &physicals {
            let have = self.columns_of(p).await?;
            for (n, t) in &union {
                if !have.iter().any(|(h, _)| h == n) {
                    self.run(&format!(
                        "ALTER TABLE {}{} ADD COLUMN {} {t}",
                        table_sql(p),
                        self.on(),
                        quote(n)
                    ))
                    .await?;
                }
            }
        }
        self.rebuild_distributed(table, &union, &[], Some(spec.shard_by.as_deref()))
            .await
    }

    /// The undo: the new physical table dropped if no row reached it on any shard, then
    /// the columns the switch added dropped (only then: the Merge needs every column in
    /// every table), and the sharding key that was restored.
    pub(super) async fn unswitch_generation_on_cluster(
        &self,
        table: &TableName,
        create: &TableName,
        added: &[(TableName, String)],
        shard_by: Option<&str>,
    ) -> Result<(), ClickHouseError> {
        if self.rows_on_cluster(create).await? > 0 {
            // Rows reached the new table: it stays, read by the Merge.
            return Ok(());
        }
        self.drop_table(create).await?;
        for (t, column) in added {
            self.drop_column(t, column).await?;
        }
        if self.is_distributed(table).await? {
            self.rebuild_distributed(table, &[], &[], Some(shard_by))
                .await?;
        }
        Ok(())
    }

    /// The rows of a table on every node (its active parts; replicas count twice: only
    /// "none" matters).
    async fn rows_on_cluster(&self, table: &TableName) -> Result<u64, ClickHouseError> {
        let filter = format!(
            "database = {} AND table = {} AND active",
            literal(&table.database),
            literal(&table.name)
        );
        let mut rows = 0;
        for r in self.over_nodes("rows", "parts", &filter).await? {
            let n = r.get(1).map(String::as_str).unwrap_or("0");
            rows += n
                .parse::<u64>()
                .map_err(|e| ClickHouseError::State(format!("system.parts.rows `{n}`: {e}")))?;
        }
        Ok(rows)
    }

    /// A table some nodes lack, made again there from the statement of a node that has
    /// it: `IF NOT EXISTS … ON CLUSTER` changes nothing where it is.
    pub(super) async fn repair_table(&self, table: &TableName) -> Result<(), ClickHouseError> {
        let filter = format!(
            "database = {} AND name = {}",
            literal(&table.database),
            literal(&table.name)
        );
        let rows = self
            .over_nodes("create_table_query", "tables", &filter)
            .await?;
        let Some(statement) = rows.iter().find_map(|r| r.get(1)).cloned() else {
            return Err(ClickHouseError::State(format!(
                "{table} is on no node of the cluster any more"
            )));
        };
        self.run(&self.with_on(&super::if_not_exists(&statement)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_on_cluster_after_the_name() {
        assert_eq!(
            with_on_cluster(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v TO db.t (a UInt8) AS SELECT 1",
                "c-1"
            ),
            "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v ON CLUSTER `c-1` TO db.t (a UInt8) AS SELECT 1"
        );
        assert_eq!(
            with_on_cluster("CREATE TABLE `d`.`a b`(x UInt8) ENGINE = Null", "c"),
            "CREATE TABLE `d`.`a b` ON CLUSTER `c`(x UInt8) ENGINE = Null"
        );
    }

    #[test]
    fn reads_the_sharding_key() {
        assert_eq!(
            sharding_key_of("Distributed(`paver-test`, 'db', 't__paver_merge', cityHash64(a, b))"),
            "cityHash64(a, b)"
        );
        assert_eq!(sharding_key_of("Distributed(c, 'db', 't')"), "");
        assert_eq!(sharding_key_of("MergeTree ORDER BY a"), "");
    }
}
