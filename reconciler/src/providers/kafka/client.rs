//! The settings every Kafka client of paver starts from (admin, metadata, the workers'
//! consumers, the dead-letter producer): the brokers, `security.protocol`, SASL and TLS;
//! and the context that hands librdkafka's log to `tracing` and remembers its errors (they
//! say why brokers cannot be reached).

use rdkafka::ClientConfig;

use crate::config::{ConfigError, Env};
use crate::model::connections;

/// Why a Kafka client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("Kafka at {brokers}: {reason}")]
    Client { brokers: String, reason: String },
}

/// The librdkafka configuration of `target`. The secrets are read here, and only handed to
/// librdkafka.
pub fn client_config(target: &connections::Kafka, env: Env) -> Result<ClientConfig, ConfigError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &target.brokers)
        .set("security.protocol", target.security_protocol.as_str())
        // librdkafka's log goes through `tracing` (see `crate::logging`); below warnings
        // only when asked (`PAVER_LOG`).
        .set_log_level(crate::logging::kafka_level());
    if target.security_protocol.sasl() {
        if let Some(mechanism) = target.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some((user, password)) = target.credentials(env)? {
            config
                .set("sasl.username", user.expose())
                .set("sasl.password", password.expose());
        }
    }
    if target.security_protocol.tls() {
        if let Some(ca) = &target.tls.ca_file {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &target.tls.cert_file {
            config.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &target.tls.key_file {
            config.set("ssl.key.location", key.display().to_string());
        }
        config.set("ssl.endpoint.identification.algorithm", "https");
    }
    Ok(config)
}

/// The context of paver's Kafka clients: librdkafka's log and errors go to `tracing` (target
/// `librdkafka`, at librdkafka's own level); its errors and warnings are remembered too,
/// to say why a request failed (and for `paver doctor`).
#[derive(Default)]
pub struct Context {
    errors: std::sync::Mutex<Vec<String>>,
}

impl Context {
    fn remember(&self, reason: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 64 {
            errors.push(reason.to_string());
        }
    }

    /// What librdkafka reported so far, oldest first.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl rdkafka::client::ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if (level as i32) <= (L::Warning as i32) {
            self.remember(message);
        }
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", "{fac} {message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", "{fac} {message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac} {message}"),
            L::Debug => tracing::debug!(target: "librdkafka", "{fac} {message}"),
        }
    }

    fn error(&self, _error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "{reason}");
        self.remember(reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Context {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SaslMechanism, SecretSource, SecurityProtocol, Tls};
    use rdkafka::admin::AdminClient;

    fn target(protocol: SecurityProtocol) -> connections::Kafka {
        connections::Kafka {
            brokers: "b1:9096,b2:9096".into(),
            security_protocol: protocol,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            username: Some(SecretSource::Env("KU".into())),
            password: Some(SecretSource::Env("KP".into())),
            tls: Tls {
                ca_file: Some("/ca.pem".into()),
                cert_file: Some("/c.pem".into()),
                key_file: Some("/k.pem".into()),
            },
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "KU" => Some("user-1".into()),
            "KP" => Some("pw-1".into()),
            _ => None,
        }
    }

    #[test]
    fn sasl_ssl_sets_the_mechanism_the_credentials_and_the_cas() {
        let c = client_config(&target(SecurityProtocol::SaslSsl), &env).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("b1:9096,b2:9096"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("user-1"));
        assert_eq!(c.get("sasl.password"), Some("pw-1"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(c.get("ssl.certificate.location"), Some("/c.pem"));
        assert_eq!(c.get("ssl.key.location"), Some("/k.pem"));
        assert_eq!(
            c.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
    }

    #[test]
    fn each_protocol_sets_only_what_it_uses() {
        let plain = client_config(&target(SecurityProtocol::Plaintext), &env).unwrap();
        assert_eq!(plain.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(plain.get("sasl.password"), None);
        assert_eq!(plain.get("ssl.ca.location"), None);
        let ssl = client_config(&target(SecurityProtocol::Ssl), &env).unwrap();
        assert_eq!(ssl.get("sasl.username"), None);
        assert_eq!(ssl.get("ssl.key.location"), Some("/k.pem"));
        let sasl = client_config(&target(SecurityProtocol::SaslPlaintext), &env).unwrap();
        assert_eq!(sasl.get("sasl.username"), Some("user-1"));
        assert_eq!(sasl.get("ssl.ca.location"), None);
        // Missing credentials: an error naming the variable, not an unauthenticated client.
        let err = client_config(&target(SecurityProtocol::SaslSsl), &|_| None)
            .err()
            .unwrap();
        assert!(matches!(err, ConfigError::EnvNotSet { .. }), "{err}");
    }

    /// librdkafka (with OpenSSL) accepts every mechanism paver offers: a client is made.
    #[test]
    fn librdkafka_has_sasl_plain_and_scram_and_tls() {
        for mechanism in SaslMechanism::ALL {
            let mut t = target(SecurityProtocol::SaslSsl);
            t.sasl_mechanism = Some(mechanism);
            t.tls = Default::default();
            let made: Result<AdminClient<Context>, _> = client_config(&t, &env)
                .unwrap()
                .create_with_context(Context::default());
            assert!(made.is_ok(), "{mechanism:?}: {:?}", made.err());
        }
    }
}
