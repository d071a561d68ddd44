//! Every rendered custom resource validated against the constraints the operators' CRDs put
//! on it (`tests/fixtures/crd/`, see its README), as `kubeconform -strict` would: a typed
//! round trip through `k8s-openapi` does not cover custom resources. The ClickHouseCluster
//! of the platform repo example is named `production-metrics` (18 characters): the
//! installation's cluster name must still fit the operator's 15.

use std::path::Path;

use paver::kube::render::render;
use paver::kube::Target;
use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/crd/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

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

/// Every custom resource of `objects` valid under its CRD's constraints; the names of
/// the installations' clusters.
fn check(objects: &[Value]) -> Vec<String> {
    let (chi, rule) = (schema("clickhouseinstallation"), schema("prometheusrule"));
    let mut names = Vec::new();
    for object in objects {
        let validator = match object["kind"].as_str() {
            Some("ClickHouseInstallation") => {
                for c in object["spec"]["configuration"]["clusters"]
                    .as_array()
                    .unwrap()
                {
                    names.push(c["name"].as_str().unwrap().to_string());
                }
                &chi
            }
            Some("PrometheusRule") => &rule,
            _ => continue,
        };
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} {} is refused by its CRD: {errors:#?}",
            object["kind"],
            object["metadata"]["name"]
        );
    }
    names
}

const CLUSTER: &str = "apiVersion: platform.paver.dev/v1
kind: ClickHouseCluster
metadata:
  name: NAME
  version: 1
  owner: team-crd
spec:
  replication: 2
  shards: 2
  memoryGB: 16
  monitoring: { alertOnCPU: 80, alertOnDisk: 85 }
";

#[test]
fn the_example_repo_renders_custom_resources_its_operators_accept() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-repo-example");
    let ws = paver_lint::lint_dir(&root).unwrap().workspace;
    let target = Target::for_render(settings(&ws), None).unwrap();
    let objects = render(&ws, &target);
    let names = check(&objects);
    assert!(!names.is_empty());
    for name in names {
        assert!(name.len() <= 15, "{name}");
    }
}

#[test]
fn long_cluster_names_get_a_stable_valid_name_and_paver_yaml_names_one_for_tables_and_kubernetes() {
    let long = "production-metrics";
    let ws = workspace(&[
        (&format!("clusters/{long}/v1.yaml"), &CLUSTER.replace("NAME", long)),
        ("clusters/short/v1.yaml", &CLUSTER.replace("NAME", "short")),
        ("clusters/named/v1.yaml", &CLUSTER.replace("NAME", "named")),
        (
            "paver.yaml",
            "targets:\n  clusters:\n    named:\n      clickhouse:\n        url: http://ch-0:8123\n        cluster: prod-named\n",
        ),
    ]);
    let target = Target::for_render(settings(&ws), None).unwrap();
    let objects = render(&ws, &target);
    let names = check(&objects);
    let derived = paver::model::installation_cluster_name(long);
    assert_eq!(derived.len(), 15, "{derived}");
    assert!(derived.starts_with("production-"), "{derived}");
    // Stable: the same name every time, and another for another resource.
    assert_eq!(derived, paver::model::installation_cluster_name(long));
    assert_ne!(
        derived,
        paver::model::installation_cluster_name("production-metricz")
    );
    assert_eq!(
        names,
        vec![
            "named".replace("named", "prod-named"),
            derived,
            "short".to_string()
        ]
    );
    // The backup job backs up ON CLUSTER the same name.
    let backups: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "CronJob").collect();
    for b in backups {
        let env = &b["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
        let cluster = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CLICKHOUSE_CLUSTER")
            .unwrap();
        assert!(cluster["value"].as_str().unwrap().len() <= 15, "{b}");
    }
}

#[test]
fn a_cluster_name_the_operator_refuses_is_an_error_that_says_what_to_use() {
    let ws = workspace(&[
        ("clusters/production-metrics/v1.yaml", &CLUSTER.replace("NAME", "production-metrics")),
        (
            "paver.yaml",
            "targets:\n  kubernetes:\n    namespace: data\n  clusters:\n    production-metrics:\n      clickhouse:\n        url: http://ch-0:8123\n        cluster: production_metrics\n",
        ),
    ]);
    let err = Target::for_render(settings(&ws), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "targets.clusters.production-metrics.clickhouse.cluster is `production_metrics`"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "name the cluster `{}`",
            paver::model::installation_cluster_name("production-metrics")
        )),
        "{err}"
    );
}
