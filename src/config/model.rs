//! The configuration model: serde types that mirror `exporter.yaml` one to one.
//!
//! These types only describe what the user wrote. They carry no compiled state; the
//! [`crate::pipeline`] build step turns a validated [`Config`] into regexes, templates and
//! metric handles. Every struct denies unknown fields so a typo is an error with a position,
//! and every source or extractor kind is a keyed sub-object (`file:`) rather than a `type:`
//! tag, which keeps serde_yaml's error positions exact.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

mod socket;
pub use socket::*;

/// The whole `exporter.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Format version of the file; only `1` exists.
    pub version: u32,
    /// Every metric the rules may update, each declared once.
    pub metrics: Vec<MetricConfig>,
    /// Where records come from, each with its rules.
    pub sources: Vec<SourceConfig>,
    /// Probe modules: page-source templates run against a target at scrape time
    /// (`/probe?module=NAME&target=T`), an `http:` source whose URL or headers use `$target`.
    pub modules: Vec<SourceConfig>,
    /// Grok patterns of your own (name → definition, which may use `%{OTHER}`), for rules'
    /// `grok:`; they take precedence over the bundled ones of the same name.
    pub grok_patterns: BTreeMap<String, String>,
    /// The status board at `/status` (optional: without it the board shows every state
    /// metric with the defaults).
    pub status: StatusConfig,
    /// The catalog modules this config `use:`s, each as loaded (parameters substituted, before
    /// its sources and metrics were merged into the lists above): what their rules' examples
    /// are checked against, and what `check` counts.
    pub uses: Vec<UsedModule>,
}

/// One `use:` of a module, kept after composition.
#[derive(Debug, Clone, Default)]
pub struct UsedModule {
    /// The instance name (`use[i].name`, else the module's name): the prefix of its sources.
    pub instance: String,
    /// The module file as errors name it (`catalog/nginx.yaml`, or the path the config gave).
    pub file: String,
    /// The module file's text (for the positions of its examples' failures).
    pub text: String,
    /// Where the `use:` entry stands in the config file, as `file:line:column`.
    pub used_at: String,
    /// The module's header: description, what it reads, parameters.
    pub header: ModuleHeader,
    /// The values of this use's secret parameters, never to be shown.
    pub secrets: Vec<String>,
    /// The module's own config, parameters substituted, sources not yet renamed.
    pub config: Box<Config>,
}

/// One entry of `use:` — a catalog module (or a module file) with its parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UseConfig {
    /// A catalog module's name (`nginx`; `quarry_exporter catalog` lists them), or the path of
    /// a module file, relative to this config file (`modules/my-nginx.yaml`).
    pub module: String,
    /// The instance name (default: the module's name): its sources are named
    /// `<name>/<source>`. Two uses of one module need different names.
    #[serde(default)]
    pub name: Option<String>,
    /// The module's parameters (`quarry_exporter catalog NAME` prints them).
    #[serde(default, rename = "with")]
    pub with: BTreeMap<String, LabelValue>,
    /// Constant labels added to every series of this use (and to the module's metrics): how
    /// two instances of one module stay apart. Without them the series are exactly the
    /// dedicated exporter's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The `module:` header of a module file: what it is, what it reads, its parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleHeader {
    /// The module's name, as `use: [{module: NAME}]` spells it.
    pub name: String,
    /// One line: what the module watches.
    pub description: String,
    /// The server versions and output formats the module understands.
    #[serde(default)]
    pub reads: Vec<String>,
    /// The dedicated exporter (and version) whose series the module reproduces, if any.
    #[serde(default)]
    pub parity: Option<String>,
    /// The parameters, by name, referenced as `${name}` in the module's string values.
    #[serde(default)]
    pub params: BTreeMap<String, ModuleParam>,
    /// How `quarry_exporter dashboard` shows the module's metrics.
    #[serde(default)]
    pub dashboard: ModuleDashboard,
}

