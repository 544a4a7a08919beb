//! The HTTP side: `/metrics`, `/probe`, the landing page, the status board (`/status`,
//! `/status.json`, `/status/badge.svg`), `/-/healthy` and `/-/ready`, on hyper 1.
//!
//! Rendering runs on the blocking pool so a large exposition never stalls the accept loop, and
//! concurrent scrapes share one render ([`crate::scrape`]).
//! Connections get a header read timeout so slow clients cannot hold them, and shutdown is
//! graceful: listeners close, requests in flight finish (for a few seconds at most). With a
//! web config, connections are TLS and requests need basic auth; `POST /-/reload` exists only
//! with `--web.enable-lifecycle`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::Registry;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::exposition::TEXT_CONTENT_TYPE;
use crate::landing;
use crate::status::SharedStatus;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read.
pub struct WebState {
    /// The process collector.
    pub registry: Registry,
    /// The exporter's own metrics.
    pub self_metrics: crate::selfmetrics::SelfMetrics,
    /// Where `/metrics` is served (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// The user's metric families (replaced on reload).
    pub families: std::sync::RwLock<crate::registry::Families>,
    /// One status per source, for the landing page (replaced on reload).
    pub statuses: std::sync::RwLock<Vec<SharedStatus>>,
    /// Sources that have not finished their first scan; ready when 0.
    pub pending_sources: Arc<AtomicUsize>,
    /// The config file, as named on the command line.
    pub config_file: String,
    /// Where `POST /-/reload` asks for a reload (`None` without `--web.enable-lifecycle`).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// TLS, basic auth and headers from `--web.config.file`.
    pub security: Option<crate::webconfig::WebSecurity>,
    /// The render concurrent scrapes share.
    pub renders: crate::scrape::RenderShare,
    /// Checkpoints (with `--storage.path`): one is taken before each render, which shows the
    /// values it saved.
    pub checkpointer: Option<Arc<crate::checkpoint::Checkpointer>>,
    /// The probe modules behind `/probe` (replaced on reload).
    pub probes: std::sync::RwLock<Arc<crate::probe::Probes>>,
    /// What the status board shows (replaced on reload).
    pub board: std::sync::RwLock<Arc<crate::board::Plan>>,
    /// The status board's history (kept across reloads).
    pub history: Arc<crate::board::History>,
}

/// The landing page from the current statuses and probe modules.
fn landing_page(state: &WebState) -> String {
    let statuses = state
        .statuses
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let probes = state
        .probes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    landing::render(&landing::Facts {
        config_file: &state.config_file,
        telemetry_path: &state.telemetry_path,
        pending_sources: state.pending_sources.load(Ordering::SeqCst),
        statuses: &statuses,
        probe_modules: &probes.summaries(),
    })
}

/// A reload request: the channel its outcome is sent back on.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Binds every address; fails on the first that cannot be bound.
pub async fn bind(addresses: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for a in addresses {
        let l = TcpListener::bind(a)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?;
        info!(address = %l.local_addr()?, "Listening on");
        listeners.push(l);
    }
    Ok(listeners)
}

/// Serves until `shutdown` resolves, then drains connections.
pub async fn serve(
    listeners: Vec<TcpListener>,
    state: Arc<WebState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = mpsc::channel(64);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let tx = tx.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if tx.send((stream, peer)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    drop(tx);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = rx.recv() => {
                let Some((stream, peer)) = accepted else { break };
                let tls = match state.security.as_ref().and_then(|s| s.tls()) {
                    None => None,
                    Some(Ok(acceptor)) => Some(acceptor),
                    Some(Err(e)) => {
                        warn!("TLS configuration unusable, refusing the connection: {e:#}");
                        continue;
                    }
                };
                let state = state.clone();
                let service = service_fn(move |req| handle(req, state.clone()));
                let builder = {
                    let mut b = http1::Builder::new();
                    b.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                    b
                };
                match tls {
                    None => {
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                debug!(%peer, "connection ended: {e}");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded like headers.
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    debug!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => return,
                            };
                            if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await {
                                debug!(%peer, "connection ended: {e}");
                            }
                        });
                    }
                }
            }
        }
    }
    for t in accept_tasks {
        t.abort();
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
}

