//! paver-lint: the pull-request check of a paver platform repo.
//!
//! A repo is read ([`source`]), classified by path ([`layout`]), parsed with positions
//! under limits ([`yaml`]), validated against the embedded JSON Schemas ([`schema`]) into a
//! [`workspace::Workspace`], and then every [`rules`] rule inspects it. The findings are
//! [`diagnostic::Diagnostic`]s, rendered by [`output`] as human, GitHub, JSON or SARIF text.
//!
//! The reconciler uses the same library to refuse a revision that does not lint clean, so
//! the PR check and the deploy judge a commit the same way.

use std::io;
use std::path::Path;

pub mod avro;
pub mod base;
pub mod changes;
pub mod clickhouse;
pub mod diagnostic;
pub mod json;
pub mod layout;
pub mod output;
pub mod par;
pub mod rules;
pub mod schema;
pub mod source;
pub mod sql;
pub mod workspace;
pub mod yaml;

use diagnostic::{Diagnostic, Severity};
use source::Collected;
use workspace::Workspace;

/// Everything one lint run found.
#[derive(Debug)]
pub struct Report {
    pub workspace: Workspace,
    /// Sorted by file, position and rule.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// The text of a file of the repo, when it was read.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.workspace
            .files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.text.as_str())
            .filter(|t| !t.is_empty())
    }
}

/// Lint the platform repo at `root`. Fails only when the repo cannot be read at all.
pub fn lint_dir(root: &Path) -> io::Result<Report> {
    Ok(lint(source::collect(root)?))
}

/// Lint files already read (from disk, or from a git tree).
pub fn lint(collected: Collected) -> Report {
    lint_against(collected, None)
}

/// Lint the platform repo at `root` as a pull request against the released state at the
/// git ref `base`: released versions must be unchanged, and only the newest may go.
pub fn lint_dir_against(root: &Path, base: &str) -> Result<Report, LintError> {
    let collected = source::collect(root).map_err(LintError::Repo)?;
    let files = base::read(root, base)?;
    let base = workspace::Base {
        name: base.to_string(),
        files: files.into_iter().map(|f| (f.path, f.bytes)).collect(),
    };
    Ok(lint_against(collected, Some(base)))
}

/// Why the linter could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("cannot read the repo: {0}")]
    Repo(io::Error),
    #[error("cannot read the base: {0}")]
    Base(#[from] base::BaseError),
}

/// Lint files already read, against a released state when there is one.
pub fn lint_against(collected: Collected, base: Option<workspace::Base>) -> Report {
    let (mut workspace, mut diagnostics) = Workspace::load(collected.files);
    workspace.base = base;
    workspace.changes = changes::classify(&workspace);
    diagnostics.extend(collected.diagnostics);
    for found in par::map(rules::ALL, |rule| {
        let mut found = Vec::new();
        rule.check(&workspace, &mut found);
        found
    }) {
        diagnostics.extend(found);
    }
    // Rules of the files themselves (PV0xx) cannot be turned off: what does not load
    // cannot be judged.
    let disabled = &workspace.settings.disabled;
    diagnostics.retain(|d| d.code < "PV100" || !disabled.iter().any(|c| c == d.code));
    diagnostics.sort_by(|a, b| {
        a.sort_key()
            .cmp(&b.sort_key())
            .then_with(|| a.message.cmp(&b.message))
    });
    diagnostics.dedup();
    Report {
        workspace,
        diagnostics,
    }
}
