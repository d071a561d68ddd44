//! PV303 transform-query: a pipeline's transform is not exactly one `SELECT … FROM source`.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{sql_span, Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Parses `spec.transform.query` with ClickHouse's dialect and requires exactly one
    /// `SELECT` that reads only the stream named `source`: no second statement, no other
    /// table, no JOIN, no subquery, no table function (`url`, `file`, `remote`, `s3`, …),
    /// no function that reads other data (`dictGet`, `joinGet`), no `WITH`, `UNION`,
    /// `LIMIT`, `SETTINGS`, `FORMAT` or `INTO OUTFILE`; and every output column has a
    /// name (an expression needs `AS <column>`), each name once.
    ///
    /// ## Why is this bad?
    /// The transform runs inside ClickHouse on every block of ingested rows, with paver's
    /// credentials. Anything beyond a row-by-row SELECT over the stream either reads data
    /// it should not (other tables, files, URLs), changes the server (a second statement),
    /// or loses rows at random (LIMIT per block).
    ///
    /// ## Example
    /// ```sql
    /// SELECT userId, lower(eventType) FROM source;
    /// DROP TABLE analytics.users
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// SELECT userId, lower(eventType) AS eventType FROM source
    /// ```
    pub struct TransformQuery {
        code: "PV303",
        name: "transform-query",
        severity: Error,
        summary: "a transform is not exactly one SELECT over `source`",
    }
}

impl Rule for TransformQuery {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let (Some(Err(problems)), Some(node)) = (
                ws.transform(file),
                root.path(&["spec", "transform", "query"]),
            ) else {
                continue;
            };
            for problem in problems {
                let mut d = self.diagnostic(
                    &file.path,
                    sql_span(file, node, problem.pos),
                    problem.message.clone(),
                );
                if let Some(help) = &problem.help {
                    d = d.help(help.clone());
                }
                out.push(d);
            }
        }
    }
}
