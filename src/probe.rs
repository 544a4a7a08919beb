//! The multi-target pattern: `GET /probe?module=NAME&target=T` runs the probe module `NAME` (an
//! `http:` page-source template whose URL or headers use `$target`, or a `socket:` one whose
//! address does) against `T` while
//! Prometheus waits, and answers with the module's metrics for that target plus
//! `quarry_probe_success`, `quarry_probe_duration_seconds` and
//! `quarry_probe_failure_reason{reason}`, as blackbox_exporter and json_exporter do (those
//! three are declared with the other self-metrics and written by
//! `selfmetrics::render_probe_result`).
//!
//! A probe keeps nothing: its metric families are made for the request and dropped with the
//! response, so replicas are interchangeable behind a Service. Its time is bounded by the
//! module's `timeout` and by what Prometheus allows (`X-Prometheus-Scrape-Timeout-Seconds`
//! minus `--probe.timeout-offset`), waiting for capacity, fetching and parsing included.
//! Capacity is shared under three bounds (`limits.rs`): slots per target, slots over all
//! targets and a byte budget for documents in flight; each module parses on a small pool of
//! document workers (one per core). So a slow target or a pathological page holds only its
//! own share, never the others', and a probe that got no capacity says so (`no_slot`).
//!
//! Requests are taken literally or refused: a repeated `target` or `module` is a 400 (which
//! one a proxy checked and which one would run cannot differ), and a request that carries this
//! exporter's own mark came back through a target and is refused (508). What a probe shows
//! of its target outside its own answer (the landing page) has the URL's secrets redacted.

mod limits;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;

use crate::config::template::{self, Piece};
use crate::config::{Config, MetricConfig, MetricKind, SourceConfig, SourceKind};
use crate::exposition;
use crate::extract::{ExtractError, Row};
use crate::pipeline::Pipeline;
use crate::registry::Families;
use crate::selfmetrics::{
    probe_failure_reasons, render_probe_result, IntCounter, IntGauge, SelfMetrics,
    SourceErrorReason,
};
use crate::source::fetch::{
    redact_text, redacted, FetchError, Fetched, HttpFetcher, DEFAULT_TIMEOUT,
};
use crate::source::socket::{Endpoint, SocketFetcher};
use crate::source::worker::{DocumentWorker, WorkerError};
pub use limits::VIA_HEADER;
use limits::{Held, Limits, Shortage};

/// Settings of the `/probe` endpoint (command-line flags).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Probes that may fetch and parse at once over all modules (`--probe.max-concurrent`).
    pub max_concurrent: usize,
    /// Probes of one target (scheme, host, port) that may do so at once
    /// (`--probe.max-per-target`).
    pub max_per_target: usize,
    /// Bytes of documents all probes may hold at once (`--probe.max-body-bytes-in-flight`).
    pub max_body_bytes_in_flight: usize,
    /// Taken off Prometheus' scrape timeout, so the answer arrives in time
    /// (`--probe.timeout-offset`).
    pub timeout_offset: Duration,
}

/// `--probe.max-concurrent`'s default. Documents have their own budget, so a slot costs what a
/// probe waiting on a hanging target costs (some 38 KiB and a socket): 1,024 of them are
/// 38 MiB, and a partition that hangs hundreds of targets at once still leaves slots for the
/// others.
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;
/// `--probe.max-per-target`'s default: room for an HA pair of Prometheus servers probing a
/// target with two modules, while a hanging target holds 4 slots however many probes it
/// gets.
pub const DEFAULT_MAX_PER_TARGET: usize = 4;
/// `--probe.max-body-bytes-in-flight`'s default: six documents at the default `max_body_bytes`
/// (10 MiB), thousands of ordinary status pages.
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 64 << 20;

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_per_target: DEFAULT_MAX_PER_TARGET,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
            timeout_offset: Duration::from_millis(500),
        }
    }
}

/// The answer to a `/probe` request.
#[derive(Debug)]
pub struct ProbeResponse {
    /// 200 for a probe (failed or not), 400 for a request that names no valid module/target.
    pub status: u16,
    /// The Content-Type.
    pub content_type: &'static str,
    /// The exposition, the debug text, or the error.
    pub body: Vec<u8>,
}

