//! The Schema Registry over https with basic auth: a registry double behind stunnel.

use paver_e2e::secured::{doctor, line, settings_repo, Pki, RegistryDouble, TlsProxy};
use paver_e2e::{free_port, text};

fn registry_yaml(url: &str, ca: &str) -> String {
    format!(
        "targets:\n  clickhouse:\n    url: http://127.0.0.1:{}\n  kafka:\n    brokers: \"127.0.0.1:{}\"\n  schemaRegistry:\n    url: {url}\n    usernameEnv: TEST_SR_USER\n    passwordEnv: TEST_SR_PASSWORD\n    caFile: {ca}\n",
        free_port(),
        free_port()
    )
}

/// A registry with user `sr-user`, password `sr-S3cret`, behind TLS.
fn registry(pki: &Pki) -> TlsProxy {
    let double = RegistryDouble::start(Some(("sr-user", "sr-S3cret")), Vec::new());
    TlsProxy::start(pki, free_port(), double.port, false)
}

#[test]
fn the_schema_registry_over_https_with_basic_auth() {
    let pki = Pki::new();
    let proxy = registry(&pki);
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let repo = settings_repo(&registry_yaml(&url, &pki.file("ca.pem")));
    let all = text(&doctor(
        repo.path(),
        &[
            ("TEST_SR_USER", "sr-user"),
            ("TEST_SR_PASSWORD", "sr-S3cret"),
        ],
    ));
    assert_eq!(
        line(&all, "schemaRegistry"),
        format!("ok   schemaRegistry {url}: reachable, authenticated, TLS verified (the Schema Registry API does not report a version)"),
    );
    assert!(!all.contains("sr-S3cret"), "{all}");
}

#[test]
fn a_wrong_schema_registry_password_is_one_line() {
    let pki = Pki::new();
    let proxy = registry(&pki);
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let repo = settings_repo(&registry_yaml(&url, &pki.file("ca.pem")));
    let out = doctor(
        repo.path(),
        &[
            ("TEST_SR_USER", "sr-user"),
            ("TEST_SR_PASSWORD", "wrong-S3cret"),
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "schemaRegistry"),
        format!(
            "FAIL schemaRegistry: the Schema Registry at {url} refused the credentials (HTTP 401)"
        ),
    );
    assert!(!all.contains("wrong-S3cret"), "{all}");
}

#[test]
fn a_schema_registry_certificate_of_an_unknown_ca_or_another_name_is_named() {
    let pki = Pki::new();
    let proxy = registry(&pki);
    let env = [
        ("TEST_SR_USER", "sr-user"),
        ("TEST_SR_PASSWORD", "sr-S3cret"),
    ];
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let repo = settings_repo(&registry_yaml(&url, &pki.file("other-ca.pem")));
    let all = text(&doctor(repo.path(), &env));
    assert_eq!(
        line(&all, "schemaRegistry"),
        format!("FAIL schemaRegistry: the Schema Registry at {url}: certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)"),
    );
    let url = format!("https://localhost:{}", proxy.port);
    let repo = settings_repo(&registry_yaml(&url, &pki.file("ca.pem")));
    let all = text(&doctor(repo.path(), &env));
    assert_eq!(
        line(&all, "schemaRegistry"),
        format!("FAIL schemaRegistry: the Schema Registry at {url}: certificate problem: name mismatch (the server's certificate is for another name)"),
    );
}
