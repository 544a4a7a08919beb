//! Getting a document: an HTTP(S) response body, a command's stdout, a file read whole, or a
//! socket conversation's replies ([`super::socket`]).
//! HTTP takes the settings of Prometheus' HTTP client config that sources need (redirects,
//! proxy, TLS with a server name, basic auth, bearer and OAuth2 tokens, headers from files);
//! secrets are read from their files on every fetch.
//!
//! Every failure comes back as a [`FetchError`] with one of the bounded
//! [`SourceErrorReason`]s and a message for the log and the landing page. Size caps hold for
//! every kind, so a runaway upstream cannot exhaust memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;

use crate::config::{CommandSourceConfig, HttpSourceConfig, StatusFileSourceConfig};
use crate::selfmetrics::SourceErrorReason;

/// Default timeout of an HTTP fetch or a command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval between fetches.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default cap of a body, an output or a status file.
pub const DEFAULT_MAX_BYTES: usize = 10 << 20;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// The bounded reason, for `quarry_source_errors_total`.
    pub reason: SourceErrorReason,
    /// What happened, for people.
    pub message: String,
}

pub(crate) fn fail(reason: SourceErrorReason, message: impl Into<String>) -> FetchError {
    FetchError {
        reason,
        message: message.into(),
    }
}

/// A fetched document and a short description of how it came (`HTTP 200`, `exit 0`).
#[derive(Debug)]
pub struct Fetched {
    pub body: String,
    pub detail: String,
    /// The Content-Type of an HTTP response.
    pub content_type: Option<String>,
}

/// The closed set of document sources.
pub enum Fetcher {
    Http(Box<HttpFetcher>),
    Command(CommandFetcher),
    StatusFile(StatusFileFetcher),
    Socket(Box<super::socket::SocketFetcher>),
}

impl Fetcher {
    /// Fetches one document.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        match self {
            Fetcher::Http(h) => h.fetch().await,
            Fetcher::Command(c) => c.fetch().await,
            Fetcher::StatusFile(f) => f.fetch().await,
            Fetcher::Socket(s) => s.fetch().await,
        }
    }

    /// The longest a fetch (and, separately, the parse of its document) may take.
    pub fn timeout(&self) -> Duration {
        match self {
            Fetcher::Http(h) => h.timeout,
            Fetcher::Command(c) => c.timeout,
            Fetcher::StatusFile(f) => f.timeout,
            Fetcher::Socket(s) => s.timeout,
        }
    }

    /// What the source reads, for the landing page (no secrets).
    pub fn target(&self) -> String {
        match self {
            Fetcher::Http(h) => format!("{} {}", h.method, redacted(&h.url)),
            Fetcher::Command(c) => c.argv.join(" "),
            Fetcher::StatusFile(f) => f.path.display().to_string(),
            Fetcher::Socket(s) => s.target(),
        }
    }
}

use crate::config::resolve_path as resolve;

/// `http:` sources, on reqwest with rustls.
pub struct HttpFetcher {
    client: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    body: Option<String>,
    basic_auth: Option<(String, PathBuf)>,
    bearer_token_file: Option<PathBuf>,
    oauth2: Option<super::oauth2::OAuth2>,
    /// `http_headers`: values as written, or files read on every fetch.
    file_headers: Vec<(reqwest::header::HeaderName, HeaderValueFrom)>,
    accept_status: Option<Vec<u16>>,
    max_body_bytes: usize,
    timeout: Duration,
}

/// Where a value of `http_headers` comes from.
enum HeaderValueFrom {
    Text(reqwest::header::HeaderValue),
    File(PathBuf),
}