impl ProbeResponse {
    fn bad_request(message: String) -> ProbeResponse {
        ProbeResponse::refused(400, message)
    }

    fn refused(status: u16, message: String) -> ProbeResponse {
        ProbeResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: (message + "\n").into_bytes(),
        }
    }
}

/// Every probe module of a config, and the capacity they share.
pub struct Probes {
    modules: BTreeMap<String, Arc<ProbeModule>>,
    /// Shared with the modules of the config before (and after) a reload; none without
    /// modules.
    limits: Option<Arc<Limits>>,
    options: ProbeOptions,
    self_metrics: SelfMetrics,
    in_flight: Option<IntGauge>,
}

/// One module: its fetch template, its rules and the metrics they update.
struct ProbeModule {
    /// The module as declared (an `http:` source).
    config: SourceConfig,
    /// The rules compiled once; each probe rebinds them to its fresh families.
    pipeline: Pipeline,
    /// The declared metrics the rules update: a probe makes fresh families of them.
    metrics: Vec<MetricConfig>,
    /// The metrics one update alone of the module sets: their series a document lacks (an
    /// unlabelled metric's 0 from the start, a pre-declared label value) are not answered, as
    /// a page source retires them after its first document.
    sole_fed: std::collections::HashSet<String>,
    /// Its state metrics with `label_values`: the series a probe knows without a document,
    /// which a failed probe answers as `unknown` (it keeps nothing, so it knows no others).
    known_states: Vec<MetricConfig>,
    fetch: ModuleFetch,
    timeout: Duration,
    parsers: Arc<ParserPool>,
    /// Self-metrics the per-probe families report into (their series counts mean nothing
    /// across probes, so they are not the exported ones).
    scratch: SelfMetrics,
    probes: IntCounter,
    errors: Vec<(SourceErrorReason, IntCounter)>,
    last_failure: parking_lot::Mutex<String>,
}

/// How a module fetches: its templates and the fetcher that carries the rest.
enum ModuleFetch {
    /// `http:`: the method, the URL and header templates.
    Http {
        method: String,
        url: Vec<Piece>,
        headers: Vec<(reqwest::header::HeaderName, Vec<Piece>)>,
        fetcher: Box<HttpFetcher>,
    },
    /// `socket:`: the address template (host:port).
    Socket {
        address: Vec<Piece>,
        fetcher: Box<SocketFetcher>,
    },
}

/// What the landing page shows of a module.
#[derive(Debug, Clone)]
pub struct ModuleSummary {
    /// The module's name.
    pub name: String,
    /// What it fetches: method and URL template (secrets in the template are the user's).
    pub fetches: String,
    /// Probes run.
    pub probes: u64,
    /// Probes failed.
    pub failed: u64,
    /// The last failure: target, reason and message (the URL's password and query values
    /// redacted, in the target as in the message).
    pub last_failure: String,
}

/// A step of a probe that failed, and why.
struct Failure {
    reason: SourceErrorReason,
    message: String,
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Failure {
        Failure {
            reason: e.reason,
            message: e.message,
        }
    }
}

impl Failure {
    fn no_slot(message: String) -> Failure {
        Failure {
            reason: SourceErrorReason::NoSlot,
            message,
        }
    }
}

/// What one probe found.
struct Outcome {
    url: String,
    detail: String,
    budget: Duration,
    duration: Duration,
    result: Result<(Families, u64, u64), Failure>,
}

