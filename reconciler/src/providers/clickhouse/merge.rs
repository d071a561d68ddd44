//! The ClickHouse provider on one server: a sink's new physical table (a generation),
//! `db.table` made (or remade) a Merge table over `<table>__v<N>`, switched in one
//! `RENAME`, and its undo.

use super::{literal, quote, table_sql, ClickHouse, ClickHouseError};
use crate::plan::{Table, TableName};

impl ClickHouse {
    /// A new physical table for a sink (see `Action::SwitchGeneration`). Every step is
    /// safe to run again.
    pub(super) async fn switch_generation(
        &self,
        table: &TableName,
        create: &TableName,
        spec: &Table,
        original: Option<&TableName>,
        others: &[TableName],
    ) -> Result<(), ClickHouseError> {
        self.create_table(create, spec).await?;
        // Every physical table gets every column (a Merge reads a column only if every
        // table it reads has it).
        let mut physicals: Vec<TableName> = others.to_vec();
        if original.is_some() {
            physicals.push(table.clone());
        }
        physicals.push(create.clone());
        // The Merge table being replaced keeps its columns' order (`SELECT *` stays the
        // same); the new table's columns, then the older tables', follow.
        let mut union: Vec<(String, String)> = match original {
            None => self.columns_of(table).await?,
            Some(_) => Vec::new(),
        };
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
                        "ALTER TABLE {} ADD COLUMN {} {t}",
                        table_sql(p),
                        quote(n)
                    ))
                    .await?;
                }
            }
        }
        let next = TableName {
            database: table.database.clone(),
            name: format!("{}__paver_next", table.name),
        };
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
        let defs: Vec<String> = union
            .iter()
            .map(|(n, t)| format!("{} {t}", quote(n)))
            .collect();
        self.drop_table(&next).await?;
        self.run(&format!(
            "CREATE TABLE {} ({}) ENGINE = Merge({}, {})",
            table_sql(&next),
            defs.join(", "),
            literal(&table.database),
            literal(&format!("^{regex}__v[0-9]+$"))
        ))
        .await?;
        // The switch: one RENAME, so that `db.table` always answers.
        match original {
            Some(original) => {
                self.run(&format!(
                    "RENAME TABLE {} TO {}, {} TO {}",
                    table_sql(table),
                    table_sql(original),
                    table_sql(&next),
                    table_sql(table)
                ))
                .await
            }
            None => {
                let previous = TableName {
                    database: table.database.clone(),
                    name: format!("{}__paver_prev", table.name),
                };
                self.drop_table(&previous).await?;
                self.run(&format!(
                    "RENAME TABLE {} TO {}, {} TO {}",
                    table_sql(table),
                    table_sql(&previous),
                    table_sql(&next),
                    table_sql(table)
                ))
                .await?;
                self.drop_table(&previous).await
            }
        }
    }

    /// The undo of a switch: the original table back under the sink's name, and the new
    /// physical table dropped, unless rows reached it (then it stays, read by the Merge).
    pub(super) async fn unswitch_generation(
        &self,
        table: &TableName,
        create: &TableName,
        original: Option<&TableName>,
    ) -> Result<(), ClickHouseError> {
        let exists = |t: &TableName| {
            format!(
                "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
                literal(&t.database),
                literal(&t.name)
            )
        };
        let rows_in_new = if self.rows(&exists(create)).await?[0][0] == "1" {
            self.rows(&format!("SELECT count() FROM {}", table_sql(create)))
                .await?[0][0]
                .clone()
        } else {
            "absent".to_string()
        };
        if let Some(original) = original {
            if rows_in_new == "0" || rows_in_new == "absent" {
                if self.rows(&exists(original)).await?[0][0] == "1" {
                    let next = TableName {
                        database: table.database.clone(),
                        name: format!("{}__paver_next", table.name),
                    };
                    self.drop_table(&next).await?;
                    self.run(&format!(
                        "RENAME TABLE {} TO {}, {} TO {}",
                        table_sql(table),
                        table_sql(&next),
                        table_sql(original),
                        table_sql(table)
                    ))
                    .await?;
                    self.drop_table(&next).await?;
                }
            } else {
                // Rows reached the new table: the Merge stays, so that none disappears.
                return Ok(());
            }
        }
        if rows_in_new == "0" {
            self.drop_table(create).await?;
        }
        Ok(())
    }
}
