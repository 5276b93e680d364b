//! TLS termination: the certificate and key from PEM files, served by a
//! resolver whose pair a reload (SIGHUP) replaces, so a renewed certificate
//! is served to new connections without a restart or a dropped connection.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The certificate chain and key every handshake is answered with: one
/// pair (no SNI selection), replaced whole by [`Certificate::replace`].
#[derive(Debug)]
pub struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl Certificate {
    /// Reads the pair the configuration names and checks that the key fits
    /// the certificate.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or no key, or the key is
    /// not the certificate's: the message names the file and the key
    /// (`tls.cert`, `tls.key`).
    pub fn load(tls: &TlsConfig) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = read_pair(tls, &provider)?;
        Ok(Certificate {
            current: RwLock::new(Arc::new(pair)),
            provider,
        })
    }

    /// Reads and checks the files again without serving them: a reload
    /// (SIGHUP) reads them first and calls [`Certificate::replace`] only once
    /// every other part of the new configuration has been accepted.
    ///
    /// # Errors
    /// As [`Certificate::load`].
    pub fn read(&self, tls: &TlsConfig) -> Result<CertifiedKey, String> {
        read_pair(tls, &self.provider)
    }

    /// Serves `pair` from now on.
    pub fn replace(&self, pair: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
    }

    /// The acceptor for the listener: TLS 1.2 and 1.3, no client
    /// certificates, ALPN `h2` (when `http2`) and `http/1.1`.
    ///
    /// # Errors
    /// The crypto provider refuses the protocol versions (it does not).
    pub fn acceptor(self: &Arc<Self>, http2: bool) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// The chain in `tls.cert` and the key in `tls.key`, checked to fit.
fn read_pair(tls: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert: '{}': {e}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert: '{}' holds no certificate",
            tls.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(Path::new(&tls.key))
        .map_err(|e| format!("tls.key: '{}': {e}", tls.key.display()))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| format!("tls: the certificate and key do not fit together: {e}"))
}
