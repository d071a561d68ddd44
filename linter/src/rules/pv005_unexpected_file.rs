//! PV005 unexpected-file: a file in a managed folder is not in the repo layout

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a file under `topics/`, `clusters/`, `pipelines/` or `schemas/` whose path is not
    /// `<folder>/<name>/v<N>.yaml` (`v<N>.avsc` or `subject.yaml` under `schemas/`): a `.yml`
    /// extension, a version with leading zeros, a file one folder too deep or too shallow.
    /// Markdown files are ignored.
    ///
    /// ## Why is this bad?
    /// paver would not read the file at all, so a change written there would never reach
    /// production, silently.
    ///
    /// ## Example
    /// ```text
    /// topics/user-events.yaml
    /// topics/user-events/v2.yml
    /// ```
    ///
    /// ## Use instead
    /// ```text
    /// topics/user-events/v2.yaml
    /// ```
    pub struct UnexpectedFile {
        code: "PV005",
        name: "unexpected-file",
        severity: Error,
        summary: "a file in a managed folder is not in the repo layout",
    }
}

impl Rule for UnexpectedFile {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
