//! Page sources: fetch a document on an interval (HTTP, command, status file, socket), run
//! every rule of the source on it, and keep the source's health.
//!
//! Each source is a task on the exporter's runtime; `/metrics` never waits for it. The first
//! fetch starts after a short jitter, later ones every `interval`, each bounded by its timeout.
//! A failed fetch sets `quarry_source_up` to 0 and counts its reason; the series the source fed
//! keep their last values (their age shows in `quarry_source_last_success_timestamp_seconds`).

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

use super::fetch::{
    CommandFetcher, FetchError, Fetcher, HttpFetcher, StatusFileFetcher, DEFAULT_INTERVAL,
};
use super::worker::{DocumentWorker, WorkerError};
use crate::config::{SourceConfig, SourceKind};
use crate::extract::ExtractError;
use crate::gate::Gate;
use crate::pipeline::Pipeline;
use crate::selfmetrics::{Gauge, IntCounter, IntGauge, SelfMetrics, SourceErrorReason};
use crate::status::{FetchStatus, SharedStatus};

/// One page source with its pipeline and health handles.
pub struct PageSource {
    name: String,
    /// The kind's YAML key (`http`, `command`, `status_file`).
    kind: &'static str,
    fetcher: Fetcher,
    interval: Duration,
    worker: DocumentWorker,
    pipeline: Pipeline,
    up: IntGauge,
    duration: Gauge,
    last_success: Gauge,
    errors: Vec<(SourceErrorReason, IntCounter)>,
    status: SharedStatus,
    last_error: Option<String>,
    /// Updates happen in sections of the checkpoint gate (a family may be fed by files too).
    gate: Arc<Gate>,
}

