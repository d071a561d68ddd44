//! A whole platform through secured servers (ClickHouse https with a password, Kafka over
//! mutual TLS, the Schema Registry over https with basic auth), with known secret values:
//! every command and endpoint is run, records are ingested and dead-lettered, and no
//! output, plan file or state file holds a secret.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paver_e2e::secured::{Pki, RegistryDouble, SecureClickHouse, TlsKafka, TlsProxy};
use paver_e2e::{bin, free_port, text, Repo};

const CH_PASSWORD: &str = "ch-S3cret-pw-41";
const REGISTRY_PASSWORD: &str = "registry-S3cret-42";
const WEBHOOK_SECRET: &str = "webhook-S3cret-44";
const WRONG_PASSWORD: &str = "wrong-S3cret-45";
const SECRETS: [&str; 4] = [
    CH_PASSWORD,
    REGISTRY_PASSWORD,
    WEBHOOK_SECRET,
    WRONG_PASSWORD,
];

const EVENT: &str = r#"{"type": "record", "name": "Event", "namespace": "dev.paver.secure", "fields": [
  {"name": "id", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"#;

/// A record in the Confluent wire format: 00, the schema id, the Avro datum.
fn framed(schema_id: u32, id: &str) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.push((id.len() as u8) << 1);
    out.extend_from_slice(id.as_bytes());
    let mut n = (1_767_225_600_000i64 << 1) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

fn platform(repo: &Repo, paver_yaml: &str) -> (String, String) {
    let topic = format!("{}-events", repo.prefix);
    let database = repo.prefix.replace('-', "_");
    repo.write("paver.yaml", paver_yaml);
    repo.write(
        "clusters/main/v1.yaml",
        "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-secure\nspec:\n  replication: 1\n  shards: 1\n  memoryGB: 8\n  retentionDays: 30\n",
    );
    for t in [topic.clone(), format!("{topic}-dlq")] {
        repo.write(
            &format!("topics/{t}/v1.yaml"),
            &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {t}\n  version: 1\n  owner: team-secure\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n    cleanup.policy: delete\n"),
        );
    }
    repo.write("schemas/events/v1.avsc", EVENT);
    let pipeline = format!("{}-ingest", repo.prefix);
    repo.write(
        &format!("pipelines/{pipeline}/v1.yaml"),
        &format!("apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: 1\n  owner: team-secure\nspec:\n  source:\n    type: kafka\n    topic: {topic}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {topic}-dlq\n  transform:\n    type: sql\n    query: SELECT id, at FROM source\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {database}.events\n    partitionKey: toYYYYMM(at)\n    orderKey: (id, at)\n"),
    );
    (topic, pipeline)
}

/// Produce `records` (key, value) over the broker's TLS, with the client certificate.
fn produce(kafka: &TlsKafka, pki: &Pki, topic: &str, records: &[(&str, Vec<u8>)]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", pki.file("ca.pem"))
        .set("ssl.certificate.location", pki.file("client.pem"))
        .set("ssl.key.location", pki.file("client.key"))
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (key, value) in records {
            producer
                .send(
                    FutureRecord::to(topic).key(*key).payload(value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
}

/// Keep a command's output for the search for secrets.
fn record(outputs: &mut Vec<(String, String)>, what: &str, out: Output) -> Output {
    outputs.push((what.to_string(), text(&out)));
    out
}

/// An HTTP GET of `paver run`'s endpoint (`None` while it does not answer).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// A push to `/webhook`, signed with `key`: the response.
fn post_webhook(port: u16, sha: &str, key: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    use std::io::{Read, Write};
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{sha}"}}"#);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Every command and endpoint, run with known secret values: none of them appears in any
/// output, in the plans saved, or in the state store; and the platform works through the
/// secured servers (applied, a record ingested, one dead-lettered).
#[test]
fn secrets_never_leak_and_everything_works_through_secured_servers() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, CH_PASSWORD, false);
    let kafka = TlsKafka::start(&pki, true);
    let double = RegistryDouble::start(
        Some(("registry-user", REGISTRY_PASSWORD)),
        vec![(7, EVENT.to_string())],
    );
    let registry = TlsProxy::start(&pki, free_port(), double.port, false);
    let repo = Repo::new("secure", "leak");
    let secret_file = repo.dir.path().join("registry-password");
    std::fs::write(&secret_file, format!("{REGISTRY_PASSWORD}\n")).unwrap();
    let (topic, pipeline) = platform(
        &repo,
        &format!(
            "targets:\n  clickhouse:\n    url: {}\n    user: paver\n    passwordEnv: TEST_CH_PASSWORD\n    caFile: {ca}\n  kafka:\n    brokers: \"{}\"\n    securityProtocol: SSL\n    caFile: {ca}\n    certFile: {}\n    keyFile: {}\n  schemaRegistry:\n    url: https://127.0.0.1:{}\n    usernameEnv: TEST_REGISTRY_USER\n    passwordFile: {}\n    caFile: {ca}\nreconcile:\n  pollInterval: 1s\n",
            ch.url(),
            kafka.brokers(),
            pki.file("client.pem"),
            pki.file("client.key"),
            registry.port,
            secret_file.display(),
            ca = pki.file("ca.pem"),
        ),
    );
    let sha = repo.push("secured servers");
    let state = repo.state.to_str().unwrap().to_string();
    let plan_file = repo.dir.path().join("plan.json");
    let env = [
        ("TEST_CH_PASSWORD", CH_PASSWORD),
        ("TEST_REGISTRY_USER", "registry-user"),
        ("PAVER_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let command = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(bin("paver"));
        cmd.args(args)
            .env_remove("PAVER_CLICKHOUSE_URL")
            .env_remove("PAVER_CLICKHOUSE_PASSWORD")
            .env_remove("PAVER_KAFKA_BROKERS")
            .env_remove("PAVER_SCHEMA_REGISTRY_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let paver = |args: &[&str], env: &[(&str, &str)]| command(args, env).output().unwrap();
    let remote = repo.remote_url.as_str();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let plan_out = plan_file.to_str().unwrap();
    let repo_args = ["--repo", remote, "--state", &state];
    // The servers answer (a loaded machine may take a while): doctor exits 0, every target
    // reachable, authenticated and verified.
    let started = Instant::now();
    loop {
        let out = record(
            &mut outputs,
            "doctor",
            paver(&["doctor", "--repo", remote], &env),
        );
        if out.status.code() == Some(0) {
            assert_eq!(text(&out).matches("\nok   ").count(), 3, "{}", text(&out));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the secured servers do not answer: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = record(
        &mut outputs,
        "plan --out",
        paver(
            &[&["plan"][..], &repo_args, &["--out", plan_out]].concat(),
            &env,
        ),
    );
    assert!(out.status.success(), "{}", text(&out));
    for format in ["markdown", "json"] {
        record(
            &mut outputs,
            &format!("plan --format {format}"),
            paver(
                &[&["plan"][..], &repo_args, &["--format", format]].concat(),
                &env,
            ),
        );
    }
    let mut wrong = env;
    wrong[0].1 = WRONG_PASSWORD;
    let out = record(
        &mut outputs,
        "apply with a wrong password",
        paver(&[&["apply"][..], &repo_args].concat(), &wrong),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("authentication failed for user `paver` (password)"),
        "{}",
        text(&out)
    );
    let out = record(
        &mut outputs,
        "apply --plan",
        paver(
            &[&["apply"][..], &repo_args, &["--plan", plan_out]].concat(),
            &env,
        ),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("paver: applied {sha}")),
        "{}",
        text(&out)
    );
    for (what, args) in [
        (
            "render",
            vec!["render", "--repo", remote, "--state", &state],
        ),
        ("status", vec!["status", "--state", &state]),
        ("history", vec!["history", "--state", &state]),
        (
            "wait",
            vec![
                "wait",
                "--revision",
                &sha,
                "--timeout",
                "5s",
                "--state",
                &state,
            ],
        ),
        ("retry", vec!["retry", &sha, "--state", &state]),
    ] {
        record(&mut outputs, what, paver(&args, &env));
    }

    // Records over mutual TLS: one the registry knows (schema id 7), one it does not.
    produce(
        &kafka,
        &pki,
        &topic,
        &[("k1", framed(7, "e-1")), ("k2", framed(99, "e-2"))],
    );
    // `paver ingest` as a process of its own, then `paver run` with its workers.
    let ingest = command(
        &["ingest", "--pipeline", &pipeline, "--state", &state],
        &env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The webhook secret from a file (a mounted Kubernetes Secret).
    let webhook_file = repo.dir.path().join("webhook-secret");
    std::fs::write(&webhook_file, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let run = command(
        &[
            &["run"][..],
            &repo_args,
            &[
                "--listen",
                &listen,
                "--webhook-secret-file",
                webhook_file.to_str().unwrap(),
                "--ingest",
                "external",
            ],
        ]
        .concat(),
        &env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    let done = |s: &str| s.contains("\"inserted\":1") && s.contains("\"deadLettered\":1");
    while !get(port, "/status").is_some_and(|s| done(&s)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the record was not ingested: {:?}",
            get(port, "/status")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let verified = post_webhook(port, &sha, WEBHOOK_SECRET.as_bytes());
    assert!(verified.starts_with("HTTP/1.1 202"), "{verified}");
    let forged = post_webhook(port, &sha, b"not-the-secret");
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    outputs.push(("/webhook".into(), format!("{verified}{forged}")));
    for path in [
        "/status",
        "/history",
        "/inventory",
        "/live",
        "/metrics",
        &format!("/revisions/{sha}"),
    ] {
        outputs.push((path.to_string(), get(port, path).unwrap()));
    }
    let server = format!("http://{listen}");
    for (what, args) in [
        ("status --server", vec!["status", "--server", &server]),
        ("history --server", vec!["history", "--server", &server]),
        (
            "wait --server",
            vec![
                "wait",
                "--revision",
                &sha,
                "--timeout",
                "5s",
                "--server",
                &server,
            ],
        ),
        ("retry --server", vec!["retry", &sha, "--server", &server]),
    ] {
        record(&mut outputs, what, paver(&args, &env));
    }
    for child in [run, ingest] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        outputs.push((
            "run / ingest".into(),
            text(&child.wait_with_output().unwrap()),
        ));
    }
    // paver.yaml's `reconcile.pollInterval: 1s` is what `paver run` polls at.
    assert!(
        outputs
            .iter()
            .any(|(_, o)| o.contains("paver: polling every 1s")),
        "{outputs:?}"
    );

    let mut files = vec![plan_file.clone()];
    for entry in std::fs::read_dir(repo.state.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push(path);
        }
    }
    assert!(files.iter().any(|f| f.ends_with("paver.db")), "{files:?}");
    for file in &files {
        outputs.push((
            file.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(file).unwrap()).to_string(),
        ));
    }
    for (what, output) in &outputs {
        for secret in SECRETS {
            assert!(
                !output.contains(secret),
                "{what} shows the secret {secret}:\n{output}"
            );
        }
    }
}