/// The `module.dashboard:` part of a module's header.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleDashboard {
    /// Metrics shown as their value, never as a rate, whatever their type: names or glob
    /// patterns (`squid_Cache_Hits_*`) of counters that are not counts (a percentile, a
    /// serial number), typed so by the dedicated exporter whose series the module copies.
    #[serde(default)]
    pub values: Vec<String>,
}

impl ModuleDashboard {
    /// Whether `metric` is one of [`ModuleDashboard::values`] (a pattern that is not a glob
    /// matches nothing; loading the module reports it).
    pub fn shows_value(&self, metric: &str) -> bool {
        self.values.iter().any(|p| {
            glob::Pattern::new(p)
                .map(|p| p.matches(metric))
                .unwrap_or(false)
        })
    }
}

/// One parameter of a module.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleParam {
    /// What the value is, with an example.
    pub description: String,
    /// The value when the use gives none.
    #[serde(default)]
    pub default: Option<LabelValue>,
    /// Whether a use must give it (a parameter without a default is required anyway).
    #[serde(default)]
    pub required: bool,
    /// A value that is never shown: not in errors, `explain`, logs or pages.
    #[serde(default)]
    pub secret: bool,
}

impl Config {
    /// The names of the metrics the rules of `sources` update, deduplicated.
    pub fn metrics_fed_by(sources: &[SourceConfig]) -> BTreeSet<&str> {
        sources
            .iter()
            .flat_map(|s| s.rules.iter().flat_map(|r| r.update.iter()))
            .map(|u| u.metric.as_str())
            .collect()
    }

    /// The metrics `/metrics` serves: all but those only probe modules feed.
    pub fn served_metrics(&self) -> Vec<MetricConfig> {
        let probed = Config::metrics_fed_by(&self.modules);
        self.metrics
            .iter()
            .filter(|m| !probed.contains(m.name.as_str()))
            .cloned()
            .collect()
    }
}

/// One metric declaration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Prometheus metric name (counters end in `_total`).
    pub name: String,
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: String,
    /// Label names, in the order they are exported.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Histogram bucket upper bounds (histograms only; default: Prometheus' default buckets).
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    /// How the `le` label of a histogram's buckets is written (histograms only; default
    /// `plain`; `go` for a drop-in copy of a Go exporter's histograms).
    #[serde(default)]
    pub le_format: Option<LeFormat>,
    /// Most label sets this metric may hold; new ones beyond it are dropped and counted.
    #[serde(default)]
    pub max_series: Option<usize>,
    /// Longest label value in bytes; longer values are cut (at a character boundary) and
    /// counted.
    #[serde(default)]
    pub max_label_value_length: Option<usize>,
    /// Remove a series not updated for this long (log-fed metrics; a removed counter starts
    /// again at 0 when it comes back, which Prometheus reads as a reset).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub expire_after: Option<Duration>,
    /// Label values known in advance: every combination is exported from the start (counters,
    /// gauges and histograms at 0, states unknown) and never expires.
    #[serde(default)]
    pub label_values: Option<BTreeMap<String, Vec<LabelValue>>>,
    /// State metrics only: the states, from best to worst.
    #[serde(default)]
    pub states: Option<Vec<String>>,
}

/// `status:` — the status board served at `/status` (and `/status.json`, badges).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// The page's heading and title (default `Status`).
    #[serde(default)]
    pub title: Option<String>,
    /// The state metrics on the board, in this order when equally bad (default: every state
    /// metric fed by a source).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// A label whose value groups components across metrics (e.g. `site`): one section per
    /// value, the metrics within it. Components of metrics without this label go to a
    /// section of their own.
    #[serde(default)]
    pub group_by: Option<String>,
    /// How often the page updates itself (default 10s; at least 1s). With scripts off, a
    /// refresh of the whole page every this long.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub refresh: Option<Duration>,
    /// How far back each tile's timeline strip goes (default 6h; 1m to 7d).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeline: Option<Duration>,
    /// Links on every tile: URL templates with `$metric`, `$state` and the component's labels
    /// (`$server`), each value URL-encoded.
    #[serde(default)]
    pub links: Vec<StatusLinkConfig>,
    /// Gauges shown above the tiles with their current value and a sparkline of the last hour.
    #[serde(default)]
    pub headlines: Vec<HeadlineConfig>,
}

