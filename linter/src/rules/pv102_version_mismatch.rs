//! PV102 version-mismatch: `metadata.version` differs from N of `v<N>.yaml`.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::pv101_name_mismatch::version_node;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a spec whose `metadata.version` is not the N of its file name `v<N>.yaml`.
    ///
    /// ## Why is this bad?
    /// Versions are immutable and ordered by their file names; the number inside the file
    /// is what status, history and rollbacks show. A `v3.yaml` that says `version: 2`
    /// (usually a copied file) makes those disagree.
    ///
    /// ## Example
    /// ```yaml
    /// # pipelines/user-events-ingestion/v3.yaml
    /// metadata:
    ///   version: 2
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// metadata:
    ///   version: 3
    /// ```
    pub struct VersionMismatch {
        code: "PV102",
        name: "version-mismatch",
        severity: Error,
        summary: "metadata.version differs from N of the file name v<N>.yaml",
    }
}

impl Rule for VersionMismatch {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for kind in Kind::ALL {
            for (file, root) in ws.specs(kind) {
                let (Some((_, _, n)), Some(node)) = (file.spec(), version_node(root)) else {
                    continue;
                };
                if node.as_i64() != Some(i64::from(n)) {
                    let written = node.scalar_text().unwrap_or_default();
                    out.push(
                        self.diagnostic(
                            &file.path,
                            node.span,
                            format!("`metadata.version` is {written} but the file is `v{n}.yaml`"),
                        )
                        .label(format!("expected {n}"))
                        .help(format!("set `version: {n}`")),
                    );
                }
            }
        }
    }
}
