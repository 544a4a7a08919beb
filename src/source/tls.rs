//! The rustls client config of an `http:` source whose `tls.server_name` is set: the server's
//! certificate is verified for that name instead of the URL's host, as Prometheus'
//! `tls_config.server_name` does (a server reached by IP address, or by a name its
//! certificate does not carry).
//!
//! reqwest has no setting for it, so the config is built here (the same roots reqwest uses,
//! webpki-roots, plus `ca_file`, plus the client certificate) and handed to reqwest whole. The
//! name the client sends in SNI stays the URL's host (none for an IP address): reqwest gives
//! rustls the host of the URL it connects to, and that is also the key of its connection
//! pool, which must stay the real host.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::{resolve_path, TlsConfig};

/// A rustls client config that verifies the server's certificate for `server_name`.
pub fn with_server_name(
    tls: &TlsConfig,
    server_name: &str,
    base_dir: &Path,
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &tls.ca_file {
        let path = resolve_path(base_dir, ca);
        let pem =
            std::fs::read(&path).with_context(|| format!("tls.ca_file {}", path.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert
                .with_context(|| format!("tls.ca_file {}: not PEM certificates", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("tls.ca_file {}", path.display()))?;
        }
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("building the certificate verifier")?;
    let name = ServerName::try_from(server_name.to_owned())
        .with_context(|| format!("tls.server_name {server_name:?}"))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ForName { inner, name }));
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let (cp, kp) = (resolve_path(base_dir, cert), resolve_path(base_dir, key));
            let certs = CertificateDer::pem_file_iter(&cp)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("tls.cert_file {}", cp.display()))?;
            let key = PrivateKeyDer::from_pem_file(&kp)
                .with_context(|| format!("tls.key_file {}", kp.display()))?;
            builder.with_client_auth_cert(certs, key).with_context(|| {
                format!("tls.cert_file/key_file {} {}", cp.display(), kp.display())
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// WebPKI verification for a fixed name, whatever host the connection was made to.
#[derive(Debug)]
struct ForName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ForName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
