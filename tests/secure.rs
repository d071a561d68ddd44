//! Secured servers, for real: a ClickHouse of the test's own serving https (certificates
//! made here with `openssl`, SAN IP:127.0.0.1) with a user that has a password; `paver
//! doctor`'s exact lines for each thing that can be wrong; and a full run with known
//! secret values, whose every output and state file is searched for them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{brokers, free_port, text, Repo};

/// Certificates made by `openssl`: a CA, a server certificate it signed for 127.0.0.1, and
/// another CA that signed nothing the server has.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed by scripts/setup");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3",
                    "-subj",
                    &format!("/CN=paver test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A ClickHouse of the test's own: https only, user `paver` with `password`.
struct SecureClickHouse {
    dir: tempfile::TempDir,
    https: u16,
    child: Child,
}

impl SecureClickHouse {
    fn start(pki: &Pki, password: &str) -> SecureClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let https = free_port();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog></logger>\
                 <listen_host>127.0.0.1</listen_host><https_port>{https}</https_port><tcp_port>{}</tcp_port>\
                 <openSSL><server><certificateFile>{}</certificateFile><privateKeyFile>{}</privateKeyFile>\
                 <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>\
                 <disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/files/</user_files_path>\
                 <format_schema_path>{d}/schemas/</format_schema_path>\
                 <mark_cache_size>53687091</mark_cache_size><users_config>users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><timezone>UTC</timezone><mlock_executable>false</mlock_executable></yandex>\n",
                free_port(),
                pki.path("server.pem").display(),
                pki.path("server.key").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles><users><paver><password>{password}</password>\
                 <networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></paver></users>\
                 <quotas><default></default></quotas></yandex>\n"
            ),
        )
        .unwrap();
        let binary = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
            .into_iter()
            .find(|b| Path::new(b).exists());
        let mut cmd = match binary {
            Some(b) => Command::new(b),
            None => {
                let mut c = Command::new("clickhouse");
                c.arg("server");
                c
            }
        };
        let child = cmd
            .arg(format!(
                "--config-file={}",
                dir.path().join("config.xml").display()
            ))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let me = SecureClickHouse { dir, https, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the https ClickHouse did not start: {}",
                std::fs::read_to_string(me.dir.path().join("err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }
}

impl Drop for SecureClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder holding only paver.yaml.
fn settings_repo(paver_yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paver.yaml"), paver_yaml).unwrap();
    dir
}

fn doctor(repo: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver"));
    cmd.args(["doctor", "--repo", repo.to_str().unwrap()])
        .env_remove("PAVER_CLICKHOUSE_URL")
        .env_remove("PAVER_CLICKHOUSE_PASSWORD")
        .env_remove("PAVER_KAFKA_BROKERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn clickhouse_yaml(url: &str, ca: &Path) -> String {
    format!(
        "targets:\n  clickhouse:\n    url: {url}\n    user: paver\n    passwordEnv: TEST_CH_PASSWORD\n    caFile: {}\n  kafka:\n    brokers: \"{}\"\n",
        ca.display(),
        brokers()
    )
}

/// The line of `paver doctor` about `target`.
fn line<'a>(out: &'a str, target: &str) -> &'a str {
    out.lines()
        .find(|l| l[5..].starts_with(target))
        .unwrap_or_else(|| panic!("no line for {target} in:\n{out}"))
}

#[test]
fn doctor_names_what_is_wrong_with_a_secured_clickhouse() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password");
    let url = ch.url();

    // All fine: exit 0, the configuration shown with the secret redacted.
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.path("ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!(
            "  clickhouse: {url} user paver password <redacted> from $TEST_CH_PASSWORD, caFile {}",
            pki.path("ca.pem").display()
        )),
        "{all}"
    );
    assert!(
        line(&all, "clickhouse").starts_with(&format!(
            "ok   clickhouse {url}: reachable, authenticated as `paver`, TLS verified, ClickHouse 18.16"
        )),
        "{all}"
    );
    assert!(!all.contains("right-password"), "{all}");

    // A wrong password.
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "wrong-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {url}: authentication failed for user `paver` (password): Wrong password for user paver")
    );
    assert!(!all.contains("wrong-password"), "{all}");

    // A CA that did not sign the server's certificate.
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.path("other-ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {url}: certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)")
    );

    // A certificate for another name: the server is asked for as `localhost`, its
    // certificate is for 127.0.0.1 only.
    let localhost = url.replace("127.0.0.1", "localhost");
    let repo = settings_repo(&clickhouse_yaml(&localhost, &pki.path("ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {localhost}: certificate problem: name mismatch (the server's certificate is for another name)")
    );

    // Nothing listens.
    let closed = free_port();
    let repo = settings_repo(&clickhouse_yaml(
        &format!("https://127.0.0.1:{closed}"),
        &pki.path("ca.pem"),
    ));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at https://127.0.0.1:{closed}: connection refused by 127.0.0.1:{closed}")
    );

    // The password's variable is not set: the line says which.
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.path("ca.pem")));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        line(&all, "clickhouse").contains(
            "targets.clickhouse.password names the environment variable TEST_CH_PASSWORD, which is not set"
        ),
        "{all}"
    );

    // A revision that cannot be read: exit 2.
    let out = doctor(&repo.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn doctor_names_what_is_wrong_with_kafka() {
    // Nothing listens.
    let closed = free_port();
    let repo = settings_repo(&format!(
        "targets:\n  clickhouse:\n    url: http://127.0.0.1:{}\n  kafka:\n    brokers: \"127.0.0.1:{closed}\"\n",
        free_port()
    ));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "kafka"),
        format!(
            "FAIL kafka: Kafka at 127.0.0.1:{closed}: connection refused by 127.0.0.1:{closed}"
        )
    );
    // SASL against the test broker, which offers none of it: one line says so, and
    // librdkafka's own log is a line or two, not pages.
    let repo = settings_repo(&format!(
        "targets:\n  kafka:\n    brokers: \"{}\"\n    securityProtocol: SASL_PLAINTEXT\n    saslMechanism: PLAIN\n    usernameEnv: TEST_KAFKA_USER\n    passwordEnv: TEST_KAFKA_PASSWORD\n",
        brokers()
    ));
    let out = doctor(
        repo.path(),
        &[
            ("TEST_KAFKA_USER", "bob"),
            ("TEST_KAFKA_PASSWORD", "kafka-S3cret-pw"),
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at {}: authentication failed for user `bob` (SASL PLAIN): Broker: Unsupported SASL mechanism", brokers())
    );
    assert!(!all.contains("kafka-S3cret-pw"), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() <= 3, "{stderr}");
    // The test broker: reachable, no TLS, no authentication.
    let repo = settings_repo(&format!(
        "targets:\n  kafka:\n    brokers: \"{}\"\n",
        brokers()
    ));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert!(
        line(&all, "kafka").starts_with(&format!(
            "ok   kafka {}: reachable, no authentication, no TLS, 1 brokers",
            brokers()
        )),
        "{all}"
    );
}