impl Probes {
    /// Builds every module of a validated config: HTTP clients, URL templates, one parse
    /// worker each (which compiles its extractors, so a broken one fails here). `previous`
    /// are the modules a reload replaces: their capacity carries over, so probes still in
    /// flight on them count against the same bounds.
    pub fn build(
        config: &Config,
        base_dir: &Path,
        self_metrics: &SelfMetrics,
        options: &ProbeOptions,
        previous: Option<&Probes>,
    ) -> anyhow::Result<Probes> {
        let mut modules = BTreeMap::new();
        for m in &config.modules {
            let module = ProbeModule::build(m, config, base_dir, self_metrics)
                .with_context(|| format!("module {:?}", m.name))?;
            modules.insert(m.name.clone(), Arc::new(module));
        }
        let limits = match previous.and_then(|p| p.limits.clone()) {
            Some(l) => Some(l),
            None if modules.is_empty() => None,
            None => Some(Arc::new(Limits::new(
                options.max_concurrent,
                options.max_per_target,
                options.max_body_bytes_in_flight,
                self_metrics.probe_capacity(),
            ))),
        };
        Ok(Probes {
            in_flight: (!modules.is_empty()).then(|| self_metrics.probes_in_flight()),
            modules,
            limits,
            options: options.clone(),
            self_metrics: self_metrics.clone(),
        })
    }

    /// The module names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// Each module's counts and last failure, in name order.
    pub fn summaries(&self) -> Vec<ModuleSummary> {
        self.modules
            .iter()
            .map(|(name, m)| {
                let fetches = match &m.fetch {
                    ModuleFetch::Http { method, url, .. } => {
                        format!("{method} {}", shown_template(url))
                    }
                    ModuleFetch::Socket { address, .. } => format!(
                        "socket tcp://{}",
                        template::substitute_target(address, "$target")
                    ),
                };
                ModuleSummary {
                    name: name.clone(),
                    fetches,
                    probes: m.probes.get(),
                    failed: m.errors.iter().map(|(_, c)| c.get()).sum(),
                    last_failure: m.last_failure.lock().clone(),
                }
            })
            .collect()
    }

    /// Whether the config declares no module.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Drops the self-metric series of modules `next` no longer has (after a reload).
    pub fn forget_removed(&self, next: &Probes) {
        for name in self
            .modules
            .keys()
            .filter(|n| !next.modules.contains_key(*n))
        {
            self.self_metrics.probes.remove_label_values(&[name]);
            for r in probe_failure_reasons() {
                self.self_metrics
                    .probe_errors
                    .remove_label_values(&[name, r.as_str()]);
            }
        }
    }

