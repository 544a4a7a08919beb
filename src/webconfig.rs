//! `--web.config.file`: TLS (rustls; certificate and key reloaded when they change; optional
//! client-certificate auth), basic auth with bcrypt hashes, and security headers, in the
//! exporter-toolkit's format so users reuse their files.
//!
//! Basic auth checks cost a bcrypt verification, so results are cached per user and password
//! (bounded). An unknown user is checked against a dummy hash, so its answer takes as long as a
//! known user's and does not tell which users exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{self, TlsServerConfig, WebConfigFile};

/// Headers exporter-toolkit allows in `http_server_config.headers`.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];
/// Most cached basic-auth results before the cache is cleared.
const AUTH_CACHE: usize = 256;
/// The bcrypt cost of a hash (`$2y$12$...` → 12).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// The parsed web config, ready to serve with.
pub struct WebSecurity {
    tls: Option<TlsReloader>,
    users: HashMap<String, String>,
    /// Compared against when the user is unknown, so that path costs a bcrypt check of the
    /// users' cost too (made at load with the highest cost among them).
    dummy_hash: String,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    cache: Mutex<HashMap<String, bool>>,
}

use crate::config::resolve_path as resolve;

impl WebSecurity {
    /// Loads and checks `path`; relative file names in it are relative to it.
    pub fn load(path: &Path) -> anyhow::Result<WebSecurity> {
        let file: WebConfigFile = config::load_web_config(path).map_err(|e| anyhow!("{e}"))?;
        let base = config::base_dir(path);
        let mut headers = Vec::new();
        for (name, value) in file.http_server_config.iter().flat_map(|h| &h.headers) {
            let Some(canonical) = ALLOWED_HEADERS
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
            else {
                bail!(
                    "{}: http_server_config.headers: {name:?} is not allowed (allowed: {})",
                    path.display(),
                    ALLOWED_HEADERS.join(", ")
                );
            };
            headers.push((
                hyper::header::HeaderName::from_bytes(canonical.as_bytes())?,
                hyper::header::HeaderValue::from_str(value)
                    .with_context(|| format!("header {name}"))?,
            ));
        }
        let mut costs = std::collections::BTreeSet::new();
        for (user, hash) in &file.basic_auth_users {
            match bcrypt_cost(hash) {
                Some(cost) if hash.starts_with("$2") && (4..=31).contains(&cost) => {
                    costs.insert(cost);
                }
                _ => bail!("{}: basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)", path.display()),
            }
        }
        if costs.len() > 1 {
            tracing::warn!(
                "basic_auth_users in {} use different bcrypt costs ({costs:?}): a user of a lower cost answers faster than an unknown one, so it can be told apart by timing; hash every password with the same cost",
                path.display()
            );
        }
        let dummy_cost = costs.last().copied().unwrap_or(bcrypt::DEFAULT_COST);
        let dummy_hash = bcrypt::hash("quarry_exporter unknown user", dummy_cost)
            .context("making the dummy bcrypt hash")?;
        let tls = match &file.tls_server_config {
            None => None,
            Some(t) => {
                let reloader = TlsReloader::new(t, &base)?;
                reloader.acceptor()?; // fail at start, not at the first connection
                Some(reloader)
            }
        };
        Ok(WebSecurity {
            tls,
            users: file.basic_auth_users.into_iter().collect(),
            dummy_hash,
            headers,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The TLS acceptor for a new connection, when TLS is on.
    pub fn tls(&self) -> Option<anyhow::Result<tokio_rustls::TlsAcceptor>> {
        self.tls.as_ref().map(TlsReloader::acceptor)
    }

    /// Security headers for every response.
    pub fn headers(&self) -> &[(hyper::header::HeaderName, hyper::header::HeaderValue)] {
        &self.headers
    }

    /// Whether a request with this `Authorization` header may pass.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        else {
            return false;
        };
        let key = format!("{user}\u{0}{password}");
        if let Some(ok) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return *ok;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= AUTH_CACHE {
            cache.clear();
        }
        cache.insert(key, ok);
        ok
    }
}

/// Builds TLS server configs, again whenever the certificate or key file changes.
struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    current: Mutex<Option<(SystemTime, SystemTime, tokio_rustls::TlsAcceptor)>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Require,
    IfGiven,
}