/// One link on the status board's tiles (a Grafana dashboard, a runbook).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusLinkConfig {
    /// The link's text (`Grafana`, `Runbook`).
    pub title: String,
    /// An `http(s)://` URL (or a path on this exporter) with `$metric`, `$state` and label
    /// references: `https://grafana.example/d/abc?var-server=$server`.
    pub url: String,
    /// Only on these metrics' tiles (default: every metric that has each label the URL uses).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
}

/// A headline gauge on the status board.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadlineConfig {
    /// A gauge or counter metric; each of its series (the first 8, in label order) is shown.
    pub metric: String,
    /// The text above it (default: the metric's name).
    #[serde(default)]
    pub title: Option<String>,
}

/// How a histogram bucket's upper bound is written in its `le` label. Prometheus compares
/// label values as text, so a drop-in for a Go exporter must write `1e+06` where the default
/// writes `1000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeFormat {
    /// The shortest decimal that reads back exactly, never an exponent: `0.00001`, `1000000`.
    #[default]
    Plain,
    /// As Go's client library (`strconv.FormatFloat(v, 'g', -1, 64)`): an exponent from
    /// 1e+06 up and below 0.0001 (`1e-05`, `1e+06`, `2.5e+07`), plain otherwise.
    Go,
}

impl LeFormat {
    /// `bound` written in this format.
    pub fn write(self, bound: f64) -> String {
        match self {
            LeFormat::Plain => bound.to_string(),
            LeFormat::Go => {
                if bound == 0.0 || !bound.is_finite() {
                    return bound.to_string();
                }
                // `{:e}` gives the shortest digits that read back exactly (`1.5e6`); Go picks
                // the exponent form for exponents below -4 or from 6 on, with a sign and at
                // least two exponent digits.
                let scientific = format!("{bound:e}");
                let (mantissa, exponent) = scientific
                    .split_once('e')
                    .expect("a finite float in {:e} has an exponent");
                let exponent: i32 = exponent.parse().expect("{:e} writes a decimal exponent");
                if (-4..6).contains(&exponent) {
                    bound.to_string()
                } else {
                    let sign = if exponent < 0 { '-' } else { '+' };
                    format!("{mantissa}e{sign}{:02}", exponent.abs())
                }
            }
        }
    }
}

#[cfg(test)]
mod le_format_tests {
    use super::LeFormat;

    #[test]
    fn go_writes_bounds_as_strconv_format_float_g() {
        // Expected texts are what Go 1.19's strconv.FormatFloat(v, 'g', -1, 64) printed in
        // prometheus-postfix-exporter's buckets and Go's documented %g rule.
        let cases = [
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0, "1"),
            (10.0, "10"),
            (172800.0, "172800"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1e9, "1e+09"),
            (2.5e7, "2.5e+07"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (0.0, "0"),
            (-2e6, "-2e+06"),
        ];
        for (bound, text) in cases {
            assert_eq!(LeFormat::Go.write(bound), text, "{bound}");
        }
        assert_eq!(LeFormat::Plain.write(1e6), "1000000");
        assert_eq!(LeFormat::Plain.write(0.00001), "0.00001");
    }
}

/// The closed set of metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only goes up; `inc` or `add`.
    #[default]
    Counter,
    /// Goes up and down; `set`, `inc`, `dec`, `add`.
    Gauge,
    /// Observations counted into buckets; `observe`.
    Histogram,
    /// One of a declared, ordered list of states; `state`.
    State,
}

impl MetricKind {
    /// The name used in the config and in the exposition's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::State => "state",
        }
    }
}

