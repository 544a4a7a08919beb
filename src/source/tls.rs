//! The rustls client config of an `http:` source whose `tls.server_name` is set: the server's
//! certificate is verified for that name instead of the URL's host, as Prometheus'
//! `tls_config.server_name` does (a server reached by IP address, or by a name its
//! certificate does not carry). Also every `socket:` source's config ([`for_socket`]), which
//! tokio-rustls drives directly.
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
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(tls, base_dir)?),
        provider.clone(),
    )
    .build()
    .context("building the certificate verifier")?;
    let name = ServerName::try_from(server_name.to_owned())
        .with_context(|| format!("tls.server_name {server_name:?}"))?;
    let mut config = with_verifier(tls, Arc::new(ForName { inner, name }), provider, base_dir)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The rustls client config of a `socket:` source: the certificate verified for
/// `tls.server_name` if set, else for the name the connection is made with; any certificate
/// with `insecure_skip_verify`. No ALPN: the protocol is the conversation's.
pub fn for_socket(tls: &TlsConfig, base_dir: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if tls.insecure_skip_verify {
        let verifier = Arc::new(AnyCertificate(provider.clone()));
        return with_verifier(tls, verifier, provider, base_dir);
    }
    if let Some(name) = &tls.server_name {
        let mut config = with_server_name(tls, name, base_dir)?;
        config.alpn_protocols.clear();
        return Ok(config);
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(tls, base_dir)?),
        provider.clone(),
    )
    .build()
    .context("building the certificate verifier")?;
    with_verifier(tls, verifier, provider, base_dir)
}

/// The built-in roots (webpki-roots) and those of `tls.ca_file`.
fn roots(tls: &TlsConfig, base_dir: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &tls.ca_file {
        let path = resolve_path(base_dir, ca);
        let pem = crate::config::read_regular_file(&path)
            .with_context(|| format!("tls.ca_file {}", path.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert
                .with_context(|| format!("tls.ca_file {}: not PEM certificates", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("tls.ca_file {}", path.display()))?;
        }
    }
    Ok(roots)
}

/// A client config with `verifier` and the client certificate of `tls`, if any.
fn with_verifier(
    tls: &TlsConfig,
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    base_dir: &Path,
) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match (&tls.cert_file, &tls.key_file) {
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
    })
}

/// `insecure_skip_verify`: any certificate is accepted; signatures are still checked, so the
/// handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
