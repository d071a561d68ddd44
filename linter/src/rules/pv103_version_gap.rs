//! PV103 version-gap: the versions of a resource or subject skip a number.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::{Versions, Workspace};
use crate::yaml::{Pos, Span};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a resource (topic, cluster, pipeline) or Avro subject whose versions are not
    /// `v1`, `v2`, … without a gap.
    ///
    /// ## Why is this bad?
    /// Rollback removes the newest version and makes the one before it active. With a gap,
    /// "the one before" is ambiguous in review, and a removed middle version means a
    /// released version was deleted, which paver never allows.
    ///
    /// ## Example
    /// ```text
    /// topics/user-events/v1.yaml
    /// topics/user-events/v3.yaml
    /// ```
    ///
    /// ## Use instead
    /// ```text
    /// topics/user-events/v1.yaml
    /// topics/user-events/v2.yaml
    /// ```
    pub struct VersionGap {
        code: "PV103",
        name: "version-gap",
        severity: Error,
        summary: "the versions of a resource or subject are not 1..N without a gap",
    }
}

impl VersionGap {
    fn check_versions(
        &self,
        ws: &Workspace,
        what: &str,
        versions: &Versions,
        out: &mut Vec<Diagnostic>,
    ) {
        let mut expected = 1;
        for (n, id) in versions {
            if *n != expected {
                let missing = if *n == expected + 1 {
                    format!("v{expected}")
                } else {
                    format!("v{expected} to v{}", n - 1)
                };
                let file = &ws.files[*id];
                let ext = file.path.rsplit('.').next().unwrap_or("yaml");
                out.push(
                    self.diagnostic(&file.path, Span::at(Pos::new(1, 1)), format!("{what} has v{n} but not {missing}"))
                        .help(format!("versions are numbered without gaps: rename this file to `v{expected}.{ext}`")),
                );
            }
            expected = n + 1;
        }
    }
}

impl Rule for VersionGap {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for kind in Kind::ALL {
            for (name, versions) in ws.resources.get(&kind).into_iter().flatten() {
                self.check_versions(ws, &format!("{kind} `{name}`"), versions, out);
            }
        }
        for (name, subject) in &ws.subjects {
            self.check_versions(ws, &format!("subject `{name}`"), &subject.versions, out);
        }
    }
}
