//! PV601 released-version-edited: a version file that is released at the base was changed.

use crate::diagnostic::Diagnostic;
use crate::layout::Role;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::{Pos, Span};

crate::rules::declare_rule! {
    /// ## What it does
    /// With `--base <ref>`, compares every `v<N>.yaml` and `v<N>.avsc` that exists at the
    /// base with the pull request's file, byte for byte, and reports any change with the
    /// first changed lines.
    ///
    /// ## Why is this bad?
    /// A released version is what is running, and what a rollback returns to. Editing it in
    /// place rewrites history: the reconciler would see no new version to roll out
    /// blue/green, reviewers would see a change that cannot be reverted on its own, and
    /// consumers pinned to `subject@N` would silently get another schema.
    ///
    /// ## Example
    /// ```diff
    ///  # topics/user-events/v1.yaml, released on main
    /// -  partitions: 12
    /// +  partitions: 24
    /// ```
    ///
    /// ## Use instead
    /// Leave `v1.yaml` as it is and add `v2.yaml` (with `metadata.version: 2`) carrying the
    /// change.
    pub struct ReleasedVersionEdited {
        code: "PV601",
        name: "released-version-edited",
        severity: Error,
        summary: "a released version file was edited instead of adding a new version",
    }
}

/// The first changed lines of two texts: (first changed line, removed, added), at most a
/// few lines each.
fn first_change(old: &str, new: &str) -> (usize, Vec<String>, Vec<String>) {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let take = |lines: &[&str]| {
        lines
            .iter()
            .take(3)
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    };
    (
        prefix + 1,
        take(&a[prefix..a.len() - suffix]),
        take(&b[prefix..b.len() - suffix]),
    )
}

impl Rule for ReleasedVersionEdited {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let Some(base) = &ws.base else { return };
        for file in &ws.files {
            let version = match &file.role {
                Role::Spec { version, .. } | Role::Avro { version, .. } => *version,
                _ => continue,
            };
            let Some(released) = base.files.get(&file.path) else {
                continue;
            };
            if released.as_slice() == file.text.as_bytes() {
                continue;
            }
            let old = String::from_utf8_lossy(released);
            let (line, removed, added) = first_change(&old, &file.text);
            let mut diff = String::new();
            for l in &removed {
                diff.push_str(&format!("\n  -{l}"));
            }
            for l in &added {
                diff.push_str(&format!("\n  +{l}"));
            }
            if diff.is_empty() {
                diff.push_str("\n  (whitespace or line endings only)");
            }
            let ext = file.path.rsplit('.').next().unwrap_or("yaml");
            let line = line.min(file.text.lines().count().max(1)) as u32;
            let width = file
                .text
                .lines()
                .nth(line as usize - 1)
                .map_or(0, |l| l.chars().count()) as u32;
            out.push(
                self.diagnostic(
                    &file.path,
                    Span::new(Pos::new(line, 1), Pos::new(line, width + 1)),
                    format!("v{version} is released in `{}` and may not change; changed at line {line}:{diff}", base.name),
                )
                .label("edited after release")
                .help(format!(
                    "restore this file as released (`git checkout {} -- {}`) and put the change in `v{}.{ext}`",
                    base.name,
                    file.path,
                    version + 1
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_change;

    #[test]
    fn finds_the_first_changed_lines() {
        let (line, removed, added) = first_change("a\nb\nc\nd\n", "a\nB\nc\nd\n");
        assert_eq!(
            (line, removed, added),
            (2, vec!["b".to_string()], vec!["B".to_string()])
        );
        let (line, removed, added) = first_change("a\n", "a\nb\n");
        assert_eq!((line, removed.len(), added), (2, 0, vec!["b".to_string()]));
    }
}
