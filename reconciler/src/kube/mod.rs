//! Kubernetes: each live `ClickHouseCluster` rendered into the objects a platform team runs
//! ([`render`]), applied with server-side apply, observed and pruned ([`provider`]), printed
//! for review ([`yaml`]), and the lease that makes one `paver run` replica the leader
//! ([`lease`]).
//!
//! Everything here is off unless a Kubernetes target is configured (`targets.kubernetes` in
//! paver.yaml, or `PAVER_KUBERNETES_NAMESPACE` / `PAVER_KUBERNETES_CONTEXT`): without one,
//! a revision's plan is what it always was.

pub mod lease;
pub mod provider;
pub mod render;
pub mod yaml;

use std::collections::BTreeMap;

use paver_lint::yaml::Node;
use serde::{Deserialize, Serialize};

/// The field manager of every server-side apply, and the value of the ownership label.
pub const MANAGER: &str = "paver";

/// The label that marks an object as paver's: only objects carrying it are updated or pruned.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The label naming the `ClickHouseCluster` an object was rendered from.
pub const CLUSTER_LABEL: &str = "paver.dev/cluster";

/// The annotation holding the manifest paver last applied (JSON), so that a rollback can
/// re-apply exactly what was there before, and so that a field paver stops setting is seen
/// as a change.
pub const APPLIED_ANNOTATION: &str = "paver.dev/applied";

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

/// A Kubernetes object's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The identity of a manifest (`None` when it lacks one of the four fields).
    pub fn of(object: &serde_json::Value) -> Option<ObjectRef> {
        let text = |pointer: &str| object.pointer(pointer)?.as_str().map(str::to_string);
        Some(ObjectRef {
            api_version: text("/apiVersion")?,
            kind: text("/kind")?,
            namespace: text("/metadata/namespace")?,
            name: text("/metadata/name")?,
        })
    }

    /// The resource id in plans and the journal: `kube:<Kind>/<namespace>/<name>`.
    pub fn id(&self) -> String {
        format!("kube:{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

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
}

impl Default for ClusterTarget {
    fn default() -> Self {
        ClusterTarget {
            namespace: DEFAULT_NAMESPACE.to_string(),
            image: DEFAULT_IMAGE.to_string(),
            storage_gb: DEFAULT_STORAGE_GB,
            storage_class: None,
            backup_schedule: DEFAULT_BACKUP_SCHEDULE.to_string(),
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
    /// it (see [`crate::config`]); `always`: one even when nothing configures it.
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
            clusters.insert(entry.key.clone(), defaults.merged(own));
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
}

/// Why the Kubernetes part of a plan could not be made.
#[derive(Debug)]
pub enum PlanError {
    /// Observing failed.
    Target(String),
    /// Objects in the way that paver does not own.
    Blocked(Vec<crate::plan::Blocker>),
}

/// With a Kubernetes target configured (paver.yaml or the environment): connect into
/// `targets.kube` and render the revision's objects. `Ok(None)` without one: nothing
/// Kubernetes happens.
pub async fn connect(
    ws: &paver_lint::workspace::Workspace,
    config: &crate::config::Config,
    targets: &mut crate::providers::Targets,
) -> Result<Option<Vec<serde_json::Value>>, String> {
    let Some(target) = &config.kubernetes else {
        return Ok(None);
    };
    targets.kube = Some(provider::Kube::connect(target.context.as_deref()).await?);
    Ok(Some(render::render(ws, target)))
}

/// The objects a revision renders, for `paver render`: the revision is read (a folder or a
/// git URL) and linted like any other, and refused when it has errors. `namespace`
/// replaces the default namespace of paver.yaml.
pub fn render_revision(
    options: &crate::reconcile::Options,
    namespace: Option<String>,
) -> Result<(String, Vec<serde_json::Value>), crate::reconcile::ReconcileError> {
    use crate::reconcile::ReconcileError;
    let revision = crate::reconcile::revision(options)?;
    let report = paver_lint::lint(revision.collected);
    if report.errors() > 0 {
        return Err(ReconcileError::Refused {
            sha: revision.sha,
            errors: report.errors(),
            report: paver_lint::output::human::render(&report, false),
        });
    }
    let settings = crate::config::settings_node(&report.workspace);
    let target = Target::for_render(settings, namespace)
        .map_err(|e| ReconcileError::Target(e.to_string()))?;
    Ok((revision.sha, render::render(&report.workspace, &target)))
}

/// Observe the objects of a revision and append their steps to its plan (the plan's
/// fingerprint then covers what was observed in Kubernetes too).
pub async fn plan_into(
    plan: &mut crate::plan::Plan,
    objects: &[serde_json::Value],
    targets: &crate::providers::Targets,
) -> Result<(), PlanError> {
    let Some(kube) = &targets.kube else {
        return Ok(());
    };
    let observed = kube.observe(objects).await.map_err(PlanError::Target)?;
    let steps = crate::plan::plan_kube(objects, &observed).map_err(PlanError::Blocked)?;
    plan.steps.extend(steps);
    let seen: BTreeMap<String, serde_json::Value> = observed
        .iter()
        .map(|(r, v)| (r.id(), previous(v)))
        .collect();
    plan.observed = crate::plan::fingerprint_json(&(&plan.observed, seen));
    Ok(())
}

/// Whether an object carries paver's ownership labels (managed-by and the cluster it was
/// rendered from): only such objects are pruned.
pub fn is_paver_owned(object: &serde_json::Value) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[MANAGED_BY].as_str() == Some(MANAGER) && labels[CLUSTER_LABEL].is_string()
}

/// An object with the [`APPLIED_ANNOTATION`] of itself: what a plan applies.
pub fn with_applied(object: &serde_json::Value) -> serde_json::Value {
    let mut out = object.clone();
    let json = serde_json::to_string(object).unwrap_or_default();
    if let Some(meta) = out.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(
                APPLIED_ANNOTATION.to_string(),
                serde_json::Value::String(json),
            );
        }
    }
    out
}

