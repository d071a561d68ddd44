//! The Kubernetes provider and the lease against kube-rs's mock service (no API server can
//! run on these machines): the exact requests paver sends (server-side apply as field
//! manager `paver`, forced; lists; deletes; lease reads and writes with their
//! resourceVersion), what it does with the answers (conflicts, a missing CRD, objects it
//! does not own), and a failed apply rolled back by the executor.
//!
//! The pattern is kube-rs's `ApiServerVerifier`: `tower_test::mock::pair` gives a client
//! and a handle; a task plays the API server, asserting each request and answering it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use paver::kube::lease::{Elector, LeaseConfig};
use paver::kube::provider::Kube;
use paver::kube::render::{render_cluster, Cluster};
use paver::kube::{ObjectRef, Target};
use paver::plan::{plan_kube, Action, KubeAction, Plan};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Responder = tower_test::mock::SendResponse<Response<Body>>;

fn mock() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// A request as the server sees it.
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
}

async fn next(handle: &mut Handle) -> (Seen, Responder) {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("paver sent no request in time")
        .expect("the client is gone");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        content_type: parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                // An apply patch is YAML; paver writes it as JSON, which is YAML too.
                Value::String(String::from_utf8_lossy(&bytes).to_string())
            })
        },
    };
    (seen, respond)
}

