//! `--format json`: `{"diagnostics": [{"rule", "severity", "file", "line", "column", "message", …}]}`.

use serde_json::{json, Value};

use crate::Report;

/// Render the report as one JSON document. Paths are relative to the repo root; lines and
/// columns are 1-based.
pub fn render(report: &Report) -> String {
    let diagnostics: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let mut v = json!({
                "rule": d.code,
                "name": d.name,
                "severity": d.severity.as_str(),
                "file": d.file,
                "line": d.span.start.line,
                "column": d.span.start.col,
                "endLine": d.span.end.line.max(d.span.start.line),
                "endColumn": if d.span.end > d.span.start { d.span.end.col } else { d.span.start.col },
                "message": d.message,
            });
            if let Some(help) = &d.help {
                v["help"] = json!(help);
            }
            v
        })
        .collect();
    let doc = json!({
        "diagnostics": diagnostics,
        "summary": {
            "errors": report.errors(),
            "warnings": report.warnings(),
            "files": report.workspace.files.len(),
        },
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
