//! A plan as a reviewer reads it: text (Terraform-style) and Markdown (a pull-request
//! comment).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Action, ClickHouseAction, KafkaAction, KubeAction, PipelineAction, Plan};

/// The plan as a reviewer reads it, Terraform-style.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let short = &plan.revision[..plan.revision.len().min(12)];
    let _ = writeln!(
        out,
        "paver plan for {short}: {} steps, {} irreversible",
        plan.steps.len(),
        plan.irreversible()
    );
    for step in &plan.steps {
        let (sign, text) = describe_in(&step.action, plan.cluster.as_deref());
        let mark = if step.irreversible {
            "  (irreversible)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {sign} {text}{mark}");
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  ! {note}");
    }
    if plan.steps.is_empty() {
        let _ = writeln!(out, "  no changes: the real systems match the revision");
    }
    out
}

/// The plan as Markdown, for a pull-request comment (the Atlantis-style preview).
pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let short = &plan.revision[..plan.revision.len().min(12)];
    let _ = writeln!(out, "### paver plan for `{short}`\n");
    if plan.steps.is_empty() {
        let _ = writeln!(out, "No changes: the real systems match this revision.");
    } else {
        let _ = writeln!(
            out,
            "**{} steps**, {} irreversible.\n\n| | step | irreversible |\n|---|---|---|",
            plan.steps.len(),
            plan.irreversible()
        );
        for step in &plan.steps {
            let (sign, text) = describe_in(&step.action, plan.cluster.as_deref());
            let mark = if step.irreversible {
                ":warning: yes"
            } else {
                ""
            };
            let _ = writeln!(out, "| `{sign}` | {} | {mark} |", text.replace('|', "\\|"));
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "\n> {note}");
    }
    out
}

/// A sign (`+`, `~`, `-`) and a line for an action.
pub fn describe(action: &Action) -> (char, String) {
    describe_in(action, None)
}

/// [`describe`], the ClickHouse steps saying the cluster they run on (`ON CLUSTER c`).
pub fn describe_in(action: &Action, cluster: Option<&str>) -> (char, String) {
    match action {
        Action::Kafka(a) => describe_kafka(a),
        Action::ClickHouse(a) => {
            let on = cluster
                .map(|c| format!(" ON CLUSTER {c}"))
                .unwrap_or_default();
            describe_clickhouse(a, &on)
        }
        Action::Pipeline(a) => describe_pipeline(a),
        Action::Kube(a) => describe_kube(a),
    }
}

