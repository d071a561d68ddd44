//! The Kubernetes provider: observes the kinds paver renders (one list per kind and
//! namespace, whatever the number of objects), applies objects with server-side apply under
//! the field manager `paver` (forced: drift is repaired, as everywhere else), and deletes
//! the objects a plan prunes. It decides nothing: the plan says what to apply and delete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use ::kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::config::{Config, KubeConfigOptions};
use ::kube::Client;
use serde_json::Value;

use super::render::KINDS;
use super::{ObjectRef, MANAGER};
use crate::error::{ErrorKind, ProviderError};
use crate::plan::KubeAction;

/// A connection to one Kubernetes API server.
pub struct Kube {
    client: Client,
    /// Requests sent, for the "requests per reconcile" count.
    pub requests: AtomicU64,
}

/// The API resource of an `apiVersion` and `kind` paver renders.
fn api_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    })
}

/// A client for a kubeconfig context, or, without one, configured as `kubectl` would be
/// (the in-cluster service account, else `$KUBECONFIG` / `~/.kube/config`).
pub async fn client(context: Option<&str>) -> Result<Client, String> {
    let config = match context {
        Some(context) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("Kubernetes: the kubeconfig context `{context}`: {e}"))?,
        None => Config::infer()
            .await
            .map_err(|e| format!("Kubernetes: no configuration (in-cluster or kubeconfig): {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("Kubernetes: {e}"))
}

/// A Kubernetes error as a user reads it: what paver was doing, what the server said, and
/// what to do about it.
fn explain(doing: &str, object: &ObjectRef, error: ::kube::Error) -> String {
    match error {
        ::kube::Error::Api(status) => {
            let help = match status.code {
                409 => format!(
                    "\n  help: someone else changed {object} at the same time, or holds a field paver sets; run again, and see who owns what with `kubectl get {} -n {} {} --show-managed-fields -o yaml`",
                    object.kind.to_lowercase(),
                    object.namespace,
                    object.name
                ),
                403 => "\n  help: paver's service account lacks a permission: compare its Role with deploy/rbac.yaml".to_string(),
                404 if object.api_version != "batch/v1" => format!(
                    "\n  help: is the operator that defines {} installed in the cluster?",
                    object.api_version
                ),
                _ => String::new(),
            };
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", status.reason)
            };
            format!(
                "{doing} {object}: Kubernetes answered {}{reason}: {}{help}",
                status.code, status.message
            )
        }
        other => format!("{doing} {object}: {other}"),
    }
}

impl Kube {
    /// A provider over an existing client (the tests give it a mock service).
    pub fn new(client: Client) -> Kube {
        Kube {
            client,
            requests: AtomicU64::new(0),
        }
    }

    /// Connect with a kubeconfig context, or, without one, as `kubectl` would (the
    /// in-cluster service account, else `$KUBECONFIG` / `~/.kube/config`).
    pub async fn connect(context: Option<&str>) -> Result<Kube, String> {
        Ok(Kube::new(client(context).await?))
    }

    fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Option<Api<DynamicObject>> {
        let resource = api_resource(api_version, kind)?;
        Some(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        ))
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// What exists of the kinds paver renders, in the namespaces of `wanted`: the objects
    /// `wanted` names, and every object labelled as paver's (the candidates for pruning).
    /// One list request per kind and namespace. A kind the cluster does not have (its
    /// operator is not installed) is an error only when `wanted` has objects of it.
    pub async fn observe(&self, wanted: &[Value]) -> Result<BTreeMap<ObjectRef, Value>, String> {
        let refs: BTreeSet<ObjectRef> = wanted.iter().filter_map(ObjectRef::of).collect();
        let namespaces: BTreeSet<&str> = refs.iter().map(|r| r.namespace.as_str()).collect();
        let mut out = BTreeMap::new();
        for namespace in namespaces {
            for (api_version, kind, _) in KINDS {
                let Some(api) = self.api(api_version, kind, namespace) else {
                    continue;
                };
                self.count();
                let list = match api.list(&ListParams::default()).await {
                    Ok(list) => list,
                    Err(::kube::Error::Api(status)) if status.code == 404 => {
                        let needed = refs
                            .iter()
                            .any(|r| r.kind == kind && r.namespace == namespace);
                        if needed {
                            return Err(format!(
                                "Kubernetes has no {kind} ({api_version}) in namespace {namespace}: install the operator that defines it, or drop what renders it (monitoring: the Prometheus operator; ClickHouseInstallation: the Altinity clickhouse-operator)"
                            ));
                        }
                        continue;
                    }
                    Err(e) => {
                        let scope = ObjectRef {
                            api_version: api_version.to_string(),
                            kind: kind.to_string(),
                            namespace: namespace.to_string(),
                            name: "*".to_string(),
                        };
                        return Err(explain("listing", &scope, e));
                    }
                };
                for item in list.items {
                    let mut value = serde_json::to_value(&item).map_err(|e| e.to_string())?;
                    // A list's items may omit apiVersion and kind: they are the list's.
                    value["apiVersion"] = Value::String(api_version.to_string());
                    value["kind"] = Value::String(kind.to_string());
                    let Some(r) = ObjectRef::of(&value) else {
                        continue;
                    };
                    if refs.contains(&r) || super::is_paver_owned(&value) {
                        out.insert(r, value);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Server-side apply of one object, as the field manager `paver`, forced.
    pub async fn apply(&self, object: &Value) -> Result<(), ProviderError> {
        let r = ObjectRef::of(object).ok_or_else(|| {
            ProviderError::permanent(
                "an object without apiVersion, kind, metadata.namespace or metadata.name",
            )
        })?;
        let api = self
            .api(&r.api_version, &r.kind, &r.namespace)
            .ok_or_else(|| ProviderError::permanent(format!("paver does not manage {r}")))?;
        self.count();
        api.patch(
            &r.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map(|_| ())
        .map_err(|e| ProviderError {
            kind: kind_of(&e),
            message: explain("applying", &r, e),
        })
    }

    /// Delete one object; one that is already gone is fine (compensations are idempotent).
    pub async fn delete(&self, r: &ObjectRef) -> Result<(), ProviderError> {
        let api = self
            .api(&r.api_version, &r.kind, &r.namespace)
            .ok_or_else(|| ProviderError::permanent(format!("paver does not manage {r}")))?;
        self.count();
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(::kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ProviderError {
                kind: kind_of(&e),
                message: explain("deleting", r, e),
            }),
        }
    }

    /// Run a Kubernetes action.
    pub async fn execute(&self, action: &KubeAction) -> Result<(), ProviderError> {
        match action {
            KubeAction::ApplyObject { object, .. } => self.apply(object).await,
            KubeAction::DeleteObject { object } => self.delete(object).await,
        }
    }
}

/// Whether a Kubernetes error may pass: a conflict (409) is someone else's write; the API
/// server unavailable, throttling or a network error pass; the rest (forbidden, invalid)
/// waits for a new revision.
fn kind_of(e: &::kube::Error) -> ErrorKind {
    match e {
        ::kube::Error::Api(status) if status.code == 409 => ErrorKind::Conflict,
        ::kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
            ErrorKind::Transient
        }
        ::kube::Error::Api(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    }
}
