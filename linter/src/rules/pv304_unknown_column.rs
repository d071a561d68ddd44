//! PV304 unknown-column: a transform reads a column that its Avro schema does not have.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{sql_span, Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports each column that `spec.transform.query` reads from `source` but that is not
    /// a field of the record in `source.schema` (`<subject>@<version>`). Aliases defined in
    /// the SELECT and lambda parameters are not columns.
    ///
    /// ## Why is this bad?
    /// The materialized view would fail to build when the pipeline is applied, or, worse,
    /// after a schema change that removed the field, fail on the first block of data.
    ///
    /// ## Example
    /// ```yaml
    /// source:
    ///   schema: user-events@1       # fields userId, eventType, eventTime, properties
    /// transform:
    ///   query: SELECT userId, sessionId FROM source
    /// ```
    ///
    /// ## Use instead
    /// Read only the schema's fields, or move the pipeline to a schema version that has
    /// the field (`user-events@2`).
    pub struct UnknownColumn {
        code: "PV304",
        name: "unknown-column",
        severity: Error,
        summary: "a transform reads a column that is not a field of its Avro schema",
    }
}

impl Rule for UnknownColumn {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let (Some(Ok(transform)), Some(query)) = (
                ws.transform(file),
                root.path(&["spec", "transform", "query"]),
            ) else {
                continue;
            };
            let Some(reference) = root
                .path(&["spec", "source", "schema"])
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let Some(Some(fields)) = ws.schema_ref(reference).map(|f| ws.avro_fields(f)) else {
                continue;
            };
            for column in &transform.reads {
                if fields.iter().any(|f| f.name == column.name) {
                    continue;
                }
                let span = sql_span(file, query, column.pos);
                let d = self
                    .diagnostic(
                        &file.path,
                        span,
                        format!("`{}` is not a field of `{reference}`", column.name),
                    )
                    .label("unknown column");
                out.push(
                    match did_you_mean(&column.name, fields.iter().map(|f| f.name.as_str())) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(format!(
                            "the fields of `{reference}` are: {}",
                            fields
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    },
                );
            }
        }
    }
}