fn kv(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_kafka(action: &KafkaAction) -> (char, String) {
    match action {
        KafkaAction::CreateTopic { name, topic } => (
            '+',
            format!(
                "create topic {name} ({} partitions, replication factor {}{})",
                topic.partitions,
                topic.replication_factor,
                if topic.config.is_empty() {
                    String::new()
                } else {
                    format!(", {}", kv(&topic.config))
                }
            ),
        ),
        KafkaAction::DeleteTopic { name } => ('-', format!("delete topic {name}")),
        KafkaAction::AlterTopicConfig { name, set, delete } => {
            let mut parts = Vec::new();
            if !set.is_empty() {
                parts.push(format!("set {}", kv(set)));
            }
            if !delete.is_empty() {
                parts.push(format!("reset {}", delete.join(", ")));
            }
            (
                '~',
                format!("alter topic {name} config: {}", parts.join("; ")),
            )
        }
        KafkaAction::CreatePartitions { name, count } => (
            '~',
            format!("increase partitions of topic {name} to {count}"),
        ),
    }
}

fn describe_clickhouse(action: &ClickHouseAction, on: &str) -> (char, String) {
    match action {
        ClickHouseAction::CreateDatabase { name } => ('+', format!("create database {name}{on}")),
        ClickHouseAction::DropDatabase { name } => ('-', format!("drop database {name}{on}")),
        ClickHouseAction::CreateTable { table, spec } if !on.is_empty() => (
            '+',
            format!(
                "create table {table}{on} (replicated, {} columns, ORDER BY {}{})",
                spec.columns.len(),
                spec.order_by,
                spec.partition_by
                    .as_ref()
                    .map(|p| format!(", PARTITION BY {p}"))
                    .unwrap_or_default()
            ),
        ),
        ClickHouseAction::CreateTable { table, spec } => (
            '+',
            format!(
                "create table {table} ({} columns, ORDER BY {}{})",
                spec.columns.len(),
                spec.order_by,
                spec.partition_by
                    .as_ref()
                    .map(|p| format!(", PARTITION BY {p}"))
                    .unwrap_or_default()
            ),
        ),
        ClickHouseAction::DropTable { table } => ('-', format!("drop table {table}{on}")),
        ClickHouseAction::AddColumn { table, column, .. } => (
            '~',
            format!(
                "add column {} {} to {table}{on}",
                column.name,
                column.ty.as_deref().unwrap_or("(type from the transform)")
            ),
        ),
        ClickHouseAction::DropColumn { table, name } => ('-', format!("drop column {name} of {table}{on}")),
        ClickHouseAction::CreateStaging { table, columns } => (
            '+',
            format!("create staging table {table}{on} ({} columns, Null engine)", columns.len()),
        ),
        ClickHouseAction::CreateLedger { table } => ('+', format!("create offsets ledger {table}{on}")),
        ClickHouseAction::CreateViews { spec } => (
            '+',
            format!(
                "create views of {} v{}{on}: {} -> {}",
                spec.pipeline, spec.version, spec.staging, spec.sink
            ),
        ),
        ClickHouseAction::DropViews { view, .. } => ('-', format!("retire views {view}{on} (no data)")),
        ClickHouseAction::SwitchGeneration { table, create, spec, .. } if !on.is_empty() => (
            '~',
            format!(
                "new physical table {create}{on} (replicated, ORDER BY {}) for {table}; the Distributed {table} reads it beside the older ones",
                spec.order_by
            ),
        ),
        ClickHouseAction::SwitchGeneration { table, create, spec, original, .. } => (
            '~',
            format!(
                "new physical table {create} (ORDER BY {}) for {table}; {table} becomes a Merge over all of them{}",
                spec.order_by,
                original
                    .as_ref()
                    .map(|o| format!(", its rows kept as {o}"))
                    .unwrap_or_default()
            ),
        ),
        ClickHouseAction::UnswitchGeneration { table, create, .. } => (
            '~',
            format!("switch {table}{on} back from its new physical table {create}"),
        ),
        ClickHouseAction::RestoreViews { view, .. } => {
            ('+', format!("restore views {view}{on} (as ClickHouse had them)"))
        }
        ClickHouseAction::CreateDistributed { table, physical, shard_by } => (
            '+',
            format!(
                "make {table}{on} a Distributed table over {physical} and the other physical tables, sharded by {}",
                shard_by.as_deref().unwrap_or(super::distributed::DEFAULT_SHARDING_KEY)
            ),
        ),
        ClickHouseAction::DropDistributed { table } => ('-', format!("drop the Distributed table {table}{on} (no data)")),
        ClickHouseAction::RepairTable { table, missing_on } => (
            '+',
            format!("repair drift: create table {table}{on} again on {} (dropped there by hand)", missing_on.join(", ")),
        ),
    }
}

fn describe_pipeline(action: &PipelineAction) -> (char, String) {
    match action {
        PipelineAction::Activate { spec, refresh } => (
            '~',
            match (refresh, &spec.previous_group) {
                (Some(_), Some(previous)) => format!(
                    "cut over pipeline {} to v{} (consumer group {}, from the offsets of {previous})",
                    spec.pipeline, spec.version, spec.group
                ),
                (Some(_), None) => format!(
                    "start pipeline {} at v{} (consumer group {})",
                    spec.pipeline, spec.version, spec.group
                ),
                (None, _) => format!("update the ingestion of pipeline {} v{}", spec.pipeline, spec.version),
            },
        ),
        PipelineAction::Deactivate { pipeline } => ('-', format!("stop the ingestion of pipeline {pipeline}")),
        PipelineAction::AwaitHandover { pipeline, version } => (
            '~',
            match version {
                Some(v) => format!("wait until the workers of pipeline {pipeline} run v{v}"),
                None => format!("wait until the workers of pipeline {pipeline} stop"),
            },
        ),
    }
}

fn describe_kube(action: &KubeAction) -> (char, String) {
    match action {
        KubeAction::ApplyObject {
            object,
            create,
            changes,
        } => describe_apply(object, *create, changes),
        KubeAction::DeleteObject { object } => ('-', format!("delete {object}")),
    }
}

fn describe_apply(object: &serde_json::Value, create: bool, changes: &[String]) -> (char, String) {
    let name = crate::model::ObjectRef::of(object)
        .map(|r| r.to_string())
        .unwrap_or_else(|| "an object".to_string());
    if create {
        ('+', format!("create {name} (server-side apply)"))
    } else if changes.is_empty() {
        ('~', format!("apply {name}"))
    } else {
        ('~', format!("apply {name}: {}", changes.join(", ")))
    }
}
