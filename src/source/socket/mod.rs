//! `socket:` sources: a conversation with a TCP or Unix socket (Redis `INFO`, memcached
//! `stats`, HAProxy's runtime API, a daemon's own line protocol), optionally under TLS, with
//! no process spawned. The replies the conversation keeps are the document the rules read.
//!
//! Three layers, each testable alone: [`framing`] decides where a reply ends from the bytes
//! alone (pure), [`conversation`] runs the steps on any async stream (timeouts, the byte cap,
//! pipelined bytes), and [`SocketFetcher`] connects (DNS, TCP or Unix, TLS), runs the
//! conversation within the source's timeout and turns every failure into a
//! [`FetchError`] with its reason. Secrets are read from their files on every conversation
//! and taken out of every message.

pub mod conversation;
pub mod framing;
pub mod request;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use self::conversation::{converse, Limits, Step};
use self::framing::Framing;
use self::request::{unescape, Request, Secrets};
use super::fetch::{
    fail, BodyRoom, FetchError, Fetched, Unaccounted, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT,
};
use crate::config::{resolve_path, SocketSourceConfig, SocketUntil};
use crate::selfmetrics::SourceErrorReason;

/// Where a socket source connects.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `host:port` over TCP.
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "tcp://{address}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// The TLS side of a socket source.
struct Tls {
    connector: TlsConnector,
    /// `tls.server_name`, else the host of the address connected to.
    server_name: Option<String>,
}

/// A connected stream of any kind.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// `socket:` sources: connect, converse, hand back the document.
pub struct SocketFetcher {
    endpoint: Endpoint,
    tls: Option<Tls>,
    steps: Vec<Step>,
    secrets: Secrets,
    max_bytes: usize,
    /// The whole conversation's limit, connecting included.
    pub(crate) timeout: Duration,
}

