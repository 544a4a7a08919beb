//! The exporter's own metrics (`quarry_` prefix): what it read, matched, dropped and failed.
//!
//! All of them are declared here, once, in the `self_metrics!` list: the families `/metrics`
//! shows (each a field of [`Families`], all rendered by construction) and the three a `/probe`
//! answer ends with (written by [`render_probe_result`]). [`DECLARED`] lists them all, so the
//! README's table, the dashboards and the alerts have one place to agree with (a test holds
//! them to it).
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
    /// Socket sources: the peer closed the connection before a reply's end (its terminator,
    /// its length, its prompt), or before a request could be sent.
    ClosedEarly,
    /// Socket sources: a reply did not say what its step expects (`expect:`), or did not start
    /// with its length header (Redis' `-NOAUTH` instead of `$<n>`): the peer answered, but
    /// not what the conversation needs.
    UnexpectedReply,
    /// Probes only: the probe never got the capacity it needed (a slot over all targets, a
    /// slot of its target, room for its document, a parse worker) within its budget. The
    /// exporter's limit, not the target's failure: a distinct reason, so it is never taken
    /// for a target's timeout.
    NoSlot,
}

impl SourceErrorReason {
    /// Every reason a page source can have, exported at 0 from the start (probes add
    /// [`SourceErrorReason::PROBE_ONLY`]).
    pub const ALL: [SourceErrorReason; 15] = [
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
        SourceErrorReason::ClosedEarly,
        SourceErrorReason::UnexpectedReply,
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
            SourceErrorReason::ClosedEarly => "closed_early",
            SourceErrorReason::UnexpectedReply => "unexpected_reply",
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

/// Where a self-metric is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On `/metrics` (and `one-shot --self-metrics`), from [`SelfMetrics::render`].
    Exporter,
    /// In each `/probe` answer, from [`render_probe_result`].
    Probe,
}

/// One self-metric as the exposition shows it, apart from its values.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The family name (`quarry_…`).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The `# TYPE`: `counter` or `gauge`.
    pub kind: &'static str,
    /// Label names, in the order handles are asked for them.
    pub labels: &'static [&'static str],
    /// Where it is exported.
    pub scope: Scope,
}

const SP: &[&str] = &["source", "path"];
const S: &[&str] = &["source"];
const M: &[&str] = &["metric"];
const NONE: &[&str] = &[];