    /// Answers `/probe?{query}`; `scrape_timeout` is the `X-Prometheus-Scrape-Timeout-Seconds`
    /// header and `via` the [`VIA_HEADER`], if any.
    pub async fn probe(
        &self,
        query: Option<&str>,
        scrape_timeout: Option<&str>,
        via: Option<&str>,
    ) -> ProbeResponse {
        let params = query_pairs(query.unwrap_or(""));
        // Each parameter at most once: with two, a proxy that allow-lists one could be
        // bypassed by the other (blackbox_exporter takes the first, Go's default the last).
        for name in ["module", "target", "debug"] {
            let n = params.iter().filter(|(k, _)| k == name).count();
            if n > 1 {
                return ProbeResponse::bad_request(format!(
                    "the `{name}` parameter is given {n} times; give it once"
                ));
            }
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let (Some(limits), false) = (&self.limits, self.modules.is_empty()) else {
            return ProbeResponse::bad_request(
                "this config declares no probe modules (`modules:` in the config file)".into(),
            );
        };
        let chain: Vec<&str> = via
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        if chain.contains(&limits.mark()) || chain.len() >= limits::MAX_VIA {
            return ProbeResponse::refused(
                508,
                format!(
                    "loop detected: this /probe request {}; refused so that a target leading \
                     back to /probe cannot hold probe slots",
                    if chain.contains(&limits.mark()) {
                        "came from one of this exporter's own probes (a target redirects or \
                         forwards to its /probe)"
                            .to_owned()
                    } else {
                        format!("passed {} exporters' probes", chain.len())
                    }
                ),
            );
        }
        let module = match param("module") {
            Some(name) => match self.modules.get(name) {
                Some(m) => m,
                None => {
                    return ProbeResponse::bad_request(format!(
                        "unknown module {name:?}; this config declares: {}",
                        self.names().collect::<Vec<_>>().join(", ")
                    ))
                }
            },
            None if self.modules.len() == 1 => self.modules.values().next().expect("one"),
            None => {
                return ProbeResponse::bad_request(format!(
                    "the `module` parameter is missing; this config declares: {}",
                    self.names().collect::<Vec<_>>().join(", ")
                ))
            }
        };
        let target =
            match param("target") {
                Some(t) if !t.trim().is_empty() => t,
                _ => return ProbeResponse::bad_request(
                    "the `target` parameter is missing (Prometheus sets it from __param_target)"
                        .into(),
                ),
            };
        let mut request = match module.request(target) {
            Ok(r) => r,
            Err(message) => return ProbeResponse::bad_request(message),
        };
        let mut marks = chain.join(", ");
        if !marks.is_empty() {
            marks.push_str(", ");
        }
        marks.push_str(limits.mark());
        let shown = match &mut request.kind {
            RequestKind::Http { url, headers, .. } => {
                headers.insert(
                    VIA_HEADER,
                    reqwest::header::HeaderValue::from_str(&marks)
                        .expect("marks are visible ASCII"),
                );
                shown_target(target, url)
            }
            // host:port: nothing secret in it, and no header to carry a mark (a socket
            // cannot lead back to /probe's HTTP).
            RequestKind::Socket { .. } => target.to_owned(),
        };
        let debug = matches!(param("debug"), Some("true" | "1"));
        let budget = budget(module.timeout, scrape_timeout, self.options.timeout_offset);
        let in_flight = InFlight::new(self.in_flight.clone());
        let outcome = module.run(request, budget, limits).await;
        drop(in_flight);
        module.probes.inc();
        if let Err(f) = &outcome.result {
            if let Some((_, c)) = module.errors.iter().find(|(r, _)| *r == f.reason) {
                c.inc();
            }
            let mut text = format!("{shown}: {}: {}", f.reason.as_str(), f.message);
            if text.len() > 512 {
                let mut cut = 512;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            *module.last_failure.lock() = text;
        }
        let metrics = render(&outcome, module);
        if debug {
            return ProbeResponse {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: explain(&module.config.name, &shown, &outcome, &metrics).into_bytes(),
            };
        }
        ProbeResponse {
            status: 200,
            content_type: exposition::TEXT_CONTENT_TYPE,
            body: metrics,
        }
    }
}

/// A URL template for people: query values and a password hidden as in source URLs, the
/// target shown as `$target`.
fn shown_template(url: &[Piece]) -> String {
    const MARK: &str = "quarry-target-placeholder";
    let text = template::substitute_target(url, MARK);
    match reqwest::Url::parse(&text) {
        Ok(u) => redacted(&u).replace(MARK, "$target"),
        Err(_) => text.replace(MARK, "$target"),
    }
}

/// The target as shown outside its own probe's answer: the secrets of the URL it makes (a
/// password, query values) replaced, wherever they appear in it.
fn shown_target(target: &str, url: &reqwest::Url) -> String {
    match reqwest::Url::parse(target) {
        // The target is the whole URL (`url: "$target"`): shown as source URLs are.
        Ok(own) if own.has_host() => redacted(&own),
        _ => redact_text(target.to_owned(), url),
    }
}

/// How long a probe may take: the module's timeout, or less when Prometheus gives up sooner.
fn budget(module_timeout: Duration, scrape_timeout: Option<&str>, offset: Duration) -> Duration {
    let Some(seconds) = scrape_timeout
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
    else {
        return module_timeout;
    };
    let scrape = Duration::from_secs_f64(seconds.min(86_400.0));
    // The offset leaves time for the answer to travel; a scrape timeout shorter than twice
    // the offset keeps half of itself.
    let within = scrape.saturating_sub(offset).max(scrape / 2);
    within.min(module_timeout)
}

/// The pairs of a query string, percent-decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://probe.invalid/").expect("a valid URL");
    url.set_query(Some(query));
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Counts a probe in `quarry_probes_in_flight` while it lives.
struct InFlight(Option<IntGauge>);

impl InFlight {
    fn new(gauge: Option<IntGauge>) -> InFlight {
        if let Some(g) = &gauge {
            g.add(1);
        }
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.add(-1);
        }
    }
}

/// What one probe fetches, and with which of its module's fetchers.
struct ProbeRequest<'m> {
    kind: RequestKind<'m>,
    /// Whose slots it takes: the URL's scheme, host and port, or the socket's address.
    target_key: String,
}