impl SocketFetcher {
    /// Compiles the conversation and the TLS config (reading the CA and client certificate
    /// now); secrets are read on every fetch.
    pub fn new(c: &SocketSourceConfig, base_dir: &Path) -> anyhow::Result<SocketFetcher> {
        let endpoint = match (&c.address, &c.path) {
            (Some(address), None) => Endpoint::Tcp(address.clone()),
            (None, Some(path)) => Endpoint::Unix(resolve_path(base_dir, path)),
            _ => anyhow::bail!("a socket source needs one of `address` (host:port) or `path`"),
        };
        let tls = c
            .tls
            .as_ref()
            .map(|tls| -> anyhow::Result<Tls> {
                Ok(Tls {
                    connector: TlsConnector::from(Arc::new(super::tls::for_socket(tls, base_dir)?)),
                    server_name: tls.server_name.clone(),
                })
            })
            .transpose()?;
        if let Some((key, message)) = problems(c).into_iter().next() {
            anyhow::bail!("socket.{key}: {message}");
        }
        let steps = c
            .steps
            .iter()
            .map(|step| compile_step(step, c.secrets.keys()).map_err(|(_, e)| anyhow::anyhow!(e)))
            .collect::<anyhow::Result<Vec<Step>>>()?;
        Ok(SocketFetcher {
            endpoint,
            tls,
            steps,
            secrets: Secrets::new(
                c.secrets
                    .iter()
                    .map(|(name, file)| (name.clone(), resolve_path(base_dir, file)))
                    .collect(),
            ),
            max_bytes: c.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            timeout: c.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    /// Converses with the configured endpoint.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        self.fetch_from(&self.endpoint, &mut Unaccounted).await
    }

    /// Converses with `endpoint` (a probe's target) with this source's steps, TLS and limits;
    /// what the conversation holds is accounted in `room` as it comes.
    pub async fn fetch_from(
        &self,
        endpoint: &Endpoint,
        room: &mut impl BodyRoom,
    ) -> Result<Fetched, FetchError> {
        let secrets = self.secrets.read()?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut stream = tokio::time::timeout_at(deadline, self.connect(endpoint))
            .await
            .map_err(|_| {
                fail(
                    SourceErrorReason::Timeout,
                    format!(
                        "connecting to {endpoint} (TLS included) took longer than the source's timeout of {:?}",
                        self.timeout
                    ),
                )
            })??;
        let limits = Limits {
            max_bytes: self.max_bytes,
            deadline,
            timeout: self.timeout,
        };
        let transcript = converse(&mut stream, &self.steps, &secrets, limits, room)
            .await
            .map_err(|e| FetchError {
                reason: e.reason,
                message: secrets.redact(e.message),
            })?;
        Ok(Fetched {
            body: String::from_utf8(transcript.document)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            detail: format!(
                "{} bytes received in {} step{}",
                transcript.received,
                self.steps.len(),
                if self.steps.len() == 1 { "" } else { "s" }
            ),
            content_type: None,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Stream>, FetchError> {
        let (stream, host): (Box<dyn Stream>, Option<&str>) = match endpoint {
            Endpoint::Tcp(address) => {
                let addrs: Vec<_> = tokio::net::lookup_host(address.as_str())
                    .await
                    .map_err(|e| {
                        fail(
                            SourceErrorReason::Dns,
                            format!("cannot resolve {address}: {e}"),
                        )
                    })?
                    .collect();
                let stream = tokio::net::TcpStream::connect(&addrs[..])
                    .await
                    .map_err(|e| {
                        fail(
                            SourceErrorReason::Connect,
                            format!("cannot connect to {address}: {e}"),
                        )
                    })?;
                // Requests are small and awaited: no Nagle delay on them.
                let _ = stream.set_nodelay(true);
                (Box::new(stream), Some(host_of(address)))
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| {
                    fail(
                        SourceErrorReason::Connect,
                        format!("cannot connect to {}: {e}", path.display()),
                    )
                })?;
                (Box::new(stream), None)
            }
        };
        let Some(tls) = &self.tls else {
            return Ok(stream);
        };
        let name = tls.server_name.as_deref().or(host).ok_or_else(|| {
            fail(
                SourceErrorReason::Tls,
                "TLS over a Unix socket needs tls.server_name",
            )
        })?;
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| fail(SourceErrorReason::Tls, format!("server name {name:?}: {e}")))?;
        let stream = tls
            .connector
            .connect(name, stream)
            .await
            .map_err(|e| fail(SourceErrorReason::Tls, format!("TLS with {endpoint}: {e}")))?;
        Ok(Box::new(stream))
    }

    /// What the source talks to, for the landing page (no secrets).
    pub fn target(&self) -> String {
        let tls = if self.tls.is_some() { " (TLS)" } else { "" };
        format!("{}{tls}", self.endpoint)
    }
}

/// The host of `host:port` (`[v6]:port` without its brackets).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What is wrong with a `socket:` config, each as (path below `socket`, empty for `socket`
/// itself, and message): what
/// validation reports (every problem at once) and what [`SocketFetcher::new`] refuses.
pub fn problems(c: &SocketSourceConfig) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut report = |key: String, message: String| found.push((key, message));
    match (&c.address, &c.path) {
        (Some(address), None) => {
            let template = address.contains("$target") || address.contains("${target}");
            if let Err(message) = check_address(address).or_else(|e| template.then_some(()).ok_or(e)) {
                report("address".into(), message);
            }
        }
        (None, Some(path)) => {
            if path.trim().is_empty() {
                report("path".into(), "path needs the Unix socket to connect to".into());
            }
            if c.tls.as_ref().is_some_and(|t| t.server_name.is_none()) {
                report(
                    "tls".into(),
                    "TLS over a Unix socket needs `server_name` (the name the certificate must be valid for)".into(),
                );
            }
        }
        (Some(_), Some(_)) => report(
            "path".into(),
            "a socket source connects to `address` (host:port) or to `path` (a Unix socket), not both".into(),
        ),
        (None, None) => report(
            String::new(),
            "a socket source needs `address: host:port` (TCP) or `path: /run/…/x.sock` (Unix)".into(),
        ),
    }
    if c.steps.is_empty() {
        report(
            "steps".into(),
            "a conversation needs at least one step, e.g. {send: 'stats\\r\\n', until: {terminator: 'END\\r\\n'}}".into(),
        );
    }
    for (i, step) in c.steps.iter().enumerate() {
        if let Err((key, message)) = compile_step(step, c.secrets.keys()) {
            report(format!("steps[{i}].{key}"), message);
        }
    }
    for (key, value) in [("timeout", c.timeout), ("interval", c.interval)] {
        if value == Some(Duration::ZERO) {
            report(key.into(), format!("{key} must be more than 0"));
        }
    }
    if c.max_bytes == Some(0) {
        report("max_bytes".into(), "max_bytes must be at least 1".into());
    }
    for (name, file) in &c.secrets {
        if file.trim().is_empty() {
            report(
                format!("secrets.{name}"),
                "a secret needs the file it is read from".into(),
            );
        }
    }
    found
}

/// `host:port` (a probe module's address once its target is in).
pub fn check_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "address {address:?} is not host:port (e.g. 127.0.0.1:6379, redis.internal:6379, [::1]:6379)"
        )),
    }
}

