//! PV104 wrong-kind: a spec's kind does not match the folder it is in

use crate::rules::{Rule, RuleMeta};

crate::rules::declare_rule! {
    /// ## What it does
    /// Reports a spec whose `kind` is another paver kind than its folder holds: a
    /// `DataPipeline` under `topics/`, say.
    ///
    /// ## Why is this bad?
    /// The folder decides how paver reads the file; a spec in the wrong folder would be
    /// validated, versioned and applied as something it is not.
    ///
    /// ## Example
    /// ```yaml
    /// # topics/user-events-ingestion/v1.yaml
    /// kind: DataPipeline
    /// ```
    ///
    /// ## Use instead
    /// Move the file to `pipelines/user-events-ingestion/v1.yaml`.
    pub struct WrongKind {
        code: "PV104",
        name: "wrong-kind",
        severity: Error,
        summary: "a spec's kind does not match the folder it is in",
    }
}

impl Rule for WrongKind {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }
}