fn version(
    v: Option<&str>,
    default: &'static rustls::SupportedProtocolVersion,
) -> anyhow::Result<&'static rustls::SupportedProtocolVersion> {
    match v {
        None => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some(other) => bail!("TLS version {other:?} is not supported: use TLS12 or TLS13"),
    }
}

impl TlsReloader {
    fn new(t: &TlsServerConfig, base: &Path) -> anyhow::Result<TlsReloader> {
        let client_auth = match t.client_auth_type.as_deref() {
            None | Some("NoClientCert") => ClientAuth::None,
            Some("RequireAndVerifyClientCert") => ClientAuth::Require,
            Some("VerifyClientCertIfGiven") => ClientAuth::IfGiven,
            Some(other) => bail!("client_auth_type {other:?} is not supported: use NoClientCert, RequireAndVerifyClientCert or VerifyClientCertIfGiven"),
        };
        if client_auth != ClientAuth::None && t.client_ca_file.is_none() {
            bail!(
                "client_auth_type {} needs client_ca_file",
                t.client_auth_type.as_deref().unwrap_or("")
            );
        }
        let min = version(t.min_version.as_deref(), &rustls::version::TLS12)?;
        let max = version(t.max_version.as_deref(), &rustls::version::TLS13)?;
        let versions = match (
            min == &rustls::version::TLS13,
            max == &rustls::version::TLS12,
        ) {
            (true, true) => bail!("min_version TLS13 is above max_version TLS12"),
            (true, false) => vec![&rustls::version::TLS13],
            (false, true) => vec![&rustls::version::TLS12],
            (false, false) => vec![&rustls::version::TLS12, &rustls::version::TLS13],
        };
        Ok(TlsReloader {
            cert: resolve(base, &t.cert_file),
            key: resolve(base, &t.key_file),
            client_ca: t.client_ca_file.as_deref().map(|f| resolve(base, f)),
            client_auth,
            versions,
            current: Mutex::new(None),
        })
    }

    fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let mtime = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .with_context(|| format!("TLS file {}", p.display()))
        };
        let (cert_time, key_time) = (mtime(&self.cert)?, mtime(&self.key)?);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, k, acceptor)) = current.as_ref() {
            if *c == cert_time && *k == key_time {
                return Ok(acceptor.clone());
            }
        }
        let acceptor = self.build()?;
        if current.is_some() {
            tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        }
        *current = Some((cert_time, key_time, acceptor.clone()));
        Ok(acceptor)
    }

    fn build(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .with_context(|| format!("cert_file {}", self.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cert_file {}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("key_file {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)?;
        let builder = match (&self.client_ca, self.client_auth) {
            (Some(ca), auth) if auth != ClientAuth::None => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("client_ca_file {}", ca.display()))?
                {
                    roots.add(cert?)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if auth == ClientAuth::IfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build()?)
            }
            _ => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .context("certificate and key do not match")?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown user is checked against a hash of the users' own cost: with a fixed cost-10
    /// dummy, a cost-5 user answered visibly faster than an unknown one (and a cost-12 user
    /// slower), so users could be enumerated by timing.
    #[test]
    fn the_dummy_hash_has_the_users_cost() {
        let dir = tempfile::tempdir().unwrap();
        for cost in [5, 6] {
            let hash = bcrypt::hash("secret", cost).unwrap();
            let file = dir.path().join("web.yml");
            std::fs::write(&file, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
            let security = WebSecurity::load(&file).unwrap();
            assert_eq!(bcrypt_cost(&security.dummy_hash), Some(cost));
            let header = |user: &str, password: &str| {
                use base64::Engine;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            };
            assert!(security.authorized(Some(&header("alice", "secret"))));
            assert!(!security.authorized(Some(&header("alice", "wrong"))));
            assert!(!security.authorized(Some(&header("mallory", "secret"))));
        }
    }
}
