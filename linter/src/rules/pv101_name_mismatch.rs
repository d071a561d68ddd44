//! PV101 name-mismatch: `metadata.name` differs from the folder the spec is in.

use crate::diagnostic::Diagnostic;
use crate::layout::Kind;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::Node;

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a spec whose `metadata.name` is not the name of its folder:
    /// `topics/<name>/v<N>.yaml` must say `name: <name>`.
    ///
    /// ## Why is this bad?
    /// The folder is how versions of one resource are found, compared and rolled back; the
    /// name is what is created in Kafka and ClickHouse. If they differ, a reviewer reading
    /// the path and the reconciler reading the name disagree about what is changing.
    ///
    /// ## Example
    /// ```yaml
    /// # topics/user-events/v2.yaml
    /// metadata:
    ///   name: user-event
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// metadata:
    ///   name: user-events
    /// ```
    pub struct NameMismatch {
        code: "PV101",
        name: "name-mismatch",
        severity: Error,
        summary: "metadata.name differs from the spec's folder",
    }
}

impl Rule for NameMismatch {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for kind in Kind::ALL {
            for (file, root) in ws.specs(kind) {
                let (Some((_, folder, _)), Some(node)) =
                    (file.spec(), root.path(&["metadata", "name"]))
                else {
                    continue;
                };
                let Some(name) = node.as_str() else { continue };
                if name != folder {
                    out.push(
                        self.diagnostic(
                            &file.path,
                            node.span,
                            format!("`metadata.name` is `{name}` but the folder is `{folder}`"),
                        )
                        .label(format!("expected `{folder}`"))
                        .help(format!(
                            "set `name: {folder}`, or move the file to `{}/{name}/`",
                            kind.folder()
                        )),
                    );
                }
            }
        }
    }
}

/// The `metadata.version` node of a spec, for rules that point at it.
pub fn version_node(root: &Node) -> Option<&Node> {
    root.path(&["metadata", "version"])
}
