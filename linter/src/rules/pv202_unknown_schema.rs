//! PV202 unknown-schema: a pipeline's `<subject>@<version>` names no schema in the repo.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a pipeline whose `source.schema: <subject>@<version>` does not name a file
    /// `schemas/<subject>/v<version>.avsc` in this repo.
    ///
    /// ## Why is this bad?
    /// The schema decides how records are decoded and which columns the transform may read.
    /// Without it, nothing about the pipeline's data can be checked before it runs.
    ///
    /// ## Example
    /// ```yaml
    /// source:
    ///   schema: user-events@3   # only v1 and v2 exist
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// source:
    ///   schema: user-events@2
    /// ```
    pub struct UnknownSchema {
        code: "PV202",
        name: "unknown-schema",
        severity: Error,
        summary: "a pipeline names an Avro subject or version that the repo does not have",
    }
}

impl Rule for UnknownSchema {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (file, root) in ws.specs(Kind::DataPipeline) {
            let Some(node) = root.path(&["spec", "source", "schema"]) else {
                continue;
            };
            let Some(reference) = node.as_str() else {
                continue;
            };
            let Some((subject, version)) = reference.rsplit_once('@') else {
                continue;
            };
            let d = match ws.subjects.get(subject) {
                None => {
                    let d = self.diagnostic(
                        &file.path,
                        node.span,
                        format!("no Avro subject `{subject}` in this repo"),
                    );
                    match did_you_mean(subject, ws.subjects.keys().map(String::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}@{version}`?")),
                        None => d.help(format!("add `schemas/{subject}/v1.avsc`")),
                    }
                }
                Some(s)
                    if version
                        .parse()
                        .is_ok_and(|v: u32| s.versions.contains_key(&v)) =>
                {
                    continue
                }
                Some(s) => {
                    let have: Vec<String> = s
                        .versions
                        .keys()
                        .map(|v| format!("{subject}@{v}"))
                        .collect();
                    self.diagnostic(
                        &file.path,
                        node.span,
                        format!("subject `{subject}` has no version {version}"),
                    )
                    .help(if have.is_empty() {
                        format!("add `schemas/{subject}/v{version}.avsc`")
                    } else {
                        format!("the subject's versions are {}", have.join(", "))
                    })
                }
            };
            out.push(d.label("unknown schema"));
        }
    }
}
