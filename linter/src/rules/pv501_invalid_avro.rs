//! PV501 invalid-avro: an `.avsc` file is not a well-formed Avro record schema.

use crate::diagnostic::Diagnostic;
use crate::layout::Role;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Checks the structure of each `schemas/<subject>/v<N>.avsc`: a record at the top;
    /// valid, unique names for types, fields and enum symbols; every field with a `type`;
    /// unions without nested unions or duplicate branches; arrays with `items`, maps with
    /// `values`, fixed types with a `size`; field defaults that fit the field's type (for a
    /// union, its first branch, as the specification says). Each problem names the JSON
    /// pointer inside the schema (`/fields/3/type`) and its line and column.
    ///
    /// ## Why is this bad?
    /// Producers and the reconciler would reject the schema at run time; a subject's
    /// record is also the list of columns a pipeline's transform can read.
    ///
    /// ## Example
    /// ```json
    /// {"type": "record", "name": "UserEvent", "fields": [
    ///   {"name": "userId", "type": "string"},
    ///   {"name": "userId", "type": ["null", "null"]}
    /// ]}
    /// ```
    ///
    /// ## Use instead
    /// ```json
    /// {"type": "record", "name": "UserEvent", "fields": [
    ///   {"name": "userId", "type": "string"},
    ///   {"name": "sessionId", "type": ["null", "string"], "default": null}
    /// ]}
    /// ```
    pub struct InvalidAvro {
        code: "PV501",
        name: "invalid-avro",
        severity: Error,
        summary: "an .avsc file is not a well-formed Avro record schema",
    }
}

impl Rule for InvalidAvro {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for file in &ws.files {
            if !matches!(file.role, Role::Avro { .. }) {
                continue;
            }
            let Some(parsed) = &file.avro else { continue };
            let mut problems = parsed.problems.clone();
            if problems.is_empty() && parsed.record_fields().is_none() {
                if let Some(root) = &file.root {
                    if let Err(top) = crate::avro::record_fields(root) {
                        problems.extend(top);
                    }
                }
            }
            for p in &problems {
                let at = if p.pointer.is_empty() {
                    "/"
                } else {
                    p.pointer.as_str()
                };
                let mut d = self
                    .diagnostic(&file.path, p.span, format!("{} (at `{at}`)", p.message))
                    .help("see \"Schema Declaration\" in the Avro specification for the shape of each type");
                if let Some(first) = p.first {
                    d = d.related(&file.path, first, "first defined here");
                }
                out.push(d);
            }
        }
    }
}
