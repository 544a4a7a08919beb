//! The exporter's own metrics (`quarry_` prefix): what it read, matched, dropped and failed.
//!
//! All of them live here, so the README's table and the code have one place to agree on.
//! Handles are resolved once per file, rule or metric and kept by their owners; nothing on
//! the hot path looks a metric up by name. A handle is an atomic behind an `Arc`.
//!
//! The storage is this project's own, not the prometheus crate's `*Vec`: that one finds a
//! child by an unseparated 64-bit hash of its label values, so `{source="a",path="bc"}` and
//! `{source="ab",path="c"}` (or two crafted file names) would share one counter. Here children
//! are keyed by their full label values in a `BTreeMap`, which is also exposition order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exposition::{header, sample, Chunk};

/// Bounded reasons a rule's update can fail on a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleErrorReason {
    /// The field meant as the value did not parse as a number.
    ValueNotANumber,
    /// A counter was asked to go down (a negative value for `inc`/`add`).
    NegativeCounterIncrement,
    /// The text named no declared state (after `map`).
    UnknownState,
    /// The text matched no `map` key and there is no `default`.
    UnmappedValue,
    /// The field meant as the value (or state) selected nothing.
    MissingField,
    /// A second match in the same document set the same series; the first one was kept.
    DuplicateSeries,
}

impl RuleErrorReason {
    /// Every reason, so each rule can export all of them at 0 from the start.
    pub const ALL: [RuleErrorReason; 6] = [
        RuleErrorReason::ValueNotANumber,
        RuleErrorReason::NegativeCounterIncrement,
        RuleErrorReason::UnknownState,
        RuleErrorReason::UnmappedValue,
        RuleErrorReason::MissingField,
        RuleErrorReason::DuplicateSeries,
    ];

    /// Whether the failure is about reading a value (as opposed to a policy such as the
    /// duplicate rule or counters only going up).
    pub fn is_conversion(self) -> bool {
        matches!(
            self,
            RuleErrorReason::ValueNotANumber
                | RuleErrorReason::UnknownState
                | RuleErrorReason::UnmappedValue
                | RuleErrorReason::MissingField
        )
    }

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleErrorReason::ValueNotANumber => "value_not_a_number",
            RuleErrorReason::NegativeCounterIncrement => "negative_counter_increment",
            RuleErrorReason::UnknownState => "unknown_state",
            RuleErrorReason::UnmappedValue => "unmapped_value",
            RuleErrorReason::MissingField => "missing_field",
            RuleErrorReason::DuplicateSeries => "duplicate_series",
        }
    }
}

/// Bounded reasons a log record could not be read (it is skipped, never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorReason {
    /// A `json:` rule's record is not a JSON document.
    NotJson,
    /// A `logfmt:` rule's record has an unterminated quote.
    NotLogfmt,
    /// A line of a `format: cri` file is not `<time> <stream> <P|F> <text>`.
    NotCri,
    /// A line of a `format: docker` file is not Docker's json-file object.
    NotDockerJson,
    /// A multi-line or merged partial record grew past its cap: it was cut there.
    RecordTooLong,
    /// A container line on one stream more than a file may hold records for at once (CRI and
    /// Docker write two): taken as a complete line, not merged.
    TooManyStreams,
}

impl RecordErrorReason {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordErrorReason::NotJson => "not_json",
            RecordErrorReason::NotLogfmt => "not_logfmt",
            RecordErrorReason::NotCri => "not_cri",
            RecordErrorReason::NotDockerJson => "not_docker_json",
            RecordErrorReason::RecordTooLong => "record_too_long",
            RecordErrorReason::TooManyStreams => "too_many_streams",
        }
    }
}

