//! `--format github`: workflow commands that GitHub shows as annotations on the pull
//! request, within its limits (10 errors and 10 warnings per step), and every finding in
//! the job summary.

use std::fmt::Write as _;

use crate::diagnostic::{Diagnostic, Severity};
use crate::Report;

/// GitHub shows at most this many annotations of each severity per step.
pub const ANNOTATIONS_PER_SEVERITY: usize = 10;

/// The workflow commands for stdout, and the Markdown for `$GITHUB_STEP_SUMMARY`.
/// `prefix` is the repo root's path relative to the workflow's checkout (`""` when the
/// platform repo is the checkout itself), so that annotations land on the right files.
pub fn render(report: &Report, prefix: &str) -> (String, String) {
    let mut out = String::new();
    let (mut errors, mut warnings) = (0, 0);
    let mut not_annotated = 0;
    for d in &report.diagnostics {
        let count = match d.severity {
            Severity::Error => &mut errors,
            Severity::Warning => &mut warnings,
        };
        *count += 1;
        let path = format!("{prefix}{}", d.file);
        if *count <= ANNOTATIONS_PER_SEVERITY {
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            let _ = writeln!(
                out,
                "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                d.severity.as_str(),
                property(&path),
                d.span.start.line,
                d.span.start.col,
                d.span.end.line.max(d.span.start.line),
                end_column(d),
                property(&format!("{} {}", d.code, d.name)),
                data(&message),
            );
        } else {
            not_annotated += 1;
            let _ = writeln!(
                out,
                "{path}:{}:{}: {} {}: {}",
                d.span.start.line,
                d.span.start.col,
                d.severity.as_str(),
                d.code,
                d.message
            );
        }
    }
    out.push_str(&crate::output::human::summary(report));
    if not_annotated > 0 {
        let _ = writeln!(
            out,
            "paver-lint: {not_annotated} findings over GitHub's annotation limit are listed above and in the job summary"
        );
    }
    (out, summary(report, prefix))
}

fn end_column(d: &Diagnostic) -> u32 {
    if d.span.end.line == d.span.start.line && d.span.end.col > d.span.start.col {
        d.span.end.col
    } else {
        d.span.start.col
    }
}

/// The job summary: counts and a table of every finding.
fn summary(report: &Report, prefix: &str) -> String {
    let mut md = String::from("## paver-lint\n\n");
    let _ = writeln!(
        md,
        "{} files checked: **{} errors**, **{} warnings**.\n",
        report.workspace.files.len(),
        report.errors(),
        report.warnings()
    );
    let ws = &report.workspace;
    if !ws.changes.is_empty() {
        md.push_str(
            "### Changes\n\n| resource | versions | impact | what changes |\n|---|---|---|---|\n",
        );
        for c in &ws.changes {
            for (i, item) in c.items.iter().enumerate() {
                let (resource, versions) = if i == 0 {
                    (
                        format!("`{}/{}`", c.kind.folder(), c.name),
                        format!("v{} → v{}", c.from, c.to),
                    )
                } else {
                    (String::new(), String::new())
                };
                let _ = writeln!(
                    md,
                    "| {resource} | {versions} | {} | {} |",
                    item.impact.as_str(),
                    cell(&item.what)
                );
            }
        }
        md.push('\n');
    }
    if report.diagnostics.is_empty() {
        md.push_str("No findings.\n");
        return md;
    }
    md.push_str("### Findings\n\n");
    md.push_str("| | location | rule | message |\n|---|---|---|---|\n");
    for d in &report.diagnostics {
        let icon = match d.severity {
            Severity::Error => ":x:",
            Severity::Warning => ":warning:",
        };
        let _ = writeln!(
            md,
            "| {icon} | `{prefix}{}:{}:{}` | {} {} | {} |",
            d.file,
            d.span.start.line,
            d.span.start.col,
            d.code,
            d.name,
            cell(&d.message)
        );
    }
    md
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Escape the message part of a workflow command.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value of a workflow command.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_actions_toolkit() {
        assert_eq!(data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
