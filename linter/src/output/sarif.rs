//! `--format sarif`: SARIF 2.1.0, which GitHub code scanning ingests.

use serde_json::{json, Value};

use crate::rules;
use crate::Report;

/// Render the report as a SARIF 2.1.0 log with one run. `prefix` is as for the GitHub
/// format: the repo root relative to the checkout.
pub fn render(report: &Report, prefix: &str) -> String {
    let rule_list: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            let m = r.meta();
            json!({
                "id": m.code,
                "name": m.name,
                "shortDescription": { "text": m.summary },
                "fullDescription": { "text": m.summary },
                "help": { "text": rules::explain(*r), "markdown": m.explanation },
                "defaultConfiguration": { "level": m.severity.as_str() },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let index = rules::ALL.iter().position(|r| r.meta().code == d.code).unwrap_or(0);
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let end_col = if d.span.end.line == d.span.start.line && d.span.end.col > d.span.start.col {
                d.span.end.col
            } else {
                d.span.start.col + 1
            };
            json!({
                "ruleId": d.code,
                "ruleIndex": index,
                "level": d.severity.as_str(),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": format!("{prefix}{}", d.file), "uriBaseId": "%SRCROOT%" },
                        "region": {
                            "startLine": d.span.start.line,
                            "startColumn": d.span.start.col,
                            "endLine": d.span.start.line,
                            "endColumn": end_col,
                        }
                    }
                }],
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "paver-lint",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/paver-dev/paver",
                    "rules": rule_list,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}