/// Bounded reasons a page source's fetch or document failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorReason {
    /// The fetch (or command) took longer than its timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// No connection (refused, unreachable, reset).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The status code is not accepted.
    HttpStatus,
    /// The body (or output, or file) is larger than its cap.
    TooLarge,
    /// Reading the response, the file or the output failed.
    Read,
    /// The document does not parse as its extractors' format.
    Parse,
    /// A SOAP response carried a Fault.
    SoapFault,
    /// The command could not be started.
    Spawn,
    /// The command exited with a code that is not accepted.
    ExitCode,
    /// No rule matched anything in the document.
    NoMatch,
    /// Some values did not convert; the others were applied (`up` stays 1).
    Conversion,
    /// Probes only: the probe never got the capacity it needed (a slot over all targets, a
    /// slot of its target, room for its document, a parse worker) within its budget. The
    /// exporter's limit, not the target's failure: a distinct reason, so it is never taken
    /// for a target's timeout.
    NoSlot,
}

impl SourceErrorReason {
    /// Every reason a page source can have, exported at 0 from the start (probes add
    /// [`SourceErrorReason::PROBE_ONLY`]).
    pub const ALL: [SourceErrorReason; 13] = [
        SourceErrorReason::Timeout,
        SourceErrorReason::Dns,
        SourceErrorReason::Connect,
        SourceErrorReason::Tls,
        SourceErrorReason::HttpStatus,
        SourceErrorReason::TooLarge,
        SourceErrorReason::Read,
        SourceErrorReason::Parse,
        SourceErrorReason::SoapFault,
        SourceErrorReason::Spawn,
        SourceErrorReason::ExitCode,
        SourceErrorReason::NoMatch,
        SourceErrorReason::Conversion,
    ];

    /// Reasons only a probe can have: page sources fetch one document at a time each and
    /// share no capacity.
    pub const PROBE_ONLY: [SourceErrorReason; 1] = [SourceErrorReason::NoSlot];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceErrorReason::Timeout => "timeout",
            SourceErrorReason::Dns => "dns",
            SourceErrorReason::Connect => "connect",
            SourceErrorReason::Tls => "tls",
            SourceErrorReason::HttpStatus => "http_status",
            SourceErrorReason::TooLarge => "too_large",
            SourceErrorReason::Read => "read",
            SourceErrorReason::Parse => "parse",
            SourceErrorReason::SoapFault => "soap_fault",
            SourceErrorReason::Spawn => "spawn",
            SourceErrorReason::ExitCode => "exit_code",
            SourceErrorReason::NoMatch => "no_match",
            SourceErrorReason::Conversion => "conversion",
            SourceErrorReason::NoSlot => "no_slot",
        }
    }
}

/// A counter handle (whole numbers).
#[derive(Debug, Clone, Default)]
pub struct IntCounter(Arc<AtomicU64>);

impl IntCounter {
    /// Sets the count (for counters kept elsewhere and copied in before rendering).
    fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge handle (whole numbers).
#[derive(Debug, Clone, Default)]
pub struct IntGauge(Arc<AtomicI64>);

impl IntGauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Adds `d` (which may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
}

/// A gauge handle (floating point).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// What a handle type exposes to rendering.
pub trait Cell: Clone + Default {
    /// The `# TYPE` of families of this handle.
    const KIND: &'static str;
    /// The sample value.
    fn value(&self) -> f64;
}

impl Cell for IntCounter {
    const KIND: &'static str = "counter";
    fn value(&self) -> f64 {
        self.get() as f64
    }
}

impl Cell for IntGauge {
    const KIND: &'static str = "gauge";
    fn value(&self) -> f64 {
        self.get() as f64
    }
}

impl Cell for Gauge {
    const KIND: &'static str = "gauge";
    fn value(&self) -> f64 {
        self.get()
    }
}

/// A self-metric family: children keyed by their full label values.
pub struct Labeled<C: Cell> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    children: Mutex<BTreeMap<Box<[Box<str>]>, C>>,
}

impl<C: Cell> Labeled<C> {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Labeled {
            name,
            help,
            labels,
            children: Mutex::new(BTreeMap::new()),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, BTreeMap<Box<[Box<str>]>, C>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The child for `values` (one per label, in declaration order), created at 0.
    pub fn with_label_values(&self, values: &[&str]) -> C {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "{}: label count",
            self.name
        );
        let key: Box<[Box<str>]> = values.iter().map(|v| Box::from(*v)).collect();
        self.children().entry(key).or_default().clone()
    }

