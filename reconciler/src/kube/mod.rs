//! Kubernetes: each live `ClickHouseCluster` rendered into the objects a platform team runs
//! ([`render`]), applied with server-side apply, observed and pruned ([`provider`]), printed
//! for review ([`yaml`]), and the lease that makes one `paver run` replica the leader
//! ([`lease`]).
//!
//! Everything here is off unless a Kubernetes target is configured (`targets.kubernetes` in
//! paver.yaml, or `PAVER_KUBERNETES_NAMESPACE` / `PAVER_KUBERNETES_CONTEXT`): without one,
//! a revision's plan is what it always was.

pub mod lease;
pub mod pipeline_alerts;
pub mod provider;
pub mod render;
pub mod yaml;

use std::collections::BTreeMap;

use paver_lint::yaml::Node;

pub use crate::model::kube::{
    contains, differences, is_paver_owned, previous, with_applied, APPLIED_ANNOTATION,
    CLUSTER_LABEL, MANAGED_BY, MANAGER,
};

/// The namespace when neither paver.yaml nor the environment names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The ClickHouse server image when paver.yaml does not name one (an LTS release).
pub const DEFAULT_IMAGE: &str = "clickhouse/clickhouse-server:25.8";

/// The data volume of each ClickHouse server when paver.yaml does not give a size, in GiB.
pub const DEFAULT_STORAGE_GB: u64 = 100;

/// When backups run when paver.yaml does not say (cron, UTC): daily at 02:00.
pub const DEFAULT_BACKUP_SCHEDULE: &str = "0 2 * * *";

/// The Secret holding the S3 location and credentials of backups (`S3_URL`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; `CLICKHOUSE_USER`/`CLICKHOUSE_PASSWORD`).
/// paver never holds it: the platform team creates it in the cluster's namespace.
pub const BACKUP_SECRET: &str = "paver-backup-s3";

pub use crate::model::ObjectRef;

/// Where and how clusters are rendered: `targets.kubernetes` of paver.yaml (the defaults),
/// `targets.clusters.<name>.kubernetes` (per cluster), and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kubeconfig context (`None`: the current one, or the in-cluster service account).
    pub context: Option<String>,
    /// Settings for every cluster not named in `clusters`.
    pub defaults: ClusterTarget,
    /// Per-cluster settings (already merged over the defaults).
    pub clusters: BTreeMap<String, ClusterTarget>,
}

/// Where one cluster's objects go and what they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub namespace: String,
    pub image: String,
    pub storage_gb: u64,
    pub storage_class: Option<String>,
    pub backup_schedule: String,
    /// `targets.clusters.<name>.clickhouse.cluster`: the cluster name the installation
    /// defines and the tables use `ON CLUSTER` (else one derived from the resource name).
    pub clickhouse_cluster: Option<String>,
}

impl Default for ClusterTarget {
    fn default() -> Self {
        ClusterTarget {
            namespace: DEFAULT_NAMESPACE.to_string(),
            image: DEFAULT_IMAGE.to_string(),
            storage_gb: DEFAULT_STORAGE_GB,
            storage_class: None,
            backup_schedule: DEFAULT_BACKUP_SCHEDULE.to_string(),
            clickhouse_cluster: None,
        }
    }
}

impl ClusterTarget {
    /// These settings with the fields `node` (a `kubernetesTarget` of paver.yaml) sets.
    fn merged(&self, node: Option<&Node>) -> ClusterTarget {
        let mut out = self.clone();
        let Some(node) = node else {
            return out;
        };
        let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_string);
        if let Some(ns) = text("namespace") {
            out.namespace = ns;
        }
        if let Some(image) = text("image") {
            out.image = image;
        }
        if let Some(gb) = node.get("storageGB").and_then(Node::as_i64) {
            out.storage_gb = gb.max(1) as u64;
        }
        if let Some(class) = text("storageClass") {
            out.storage_class = Some(class);
        }
        if let Some(schedule) = text("backupSchedule") {
            out.backup_schedule = schedule;
        }
        out
    }
}