// Read the kind with `SourceConfig::kind` (config/kinds.rs), not the fields. (A `//`
// comment: the `///` text is the schema's description.)
/// One source: a name, exactly one kind sub-object, and its rules.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; the `source` label of self-metrics.
    pub name: String,
    /// Tail files matched by globs.
    #[serde(default)]
    pub file: Option<FileSourceConfig>,
    /// Fetch a URL on an interval; the body is one document.
    #[serde(default)]
    pub http: Option<HttpSourceConfig>,
    /// Run a command on an interval; its stdout is one document.
    #[serde(default)]
    pub command: Option<CommandSourceConfig>,
    /// Read a whole file on an interval (status files written by cron jobs).
    #[serde(default)]
    pub status_file: Option<StatusFileSourceConfig>,
    /// Talk to a TCP or Unix socket on an interval (Redis, memcached, HAProxy's runtime
    /// API); the replies are one document.
    #[serde(default)]
    pub socket: Option<SocketSourceConfig>,
    /// Rules tried on every record of this source.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Where a file source starts reading files that exist when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Only lines written after start (like `tail -F`).
    #[default]
    End,
    /// Everything already in the files, then what follows.
    Beginning,
}

/// `file:` — tail every file that matches one of the globs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns (`*`, `?`, `[..]`, `**`); relative ones are relative to the config file.
    pub paths: Vec<String>,
    /// Globs of paths to leave out (e.g. `*.gz` next to `access.log*`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files that exist at start-up. Files that appear later are always read
    /// from their beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest line in bytes; longer lines are counted and skipped.
    #[serde(default)]
    pub max_line_length: Option<usize>,
    /// How often globs are re-expanded and files checked when no notification arrives.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub poll_interval: Option<Duration>,
    /// How long a rotated-away or deleted file is still read after its last new data.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub rotate_wait: Option<Duration>,
    /// Which inotify notifications the source takes: `true` (default) every change wakes it;
    /// `names` only files created, renamed or removed are told, and contents are read at each
    /// poll (the cheapest choice for hundreds of busy files); `false` none (polls only).
    #[serde(default, deserialize_with = "de_opt_watch")]
    #[schemars(schema_with = "watch_schema")]
    pub watch: Option<WatchMode>,
    /// How the file's lines are framed: `plain` (default: each line is a record), `cri`
    /// (Kubernetes' `/var/log/pods`: `<time> <stream> <P|F> <text>`, partial lines merged) or
    /// `docker` (Docker's json-file: `{"log": ..., "stream": ..., "time": ...}` per line,
    /// partial lines merged). Container formats give the fields `$__stream__` and `$__time__`.
    #[serde(default)]
    pub format: FileFormat,
    /// Joins lines into one record (stack traces, multi-line messages).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
}

/// How a file's lines are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Each line is a record.
    #[default]
    Plain,
    /// The CRI log format of Kubernetes (`/var/log/pods/*/*/*.log`).
    Cri,
    /// Docker's json-file log driver (`/var/lib/docker/containers/*/*-json.log`).
    Docker,
}

/// `multiline:` — which lines start a record; the others join the record before them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a new record (e.g. `^\d{4}-\d\d-\d\d` for lines
    /// that begin with a date); other lines continue the record.
    #[serde(default)]
    pub start: Option<String>,
    /// A line matching this regex continues the record before it (e.g. `^\s` for indented
    /// stack frames); other lines start a new record.
    #[serde(default, rename = "continue")]
    pub continue_: Option<String>,
    /// Largest record in bytes (default 64 KiB): a record is cut there (counted as
    /// `record_too_long`; the lines after the cut are dropped until the next record).
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// A record is complete when no line followed it for this long (default 1s): the last
    /// record is not held while the writer pauses.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub flush_after: Option<Duration>,
}