    /// Removes the child for `values`, if any (handles held elsewhere stop being exported).
    pub fn remove_label_values(&self, values: &[&str]) {
        let key: Box<[Box<str>]> = values.iter().map(|v| Box::from(*v)).collect();
        self.children().remove(&key);
    }

    fn render(&self, out: &mut Vec<Chunk>) {
        let children = self.children();
        if children.is_empty() {
            return;
        }
        let mut text = Vec::with_capacity(128 + children.len() * (self.name.len() + 48));
        header(&mut text, self.name, self.help, C::KIND);
        // Exposition order is label names alphabetically, then values in that order.
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&i| self.labels[i]);
        let mut rows: Vec<(Vec<&[u8]>, f64)> = children
            .iter()
            .map(|(k, c)| (order.iter().map(|&i| k[i].as_bytes()).collect(), c.value()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = order.iter().map(|&i| self.labels[i]).collect();
        let mut labels = Vec::with_capacity(names.len());
        for (values, v) in rows {
            labels.clear();
            labels.extend(names.iter().copied().zip(values));
            sample(&mut text, self.name, "", &labels, None, v);
        }
        out.push((self.name.to_owned(), text));
    }
}

/// Every self-metric family.
#[derive(Clone)]
pub struct SelfMetrics(Arc<Families>);

impl std::ops::Deref for SelfMetrics {
    type Target = Families;
    fn deref(&self) -> &Families {
        &self.0
    }
}

/// The self-metric families, by field.
pub struct Families {
    /// `quarry_build_info{version,revision,rustversion}`
    pub build_info: Labeled<Gauge>,
    /// `quarry_file_lines_total{source,path}`
    pub file_lines: Labeled<IntCounter>,
    /// `quarry_file_bytes_total{source,path}`
    pub file_bytes: Labeled<IntCounter>,
    /// `quarry_file_rotations_total{source,path}`
    pub file_rotations: Labeled<IntCounter>,
    /// `quarry_file_truncations_total{source,path}`
    pub file_truncations: Labeled<IntCounter>,
    /// `quarry_file_read_errors_total{source,path}`
    pub file_read_errors: Labeled<IntCounter>,
    /// `quarry_file_lines_too_long_total{source,path}`
    pub file_lines_too_long: Labeled<IntCounter>,
    /// `quarry_file_invalid_utf8_lines_total{source,path}`
    pub file_invalid_utf8: Labeled<IntCounter>,
    /// `quarry_file_lag_bytes{source,path}`
    pub file_lag: Labeled<IntGauge>,
    /// `quarry_source_files{source}`
    pub source_files: Labeled<IntGauge>,
    /// `quarry_source_files_in_turns{source}`
    pub source_files_in_turns: Labeled<IntGauge>,
    /// `quarry_source_file_events_total{source,event}`
    pub source_file_events: Labeled<IntCounter>,
    /// `quarry_source_listing_errors_total{source,reason}`
    pub source_listing_errors: Labeled<IntCounter>,
    /// `quarry_source_paths_not_read{source,reason}`
    pub source_paths_not_read: Labeled<IntGauge>,
    /// `quarry_source_unmatched_lines_total{source}`
    pub source_unmatched: Labeled<IntCounter>,
    /// `quarry_source_record_errors_total{source,reason}`
    pub source_record_errors: Labeled<IntCounter>,
    /// `quarry_rule_matches_total{source,rule}`
    pub rule_matches: Labeled<IntCounter>,
    /// `quarry_rule_errors_total{source,rule,reason}`
    pub rule_errors: Labeled<IntCounter>,
    /// `quarry_series{metric}`
    pub series: Labeled<IntGauge>,
    /// `quarry_series_dropped_total{metric}`
    pub series_dropped: Labeled<IntCounter>,
    /// `quarry_label_values_truncated_total{metric}`
    pub label_values_truncated: Labeled<IntCounter>,
    /// `quarry_source_up{source}`
    pub source_up: Labeled<IntGauge>,
    /// `quarry_source_panics_total{source}`
    pub source_panics: Labeled<IntCounter>,
    /// `quarry_source_duration_seconds{source}`
    pub source_duration: Labeled<Gauge>,
    /// `quarry_source_last_success_timestamp_seconds{source}`
    pub source_last_success: Labeled<Gauge>,
    /// `quarry_source_errors_total{source,reason}`
    pub source_errors: Labeled<IntCounter>,
    /// `quarry_probes_total{module}`
    pub probes: Labeled<IntCounter>,
    /// `quarry_probe_errors_total{module,reason}`
    pub probe_errors: Labeled<IntCounter>,
    probes_in_flight_family: Labeled<IntGauge>,
    probe_slots: Labeled<IntGauge>,
    probe_slots_in_use: Labeled<IntGauge>,
    probe_body_budget: Labeled<IntGauge>,
    probe_body_in_flight: Labeled<IntGauge>,
    /// `quarry_config_last_reload_successful`
    pub config_last_reload_successful: Gauge,
    /// `quarry_config_last_reload_success_timestamp_seconds`
    pub config_last_reload_success_timestamp: Gauge,
    config_reload: Labeled<Gauge>,
    config_reload_timestamp: Labeled<Gauge>,
    log_dropped_family: Labeled<IntCounter>,
    log_dropped: IntCounter,
    checkpoint_writes: Labeled<IntCounter>,
    checkpoint_errors: Labeled<IntCounter>,
    checkpoint_bytes: Labeled<IntGauge>,
    checkpoint_duration: Labeled<Gauge>,
    checkpoint_last_success: Labeled<Gauge>,
    checkpoint_last_write_successful: Labeled<Gauge>,
    checkpoint_restore_errors: Labeled<IntCounter>,
}

/// Handles of the probes' capacity gauges.
#[derive(Clone)]
pub struct ProbeCapacityMetrics {
    /// `quarry_probe_slots`
    pub slots: IntGauge,
    /// `quarry_probe_slots_in_use`
    pub slots_in_use: IntGauge,
    /// `quarry_probe_body_budget_bytes`
    pub body_budget: IntGauge,
    /// `quarry_probe_body_bytes_in_flight`
    pub body_in_flight: IntGauge,
}

/// Handles of the checkpoint's self-metrics.
#[derive(Clone)]
pub struct CheckpointMetrics {
    pub writes: IntCounter,
    pub errors: IntCounter,
    pub bytes: IntGauge,
    pub duration: Gauge,
    pub last_success: Gauge,
    /// `quarry_checkpoint_last_write_successful`
    pub last_write_successful: Gauge,
    /// `quarry_checkpoint_restore_errors_total{reason="unreadable"}`
    pub restore_unreadable: IntCounter,
    /// `quarry_checkpoint_restore_errors_total{reason="refused"}`
    pub restore_refused: IntCounter,
}

const SP: &[&str] = &["source", "path"];
const S: &[&str] = &["source"];
const M: &[&str] = &["metric"];

impl SelfMetrics {
    /// Creates every self-metric, including `quarry_build_info`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> SelfMetrics {
        let build_info: Labeled<Gauge> = Labeled::new(
            "quarry_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustversion from which quarry_exporter was built.",
            &["version", "revision", "rustversion"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("QUARRY_REVISION"),
                env!("QUARRY_RUSTC_VERSION"),
            ])
            .set(1.0);
        let log_dropped_family = Labeled::new("quarry_log_messages_dropped_total", "Log messages that could not be written to stderr (full disk, closed pipe) and were dropped.", &[]);
        let config_reload = Labeled::new(
            "quarry_config_last_reload_successful",
            "Whether the last configuration load succeeded (1) or not (0).",
            &[],
        );
        let config_reload_timestamp = Labeled::new(
            "quarry_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration load.",
            &[],
        );
        let probes_in_flight_family = Labeled::new(
            "quarry_probes_in_flight",
            "Probes (/probe requests) running now, waiting for a slot included.",
            &[],
        );
        SelfMetrics(Arc::new(Families {
            build_info,
            probes: Labeled::new("quarry_probes_total", "Probes run (/probe requests with a valid module and target), by module.", &["module"]),
            probe_errors: Labeled::new("quarry_probe_errors_total", "Probes that failed, by module and reason.", &["module", "reason"]),
            probes_in_flight_family,
            probe_slots: Labeled::new("quarry_probe_slots", "Probes that may fetch and parse at once over all targets (--probe.max-concurrent).", &[]),
            probe_slots_in_use: Labeled::new("quarry_probe_slots_in_use", "Probe slots held now (a probe holds one from its fetch until its document is parsed or abandoned).", &[]),
            probe_body_budget: Labeled::new("quarry_probe_body_budget_bytes", "Bytes of probed documents that may be held at once over all probes (--probe.max-body-bytes-in-flight).", &[]),
            probe_body_in_flight: Labeled::new("quarry_probe_body_bytes_in_flight", "Bytes of probed documents held now: reserved as a body arrives, released once it is parsed.", &[]),
            file_lines: Labeled::new("quarry_file_lines_total", "Lines read from a file, including skipped over-long lines.", SP),
            file_bytes: Labeled::new("quarry_file_bytes_total", "Bytes read from a file.", SP),
            file_rotations: Labeled::new("quarry_file_rotations_total", "Times the path was found to be a new file (rename rotation, delete and recreate).", SP),
            file_truncations: Labeled::new("quarry_file_truncations_total", "Times a file was found shorter than the read offset (copytruncate) and was read again from its start.", SP),
            file_read_errors: Labeled::new("quarry_file_read_errors_total", "Errors opening, checking or reading a file.", SP),
            file_lines_too_long: Labeled::new("quarry_file_lines_too_long_total", "Lines longer than max_line_length, skipped.", SP),
            file_invalid_utf8: Labeled::new("quarry_file_invalid_utf8_lines_total", "Lines that were not valid UTF-8; invalid bytes were replaced by U+FFFD before matching.", SP),
            file_lag: Labeled::new("quarry_file_lag_bytes", "Bytes in the file after the read offset at the last check.", SP),
            source_files: Labeled::new("quarry_source_files", "Files a source is reading now.", S),
            source_files_in_turns: Labeled::new("quarry_source_files_in_turns", "Files a source reads without holding their descriptor (opened, read and closed each pass) because the open-file budget is used up.", S),
            source_file_events: Labeled::new("quarry_source_file_events_total", "What happened to a source's files: new, rotated, renamed, resumed, recognised, shadowed, tail_recovered, truncated, draining, closed, replaced_while_draining, lost, skipped_compressed.", &["source", "event"]),
            source_listing_errors: Labeled::new("quarry_source_listing_errors_total", "Scans in which a directory of a source's globs could not be listed, by reason; its files keep their state.", &["source", "reason"]),
            source_paths_not_read: Labeled::new("quarry_source_paths_not_read", "Paths a file source's globs match that it does not read, by reason: directory, fifo, socket, device, special_filesystem, other.", &["source", "reason"]),
            source_unmatched: Labeled::new("quarry_source_unmatched_lines_total", "Records of a source that no rule matched.", S),
            source_record_errors: Labeled::new("quarry_source_record_errors_total", "Log records that could not be read as their format says, by reason: not_json, not_logfmt, not_cri, not_docker_json (skipped), record_too_long (cut at the cap).", &["source", "reason"]),
            rule_matches: Labeled::new("quarry_rule_matches_total", "Matches of a rule.", &["source", "rule"]),
            rule_errors: Labeled::new("quarry_rule_errors_total", "Matches of a rule whose update failed, by reason.", &["source", "rule", "reason"]),
            series: Labeled::new("quarry_series", "Label sets a metric holds.", M),
            series_dropped: Labeled::new("quarry_series_dropped_total", "Updates dropped because their metric already holds max_series label sets.", M),
            label_values_truncated: Labeled::new("quarry_label_values_truncated_total", "Label values cut to the metric's max_label_value_length.", M),
            source_up: Labeled::new("quarry_source_up", "Whether the last fetch of a page source succeeded and yielded matches (1) or not (0).", S),
            source_panics: Labeled::new("quarry_source_panics_total", "Panics (bugs) contained in a file source: a record skipped, or the source started again from its last committed state.", S),
            source_duration: Labeled::new("quarry_source_duration_seconds", "How long the last fetch and extraction of a page source took.", S),
            source_last_success: Labeled::new("quarry_source_last_success_timestamp_seconds", "When a page source last succeeded (Unix time).", S),
            source_errors: Labeled::new("quarry_source_errors_total", "Failed fetches or documents of a page source, by reason.", &["source", "reason"]),
            config_last_reload_successful: config_reload.with_label_values(&[]),
            config_last_reload_success_timestamp: config_reload_timestamp.with_label_values(&[]),
            config_reload,
            config_reload_timestamp,
            log_dropped: log_dropped_family.with_label_values(&[]),
            log_dropped_family,
            checkpoint_writes: Labeled::new("quarry_checkpoint_writes_total", "Checkpoints written to --storage.path.", &[]),
            checkpoint_errors: Labeled::new("quarry_checkpoint_errors_total", "Checkpoints that could not be taken or written (see the log).", &[]),
            checkpoint_bytes: Labeled::new("quarry_checkpoint_bytes", "Size of the last checkpoint written.", &[]),
            checkpoint_duration: Labeled::new("quarry_checkpoint_duration_seconds", "How long writing the last checkpoint took (including fsync).", &[]),
            checkpoint_last_success: Labeled::new("quarry_checkpoint_last_success_timestamp_seconds", "When the last checkpoint written was taken (Unix time).", &[]),
            checkpoint_last_write_successful: Labeled::new("quarry_checkpoint_last_write_successful", "Whether the last checkpoint was written (1), or could not be (0: /metrics then shows values the disk does not hold, and a restart would go back to the last checkpoint written).", &[]),
            checkpoint_restore_errors: Labeled::new("quarry_checkpoint_restore_errors_total", "Checkpoints not restored at start: unreadable (corrupt, truncated, foreign, not a regular file) or refused (values or file offsets that cannot be right); the exporter started afresh.", &["reason"]),
        }))
    }

