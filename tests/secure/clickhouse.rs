//! ClickHouse over https with a password user: what `paver doctor` says, line by line.

use paver_e2e::secured::{doctor, line, settings_repo, Pki, SecureClickHouse};
use paver_e2e::{brokers, free_port, text};

fn clickhouse_yaml(url: &str, ca: &str) -> String {
    format!(
        "targets:\n  clickhouse:\n    url: {url}\n    user: paver\n    passwordEnv: TEST_CH_PASSWORD\n    caFile: {ca}\n  kafka:\n    brokers: \"{}\"\n",
        brokers()
    )
}

#[test]
fn https_with_a_password_is_reachable_authenticated_and_verified() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password", false);
    let url = ch.url();
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.file("ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // The configuration, the secret shown by where it comes from only.
    assert!(
        all.contains(&format!(
            "  clickhouse: {url} user paver password <redacted> from $TEST_CH_PASSWORD, caFile {}",
            pki.file("ca.pem")
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
}

#[test]
fn a_wrong_clickhouse_password_is_one_line_naming_the_user() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password", false);
    let url = ch.url();
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.file("ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "wrong-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {url}: authentication failed for user `paver` (password): Wrong password for user paver")
    );
    assert!(!all.contains("wrong-password"), "{all}");
}

#[test]
fn a_clickhouse_certificate_of_an_unknown_ca_is_named() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password", false);
    let url = ch.url();
    let repo = settings_repo(&clickhouse_yaml(&url, &pki.file("other-ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {url}: certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)")
    );
}

#[test]
fn a_clickhouse_certificate_for_another_name_is_named() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password", false);
    // The server is asked for as `localhost`; its certificate is for 127.0.0.1 only.
    let localhost = ch.url().replace("127.0.0.1", "localhost");
    let repo = settings_repo(&clickhouse_yaml(&localhost, &pki.file("ca.pem")));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "right-password")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at {localhost}: certificate problem: name mismatch (the server's certificate is for another name)")
    );
}

#[test]
fn a_clickhouse_that_wants_a_client_certificate_gets_the_configured_one() {
    let pki = Pki::new();
    let ch = SecureClickHouse::start(&pki, "right-password", true);
    let url = ch.url();
    let with = |cert: &str, key: &str| {
        settings_repo(&format!(
            "{}    certFile: {}\n    keyFile: {}\n",
            clickhouse_yaml(&url, &pki.file("ca.pem"))
                .replace(&format!("  kafka:\n    brokers: \"{}\"\n", brokers()), ""),
            pki.file(cert),
            pki.file(key)
        ))
    };
    let env = [("TEST_CH_PASSWORD", "right-password")];
    let out = doctor(with("client.pem", "client.key").path(), &env);
    let all = text(&out);
    assert!(
        line(&all, "clickhouse").starts_with(&format!(
            "ok   clickhouse {url}: reachable, authenticated as `paver`, TLS verified"
        )),
        "{all}"
    );
    assert!(all.contains("certFile "), "{all}");
    // Without one, or with one of another CA: the server refuses the handshake.
    for repo in [
        settings_repo(&clickhouse_yaml(&url, &pki.file("ca.pem"))),
        with("stranger.pem", "stranger.key"),
    ] {
        let all = text(&doctor(repo.path(), &env));
        let got = line(&all, "clickhouse");
        assert!(
            got.starts_with(&format!("FAIL clickhouse: ClickHouse at {url}: "))
                && got.contains("the server refused the client certificate"),
            "{all}"
        );
    }
}

#[test]
fn doctor_exit_codes_and_what_it_says_when_nothing_answers() {
    let pki = Pki::new();
    // Nothing listens: exit 1, the address named.
    let closed = free_port();
    let repo = settings_repo(&clickhouse_yaml(
        &format!("https://127.0.0.1:{closed}"),
        &pki.file("ca.pem"),
    ));
    let out = doctor(repo.path(), &[("TEST_CH_PASSWORD", "pw")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "clickhouse"),
        format!("FAIL clickhouse: ClickHouse at https://127.0.0.1:{closed}: connection refused by 127.0.0.1:{closed}")
    );
    // The password's variable is not set: the line says which.
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        line(&all, "clickhouse").contains(
            "targets.clickhouse.password names the environment variable TEST_CH_PASSWORD, which is not set"
        ),
        "{all}"
    );
    // A revision that cannot be read, or a paver.yaml that cannot be used: exit 2.
    let out = doctor(&repo.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let bad = settings_repo("targets:\n  kafka:\n    securityProtocol: TLS\n");
    let out = doctor(bad.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("targets.kafka.securityProtocol: `TLS` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        "{all}"
    );
}