/// Compiles a step; a problem comes with the key it is under.
fn compile_step<'a>(
    step: &crate::config::SocketStepConfig,
    secrets: impl IntoIterator<Item = &'a String> + Clone,
) -> Result<Step, (&'static str, String)> {
    let framing = match &step.until {
        SocketUntil::Closed => Framing::Closed,
        SocketUntil::Timeout => {
            if step.timeout.is_none() {
                return Err((
                    "until",
                    "`until: timeout` needs the step's own `timeout` (how long to listen)".into(),
                ));
            }
            Framing::Timeout
        }
        SocketUntil::EmptyLine => Framing::EmptyLine,
        SocketUntil::Terminator(text) => {
            let bytes = unescape(text).map_err(|e| ("until.terminator", e))?;
            if bytes.is_empty() {
                return Err((
                    "until.terminator",
                    "a terminator needs at least one byte".into(),
                ));
            }
            Framing::Terminator(bytes)
        }
        SocketUntil::Prompt(pattern) => {
            Framing::prompt(pattern).map_err(|e| ("until.prompt", format!("invalid regex: {e}")))?
        }
        SocketUntil::Length(n) => Framing::Length(*n),
        SocketUntil::LengthHeader(h) => Framing::length_header(&h.pattern, h.trailer)
            .map_err(|e| ("until.length_header.pattern", e))?,
    };
    if step.timeout == Some(Duration::ZERO) {
        return Err(("timeout", "timeout must be more than 0".into()));
    }
    Ok(Step {
        request: step
            .send
            .as_deref()
            .map(|text| Request::parse(text, secrets))
            .transpose()
            .map_err(|e| ("send", e))?,
        framing,
        timeout: step.timeout,
        expect: step
            .expect
            .as_deref()
            .map(regex::bytes::Regex::new)
            .transpose()
            .map_err(|e| ("expect", format!("invalid regex: {e}")))?,
        document: step.document,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_steps: Vec<crate::config::SocketStepConfig>) -> SocketSourceConfig {
        SocketSourceConfig {
            address: Some("127.0.0.1:6379".into()),
            path: None,
            tls: None,
            secrets: [("password".to_owned(), "pw".to_owned())].into(),
            steps: yaml_steps,
            timeout: None,
            interval: None,
            max_bytes: None,
        }
    }

    fn step(send: &str, until: SocketUntil) -> crate::config::SocketStepConfig {
        crate::config::SocketStepConfig {
            send: Some(send.into()),
            until,
            timeout: None,
            expect: None,
            document: false,
        }
    }

    #[test]
    fn problems_name_the_key_they_are_under() {
        let mut c = config(vec![
            step(r"AUTH ${pasword}\r\n", SocketUntil::Closed),
            step(r"x", SocketUntil::Timeout),
            step(r"x", SocketUntil::Terminator(String::new())),
            step(r"\q", SocketUntil::Closed),
            step(r"x", SocketUntil::Prompt("(".into())),
        ]);
        c.steps[4].expect = Some("[".into());
        c.address = Some("redis:port".into());
        let keys: Vec<String> = problems(&c).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "address",
                "steps[0].send",
                "steps[1].until",
                "steps[2].until.terminator",
                "steps[3].send",
                "steps[4].until.prompt"
            ]
        );
        c.address = Some("$target".into());
        c.steps.clear();
        assert_eq!(problems(&c)[0].0, "steps");
        c.path = Some("/run/x.sock".into());
        assert_eq!(problems(&c)[0].0, "path");
    }

    fn fetcher(c: &SocketSourceConfig) -> SocketFetcher {
        SocketFetcher::new(c, Path::new("/nonexistent-base")).unwrap()
    }

    #[tokio::test]
    async fn failures_before_the_conversation_have_their_reasons() {
        let steps = vec![step("PING\\r\\n", SocketUntil::Closed)];
        // The secret file is read first: missing, it is a read failure that names the file.
        let e = fetcher(&config(steps.clone())).fetch().await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::Read);
        assert!(e.message.contains("/nonexistent-base/pw"), "{}", e.message);
        let mut c = config(steps);
        c.secrets.clear();
        c.address = None;
        c.path = Some("/nonexistent-dir/x.sock".into());
        let e = fetcher(&c).fetch().await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::Connect);
        assert!(
            e.message.contains("/nonexistent-dir/x.sock"),
            "{}",
            e.message
        );
        c.path = None;
        c.address = Some("no-such-host.invalid:6379".into());
        let e = fetcher(&c).fetch().await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::Dns, "{}", e.message);
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        c.address = Some(format!("127.0.0.1:{port}"));
        let e = fetcher(&c).fetch().await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::Connect);
    }

    #[tokio::test]
    async fn a_server_that_echoes_the_secret_does_not_get_it_shown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 64];
            let n = stream.read(&mut request).await.unwrap();
            let mut reply = b"-ERR unknown command ".to_vec();
            reply.extend_from_slice(&request[..n]);
            stream.write_all(&reply).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let mut c = config(vec![step(
            "AUTH ${password}\\r\\n",
            SocketUntil::Terminator("\\n".into()),
        )]);
        c.steps[0].expect = Some("^\\+OK".into());
        c.address = Some(format!("127.0.0.1:{port}"));
        let e = SocketFetcher::new(&c, dir.path())
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::UnexpectedReply);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(e.message.contains("AUTH ***"), "{}", e.message);
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("redis.internal:6379"), "redis.internal");
        assert_eq!(host_of("[::1]:6380"), "::1");
        assert_eq!(host_of("127.0.0.1:11211"), "127.0.0.1");
    }
}