impl HttpFetcher {
    /// Builds the client; files it needs at start (body, CA, client certificate) are read now.
    pub fn new(c: &HttpSourceConfig, base_dir: &Path) -> anyhow::Result<HttpFetcher> {
        let redirects = if c.follow_redirects == Some(false) {
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::limited(5)
        };
        let mut builder = reqwest::Client::builder()
            .timeout(c.timeout.unwrap_or(DEFAULT_TIMEOUT))
            .user_agent(concat!("quarry_exporter/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            // A redirect target learns nothing about where it came from (the URL may carry
            // a token in its query).
            .referer(false);
        if let Some(proxy) = &c.proxy_url {
            builder = builder.proxy(reqwest::Proxy::all(proxy).context("proxy_url")?);
        }
        let server_name = c
            .tls
            .as_ref()
            .filter(|t| !t.insecure_skip_verify)
            .and_then(|t| Some((t, t.server_name.as_deref()?)));
        if let Some((tls, name)) = server_name {
            // Everything TLS is in the config built for the name (roots, CA, client cert).
            builder =
                builder.use_preconfigured_tls(super::tls::with_server_name(tls, name, base_dir)?);
        } else if let Some(tls) = &c.tls {
            if let Some(ca) = &tls.ca_file {
                let path = resolve(base_dir, ca);
                let pem = crate::config::read_regular_file(&path)
                    .with_context(|| format!("tls.ca_file {}", path.display()))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                    format!("tls.ca_file {}: not PEM certificates", path.display())
                })? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let (cp, kp) = (resolve(base_dir, cert), resolve(base_dir, key));
                let mut pem = crate::config::read_regular_file(&cp)
                    .with_context(|| format!("tls.cert_file {}", cp.display()))?;
                pem.extend(
                    crate::config::read_regular_file(&kp)
                        .with_context(|| format!("tls.key_file {}", kp.display()))?,
                );
                let identity = reqwest::Identity::from_pem(&pem).with_context(|| {
                    format!("tls.cert_file/key_file {} {}", cp.display(), kp.display())
                })?;
                builder = builder.identity(identity);
            }
            if tls.insecure_skip_verify {
                builder = builder.danger_accept_invalid_certs(true);
            }
        }
        let body = match (&c.body, &c.body_file) {
            (Some(b), _) => Some(b.clone()),
            (None, Some(f)) => {
                let path = resolve(base_dir, f);
                Some(
                    String::from_utf8(
                        crate::config::read_regular_file(&path)
                            .with_context(|| format!("body_file {}", path.display()))?,
                    )
                    .with_context(|| format!("body_file {}: not UTF-8", path.display()))?,
                )
            }
            (None, None) => None,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &c.headers {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes())?,
                reqwest::header::HeaderValue::from_str(v)?,
            );
        }
        let mut file_headers = Vec::new();
        for (name, h) in &c.http_headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())?;
            for v in &h.values {
                file_headers.push((
                    name.clone(),
                    HeaderValueFrom::Text(reqwest::header::HeaderValue::from_str(v)?),
                ));
            }
            for f in &h.files {
                file_headers.push((name.clone(), HeaderValueFrom::File(resolve(base_dir, f))));
            }
        }
        Ok(HttpFetcher {
            client: builder.build().context("building the HTTP client")?,
            oauth2: c
                .oauth2
                .as_ref()
                .map(|o| super::oauth2::OAuth2::new(o, base_dir))
                .transpose()?,
            file_headers,
            url: reqwest::Url::parse(&c.url)?,
            method: reqwest::Method::from_bytes(c.method.as_deref().unwrap_or("GET").as_bytes())?,
            headers,
            body,
            basic_auth: c
                .basic_auth
                .as_ref()
                .map(|b| (b.username.clone(), resolve(base_dir, &b.password_file))),
            bearer_token_file: c.bearer_token_file.as_ref().map(|f| resolve(base_dir, f)),
            accept_status: c.accept_status.clone(),
            max_body_bytes: c.max_body_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            timeout: c.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        self.fetch_from(&self.url, self.headers.clone()).await
    }

    /// Fetches `url` with this source's method, body, credentials, TLS and caps, and with
    /// `headers` (a probe's, its target substituted) instead of the configured ones.
    pub async fn fetch_from(
        &self,
        url: &reqwest::Url,
        headers: reqwest::header::HeaderMap,
    ) -> Result<Fetched, FetchError> {
        self.fetch_into(url, headers, &mut Unaccounted).await
    }

    /// Like [`HttpFetcher::fetch_from`], with the body's memory taken from `room` as it
    /// arrives: all of it at once when the response says its length, else in growing steps.
    pub async fn fetch_into(
        &self,
        url: &reqwest::Url,
        headers: reqwest::header::HeaderMap,
        room: &mut impl BodyRoom,
    ) -> Result<Fetched, FetchError> {
        let (mut response, token) = self.send(url, headers.clone(), None).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED && token.is_some() {
            // The token was revoked or expired early: one more try with a new one.
            (response, _) = self.send(url, headers, token.as_deref()).await?;
        }
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let accepted = match &self.accept_status {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        };
        if !accepted {
            return Err(fail(
                SourceErrorReason::HttpStatus,
                format!("HTTP {status} from {}", redacted(url)),
            ));
        }
        let max = self.max_body_bytes;
        let mut body = Vec::new();
        if let Some(n) = response.content_length() {
            if n > max as u64 {
                return Err(too_large(max));
            }
            // The whole length at once: no step of doubling holds twice the body, and the room
            // is taken before a byte is held.
            room.make_room(n as usize).await?;
            body.reserve_exact(n as usize);
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(classify(&e, url), describe(&e, url)))?
        {
            let len = body.len() + chunk.len();
            if len > max {
                return Err(too_large(max));
            }
            if len > body.capacity() {
                // Grown by hand, in the steps the room is taken in, so what the room counts is
                // what the buffer holds.
                let want = (body.capacity() * 2).max(BODY_STEP).max(len).min(max);
                room.make_room(want).await?;
                body.reserve_exact(want - body.len());
            }
            body.extend_from_slice(&chunk);
        }
        // Valid UTF-8 (nearly always) becomes the String without a copy of the body.
        let body = String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Fetched {
            body,
            detail: format!("HTTP {}", status.as_u16()),
            content_type,
        })
    }
}