/// What paver had applied to an object it observes, to re-apply on rollback: its
/// [`APPLIED_ANNOTATION`], or, for an object without one, the object itself less what the
/// server keeps (status, uid, resourceVersion, managed fields, …).
pub fn previous(observed: &serde_json::Value) -> serde_json::Value {
    let applied = observed["metadata"]["annotations"][APPLIED_ANNOTATION]
        .as_str()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    if let Some(applied) = applied {
        return with_applied(&applied);
    }
    let mut out = observed.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = out.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
            "ownerReferences",
            "finalizers",
        ] {
            meta.remove(key);
        }
    }
    out
}

/// Whether `have` holds everything `want` says: every key of a mapping, every element of
/// a sequence (same length), equal scalars. What the server adds (defaults, status) does
/// not count as a difference.
pub fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (want, have) {
        (V::Object(w), V::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (V::Array(w), V::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(wv, hv)| contains(hv, wv))
        }
        (V::Number(w), V::Number(h)) => w.as_f64() == h.as_f64(),
        (w, h) => w == h,
    }
}

/// Where `have` does not hold `want`, as dotted paths (at most three levels deep, for a
/// plan line).
pub fn differences(have: &serde_json::Value, want: &serde_json::Value) -> Vec<String> {
    fn walk(
        have: &serde_json::Value,
        want: &serde_json::Value,
        path: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        if contains(have, want) {
            return;
        }
        match (want, have) {
            (serde_json::Value::Object(w), serde_json::Value::Object(h)) if depth < 3 => {
                for (k, v) in w {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match h.get(k) {
                        Some(hv) => walk(hv, v, &sub, depth + 1, out),
                        None => out.push(sub),
                    }
                }
            }
            _ => out.push(path.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(have, want, "", 0, &mut out);
    out
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
