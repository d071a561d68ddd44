//! Secured servers for the suites, all real: certificates made by `openssl`, a ClickHouse
//! 18.16 of the test's own serving only https with a password user (and, if asked, only
//! to clients with a certificate of the test's CA), and `stunnel` (OpenSSL) terminating
//! TLS in front of a plain server: a tansu broker of the test's own, which advertises
//! stunnel's port, or a Schema Registry double.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, free_port, text};

/// Certificates made by `openssl`: a CA (`ca.pem`), a server certificate it signed for
/// 127.0.0.1 only (`server.pem`/`server.key`), a client certificate it signed
/// (`client.pem`/`client.key`), and another CA that signed nothing (`other-ca.pem`, and a
/// client certificate of it, `stranger.pem`/`stranger.key`).
pub struct Pki {
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
    pub fn new() -> Pki {
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
        let signed = |name: &str, ca: &str, subject: &str, ext: &str| {
            std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    subject,
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-days",
                    "3",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        };
        signed(
            "server",
            "ca",
            "/CN=127.0.0.1",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        );
        let client_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
        signed("client", "ca", "/CN=paver", client_ext);
        signed("stranger", "other-ca", "/CN=stranger", client_ext);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path as paver.yaml takes it.
    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

fn wait_for_port(port: u16, what: &str, log: impl Fn() -> String) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A ClickHouse of the test's own: https only, user `paver` with a password.
pub struct SecureClickHouse {
    dir: tempfile::TempDir,
    pub https: u16,
    child: Child,
}

impl SecureClickHouse {
    /// With `client_certificates`, the server takes only clients with a certificate signed
    /// by the test's CA (ClickHouse's `verificationMode` strict).
    pub fn start(pki: &Pki, password: &str, client_certificates: bool) -> SecureClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let https = free_port();
        let verification = if client_certificates {
            format!(
                "<verificationMode>strict</verificationMode><caConfig>{}</caConfig>",
                pki.file("ca.pem")
            )
        } else {
            "<verificationMode>none</verificationMode>".to_string()
        };
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog></logger>\
                 <listen_host>127.0.0.1</listen_host><https_port>{https}</https_port><tcp_port>{}</tcp_port>\
                 <openSSL><server><certificateFile>{}</certificateFile><privateKeyFile>{}</privateKeyFile>\
                 {verification}<loadDefaultCAFile>false</loadDefaultCAFile>\
                 <disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/files/</user_files_path>\
                 <format_schema_path>{d}/schemas/</format_schema_path>\
                 <mark_cache_size>53687091</mark_cache_size><users_config>users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><timezone>UTC</timezone><mlock_executable>false</mlock_executable></yandex>\n",
                free_port(),
                pki.file("server.pem"),
                pki.file("server.key"),
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
        wait_for_port(https, "the https ClickHouse", || {
            std::fs::read_to_string(me.dir.path().join("err.log")).unwrap_or_default()
        });
        me
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }
}

impl Drop for SecureClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `stunnel` terminating TLS on `port` in front of the plain server on `to` (server
/// certificate `server.pem`); with `client_certificates`, only clients with a certificate
/// signed by the test's CA get through.
pub struct TlsProxy {
    _dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl TlsProxy {
    pub fn start(pki: &Pki, port: u16, to: u16, client_certificates: bool) -> TlsProxy {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("stunnel.conf");
        let verify = if client_certificates {
            format!(
                "verifyChain = yes\nrequireCert = yes\nCAfile = {}\n",
                pki.file("ca.pem")
            )
        } else {
            String::new()
        };
        let log = dir.path().join("stunnel.log");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\ndebug = 4\noutput = {}\n[proxy]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{to}\ncert = {}\nkey = {}\n{verify}",
                log.display(),
                pki.file("server.pem"),
                pki.file("server.key")
            ),
        )
        .unwrap();
        let child = Command::new("stunnel4")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 is installed by scripts/setup");
        wait_for_port(port, "stunnel", || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        TlsProxy {
            _dir: dir,
            port,
            child,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tansu binary of `scripts/test-servers` (`PAVER_TEST_TANSU`, else its cache).
pub fn tansu_binary() -> PathBuf {
    for var in ["PAVER_TEST_TANSU", "PAVER_TANSU_BIN"] {
        if let Ok(bin) = std::env::var(var) {
            return bin.into();
        }
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

/// A tansu broker of the test's own behind stunnel: the broker advertises stunnel's port,
/// so every connection of a client is TLS.
pub struct TlsKafka {
    _dir: tempfile::TempDir,
    /// stunnel's port: the one to name in `brokers`.
    pub port: u16,
    tansu: Child,
    _proxy: TlsProxy,
}

impl TlsKafka {
    pub fn start(pki: &Pki, client_certificates: bool) -> TlsKafka {
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
        wait_for_port(plain, "tansu", String::new);
        let proxy = TlsProxy::start(pki, port, plain, client_certificates);
        TlsKafka {
            _dir: dir,
            port,
            tansu,
            _proxy: proxy,
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsKafka {
    fn drop(&mut self) {
        let _ = self.tansu.kill();
        let _ = self.tansu.wait();
    }
}

/// A Schema Registry double (plain HTTP, on a thread): `GET /subjects` and
/// `GET /schemas/ids/<id>` (from `schemas`), both only with `Authorization: Basic
/// <user:password>` when `credentials` are given (401 otherwise); other ids are 404.
pub struct RegistryDouble {
    pub port: u16,
}

impl RegistryDouble {
    pub fn start(credentials: Option<(&str, &str)>, schemas: Vec<(u32, String)>) -> RegistryDouble {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = credentials.map(|(u, p)| format!("Basic {}", base64(&format!("{u}:{p}"))));
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let authorized = expected.as_ref().is_none_or(|want| {
                    request.lines().any(|l| {
                        l.split_once(':').is_some_and(|(k, v)| {
                            k.eq_ignore_ascii_case("authorization") && v.trim() == want
                        })
                    })
                });
                let schema = path
                    .strip_prefix("/schemas/ids/")
                    .and_then(|id| id.parse::<u32>().ok())
                    .and_then(|id| schemas.iter().find(|(i, _)| *i == id));
                let (status, body) = if !authorized {
                    ("401 Unauthorized", r#"{"error_code":401}"#.to_string())
                } else if path == "/subjects" {
                    ("200 OK", "[]".to_string())
                } else if let Some((_, s)) = schema {
                    ("200 OK", serde_json::json!({ "schema": s }).to_string())
                } else {
                    ("404 Not Found", r#"{"error_code":40403}"#.to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        RegistryDouble { port }
    }
}

/// Standard base64 (for the double's expected `Authorization`).
fn base64(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A folder holding only paver.yaml.
pub fn settings_repo(paver_yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paver.yaml"), paver_yaml).unwrap();
    dir
}

/// `paver doctor --repo <repo>` with `env` (and none of the test servers' variables).
pub fn doctor(repo: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("paver"));
    cmd.args(["doctor", "--repo", repo.to_str().unwrap()])
        .env_remove("PAVER_CLICKHOUSE_URL")
        .env_remove("PAVER_CLICKHOUSE_PASSWORD")
        .env_remove("PAVER_KAFKA_BROKERS")
        .env_remove("PAVER_SCHEMA_REGISTRY_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The line of `paver doctor`'s output about `target` (after its `ok   `/`FAIL ` mark).
pub fn line<'a>(out: &'a str, target: &str) -> &'a str {
    out.lines()
        .find(|l| l.len() > 5 && l[5..].starts_with(target))
        .unwrap_or_else(|| panic!("no line for {target} in:\n{out}"))
}

/// A tansu broker of the test's own that requires SCRAM authentication (`--authentication`):
/// a real SCRAM exchange, refused (no user can be created on it, see the README). With a
/// `pki`, behind stunnel too (`tls_port`, for SASL_SSL).
pub struct ScramKafka {
    _dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    tansu: Child,
    _proxy: Option<TlsProxy>,
}

impl ScramKafka {
    pub fn start(pki: Option<&Pki>) -> ScramKafka {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let tls_port = pki.map(|_| free_port());
        let tansu = Command::new(tansu_binary())
            .args([
                "broker",
                "--cluster-id",
                "paver-scram",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{}", tls_port.unwrap_or(port)),
                "--storage-engine",
                "memory://tansu/",
                "--authentication",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "tansu", String::new);
        let proxy = pki
            .zip(tls_port)
            .map(|(pki, tls)| TlsProxy::start(pki, tls, port, false));
        ScramKafka {
            _dir: dir,
            port,
            tls_port,
            tansu,
            _proxy: proxy,
        }
    }
}

impl Drop for ScramKafka {
    fn drop(&mut self) {
        let _ = self.tansu.kill();
        let _ = self.tansu.wait();
    }
}