/// Why the Kubernetes settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("targets.clusters.{cluster}.kubernetes.context is `{context}`, but paver applies a revision to one Kubernetes context (`{default}`)\n  help: give every cluster the context of targets.kubernetes, and a namespace of its own if they must be apart")]
    SeveralContexts {
        cluster: String,
        context: String,
        default: String,
    },
    #[error("targets.clusters.{cluster}.clickhouse.cluster is `{name}`, but the ClickHouseInstallation rendered for Kubernetes names its cluster that way, and the operator accepts only letters, digits and '-', at most 15 (`^[a-zA-Z0-9-]{{0,15}}$`)\n  help: name the cluster `{derived}` (what paver derives from `{cluster}`) in paver.yaml and in the servers' remote_servers")]
    ClusterName {
        cluster: String,
        name: String,
        derived: String,
    },
}

impl Target {
    /// The target for rendering alone (`paver render`): always one, with the defaults where
    /// paver.yaml says nothing. `namespace` overrides the default namespace.
    pub fn for_render(
        settings: Option<&Node>,
        namespace: Option<String>,
    ) -> Result<Target, TargetError> {
        Ok(
            Target::resolve(settings, None, namespace, true)?.unwrap_or_else(|| Target {
                context: None,
                defaults: ClusterTarget::default(),
                clusters: BTreeMap::new(),
            }),
        )
    }

    /// The target from paver.yaml's settings, the environment's context and namespace over
    /// it (see [`crate::config`]); `always`: one even when nothing configures it. `Ok(None)`
    /// when nothing configures one: Kubernetes is then left alone.
    pub(crate) fn resolve(
        settings: Option<&Node>,
        context: Option<String>,
        namespace: Option<String>,
        always: bool,
    ) -> Result<Option<Target>, TargetError> {
        let targets = settings.and_then(|s| s.get("targets"));
        let kubernetes = targets.and_then(|t| t.get("kubernetes"));
        let per_cluster = targets
            .and_then(|t| t.get("clusters"))
            .map(Node::as_map)
            .unwrap_or_default()
            .iter()
            .any(|c| c.value.get("kubernetes").is_some());
        if kubernetes.is_none()
            && !per_cluster
            && context.is_none()
            && namespace.is_none()
            && !always
        {
            return Ok(None);
        }
        let context = context.or_else(|| {
            kubernetes
                .and_then(|k| k.get("context"))
                .and_then(Node::as_str)
                .map(str::to_string)
        });
        let mut defaults = ClusterTarget::default().merged(kubernetes);
        if let Some(ns) = namespace {
            defaults.namespace = ns;
        }
        let mut clusters = BTreeMap::new();
        for entry in targets
            .and_then(|t| t.get("clusters"))
            .map(Node::as_map)
            .unwrap_or_default()
        {
            let own = entry.value.get("kubernetes");
            if let Some(own_context) = own.and_then(|k| k.get("context")).and_then(Node::as_str) {
                let default = context.clone().unwrap_or_else(|| "(current)".to_string());
                if Some(own_context) != context.as_deref() {
                    return Err(TargetError::SeveralContexts {
                        cluster: entry.key.clone(),
                        context: own_context.to_string(),
                        default,
                    });
                }
            }
            let mut merged = defaults.merged(own);
            if let Some(name) = entry
                .value
                .path(&["clickhouse", "cluster"])
                .and_then(Node::as_str)
            {
                if !crate::model::is_installation_cluster_name(name) {
                    return Err(TargetError::ClusterName {
                        cluster: entry.key.clone(),
                        name: name.to_string(),
                        derived: crate::model::installation_cluster_name(&entry.key),
                    });
                }
                merged.clickhouse_cluster = Some(name.to_string());
            }
            clusters.insert(entry.key.clone(), merged);
        }
        Ok(Some(Target {
            context,
            defaults,
            clusters,
        }))
    }

    /// The settings of one cluster.
    pub fn cluster(&self, name: &str) -> &ClusterTarget {
        self.clusters.get(name).unwrap_or(&self.defaults)
    }

    /// The cluster name inside a ClickHouseCluster's installation: paver.yaml's
    /// `targets.clusters.<name>.clickhouse.cluster`, else derived from `name`.
    pub fn clickhouse_cluster(&self, name: &str) -> String {
        self.clusters
            .get(name)
            .and_then(|c| c.clickhouse_cluster.clone())
            .unwrap_or_else(|| crate::model::installation_cluster_name(name))
    }
}