impl HttpFetcher {
    /// Sends one request; with OAuth2, also the token it carried (`refused`: one the server
    /// answered 401 to, not to be sent again).
    async fn send(
        &self,
        url: &reqwest::Url,
        headers: reqwest::header::HeaderMap,
        refused: Option<&str>,
    ) -> Result<(reqwest::Response, Option<String>), FetchError> {
        let mut request = self
            .client
            .request(self.method.clone(), url.clone())
            .headers(headers);
        for (name, value) in &self.file_headers {
            let value = match value {
                HeaderValueFrom::Text(v) => v.clone(),
                HeaderValueFrom::File(path) => {
                    let text = read_secret(path)?;
                    reqwest::header::HeaderValue::from_str(&text).map_err(|_| {
                        fail(
                            SourceErrorReason::Read,
                            format!(
                                "header {name} from {}: not a header value (control characters?)",
                                path.display()
                            ),
                        )
                    })?
                }
            };
            request = request.header(name.clone(), value);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        // Secrets are read on every fetch, so a rotated secret file takes effect.
        if let Some((user, file)) = &self.basic_auth {
            request = request.basic_auth(user, Some(read_secret(file)?));
        }
        if let Some(file) = &self.bearer_token_file {
            request = request.bearer_auth(read_secret(file)?);
        }
        let mut token = None;
        if let Some(oauth2) = &self.oauth2 {
            let t = oauth2.token(&self.client, refused).await?;
            request = request.bearer_auth(&t);
            token = Some(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| fail(classify(&e, url), describe(&e, url)))?;
        Ok((response, token))
    }
}

/// The first step of a body whose length is not known in advance.
const BODY_STEP: usize = 64 << 10;

/// Where the memory of a body in flight is accounted: a probe takes it from the budget all
/// probes share. `make_room` is asked for the buffer's whole new size; it answers at once or
/// after waiting, or fails with the reason the fetch then fails with.
pub trait BodyRoom {
    /// Makes room for a buffer of `total` bytes (it holds less before the call).
    fn make_room(
        &mut self,
        total: usize,
    ) -> impl std::future::Future<Output = Result<(), FetchError>> + Send;
}

/// No accounting: a page source holds one document at a time, within its own cap.
pub struct Unaccounted;

impl BodyRoom for Unaccounted {
    async fn make_room(&mut self, _total: usize) -> Result<(), FetchError> {
        Ok(())
    }
}

/// The URL without its secrets, for logs, errors and the landing page: the password
/// (`user:***@host`) and every query value (`?api_key=***&page=***`; which keys are secret
/// cannot be known, so none is shown).
pub fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let hidden: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => pair.to_owned(),
            })
            .collect();
        shown.set_query(Some(&hidden.join("&")));
    }
    shown.to_string()
}

/// `text` with every secret of `url` (password, query values, raw and decoded) replaced.
pub fn redact_text(mut text: String, url: &reqwest::Url) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(p) = url.password() {
        secrets.push(p.to_owned());
        secrets.push(percent_decoded(p));
    }
    if let Some(query) = url.query() {
        secrets.extend(
            query
                .split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_owned())),
        );
        secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        text = text.replace(&secret, "***");
    }
    text
}

/// `%XX` escapes decoded (invalid UTF-8 replaced), for secrets a URL keeps encoded.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn too_large(max: usize) -> FetchError {
    fail(
        SourceErrorReason::TooLarge,
        format!("larger than the cap of {max} bytes"),
    )
}

