//! What a new version changes in the real systems, classified: in place, a new table
//! version (blue/green beside the old one), or impossible.
//!
//! Without `--base` the newest version of each resource is compared with the one before;
//! with `--base`, every version the pull request adds, and every rollback it makes (the
//! newest released versions removed).

use std::collections::{BTreeMap, BTreeSet};

use crate::clickhouse;
use crate::layout::Kind;
use crate::workspace::{File, FileId, Workspace};
use crate::yaml::Node;

/// How a change reaches the real systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    /// Applied to what exists: a config, a new column, a new materialized view.
    InPlace,
    /// Needs a new physical table beside the old one (ORDER BY, PARTITION BY, a column
    /// type, another table or cluster); `db.table` then reads both.
    NewTableVersion,
    /// Cannot be applied to what exists: the pull request must not merge.
    Impossible,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::InPlace => "in-place",
            Impact::NewTableVersion => "new-table-version",
            Impact::Impossible => "impossible",
        }
    }
}

/// One thing that changes, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeItem {
    pub impact: Impact,
    pub what: String,
    /// Where in the new version's file (a path of keys), when it is one field.
    pub at: Vec<String>,
}

/// The change from one version of a resource to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    pub from: u32,
    pub to: u32,
    /// The file of version `to`.
    pub file: FileId,
    pub items: Vec<ChangeItem>,
}

impl Change {
    /// The strongest impact of its items.
    pub fn impact(&self) -> Impact {
        self.items
            .iter()
            .map(|i| i.impact)
            .max()
            .unwrap_or(Impact::InPlace)
    }
}

/// The changes to report: see the module doc.
pub fn classify(ws: &Workspace) -> Vec<Change> {
    let mut out = Vec::new();
    let avro = ws.avro_universe();
    let released = ws.base.as_ref().map(|b| b.versions());
    for kind in Kind::ALL {
        for (name, versions) in ws.resources.get(&kind).into_iter().flatten() {
            let pairs: Vec<(u32, FileId, u32, FileId)> = versions
                .iter()
                .zip(versions.iter().skip(1))
                .map(|((a, fa), (b, fb))| (*a, *fa, *b, *fb))
                .collect();
            let base_versions = released.as_ref().map(|r| {
                r.get(&(kind.folder().to_string(), name.clone()))
                    .cloned()
                    .unwrap_or_default()
            });
            for (from, from_id, to, to_id) in pairs {
                let new = match &base_versions {
                    Some(base) => !base.contains_key(&to),
                    None => Some(&to) == versions.keys().next_back(),
                };
                if !new {
                    continue;
                }
                let items = compare(ws, &avro, kind, &ws.files[from_id], &ws.files[to_id]);
                out.push(Change {
                    kind,
                    name: name.clone(),
                    from,
                    to,
                    file: to_id,
                    items,
                });
            }
            // A rollback: the newest released versions are gone.
            if let (Some(base), Some((active, active_id))) =
                (&base_versions, versions.iter().next_back())
            {
                if let Some(newest) = base.keys().next_back().filter(|n| *n > active) {
                    out.push(Change {
                        kind,
                        name: name.clone(),
                        from: *newest,
                        to: *active,
                        file: *active_id,
                        items: vec![ChangeItem {
                            impact: Impact::InPlace,
                            what: format!("rollback: v{active} becomes active again (v{} to v{newest} removed)", active + 1),
                            at: Vec::new(),
                        }],
                    });
                }
            }
        }
    }
    out
}

fn text(root: &Node, path: &[&str]) -> Option<String> {
    let node = root.path(path)?;
    match &node.value {
        crate::yaml::Value::Map(_) | crate::yaml::Value::Seq(_) => {
            Some(format!("{:?}", node.to_json()))
        }
        _ => node.scalar_text(),
    }
}

/// A value for a message, `(unset)` when there is none.
fn show(value: Option<String>) -> String {
    value.unwrap_or_else(|| "(unset)".to_string())
}