    /// Handles of the checkpoint metrics (exported from the first call: only with storage).
    pub fn checkpoint(&self) -> CheckpointMetrics {
        CheckpointMetrics {
            writes: self.checkpoint_writes.with_label_values(&[]),
            errors: self.checkpoint_errors.with_label_values(&[]),
            bytes: self.checkpoint_bytes.with_label_values(&[]),
            duration: self.checkpoint_duration.with_label_values(&[]),
            last_success: self.checkpoint_last_success.with_label_values(&[]),
            last_write_successful: self.checkpoint_last_write_successful.with_label_values(&[]),
            restore_unreadable: self
                .checkpoint_restore_errors
                .with_label_values(&["unreadable"]),
            restore_refused: self
                .checkpoint_restore_errors
                .with_label_values(&["refused"]),
        }
    }

    /// `quarry_probes_in_flight` (exported from the first call: only with probe modules).
    pub fn probes_in_flight(&self) -> IntGauge {
        self.probes_in_flight_family.with_label_values(&[])
    }

    /// The probes' capacity gauges (exported from the first call: only with probe modules).
    pub fn probe_capacity(&self) -> ProbeCapacityMetrics {
        ProbeCapacityMetrics {
            slots: self.probe_slots.with_label_values(&[]),
            slots_in_use: self.probe_slots_in_use.with_label_values(&[]),
            body_budget: self.probe_body_budget.with_label_values(&[]),
            body_in_flight: self.probe_body_in_flight.with_label_values(&[]),
        }
    }