/// `http:` — fetch a URL.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (e.g. a SOAP envelope).
    #[serde(default)]
    pub body: Option<String>,
    /// Request body read from this file at start.
    #[serde(default)]
    pub body_file: Option<String>,
    /// Basic authentication, the password from a file.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// A bearer token read from this file.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings for https.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Give up on a fetch after this long (default 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Duration>,
    /// Fetch this often (default 15s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub interval: Option<Duration>,
    /// Status codes that count as success (default: any 2xx).
    #[serde(default)]
    pub accept_status: Option<Vec<u16>>,
    /// Largest body accepted, in bytes (default 10 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Follow redirects (default true, at most 5), as Prometheus' `follow_redirects`; when
    /// false a 3xx answer is the response (a failure unless `accept_status` lists it).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Send requests (and OAuth2 token requests) through this HTTP proxy,
    /// `http://[user:password@]host:port`, as Prometheus' `proxy_url`. https URLs go through
    /// it with CONNECT.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// OAuth2 client credentials: a token fetched from `token_url`, kept until it expires and
    /// sent as `Authorization: Bearer`.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    /// Headers with values from the config or from files (Prometheus' `http_headers`); files
    /// are re-read on every fetch.
    #[serde(default)]
    pub http_headers: BTreeMap<String, HttpHeaderConfig>,
}

/// OAuth2 client credentials grant (RFC 6749 section 4.4), with Prometheus' field names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The client's identifier.
    pub client_id: String,
    /// File holding the client's secret (a trailing newline is ignored); re-read for every
    /// token.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Refused: secrets come from files here (`client_secret_file`). Known so that the
    /// error can say so.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The token endpoint, http or https.
    pub token_url: String,
    /// Scopes asked for (sent space-separated as `scope`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// More form parameters of the token request (e.g. `audience`).
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
}

/// One header of `http_headers`: its values, each sent as a header line of its own.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpHeaderConfig {
    /// Values as written.
    #[serde(default)]
    pub values: Vec<String>,
    /// Files whose content (without a trailing newline) is a value, read on every fetch.
    #[serde(default)]
    pub files: Vec<String>,
    /// Refused: secrets come from files here (`files`). Known so that the error can say so.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// Basic authentication; the password never sits in the config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    /// File holding the password (a trailing newline is ignored).
    pub password_file: String,
}

/// TLS client settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust (in addition to the built-in roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (with `key_file`) for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Accept any server certificate. Only for testing.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The name the server's certificate must be valid for, instead of the URL's host (a
    /// server reached by its IP address, or through a name its certificate does not carry).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `command:` — run a program (no shell).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSourceConfig {
    /// Program and arguments; a relative program path is relative to the config file.
    pub argv: Vec<String>,
    /// Kill the command (and every process it started) after this long (default 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Duration>,
    /// Run this often (default 15s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub interval: Option<Duration>,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default)]
    pub accept_exit_codes: Option<Vec<i32>>,
    /// Largest stdout accepted, in bytes (default 10 MiB).
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
}

/// `status_file:` — a file read whole each interval.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusFileSourceConfig {
    /// The file; relative to the config file.
    pub path: String,
    /// Give up on a read (and on parsing what was read) after this long (default 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Duration>,
    /// Read this often (default 15s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub interval: Option<Duration>,
    /// Largest file accepted, in bytes (default 10 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// `json:` — JSONPath (RFC 9535) over a JSON document.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonRuleConfig {
    /// One match per node this query selects; default: the whole document, once.
    #[serde(default)]
    pub for_each: Option<String>,
    /// Field name → query. `@...` is relative to the current node, `$...` to the document;
    /// `@key` is the current node's key (or index) in its parent.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// `xml:` — XPath 1.0 over an XML (or SOAP) document.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XmlRuleConfig {
    /// Prefix → namespace URI, for the expressions below.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// One match per node this expression selects; default: the document, once.
    #[serde(default)]
    pub for_each: Option<String>,
    /// Field name → XPath, relative to the current node (absolute paths start at the root).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// `html:` — CSS selectors over an HTML page.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlRuleConfig {
    /// One match per element this selector selects (e.g. table rows); default: the page, once.
    #[serde(default)]
    pub for_each: Option<String>,
    /// Field name → selector within the current element, whose text is the value; end with
    /// ` @attr` for an attribute; start with `:root` to select from the whole page.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