fn at(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

/// Every Avro file in one universe, and each file's index in it.
type Avro<'a> = (crate::avro::Universe<'a>, BTreeMap<FileId, usize>);

const PARTITIONS: [&str; 2] = ["spec", "partitions"];
const SHARDS: [&str; 2] = ["spec", "shards"];

/// A count that may grow in place and never shrink.
fn grow_only(
    item: &mut impl FnMut(Impact, String, &[&str]),
    (before, after): (Option<f64>, Option<f64>),
    path: &[&str],
    grows: &str,
    shrinks: &str,
) {
    let (Some(x), Some(y)) = (before, after) else {
        return;
    };
    let name = path[path.len() - 1];
    if y > x {
        item(Impact::InPlace, format!("{name} {x} → {y}: {grows}"), path);
    } else if y < x {
        item(
            Impact::Impossible,
            format!("{name} {x} → {y}: {shrinks}"),
            path,
        );
    }
}

fn compare(ws: &Workspace, avro: &Avro, kind: Kind, old: &File, new: &File) -> Vec<ChangeItem> {
    let (Some(a), Some(b)) = (&old.root, &new.root) else {
        return Vec::new();
    };
    if !old.valid || !new.valid {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut item = |impact, what: String, path: &[&str]| {
        items.push(ChangeItem {
            impact,
            what,
            at: at(path),
        })
    };
    let num = |root: &Node, path: &[&str]| root.path(path).and_then(Node::as_f64);
    match kind {
        Kind::KafkaTopic => {
            grow_only(
                &mut item,
                (num(a, &PARTITIONS), num(b, &PARTITIONS)),
                &PARTITIONS,
                "keys move to other partitions; per-key order holds only for new messages",
                "Kafka cannot remove partitions",
            );
            let rf = ["spec", "replicationFactor"];
            if let (Some(x), Some(y)) = (num(a, &rf), num(b, &rf)) {
                if x != y {
                    item(Impact::Impossible, format!("replicationFactor {x} → {y}: needs a partition reassignment, which paver does not do"), &rf);
                }
            }
            let keys: BTreeSet<&str> = [a, b]
                .iter()
                .flat_map(|r| {
                    r.path(&["spec", "config"])
                        .map(Node::as_map)
                        .unwrap_or_default()
                })
                .map(|e| e.key.as_str())
                .collect();
            for key in keys {
                let path = ["spec", "config", key];
                let (x, y) = (text(a, &path), text(b, &path));
                if x != y {
                    item(
                        Impact::InPlace,
                        format!("config {key}: {} → {}", show(x), show(y)),
                        &path,
                    );
                }
            }
        }
        Kind::ClickHouseCluster => {
            grow_only(
                &mut item,
                (num(a, &SHARDS), num(b, &SHARDS)),
                &SHARDS,
                "new shards start empty; existing data is not rebalanced",
                "the data on the removed shards would be lost",
            );
            for key in [
                "replication",
                "memoryGB",
                "retentionDays",
                "backupToS3",
                "monitoring",
                "costBudget",
            ] {
                let path = ["spec", key];
                let (x, y) = (text(a, &path), text(b, &path));
                if x != y {
                    item(
                        Impact::InPlace,
                        format!("{key}: {} → {}", show(x), show(y)),
                        &path,
                    );
                }
            }
        }
        Kind::DataPipeline => compare_pipelines(ws, avro, (old, a), (new, b), &mut item),
    }
    items
}

fn compare_pipelines(
    ws: &Workspace,
    avro: &Avro,
    (old, a): (&File, &Node),
    (new, b): (&File, &Node),
    item: &mut impl FnMut(Impact, String, &[&str]),
) {
    for (key, impact, why) in [
        (
            ["sink", "cluster"],
            Impact::NewTableVersion,
            "a new table on the other cluster",
        ),
        (
            ["sink", "table"],
            Impact::NewTableVersion,
            "a new table; the old one keeps its rows",
        ),
        (
            ["sink", "partitionKey"],
            Impact::NewTableVersion,
            "PARTITION BY cannot change in place",
        ),
        (
            ["sink", "orderKey"],
            Impact::NewTableVersion,
            "ORDER BY cannot change in place",
        ),
        (
            ["sink", "shardingKey"],
            Impact::NewTableVersion,
            "rows already on a shard stay there: a new key spreads a new physical table",
        ),
        (
            ["source", "topic"],
            Impact::InPlace,
            "the new version consumes the other topic",
        ),
        (
            ["source", "consumerGroup"],
            Impact::InPlace,
            "the new group starts at the old group's offsets",
        ),
        (
            ["source", "schema"],
            Impact::InPlace,
            "records are decoded with the new schema",
        ),
        (
            ["source", "deadLetterTopic"],
            Impact::InPlace,
            "rejected records go to the new topic",
        ),
        (["alerting", "onBacklog"], Impact::InPlace, "alerting"),
        (["alerting", "onFailure"], Impact::InPlace, "alerting"),
    ] {
        let path = ["spec", key[0], key[1]];
        let (x, y) = (text(a, &path), text(b, &path));
        if x != y {
            item(
                impact,
                format!("{}.{}: {} → {}: {why}", key[0], key[1], show(x), show(y)),
                &path,
            );
        }
    }
    let query = ["spec", "transform", "query"];
    if text(a, &query) != text(b, &query) {
        item(
            Impact::InPlace,
            "transform: a new materialized view, cut over blue/green".to_string(),
            &query,
        );
    }
    if let (Some(before), Some(after)) = (sink_columns(ws, avro, old), sink_columns(ws, avro, new))
    {
        for (column, ty) in &after {
            match before.get(column) {
                None => item(
                    Impact::InPlace,
                    format!(
                        "new column `{column}`{}: ADD COLUMN, older rows get its default",
                        ty.as_ref().map(|t| format!(" {t}")).unwrap_or_default()
                    ),
                    &query,
                ),
                Some(Some(old_ty)) => {
                    if let Some(new_ty) = ty {
                        if !clickhouse::holds(old_ty, new_ty) {
                            item(
                                Impact::NewTableVersion,
                                format!("column `{column}` {old_ty} → {new_ty}: the existing column cannot hold the new values"),
                                &["spec", "source", "schema"],
                            );
                        }
                    }
                }
                Some(None) => {}
            }
        }
        for column in before.keys().filter(|c| !after.contains_key(*c)) {
            item(
                Impact::InPlace,
                format!("column `{column}` is no longer written: it stays, and new rows get its default"),
                &query,
            );
        }
    }
}

/// The sink table's columns as a pipeline version writes them, with their ClickHouse types
/// where they copy a schema field.
fn sink_columns(
    ws: &Workspace,
    avro: &Avro,
    file: &File,
) -> Option<BTreeMap<String, Option<String>>> {
    let root = file.root.as_ref()?;
    let schema_id = ws.schema_ref_id(root.path(&["spec", "source", "schema"])?.as_str()?)?;
    let fields = ws.avro_fields(&ws.files[schema_id])?;
    let (universe, index) = avro;
    let at = *index.get(&schema_id)?;
    let field_type = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| clickhouse::column_type(universe, at, &f.ty))
    };
    let mut columns = BTreeMap::new();
    let all_fields = |columns: &mut BTreeMap<String, Option<String>>| {
        for f in fields {
            columns.insert(f.name.clone(), field_type(&f.name));
        }
    };
    match ws.transform(file) {
        None => all_fields(&mut columns),
        Some(Ok(t)) => {
            if t.wildcard {
                all_fields(&mut columns);
            }
            for (name, copies) in t.outputs.iter().zip(&t.copies) {
                columns.insert(name.clone(), copies.as_deref().and_then(field_type));
            }
        }
        Some(Err(_)) => return None,
    }
    Some(columns)
}
