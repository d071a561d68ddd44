//! Pure rendering: the active version of every `ClickHouseCluster` of a workspace → the
//! Kubernetes objects a platform team runs for it:
//!
//! - a `ClickHouseInstallation` (Altinity clickhouse-operator): shards and replicas, memory
//!   requests equal to limits (a database is not overcommitted), one server per node, a
//!   data volume per server that outlives the installation (`reclaimPolicy: Retain`);
//! - a `PrometheusRule` (Prometheus operator) from `monitoring`: CPU and disk alerts;
//! - a backup `CronJob` when `backupToS3`: ClickHouse's own `BACKUP … TO S3` of every shard.
//!
//! Every object carries the ownership label (`app.kubernetes.io/managed-by: paver`), the
//! cluster's name and version, its owner and its cost budget (cost tagging), and the spec's
//! own `metadata.labels`. Pods carry the owner and cost labels too, not the version (a new
//! version must not restart every server by itself).

use std::collections::BTreeMap;

use paver_lint::layout::Kind;
use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;
use serde_json::{json, Map, Value};

use super::{Target, BACKUP_SECRET, CLUSTER_LABEL, MANAGED_BY, MANAGER};

/// The kinds paver renders, as `(apiVersion, kind, plural)`: what is observed and pruned.
pub const KINDS: [(&str, &str, &str); 3] = [
    (
        "clickhouse.altinity.com/v1",
        "ClickHouseInstallation",
        "clickhouseinstallations",
    ),
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
    ),
    ("batch/v1", "CronJob", "cronjobs"),
];

/// The objects of every active `ClickHouseCluster` in `ws`, in a stable order (by cluster,
/// then installation, rule, backup).
pub fn render(ws: &Workspace, target: &Target) -> Vec<Value> {
    let mut out = Vec::new();
    let settings = ws
        .files
        .iter()
        .find(|f| f.path == "paver.yaml")
        .and_then(|f| f.root.as_ref());
    // The durations of paver's own alerts (a paver.yaml that lints clean parses).
    let alerts = crate::notify::config_of(settings)
        .map(|c| c.alerts)
        .unwrap_or_else(|_| crate::notify::config::AlertSettings::default());
    for (file, root) in ws.active_specs(Kind::ClickHouseCluster) {
        let Some((_, name, version)) = file.spec() else {
            continue;
        };
        let cluster = Cluster::read(name, version, &file.path, root);
        out.extend(render_cluster(&cluster, target));
        let pipelines = super::pipeline_alerts::pipelines_of(ws, name);
        out.extend(super::pipeline_alerts::render(
            &cluster, target, &pipelines, &alerts,
        ));
    }
    out
}

/// What rendering needs of one cluster spec.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub version: u32,
    /// The spec file, for the `paver.dev/source` annotation.
    pub source: String,
    pub owner: String,
    pub labels: BTreeMap<String, String>,
    pub shards: i64,
    pub replicas: i64,
    pub memory_gb: f64,
    pub backup_to_s3: bool,
    pub alert_on_cpu: Option<f64>,
    pub alert_on_disk: Option<f64>,
    pub cost_budget: Option<f64>,
}

impl Cluster {
    /// Read a spec that passed its JSON Schema.
    pub fn read(name: &str, version: u32, source: &str, root: &Node) -> Cluster {
        let spec = |key: &str| root.path(&["spec", key]);
        let number =
            |node: Option<&Node>| node.and_then(|n| n.as_f64().or(n.as_i64().map(|i| i as f64)));
        Cluster {
            name: name.to_string(),
            version,
            source: source.to_string(),
            owner: root
                .path(&["metadata", "owner"])
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_string(),
            labels: root
                .path(&["metadata", "labels"])
                .map(Node::as_map)
                .unwrap_or_default()
                .iter()
                .filter_map(|e| Some((e.key.clone(), e.value.scalar_text()?)))
                .collect(),
            shards: spec("shards").and_then(Node::as_i64).unwrap_or(1),
            replicas: spec("replication").and_then(Node::as_i64).unwrap_or(1),
            memory_gb: number(spec("memoryGB")).unwrap_or(1.0),
            backup_to_s3: spec("backupToS3").and_then(Node::as_bool).unwrap_or(false),
            alert_on_cpu: number(root.path(&["spec", "monitoring", "alertOnCPU"])),
            alert_on_disk: number(root.path(&["spec", "monitoring", "alertOnDisk"])),
            cost_budget: number(spec("costBudget")),
        }
    }
}

/// A number as Kubernetes and Prometheus write it: `500`, `80.5`.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let text = format!("{n:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A memory quantity: whole GB as `Gi`, else `Mi`.
pub fn memory_quantity(gb: f64) -> String {
    if gb.fract() == 0.0 {
        format!("{}Gi", gb as i64)
    } else {
        format!("{}Mi", (gb * 1024.0).round().max(1.0) as i64)
    }
}