// Read the extractor with `RuleConfig::extractor` (config/kinds.rs), not the fields.
/// One rule: an extractor and the updates each match makes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name for the `rule` label of self-metrics; defaults to the rule's index.
    #[serde(default)]
    pub name: Option<String>,
    /// A regex with named captures: first match per line; every match in a document.
    #[serde(default)]
    pub regex: Option<String>,
    /// JSONPath extraction.
    #[serde(default)]
    pub json: Option<JsonRuleConfig>,
    /// XPath extraction.
    #[serde(default)]
    pub xml: Option<XmlRuleConfig>,
    /// CSS selector extraction.
    #[serde(default)]
    pub html: Option<HtmlRuleConfig>,
    /// logfmt (`key=value key2="quoted value"`): field name → key.
    #[serde(default)]
    pub logfmt: Option<LogfmtRuleConfig>,
    /// A grok expression: `%{PATTERN:field}` with the bundled patterns (IP, NUMBER,
    /// HTTPDATE, COMBINEDAPACHELOG, SYSLOGLINE, …) and the config's `grok_patterns`; first
    /// match per line, like `regex:`.
    #[serde(default)]
    pub grok: Option<String>,
    /// Fields made from other fields by a regex's named groups, in order (a later one may
    /// read an earlier one): `{from: $upstream, regex: '(?P<proxy>[^/]+)/(?P<server>.+)'}`.
    #[serde(default)]
    pub derive: Vec<DeriveConfig>,
    /// The rule applies only to matches whose fields match these regexes (field name →
    /// regex, unanchored; a field that selected nothing does not match).
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    /// Fields read without their surrounding quotes (`"…"`, `'…'` or `` `…` ``), with `\"`
    /// (the escaped quote) and `\\` unescaped: grok's `%{QS:agent}` as the text between the
    /// quotes. Applied before `derive`, `when` and the updates; text not quoted is kept.
    #[serde(default)]
    pub unquote: Vec<String>,
    /// The regex `grok:` expands to (set by the loader, never written).
    #[serde(skip)]
    #[schemars(skip)]
    pub grok_expanded: Option<String>,
    /// The metric changes each match makes.
    #[serde(default)]
    pub update: Vec<UpdateConfig>,
    /// Page sources: keep the series this rule set when a later document no longer has them
    /// (default: they are removed, as an item gone from the document is gone).
    #[serde(default)]
    pub keep_absent: bool,
    /// Inputs and the samples the rule must make of them; checked whenever the config is
    /// loaded (`check`, start, reload, `one-shot`).
    #[serde(default)]
    pub examples: Vec<RuleExample>,
}

/// `logfmt:` — the record read as `key=value` pairs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogfmtRuleConfig {
    /// Field name → the key whose value it takes (the first occurrence of the key).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// One derived field set: the named groups of `regex` matched against a field.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    /// The field read, as `$name`.
    pub from: String,
    /// A regex whose named groups become fields (a group that did not take part, or a regex
    /// that does not match, gives empty text).
    pub regex: String,
}

/// One example of a rule: an input and samples it must produce.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleExample {
    /// Log lines (file sources; one per line) or one whole document (page sources).
    pub input: String,
    /// Samples in the text format (`name{label="value"} 1`) the rule must produce from the
    /// input alone, each with that value; samples not listed are not checked.
    pub samples: Vec<String>,
}

