//! The four renderings of a report: `human`, `github`, `json` and `sarif`.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

/// Which rendering `--format` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// rustc-style diagnostics with the source snippet, for people.
    Human,
    /// GitHub Actions workflow commands (annotations) and a job summary.
    Github,
    /// `{"diagnostics": [...]}`, for scripts.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}