/// A Kubernetes label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_value(text: &str) -> bool {
    text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (text.is_empty()
            || (text.starts_with(|c: char| c.is_ascii_alphanumeric())
                && text.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// `<cluster>-<suffix>`, shortened with a hash of the whole when longer than `max` (a
/// CronJob's name has at most 52 characters).
fn child_name(cluster: &str, suffix: &str, max: usize) -> String {
    let full = format!("{cluster}-{suffix}");
    if full.len() <= max {
        return full;
    }
    // The hash of the name as a JSON string (names are DNS labels: nothing to escape), as
    // names were always derived.
    let hash = &crate::model::short_hash(format!("\"{full}\"").as_bytes())[..6];
    let keep = max - suffix.len() - hash.len() - 2;
    let head = cluster[..keep.min(cluster.len())].trim_end_matches('-');
    format!("{head}-{hash}-{suffix}")
}

/// The objects of one cluster.
pub fn render_cluster(cluster: &Cluster, target: &Target) -> Vec<Value> {
    let settings = target.cluster(&cluster.name);
    let namespace = settings.namespace.as_str();

    // Owner and cost labels go on every object and every pod; the spec's own labels too,
    // where they are valid label values (the others become annotations: nothing is lost).
    let mut tags = Map::new();
    let mut extra_annotations = Map::new();
    for (key, value) in &cluster.labels {
        if is_label_value(value) {
            tags.insert(key.clone(), json!(value));
        } else {
            extra_annotations.insert(key.clone(), json!(value));
        }
    }
    tags.insert("paver.dev/owner".into(), json!(cluster.owner));
    if let Some(budget) = cluster.cost_budget {
        tags.insert(
            "paver.dev/cost-budget-usd".into(),
            json!(number_text(budget)),
        );
    }
    tags.insert(CLUSTER_LABEL.into(), json!(cluster.name));

    let metadata = |name: &str, component: &str| {
        let mut labels = tags.clone();
        labels.insert("app.kubernetes.io/name".into(), json!("clickhouse"));
        labels.insert("app.kubernetes.io/instance".into(), json!(cluster.name));
        labels.insert("app.kubernetes.io/component".into(), json!(component));
        labels.insert(MANAGED_BY.into(), json!(MANAGER));
        labels.insert(
            "paver.dev/version".into(),
            json!(cluster.version.to_string()),
        );
        let mut annotations = extra_annotations.clone();
        annotations.insert("paver.dev/source".into(), json!(cluster.source));
        json!({
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        })
    };
    let pod_labels = Value::Object(tags.clone());

    let memory = memory_quantity(cluster.memory_gb);
    let mut volume_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": format!("{}Gi", settings.storage_gb)}},
    });
    if let Some(class) = &settings.storage_class {
        volume_spec["storageClassName"] = json!(class);
    }
    let mut objects = vec![json!({
        "apiVersion": "clickhouse.altinity.com/v1",
        "kind": "ClickHouseInstallation",
        "metadata": metadata(&cluster.name, "database"),
        "spec": {
            "defaults": {
                "templates": {"podTemplate": "clickhouse", "dataVolumeClaimTemplate": "data"},
                // Pruning an installation never deletes its data volumes.
                "storageManagement": {"reclaimPolicy": "Retain"},
            },
            "configuration": {
                "clusters": [{
                    "name": target.clickhouse_cluster(&cluster.name),
                    "layout": {"shardsCount": cluster.shards, "replicasCount": cluster.replicas},
                }],
            },
            "templates": {
                "podTemplates": [{
                    "name": "clickhouse",
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        // One ClickHouse server per node: memory is what it is sized by.
                        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                            "labelSelector": {"matchLabels": {"clickhouse.altinity.com/chi": cluster.name}},
                            "topologyKey": "kubernetes.io/hostname",
                        }]}},
                        "containers": [{
                            "name": "clickhouse",
                            "image": settings.image,
                            "resources": {
                                "requests": {"memory": memory},
                                "limits": {"memory": memory},
                            },
                        }],
                    },
                }],
                "volumeClaimTemplates": [{
                    "name": "data",
                    "reclaimPolicy": "Retain",
                    "spec": volume_spec,
                }],
            },
        },
    })];

    let selector = format!(
        "namespace=\"{namespace}\", pod=~\"chi-{}-.+\"",
        cluster.name
    );
    let alert_labels = |severity: &str| json!({"severity": severity, "paver_cluster": cluster.name, "owner": cluster.owner});
    let mut rules = Vec::new();
    if let Some(cpu) = cluster.alert_on_cpu {
        let threshold = number_text(cpu);
        rules.push(json!({
            "alert": "ClickHouseHighCPU",
            "expr": format!(
                "100 * sum by (pod) (rate(container_cpu_usage_seconds_total{{{selector}, container=\"clickhouse\"}}[5m]))\n  / on (pod) group_left sum by (pod) (kube_pod_info{{{selector}}} * on (node) group_left kube_node_status_allocatable{{resource=\"cpu\"}})\n  > {threshold}"
            ),
            "for": "10m",
            "labels": alert_labels("warning"),
            "annotations": {
                "summary": format!("ClickHouse cluster {} uses more than {threshold}% of a node's CPU", cluster.name),
                "description": format!("{{{{ $labels.pod }}}} has used {{{{ $value | humanize }}}}% of its node's CPU for 10 minutes (threshold {threshold}%, from {}).", cluster.source),
            },
        }));
    }
    if let Some(disk) = cluster.alert_on_disk {
        let threshold = number_text(disk);
        let volumes = format!(
            "namespace=\"{namespace}\", persistentvolumeclaim=~\"data-chi-{}-.+\"",
            cluster.name
        );
        rules.push(json!({
            "alert": "ClickHouseDiskFilling",
            "expr": format!(
                "100 * (1 - kubelet_volume_stats_available_bytes{{{volumes}}}\n  / kubelet_volume_stats_capacity_bytes{{{volumes}}})\n  > {threshold}"
            ),
            "for": "5m",
            "labels": alert_labels("critical"),
            "annotations": {
                "summary": format!("ClickHouse cluster {} has a data volume more than {threshold}% full", cluster.name),
                "description": format!("{{{{ $labels.persistentvolumeclaim }}}} is {{{{ $value | humanize }}}}% full (threshold {threshold}%, from {}).", cluster.source),
            },
        }));
    }
    if !rules.is_empty() {
        objects.push(json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": metadata(&child_name(&cluster.name, "alerts", 253), "alerts"),
            "spec": {"groups": [{"name": format!("paver.{}", cluster.name), "rules": rules}]},
        }));
    }

    if cluster.backup_to_s3 {
        // ClickHouse backs itself up (BACKUP … ON CLUSTER … TO S3): no sidecar, every shard.
        // The S3 location and credentials come from a Secret paver never sees.
        let script = "set -eu\n\
stamp=$(date -u +%Y%m%dT%H%M%SZ)\n\
exec clickhouse-client --host \"$CLICKHOUSE_HOST\" --user \"${CLICKHOUSE_USER:-default}\" --password \"${CLICKHOUSE_PASSWORD:-}\" \\\n  \
--query \"BACKUP ALL EXCEPT DATABASES system, information_schema, INFORMATION_SCHEMA ON CLUSTER '$CLICKHOUSE_CLUSTER' TO S3('${S3_URL%/}/$CLICKHOUSE_CLUSTER/$stamp', '$AWS_ACCESS_KEY_ID', '$AWS_SECRET_ACCESS_KEY')\"\n";
        objects.push(json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(&child_name(&cluster.name, "backup", 52), "backup"),
            "spec": {
                "schedule": settings.backup_schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "backoffLimit": 2,
                        "template": {
                            "metadata": {"labels": pod_labels},
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{
                                    "name": "backup",
                                    "image": settings.image,
                                    "command": ["/bin/sh", "-c", script],
                                    "env": [
                                        {"name": "CLICKHOUSE_HOST", "value": format!("clickhouse-{}.{namespace}.svc", cluster.name)},
                                        {"name": "CLICKHOUSE_CLUSTER", "value": target.clickhouse_cluster(&cluster.name)},
                                    ],
                                    "envFrom": [{"secretRef": {"name": BACKUP_SECRET}}],
                                }],
                            },
                        },
                    },
                },
            },
        }));
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_numbers() {
        assert_eq!(memory_quantity(128.0), "128Gi");
        assert_eq!(memory_quantity(0.5), "512Mi");
        assert_eq!(number_text(500.0), "500");
        assert_eq!(number_text(80.5), "80.5");
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let long = "a".repeat(63);
        let name = child_name(&long, "backup", 52);
        assert!(name.len() <= 52, "{name}");
        assert!(name.ends_with("-backup"));
        assert_ne!(name, child_name(&"a".repeat(62), "backup", 52));
        assert_eq!(child_name("metrics", "backup", 52), "metrics-backup");
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("team-a"));
        assert!(is_label_value(""));
        assert!(!is_label_value("has space"));
        assert!(!is_label_value("-lead"));
        assert!(!is_label_value(&"x".repeat(64)));
    }
}
