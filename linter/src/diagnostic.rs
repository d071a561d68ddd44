//! A finding: which rule, how bad, where, and what to do about it.

use serde::Serialize;

use crate::yaml::Span;

/// How a finding affects the exit code: errors fail the check, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding of one rule in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The rule's stable id, `PV###`.
    pub code: &'static str,
    /// The rule's kebab-case name.
    pub name: &'static str,
    pub severity: Severity,
    /// Path relative to the repo root, with `/` separators.
    pub file: String,
    pub span: Span,
    pub message: String,
    /// The label under the caret; the message is used when there is none.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places that explain the finding (the first of two duplicate keys, say).
    pub related: Vec<Related>,
}

/// A secondary location of a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub file: String,
    pub span: Span,
    pub label: String,
}

impl Diagnostic {
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(
        mut self,
        file: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        self.related.push(Related {
            file: file.into(),
            span,
            label: label.into(),
        });
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The order findings are printed in: by file, then position, then rule.
    pub fn sort_key(&self) -> (&str, u32, u32, &str) {
        (
            &self.file,
            self.span.start.line,
            self.span.start.col,
            self.code,
        )
    }
}

/// "did you mean `x`?" for a misspelt name among the candidates, if one is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let d = edit_distance(&word.to_lowercase(), &candidate.to_lowercase());
        let limit = (candidate.chars().count().max(3) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("partitons", ["partitions", "config"]),
            Some("partitions")
        );
        assert_eq!(
            did_you_mean("retention.ms", ["retention.ms"]),
            Some("retention.ms")
        );
        assert_eq!(did_you_mean("zzz", ["partitions", "config"]), None);
    }
}