/// A probe's request by kind, holding the module's fetcher of that kind (so a request can
/// only be fetched the way its module fetches).
enum RequestKind<'m> {
    /// The URL and headers.
    Http {
        fetcher: &'m HttpFetcher,
        url: reqwest::Url,
        headers: reqwest::header::HeaderMap,
    },
    /// Where the conversation goes.
    Socket {
        fetcher: &'m SocketFetcher,
        endpoint: Endpoint,
    },
}

impl ProbeModule {
    fn build(
        m: &SourceConfig,
        config: &Config,
        base_dir: &Path,
        self_metrics: &SelfMetrics,
    ) -> anyhow::Result<ProbeModule> {
        let (fetch, timeout) = match m.kind()? {
            SourceKind::Http(http) => {
                // The client carries what does not depend on the target; URL and headers are
                // made per probe.
                let mut fixed = http.clone();
                fixed.url = "http://probe.invalid/".into();
                fixed.headers.clear();
                let fetcher = Box::new(HttpFetcher::new(&fixed, base_dir)?);
                let url = template::parse(&http.url).map_err(anyhow::Error::msg)?;
                let headers = http
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            reqwest::header::HeaderName::from_bytes(k.as_bytes())?,
                            template::parse(v).map_err(anyhow::Error::msg)?,
                        ))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let fetch = ModuleFetch::Http {
                    method: http.method.clone().unwrap_or_else(|| "GET".to_owned()),
                    url,
                    headers,
                    fetcher,
                };
                (fetch, http.timeout.unwrap_or(DEFAULT_TIMEOUT))
            }
            SourceKind::Socket(socket) => {
                let template = socket.address.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("a socket probe module needs `address` with $target")
                })?;
                // The fetcher carries the steps, TLS and limits; the address is made per probe.
                let mut fixed = socket.clone();
                fixed.address = Some("probe.invalid:9".into());
                let fetch = ModuleFetch::Socket {
                    address: template::parse(template).map_err(anyhow::Error::msg)?,
                    fetcher: Box::new(SocketFetcher::new(&fixed, base_dir)?),
                };
                (fetch, socket.timeout.unwrap_or(DEFAULT_TIMEOUT))
            }
            SourceKind::File(_) | SourceKind::Command(_) | SourceKind::StatusFile(_) => {
                anyhow::bail!("a probe module needs `http:` or `socket:`")
            }
        };
        let fed = Config::metrics_fed_by(std::slice::from_ref(m));
        let metrics: Vec<MetricConfig> = config
            .metrics
            .iter()
            .filter(|d| fed.contains(d.name.as_str()))
            .cloned()
            .collect();
        let scratch = SelfMetrics::new();
        // Built once here: a rule that cannot be compiled fails the config, not a probe.
        let pipeline = Pipeline::build(m, &Families::build(&metrics, &scratch), &scratch)?;
        let parsers = Arc::new(ParserPool::new(&m.name, m.rules.clone())?);
        let errors = probe_failure_reasons()
            .map(|r| {
                (
                    r,
                    self_metrics
                        .probe_errors
                        .with_label_values(&[&m.name, r.as_str()]),
                )
            })
            .collect();
        let known_states = metrics
            .iter()
            .filter(|d| {
                d.kind == MetricKind::State
                    && d.label_values.as_ref().is_some_and(|v| !v.is_empty())
            })
            .cloned()
            .collect();
        let mut feeders: std::collections::HashMap<&str, usize> = Default::default();
        for u in m.rules.iter().flat_map(|r| r.update.iter()) {
            *feeders.entry(u.metric.as_str()).or_default() += 1;
        }
        let sole_fed = feeders
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|(metric, _)| metric.to_owned())
            .collect();
        Ok(ProbeModule {
            config: m.clone(),
            pipeline,
            metrics,
            sole_fed,
            known_states,
            fetch,
            timeout,
            parsers,
            scratch,
            probes: self_metrics.probes.with_label_values(&[&m.name]),
            errors,
            last_failure: parking_lot::Mutex::new(String::new()),
        })
    }

    /// The URL and headers for `target`, or why the target cannot be probed.
    fn request(&self, target: &str) -> Result<ProbeRequest<'_>, String> {
        if target.chars().any(char::is_control) {
            return Err("the target holds control characters".into());
        }
        let (url, header_templates, fetcher) = match &self.fetch {
            ModuleFetch::Http {
                url,
                headers,
                fetcher,
                ..
            } => (url, headers, fetcher),
            ModuleFetch::Socket { address, fetcher } => {
                let address = template::substitute_target(address, target);
                crate::source::socket::check_address(&address)
                    .map_err(|e| format!("target {target:?}: {e}"))?;
                return Ok(ProbeRequest {
                    target_key: format!("tcp://{address}"),
                    kind: RequestKind::Socket {
                        fetcher,
                        endpoint: Endpoint::Tcp(address),
                    },
                });
            }
        };
        let text = template::substitute_target(url, target);
        let url = reqwest::Url::parse(&text).map_err(|e| {
            format!("target {target:?} makes the URL {text:?}, which is not a URL: {e}")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "target {target:?} makes a {:?} URL; only http and https are probed",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("target {target:?} makes a URL without a host"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in header_templates {
            let value = template::substitute_target(value, target);
            let value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                format!("target {target:?} makes an invalid value for header {name}")
            })?;
            headers.insert(name.clone(), value);
        }
        Ok(ProbeRequest {
            target_key: url.origin().ascii_serialization(),
            kind: RequestKind::Http {
                fetcher,
                url,
                headers,
            },
        })
    }

    /// Waits for capacity, fetches, parses and applies the rules, all within `budget`.
    async fn run(&self, request: ProbeRequest<'_>, budget: Duration, limits: &Limits) -> Outcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + budget;
        let url = match &request.kind {
            RequestKind::Http { url, .. } => redacted(url),
            RequestKind::Socket { endpoint, .. } => endpoint.to_string(),
        };
        let mut detail = String::new();
        let timed_out = |what: &str| Failure {
            reason: SourceErrorReason::Timeout,
            message: format!("{what} within the probe's {budget:?}"),
        };
        let result = async {
            let mut held = limits
                .acquire(&request.target_key, deadline)
                .await
                .map_err(|shortage| {
                    Failure::no_slot(match shortage {
                        Shortage::Target(n) => format!(
                            "{n} probe(s) of this target were in flight and none finished within \
                             the probe's {budget:?} (--probe.max-per-target)"
                        ),
                        Shortage::Slots(n) => format!(
                            "all {n} probe slots were in use and none was free within the \
                             probe's {budget:?} (--probe.max-concurrent)"
                        ),
                    })
                })?;
            let fetched = tokio::time::timeout_at(deadline, async {
                match request.kind {
                    RequestKind::Http {
                        fetcher,
                        url,
                        headers,
                    } => fetcher.fetch_into(&url, headers, &mut held.room).await,
                    RequestKind::Socket { fetcher, endpoint } => {
                        // What the conversation holds counts against the budget as it
                        // comes, like a body (and is bounded by the module's max_bytes).
                        fetcher.fetch_from(&endpoint, &mut held.room).await
                    }
                }
            })
            .await;
            let Fetched {
                body, detail: d, ..
            } = match fetched {
                Ok(f) => f?,
                Err(_) if held.room.was_waiting() => {
                    return Err(Failure::no_slot(format!(
                        "no room for the document within the probe's {budget:?} \
                         (--probe.max-body-bytes-in-flight)"
                    )))
                }
                Err(_) => return Err(timed_out("no document")),
            };
            detail = d;
            let rows = self
                .parsers
                .extract(body, deadline, held)
                .await
                .map_err(|e| match e {
                    ParseError::Worker(WorkerError::Extract(ExtractError::SoapFault(m))) => {
                        Failure {
                            reason: SourceErrorReason::SoapFault,
                            message: format!("SOAP Fault: {m}"),
                        }
                    }
                    ParseError::Worker(WorkerError::Extract(e)) => Failure {
                        reason: SourceErrorReason::Parse,
                        message: e.to_string(),
                    },
                    ParseError::Worker(WorkerError::Timeout(_)) => {
                        timed_out("the document was not parsed")
                    }
                    ParseError::NoTurn => Failure::no_slot(format!(
                        "another document of 1 MiB or more was being parsed all through the \
                         probe's {budget:?} (large documents are parsed one at a time)"
                    )),
                    ParseError::Worker(WorkerError::Busy) | ParseError::NoWorker => {
                        Failure::no_slot(format!(
                            "no parse worker of the module was free within the probe's {budget:?}"
                        ))
                    }
                })?;
            let families = Families::build(&self.metrics, &self.scratch);
            let mut pipeline = self
                .pipeline
                .with_families(&families)
                .ok_or_else(|| Failure {
                    reason: SourceErrorReason::Parse,
                    message: "the module's rules do not fit its metrics (a bug: please report it)"
                        .into(),
                })?;
            // As a page source does: the series the fresh families start with are the
            // updates' own, and those the document does not set are not answered.
            pipeline.adopt_existing(|metric| self.sole_fed.contains(metric));
            let outcome = pipeline.process_rows(rows);
            if outcome.matches == 0 {
                return Err(Failure {
                    reason: SourceErrorReason::NoMatch,
                    message: "no rule matched anything in the document".into(),
                });
            }
            pipeline.retire_absent();
            Ok((families, outcome.matches, outcome.conversion_errors))
        }
        .await;
        Outcome {
            url,
            detail,
            budget,
            duration: started.elapsed(),
            result,
        }
    }
}

