//! The multi-target pattern: `GET /probe?module=NAME&target=T` runs the probe module `NAME` (an
//! `http:` page-source template whose URL or headers use `$target`) against `T` while
//! Prometheus waits, and answers with the module's metrics for that target plus
//! `quarry_probe_success`, `quarry_probe_duration_seconds` and
//! `quarry_probe_failure_reason{reason}`, as blackbox_exporter and json_exporter do.
//!
//! A probe keeps nothing: its metric families are made for the request and dropped with the
//! response, so replicas are interchangeable behind a Service. Its time is bounded by the
//! module's `timeout` and by what Prometheus allows (`X-Prometheus-Scrape-Timeout-Seconds`
//! minus `--probe.timeout-offset`), waiting for a slot, fetching and parsing included. At most
//! `--probe.max-concurrent` probes fetch at once; each module parses on a small pool of
//! document workers (one per core), so a slow target or a pathological page holds only its own
//! probe, never the others.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;

use crate::config::template::{self, Piece};
use crate::config::{Config, MetricConfig, SourceConfig};
use crate::exposition::{self, header, sample};
use crate::extract::{ExtractError, Row};
use crate::pipeline::Pipeline;
use crate::registry::Families;
use crate::selfmetrics::{IntCounter, IntGauge, SelfMetrics, SourceErrorReason};
use crate::source::fetch::{redacted, FetchError, Fetched, HttpFetcher, DEFAULT_TIMEOUT};
use crate::source::worker::{DocumentWorker, WorkerError};

/// Settings of the `/probe` endpoint (command-line flags).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Probes that may run at once over all modules (`--probe.max-concurrent`).
    pub max_concurrent: usize,
    /// Taken off Prometheus' scrape timeout, so the answer arrives in time
    /// (`--probe.timeout-offset`).
    pub timeout_offset: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            max_concurrent: 64,
            timeout_offset: Duration::from_millis(500),
        }
    }
}

/// The reasons a probe can fail, each exported by every probe as 0 or 1: the page-source
/// reasons that apply to an HTTP fetch (not a command's, not the partial `conversion`).
pub fn failure_reasons() -> impl Iterator<Item = SourceErrorReason> {
    SourceErrorReason::ALL.into_iter().filter(|r| {
        !matches!(
            r,
            SourceErrorReason::Spawn | SourceErrorReason::ExitCode | SourceErrorReason::Conversion
        )
    })
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
        ProbeResponse {
            status: 400,
            content_type: "text/plain; charset=utf-8",
            body: (message + "\n").into_bytes(),
        }
    }
}

