//! PV504 logical-type-change: a field keeps its Avro type but changes its logical type.

use crate::avro::{Field, Type, TypeNode};
use crate::diagnostic::Diagnostic;
use crate::rules::{Rule, RuleMeta};
use crate::workspace::Workspace;

crate::rules::declare_rule! {
    /// ## What it does
    /// Warns when a field of a subject's newest version has the same name as in the
    /// previous version but another `logicalType` (or gains or loses one), such as
    /// `timestamp-millis` becoming `timestamp-micros`, or a `decimal` changing its scale.
    /// Nullable fields (`["null", T]`) are looked through.
    ///
    /// ## Why is this bad?
    /// Avro's schema resolution, and so the Schema Registry, ignores logical types: the
    /// change is "compatible", and every reader silently misreads the values: a
    /// microsecond timestamp read as milliseconds lands 50,000 years in the future.
    ///
    /// ## Example
    /// ```json
    /// // v1: {"name": "eventTime", "type": {"type": "long", "logicalType": "timestamp-millis"}}
    /// {"name": "eventTime", "type": {"type": "long", "logicalType": "timestamp-micros"}}
    /// ```
    ///
    /// ## Use instead
    /// Add a new field (`eventTimeMicros`) and keep the old one until no reader needs it.
    pub struct LogicalTypeChange {
        code: "PV504",
        name: "logical-type-change",
        severity: Warning,
        summary: "a field's logicalType changes while Avro calls the change compatible",
    }
}

/// The logical type of a field, looking through `["null", T]`, with its scale and
/// precision for decimals.
fn logical(node: &TypeNode) -> Option<String> {
    match &node.ty {
        Type::Union(branches) => {
            let mut non_null = branches
                .iter()
                .filter(|b| !matches!(b.ty, Type::Primitive(crate::avro::Primitive::Null)));
            match (non_null.next(), non_null.next()) {
                (Some(only), None) => logical(only),
                _ => None,
            }
        }
        _ => node.logical.clone(),
    }
}

impl Rule for LogicalTypeChange {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ws: &Workspace, out: &mut Vec<Diagnostic>) {
        for (subject, s) in &ws.subjects {
            let mut newest = s.versions.iter().rev();
            let (Some((new_v, new_id)), Some((old_v, old_id))) = (newest.next(), newest.next())
            else {
                continue;
            };
            let (new, old) = (&ws.files[*new_id], &ws.files[*old_id]);
            let (Some(new_fields), Some(old_fields)) = (ws.avro_fields(new), ws.avro_fields(old))
            else {
                continue;
            };
            let Some(root) = &new.root else { continue };
            for field in new_fields {
                let Some(before) = old_fields.iter().find(|f: &&Field| f.name == field.name) else {
                    continue;
                };
                let (was, is) = (logical(&before.ty), logical(&field.ty));
                if was == is {
                    continue;
                }
                let show = |l: &Option<String>| {
                    l.as_deref()
                        .map_or("none".to_string(), |l| format!("`{l}`"))
                };
                out.push(
                    self.diagnostic(
                        &new.path,
                        root.pointer_span(&field.ty.pointer, false),
                        format!(
                            "the logical type of `{}` changes from {} in {subject}@{old_v} to {} in {subject}@{new_v}",
                            field.name,
                            show(&was),
                            show(&is)
                        ),
                    )
                    .label("readers will misread these values")
                    .help(format!("add a new field instead of changing `{}`", field.name)),
                );
            }
        }
    }
}