fn response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static content type"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<WebState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = route(req, &state).await;
    if let Some(security) = &state.security {
        for (name, value) in security.headers() {
            // The status page has a policy of its own, stricter than a site-wide one can be
            // (it allows its inline style and script by hash only): it stays, taking over
            // only the configured `frame-ancestors`, which says where the page may be framed.
            if name == header::CONTENT_SECURITY_POLICY {
                if let Some(own) = r.headers().get(header::CONTENT_SECURITY_POLICY) {
                    let framing = value.to_str().ok().and_then(|v| {
                        v.split(';')
                            .map(str::trim)
                            .find(|d| d.to_ascii_lowercase().starts_with("frame-ancestors"))
                    });
                    if let Some(framing) = framing {
                        let joined = format!("{}; {framing}", own.to_str().unwrap_or(""));
                        if let Ok(v) = HeaderValue::from_str(&joined) {
                            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
                        }
                    }
                    continue;
                }
                r.headers_mut().insert(name.clone(), value.clone());
            } else {
                r.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    Ok(r)
}

async fn route(req: Request<Incoming>, state: &Arc<WebState>) -> Response<Full<Bytes>> {
    if let Some(security) = &state.security {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // bcrypt takes milliseconds: off the async workers' hot loop.
        if !tokio::task::block_in_place(|| security.authorized(authorization)) {
            let mut r = response(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                "Unauthorized.\n",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"quarry_exporter\""),
            );
            return r;
        }
    }
    let path = req.uri().path();
    if path == "/-/reload" {
        return reload(req.method(), state).await;
    }
    let known = path == state.telemetry_path
        || matches!(
            path,
            "/" | "/-/healthy"
                | "/-/ready"
                | "/probe"
                | "/status"
                | "/status.json"
                | "/status/badge.svg"
        );
    if !known {
        return response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "Not found.\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "Only GET and HEAD are allowed here.\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let head = req.method() == Method::HEAD;
    let mut r = if path.starts_with("/status") && path != state.telemetry_path {
        let gzip = accepts_gzip(req.headers().get(header::ACCEPT_ENCODING));
        status_board(path, req.uri().query(), gzip, state).await
    } else if path == "/probe" && path != state.telemetry_path {
        let probes = state
            .probes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let scrape_timeout = req
            .headers()
            .get("x-prometheus-scrape-timeout-seconds")
            .and_then(|v| v.to_str().ok());
        let via = req
            .headers()
            .get(crate::probe::VIA_HEADER)
            .and_then(|v| v.to_str().ok());
        let answer = probes.probe(req.uri().query(), scrape_timeout, via).await;
        response(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.content_type,
            answer.body,
        )
    } else if path == state.telemetry_path {
        let gzip = accepts_gzip(req.headers().get(header::ACCEPT_ENCODING));
        let registry = state.registry.clone();
        let self_metrics = state.self_metrics.clone();
        let families = state
            .families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let checkpointer = state.checkpointer.clone();
        let rendered = state
            .renders
            .get(move || {
                // What a scrape shows is on disk first: after a restart no counter is lower
                // than Prometheus saw.
                let saved = checkpointer.as_ref().and_then(|c| c.for_scrape());
                crate::render::render_saved(
                    &registry,
                    &families,
                    &self_metrics,
                    saved.as_deref().map_or(&[][..], |s| &s[..]),
                )
            })
            .await;
        let body = match &rendered {
            Ok(r) if gzip => r.gzip().await,
            Ok(r) => Ok(r.text.clone()),
            Err(e) => Err(e.clone()),
        };
        match body {
            Ok(body) => {
                let mut r = response(StatusCode::OK, TEXT_CONTENT_TYPE, body);
                if gzip {
                    r.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                r
            }
            Err(e) => response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("error rendering metrics: {e}\n"),
            ),
        }
    } else {
        match path {
            "/-/healthy" => match state.checkpointer.as_ref().and_then(|c| c.problem()) {
                None => response(StatusCode::OK, "text/plain; charset=utf-8", "Healthy.\n"),
                Some(problem) => response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("Unhealthy: {problem}.\n"),
                ),
            },
            "/-/ready" => {
                let pending = state.pending_sources.load(Ordering::SeqCst);
                if pending == 0 {
                    response(StatusCode::OK, "text/plain; charset=utf-8", "Ready.\n")
                } else {
                    response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        format!("Not ready: {pending} source(s) still starting.\n"),
                    )
                }
            }
            _ => response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                landing_page(state),
            ),
        }
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

/// `/status`, `/status.json` and `/status/badge.svg`: the board made now (its history
/// brought up to date first), on the blocking pool (it copies the state families).
async fn status_board(
    path: &str,
    query: Option<&str>,
    gzip: bool,
    state: &Arc<WebState>,
) -> Response<Full<Bytes>> {
    let path = path.to_owned();
    let query = query.map(str::to_owned);
    let state = state.clone();
    let made = tokio::task::spawn_blocking(move || {
        let plan = state
            .board
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let families = state
            .families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = crate::board::unix_now();
        state
            .history
            .observe(now, &families, &plan.metrics, &plan.headline_metrics());
        if path == "/status/badge.svg" {
            let filter = crate::board::query_pairs(query.as_deref().unwrap_or(""));
            let (status, svg) = crate::board::badge_for(&plan, &families, &filter);
            let mut r = response(status, "image/svg+xml; charset=utf-8", svg);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, max-age=0"),
            );
            return r;
        }
        let statuses = state
            .statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let health = || crate::board::health(&statuses);
        let board = crate::board::snapshot(&plan, &families, health, &state.history, now);
        let (content_type, mut body) = if path == "/status.json" {
            let mut body = serde_json::to_vec(&board).unwrap_or_default();
            body.push(b'\n');
            ("application/json", body)
        } else {
            (
                "text/html; charset=utf-8",
                crate::board::page::render(&board).into_bytes(),
            )
        };
        let mut zipped = false;
        if gzip {
            // A wall screen polls all day: the page and its JSON shrink to about a third.
            use std::io::Write;
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if let Ok(out) = z.write_all(&body).and_then(|()| z.finish()) {
                body = out;
                zipped = true;
            }
        }
        let mut r = response(StatusCode::OK, content_type, body);
        if zipped {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if path == "/status" {
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_str(&crate::board::page::CSP).expect("ASCII policy"),
            );
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    })
    .await;
    let mut r = made.unwrap_or_else(|e| {
        response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("error making the status board: {e}\n"),
        )
    });
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `POST /-/reload` (or PUT, as Prometheus accepts): reloads and answers with the outcome.
async fn reload(method: &Method, state: &WebState) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    let Some(reload) = &state.reload else {
        return response(
            StatusCode::FORBIDDEN,
            text,
            "Lifecycle API is not enabled (--web.enable-lifecycle).\n",
        );
    };
    if method != Method::POST && method != Method::PUT {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            "Use POST to reload.\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
        return r;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if reload.send(tx).await.is_err() {
        return response(StatusCode::SERVICE_UNAVAILABLE, text, "Shutting down.\n");
    }
    match rx.await {
        Ok(Ok(())) => response(StatusCode::OK, text, "Reloaded.\n"),
        Ok(Err(e)) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            text,
            format!("Reload failed; the previous config keeps running:\n{e}\n"),
        ),
        Err(_) => response(StatusCode::SERVICE_UNAVAILABLE, text, "Shutting down.\n"),
    }
}

/// Whether an `Accept-Encoding` header allows gzip (and does not give it `q=0`).
fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    text.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        coding.eq_ignore_ascii_case("gzip") && !q_zero
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation_follows_accept_encoding() {
        let h = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(accepts_gzip(h("gzip").as_ref()));
        assert!(accepts_gzip(h("deflate, GZIP;q=0.5").as_ref()));
        assert!(!accepts_gzip(h("gzip;q=0").as_ref()));
        assert!(!accepts_gzip(h("identity").as_ref()));
        assert!(!accepts_gzip(None));
    }
}