/// The exposition of a probe: the module's metrics when it succeeded (when it failed, only its
/// state metrics' pre-declared series, all `unknown`), then its own.
fn render(outcome: &Outcome, module: &ProbeModule) -> Vec<u8> {
    let mut text = match &outcome.result {
        Ok((families, _, _)) => exposition::concat(families.render(), |_| true),
        Err(_) if module.known_states.is_empty() => Vec::new(),
        Err(_) => exposition::concat(
            Families::build(&module.known_states, &module.scratch).render(),
            |_| true,
        ),
    };
    let failed = outcome.result.as_ref().err().map(|f| f.reason);
    render_probe_result(&mut text, outcome.duration, failed);
    text
}

/// The `debug=true` answer: what the probe did, then the exposition it gives.
fn explain(module: &str, target: &str, outcome: &Outcome, metrics: &[u8]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "Module:   {module}");
    let _ = writeln!(t, "Target:   {target}");
    let _ = writeln!(t, "Request:  {}", outcome.url);
    let _ = writeln!(t, "Budget:   {:.3} s", outcome.budget.as_secs_f64());
    let _ = writeln!(t, "Took:     {:.3} s", outcome.duration.as_secs_f64());
    if !outcome.detail.is_empty() {
        let _ = writeln!(t, "Response: {}", outcome.detail);
    }
    match &outcome.result {
        Ok((_, matches, conversion_errors)) => {
            let _ = writeln!(t, "Result:   success ({matches} matches, {conversion_errors} values that did not convert)");
        }
        Err(f) => {
            let _ = writeln!(
                t,
                "Result:   failed, reason {}: {}",
                f.reason.as_str(),
                f.message
            );
        }
    }
    let _ = writeln!(t, "\nMetrics:\n{}", String::from_utf8_lossy(metrics));
    t
}

