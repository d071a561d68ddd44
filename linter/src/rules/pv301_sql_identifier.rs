//! PV301 sql-identifier: a sink table or key that would not be safe to write into DDL.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{sql_span, Rule, RuleMeta};
use crate::workspace::Workspace;

/// Databases paver never writes into.
const RESERVED_DATABASES: [&str; 3] = ["system", "information_schema", "INFORMATION_SCHEMA"];

crate::rules::declare_rule! {
    /// ## What it does
    /// Checks what a pipeline's sink puts into ClickHouse DDL: `sink.table` must be
    /// `<database>.<table>` of plain identifiers outside ClickHouse's own databases
    /// (`system`, `information_schema`) and not named like paver's internal objects
    /// (`__paver…`); `sink.partitionKey`, `sink.orderKey` and `sink.shardingKey` must each parse as exactly
    /// one ClickHouse expression, with no subquery and no function that reads other data.
    ///
    /// ## Why is this bad?
    /// These strings become `CREATE TABLE … PARTITION BY … ORDER BY …`. A key such as
    /// `userId) ENGINE = Log; DROP TABLE analytics.users; --` is SQL injection by pull
    /// request. paver renders the DDL from the parsed expression, and refuses anything
    /// that does not parse as one expression.
    ///
    /// ## Example
    /// ```yaml
    /// sink:
    ///   table: system.user_events
    ///   orderKey: userId, eventTime
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// sink:
    ///   table: analytics.user_events
    ///   orderKey: (userId, eventTime)
    /// ```
    pub struct SqlIdentifier {
        code: "PV301",
        name: "sql-identifier",
        severity: Error,
        summary: "a sink table name or key is not a safe ClickHouse identifier or expression",
    }
}

impl Rule for SqlIdentifier {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::DataPipeline) {
            if let Some(node) = root.path(&["spec", "sink", "table"]) {
                if let Some((db, table)) = node.as_str().and_then(|t| t.split_once('.')) {
                    if RESERVED_DATABASES.contains(&db) {
                        out.push(
                            self.diagnostic(&file.path, node.span, format!("`{db}` is ClickHouse's own database"))
                                .help("write the sink into a database of your own, e.g. `analytics.<table>`"),
                        );
                    }
                    if table.starts_with("__paver") {
                        out.push(
                            self.diagnostic(&file.path, node.span, format!("`{table}` is named like paver's internal tables"))
                                .help("names starting with `__paver` are reserved for staging tables and views"),
                        );
                    }
                }
            }
            for key in ["partitionKey", "orderKey", "shardingKey"] {
                let Some(node) = root.path(&["spec", "sink", key]) else {
                    continue;
                };
                if let Some(Err(problem)) = ws.key(file, key) {
                    let mut d = self.diagnostic(
                        &file.path,
                        sql_span(file, node, problem.pos),
                        format!("`sink.{key}`: {}", problem.message),
                    );
                    if let Some(help) = &problem.help {
                        d = d.help(help.clone());
                    }
                    out.push(d);
                }
            }
        }
    }
}