/// Declares every self-metric once. The exporter's families become fields of [`Families`]
/// (made by `Families::new`, all rendered by `Families::render_all`: a family cannot be declared
/// and left out of `/metrics`); the probe's become [`Declaration`] constants, which
/// [`render_probe_result`] writes (a unit test holds it to every one of them). Both are listed,
/// in declaration order, in [`DECLARED`].
macro_rules! self_metrics {
    (
        exporter {
            $( $(#[$doc:meta])* $vis:vis $field:ident: $cell:ty = $name:literal, $labels:expr, $help:literal; )*
        }
        probe {
            $( $(#[$pdoc:meta])* $constant:ident: $pkind:literal = $pname:literal, $plabels:expr, $phelp:literal; )*
        }
    ) => {
        /// The self-metric families exported on `/metrics`, by field.
        pub struct Families {
            $( $(#[$doc])* $vis $field: Labeled<$cell>, )*
        }

        impl Families {
            fn new() -> Families {
                Families {
                    $( $field: Labeled::new($name, $help, $labels), )*
                }
            }

            /// Appends every family that has a series: all of them, by construction.
            fn render_all(&self, out: &mut Vec<Chunk>) {
                $( self.$field.render(out); )*
            }

            /// Gives every family a series (label values `x`), so that all are rendered.
            #[cfg(test)]
            fn give_every_family_a_series(&self) {
                $( self.$field.with_label_values(&vec!["x"; self.$field.labels.len()]); )*
            }
        }

        $( $(#[$pdoc])* pub const $constant: Declaration = Declaration {
            name: $pname,
            help: $phelp,
            kind: $pkind,
            labels: $plabels,
            scope: Scope::Probe,
        }; )*

        /// Every self-metric the exporter has, on `/metrics` and in `/probe` answers.
        pub const DECLARED: &[Declaration] = &[
            $( Declaration {
                name: $name,
                help: $help,
                kind: <$cell as Cell>::KIND,
                labels: $labels,
                scope: Scope::Exporter,
            }, )*
            $( $constant, )*
        ];
    };
}

self_metrics! {
    exporter {
        /// `quarry_build_info{version,revision,rustversion}`
        pub build_info: Gauge = "quarry_build_info", &["version", "revision", "rustversion"],
            "A metric with a constant '1' value labeled by version, revision and rustversion from which quarry_exporter was built.";
        /// `quarry_file_lines_total{source,path}`
        pub file_lines: IntCounter = "quarry_file_lines_total", SP,
            "Lines read from a file, including skipped over-long lines.";
        /// `quarry_file_bytes_total{source,path}`
        pub file_bytes: IntCounter = "quarry_file_bytes_total", SP, "Bytes read from a file.";
        /// `quarry_file_rotations_total{source,path}`
        pub file_rotations: IntCounter = "quarry_file_rotations_total", SP,
            "Times the path was found to be a new file (rename rotation, delete and recreate).";
        /// `quarry_file_truncations_total{source,path}`
        pub file_truncations: IntCounter = "quarry_file_truncations_total", SP,
            "Times a file was found shorter than the read offset (copytruncate) and was read again from its start.";
        /// `quarry_file_read_errors_total{source,path}`
        pub file_read_errors: IntCounter = "quarry_file_read_errors_total", SP,
            "Errors opening, checking or reading a file.";
        /// `quarry_file_lines_too_long_total{source,path}`
        pub file_lines_too_long: IntCounter = "quarry_file_lines_too_long_total", SP,
            "Lines longer than max_line_length, skipped.";
        /// `quarry_file_invalid_utf8_lines_total{source,path}`
        pub file_invalid_utf8: IntCounter = "quarry_file_invalid_utf8_lines_total", SP,
            "Lines that were not valid UTF-8; invalid bytes were replaced by U+FFFD before matching.";
        /// `quarry_file_lag_bytes{source,path}`
        pub file_lag: IntGauge = "quarry_file_lag_bytes", SP,
            "Bytes in the file after the read offset at the last check.";
        /// `quarry_source_files{source}`
        pub source_files: IntGauge = "quarry_source_files", S, "Files a source is reading now.";
        /// `quarry_source_files_in_turns{source}`
        pub source_files_in_turns: IntGauge = "quarry_source_files_in_turns", S,
            "Files a source reads without holding their descriptor (opened, read and closed each pass) because the open-file budget is used up.";
        /// `quarry_source_file_events_total{source,event}`
        pub source_file_events: IntCounter = "quarry_source_file_events_total", &["source", "event"],
            "What happened to a source's files: new, rotated, renamed, resumed, recognised, shadowed, tail_recovered, truncated, draining, closed, replaced_while_draining, lost, skipped_compressed.";
        /// `quarry_source_listing_errors_total{source,reason}`
        pub source_listing_errors: IntCounter = "quarry_source_listing_errors_total", &["source", "reason"],
            "Scans in which a directory of a source's globs could not be listed, by reason; its files keep their state.";
        /// `quarry_source_paths_not_read{source,reason}`
        pub source_paths_not_read: IntGauge = "quarry_source_paths_not_read", &["source", "reason"],
            "Paths a file source's globs match that it does not read, by reason: directory, fifo, socket, device, special_filesystem, other.";
        /// `quarry_source_unmatched_lines_total{source}`
        pub source_unmatched: IntCounter = "quarry_source_unmatched_lines_total", S,
            "Records of a source that no rule matched.";
        /// `quarry_source_record_errors_total{source,reason}`
        pub source_record_errors: IntCounter = "quarry_source_record_errors_total", &["source", "reason"],
            "Log records that could not be read as their format says, by reason: not_json, not_logfmt, not_cri, not_docker_json (skipped), record_too_long (cut at the cap).";
        /// `quarry_rule_matches_total{source,rule}`
        pub rule_matches: IntCounter = "quarry_rule_matches_total", &["source", "rule"],
            "Matches of a rule.";
        /// `quarry_rule_errors_total{source,rule,reason}`
        pub rule_errors: IntCounter = "quarry_rule_errors_total", &["source", "rule", "reason"],
            "Matches of a rule whose update failed, by reason.";
        /// `quarry_series{metric}`
        pub series: IntGauge = "quarry_series", M, "Label sets a metric holds.";
        /// `quarry_series_dropped_total{metric}`
        pub series_dropped: IntCounter = "quarry_series_dropped_total", M,
            "Updates dropped because their metric already holds max_series label sets.";
        /// `quarry_label_values_truncated_total{metric}`
        pub label_values_truncated: IntCounter = "quarry_label_values_truncated_total", M,
            "Label values cut to the metric's max_label_value_length.";
        /// `quarry_source_up{source}`
        pub source_up: IntGauge = "quarry_source_up", S,
            "Whether the last fetch of a page source succeeded and yielded matches (1) or not (0).";
        /// `quarry_source_panics_total{source}`
        pub source_panics: IntCounter = "quarry_source_panics_total", S,
            "Panics (bugs) contained in a file source: a record skipped, or the source started again from its last committed state.";
        /// `quarry_source_stalls_total{source}`
        pub source_stalls: IntCounter = "quarry_source_stalls_total", S,
            "Times a file source's passes all said there was more to read while reading nothing, 1,000 in a row (a bug, contained: the source then waits for its next wake or poll).";
        /// `quarry_source_duration_seconds{source}`
        pub source_duration: Gauge = "quarry_source_duration_seconds", S,
            "How long the last fetch and extraction of a page source took.";
        /// `quarry_source_last_success_timestamp_seconds{source}`
        pub source_last_success: Gauge = "quarry_source_last_success_timestamp_seconds", S,
            "When a page source last succeeded (Unix time).";
        /// `quarry_source_errors_total{source,reason}`
        pub source_errors: IntCounter = "quarry_source_errors_total", &["source", "reason"],
            "Failed fetches or documents of a page source, by reason.";
        /// `quarry_probes_total{module}`
        pub probes: IntCounter = "quarry_probes_total", &["module"],
            "Probes run (/probe requests with a valid module and target), by module.";
        /// `quarry_probe_errors_total{module,reason}`
        pub probe_errors: IntCounter = "quarry_probe_errors_total", &["module", "reason"],
            "Probes that failed, by module and reason.";
        probes_in_flight_family: IntGauge = "quarry_probes_in_flight", NONE,
            "Probes (/probe requests) running now, waiting for a slot included.";
        probe_slots: IntGauge = "quarry_probe_slots", NONE,
            "Probes that may fetch and parse at once over all targets (--probe.max-concurrent).";
        probe_slots_in_use: IntGauge = "quarry_probe_slots_in_use", NONE,
            "Probe slots held now (a probe holds one from its fetch until its document is parsed or abandoned).";
        probe_body_budget: IntGauge = "quarry_probe_body_budget_bytes", NONE,
            "Bytes of probed documents that may be held at once over all probes (--probe.max-body-bytes-in-flight).";
        probe_body_in_flight: IntGauge = "quarry_probe_body_bytes_in_flight", NONE,
            "Bytes of probed documents held now: reserved as a body arrives, released once it is parsed.";
        config_reload: Gauge = "quarry_config_last_reload_successful", NONE,
            "Whether the last configuration load succeeded (1) or not (0).";
        config_reload_timestamp: Gauge = "quarry_config_last_reload_success_timestamp_seconds", NONE,
            "Timestamp of the last successful configuration load.";
        log_dropped_family: IntCounter = "quarry_log_messages_dropped_total", NONE,
            "Log messages that could not be written to stderr (full disk, closed pipe) and were dropped.";
        checkpoint_writes: IntCounter = "quarry_checkpoint_writes_total", NONE,
            "Checkpoints written to --storage.path.";
        checkpoint_errors: IntCounter = "quarry_checkpoint_errors_total", NONE,
            "Checkpoints that could not be taken or written (see the log).";
        checkpoint_bytes: IntGauge = "quarry_checkpoint_bytes", NONE,
            "Size of the last checkpoint written.";
        checkpoint_duration: Gauge = "quarry_checkpoint_duration_seconds", NONE,
            "How long writing the last checkpoint took (including fsync).";
        checkpoint_last_success: Gauge = "quarry_checkpoint_last_success_timestamp_seconds", NONE,
            "When the last checkpoint written was taken (Unix time).";
        checkpoint_last_write_successful: Gauge = "quarry_checkpoint_last_write_successful", NONE,
            "Whether the last checkpoint was written (1), or could not be (0: /metrics then shows values the disk does not hold, and a restart would go back to the last checkpoint written).";
        checkpoint_restore_errors: IntCounter = "quarry_checkpoint_restore_errors_total", &["reason"],
            "Checkpoints not restored at start: unreadable (corrupt, truncated, foreign, not a regular file) or refused (values or file offsets that cannot be right); the exporter started afresh.";
    }
    probe {
        /// `quarry_probe_duration_seconds`, in each `/probe` answer.
        PROBE_DURATION: "gauge" = "quarry_probe_duration_seconds", NONE,
            "How long the probe took: waiting for a slot, fetching, parsing and applying the rules.";
        /// `quarry_probe_failure_reason{reason}`, in each `/probe` answer.
        PROBE_FAILURE_REASON: "gauge" = "quarry_probe_failure_reason", &["reason"],
            "Why the probe failed: 1 for the reason, 0 for the others (all 0 on success).";
        /// `quarry_probe_success`, in each `/probe` answer.
        PROBE_SUCCESS: "gauge" = "quarry_probe_success", NONE,
            "Whether the probe fetched and parsed the target and a rule matched (1) or not (0).";
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
    /// `quarry_checkpoint_writes_total`
    pub writes: IntCounter,
    /// `quarry_checkpoint_errors_total`
    pub errors: IntCounter,
    /// `quarry_checkpoint_bytes`
    pub bytes: IntGauge,
    /// `quarry_checkpoint_duration_seconds`
    pub duration: Gauge,
    /// `quarry_checkpoint_last_success_timestamp_seconds`
    pub last_success: Gauge,
    /// `quarry_checkpoint_last_write_successful`
    pub last_write_successful: Gauge,
    /// `quarry_checkpoint_restore_errors_total{reason="unreadable"}`
    pub restore_unreadable: IntCounter,
    /// `quarry_checkpoint_restore_errors_total{reason="refused"}`
    pub restore_refused: IntCounter,
}

impl SelfMetrics {
    /// Creates every self-metric; `quarry_build_info`, the configuration's and the log's are
    /// exported from the start.
    #[allow(clippy::new_without_default)]
    pub fn new() -> SelfMetrics {
        let families = Families::new();
        families
            .build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("QUARRY_REVISION"),
                env!("QUARRY_RUSTC_VERSION"),
            ])
            .set(1.0);
        families.config_reload.with_label_values(&[]);
        families.config_reload_timestamp.with_label_values(&[]);
        families.log_dropped_family.with_label_values(&[]);
        SelfMetrics(Arc::new(families))
    }

    /// `quarry_config_last_reload_successful`.
    pub fn config_last_reload_successful(&self) -> Gauge {
        self.config_reload.with_label_values(&[])
    }

    /// `quarry_config_last_reload_success_timestamp_seconds`.
    pub fn config_last_reload_success_timestamp(&self) -> Gauge {
        self.config_reload_timestamp.with_label_values(&[])
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
        self.log_dropped_family
            .with_label_values(&[])
            .set(crate::logging::dropped());
        self.0.render_all(out);
    }
}

/// The reasons a probe can fail, each exported by every probe as 0 or 1: the page-source
/// reasons that apply to an HTTP fetch (not a command's, not the partial `conversion`), and
/// `no_slot`.
pub fn probe_failure_reasons() -> impl Iterator<Item = SourceErrorReason> {
    SourceErrorReason::ALL
        .into_iter()
        .filter(|r| {
            !matches!(
                r,
                SourceErrorReason::Spawn
                    | SourceErrorReason::ExitCode
                    | SourceErrorReason::Conversion
            )
        })
        .chain(SourceErrorReason::PROBE_ONLY)
}

/// Appends a probe's own metrics ([`Scope::Probe`]) to its answer: how long it took, why it
/// failed (`failed`: `None` on success) and whether it succeeded.
pub fn render_probe_result(
    text: &mut Vec<u8>,
    duration: std::time::Duration,
    failed: Option<SourceErrorReason>,
) {
    let d = &PROBE_DURATION;
    header(text, d.name, d.help, d.kind);
    sample(text, d.name, "", &[], None, duration.as_secs_f64());
    let d = &PROBE_FAILURE_REASON;
    header(text, d.name, d.help, d.kind);
    for r in probe_failure_reasons() {
        let value = if failed == Some(r) { 1.0 } else { 0.0 };
        sample(
            text,
            d.name,
            "",
            &[(d.labels[0], r.as_str().as_bytes())],
            None,
            value,
        );
    }
    let d = &PROBE_SUCCESS;
    header(text, d.name, d.help, d.kind);
    let success = if failed.is_none() { 1.0 } else { 0.0 };
    sample(text, d.name, "", &[], None, success);
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

    /// The `# HELP`/`# TYPE` pairs of an exposition, and the label names of its samples, by
    /// family name.
    fn families_in(text: &str) -> BTreeMap<String, (String, String, Vec<String>)> {
        let mut found: BTreeMap<String, (String, String, Vec<String>)> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                found.entry(name.into()).or_default().0 = help.into();
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                found.entry(name.into()).or_default().1 = kind.into();
            } else {
                let name_end = line.find(['{', ' ']).unwrap();
                let labels = line[name_end..]
                    .strip_prefix('{')
                    .map(|l| {
                        l.split(',')
                            .filter_map(|pair| pair.split_once('=').map(|(n, _)| n.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                found.entry(line[..name_end].into()).or_default().2 = labels;
            }
        }
        found
    }

    /// What a declaration says the exposition shows: help, type, label names alphabetically.
    fn expected(d: &Declaration) -> (String, String, Vec<String>) {
        let mut labels: Vec<String> = d.labels.iter().map(|l| l.to_string()).collect();
        labels.sort();
        (d.help.into(), d.kind.into(), labels)
    }

    /// Names are unique and in the exporter's namespace.
    #[test]
    fn every_declaration_has_its_own_quarry_name() {
        let mut names: Vec<&str> = DECLARED.iter().map(|d| d.name).collect();
        assert!(names.iter().all(|n| n.starts_with("quarry_")), "{names:?}");
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name is declared twice");
    }

    /// `/metrics` shows exactly the exporter's declarations (once each has a series), with
    /// their help, type and labels.
    #[test]
    fn metrics_render_every_exporter_declaration_and_nothing_else() {
        let m = SelfMetrics::new();
        m.give_every_family_a_series();
        let mut out = Vec::new();
        m.render(&mut out);
        let text: String = out
            .iter()
            .map(|(_, t)| String::from_utf8(t.clone()).unwrap())
            .collect();
        let rendered = families_in(&text);
        let declared: BTreeMap<String, (String, String, Vec<String>)> = DECLARED
            .iter()
            .filter(|d| d.scope == Scope::Exporter)
            .map(|d| (d.name.to_owned(), expected(d)))
            .collect();
        assert_eq!(rendered, declared);
    }

    /// A probe's answer shows exactly the probe's declarations, with their help, type and
    /// labels, on success and on failure.
    #[test]
    fn probe_results_render_every_probe_declaration_and_nothing_else() {
        let declared: BTreeMap<String, (String, String, Vec<String>)> = DECLARED
            .iter()
            .filter(|d| d.scope == Scope::Probe)
            .map(|d| (d.name.to_owned(), expected(d)))
            .collect();
        for failed in [None, Some(SourceErrorReason::NoSlot)] {
            let mut text = Vec::new();
            render_probe_result(&mut text, std::time::Duration::from_millis(5), failed);
            let rendered = families_in(&String::from_utf8(text).unwrap());
            assert_eq!(rendered, declared, "failed: {failed:?}");
        }
    }
}
