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
    assert_eq!(files.len(), 4);
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

#[test]
fn the_replicas_keep_their_state_in_postgresql_without_a_shared_volume() {
    let deployment = &documents("deployment.yaml")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // The connection string from a Secret, read by `--state`'s environment variable.
    let state = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "PAVER_STATE")
        .expect("PAVER_STATE in the environment");
    assert!(state["value"].is_null());
    assert_eq!(state["valueFrom"]["secretKeyRef"]["name"], "paver-state");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_paver"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("[env: PAVER_STATE"));
    assert!(container["args"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| !a.as_str().unwrap().starts_with("--state")));
    // No volume but the git key and scratch space: nothing shared between replicas.
    for volume in pod["volumes"].as_array().unwrap() {
        assert!(
            volume["persistentVolumeClaim"].is_null(),
            "a shared volume: {volume}"
        );
    }
}

#[test]
fn the_sqlite_variant_runs_one_replica_on_a_volume_of_its_own() {
    let kustomization = &documents("sqlite/kustomization.yaml")[0];
    assert_eq!(
        kustomization["resources"],
        serde_json::json!(["../", "pvc.yaml"])
    );
    let pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        typed("sqlite/pvc.yaml", &documents("sqlite/pvc.yaml")[0]);
    let spec = pvc.spec.unwrap();
    assert_eq!(spec.access_modes.unwrap(), ["ReadWriteOnce"]);
    let patch = &documents("sqlite/deployment-patch.yaml")[0];
    assert_eq!(kustomization["patches"][0]["path"], "deployment-patch.yaml");
    assert_eq!(patch["spec"]["replicas"], 1);
    assert_eq!(patch["spec"]["strategy"]["type"], "Recreate");
    let pod = &patch["spec"]["template"]["spec"];
    let state = &pod["containers"][0]["env"][0];
    assert_eq!(state["name"], "PAVER_STATE");
    assert!(state["value"].as_str().unwrap().starts_with(
        pod["containers"][0]["volumeMounts"][0]["mountPath"]
            .as_str()
            .unwrap()
    ));
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        pvc.metadata.name.unwrap()
    );
}
