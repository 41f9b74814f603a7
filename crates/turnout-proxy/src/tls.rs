//! TLS for the public listener, with rustls; ALPN offers h2 and http/1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::ProxyError;

/// Loads the certificate chain and key and builds the acceptor.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ProxyError> {
    let cert_error = |message: String| ProxyError::Tls {
        what: "certificate",
        path: config.cert.clone(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|err| cert_error(err.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|err| cert_error(err.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|err| ProxyError::Tls {
        what: "key",
        path: config.key.clone(),
        message: err.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| cert_error(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| cert_error(err.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
