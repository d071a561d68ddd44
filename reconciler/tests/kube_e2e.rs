//! The Kubernetes provider and the lease against a real cluster, when `KUBECONFIG` is set
//! (skipped otherwise, with a message): `KUBECONFIG=~/.kube/config cargo test -p paver
//! --test kube_e2e -- --nocapture`. It works in a namespace of its own (`paver-e2e-<pid>`),
//! deleted at the end; it needs the rights of `deploy/rbac.yaml` plus creating and deleting
//! namespaces. A ClickHouseInstallation would start servers, so only the CronJob (built in)
//! and, where the Prometheus operator's CRD exists, the PrometheusRule are applied.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use paver::kube::lease::{Elector, LeaseConfig};
use paver::kube::provider::{client, Kube};
use paver::kube::render::{render_cluster, Cluster};
use paver::kube::Target;
use paver::plan::plan_kube;

fn cluster() -> Cluster {
    Cluster {
        name: "e2e".to_string(),
        version: 1,
        source: "clusters/e2e/v1.yaml".to_string(),
        owner: "team-e2e".to_string(),
        labels: BTreeMap::new(),
        shards: 1,
        replicas: 1,
        memory_gb: 1.0,
        backup_to_s3: true,
        alert_on_cpu: Some(80.0),
        alert_on_disk: Some(85.0),
        cost_budget: Some(10.0),
    }
}

#[tokio::test]
async fn apply_observe_prune_and_lease_against_a_real_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!("skipped: KUBECONFIG is not set; see README.md, section Kubernetes, to run this test against a cluster");
        return;
    }
    let context = std::env::var("PAVER_KUBERNETES_CONTEXT").ok();
    let client = client(context.as_deref())
        .await
        .expect("a Kubernetes client");
    let namespace = format!("paver-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.clone());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the test namespace");

    let result = run(client.clone(), &namespace).await;
    let _ = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await;
    result.unwrap();
}

async fn run(client: kube::Client, namespace: &str) -> Result<(), String> {
    let kube = Kube::new(client.clone());
    let target =
        Target::for_render(None, Some(namespace.to_string())).map_err(|e| e.to_string())?;
    let mut objects: Vec<_> = render_cluster(&cluster(), &target)
        .into_iter()
        .filter(|o| o["kind"] != "ClickHouseInstallation")
        .collect();
    if kube.observe(&objects).await.is_err() {
        println!("no PrometheusRule CRD in this cluster: the CronJob alone is applied");
        objects.retain(|o| o["kind"] == "CronJob");
    }

    // Create: every object is a step, applied with server-side apply.
    let observed = kube.observe(&objects).await?;
    let steps = plan_kube(&objects, &observed).map_err(|b| format!("{b:?}"))?;
    assert_eq!(steps.len(), objects.len());
    for step in &steps {
        let paver::plan::Action::Kube(action) = &step.action else {
            return Err(format!("not a Kubernetes step: {step:?}"));
        };
        kube.execute(action).await.map_err(|e| e.to_string())?;
    }

    // What the server stores (with its defaults) holds what was applied: nothing to do.
    let observed = kube.observe(&objects).await?;
    let again = plan_kube(&objects, &observed).map_err(|b| format!("{b:?}"))?;
    assert!(again.is_empty(), "a second plan is not empty: {again:?}");
    for object in observed.values() {
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"paver"), "{managers:?}");
    }

    // Prune: the revision renders nothing any more; paver deletes what it owns.
    let steps = plan_kube(&[], &observed).map_err(|b| format!("{b:?}"))?;
    assert_eq!(steps.len(), objects.len());
    for step in &steps {
        let paver::plan::Action::Kube(action) = &step.action else {
            return Err(format!("not a Kubernetes step: {step:?}"));
        };
        kube.execute(action).await.map_err(|e| e.to_string())?;
    }

    // Two replicas, one lease: the first leads; once it releases, the second takes over.
    let config = |id: &str| LeaseConfig::new("paver-e2e", namespace, id);
    let mut first = Elector::new(client.clone(), config("first"));
    let mut second = Elector::new(client, config("second"));
    let now = Instant::now();
    assert!(first
        .try_acquire_or_renew(now)
        .await
        .map_err(|e| e.to_string())?);
    assert!(!second
        .try_acquire_or_renew(now)
        .await
        .map_err(|e| e.to_string())?);
    assert!(first
        .try_acquire_or_renew(now)
        .await
        .map_err(|e| e.to_string())?);
    first.release().await.map_err(|e| e.to_string())?;
    assert!(second
        .try_acquire_or_renew(Instant::now())
        .await
        .map_err(|e| e.to_string())?);
    println!("applied, observed, pruned and led in namespace {namespace}");
    Ok(())
}