/// Every probe module of a config, and the slots they share.
pub struct Probes {
    modules: BTreeMap<String, Arc<ProbeModule>>,
    slots: Arc<Semaphore>,
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
    url: Vec<Piece>,
    headers: Vec<(reqwest::header::HeaderName, Vec<Piece>)>,
    fetcher: HttpFetcher,
    timeout: Duration,
    parsers: Arc<ParserPool>,
    /// Self-metrics the per-probe families report into (their series counts mean nothing
    /// across probes, so they are not the exported ones).
    scratch: SelfMetrics,
    probes: IntCounter,
    errors: Vec<(SourceErrorReason, IntCounter)>,
    last_failure: parking_lot::Mutex<String>,
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
    /// The last failure: target, reason and message (URL secrets redacted).
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
    /// worker each (which compiles its extractors, so a broken one fails here).
    pub fn build(
        config: &Config,
        base_dir: &Path,
        self_metrics: &SelfMetrics,
        options: &ProbeOptions,
    ) -> anyhow::Result<Probes> {
        let mut modules = BTreeMap::new();
        for m in &config.modules {
            let module = ProbeModule::build(m, config, base_dir, self_metrics)
                .with_context(|| format!("module {:?}", m.name))?;
            modules.insert(m.name.clone(), Arc::new(module));
        }
        Ok(Probes {
            in_flight: (!modules.is_empty()).then(|| self_metrics.probes_in_flight()),
            modules,
            slots: Arc::new(Semaphore::new(options.max_concurrent.max(1))),
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
                let http = m.config.http.as_ref();
                ModuleSummary {
                    name: name.clone(),
                    fetches: format!(
                        "{} {}",
                        http.and_then(|h| h.method.as_deref()).unwrap_or("GET"),
                        shown_template(&m.url)
                    ),
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
            for r in failure_reasons() {
                self.self_metrics
                    .probe_errors
                    .remove_label_values(&[name, r.as_str()]);
            }
        }
    }

    /// Answers `/probe?{query}`; `scrape_timeout` is the `X-Prometheus-Scrape-Timeout-Seconds`
    /// header, if any.
    pub async fn probe(&self, query: Option<&str>, scrape_timeout: Option<&str>) -> ProbeResponse {
        let params = query_pairs(query.unwrap_or(""));
        let param = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if self.modules.is_empty() {
            return ProbeResponse::bad_request(
                "this config declares no probe modules (`modules:` in the config file)".into(),
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
        let request = match module.request(target) {
            Ok(r) => r,
            Err(message) => return ProbeResponse::bad_request(message),
        };
        let debug = matches!(param("debug"), Some("true" | "1"));
        let budget = budget(module.timeout, scrape_timeout, self.options.timeout_offset);
        let in_flight = InFlight::new(self.in_flight.clone());
        let outcome = module.run(request, budget, &self.slots).await;
        drop(in_flight);
        module.probes.inc();
        if let Err(f) = &outcome.result {
            if let Some((_, c)) = module.errors.iter().find(|(r, _)| *r == f.reason) {
                c.inc();
            }
            let mut text = format!("{target}: {}: {}", f.reason.as_str(), f.message);
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
        let metrics = render(&outcome);
        if debug {
            return ProbeResponse {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: explain(&module.config.name, target, &outcome, &metrics).into_bytes(),
            };
        }
        ProbeResponse {
            status: 200,
            content_type: crate::server::TEXT_CONTENT_TYPE,
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

/// The URL and headers of one probe.
struct ProbeRequest {
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
}

impl ProbeModule {
    fn build(
        m: &SourceConfig,
        config: &Config,
        base_dir: &Path,
        self_metrics: &SelfMetrics,
    ) -> anyhow::Result<ProbeModule> {
        let http = m
            .http
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("a probe module needs `http:`"))?;
        // The client carries what does not depend on the target; URL and headers are made
        // per probe.
        let mut fixed = http.clone();
        fixed.url = "http://probe.invalid/".into();
        fixed.headers.clear();
        let fetcher = HttpFetcher::new(&fixed, base_dir)?;
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
        let errors = failure_reasons()
            .map(|r| {
                (
                    r,
                    self_metrics
                        .probe_errors
                        .with_label_values(&[&m.name, r.as_str()]),
                )
            })
            .collect();
        Ok(ProbeModule {
            config: m.clone(),
            pipeline,
            metrics,
            url,
            headers,
            fetcher,
            timeout: http.timeout.unwrap_or(DEFAULT_TIMEOUT),
            parsers,
            scratch,
            probes: self_metrics.probes.with_label_values(&[&m.name]),
            errors,
            last_failure: parking_lot::Mutex::new(String::new()),
        })
    }

    /// The URL and headers for `target`, or why the target cannot be probed.
    fn request(&self, target: &str) -> Result<ProbeRequest, String> {
        if target.chars().any(char::is_control) {
            return Err("the target holds control characters".into());
        }
        let text = template::substitute_target(&self.url, target);
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
        for (name, value) in &self.headers {
            let value = template::substitute_target(value, target);
            let value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                format!("target {target:?} makes an invalid value for header {name}")
            })?;
            headers.insert(name.clone(), value);
        }
        Ok(ProbeRequest { url, headers })
    }

    /// Waits for a slot, fetches, parses and applies the rules, all within `budget`.
    async fn run(
        &self,
        request: ProbeRequest,
        budget: Duration,
        slots: &Arc<Semaphore>,
    ) -> Outcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + budget;
        let url = redacted(&request.url);
        let mut detail = String::new();
        let timed_out = |what: &str| Failure {
            reason: SourceErrorReason::Timeout,
            message: format!("{what} within the probe's {budget:?}"),
        };
        let result = async {
            let _slot = tokio::time::timeout_at(deadline, slots.acquire())
                .await
                .map_err(|_| timed_out("no probe slot was free (--probe.max-concurrent)"))?
                .map_err(|_| timed_out("no probe slot"))?;
            let Fetched {
                body, detail: d, ..
            } = tokio::time::timeout_at(
                deadline,
                self.fetcher.fetch_from(&request.url, request.headers),
            )
            .await
            .map_err(|_| timed_out("no document"))??;
            detail = d;
            let rows = self
                .parsers
                .extract(body, deadline)
                .await
                .map_err(|e| match e {
                    WorkerError::Extract(ExtractError::SoapFault(m)) => Failure {
                        reason: SourceErrorReason::SoapFault,
                        message: format!("SOAP Fault: {m}"),
                    },
                    WorkerError::Extract(e) => Failure {
                        reason: SourceErrorReason::Parse,
                        message: e.to_string(),
                    },
                    WorkerError::Timeout(_) | WorkerError::Busy => {
                        timed_out("the document was not parsed")
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
            let outcome = pipeline.process_rows(rows);
            if outcome.matches == 0 {
                return Err(Failure {
                    reason: SourceErrorReason::NoMatch,
                    message: "no rule matched anything in the document".into(),
                });
            }
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

/// The exposition of a probe: the module's metrics when it succeeded, then its own.
fn render(outcome: &Outcome) -> Vec<u8> {
    let mut text = match &outcome.result {
        Ok((families, _, _)) => exposition::concat(families.render(), |_| true),
        Err(_) => Vec::new(),
    };
    let failed = outcome.result.as_ref().err().map(|f| f.reason);
    header(
        &mut text,
        "quarry_probe_duration_seconds",
        "How long the probe took: waiting for a slot, fetching, parsing and applying the rules.",
        "gauge",
    );
    sample(
        &mut text,
        "quarry_probe_duration_seconds",
        "",
        &[],
        None,
        outcome.duration.as_secs_f64(),
    );
    header(
        &mut text,
        "quarry_probe_failure_reason",
        "Why the probe failed: 1 for the reason, 0 for the others (all 0 on success).",
        "gauge",
    );
    for r in failure_reasons() {
        let value = if failed == Some(r) { 1.0 } else { 0.0 };
        sample(
            &mut text,
            "quarry_probe_failure_reason",
            "",
            &[("reason", r.as_str().as_bytes())],
            None,
            value,
        );
    }
    header(
        &mut text,
        "quarry_probe_success",
        "Whether the probe fetched and parsed the target and a rule matched (1) or not (0).",
        "gauge",
    );
    sample(
        &mut text,
        "quarry_probe_success",
        "",
        &[],
        None,
        if failed.is_none() { 1.0 } else { 0.0 },
    );
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

/// Document workers of one module: up to one per core, made on demand, each with the
/// module's extractors compiled. A worker whose document ran out of time is not reused until
/// it has finished it (its slot stays taken), so a pathological page cannot multiply threads.
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

    async fn extract(
        &self,
        text: String,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Vec<Row>>, WorkerError> {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| WorkerError::Timeout(budget))?
            .map_err(|_| WorkerError::Busy)?;
        let worker = match self.idle.lock().pop() {
            Some(w) => w,
            None => {
                let (name, rules) = (format!("probe-{}", self.name), self.rules.clone());
                tokio::task::block_in_place(|| DocumentWorker::start(&name, rules))
                    .map_err(|e| WorkerError::Extract(ExtractError::Parse(format!("{e:#}"))))?
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
                drop(permit);
            });
        } else {
            self.idle.lock().push(worker);
        }
        result
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
    fn query_parameters_are_decoded_and_the_last_one_counts() {
        let pairs = query_pairs("module=a&target=http%3A%2F%2Fh%3A1%2Fx%3Fy%3D1&module=b");
        assert_eq!(pairs[1], ("target".into(), "http://h:1/x?y=1".into()));
        assert_eq!(pairs[2], ("module".into(), "b".into()));
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
