//! PV503 unresolved-type: an Avro schema names a type that no file of the repo defines, or that several subjects define.

use crate::diagnostic::Diagnostic;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Resolves every named type an `.avsc` uses without defining it (`"type":
    /// "dev.paver.Address"`) among the other subjects of the repo: the type must be defined
    /// by exactly one other subject (its highest version that defines it is used). Reports
    /// a name that no subject defines, or that several do.
    ///
    /// ## Why is this bad?
    /// A producer or consumer cannot build a schema with a hole in it, and an ambiguous name
    /// means two teams own two different types under one name: whichever the tools pick,
    /// someone decodes the wrong shape.
    ///
    /// ## Example
    /// ```json
    /// {"name": "address", "type": "dev.paver.Adress"}
    /// ```
    ///
    /// ## Use instead
    /// ```json
    /// {"name": "address", "type": "dev.paver.Address"}
    /// ```
    /// with `dev.paver.Address` defined in one subject, e.g. `schemas/address/v1.avsc`.
    pub struct UnresolvedType {
        code: "PV503",
        name: "unresolved-type",
        severity: Error,
        summary: "an Avro schema uses a type name that no other subject (or more than one) defines",
    }
}

impl Rule for UnresolvedType {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let known: Vec<&str> = ws
            .files
            .iter()
            .filter_map(|f| f.avro.as_ref())
            .flat_map(|p| p.by_name.keys().map(String::as_str))
            .collect();
        for (id, names) in &ws.avro_unresolved {
            let file = &ws.files[*id];
            let Some(root) = &file.root else { continue };
            for (name, pointer, subjects) in names {
                let span = root.pointer_span(pointer, false);
                let d = if subjects.is_empty() {
                    let d = self.diagnostic(
                        &file.path,
                        span,
                        format!("no subject defines the type `{name}`"),
                    );
                    match crate::diagnostic::did_you_mean(name, known.iter().copied()) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help("define it in this file, or in one subject of the repo (`schemas/<subject>/v1.avsc`)"),
                    }
                } else {
                    self.diagnostic(
                        &file.path,
                        span,
                        format!("the type `{name}` is defined by several subjects: {}", subjects.join(", ")),
                    )
                    .help("a type name belongs to one subject: rename one of them (or give it another namespace)")
                };
                out.push(d.label("unresolved type"));
            }
        }
    }
}
