//! `--format json`: `{"diagnostics": [{"rule", "severity", "file", "line", "column", "message", …}]}`.

use serde::Serialize;

use crate::Report;

#[derive(Serialize)]
struct Document<'a> {
    diagnostics: Vec<Finding<'a>>,
    changes: Vec<Change<'a>>,
    summary: Summary,
}

#[derive(Serialize)]
struct Change<'a> {
    kind: &'a str,
    name: &'a str,
    from: u32,
    to: u32,
    file: &'a str,
    impact: &'a str,
    items: Vec<ChangeItem<'a>>,
}

#[derive(Serialize)]
struct ChangeItem<'a> {
    impact: &'a str,
    what: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding<'a> {
    rule: &'a str,
    severity: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    message: &'a str,
    name: &'a str,
    end_line: u32,
    end_column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
}

#[derive(Serialize)]
struct Summary {
    errors: usize,
    warnings: usize,
    files: usize,
}

/// Render the report as one JSON document. Paths are relative to the repo root; lines and
/// columns are 1-based; the end is exclusive and on the same line as the start.
pub fn render(report: &Report) -> String {
    let diagnostics = report
        .diagnostics
        .iter()
        .map(|d| {
            let same_line =
                d.span.end.line == d.span.start.line && d.span.end.col > d.span.start.col;
            Finding {
                rule: d.code,
                severity: d.severity.as_str(),
                file: &d.file,
                line: d.span.start.line,
                column: d.span.start.col,
                message: &d.message,
                name: d.name,
                end_line: d.span.start.line,
                end_column: if same_line {
                    d.span.end.col
                } else {
                    d.span.start.col
                },
                help: d.help.as_deref(),
            }
        })
        .collect();
    let ws = &report.workspace;
    let changes = ws
        .changes
        .iter()
        .map(|c| Change {
            kind: c.kind.name(),
            name: &c.name,
            from: c.from,
            to: c.to,
            file: &ws.files[c.file].path,
            impact: c.impact().as_str(),
            items: c
                .items
                .iter()
                .map(|i| ChangeItem {
                    impact: i.impact.as_str(),
                    what: &i.what,
                })
                .collect(),
        })
        .collect();
    let doc = Document {
        diagnostics,
        changes,
        summary: Summary {
            errors: report.errors(),
            warnings: report.warnings(),
            files: report.workspace.files.len(),
        },
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
