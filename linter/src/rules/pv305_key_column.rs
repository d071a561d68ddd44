//! PV305 key-column: a sink key uses a column that the transform does not output.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{sql_span, Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a column in `sink.partitionKey`, `sink.orderKey` or `sink.shardingKey` that is not an output
    /// column of the transform (or, without a transform or with `SELECT *`, a field of
    /// the source schema).
    ///
    /// ## Why is this bad?
    /// The keys are expressions over the sink table's columns, which are the transform's
    /// outputs. `CREATE TABLE` would fail at apply time, after the merge.
    ///
    /// ## Example
    /// ```yaml
    /// transform:
    ///   query: SELECT userId, eventTime FROM source
    /// sink:
    ///   orderKey: (userId, eventType)
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// sink:
    ///   orderKey: (userId, eventTime)
    /// ```
    pub struct KeyColumn {
        code: "PV305",
        name: "key-column",
        severity: Error,
        summary: "a sink key uses a column that the transform does not output",
    }
}

impl Rule for KeyColumn {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let mut columns: Vec<String> = Vec::new();
            let mut from_schema = root.path(&["spec", "transform"]).is_none();
            match ws.transform(file) {
                Some(Ok(t)) => {
                    columns.extend(t.outputs.iter().cloned());
                    from_schema |= t.wildcard;
                }
                Some(Err(_)) => continue, // PV303 reports the transform
                None => {}
            }
            if from_schema {
                let reference = root
                    .path(&["spec", "source", "schema"])
                    .and_then(|n| n.as_str());
                match reference
                    .and_then(|r| ws.schema_ref(r))
                    .map(|f| ws.avro_fields(f))
                {
                    Some(Some(fields)) => columns.extend(fields.iter().map(|f| f.name.clone())),
                    _ => continue, // PV202 / PV501 report the schema
                }
            }
            for key in ["partitionKey", "orderKey", "shardingKey"] {
                let Some(node) = root.path(&["spec", "sink", key]) else {
                    continue;
                };
                let Some(Ok(reads)) = ws.key(file, key) else {
                    continue;
                };
                for column in reads {
                    if columns.contains(&column.name) {
                        continue;
                    }
                    let span = sql_span(file, node, column.pos);
                    let d = self
                        .diagnostic(
                            &file.path,
                            span,
                            format!(
                                "`sink.{key}` uses `{}`, which is not a column of the sink table",
                                column.name
                            ),
                        )
                        .label("not a sink column");
                    out.push(
                        match did_you_mean(&column.name, columns.iter().map(String::as_str)) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(format!(
                                "the sink table's columns are: {}",
                                columns.join(", ")
                            )),
                        },
                    );
                }
            }
        }
    }
}