/// Every command and endpoint, run with known secret values: none of them appears in any
/// output, in the plans saved, or in the state store.
#[test]
fn secrets_never_leak() {
    const CH_PASSWORD: &str = "ch-S3cret-pw-41";
    const REGISTRY_PASSWORD: &str = "registry-S3cret-42";
    const KAFKA_PASSWORD: &str = "kafka-S3cret-43";
    const WEBHOOK_SECRET: &str = "webhook-S3cret-44";
    const WRONG_PASSWORD: &str = "wrong-S3cret-45";
    let secrets = [
        CH_PASSWORD,
        REGISTRY_PASSWORD,
        KAFKA_PASSWORD,
        WEBHOOK_SECRET,
        WRONG_PASSWORD,
    ];
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, CH_PASSWORD);
    let repo = Repo::new("secure", "leak");
    let topic = format!("{}-events", repo.prefix);
    let database = repo.prefix.replace('-', "_");
    let secret_file = repo.dir.path().join("registry-password");
    std::fs::write(&secret_file, format!("{REGISTRY_PASSWORD}\n")).unwrap();
    repo.write(
        "paver.yaml",
        &format!(
            "targets:\n  clickhouse:\n    url: {}\n    user: paver\n    passwordEnv: TEST_CH_PASSWORD\n    caFile: {}\n  kafka:\n    brokers: \"{}\"\n  schemaRegistry:\n    url: http://127.0.0.1:{}\n    usernameEnv: TEST_REGISTRY_USER\n    passwordFile: {}\nreconcile:\n  pollInterval: 1s\n",
            ch.url(),
            pki.path("ca.pem").display(),
            brokers(),
            free_port(),
            secret_file.display()
        ),
    );
    repo.write(
        "clusters/main/v1.yaml",
        "apiVersion: platform.paver.dev/v1\nkind: ClickHouseCluster\nmetadata:\n  name: main\n  version: 1\n  owner: team-secure\nspec:\n  replication: 1\n  shards: 1\n  memoryGB: 8\n  retentionDays: 30\n",
    );
    repo.write(
        &format!("topics/{topic}/v1.yaml"),
        &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {topic}\n  version: 1\n  owner: team-secure\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n    cleanup.policy: delete\n"),
    );
    repo.write(
        &format!("topics/{topic}-dlq/v1.yaml"),
        &format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {topic}-dlq\n  version: 1\n  owner: team-secure\nspec:\n  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.ms: \"604800000\"\n    cleanup.policy: delete\n"),
    );
    repo.write(
        "schemas/events/v1.avsc",
        r#"{"type": "record", "name": "Event", "namespace": "dev.paver.secure", "fields": [
  {"name": "id", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"#,
    );
    let pipeline = format!("{}-ingest", repo.prefix);
    repo.write(
        &format!("pipelines/{pipeline}/v1.yaml"),
        &format!("apiVersion: platform.paver.dev/v1\nkind: DataPipeline\nmetadata:\n  name: {pipeline}\n  version: 1\n  owner: team-secure\nspec:\n  source:\n    type: kafka\n    topic: {topic}\n    consumerGroup: {pipeline}\n    schema: events@1\n    deadLetterTopic: {topic}-dlq\n  transform:\n    type: sql\n    query: SELECT id, at FROM source\n  sink:\n    type: clickhouse\n    cluster: main\n    table: {database}.events\n    partitionKey: toYYYYMM(at)\n    orderKey: (id, at)\n"),
    );
    let sha = repo.push("secured servers");
    let state = repo.state.to_str().unwrap().to_string();
    let plan_file = repo.dir.path().join("plan.json");
    let env = [
        ("TEST_CH_PASSWORD", CH_PASSWORD),
        ("TEST_REGISTRY_USER", "registry-user"),
        ("TEST_KAFKA_PASSWORD", KAFKA_PASSWORD),
        ("PAVER_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let paver = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver"));
        cmd.args(args)
            .env_remove("PAVER_CLICKHOUSE_URL")
            .env_remove("PAVER_CLICKHOUSE_PASSWORD")
            .env("PAVER_KAFKA_BROKERS", brokers());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let remote = repo.remote_url.as_str();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, out: Output| {
        outputs.push((what.to_string(), text(&out)));
        out
    };
    let plan_out = plan_file.to_str().unwrap();
    let out = record(
        "plan --out",
        paver(
            &[
                "plan", "--repo", remote, "--state", &state, "--out", plan_out,
            ],
            &env,
        ),
    );
    assert!(out.status.success(), "{}", text(&out));
    for format in ["markdown", "json"] {
        record(
            &format!("plan --format {format}"),
            paver(
                &[
                    "plan", "--repo", remote, "--state", &state, "--format", format,
                ],
                &env,
            ),
        );
    }
    let mut wrong = env;
    wrong[0].1 = WRONG_PASSWORD;
    let out = record(
        "apply with a wrong password",
        paver(&["apply", "--repo", remote, "--state", &state], &wrong),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("authentication failed for user `paver` (password)"),
        "{}",
        text(&out)
    );
    let out = record(
        "apply",
        paver(&["apply", "--repo", remote, "--state", &state], &env),
    );
    assert!(out.status.success(), "{}", text(&out));
    record("doctor", paver(&["doctor", "--repo", remote], &env));
    record("status", paver(&["status", "--state", &state], &env));
    record("history", paver(&["history", "--state", &state], &env));

    // `paver run`: its endpoints and its log.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The webhook secret from a file (a mounted Kubernetes Secret).
    let webhook_file = repo.dir.path().join("webhook-secret");
    std::fs::write(&webhook_file, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_paver"));
    run.args([
        "run",
        "--repo",
        remote,
        "--state",
        &state,
        "--listen",
        &listen,
        "--webhook-secret-file",
        webhook_file.to_str().unwrap(),
    ])
    .env_remove("PAVER_CLICKHOUSE_URL")
    .env_remove("PAVER_CLICKHOUSE_PASSWORD")
    .env("PAVER_KAFKA_BROKERS", brokers())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        run.env(k, v);
    }
    let child = run.spawn().unwrap();
    let get = |path: &str| -> Option<String> {
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
    };
    let started = Instant::now();
    while !get("/status").is_some_and(|s| s.contains(&sha) && s.contains("\"workerVersion\":1")) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the worker did not start: {:?}",
            get("/status")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let post = |signed_with: &[u8]| -> String {
        use hmac::{Hmac, KeyInit, Mac};
        use std::io::{Read, Write};
        let body = format!(r#"{{"ref":"refs/heads/main","after":"{sha}"}}"#);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signed_with).unwrap();
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
    };
    let verified = post(WEBHOOK_SECRET.as_bytes());
    assert!(verified.starts_with("HTTP/1.1 202"), "{verified}");
    let forged = post(b"not-the-secret");
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
        outputs.push((path.to_string(), get(path).unwrap()));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let run_out = child.wait_with_output().unwrap();
    outputs.push(("run".into(), text(&run_out)));
    // paver.yaml's `reconcile.pollInterval: 1s` is what `paver run` polls at.
    assert!(
        text(&run_out).contains("paver: polling every 1s"),
        "{}",
        text(&run_out)
    );

    let mut files = vec![plan_file.clone()];
    for entry in std::fs::read_dir(repo.state.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push(path);
        }
    }
    for file in &files {
        outputs.push((
            file.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(file).unwrap()).to_string(),
        ));
    }
    assert!(files.iter().any(|f| f.ends_with("paver.db")), "{files:?}");
    for (what, output) in &outputs {
        for secret in secrets {
            assert!(
                !output.contains(secret),
                "{what} shows the secret {secret}:\n{output}"
            );
        }
    }
    // The runs did happen, with the secrets in use.
    let all: String = outputs.iter().map(|(_, o)| o.as_str()).collect();
    assert!(all.contains(&format!("paver: applied {sha}")), "{all}");
}