fn answer(respond: Responder, status: u16, body: &Value) {
    respond.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn cluster(name: &str, monitoring: bool, backup: bool) -> Cluster {
    Cluster {
        name: name.to_string(),
        version: 1,
        source: format!("clusters/{name}/v1.yaml"),
        owner: "team-a".to_string(),
        labels: BTreeMap::new(),
        shards: 2,
        replicas: 2,
        memory_gb: 16.0,
        backup_to_s3: backup,
        alert_on_cpu: monitoring.then_some(80.0),
        alert_on_disk: None,
        cost_budget: Some(100.0),
    }
}

fn target() -> Target {
    Target::for_render(None, Some("data".to_string())).unwrap()
}

/// What the API server returns for an object it stores: the object and its server fields.
fn stored(object: &Value) -> Value {
    let mut out = object.clone();
    out["metadata"]["uid"] = json!("0b8e0b5a-1111-2222-3333-444455556666");
    out["metadata"]["resourceVersion"] = json!("42");
    out["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    out["metadata"]["managedFields"] = json!([{"manager": "paver", "operation": "Apply"}]);
    out["status"] = json!({"status": "Completed"});
    out
}

#[tokio::test]
async fn apply_is_a_forced_server_side_apply_by_the_field_manager_paver() {
    let (client, mut handle) = mock();
    let object = render_cluster(&cluster("metrics", false, false), &target())
        .into_iter()
        .next()
        .unwrap();
    let sent = object.clone();
    let server = tokio::spawn(async move {
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(seen.method, "PATCH");
        assert_eq!(
            seen.path,
            "/apis/clickhouse.altinity.com/v1/namespaces/data/clickhouseinstallations/metrics"
        );
        assert_eq!(seen.content_type, "application/apply-patch+yaml");
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some("paver")
        );
        assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(seen.body, sent, "the manifest itself is the patch");
        answer(respond, 200, &stored(&sent));
    });
    let kube = Kube::new(client);
    kube.apply(&object).await.unwrap();
    server.await.unwrap();
    assert_eq!(kube.requests.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_conflict_is_a_clear_error_with_help() {
    let (client, mut handle) = mock();
    let object = render_cluster(&cluster("metrics", false, true), &target())
        .pop()
        .unwrap();
    let server = tokio::spawn(async move {
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            seen.path,
            "/apis/batch/v1/namespaces/data/cronjobs/metrics-backup"
        );
        answer(
            respond,
            409,
            &status(409, "Conflict", "Operation cannot be fulfilled on cronjobs.batch \"metrics-backup\": the object has been modified; please apply your changes to the latest version and try again"),
        );
    });
    let error = Kube::new(client).apply(&object).await.unwrap_err();
    server.await.unwrap();
    assert_eq!(error.kind, paver::error::ErrorKind::Conflict);
    let error = error.message;
    assert!(error.starts_with("applying CronJob data/metrics-backup: Kubernetes answered 409 Conflict: Operation cannot be fulfilled"), "{error}");
    assert!(
        error.contains("help: someone else changed CronJob data/metrics-backup"),
        "{error}"
    );
    assert!(
        error.contains("kubectl get cronjob -n data metrics-backup --show-managed-fields"),
        "{error}"
    );
}

/// Observe: one list per kind in the namespace; the plan prunes only what carries paver's
/// labels; the deletes and applies go out as planned.
#[tokio::test]
async fn observe_plan_and_prune_only_what_paver_owns() {
    let (client, mut handle) = mock();
    let desired = render_cluster(&cluster("metrics", true, false), &target());
    assert_eq!(desired.len(), 2, "an installation and a rule");
    let installation = desired[0].clone();
    // A cluster that left the repo: its backup CronJob is paver's, and goes.
    let gone = render_cluster(&cluster("retired", false, true), &target())
        .pop()
        .unwrap();
    // A CronJob of someone else's in the same namespace: never touched.
    let foreign = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly-report", "namespace": "data", "labels": {"app": "reports"}},
        "spec": {"schedule": "0 1 * * *"}});
    // Labelled managed-by paver but not rendered from a cluster (no paver.dev/cluster):
    // not pruned either.
    let unclaimed = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "hand-made", "namespace": "data", "labels": {"app.kubernetes.io/managed-by": "paver"}},
        "spec": {"schedule": "0 1 * * *"}});
    let lists = [
        (
            "/apis/clickhouse.altinity.com/v1/namespaces/data/clickhouseinstallations",
            list(
                "ClickHouseInstallation",
                vec![stored(&paver::kube::with_applied(&installation))],
            ),
        ),
        (
            "/apis/monitoring.coreos.com/v1/namespaces/data/prometheusrules",
            list("PrometheusRule", vec![]),
        ),
        (
            "/apis/batch/v1/namespaces/data/cronjobs",
            list(
                "CronJob",
                vec![
                    stored(&paver::kube::with_applied(&gone)),
                    stored(&foreign),
                    stored(&unclaimed),
                ],
            ),
        ),
    ];
    let server = tokio::spawn(async move {
        for (path, body) in lists {
            let (seen, respond) = next(&mut handle).await;
            assert_eq!((seen.method.as_str(), seen.path.as_str()), ("GET", path));
            answer(respond, 200, &body);
        }
        handle
    });
    let kube = Kube::new(client);
    let observed = kube.observe(&desired).await.unwrap();
    let mut handle = server.await.unwrap();
    let names: Vec<String> = observed.keys().map(ObjectRef::to_string).collect();
    // Only what the revision names and what paver owns is kept from the lists.
    assert_eq!(
        names,
        [
            "CronJob data/retired-backup",
            "ClickHouseInstallation data/metrics"
        ]
    );

    let steps = plan_kube(&desired, &observed).unwrap();
    let described: Vec<String> = steps
        .iter()
        .map(|s| {
            let (sign, text) = paver::plan::describe(&s.action);
            format!("{sign} {text}")
        })
        .collect();
    assert_eq!(
        described,
        [
            "+ create PrometheusRule data/metrics-alerts (server-side apply)",
            "- delete CronJob data/retired-backup",
        ],
        "the unchanged installation needs nothing; the foreign and unclaimed CronJobs stay"
    );
    // The delete's undo applies what paver had applied, not the server's copy.
    assert_eq!(
        steps[1].compensation,
        Some(Action::Kube(KubeAction::ApplyObject {
            object: paver::kube::with_applied(&gone),
            create: true,
            changes: vec![],
        }))
    );

    let rule = desired[1].clone();
    let server = tokio::spawn(async move {
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(seen.method, "PATCH");
        assert_eq!(
            seen.path,
            "/apis/monitoring.coreos.com/v1/namespaces/data/prometheusrules/metrics-alerts"
        );
        assert_eq!(seen.body, paver::kube::with_applied(&rule));
        answer(respond, 201, &seen.body);
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (
                "DELETE",
                "/apis/batch/v1/namespaces/data/cronjobs/retired-backup"
            )
        );
        assert_eq!(seen.body["propagationPolicy"], "Background");
        answer(respond, 200, &status(200, "", ""));
    });
    for step in &steps {
        let Action::Kube(action) = &step.action else {
            panic!("not a Kubernetes step: {step:?}");
        };
        kube.execute(action).await.unwrap();
    }
    server.await.unwrap();
}