/// With a Kubernetes target configured (paver.yaml or the environment, resolved by
/// [`crate::config`]): connect, and render the revision's objects. `Ok(None)` without one:
/// nothing Kubernetes happens.
pub async fn connect(
    ws: &paver_lint::workspace::Workspace,
    target: Option<&Target>,
) -> Result<Option<(provider::Kube, Vec<serde_json::Value>)>, String> {
    let Some(target) = target else {
        return Ok(None);
    };
    let kube = provider::Kube::connect(target.context.as_deref()).await?;
    Ok(Some((kube, render::render(ws, target))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Node {
        paver_lint::yaml::load(text, Default::default()).expect("yaml")
    }

    #[test]
    fn no_kubernetes_target_means_kubernetes_is_left_alone() {
        let s = settings("targets:\n  clickhouse:\n    url: http://x:8123\n");
        assert_eq!(Target::resolve(Some(&s), None, None, false), Ok(None));
        assert_eq!(Target::resolve(None, None, None, false), Ok(None));
    }

    #[test]
    fn per_cluster_settings_merge_over_the_defaults() {
        let s = settings(
            "targets:\n  kubernetes:\n    context: prod\n    namespace: data\n    storageGB: 500\n  clusters:\n    big:\n      kubernetes:\n        namespace: big-data\n        storageClass: fast\n",
        );
        let t = Target::resolve(Some(&s), None, None, false)
            .unwrap()
            .unwrap();
        assert_eq!(t.context.as_deref(), Some("prod"));
        assert_eq!(t.cluster("other").namespace, "data");
        assert_eq!(t.cluster("big").namespace, "big-data");
        assert_eq!(t.cluster("big").storage_gb, 500);
        assert_eq!(t.cluster("big").storage_class.as_deref(), Some("fast"));
        assert_eq!(t.cluster("other").storage_class, None);
        // The environment's namespace replaces the default, not a cluster's own.
        let t = Target::resolve(Some(&s), None, Some("env-ns".into()), false)
            .unwrap()
            .unwrap();
        assert_eq!(t.cluster("other").namespace, "env-ns");
        assert_eq!(t.cluster("big").namespace, "big-data");
    }

    #[test]
    fn an_object_holds_what_was_applied_whatever_the_server_added() {
        let want = serde_json::json!({"spec": {"a": 1, "list": [{"x": "1"}]}});
        let have = serde_json::json!({"spec": {"a": 1.0, "b": 2, "list": [{"x": "1", "y": 0}]}, "status": {}});
        assert!(contains(&have, &want));
        let changed = serde_json::json!({"spec": {"a": 1, "list": [{"x": "2"}]}});
        assert!(!contains(&have, &changed));
        assert_eq!(differences(&have, &changed), ["spec.list"]);
        let longer = serde_json::json!({"spec": {"list": [{"x": "1"}, {"x": "1"}]}});
        assert!(!contains(&have, &longer));
    }

    #[test]
    fn the_previous_object_is_what_paver_applied_else_the_object_less_server_fields() {
        let applied =
            serde_json::json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"x": 1}});
        let mut observed = with_applied(&applied);
        observed["metadata"]["uid"] = serde_json::json!("123");
        observed["spec"]["defaulted"] = serde_json::json!(true);
        assert_eq!(previous(&observed), with_applied(&applied));
        let foreign = serde_json::json!({"metadata": {"name": "a", "uid": "1", "resourceVersion": "9"}, "spec": {"x": 1}, "status": {"ok": true}});
        assert_eq!(
            previous(&foreign),
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"x": 1}})
        );
    }

    #[test]
    fn a_second_context_is_refused_with_help() {
        let s = settings(
            "targets:\n  kubernetes:\n    context: prod\n  clusters:\n    big:\n      kubernetes:\n        context: staging\n",
        );
        let e = Target::resolve(Some(&s), None, None, false).unwrap_err();
        assert!(e.to_string().contains("`staging`"), "{e}");
        assert!(e.to_string().contains("help:"), "{e}");
    }
}