    /// Appends the exposition of every self-metric family that has a series.
    pub fn render(&self, out: &mut Vec<Chunk>) {
        let f = &self.0;
        f.log_dropped.set(crate::logging::dropped());
        f.build_info.render(out);
        for c in [
            &f.file_lines,
            &f.file_bytes,
            &f.file_rotations,
            &f.file_truncations,
            &f.file_read_errors,
            &f.file_lines_too_long,
            &f.file_invalid_utf8,
            &f.source_unmatched,
            &f.source_record_errors,
            &f.rule_matches,
            &f.rule_errors,
            &f.series_dropped,
            &f.label_values_truncated,
            &f.source_errors,
            &f.probes,
            &f.probe_errors,
            &f.log_dropped_family,
            &f.source_file_events,
            &f.source_listing_errors,
            &f.checkpoint_writes,
            &f.checkpoint_errors,
            &f.checkpoint_restore_errors,
            &f.source_panics,
        ] {
            c.render(out);
        }
        for g in [
            &f.file_lag,
            &f.source_files,
            &f.source_files_in_turns,
            &f.source_paths_not_read,
            &f.series,
            &f.source_up,
            &f.checkpoint_bytes,
            &f.probes_in_flight_family,
            &f.probe_slots,
            &f.probe_slots_in_use,
            &f.probe_body_budget,
            &f.probe_body_in_flight,
        ] {
            g.render(out);
        }
        for g in [
            &f.source_duration,
            &f.source_last_success,
            &f.config_reload,
            &f.config_reload_timestamp,
            &f.checkpoint_duration,
            &f.checkpoint_last_success,
            &f.checkpoint_last_write_successful,
        ] {
            g.render(out);
        }
    }
}

