//! The exporter's own metrics (`quarry_` prefix): what it read, matched, dropped and failed.
//!
//! All of them live here, so the README's table and the code have one place to agree on.
//! Handles are resolved once per file, rule or metric and kept by their owners; nothing on
//! the hot path looks a metric up by name.

use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

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
}

impl SourceErrorReason {
    /// Every reason, exported at 0 from the start.
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
        }
    }
}

/// Every self-metric family, registered in the exporter's registry.
#[derive(Clone)]
pub struct SelfMetrics {
    /// `quarry_file_lines_total{source,path}`
    pub file_lines: IntCounterVec,
    /// `quarry_file_bytes_total{source,path}`
    pub file_bytes: IntCounterVec,
    /// `quarry_file_rotations_total{source,path}`
    pub file_rotations: IntCounterVec,
    /// `quarry_file_truncations_total{source,path}`
    pub file_truncations: IntCounterVec,
    /// `quarry_file_read_errors_total{source,path}`
    pub file_read_errors: IntCounterVec,
    /// `quarry_file_lines_too_long_total{source,path}`
    pub file_lines_too_long: IntCounterVec,
    /// `quarry_file_invalid_utf8_lines_total{source,path}`
    pub file_invalid_utf8: IntCounterVec,
    /// `quarry_file_lag_bytes{source,path}`
    pub file_lag: IntGaugeVec,
    /// `quarry_source_files{source}`
    pub source_files: IntGaugeVec,
    /// `quarry_source_unmatched_lines_total{source}`
    pub source_unmatched: IntCounterVec,
    /// `quarry_rule_matches_total{source,rule}`
    pub rule_matches: IntCounterVec,
    /// `quarry_rule_errors_total{source,rule,reason}`
    pub rule_errors: IntCounterVec,
    /// `quarry_series{metric}`
    pub series: IntGaugeVec,
    /// `quarry_series_dropped_total{metric}`
    pub series_dropped: IntCounterVec,
    /// `quarry_source_up{source}`
    pub source_up: IntGaugeVec,
    /// `quarry_source_duration_seconds{source}`
    pub source_duration: GaugeVec,
    /// `quarry_source_last_success_timestamp_seconds{source}`
    pub source_last_success: GaugeVec,
    /// `quarry_source_errors_total{source,reason}`
    pub source_errors: IntCounterVec,
    /// `quarry_config_last_reload_successful`
    pub config_last_reload_successful: Gauge,
    /// `quarry_config_last_reload_success_timestamp_seconds`
    pub config_last_reload_success_timestamp: Gauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid self-metric");
    registry
        .register(Box::new(v.clone()))
        .expect("self-metric registered once");
    v
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid self-metric");
    registry
        .register(Box::new(v.clone()))
        .expect("self-metric registered once");
    v
}

fn float_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let v = GaugeVec::new(Opts::new(name, help), labels).expect("valid self-metric");
    registry
        .register(Box::new(v.clone()))
        .expect("self-metric registered once");
    v
}

fn plain_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("valid self-metric");
    registry
        .register(Box::new(g.clone()))
        .expect("self-metric registered once");
    g
}

impl SelfMetrics {
    /// Creates and registers every self-metric, including `quarry_build_info`.
    pub fn register(registry: &Registry) -> SelfMetrics {
        let sp = &["source", "path"];
        let build_info = GaugeVec::new(
            Opts::new(
                "quarry_build_info",
                "A metric with a constant '1' value labeled by version, revision and rustversion from which quarry_exporter was built.",
            ),
            &["version", "revision", "rustversion"],
        )
        .expect("valid self-metric");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("QUARRY_REVISION"),
                env!("QUARRY_RUSTC_VERSION"),
            ])
            .set(1.0);
        registry
            .register(Box::new(build_info))
            .expect("self-metric registered once");
        SelfMetrics {
            file_lines: counter(registry, "quarry_file_lines_total", "Lines read from a file, including skipped over-long lines.", sp),
            file_bytes: counter(registry, "quarry_file_bytes_total", "Bytes read from a file.", sp),
            file_rotations: counter(registry, "quarry_file_rotations_total", "Times the path was found to be a new file (rename rotation, delete and recreate).", sp),
            file_truncations: counter(registry, "quarry_file_truncations_total", "Times a file was found shorter than the read offset (copytruncate) and was read again from its start.", sp),
            file_read_errors: counter(registry, "quarry_file_read_errors_total", "Errors opening, checking or reading a file.", sp),
            file_lines_too_long: counter(registry, "quarry_file_lines_too_long_total", "Lines longer than max_line_length, skipped.", sp),
            file_invalid_utf8: counter(registry, "quarry_file_invalid_utf8_lines_total", "Lines that were not valid UTF-8; invalid bytes were replaced by U+FFFD before matching.", sp),
            file_lag: gauge(registry, "quarry_file_lag_bytes", "Bytes in the file after the read offset at the last check.", sp),
            source_files: gauge(registry, "quarry_source_files", "Files a source is reading now.", &["source"]),
            source_unmatched: counter(registry, "quarry_source_unmatched_lines_total", "Records of a source that no rule matched.", &["source"]),
            rule_matches: counter(registry, "quarry_rule_matches_total", "Matches of a rule.", &["source", "rule"]),
            rule_errors: counter(registry, "quarry_rule_errors_total", "Matches of a rule whose update failed, by reason.", &["source", "rule", "reason"]),
            series: gauge(registry, "quarry_series", "Label sets a metric holds.", &["metric"]),
            series_dropped: counter(registry, "quarry_series_dropped_total", "Updates dropped because their metric already holds max_series label sets.", &["metric"]),
            source_up: gauge(registry, "quarry_source_up", "Whether the last fetch of a page source succeeded and yielded matches (1) or not (0).", &["source"]),
            source_duration: float_gauge(registry, "quarry_source_duration_seconds", "How long the last fetch and extraction of a page source took.", &["source"]),
            source_last_success: float_gauge(registry, "quarry_source_last_success_timestamp_seconds", "When a page source last succeeded (Unix time).", &["source"]),
            source_errors: counter(registry, "quarry_source_errors_total", "Failed fetches or documents of a page source, by reason.", &["source", "reason"]),
            config_last_reload_successful: plain_gauge(registry, "quarry_config_last_reload_successful", "Whether the last configuration load succeeded (1) or not (0)."),
            config_last_reload_success_timestamp: plain_gauge(registry, "quarry_config_last_reload_success_timestamp_seconds", "Timestamp of the last successful configuration load."),
        }
    }
}

/// Per-file handles, resolved once when the file is first seen.
#[derive(Clone)]
pub struct FileCounters {
    pub lines: prometheus::IntCounter,
    pub bytes: prometheus::IntCounter,
    pub rotations: prometheus::IntCounter,
    pub truncations: prometheus::IntCounter,
    pub read_errors: prometheus::IntCounter,
    pub too_long: prometheus::IntCounter,
    pub invalid_utf8: prometheus::IntCounter,
    pub lag: prometheus::IntGauge,
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
            let _ = v.remove_label_values(l);
        }
        let _ = self.file_lag.remove_label_values(l);
    }
}
