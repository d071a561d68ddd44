//! PV502 incompatible-schema: a subject's version cannot be read as its compatibility mode promises.

use crate::avro::{Checker, Incompatibility, IncompatibilityKind};
use crate::diagnostic::Diagnostic;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::{FileId, Workspace};
use crate::yaml::{Node, Span};

crate::rules::declare_rule! {
    /// ## What it does
    /// Checks every version of every Avro subject against the earlier ones, under the
    /// subject's compatibility mode (`schemas/<subject>/subject.yaml`, else
    /// `defaults.compatibility` in `paver.yaml`, else `FORWARD_TRANSITIVE`), with the rules
    /// of Apache Avro's schema resolution, exactly as the Confluent Schema Registry does:
    /// - `BACKWARD`: the new version reads data written with the previous one;
    /// - `FORWARD`: the previous version reads data written with the new one;
    /// - `FULL`: both; `NONE`: nothing is checked;
    /// - `*_TRANSITIVE`: against every earlier version, not only the previous one.
    ///
    /// Every incompatibility is reported (not only the first), with the Schema Registry's
    /// name for it (`READER_FIELD_MISSING_DEFAULT_VALUE`, `TYPE_MISMATCH`,
    /// `MISSING_ENUM_SYMBOLS`, `NAME_MISMATCH`, `FIXED_SIZE_MISMATCH`,
    /// `MISSING_UNION_BRANCH`), the JSON pointer inside the schema, and the line and
    /// column in the new version's file. Named types used from other subjects' files are
    /// resolved and checked too.
    ///
    /// ## Why is this bad?
    /// Under `FORWARD_TRANSITIVE` (the default), every consumer still reading with any older
    /// version must be able to decode what producers write with the new one. An
    /// incompatible version breaks those consumers at run time, at 3 AM, after the merge.
    ///
    /// ## Example
    /// ```json
    /// // v1: {"name": "eventType", "type": "string"}
    /// // v2 removes eventType: readers on v1 find no value and no default.
    /// {"type": "record", "name": "UserEvent", "fields": [{"name": "userId", "type": "string"}]}
    /// ```
    ///
    /// ## Use instead
    /// Keep writing the field, or give it a default in every version that reads it
    /// (add fields as `["null", T]` with `"default": null`; never retype or remove a field
    /// that readers need).
    pub struct IncompatibleSchema {
        code: "PV502",
        name: "incompatible-schema",
        severity: Error,
        summary: "an Avro subject's version breaks its compatibility mode",
    }
}

/// What one check of a pair means: which version reads which, and where they are.
struct Pair<'a> {
    subject: &'a str,
    mode: &'a str,
    new: u32,
    new_file: FileId,
    old: u32,
    new_is_reader: bool,
}