#[tokio::test]
async fn a_changed_object_is_applied_and_its_undo_is_the_previous_manifest() {
    let before = render_cluster(&cluster("metrics", false, false), &target()).remove(0);
    let mut bigger = cluster("metrics", false, false);
    bigger.shards = 3;
    let after = render_cluster(&bigger, &target()).remove(0);
    let r = ObjectRef::of(&after).unwrap();
    let observed = BTreeMap::from([(r, stored(&paver::kube::with_applied(&before)))]);
    let steps = plan_kube(std::slice::from_ref(&after), &observed).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        paver::plan::describe(&steps[0].action).1,
        "apply ClickHouseInstallation data/metrics: spec.configuration.clusters"
    );
    let Some(Action::Kube(KubeAction::ApplyObject { object, .. })) = &steps[0].compensation else {
        panic!("{:?}", steps[0].compensation)
    };
    assert_eq!(object, &paver::kube::with_applied(&before));
}

#[test]
fn an_object_paver_does_not_own_is_a_blocker() {
    let desired = render_cluster(&cluster("metrics", false, false), &target());
    let mut theirs = stored(&desired[0]);
    theirs["metadata"]["labels"] = json!({"app": "clickhouse"});
    let observed = BTreeMap::from([(ObjectRef::of(&desired[0]).unwrap(), theirs)]);
    let blockers = plan_kube(&desired, &observed).unwrap_err();
    assert_eq!(blockers.len(), 1);
    assert!(
        blockers[0]
            .message
            .starts_with("ClickHouseInstallation data/metrics exists and paver did not create it"),
        "{}",
        blockers[0].message
    );
}

