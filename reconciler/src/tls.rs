//! TLS for paver's HTTP clients (ClickHouse, the Schema Registry): hyper's client over
//! rustls, trusting the CAs a target names (else the system's), with a client certificate
//! where one is given; and what a failed handshake means, in words.

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

/// Why a TLS client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: std::path::PathBuf },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls client configuration for `tls`.
pub fn client_config(tls: &Tls) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = certificates(path, "the CA file")?;
            for cert in certs {
                roots.add(cert)?;
            }
        }
        None => {
            // The system's CAs; those it cannot parse are skipped, as browsers do.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "the client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
                what: "the client key",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn certificates(
    path: &std::path::Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |e: rustls_pki_types::pem::Error| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// An HTTP client for `http://` and `https://` URLs, TLS as `tls` says.
pub fn https_client<B>(tls: &Tls) -> Result<Client<HttpsConnector<HttpConnector>, B>, TlsError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build(https))
}

/// What went wrong in a TLS handshake, as a person would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The server's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The certificate is for another name.
    NameMismatch,
    Expired,
    /// The server refused this client's certificate (or the lack of one).
    ClientRefused(String),
    Other(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnknownCa => f.write_str(
                "certificate problem: unknown CA (the server's certificate is not signed by a CA in caFile or the system's store)",
            ),
            Problem::NameMismatch => f.write_str(
                "certificate problem: name mismatch (the server's certificate is for another name)",
            ),
            Problem::Expired => f.write_str("certificate problem: expired"),
            Problem::ClientRefused(alert) => write!(
                f,
                "the server refused the client certificate ({alert}): check certFile and keyFile"
            ),
            Problem::Other(text) => write!(f, "TLS problem: {text}"),
        }
    }
}

/// `CertificateRequired` as `certificate required` (an alert's name, as OpenSSL says it).
fn words(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The TLS problem somewhere in an error's chain of causes.
pub fn problem(error: &(dyn std::error::Error + 'static)) -> Option<Problem> {
    use rustls::CertificateError as C;
    let mut next = Some(error);
    while let Some(e) = next {
        // An io::Error's `source()` skips the error it wraps (hyper-rustls wraps
        // tokio-rustls's io::Error, which wraps rustls's error): walk into it instead.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        {
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                return Some(match r {
                    rustls::Error::InvalidCertificate(C::UnknownIssuer) => Problem::UnknownCa,
                    rustls::Error::InvalidCertificate(
                        C::NotValidForName | C::NotValidForNameContext { .. },
                    ) => Problem::NameMismatch,
                    rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                        Problem::Expired
                    }
                    rustls::Error::AlertReceived(alert) => {
                        Problem::ClientRefused(words(&format!("{alert:?}")))
                    }
                    other => Problem::Other(other.to_string()),
                });
            }
        }
        next = inner.or_else(|| e.source());
    }
    None
}

/// The TLS problem, if any, of a handshake with `address` (`host:port`) as `tls` says: for
/// servers whose own client does not say why a certificate was refused (librdkafka).
pub async fn probe(address: &str, tls: &Tls) -> Option<Problem> {
    let client = https_client::<http_body_util::Empty<bytes::Bytes>>(tls).ok()?;
    let request = hyper::Request::get(format!("https://{address}/"))
        .body(http_body_util::Empty::new())
        .ok()?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), client.request(request)).await {
        Ok(Err(e)) => problem(&e),
        _ => None,
    }
}
