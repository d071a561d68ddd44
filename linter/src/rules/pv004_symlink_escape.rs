//! PV004 symlink-escape: a symlink leaves the repo, is broken, or links a directory

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a symlink in a managed folder that points outside the platform repo, points
    /// nowhere, or points to a directory. Links to files inside the repo are followed.
    ///
    /// ## Why is this bad?
    /// The check must judge exactly what the reconciler will apply. A link to
    /// `/etc/...` or `../../other-repo` makes the result depend on the machine it runs on, and
    /// can leak files of the CI runner into diagnostics.
    ///
    /// ## Example
    /// ```text
    /// topics/user-events/v2.yaml -> /home/me/drafts/topic.yaml
    /// ```
    ///
    /// ## Use instead
    /// Commit the file itself.
    pub struct SymlinkEscape {
        code: "PV004",
        name: "symlink-escape",
        severity: Error,
        summary: "a symlink leaves the repo, is broken, or links a directory",
    }
}

impl Rule for SymlinkEscape {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