#[tokio::test]
async fn a_missing_crd_is_an_error_only_when_the_revision_needs_it() {
    let (client, mut handle) = mock();
    let desired = render_cluster(&cluster("metrics", true, false), &target());
    let server = tokio::spawn(async move {
        let (_, respond) = next(&mut handle).await;
        answer(respond, 200, &list("ClickHouseInstallation", vec![]));
        let (seen, respond) = next(&mut handle).await;
        assert!(seen.path.ends_with("/prometheusrules"));
        answer(
            respond,
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    });
    let error = Kube::new(client).observe(&desired).await.unwrap_err();
    server.await.unwrap();
    assert!(
        error.contains(
            "no PrometheusRule (monitoring.coreos.com/v1) in namespace data: install the operator"
        ),
        "{error}"
    );

    // Without monitoring, the same 404 is nothing.
    let (client, mut handle) = mock();
    let desired = render_cluster(&cluster("metrics", false, false), &target());
    let server = tokio::spawn(async move {
        let (_, respond) = next(&mut handle).await;
        answer(respond, 200, &list("ClickHouseInstallation", vec![]));
        let (_, respond) = next(&mut handle).await;
        answer(respond, 404, &status(404, "NotFound", "not found"));
        let (_, respond) = next(&mut handle).await;
        answer(respond, 200, &list("CronJob", vec![]));
    });
    assert!(Kube::new(client)
        .observe(&desired)
        .await
        .unwrap()
        .is_empty());
    server.await.unwrap();
}

/// The executor over the Kubernetes provider alone.
struct OnlyKube(Kube);

impl paver::executor::Executes for OnlyKube {
    async fn execute(
        &self,
        action: &Action,
        _store: &paver::store::Store,
    ) -> Result<(), paver::error::ProviderError> {
        match action {
            Action::Kube(a) => self.0.execute(a).await,
            other => Err(paver::error::ProviderError::permanent(format!(
                "not a Kubernetes action: {other:?}"
            ))),
        }
    }
}

/// A revision whose second object is refused (409): the first, created, is deleted again,
/// and the revision is recorded rolled back with the conflict's message.
#[tokio::test]
async fn a_failed_apply_rolls_back_like_every_other_step() {
    let (client, mut handle) = mock();
    let desired = render_cluster(&cluster("metrics", false, true), &target());
    let steps = plan_kube(&desired, &BTreeMap::new()).unwrap();
    assert_eq!(steps.len(), 2);
    let plan = Plan {
        revision: "r1".to_string(),
        steps,
        notes: vec![],
        observed: String::new(),
        cluster: None,
    };
    let server = tokio::spawn(async move {
        let (seen, respond) = next(&mut handle).await;
        assert!(seen.path.ends_with("/clickhouseinstallations/metrics"));
        answer(respond, 201, &seen.body);
        let (seen, respond) = next(&mut handle).await;
        assert!(seen.path.ends_with("/cronjobs/metrics-backup"));
        answer(
            respond,
            409,
            &status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.schedule",
            ),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (
                "DELETE",
                "/apis/clickhouse.altinity.com/v1/namespaces/data/clickhouseinstallations/metrics"
            )
        );
        answer(respond, 200, &status(200, "", ""));
    });
    let dir = tempfile::tempdir().unwrap();
    let store = paver::store::Store::open(&dir.path().join("state.db")).unwrap();
    let outcome = paver::executor::apply(
        &store,
        &plan,
        &OnlyKube(Kube::new(client)),
        &paver::executor::Alone,
    )
    .await
    .unwrap();
    server.await.unwrap();
    assert_eq!(outcome.status, paver::store::RevisionStatus::RolledBack);
    assert_eq!(outcome.kind, Some(paver::error::ErrorKind::Conflict));
    let error = outcome.error.unwrap();
    assert!(
        error.contains("step 2 (create CronJob data/metrics-backup (server-side apply)) failed"),
        "{error}"
    );
    assert!(
        error.contains("409 Conflict: Apply failed with 1 conflict"),
        "{error}"
    );
}

// ---- The lease -------------------------------------------------------------------------

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/paver-system/leases/paver";

fn elector(client: kube::Client, identity: &str) -> Elector {
    Elector::new(client, LeaseConfig::new("paver", "paver-system", identity))
}

fn lease(holder: Option<&str>, renew: &str, transitions: i32, version: &str) -> Value {
    let mut spec = json!({"leaseDurationSeconds": 15, "leaseTransitions": transitions, "renewTime": renew, "acquireTime": "2026-01-01T00:00:00.000000Z"});
    if let Some(h) = holder {
        spec["holderIdentity"] = json!(h);
    }
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "paver", "namespace": "paver-system", "resourceVersion": version},
           "spec": spec})
}

#[tokio::test]
async fn the_first_replica_creates_the_lease_and_leads() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("GET", LEASE_PATH)
        );
        answer(
            respond,
            404,
            &status(
                404,
                "NotFound",
                "leases.coordination.k8s.io \"paver\" not found",
            ),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/paver-system/leases"
            )
        );
        assert_eq!(seen.body["spec"]["holderIdentity"], "paver-0");
        assert_eq!(seen.body["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(seen.body["spec"]["leaseTransitions"], 0);
        answer(respond, 201, &seen.body);
    });
    let mut e = elector(client, "paver-0");
    let now = Instant::now();
    assert!(e.try_acquire_or_renew(now).await.unwrap());
    assert!(e.is_leader(now));
    server.await.unwrap();
}