/// Why a document yielded no rows.
enum ParseError {
    /// The worker's answer.
    Worker(WorkerError),
    /// Another large document was being parsed until the deadline.
    NoTurn,
    /// No worker of the module was free until the deadline.
    NoWorker,
}

/// Document workers of one module: up to one per core, made on demand, each with the
/// module's extractors compiled. A worker whose document ran out of time is not reused until
/// it has finished it (its slot stays taken), so a pathological page cannot multiply threads;
/// nor does its probe's capacity (target slot, slot, the document's room) come back before.
struct ParserPool {
    name: String,
    rules: Vec<crate::config::RuleConfig>,
    idle: Arc<parking_lot::Mutex<Vec<DocumentWorker>>>,
    permits: Arc<Semaphore>,
}

impl ParserPool {
    fn new(name: &str, rules: Vec<crate::config::RuleConfig>) -> anyhow::Result<ParserPool> {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        let first = DocumentWorker::start(&format!("probe-{name}"), rules.clone())?;
        Ok(ParserPool {
            name: name.to_owned(),
            rules,
            idle: Arc::new(parking_lot::Mutex::new(vec![first])),
            permits: Arc::new(Semaphore::new(workers)),
        })
    }

    /// The rows of `text`, parsed in its turn (a large document waits for others) on a free
    /// worker; `held` is released once the worker is done with the document (later than the
    /// answer when the probe's time ran out first).
    async fn extract(
        &self,
        text: String,
        deadline: tokio::time::Instant,
        mut held: Held,
    ) -> Result<Vec<Vec<Row>>, ParseError> {
        if !held.turn_to_parse(text.len(), deadline).await {
            return Err(ParseError::NoTurn);
        }
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ParseError::NoWorker)?
            .map_err(|_| ParseError::NoWorker)?;
        let worker = match self.idle.lock().pop() {
            Some(w) => w,
            None => {
                let (name, rules) = (format!("probe-{}", self.name), self.rules.clone());
                tokio::task::block_in_place(|| DocumentWorker::start(&name, rules)).map_err(
                    |e| {
                        ParseError::Worker(WorkerError::Extract(ExtractError::Parse(format!(
                            "{e:#}"
                        ))))
                    },
                )?
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = worker.extract(text, left).await;
        if worker.is_busy() {
            // Abandoned mid-document: it comes back (and frees its slot) once done.
            let idle = self.idle.clone();
            tokio::spawn(async move {
                while worker.is_busy() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                idle.lock().push(worker);
                drop(held);
                drop(permit);
            });
        } else {
            self.idle.lock().push(worker);
            drop(held);
        }
        result.map_err(ParseError::Worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_scrape_timeout_minus_the_offset() {
        let (module, offset) = (Duration::from_secs(10), Duration::from_millis(500));
        let b = |h: Option<&str>| budget(module, h, offset);
        assert_eq!(b(None), module);
        assert_eq!(b(Some("4")), Duration::from_millis(3500));
        assert_eq!(b(Some(" 2.5 ")), Duration::from_secs(2));
        // A scrape timeout under twice the offset keeps half of itself.
        assert_eq!(b(Some("0.6")), Duration::from_millis(300));
        // Never longer than the module allows; nonsense is ignored.
        assert_eq!(b(Some("120")), module);
        for junk in ["", "-1", "0", "NaN", "inf", "soon"] {
            assert_eq!(b(Some(junk)), module, "{junk:?}");
        }
    }

    #[test]
    fn query_parameters_are_decoded() {
        let pairs = query_pairs("module=a&target=http%3A%2F%2Fh%3A1%2Fx%3Fy%3D1&targ%65t=b");
        assert_eq!(pairs[1], ("target".into(), "http://h:1/x?y=1".into()));
        // Names are decoded too, so a spelled-out repeat is still a repeat.
        assert_eq!(pairs[2], ("target".into(), "b".into()));
    }

    #[test]
    fn shown_targets_hide_the_secrets_of_the_url_they_make() {
        let shown = |template: &str, target: &str| {
            let url = template::substitute_target(&template::parse(template).unwrap(), target);
            shown_target(target, &reqwest::Url::parse(&url).unwrap())
        };
        assert_eq!(
            shown("$target", "http://user:pass@host/x?k=secret&flag"),
            "http://user:***@host/x?k=***&flag"
        );
        assert_eq!(
            shown("http://$target/status", "user:s%40cret@host:9"),
            "user:***@host:9"
        );
        assert_eq!(
            shown("http://$target", "host:9/x?token=t0k&page=2"),
            "host:9/x?token=***&page=***"
        );
        assert_eq!(shown("http://$target/status", "host:9"), "host:9");
    }

    #[test]
    fn templates_show_the_target_and_hide_query_values() {
        let t = template::parse("https://user:pw@$target/status?key=secret").unwrap();
        assert_eq!(
            shown_template(&t),
            "https://user:***@$target/status?key=***"
        );
        assert_eq!(
            shown_template(&template::parse("$target").unwrap()),
            "$target"
        );
    }
}