/// One metric change made for each match of a rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The declared metric to change.
    pub metric: String,
    /// Label values: constants or templates with `$capture` / `${capture}`.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// Counter or gauge: add this (default 1 for a counter with no operation).
    #[serde(default)]
    pub inc: Option<ValueSpec>,
    /// Counter or gauge: add this.
    #[serde(default)]
    pub add: Option<ValueSpec>,
    /// Gauge: subtract this.
    #[serde(default)]
    pub dec: Option<ValueSpec>,
    /// Gauge: set to this.
    #[serde(default)]
    pub set: Option<ValueSpec>,
    /// Histogram: observe this.
    #[serde(default)]
    pub observe: Option<ValueSpec>,
    /// State metric: the current state (a field, or text).
    #[serde(default)]
    pub state: Option<ValueSpec>,
    /// Counter, in page sources: the upstream's running total (`accepts`, `bytes_out`): the
    /// counter takes its value; a value below the last is a reset upstream, passed on.
    #[serde(default)]
    pub total: Option<ValueSpec>,
    /// Text → value (or state) before conversion; keys may use `*` wildcards.
    #[serde(default)]
    pub map: Option<BTreeMap<String, LabelValue>>,
    /// Value (or state) for text `map` does not cover; without it such text is an error.
    #[serde(default)]
    pub default: Option<LabelValue>,
    /// How the value's text is read: number (default), bytes, duration, percent, bool,
    /// timestamp.
    #[serde(default, rename = "as")]
    pub convert: Option<Conversion>,
    /// Multiplies the value after conversion: `0.001` reads milliseconds as seconds,
    /// `0.000001` microseconds (powers of ten divide exactly: 42 × 0.001 is 0.042).
    #[serde(default)]
    pub scale: Option<f64>,
    /// What a value that means "none" does — `-` (Apache's `%b` for an empty body), empty
    /// text, or a field that selected nothing: `skip` (no update and no error) or a number
    /// taken as the value (`0`; not scaled). Without it such a value is an error.
    #[serde(default)]
    pub none: Option<NoneValue>,
    /// Page sources, `set:` only: the value the series this update set from the last
    /// document take while the source fails (`0` for a dedicated exporter's `*_up` gauge).
    #[serde(default)]
    pub on_failure: Option<f64>,
    /// The value is how many characters of the field's text are among these (Apache's
    /// scoreboard `_SRW..`: `count: "_"` for idle workers) instead of the text read as a number.
    #[serde(default)]
    pub count: Option<String>,
}

/// `none:` — what an update does with a value that means "none".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoneValue {
    /// No update, no error.
    Skip,
    /// This number is the value.
    Value(f64),
}

impl<'de> Deserialize<'de> for NoneValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NoneValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`skip` or a number (the value taken instead, like 0)")
            }
            fn visit_f64<E>(self, v: f64) -> Result<NoneValue, E> {
                Ok(NoneValue::Value(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NoneValue, E> {
                Ok(NoneValue::Value(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NoneValue, E> {
                Ok(NoneValue::Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NoneValue, E> {
                match v.trim() {
                    "skip" => Ok(NoneValue::Skip),
                    t => t.parse().map(NoneValue::Value).map_err(|_| {
                        E::custom(format!(
                            "{v:?} is neither `skip` nor a number (the value taken instead, like 0)"
                        ))
                    }),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for NoneValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoneValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`skip` (no update, no error) or a number taken as the value, for `-`, empty text or a field that selected nothing.",
            "oneOf": [{"type": "number"}, {"const": "skip"}]
        })
    }
}

impl NoneValue {
    /// Whether a value's text means "none": `-`, or empty (spaces aside).
    pub fn means_none(text: &str) -> bool {
        matches!(text.trim(), "" | "-")
    }
}

/// How a field's text becomes a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    /// `1234.5`, `36,426,658`, `1_000`, `-3e2`.
    #[default]
    Number,
    /// `1.5 GB`, `512KiB`, `10M` → bytes (SI powers of 1000, IEC of 1024).
    Bytes,
    /// `250ms`, `1.5s`, `2m`, `1h30m`, `3 days` → seconds.
    Duration,
    /// `93 %`, `93%` → 0.93.
    Percent,
    /// true/false, yes/no, on/off, up/down, 1/0 → 1/0.
    Bool,
    /// A number, or a boolean as `bool` reads it: json_exporter's reading of values, for
    /// fields that hold either.
    #[serde(rename = "number_or_bool")]
    NumberOrBool,
    /// RFC 3339 / ISO 8601 date-time or Unix seconds → Unix seconds.
    Timestamp,
}

impl Conversion {
    /// The name written after `as:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Conversion::Number => "number",
            Conversion::Bytes => "bytes",
            Conversion::Duration => "duration",
            Conversion::Percent => "percent",
            Conversion::Bool => "bool",
            Conversion::NumberOrBool => "number_or_bool",
            Conversion::Timestamp => "timestamp",
        }
    }
}

/// A label value as written: any scalar, kept as text (`200` and `"200"` are the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValue(pub String);

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText(
            "a label value (text, or a template like \"$name\")",
        ))
        .map(LabelValue)
    }
}