/// A secret file's content without its trailing newline, read now.
///
/// Only a regular file (symlinks followed: Kubernetes mounts secrets through them) of at most
/// [`SECRET_MAX_BYTES`] is read, opened non-blocking: a FIFO or a device at the path would
/// otherwise hold the fetch past every timeout, or read without end. `/dev/null` itself, the
/// usual "no secret" (the default `password_file` of the catalog's `redis` modules), is the
/// empty secret.
pub(crate) fn read_secret(path: &Path) -> Result<String, FetchError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if path == Path::new("/dev/null") {
        return Ok(String::new());
    }
    let read_error = |e: String| {
        fail(
            SourceErrorReason::Read,
            format!("cannot read secret file {}: {e}", path.display()),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| read_error(e.to_string()))?;
    let kind = file
        .metadata()
        .map_err(|e| read_error(e.to_string()))?
        .file_type();
    if !kind.is_file() {
        return Err(read_error(format!(
            "it is not a regular file ({})",
            describe_file_type(&kind)
        )));
    }
    let mut bytes = Vec::new();
    file.take(SECRET_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(e.to_string()))?;
    if bytes.len() > SECRET_MAX_BYTES {
        return Err(read_error(format!(
            "it is longer than {SECRET_MAX_BYTES} bytes"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| read_error("it is not UTF-8".into()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// The longest secret file read (a password, a token or a key; not a document).
pub const SECRET_MAX_BYTES: usize = 64 << 10;

/// The error and its causes, one line, without the secrets of `url` (the source's) or of the
/// URL the error names (a redirect target).
fn describe(e: &reqwest::Error, url: &reqwest::Url) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(named) = e.url() {
        text = redact_text(text, named);
    }
    redact_text(text, url)
}

/// A failed request as a fetch error: its reason and its description without secrets.
pub(crate) fn request_failure(e: &reqwest::Error, url: &reqwest::Url) -> FetchError {
    fail(classify(e, url), describe(e, url))
}

/// Maps a reqwest error to a reason by what its chain says.
fn classify(e: &reqwest::Error, url: &reqwest::Url) -> SourceErrorReason {
    if e.is_timeout() {
        return SourceErrorReason::Timeout;
    }
    let text = describe(e, url).to_ascii_lowercase();
    if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        SourceErrorReason::Dns
    } else if text.contains("certificate")
        || text.contains("tls")
        || text.contains("handshake")
        || text.contains("ssl")
    {
        SourceErrorReason::Tls
    } else if e.is_connect() {
        SourceErrorReason::Connect
    } else if text.contains("timed out") {
        SourceErrorReason::Timeout
    } else if e.is_body() || e.is_decode() {
        SourceErrorReason::Read
    } else {
        SourceErrorReason::Connect
    }
}

/// `command:` sources: no shell, own process group, killed whole on timeout.
pub struct CommandFetcher {
    argv: Vec<String>,
    timeout: Duration,
    accept: Vec<i32>,
    max_output_bytes: usize,
}

impl CommandFetcher {
    /// A relative program path with a `/` is relative to the config file; a bare name is
    /// looked up in `PATH`.
    pub fn new(c: &CommandSourceConfig, base_dir: &Path) -> CommandFetcher {
        super::reaper::become_subreaper();
        let mut argv = c.argv.clone();
        if argv[0].contains('/') && !Path::new(&argv[0]).is_absolute() {
            argv[0] = base_dir.join(&argv[0]).to_string_lossy().into_owned();
        }
        CommandFetcher {
            argv,
            timeout: c.timeout.unwrap_or(DEFAULT_TIMEOUT),
            accept: c.accept_exit_codes.clone().unwrap_or_else(|| vec![0]),
            max_output_bytes: c.max_output_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        }
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let marker = super::reaper::new_marker();
        // No sweep looks at the processes until the child is registered (the guard below).
        let spawning = super::reaper::spawning();
        let mut child = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .env(super::reaper::MARKER_VAR, &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fail(
                    SourceErrorReason::Spawn,
                    format!("cannot run {}: {e}", self.argv[0]),
                )
            })?;
        // Whatever happens from here (success, failure, timeout, the fetch abandoned), the run
        // is cleaned up when this guard goes: nothing the command started outlives the fetch.
        let _run = super::reaper::Run::new(marker, child.id());
        drop(spawning);
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let max = self.max_output_bytes;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let read_out = async {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = stdout
                        .read(&mut buf)
                        .await
                        .map_err(|e| fail(SourceErrorReason::Read, e.to_string()))?;
                    if n == 0 {
                        return Ok(());
                    }
                    if out.len() + n > max {
                        // At once, not at the timeout: the rest is not worth waiting for.
                        return Err(too_large(max));
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            };
            // stderr is drained to its end (a full pipe would block the command), keeping only
            // its last STDERR_KEPT bytes for the error message.
            let read_err = async {
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match stderr.read(&mut buf).await {
                        Ok(0) | Err(_) => return Ok::<_, FetchError>(()),
                        Ok(n) => {
                            err.extend_from_slice(&buf[..n]);
                            if err.len() > 2 * STDERR_KEPT {
                                err.drain(..err.len() - STDERR_KEPT);
                            }
                        }
                    }
                }
            };
            tokio::try_join!(read_out, read_err)?;
            let status = child
                .wait()
                .await
                .map_err(|e| fail(SourceErrorReason::Read, e.to_string()))?;
            Ok::<_, FetchError>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Err(_) => {
                return Err(fail(
                    SourceErrorReason::Timeout,
                    format!("{} did not finish within {:?}", self.argv[0], self.timeout),
                ))
            }
            Ok(r) => r?,
        };
        let code = status.code().unwrap_or(-1);
        if !self.accept.contains(&code) {
            let stderr = String::from_utf8_lossy(&err);
            let last = stderr.lines().last().unwrap_or("").trim();
            return Err(fail(
                SourceErrorReason::ExitCode,
                format!(
                    "{} exited with {status}{}{last}",
                    self.argv[0],
                    if last.is_empty() { "" } else { ": " }
                ),
            ));
        }
        Ok(Fetched {
            body: String::from_utf8_lossy(&out).into_owned(),
            detail: format!("exit {code}"),
            content_type: None,
        })
    }
}

/// How much of a command's stderr is kept for its error message.
const STDERR_KEPT: usize = 64 << 10;

/// `status_file:` sources.
pub struct StatusFileFetcher {
    path: PathBuf,
    max_bytes: usize,
    timeout: Duration,
}

impl StatusFileFetcher {
    pub fn new(c: &StatusFileSourceConfig, base_dir: &Path) -> StatusFileFetcher {
        StatusFileFetcher {
            path: resolve(base_dir, &c.path),
            max_bytes: c.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            timeout: c.timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let (path, max) = (self.path.clone(), self.max_bytes);
        // On the blocking pool, and bounded by the source's timeout in the page task: a read
        // that never returns (a hung network filesystem) costs one blocking thread, not the
        // source.
        tokio::task::spawn_blocking(move || read_status_file(&path, max))
            .await
            .map_err(|e| fail(SourceErrorReason::Read, e.to_string()))?
    }
}

/// Reads a status file whole. Only regular files are read: a FIFO or a device would block or
/// never end, so it is refused (it is opened non-blocking, so even the open cannot hang).
fn read_status_file(path: &Path, max: usize) -> Result<Fetched, FetchError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_error = |e: std::io::Error| {
        fail(
            SourceErrorReason::Read,
            format!("cannot read {}: {e}", path.display()),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    let kind = file.metadata().map_err(read_error)?.file_type();
    if !kind.is_file() {
        return Err(fail(
            SourceErrorReason::Read,
            format!(
                "{} is not a regular file ({}); a status_file must be one",
                path.display(),
                describe_file_type(&kind)
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > max {
        return Err(too_large(max));
    }
    Ok(Fetched {
        detail: format!("{} bytes", bytes.len()),
        content_type: None,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// What kind of file something is, in words.
pub fn describe_file_type(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_read_only_when_it_is_a_short_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2\r\n").unwrap();
        assert_eq!(read_secret(&file).unwrap(), "hunter2");
        // A FIFO nobody writes to: refused at once (a blocking open or read would hang).
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_secret(&fifo).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{}", e.message);
        // A device without end.
        let e = read_secret(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{}", e.message);
        // /dev/null, the usual "no secret": empty.
        assert_eq!(read_secret(Path::new("/dev/null")).unwrap(), "");
        std::fs::write(&file, vec![b'a'; SECRET_MAX_BYTES + 1]).unwrap();
        let e = read_secret(&file).unwrap_err();
        assert!(e.message.contains("longer than"), "{}", e.message);
    }

    #[test]
    fn passwords_in_urls_are_not_shown() {
        let url = reqwest::Url::parse("http://monitor:s3cret@lb.internal:8404/stats").unwrap();
        assert_eq!(redacted(&url), "http://monitor:***@lb.internal:8404/stats");
        let plain = reqwest::Url::parse("https://lb.internal/stats").unwrap();
        assert_eq!(redacted(&plain), "https://lb.internal/stats");
        let query = reqwest::Url::parse("https://api.example/v1?api_key=s%2Fe+cret&flag&token=t0k")
            .unwrap();
        assert_eq!(
            redacted(&query),
            "https://api.example/v1?api_key=***&flag&token=***"
        );
        let text = redact_text(
            "error sending request for url (https://api.example/v1?api_key=s%2Fe+cret&token=t0k): s/e cret".into(),
            &query,
        );
        assert!(!text.contains("cret") && !text.contains("t0k"), "{text}");
    }
}
