//! The Kubernetes objects rendered from ClickHouseClusters: snapshots of `paver render`'s
//! YAML, the YAML read back by the linter's own loader, and every part that Kubernetes
//! itself defines (CronJob, pod specs, volume claims, object metadata) checked against the
//! typed API of `k8s-openapi`: a field it does not know, or of the wrong type, fails.

use std::path::Path;

use paver::kube::render::render;
use paver::kube::{yaml, Target};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A platform repo from `paver.yaml` and cluster specs, linted clean.
fn workspace(files: &[(&str, &str)]) -> paver_lint::workspace::Workspace {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let report = paver_lint::lint_dir(dir.path()).unwrap();
    assert_eq!(
        report.errors(),
        0,
        "{}",
        paver_lint::output::human::render(&report, false)
    );
    report.workspace
}

fn settings(ws: &paver_lint::workspace::Workspace) -> Option<&paver_lint::yaml::Node> {
    ws.files
        .iter()
        .find(|f| f.path == "paver.yaml")
        .and_then(|f| f.root.as_ref())
}

fn example() -> paver_lint::workspace::Workspace {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-repo-example");
    paver_lint::lint_dir(&root).unwrap().workspace
}

const EDGE_CASES: &str = "apiVersion: platform.paver.dev/v1
kind: ClickHouseCluster
metadata:
  name: a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob
  version: 3
  owner: team-edge
  labels:
    cost-center: cc-1234
    note: has spaces, so it is no label value
spec:
  replication: 1
  shards: 2
  memoryGB: 0.5
  backupToS3: true
  monitoring: { alertOnDisk: 92.5 }
";

const EDGE_SETTINGS: &str = "targets:
  kubernetes:
    namespace: analytics
    storageGB: 20
    image: registry.internal/clickhouse-server:24.8
  clusters:
    quiet:
      kubernetes:
        namespace: quiet-ns
        storageClass: fast-ssd
        backupSchedule: '30 1 * * 0'
";

const QUIET: &str = "apiVersion: platform.paver.dev/v1
kind: ClickHouseCluster
metadata:
  name: quiet
  version: 1
  owner: team-q
spec:
  replication: 2
  shards: 1
  memoryGB: 16
  backupToS3: true
";

fn edge_workspace() -> paver_lint::workspace::Workspace {
    workspace(&[
        ("paver.yaml", EDGE_SETTINGS),
        (
            "clusters/a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob/v1.yaml",
            &EDGE_CASES.replace("version: 3", "version: 1"),
        ),
        (
            "clusters/a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob/v2.yaml",
            &EDGE_CASES.replace("version: 3", "version: 2"),
        ),
        (
            "clusters/a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob/v3.yaml",
            EDGE_CASES,
        ),
        ("clusters/quiet/v1.yaml", QUIET),
    ])
}

#[test]
fn the_example_repo_renders_an_installation_a_rule_and_a_backup() {
    let ws = example();
    let target = Target::for_render(settings(&ws), Some("data".into())).unwrap();
    let objects = render(&ws, &target);
    insta::assert_snapshot!("example", yaml::documents(&objects));
}

#[test]
fn settings_labels_long_names_and_missing_parts() {
    let ws = edge_workspace();
    let target = Target::for_render(settings(&ws), None).unwrap();
    let objects = render(&ws, &target);
    let kinds: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    // The active version only; no PrometheusRule for a cluster without monitoring.
    assert_eq!(
        kinds,
        [
            (
                "ClickHouseInstallation",
                "a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob"
            ),
            (
                "PrometheusRule",
                "a-cluster-whose-name-is-long-enough-to-need-a-shorter-cronjob-alerts"
            ),
            (
                "CronJob",
                "a-cluster-whose-name-is-long-enough-to-ba80dd-backup"
            ),
            ("ClickHouseInstallation", "quiet"),
            ("CronJob", "quiet-backup"),
        ]
    );
    // A CronJob's name has at most 52 characters (its Jobs' names get a suffix).
    assert!(kinds
        .iter()
        .all(|(kind, name)| *kind != "CronJob" || name.len() <= 52));
    insta::assert_snapshot!("edge_cases", yaml::documents(&objects));
}

/// Every document of the YAML stream, loaded by the linter's strict YAML loader, is the
/// object that was rendered.
#[test]
fn the_yaml_reads_back_as_the_objects() {
    for ws in [example(), edge_workspace()] {
        let target = Target::for_render(settings(&ws), None).unwrap();
        let objects = render(&ws, &target);
        let stream = yaml::documents(&objects);
        let documents: Vec<&str> = stream.split("---\n").filter(|d| !d.is_empty()).collect();
        assert_eq!(documents.len(), objects.len());
        for (text, object) in documents.iter().zip(&objects) {
            let node = paver_lint::yaml::load(text, Default::default())
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            assert_eq!(&node.to_json(), object, "\n{text}");
        }
    }
}

/// `value` as the typed struct and back is `value` itself: nothing unknown was dropped,
/// nothing was of the wrong type.
fn typed_round_trip<T: DeserializeOwned + Serialize>(what: &str, value: &Value) {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} is not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{what}: fields lost or changed by the typed API"
    );
}

#[test]
fn what_kubernetes_defines_is_valid_for_its_typed_api() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let mut checked = 0;
    for ws in [example(), edge_workspace()] {
        let target = Target::for_render(settings(&ws), None).unwrap();
        for object in render(&ws, &target) {
            let name = format!("{} {}", object["kind"], object["metadata"]["name"]);
            typed_round_trip::<ObjectMeta>(&name, &object["metadata"]);
            match object["kind"].as_str().unwrap() {
                "CronJob" => {
                    typed_round_trip::<CronJob>(&name, &object);
                    checked += 1;
                }
                "ClickHouseInstallation" => {
                    let templates = &object["spec"]["templates"];
                    for pod in templates["podTemplates"].as_array().unwrap() {
                        typed_round_trip::<PodSpec>(&name, &pod["spec"]);
                        typed_round_trip::<ObjectMeta>(&name, &pod["metadata"]);
                    }
                    for claim in templates["volumeClaimTemplates"].as_array().unwrap() {
                        typed_round_trip::<PersistentVolumeClaimSpec>(&name, &claim["spec"]);
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(checked, 6);
}

/// The check above can fail: a misspelt field is caught.
#[test]
fn the_typed_check_catches_an_unknown_field() {
    let pod = serde_json::json!({"containers": [{"name": "c", "imagee": "x"}]});
    let typed: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(pod.clone()).unwrap();
    assert_ne!(serde_json::to_value(typed).unwrap(), pod);
}
