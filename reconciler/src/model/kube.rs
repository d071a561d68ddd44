//! The identity of a Kubernetes object paver renders.

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
    pub fn id(&self) -> super::ResourceId {
        super::ResourceId::kube(self)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
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
    let json = object.to_string();
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