/// Per-file handles, resolved once when the file is first seen.
#[derive(Clone)]
pub struct FileCounters {
    pub lines: IntCounter,
    pub bytes: IntCounter,
    pub rotations: IntCounter,
    pub truncations: IntCounter,
    pub read_errors: IntCounter,
    pub too_long: IntCounter,
    pub invalid_utf8: IntCounter,
    pub lag: IntGauge,
}

impl SelfMetrics {
    /// Handles for one file of one source.
    pub fn file_counters(&self, source: &str, path: &str) -> FileCounters {
        let l = &[source, path];
        FileCounters {
            lines: self.file_lines.with_label_values(l),
            bytes: self.file_bytes.with_label_values(l),
            rotations: self.file_rotations.with_label_values(l),
            truncations: self.file_truncations.with_label_values(l),
            read_errors: self.file_read_errors.with_label_values(l),
            too_long: self.file_lines_too_long.with_label_values(l),
            invalid_utf8: self.file_invalid_utf8.with_label_values(l),
            lag: self.file_lag.with_label_values(l),
        }
    }

    /// Removes a file's series once no file at that path is read any more.
    pub fn forget_file(&self, source: &str, path: &str) {
        let l = &[source, path];
        for v in [
            &self.file_lines,
            &self.file_bytes,
            &self.file_rotations,
            &self.file_truncations,
            &self.file_read_errors,
            &self.file_lines_too_long,
            &self.file_invalid_utf8,
        ] {
            v.remove_label_values(l);
        }
        self.file_lag.remove_label_values(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Self-metrics are keyed by whole label values: a source and a path that concatenate
    /// alike are two series.
    #[test]
    fn self_metric_children_are_keyed_by_full_values() {
        let m = SelfMetrics::new();
        m.file_lines.with_label_values(&["a", "bc"]).inc();
        m.file_lines.with_label_values(&["ab", "c"]).inc_by(2);
        assert_eq!(m.file_lines.with_label_values(&["a", "bc"]).get(), 1);
        let mut out = Vec::new();
        m.file_lines.render(&mut out);
        let text = String::from_utf8(out.remove(0).1).unwrap();
        assert!(text.ends_with(
            "quarry_file_lines_total{path=\"bc\",source=\"a\"} 1\nquarry_file_lines_total{path=\"c\",source=\"ab\"} 2\n"
        ), "{text}");
    }
}
