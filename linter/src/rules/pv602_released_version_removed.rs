//! PV602 released-version-removed: a released version other than the newest ones was removed.

use crate::diagnostic::Diagnostic;
use crate::layout::{classify, Role};
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;
use crate::yaml::{Pos, Span};

crate::rules::declare_rule! {
    /// ## What it does
    /// With `--base <ref>`, reports a version file that is released at the base and gone
    /// in the pull request while a later version of the same resource or subject is kept.
    /// Removing the newest versions is allowed: that is what `git revert` of their merge
    /// does, and it rolls the resource back to the version before.
    ///
    /// ## Why is this bad?
    /// A version in the middle of the history is what a later rollback returns to, and the
    /// Avro versions are what old data was written with. Deleting one breaks rollbacks and
    /// makes old records undecodable.
    ///
    /// ## Example
    /// ```text
    /// main:  topics/orders/v1.yaml  topics/orders/v2.yaml
    /// PR:                           topics/orders/v2.yaml
    /// ```
    ///
    /// ## Use instead
    /// Keep `v1.yaml`. To undo `v2`, remove `v2.yaml` (revert its merge); to change the
    /// topic, add `v3.yaml`.
    pub struct ReleasedVersionRemoved {
        code: "PV602",
        name: "released-version-removed",
        severity: Error,
        summary: "a released version was removed while a later one stays (only the newest may go)",
    }
}

impl Rule for ReleasedVersionRemoved {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let Some(base) = &ws.base else { return };
        let present: std::collections::BTreeSet<&str> =
            ws.files.iter().map(|f| f.path.as_str()).collect();
        for ((folder, name), versions) in base.versions() {
            // The highest released version that the pull request keeps.
            let kept = versions
                .iter()
                .rev()
                .find(|(_, path)| present.contains(path.as_str()));
            let Some((kept_version, _)) = kept else {
                continue;
            };
            for (version, path) in &versions {
                if version < kept_version && !present.contains(path.as_str()) {
                    let what = match classify(path) {
                        Ok(Role::Avro { .. }) => format!("subject `{name}`"),
                        _ => format!("`{folder}/{name}`"),
                    };
                    out.push(
                        self.diagnostic(
                            path,
                            Span::at(Pos::new(1, 1)),
                            format!(
                                "v{version} of {what} is released in `{}` and was removed, but v{kept_version} stays",
                                base.name
                            ),
                        )
                        .help(format!(
                            "restore it (`git checkout {} -- {path}`): only the newest versions may be removed, by reverting their merge",
                            base.name
                        )),
                    );
                }
            }
        }
    }
}
