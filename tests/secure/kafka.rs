//! Kafka over TLS, for real: a tansu broker of the test's own behind stunnel (OpenSSL),
//! which the broker advertises as its listener; with mutual TLS when stunnel asks for a
//! client certificate.

use paver_e2e::secured::{doctor, line, settings_repo, Pki, ScramKafka, TlsKafka};
use paver_e2e::{brokers, free_port, text};

fn ssl_yaml(host: &str, kafka: &TlsKafka, ca: &str, extra: &str) -> String {
    format!(
        "targets:\n  clickhouse:\n    url: http://127.0.0.1:{}\n  kafka:\n    brokers: \"{host}:{}\"\n    securityProtocol: SSL\n    caFile: {ca}\n{extra}",
        free_port(),
        kafka.port,
    )
}

#[test]
fn kafka_over_tls_is_reachable_and_verified() {
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki, false);
    let repo = settings_repo(&ssl_yaml("127.0.0.1", &kafka, &pki.file("ca.pem"), ""));
    let all = text(&doctor(repo.path(), &[]));
    assert!(
        line(&all, "kafka").starts_with(&format!(
            "ok   kafka 127.0.0.1:{}: reachable, no authentication, TLS verified, 1 brokers",
            kafka.port
        )),
        "{all}"
    );
}

#[test]
fn a_kafka_certificate_of_an_unknown_ca_is_named() {
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki, false);
    let repo = settings_repo(&ssl_yaml(
        "127.0.0.1",
        &kafka,
        &pki.file("other-ca.pem"),
        "",
    ));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at 127.0.0.1:{}: certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)", kafka.port)
    );
}

#[test]
fn a_kafka_certificate_for_another_name_is_named() {
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki, false);
    let repo = settings_repo(&ssl_yaml("localhost", &kafka, &pki.file("ca.pem"), ""));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at localhost:{}: certificate problem: name mismatch (the server's certificate is for another name)", kafka.port)
    );
}

#[test]
fn mutual_tls_kafka_takes_the_configured_client_certificate() {
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki, true);
    let client = format!(
        "    certFile: {}\n    keyFile: {}\n",
        pki.file("client.pem"),
        pki.file("client.key")
    );
    let repo = settings_repo(&ssl_yaml("127.0.0.1", &kafka, &pki.file("ca.pem"), &client));
    let all = text(&doctor(repo.path(), &[]));
    assert!(
        line(&all, "kafka").starts_with(&format!(
            "ok   kafka 127.0.0.1:{}: reachable, no authentication, TLS verified, 1 brokers",
            kafka.port
        )),
        "{all}"
    );
    // Without a client certificate, stunnel refuses the handshake.
    let repo = settings_repo(&ssl_yaml("127.0.0.1", &kafka, &pki.file("ca.pem"), ""));
    let out = doctor(repo.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "kafka"),
        format!("FAIL kafka: Kafka at 127.0.0.1:{}: the server refused the client certificate (certificate required): check certFile and keyFile", kafka.port)
    );
}

#[test]
fn a_refused_kafka_connection_is_one_line() {
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
}

/// The closest to a wrong SASL password tansu allows: it offers no PLAIN, so the broker
/// refuses the handshake, which is one line naming user and mechanism, and librdkafka's
/// own log of it a line or two, not pages.
#[test]
fn a_refused_sasl_handshake_is_one_line_naming_user_and_mechanism() {
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
    // The same over TLS (SASL_SSL) against the broker behind stunnel.
    let pki = Pki::new();
    let kafka = TlsKafka::start(&pki, false);
    let repo = settings_repo(&format!(
        "targets:\n  kafka:\n    brokers: \"{}\"\n    securityProtocol: SASL_SSL\n    saslMechanism: SCRAM-SHA-256\n    usernameEnv: TEST_KAFKA_USER\n    passwordEnv: TEST_KAFKA_PASSWORD\n    caFile: {}\n",
        kafka.brokers(),
        pki.file("ca.pem")
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
    assert!(
        line(&all, "kafka").starts_with(&format!(
            "FAIL kafka: Kafka at {}: authentication failed for user `paver` (SASL SCRAM-SHA-256)",
            kafka.brokers()
        )),
        "{all}"
    );
    assert!(!all.contains("kafka-S3cret"), "{all}");
    assert!(all.lines().count() < 20, "{all}");
}

/// A real SCRAM exchange with a broker that requires it, refused: one line naming user,
/// mechanism and what the broker said, over plaintext and over TLS, for both SCRAM
/// mechanisms; the password nowhere.
#[test]
fn a_refused_scram_login_is_one_line_naming_user_mechanism_and_the_reason() {
    let pki = Pki::new();
    let kafka = ScramKafka::start(Some(&pki));
    for (protocol, port, mechanism) in [
        ("SASL_PLAINTEXT", kafka.port, "SCRAM-SHA-256"),
        ("SASL_SSL", kafka.tls_port.unwrap(), "SCRAM-SHA-512"),
    ] {
        let repo = settings_repo(&format!(
            "targets:\n  clickhouse:\n    url: http://127.0.0.1:{}\n  kafka:\n    brokers: \"127.0.0.1:{port}\"\n    securityProtocol: {protocol}\n    saslMechanism: {mechanism}\n    usernameEnv: TEST_KAFKA_USER\n    passwordFile: {}\n    caFile: {}\n",
            free_port(),
            {
                let file = pki.path("kafka-password");
                std::fs::write(&file, "scram-S3cret\n").unwrap();
                file.display().to_string()
            },
            pki.file("ca.pem")
        ));
        let out = doctor(repo.path(), &[("TEST_KAFKA_USER", "alice")]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert_eq!(
            line(&all, "kafka"),
            format!("FAIL kafka: Kafka at 127.0.0.1:{port}: authentication failed for user `alice` (SASL {mechanism}): the broker says unknown-user"),
        );
        assert!(!all.contains("scram-S3cret"), "{all}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.lines().count() <= 3, "{stderr}");
    }
}
