//! The `PrometheusRule` of a cluster's pipelines: lag and failure alerts from paver's own
//! metrics (`paver_pipeline_lag`, `paver_pipeline_failing`), one pair per pipeline that
//! sinks into the cluster and has an `alerting` block, labelled with the pipeline's owner.
//! The conditions and durations are those `paver run` notifies on (README, "Alerts and
//! notifications"), for teams that route alerts through Alertmanager.

use paver_lint::layout::Kind;
use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;
use serde_json::{json, Value};

use super::render::Cluster;
use super::{Target, CLUSTER_LABEL, MANAGED_BY, MANAGER};

/// What the rules need of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineAlerting {
    pub name: String,
    pub owner: String,
    pub source: String,
    pub on_backlog: Option<i64>,
}

/// The pipelines of a workspace that sink into `cluster` and have an `alerting` block.
pub fn pipelines_of(ws: &Workspace, cluster: &str) -> Vec<PipelineAlerting> {
    ws.active_specs(Kind::DataPipeline)
        .filter(|(_, root)| {
            root.path(&["spec", "sink", "cluster"])
                .and_then(Node::as_str)
                == Some(cluster)
        })
        .filter(|(_, root)| root.path(&["spec", "alerting"]).is_some())
        .filter_map(|(file, root)| {
            let (_, name, _) = file.spec()?;
            Some(PipelineAlerting {
                name: name.to_string(),
                owner: root
                    .path(&["metadata", "owner"])
                    .and_then(Node::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
                source: file.path.clone(),
                on_backlog: root
                    .path(&["spec", "alerting", "onBacklog"])
                    .and_then(Node::as_i64),
            })
        })
        .collect()
}

/// The rule object, when the cluster has pipelines with alerting.
pub fn render(
    cluster: &Cluster,
    target: &Target,
    pipelines: &[PipelineAlerting],
    alerts: &crate::notify::config::AlertSettings,
) -> Option<Value> {
    if pipelines.is_empty() {
        return None;
    }
    let mut rules = Vec::new();
    for p in pipelines {
        let labels = |severity: &str| json!({"severity": severity, "paver_cluster": cluster.name, "pipeline": p.name, "owner": p.owner});
        rules.push(json!({
            "alert": "PaverPipelineFailing",
            "expr": format!("max(paver_pipeline_failing{{pipeline=\"{}\"}}) == 1", p.name),
            "for": format!("{}s", alerts.failure_for_seconds),
            "labels": labels("critical"),
            "annotations": {
                "summary": format!("Pipeline {} cannot make progress", p.name),
                "description": format!("paver's worker of {} has reported an error for {} s (from {}).", p.name, alerts.failure_for_seconds, p.source),
            },
        }));
        if let Some(threshold) = p.on_backlog {
            rules.push(json!({
                "alert": "PaverPipelineBacklog",
                "expr": format!("max(paver_pipeline_lag{{pipeline=\"{}\"}}) > {threshold}", p.name),
                "for": format!("{}s", alerts.backlog_for_seconds),
                "labels": labels("warning"),
                "annotations": {
                    "summary": format!("Pipeline {} is behind its topic", p.name),
                    "description": format!("{{{{ $value }}}} records of {} are not ingested yet (onBacklog {threshold}, from {}).", p.name, p.source),
                },
            }));
        }
    }
    let namespace = target.cluster(&cluster.name).namespace.clone();
    Some(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": format!("{}-pipeline-alerts", cluster.name),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "paver",
                "app.kubernetes.io/instance": cluster.name,
                "app.kubernetes.io/component": "pipeline-alerts",
                MANAGED_BY: MANAGER,
                CLUSTER_LABEL: cluster.name,
                "paver.dev/owner": cluster.owner,
            },
        },
        "spec": {"groups": [{"name": format!("paver.{}.pipelines", cluster.name), "rules": rules}]},
    }))
}
