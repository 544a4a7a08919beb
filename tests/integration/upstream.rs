//! Real upstreams for page-source tests: a hyper server on loopback port 0 (optionally TLS
//! with a certificate made in the test) whose routes the test can change while it runs.

use std::collections::HashMap;
use std::convert::Infallible;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What a route answers.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this content type and body.
    Ok(&'static str, String),
    /// This status with a short body.
    Status(u16),
    /// Never answers.
    Hang,
    /// 200 only with basic auth `user:password`, else 401 with WWW-Authenticate.
    BasicAuth(&'static str, &'static str, String),
    /// 200 only with `Authorization: Bearer <token>`, else 401.
    Bearer(&'static str, String),
    /// 302 to this location.
    Redirect(&'static str),
    /// A SOAP service: POST with `SOAPAction: <action>` and `Content-Type: text/xml` gets the
    /// body; anything else gets a SOAP Fault (HTTP 500, as SOAP 1.1 servers answer).
    Soap(&'static str, String),
    /// An OAuth2 token endpoint (client credentials): with Basic `id:secret` (as they are in
    /// the header: form-encoded, RFC 6749 section 2.3.1) and
    /// `grant_type=client_credentials` in the form, 200 with the token `tok-N` (N counts the
    /// tokens issued, from 1) expiring in `expires_in` seconds; else 401 `invalid_client`.
    /// The form of the last request is kept in `form`.
    Token {
        id: &'static str,
        secret: &'static str,
        expires_in: u64,
        issued: Arc<std::sync::atomic::AtomicUsize>,
        form: Arc<Mutex<String>>,
    },
}

/// One request as the upstream saw it: path with query, and headers (lower-case names).
pub type Seen = (String, Vec<(String, String)>);

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    /// Plain HTTP.
    pub fn start() -> Upstream {
        Upstream::start_with(None)
    }

    /// HTTPS with this rustls config when given.
    pub fn start_with(tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>) -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = routes.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let routes = r.clone();
                let seen = seen2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        seen.lock().unwrap().push((
                            req.uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            req.headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect(),
                        ));
                        answer(req, routes.clone())
                    });
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            port,
            routes,
            seen,
            runtime: Some(runtime),
        }
    }

    /// Sets what `path` answers.
    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

const FAULT: &str = r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>SOAPAction and text/xml POST required</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;

async fn answer(
    req: Request<Incoming>,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = routes.lock().unwrap().get(req.uri().path()).cloned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let r = match route {
        None => reply(404, "text/plain", "no such route"),
        Some(Reply::Ok(ct, body)) => reply(200, ct, body),
        Some(Reply::Status(code)) => reply(code, "text/plain", "failure"),
        Some(Reply::Redirect(to)) => {
            let mut r = reply(302, "text/plain", "moved");
            r.headers_mut().insert("location", to.parse().unwrap());
            r
        }
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            reply(200, "text/plain", "late")
        }
        Some(Reply::BasicAuth(user, pass, body)) => {
            use base64_encode as b64;
            let want = format!("Basic {}", b64(&format!("{user}:{pass}")));
            if header("authorization").as_deref() == Some(want.as_str()) {
                reply(200, "application/json", body)
            } else {
                let mut r = reply(401, "text/plain", "unauthorized");
                r.headers_mut()
                    .insert("www-authenticate", "Basic realm=\"test\"".parse().unwrap());
                r
            }
        }
        Some(Reply::Bearer(token, body)) => {
            if header("authorization") == Some(format!("Bearer {token}")) {
                reply(200, "application/json", body)
            } else {
                reply(401, "text/plain", "unauthorized")
            }
        }
        Some(Reply::Token {
            id,
            secret,
            expires_in,
            issued,
            form,
        }) => {
            let want = format!("Basic {}", base64_encode(&format!("{id}:{secret}")));
            let authorized = header("authorization").as_deref() == Some(want.as_str());
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            *form.lock().unwrap() = body.clone();
            if authorized
                && body
                    .split('&')
                    .any(|p| p == "grant_type=client_credentials")
            {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                reply(
                    200,
                    "application/json",
                    format!(
                        r#"{{"access_token": "tok-{n}", "token_type": "Bearer", "expires_in": {expires_in}}}"#
                    ),
                )
            } else {
                reply(401, "application/json", r#"{"error": "invalid_client"}"#)
            }
        }
        Some(Reply::Soap(action, body)) => {
            let ok = req.method() == hyper::Method::POST
                && header("soapaction")
                    .map(|a| a.trim_matches('"').to_owned())
                    .as_deref()
                    == Some(action)
                && header("content-type").is_some_and(|c| c.starts_with("text/xml"));
            let envelope = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if ok && envelope.starts_with(b"<?xml") {
                reply(200, "text/xml; charset=utf-8", body)
            } else {
                reply(500, "text/xml; charset=utf-8", FAULT)
            }
        }
    };
    Ok(r)
}

/// Base64 (standard alphabet, padded), enough for a basic-auth header.
pub fn base64_encode(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, server config).
pub fn test_tls() -> (String, Arc<tokio_rustls::rustls::ServerConfig>) {
    let (ca, config, _) = make_tls(false, &["localhost"], true);
    (ca, config)
}

/// A CA and a server certificate for `name` only (not 127.0.0.1, where it is served):
/// (CA PEM, server config).
pub fn test_tls_named(name: &str) -> (String, Arc<tokio_rustls::rustls::ServerConfig>) {
    let (ca, config, _) = make_tls(false, &[name], false);
    (ca, config)
}

/// Like [`test_tls`], but the server requires a client certificate from the same CA; the
/// last item is that client's certificate and key, PEM.
pub fn test_mtls() -> (
    String,
    Arc<tokio_rustls::rustls::ServerConfig>,
    (String, String),
) {
    let (ca, config, client) = make_tls(true, &["localhost"], true);
    (ca, config, client.unwrap())
}

#[allow(clippy::type_complexity)]
fn make_tls(
    require_client: bool,
    names: &[&str],
    loopback_ip: bool,
) -> (
    String,
    Arc<tokio_rustls::rustls::ServerConfig>,
    Option<(String, String)>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "quarry test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if loopback_ip {
        server
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut client = None;
    let builder = if require_client {
        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["quarry-client".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "quarry client");
        let client_cert = params.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
        client = Some((client_cert.pem(), client_key.serialize_pem()));
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier = tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(config), client)
}

#[test]
fn base64_matches_known_values() {
    assert_eq!(base64_encode("user:pass"), "dXNlcjpwYXNz");
    assert_eq!(base64_encode("a"), "YQ==");
    assert_eq!(base64_encode("ab"), "YWI=");
}
