//! The manifests in `deploy/` that run paver in a cluster: every document is valid for the
//! typed Kubernetes API of `k8s-openapi` (nothing unknown, nothing of the wrong type), the
//! Deployment runs `paver run` with flags this binary has, and the RBAC grants what the
//! provider and the lease use, and no more.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n---\n")
        .map(|doc| {
            paver_lint::yaml::load(doc, Default::default())
                .unwrap_or_else(|e| panic!("{file}: {e:?}"))
                .to_json()
        })
        .collect()
}

fn typed<T: DeserializeOwned + Serialize>(file: &str, value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{file}: not a {}: {e}", std::any::type_name::<T>()));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        value,
        "{file}: fields unknown to the typed API, or of the wrong type"
    );
    typed
}

#[test]
fn every_manifest_is_valid_for_the_typed_api() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
    let kustomization = &documents("kustomization.yaml")[0];
    let files: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 5);
    let mut kinds = Vec::new();
    for file in files {
        for doc in documents(file) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "Deployment" => drop(typed::<Deployment>(file, &doc)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(file, &doc)),
                "Service" => drop(typed::<Service>(file, &doc)),
                "PersistentVolumeClaim" => drop(typed::<PersistentVolumeClaim>(file, &doc)),
                "Role" => drop(typed::<Role>(file, &doc)),
                "ClusterRole" => drop(typed::<ClusterRole>(file, &doc)),
                "RoleBinding" => drop(typed::<RoleBinding>(file, &doc)),
                other => panic!("{file}: unexpected kind {other}"),
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "Deployment",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
}

#[test]
fn rbac_grants_exactly_what_paver_manages() {
    let docs = documents("rbac.yaml");
    let cluster_role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let mut granted: Vec<(String, String, Vec<String>)> = cluster_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            assert_eq!(rule["apiGroups"].as_array().unwrap().len(), 1);
            assert_eq!(rule["resources"].as_array().unwrap().len(), 1);
            let verbs = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            (
                rule["apiGroups"][0].as_str().unwrap().to_string(),
                rule["resources"][0].as_str().unwrap().to_string(),
                verbs,
            )
        })
        .collect();
    granted.sort();
    let mut wanted: Vec<(String, String, Vec<String>)> = paver::kube::render::KINDS
        .iter()
        .map(|(api_version, _, plural)| {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            (
                group.to_string(),
                plural.to_string(),
                ["get", "list", "create", "patch", "delete"]
                    .map(str::to_string)
                    .to_vec(),
            )
        })
        .collect();
    wanted.sort();
    assert_eq!(granted, wanted);
    // Bound per namespace, never cluster-wide.
    assert!(docs.iter().all(|d| d["kind"] != "ClusterRoleBinding"));
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert!(role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["resources"][0] == "leases"));
}

#[test]
fn the_deployment_runs_paver_with_leader_election() {
    let deployment = &documents("deployment.yaml")[0];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-election"));
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2);
    // The flags exist: `paver run --help` lists them.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_paver"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap();
        assert!(help.contains(flag), "`paver run` has no {flag}");
    }
    // The identity and namespace of the lease come from the downward API.
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"));
}