impl PageSource {
    /// Builds the fetcher of `config` (reading what it needs at start) around `pipeline`.
    pub fn new(
        config: &SourceConfig,
        base_dir: &Path,
        pipeline: Pipeline,
        self_metrics: &SelfMetrics,
        status: SharedStatus,
        gate: Arc<Gate>,
    ) -> anyhow::Result<PageSource> {
        let kind = config.kind()?;
        let (fetcher, interval) = match kind {
            SourceKind::Http(h) => (
                Fetcher::Http(Box::new(HttpFetcher::new(h, base_dir)?)),
                h.interval,
            ),
            SourceKind::Command(c) => (
                Fetcher::Command(CommandFetcher::new(c, base_dir)),
                c.interval,
            ),
            SourceKind::StatusFile(f) => (
                Fetcher::StatusFile(StatusFileFetcher::new(f, base_dir)),
                f.interval,
            ),
            SourceKind::Socket(s) => (
                Fetcher::Socket(Box::new(super::socket::SocketFetcher::new(s, base_dir)?)),
                s.interval,
            ),
            SourceKind::File(_) => {
                anyhow::bail!("source {:?} is not a page source", config.name)
            }
        };
        let name = config.name.as_str();
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.name = name.to_owned();
            s.kind = kind.key();
            s.reads_lines = kind.reads_lines();
            s.targets = vec![fetcher.target()];
        }
        let up = self_metrics.source_up.with_label_values(&[name]);
        up.set(0);
        Ok(PageSource {
            name: name.to_owned(),
            kind: kind.key(),
            interval: interval.unwrap_or(DEFAULT_INTERVAL),
            worker: DocumentWorker::start(name, config.rules.clone())?,
            fetcher,
            pipeline,
            up,
            duration: self_metrics.source_duration.with_label_values(&[name]),
            last_success: self_metrics.source_last_success.with_label_values(&[name]),
            errors: SourceErrorReason::ALL
                .iter()
                .map(|r| {
                    (
                        *r,
                        self_metrics
                            .source_errors
                            .with_label_values(&[name, r.as_str()]),
                    )
                })
                .collect(),
            status,
            last_error: None,
            gate,
        })
    }

    fn count(&self, reason: SourceErrorReason) {
        if let Some((_, c)) = self.errors.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }

    /// Fetches once and applies the document; updates health and the landing page status.
    pub async fn run_once(&mut self) {
        let started = Instant::now();
        let at = SystemTime::now();
        let timeout = self.fetcher.timeout();
        // The fetchers bound themselves; this bounds them all once more, whatever they wait on.
        let fetched = match tokio::time::timeout(timeout, self.fetcher.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(FetchError {
                reason: SourceErrorReason::Timeout,
                message: format!("no document within {timeout:?}"),
            }),
        };
        let mut fetched = fetched;
        let (bytes, content_type) = match &mut fetched {
            Ok(doc) => (Some(doc.body.len()), doc.content_type.take()),
            Err(_) => (None, None),
        };
        let (result, detail, matches) = match fetched {
            Err(e) => (Err(e), String::new(), 0),
            Ok(doc) => match self.worker.extract(doc.body, timeout).await {
                Err(e) => {
                    let (reason, message) = match e {
                        WorkerError::Extract(ExtractError::SoapFault(m)) => {
                            (SourceErrorReason::SoapFault, format!("SOAP Fault: {m}"))
                        }
                        WorkerError::Extract(e) => (SourceErrorReason::Parse, e.to_string()),
                        WorkerError::Timeout(t) => (
                            SourceErrorReason::Timeout,
                            format!("parsing the document took longer than {t:?}; it is abandoned"),
                        ),
                        WorkerError::Busy => (
                            SourceErrorReason::Timeout,
                            "the previous document is still being parsed".to_owned(),
                        ),
                    };
                    (Err(FetchError { reason, message }), doc.detail, 0)
                }
                Ok(rows) => {
                    let outcome = tokio::task::block_in_place(|| {
                        let _section = self.gate.section();
                        let outcome = self.pipeline.process_rows(rows);
                        if outcome.matches > 0 {
                            // What this document no longer has is gone.
                            self.pipeline.retire_absent();
                        }
                        outcome
                    });
                    if outcome.matches == 0 {
                        (
                            Err(FetchError {
                                reason: SourceErrorReason::NoMatch,
                                message: "no rule matched anything in the document".into(),
                            }),
                            doc.detail,
                            0,
                        )
                    } else {
                        if outcome.conversion_errors > 0 {
                            // Partial: the rest was applied, so the source is up.
                            self.count(SourceErrorReason::Conversion);
                        }
                        (Ok(()), doc.detail, outcome.matches)
                    }
                }
            },
        };
        let elapsed = started.elapsed();
        self.duration.set(elapsed.as_secs_f64());
        let error = match result {
            Ok(()) => {
                self.up.set(1);
                self.last_success.set(
                    at.duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                );
                if self.last_error.take().is_some() {
                    debug!(source = %self.name, "source recovered");
                }
                None
            }
            Err(e) => {
                self.up.set(0);
                self.count(e.reason);
                let message = format!("{}: {}", e.reason.as_str(), e.message);
                if self.last_error.as_deref() != Some(message.as_str()) {
                    warn!(source = %self.name, reason = e.reason.as_str(), "{}", e.message);
                }
                self.last_error = Some(message.clone());
                Some(message)
            }
        };
        let failed = error.is_some();
        let stats = self.pipeline.stats();
        {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            s.fetch = Some(FetchStatus {
                at,
                ok: error.is_none(),
                detail,
                bytes,
                content_type,
                duration: elapsed,
                error: error.clone(),
                matches,
            });
            s.last_error = error;
            s.rules = stats.rules;
            s.unmatched = stats.unmatched;
            s.unmatched_samples = stats.unmatched_samples;
            s.updated = Some(SystemTime::now());
        }
        if failed {
            // The source cannot be seen: its states say so. After its status says it failed,
            // so that the status board, which reads the states before the sources' health,
            // never shows a component unknown beside a source still up and without an error.
            let _section = self.gate.section();
            self.pipeline.mark_unknown();
        }
    }

    /// Fetches every `interval` until `stop` fires.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        // Spread sources over the first second so they do not all fetch at once.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.name.hash(&mut hasher);
        let spread = self.interval.min(Duration::from_secs(1)).as_millis().max(1) as u64;
        let jitter = Duration::from_millis(hasher.finish() % spread);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + jitter, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticks.tick() => {}
            }
            // A stop abandons a fetch in flight: dropping it kills a command's processes and
            // leaves a parse to its worker.
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.run_once() => {}
            }
        }
    }

    /// The pipeline (for `explain`'s traces).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// The last fetch, as the landing page shows it.
    pub fn last_fetch(&self) -> Option<FetchStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fetch
            .clone()
    }

    /// A description of what the source fetches (no secrets).
    pub fn target(&self) -> String {
        self.fetcher.target()
    }

    /// Why the last fetch failed (`reason: message`), or `None` after a success.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source's kind, as its YAML key (`http`, `command`, `status_file`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}