/// A follower waits while the leader renews, and takes over once the lease record has not
/// changed for the lease's duration (the leader died), with the resourceVersion it read.
#[tokio::test]
async fn a_follower_takes_over_within_the_lease_duration_when_the_leader_dies() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        // t0: held by paver-0.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:00.000000Z", 0, "7"),
        );
        // t0+10s: paver-0 renewed (the record changed): still not ours.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:10.000000Z", 0, "8"),
        );
        // t0+20s: unchanged for 10 s only: wait.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:10.000000Z", 0, "8"),
        );
        // t0+26s: unchanged for 16 s > 15 s: expired, taken over with resourceVersion 8.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:10.000000Z", 0, "8"),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("PUT", LEASE_PATH)
        );
        assert_eq!(seen.body["metadata"]["resourceVersion"], "8");
        assert_eq!(seen.body["spec"]["holderIdentity"], "paver-1");
        assert_eq!(seen.body["spec"]["leaseTransitions"], 1);
        assert_ne!(
            seen.body["spec"]["renewTime"],
            "2026-01-01T00:00:10.000000Z"
        );
        answer(respond, 200, &seen.body);
    });
    let mut e = elector(client, "paver-1");
    let t0 = Instant::now();
    assert!(!e.try_acquire_or_renew(t0).await.unwrap());
    assert!(!e
        .try_acquire_or_renew(t0 + Duration::from_secs(10))
        .await
        .unwrap());
    assert!(!e
        .try_acquire_or_renew(t0 + Duration::from_secs(20))
        .await
        .unwrap());
    assert!(!e.is_leader(t0 + Duration::from_secs(20)));
    assert!(e
        .try_acquire_or_renew(t0 + Duration::from_secs(26))
        .await
        .unwrap());
    assert!(e.is_leader(t0 + Duration::from_secs(26)));
    server.await.unwrap();
}

/// Two followers see the same expired lease; the server accepts one write and answers the
/// other 409: that one stays a follower, and it is not an error.
#[tokio::test]
async fn of_two_candidates_the_one_that_loses_the_write_follows() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(None, "2026-01-01T00:00:00.000000Z", 3, "11"),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.body["metadata"]["resourceVersion"], "11");
        answer(respond, 409, &status(409, "Conflict", "Operation cannot be fulfilled on leases.coordination.k8s.io \"paver\": the object has been modified"));
    });
    let mut e = elector(client, "paver-2");
    let now = Instant::now();
    assert!(!e.try_acquire_or_renew(now).await.unwrap());
    assert!(!e.is_leader(now));
    server.await.unwrap();
}

/// The leader renews (keeping its acquire time); when it cannot reach the server, it stops
/// leading after the renew deadline, before its lease can expire for the others; on
/// shutdown it gives the lease up.
#[tokio::test]
async fn the_leader_renews_stops_leading_when_it_cannot_and_releases_on_shutdown() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:00.000000Z", 2, "20"),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.body["spec"]["holderIdentity"], "paver-0");
        assert_eq!(
            seen.body["spec"]["acquireTime"],
            "2026-01-01T00:00:00.000000Z"
        );
        assert_eq!(seen.body["spec"]["leaseTransitions"], 2);
        answer(respond, 200, &seen.body);
        // The server is unreachable for a while.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            500,
            &status(500, "InternalError", "etcdserver: request timed out"),
        );
        // Shutdown: the lease is given up.
        let (_, respond) = next(&mut handle).await;
        answer(
            respond,
            200,
            &lease(Some("paver-0"), "2026-01-01T00:00:30.000000Z", 2, "21"),
        );
        let (seen, respond) = next(&mut handle).await;
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.body["metadata"]["resourceVersion"], "21");
        assert!(
            seen.body["spec"].get("holderIdentity").is_none(),
            "{}",
            seen.body
        );
        answer(respond, 200, &seen.body);
    });
    let mut e = elector(client, "paver-0");
    let t0 = Instant::now();
    assert!(e.try_acquire_or_renew(t0).await.unwrap());
    let later = t0 + Duration::from_secs(11);
    let error = e.try_acquire_or_renew(later).await.unwrap_err();
    assert!(
        error.to_string().starts_with("lease paver-system/paver:"),
        "{error}"
    );
    assert!(e.is_leader(t0 + Duration::from_secs(9)));
    assert!(
        !e.is_leader(later),
        "past the renew deadline (10 s) it must stop leading"
    );
    e.release().await.unwrap();
    server.await.unwrap();
}
