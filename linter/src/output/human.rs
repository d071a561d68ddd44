//! `--format human`: rustc-style diagnostics, the snippet with a caret under the token and a
//! `help:` line.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use crate::diagnostic::{Diagnostic, Severity};
use crate::yaml::Pos;
use crate::Report;

/// Render every finding, then a one-line summary.
pub fn render(report: &Report, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for d in &report.diagnostics {
        out.push_str(&render_one(report, d, &renderer));
        out.push_str("\n\n");
    }
    out.push_str(&changes(report));
    out.push_str(&summary(report));
    out
}

/// The classified changes of the new versions, one block per resource.
pub fn changes(report: &Report) -> String {
    let ws = &report.workspace;
    if ws.changes.is_empty() {
        return String::new();
    }
    let mut out = match &ws.base {
        Some(base) => format!("changes against `{}`:\n", base.name),
        None => "changes of the newest versions:\n".to_string(),
    };
    for change in &ws.changes {
        out.push_str(&format!(
            "  {}/{} v{} → v{} ({})\n",
            change.kind.folder(),
            change.name,
            change.from,
            change.to,
            change.impact().as_str()
        ));
        if change.items.is_empty() {
            out.push_str("    (no change to what is applied)\n");
        }
        for item in &change.items {
            out.push_str(&format!("    {:<18} {}\n", item.impact.as_str(), item.what));
        }
    }
    out.push('\n');
    out
}

/// `paver-lint: 14 files checked: 2 errors, 1 warning`
pub fn summary(report: &Report) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "paver-lint: {} checked: {}, {}\n",
        plural(report.workspace.files.len(), "file"),
        plural(report.errors(), "error"),
        plural(report.warnings(), "warning"),
    )
}

fn render_one(report: &Report, d: &Diagnostic, renderer: &Renderer) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = level.primary_title(d.message.as_str()).id(d.code);
    let label = d.label.as_deref().unwrap_or("");
    let mut group = match report.text(&d.file) {
        Some(text) => {
            let mut snippet = Snippet::source(text)
                .line_start(1)
                .path(d.file.as_str())
                .fold(true)
                .annotation(
                    AnnotationKind::Primary
                        .span(byte_range(text, d.span.start, d.span.end))
                        .label(label),
                );
            for r in d.related.iter().filter(|r| r.file == d.file) {
                snippet = snippet.annotation(
                    AnnotationKind::Context
                        .span(byte_range(text, r.span.start, r.span.end))
                        .label(r.label.as_str()),
                );
            }
            title.element(snippet)
        }
        None => title.element(Level::NOTE.message(format!(
            "in {}:{}:{}",
            d.file, d.span.start.line, d.span.start.col
        ))),
    };
    let mut others = Vec::new();
    for r in d.related.iter().filter(|r| r.file != d.file) {
        if let Some(text) = report.text(&r.file) {
            others.push(
                Snippet::source(text)
                    .line_start(1)
                    .path(r.file.as_str())
                    .fold(true)
                    .annotation(
                        AnnotationKind::Context
                            .span(byte_range(text, r.span.start, r.span.end))
                            .label(r.label.as_str()),
                    ),
            );
        }
    }
    for snippet in others {
        group = group.element(snippet);
    }
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    let report_groups: [Group<'_>; 1] = [group];
    renderer.render(&report_groups)
}

/// The byte range of a span, kept to its first line and at least one character wide so
/// that the caret shows.
fn byte_range(text: &str, start: Pos, end: Pos) -> std::ops::Range<usize> {
    let begin = offset(text, start);
    let line_end = text[begin..].find('\n').map_or(text.len(), |i| begin + i);
    let mut stop = if end.line == start.line && end.col > start.col {
        offset(text, end).min(line_end)
    } else if end > start {
        line_end
    } else {
        begin
    };
    if stop <= begin {
        stop = text[begin..]
            .chars()
            .next()
            .map_or(begin, |c| begin + c.len_utf8());
        if stop > line_end && line_end > begin {
            stop = line_end;
        }
    }
    begin..stop
}

/// Byte offset of a 1-based line and character column.
fn offset(text: &str, pos: Pos) -> usize {
    let mut line_start = 0;
    for _ in 1..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    line_start
        + line
            .char_indices()
            .nth(pos.col.saturating_sub(1) as usize)
            .map_or(line.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters() {
        let text = "a: é\nbc: d\n";
        assert_eq!(offset(text, Pos::new(1, 4)), 3);
        assert_eq!(offset(text, Pos::new(2, 5)), 10);
        assert_eq!(byte_range(text, Pos::new(2, 1), Pos::new(2, 3)), 6..8);
        assert_eq!(byte_range(text, Pos::new(2, 5), Pos::new(2, 5)), 10..11);
        assert_eq!(byte_range(text, Pos::new(1, 1), Pos::new(2, 3)), 0..5);
        assert_eq!(byte_range(text, Pos::new(1, 1), Pos::new(1, 1)), 0..1);
    }
}
