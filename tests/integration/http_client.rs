//! The settings of Prometheus' common HTTP client config on `http:` sources and probe
//! modules (issue 24, item 8), each against real servers on loopback port 0: redirects not
//! followed, a forwarding HTTP proxy, OAuth2 client credentials with a token endpoint that
//! counts its tokens, a certificate verified for `tls.server_name`, and header values from
//! files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;
use crate::upstream::{test_tls_named, Reply, Upstream};

const METRICS: &str = r#"version: 1
metrics:
  - {name: got_value, type: gauge, help: The document's value., labels: [how]}
"#;

fn source(name: &str, http: &str) -> String {
    format!(
        r#"  - name: {name}
    http: {{{http}, interval: 200ms, timeout: 2s}}
    rules:
      - json: {{fields: {{v: "$.value"}}}}
        update: [{{metric: got_value, labels: {{how: {name}}}, set: $v}}]
"#
    )
}

fn up(name: &str) -> String {
    format!(r#"quarry_source_up{{source="{name}"}}"#)
}

fn errors(name: &str, reason: &str) -> String {
    format!(r#"quarry_source_errors_total{{reason="{reason}",source="{name}"}}"#)
}

fn value(name: &str) -> String {
    format!(r#"got_value{{how="{name}"}}"#)
}

#[test]
fn redirects_are_not_followed_with_follow_redirects_false() {
    let server = Upstream::start();
    server.route(
        "/data",
        Reply::Ok("application/json", r#"{"value": 3}"#.into()),
    );
    server.route("/old", Reply::Redirect("/data"));
    let dir = tempdir();
    let old = server.url("http", "/old");
    let config = [
        METRICS,
        "sources:\n",
        &source("follows", &format!(r#"url: "{old}""#)),
        &source(
            "stays",
            &format!(r#"url: "{old}", follow_redirects: false"#),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(&value("follows"), 3.0);
    exporter.wait_at_least(&errors("stays", "http_status"), 1.0);
    assert_eq!(exporter.value(&up("stays")), Some(0.0));
    assert_eq!(exporter.value(&value("stays")), None);
}

/// A forwarding HTTP proxy (absolute-form requests, no CONNECT): each request is passed on
/// to the host its URI names, with `Connection: close`. Keeps the request lines and
/// `Proxy-Authorization` headers it saw.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<ProxySeen>>>,
}

/// A request line the proxy saw, and its `Proxy-Authorization`.
type ProxySeen = (String, Option<String>);

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<ProxySeen>>> = Arc::default();
        let kept = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = forward(client, &kept);
                });
            }
        });
        Proxy { port, seen }
    }
}

/// Passes one request on, then closes the client's connection.
fn forward(client: TcpStream, seen: &Mutex<Vec<ProxySeen>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_owned();
        let mut headers = Vec::new();
        let mut proxy_auth = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end().to_owned();
            if h.is_empty() {
                break;
            }
            let (name, v) = h.split_once(':').unwrap();
            let name = name.to_ascii_lowercase();
            if name == "proxy-authorization" {
                proxy_auth = Some(v.trim().to_owned());
            } else if name == "content-length" {
                length = v.trim().parse().unwrap();
                headers.push(h);
            } else if name != "connection" && !name.starts_with("proxy-") {
                headers.push(h);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        seen.lock()
            .unwrap()
            .push((request_line.clone(), proxy_auth));
        let mut parts = request_line.split(' ');
        let (method, uri) = (parts.next().unwrap(), parts.next().unwrap());
        let rest = uri.strip_prefix("http://").expect("an absolute-form URI");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut upstream = TcpStream::connect(authority)?;
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for h in headers {
            head.push_str(&h);
            head.push_str("\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes())?;
        upstream.write_all(&body)?;
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer)?;
        // The client's connection closes with the answer: one request each.
        let text =
            String::from_utf8_lossy(&answer).replacen("\r\n", "\r\nConnection: close\r\n", 1);
        (&client).write_all(text.as_bytes())?;
    }
    Ok(())
}

#[test]
fn requests_go_through_proxy_url_with_its_credentials() {
    let server = Upstream::start();
    server.route(
        "/data",
        Reply::Ok("application/json", r#"{"value": 5}"#.into()),
    );
    let proxy = Proxy::start();
    let dir = tempdir();
    let data = server.url("http", "/data");
    let config = [
        METRICS,
        "sources:\n",
        &source(
            "proxied",
            &format!(
                r#"url: "{data}", proxy_url: "http://scraper:s3cret@127.0.0.1:{}""#,
                proxy.port
            ),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(&value("proxied"), 5.0);
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let (line, auth) = &seen[0];
    assert_eq!(line, &format!("GET {data} HTTP/1.1"));
    // scraper:s3cret
    assert_eq!(auth.as_deref(), Some("Basic c2NyYXBlcjpzM2NyZXQ="));
    // The upstream saw the request the proxy passed on.
    assert!(server
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(p, _)| p == "/data"));
}

const OAUTH_MODULE: &str = r#"version: 1
metrics:
  - {name: got_value, type: gauge, help: The document's value.}
modules:
  - name: api
    http:
      url: "http://$target/data"
      oauth2:
        client_id: "quarry client"
        client_secret_file: secret
        token_url: "TOKEN_URL"
        scopes: [read, status]
        endpoint_params: {audience: "https://api.example"}
    rules:
      - json: {fields: {v: "$.value"}}
        update: [{metric: got_value, set: $v}]
"#;

/// The token is fetched once and kept across probes; a 401 to it gets a new one and the
/// probe still succeeds; once it has expired (`expires_in` 11 s, used until 10 s before)
/// the next probe asks again.
#[test]
fn oauth2_tokens_are_kept_until_they_expire_or_are_refused() {
    let auth = Upstream::start();
    let issued = Arc::new(AtomicUsize::new(0));
    let form = Arc::new(Mutex::new(String::new()));
    let token = |expires_in| Reply::Token {
        // "quarry client" and "sh/h", form-encoded.
        id: "quarry+client",
        secret: "sh%2Fh",
        expires_in,
        issued: issued.clone(),
        form: form.clone(),
    };
    auth.route("/token", token(3600));
    let api = Upstream::start();
    api.route("/data", Reply::Bearer("tok-1", r#"{"value": 1}"#.into()));
    let dir = tempdir();
    std::fs::write(dir.path().join("secret"), "sh/h\n").unwrap();
    let config = OAUTH_MODULE.replace("TOKEN_URL", &auth.url("http", "/token"));
    let exporter = Exporter::start(dir.path(), &config);
    let probe = || {
        let (status, _, body) = exporter.get(
            &format!("/probe?module=api&target=127.0.0.1:{}", api.port),
            &[],
        );
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    for _ in 0..3 {
        let body = probe();
        assert_eq!(value_in(&body, "got_value"), Some(1.0), "{body}");
    }
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "one token for three probes"
    );
    let sent = form.lock().unwrap().clone();
    assert_eq!(
        sent,
        "grant_type=client_credentials&scope=read+status&audience=https%3A%2F%2Fapi.example"
    );
    let bearers = |token: &str| {
        api.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, h)| h.iter().any(|(k, v)| k == "authorization" && v == token))
            .count()
    };
    assert_eq!(bearers("Bearer tok-1"), 3);

    // The API stops taking the token (revoked): a 401, a new token, the probe succeeds.
    api.route("/data", Reply::Bearer("tok-2", r#"{"value": 2}"#.into()));
    let body = probe();
    assert_eq!(value_in(&body, "got_value"), Some(2.0), "{body}");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(
        bearers("Bearer tok-1"),
        4,
        "the refused token was sent once more"
    );

    // Tokens that expire in 11 s are used for 1 s.
    auth.route("/token", token(11));
    api.route("/data", Reply::Bearer("tok-3", r#"{"value": 3}"#.into()));
    let body = probe();
    assert_eq!(value_in(&body, "got_value"), Some(3.0), "{body}");
    assert_eq!(issued.load(Ordering::SeqCst), 3);
    api.route("/data", Reply::Bearer("tok-4", r#"{"value": 4}"#.into()));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let before = bearers("Bearer tok-3");
    let body = probe();
    assert_eq!(value_in(&body, "got_value"), Some(4.0), "{body}");
    assert_eq!(issued.load(Ordering::SeqCst), 4);
    assert_eq!(
        bearers("Bearer tok-3"),
        before,
        "an expired token is not sent"
    );

    // A wrong secret: the token endpoint's 401 fails the probe with http_status, saying why.
    std::fs::write(dir.path().join("secret"), "wrong\n").unwrap();
    api.route("/data", Reply::Bearer("tok-9", r#"{"value": 9}"#.into()));
    let body = probe();
    assert_eq!(
        value_in(
            &body,
            r#"quarry_probe_failure_reason{reason="http_status"}"#
        ),
        Some(1.0),
        "{body}"
    );
    let (_, _, debug) = exporter.get(
        &format!("/probe?module=api&target=127.0.0.1:{}&debug=true", api.port),
        &[],
    );
    let debug = String::from_utf8(debug).unwrap();
    assert!(debug.contains("invalid_client"), "{debug}");
    assert!(
        !debug.contains("wrong"),
        "the secret is never shown: {debug}"
    );
}

#[test]
fn the_certificate_is_verified_for_tls_server_name() {
    let (ca, tls) = test_tls_named("status.internal");
    let server = Upstream::start_with(Some(tls));
    server.route(
        "/data",
        Reply::Ok("application/json", r#"{"value": 7}"#.into()),
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    // Served on 127.0.0.1, with a certificate for status.internal only.
    let url = server.url("https", "/data");
    let config = [
        METRICS,
        "sources:\n",
        &source(
            "named",
            &format!(r#"url: "{url}", tls: {{ca_file: ca.pem, server_name: status.internal}}"#),
        ),
        &source(
            "by_ip",
            &format!(r#"url: "{url}", tls: {{ca_file: ca.pem}}"#),
        ),
        &source(
            "wrong_name",
            &format!(r#"url: "{url}", tls: {{ca_file: ca.pem, server_name: other.internal}}"#),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(&value("named"), 7.0);
    exporter.wait_at_least(&errors("by_ip", "tls"), 1.0);
    exporter.wait_at_least(&errors("wrong_name", "tls"), 1.0);
    assert_eq!(exporter.value(&up("by_ip")), Some(0.0));
    assert_eq!(exporter.value(&up("wrong_name")), Some(0.0));
}

#[test]
fn http_headers_values_and_files_are_sent_and_files_reread() {
    let server = Upstream::start();
    server.route(
        "/data",
        Reply::Ok("application/json", r#"{"value": 1}"#.into()),
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("key"), "first-key\n").unwrap();
    let url = server.url("http", "/data");
    let config = [
        METRICS,
        "sources:\n",
        &source(
            "headers",
            &format!(
                r#"url: "{url}", headers: {{X-Plain: a}}, http_headers: {{X-Key: {{files: [key]}}, X-Tenant: {{values: [blue, green]}}}}"#
            ),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(&value("headers"), 1.0);
    let sent = |name: &str| -> Vec<String> {
        let seen = server.seen.lock().unwrap();
        let (_, headers) = seen.last().unwrap();
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(sent("x-key"), ["first-key"]);
    assert_eq!(sent("x-tenant"), ["blue", "green"]);
    assert_eq!(sent("x-plain"), ["a"]);
    // The file is re-read on every fetch.
    std::fs::write(dir.path().join("key"), "second-key\n").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while sent("x-key") != ["second-key"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was never sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