/// A tansu broker of the test's own behind stunnel (a real OpenSSL TLS terminator): the
/// broker advertises stunnel's port, so every connection of a client is TLS.
struct TlsKafka {
    _dir: tempfile::TempDir,
    port: u16,
    tansu: Child,
    stunnel: Child,
}

fn tansu_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("PAVER_TANSU_BIN") {
        return bin.into();
    }
    let cache = std::env::var("PAVER_TANSU_CACHE_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/paver/tansu"),
        PathBuf::from,
    );
    std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test-servers start)", cache.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tansu-")
        })
        .expect("the tansu binary of scripts/test-servers")
}

impl TlsKafka {
    fn start(pki: &Pki) -> TlsKafka {
        let dir = tempfile::tempdir().unwrap();
        let (plain, port) = (free_port(), free_port());
        let tansu = Command::new(tansu_binary())
            .args([
                "broker",
                "--cluster-id",
                "paver-secure",
                "--listener-url",
                &format!("tcp://127.0.0.1:{plain}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let config = dir.path().join("stunnel.conf");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\ndebug = 3\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{plain}\ncert = {}\nkey = {}\n",
                pki.path("server.pem").display(),
                pki.path("server.key").display()
            ),
        )
        .unwrap();
        let stunnel = Command::new("stunnel4")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 is installed by scripts/test-servers");
        let started = Instant::now();
        for p in [plain, port] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "tansu or stunnel did not start"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        TlsKafka {
            _dir: dir,
            port,
            tansu,
            stunnel,
        }
    }
}

impl Drop for TlsKafka {
    fn drop(&mut self) {
        for child in [&mut self.stunnel, &mut self.tansu] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn doctor_checks_kafka_over_tls() {
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki);
    let yaml = |host: &str, ca: &str| {
        format!(
            "targets:\n  clickhouse:\n    url: http://127.0.0.1:{}\n  kafka:\n    brokers: \"{host}:{}\"\n    securityProtocol: SSL\n    caFile: {}\n",
            free_port(),
            kafka.port,
            pki.path(ca).display()
        )
    };
    let repo = settings_repo(&yaml("127.0.0.1", "ca.pem"));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert!(
        line(&all, "kafka").starts_with(&format!(
            "ok   kafka 127.0.0.1:{}: reachable, no authentication, TLS verified, 1 brokers",
            kafka.port
        )),
        "{all}"
    );
    let repo = settings_repo(&yaml("127.0.0.1", "other-ca.pem"));
    let all = text(&doctor(repo.path(), &[]));
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at 127.0.0.1:{}: certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)", kafka.port)
    );
    let repo = settings_repo(&yaml("localhost", "ca.pem"));
    let all = text(&doctor(repo.path(), &[]));
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at localhost:{}: certificate problem: name mismatch (the server's certificate is for another name)", kafka.port)
    );
    // A wrong password is one line of librdkafka's log, not pages.
    let repo = settings_repo(&format!(
        "targets:\n  kafka:\n    brokers: \"127.0.0.1:{}\"\n    securityProtocol: SASL_SSL\n    saslMechanism: SCRAM-SHA-256\n    usernameEnv: TEST_KAFKA_USER\n    passwordEnv: TEST_KAFKA_PASSWORD\n    caFile: {}\n",
        kafka.port,
        pki.path("ca.pem").display()
    ));
    let out = doctor(
        repo.path(),
        &[
            ("TEST_KAFKA_USER", "paver"),
            ("TEST_KAFKA_PASSWORD", "kafka-S3cret"),
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("kafka-S3cret"), "{all}");
    assert!(all.lines().count() < 20, "{all}");
}