impl IncompatibleSchema {
    /// `files` maps the universe's indexes back to file ids.
    fn report(
        &self,
        ws: &Workspace,
        pair: &Pair,
        files: &[FileId],
        i: &Incompatibility,
    ) -> Diagnostic {
        let (subject, mode, new_file) = (pair.subject, pair.mode, pair.new_file);
        let new = &ws.files[new_file];
        // The new version's side of the incompatibility, when it is in the new file.
        let (side_file, pointer) = if pair.new_is_reader {
            (i.reader_file, &i.reader_pointer)
        } else {
            (i.writer_file, &i.writer_pointer)
        };
        let in_new = files.get(side_file) == Some(&new_file);
        let span = match (&new.root, in_new) {
            (Some(root), true) => root.pointer_span(pointer, false),
            (Some(root), false) => root.span,
            (None, _) => Span::default(),
        };
        let (reader, writer) = if pair.new_is_reader {
            (pair.new, pair.old)
        } else {
            (pair.old, pair.new)
        };
        let shown = if pointer.is_empty() {
            "/"
        } else {
            pointer.as_str()
        };
        let message = format!(
            "{}: {subject}@{reader} cannot read data written with {subject}@{writer} ({mode}): {} (at `{shown}`)",
            i.kind.as_str(),
            i.message
        );
        let help = match (i.kind, pair.new_is_reader) {
            (IncompatibilityKind::ReaderFieldMissingDefaultValue, true) => {
                "give the new field a default, e.g. type [\"null\", ...] with \"default\": null"
            }
            (IncompatibilityKind::ReaderFieldMissingDefaultValue, false) => {
                "keep writing the field: older readers need it (or they must have declared a default)"
            }
            (IncompatibilityKind::TypeMismatch, _) => {
                "keep the type: Avro promotes only int→long→float→double and string↔bytes"
            }
            (IncompatibilityKind::MissingEnumSymbols, _) => {
                "keep the enum's symbols, or give the reading enum a \"default\" symbol first"
            }
            (IncompatibilityKind::NameMismatch, _) => "keep the type's name, or list the old full name in \"aliases\"",
            (IncompatibilityKind::FixedSizeMismatch, _) => "a fixed type's size cannot change: add a new field instead",
            (IncompatibilityKind::MissingUnionBranch, _) => "keep every branch of the union that data may be written with",
        };
        let mut d = self
            .diagnostic(&new.path, span, message)
            .label(i.kind.as_str())
            .help(format!(
                "{help}; or add a new subject if the break is intended"
            ));
        let old_side = if pair.new_is_reader {
            (i.writer_file, &i.writer_pointer)
        } else {
            (i.reader_file, &i.reader_pointer)
        };
        if let Some(old_id) = files.get(old_side.0) {
            let old = &ws.files[*old_id];
            if let Some(root) = &old.root {
                let at = if pair.new_is_reader {
                    "written"
                } else {
                    "read"
                };
                d = d.related(
                    &old.path,
                    root.pointer_span(old_side.1, false),
                    format!("{at} like this in v{}", pair.old),
                );
            }
        }
        d
    }
}

/// The compatibility mode of a subject.
pub fn mode_of(ws: &Workspace, subject: &str) -> String {
    ws.subjects
        .get(subject)
        .and_then(|s| s.config)
        .map(|id| &ws.files[id])
        .filter(|f| f.valid)
        .and_then(|f| {
            f.at(&["compatibility"])
                .and_then(Node::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| ws.settings.default_compatibility.clone())
}

impl Rule for IncompatibleSchema {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        let (universe, index) = ws.avro_universe();
        // universe index -> file id, to map incompatibilities back to files.
        let mut files = vec![usize::MAX; universe.files.len()];
        for (id, at) in &index {
            files[*at] = *id;
        }
        let mut checker = Checker::new(&universe);
        for (subject, s) in &ws.subjects {
            let mode = mode_of(ws, subject);
            let transitive = mode.ends_with("_TRANSITIVE");
            let (backward, forward) = match mode.trim_end_matches("_TRANSITIVE") {
                "BACKWARD" => (true, false),
                "FORWARD" => (false, true),
                "FULL" => (true, true),
                _ => (false, false),
            };
            if !backward && !forward {
                continue;
            }
            // Only versions that parsed cleanly take part; PV501/PV503 report the others.
            let usable: Vec<(u32, FileId)> = s
                .versions
                .iter()
                .filter(|(_, id)| {
                    ws.files[**id]
                        .avro
                        .as_ref()
                        .is_some_and(|p| p.problems.is_empty())
                        && !ws.avro_unresolved.contains_key(id)
                })
                .map(|(v, id)| (*v, *id))
                .collect();
            for (n, (new_version, new_id)) in usable.iter().enumerate().skip(1) {
                let earlier = if transitive {
                    &usable[..n]
                } else {
                    &usable[n - 1..n]
                };
                for (old_version, old_id) in earlier {
                    let (new_at, old_at) = (index[new_id], index[old_id]);
                    for (new_is_reader, wanted) in [(true, backward), (false, forward)] {
                        if !wanted {
                            continue;
                        }
                        let pair = Pair {
                            subject,
                            mode: &mode,
                            new: *new_version,
                            new_file: *new_id,
                            old: *old_version,
                            new_is_reader,
                        };
                        let found = if new_is_reader {
                            checker.check(new_at, old_at)
                        } else {
                            checker.check(old_at, new_at)
                        };
                        for i in &found {
                            out.push(self.report(ws, &pair, &files, i));
                        }
                    }
                }
            }
        }
    }
}