impl JsonSchema for LabelValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LabelValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Text, or a template like \"$name\"; numbers and booleans are taken as their text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// The value of an update as written: a number, or text naming a capture (`$secs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSpec {
    /// A constant.
    Number(f64),
    /// A template; validation requires exactly one `$field` reference.
    Text(String),
}

impl<'de> Deserialize<'de> for ValueSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ValueSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a field reference like \"$bytes\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ValueSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueSpec".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number, or a field reference like \"$bytes\".",
            "type": ["number", "string"]
        })
    }
}

/// The schema of a duration: `250ms`, `15s`, `1m30s`, `2h`, `1d`, `1w`, or `0`.
fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A duration: one or more <integer><unit> with units ms, s, m, h, d, w (e.g. 250ms, 15s, 1m30s), or 0.",
        "anyOf": [
            {"type": "string", "pattern": "^(0|([0-9]+(ms|s|m|h|d|w))+)$"},
            {"const": 0}
        ]
    })
}

/// Accepts any YAML scalar and returns it as text.
struct ScalarText(&'static str);

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Which notifications a file source takes (`watch:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WatchMode {
    /// Every change (`true`): files written, created, renamed or removed. Lines are read as
    /// they are written.
    #[default]
    All,
    /// Names only (`names`): inotify tells of files created, renamed or removed, and wakes
    /// nothing; everything is read at the poll, which lists again only the directories a
    /// notification named. No notification per write, no look at an unchanged directory: on a
    /// node of hundreds of busy files, the least CPU, for a latency of up to one poll interval.
    Names,
    /// None (`false`): everything waits for the poll.
    Off,
}

fn watch_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "true (every change wakes the source), names (only files created, renamed or removed; contents read at each poll) or false (polls only).",
        "anyOf": [{"type": "boolean"}, {"const": "names"}]
    })
}

fn de_opt_watch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WatchMode>, D::Error> {
    let text = d.deserialize_any(ScalarText("true, false or names"))?;
    match text.as_str() {
        "true" => Ok(Some(WatchMode::All)),
        "false" => Ok(Some(WatchMode::Off)),
        "names" => Ok(Some(WatchMode::Names)),
        other => Err(de::Error::custom(format!(
            "invalid watch {other:?}: expected true (every change), names (files created, renamed or removed; contents read at each poll) or false (polls only)"
        ))),
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = d.deserialize_any(ScalarText("a duration like 250ms, 15s, 2m or 1h"))?;
    parse_duration(&text).map(Some).map_err(de::Error::custom)
}

/// Parses a Prometheus-style duration: one or more `<integer><unit>` with units
/// `ms`, `s`, `m`, `h`, `d`, `w` (e.g. `1m30s`). A bare `0` is zero.
///
/// ```
/// use std::time::Duration;
/// use quarry_exporter::config::parse_duration;
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("90").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. 250ms, 15s, 2m, 1h30m");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let millis = number.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }
}

/// `--web.config.file`, in the exporter-toolkit format so existing files can be reused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    /// Serve HTTPS.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// Response headers.
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    /// User → bcrypt hash.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config:` of a web config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain; reloaded when it changes.
    pub cert_file: String,
    /// PEM private key; reloaded when it changes.
    pub key_file: String,
    /// `NoClientCert` (default), `RequireAndVerifyClientCert` or `VerifyClientCertIfGiven`.
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// CA certificates that client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// `TLS12` (default) or `TLS13`.
    #[serde(default)]
    pub min_version: Option<String>,
    /// `TLS12` or `TLS13` (default).
    #[serde(default)]
    pub max_version: Option<String>,
    /// Accepted for compatibility; rustls chooses among its safe suites.
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    /// Accepted for compatibility; rustls chooses among its safe curves.
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
}

/// `http_server_config:` of a web config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; the server speaks HTTP/1.1.
    #[serde(default)]
    pub http2: Option<bool>,
    /// Security headers added to every response (the exporter-toolkit's allowed set).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
