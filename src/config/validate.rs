//! Checks that need the whole config: names follow Prometheus rules, every reference resolves,
//! every operation fits its metric. Each problem is returned with its YAML path; none stops
//! the others from being found.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use super::kinds::{Extractor, KindError, SourceKind};
use super::model::*;
use super::positions::{join_index, join_key};
use super::template::{
    self, Piece, FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TARGET_FIELD, TIME_FIELD,
};

/// Series a metric may hold when it does not say.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Longest label value when a metric does not say (bytes; Loki and Mimir default to 2048 too).
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: usize = 2048;
/// Longest line a file source accepts when it does not say: 1 MiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1 << 20;
/// How often a file source re-checks its globs and files without a notification.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a rotated-away or deleted file is still read after its last new data.
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(5);

/// Most exposition text a config's `label_values` may pre-declare, over every metric (bytes,
/// estimated from the values, label names and samples per series): every combination is a
/// series made at start (and at a reload's dry build) and rendered at every scrape, so an
/// unbounded product (64 labels of 2 values is 2^64 series) must be refused before anything
/// is allocated.
pub const MAX_DECLARED_BYTES: u128 = 64 << 20;

/// The state a state metric's series takes while its source fails: the exporter cannot see it.
pub const UNKNOWN_STATE: &str = "unknown";

/// Prometheus' default histogram buckets.
pub fn default_buckets() -> Vec<f64> {
    vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// A problem at a YAML path.
pub struct Problem {
    pub path: String,
    pub message: String,
}

struct Checker {
    problems: Vec<Problem>,
    /// See [`ValidationContext::drop_in`].
    drop_in: bool,
    /// The config's own grok patterns, for rules' `grok:`.
    grok_patterns: std::collections::BTreeMap<String, String>,
}

impl Checker {
    fn report(&mut self, path: String, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            message: message.into(),
        });
    }
}

/// What validation needs to know about entries that did not deserialize.
#[derive(Debug, Default)]
pub struct ValidationContext {
    /// The position in the file of each metric in `Config::metrics` (entries that failed to
    /// deserialize are missing from it, so positions and list indexes can differ).
    pub metric_indexes: Vec<usize>,
    /// The same for sources.
    pub source_indexes: Vec<usize>,
    /// The same for probe modules.
    pub module_indexes: Vec<usize>,
    /// Names of metric entries that failed to deserialize: references to them are not errors
    /// of their own.
    pub broken_metrics: Vec<String>,
    /// A drop-in catalog module (one with `parity:`): it copies its dedicated exporter's
    /// metric names, so counters need not end in `_total` and gauges may.
    pub drop_in: bool,
}

/// Returns every problem in `config`.
pub fn validate(config: &Config, context: &ValidationContext) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
        drop_in: context.drop_in,
        grok_patterns: config.grok_patterns.clone(),
    };
    if let Err((name, e)) = crate::grok::check_user_patterns(&config.grok_patterns) {
        let definition = config.grok_patterns.get(&name).map_or("", String::as_str);
        c.report(
            join_key("grok_patterns", &name),
            e.in_expression(definition),
        );
    }
    let metric_index = |i: usize| context.metric_indexes.get(i).copied().unwrap_or(i);
    let source_index = |i: usize| context.source_indexes.get(i).copied().unwrap_or(i);
    let mut metrics: HashMap<&str, &MetricConfig> = HashMap::new();
    let mut declared_bytes: u128 = 0;
    for (i, m) in config.metrics.iter().enumerate() {
        let path = join_index("metrics", metric_index(i));
        check_metric(&mut c, &path, m, &mut declared_bytes);
        if metrics.insert(m.name.as_str(), m).is_some() {
            c.report(
                join_key(&path, "name"),
                format!("metric {:?} is declared twice", m.name),
            );
        }
    }
    for (i, m) in config.metrics.iter().enumerate() {
        if m.kind == MetricKind::State {
            let level = format!("{}_level", m.name);
            if metrics.contains_key(level.as_str()) {
                c.report(
                    join_key(&join_index("metrics", metric_index(i)), "name"),
                    format!("state metric {:?} exports {level:?} for its level, which another metric already uses", m.name),
                );
            }
        }
    }
    let mut source_names = HashSet::new();
    for (i, s) in config.sources.iter().enumerate() {
        let path = join_index("sources", source_index(i));
        if s.name.trim().is_empty() {
            c.report(join_key(&path, "name"), "a source needs a non-empty name");
        } else if !source_names.insert(s.name.as_str()) {
            c.report(
                join_key(&path, "name"),
                format!("source name {:?} is used twice", s.name),
            );
        }
        check_source(&mut c, &path, s, &metrics, &context.broken_metrics);
    }
    let module_index = |i: usize| context.module_indexes.get(i).copied().unwrap_or(i);
    let fed_by_sources = Config::metrics_fed_by(&config.sources);
    let mut module_names = HashSet::new();
    for (i, m) in config.modules.iter().enumerate() {
        let path = join_index("modules", module_index(i));
        if m.name.trim().is_empty() {
            c.report(join_key(&path, "name"), "a module needs a non-empty name");
        } else if !module_names.insert(m.name.as_str()) {
            c.report(
                join_key(&path, "name"),
                format!("module name {:?} is used twice", m.name),
            );
        } else if source_names.contains(m.name.as_str()) {
            c.report(
                join_key(&path, "name"),
                format!(
                    "module name {:?} is also a source's name; self-metrics label both by name, so give the module another",
                    m.name
                ),
            );
        }
        check_module(&mut c, &path, m, &metrics, &context.broken_metrics);
        for (j, rule) in m.rules.iter().enumerate() {
            for (k, update) in rule.update.iter().enumerate() {
                if fed_by_sources.contains(update.metric.as_str()) {
                    c.report(
                        join_key(&join_index(&join_key(&join_index(&join_key(&path, "rules"), j), "update"), k), "metric"),
                        format!(
                            "metric {:?} is fed by a source too; a metric is served either on /metrics (sources) or by /probe (modules): declare one for each",
                            update.metric
                        ),
                    );
                }
            }
        }
    }
    check_status(
        &mut c,
        config,
        &metrics,
        &fed_by_sources,
        &context.broken_metrics,
    );
    c.problems
}

/// Shortest `status.refresh`: the page and its JSON are rendered per request.
pub const MIN_STATUS_REFRESH: Duration = Duration::from_secs(1);
/// Longest `status.timeline`: the history kept per component covers about a week at most.
pub const MAX_STATUS_TIMELINE: Duration = Duration::from_secs(7 * 86_400);

/// `status:`: the board's metrics are state metrics sources feed, headlines are gauges or
/// counters, `group_by` is a label name, link templates name known variables and make URLs.
fn check_status(
    c: &mut Checker,
    config: &Config,
    metrics: &HashMap<&str, &MetricConfig>,
    fed_by_sources: &BTreeSet<&str>,
    broken: &[String],
) {
    let s = &config.status;
    let known = |c: &mut Checker, path: String, name: &str| -> Option<&MetricConfig> {
        if broken.iter().any(|b| b == name) {
            return None;
        }
        let found = metrics.get(name).copied();
        if found.is_none() {
            c.report(
                path,
                format!("metric {name:?} is not declared under `metrics`"),
            );
        }
        found
    };
    if let Some(title) = &s.title {
        if title.trim().is_empty() {
            c.report(
                "status.title".into(),
                "the title must not be empty (leave it out for `Status`)",
            );
        }
    }
    if let Some(list) = &s.metrics {
        let mut seen = HashSet::new();
        for (i, name) in list.iter().enumerate() {
            let path = join_index("status.metrics", i);
            if !seen.insert(name.as_str()) {
                c.report(path, format!("metric {name:?} is listed twice"));
                continue;
            }
            let Some(m) = known(c, path.clone(), name) else {
                continue;
            };
            if m.kind != MetricKind::State {
                c.report(
                    path,
                    format!("metric {name:?} is a {}; the board shows state metrics (put gauges under `headlines`)", m.kind.as_str()),
                );
            } else if !fed_by_sources.contains(name.as_str()) {
                c.report(
                    path,
                    format!("metric {name:?} is fed by no source (only probe modules, or nothing), so it is not on /metrics and has nothing to show"),
                );
            }
        }
    }
    if let Some(label) = &s.group_by {
        if !is_label_name(label) || label == "state" {
            c.report(
                "status.group_by".into(),
                format!("{label:?} is not a label name (letters, digits and `_`, not starting with a digit; not `state`)"),
            );
        }
    }
    if s.refresh.is_some_and(|r| r < MIN_STATUS_REFRESH) {
        c.report(
            "status.refresh".into(),
            "refresh must be at least 1s (every open page asks this often)",
        );
    }
    if s.timeline
        .is_some_and(|t| t < Duration::from_secs(60) || t > MAX_STATUS_TIMELINE)
    {
        c.report(
            "status.timeline".into(),
            "timeline must be between 1m and 7d (the history kept per component is bounded)",
        );
    }
    for (i, link) in s.links.iter().enumerate() {
        let path = join_index("status.links", i);
        if link.title.trim().is_empty() {
            c.report(join_key(&path, "title"), "a link needs a non-empty title");
        }
        let url_path = join_key(&path, "url");
        let pieces = match template::parse(&link.url) {
            Ok(p) => p,
            Err(e) => {
                c.report(url_path, e);
                continue;
            }
        };
        let on: Vec<&MetricConfig> = match &link.metrics {
            Some(names) => names
                .iter()
                .enumerate()
                .filter_map(|(j, n)| known(c, join_index(&join_key(&path, "metrics"), j), n))
                .collect(),
            None => metrics
                .values()
                .copied()
                .filter(|m| m.kind == MetricKind::State)
                .collect(),
        };
        let mut sample = String::new();
        for piece in &pieces {
            match piece {
                Piece::Literal(l) => sample.push_str(l),
                Piece::Field(f) if f == "metric" || f == "state" => sample.push('x'),
                Piece::Field(f) => {
                    if !on.iter().any(|m| m.labels.iter().any(|l| l == f)) {
                        c.report(
                            url_path.clone(),
                            format!(
                                "`${f}` is neither `$metric`, `$state` nor a label of {}",
                                if link.metrics.is_some() {
                                    "the metrics listed"
                                } else {
                                    "any state metric"
                                }
                            ),
                        );
                    }
                    sample.push('x');
                }
            }
        }
        let absolute = sample.starts_with('/') && !sample.starts_with("//");
        let web =
            reqwest::Url::parse(&sample).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !absolute && !web {
            c.report(
                url_path,
                format!(
                    "{:?} is not an http(s) URL or a path starting with `/`",
                    link.url
                ),
            );
        }
    }
    for (i, h) in s.headlines.iter().enumerate() {
        let path = join_index("status.headlines", i);
        let Some(m) = known(c, join_key(&path, "metric"), &h.metric) else {
            continue;
        };
        if !matches!(m.kind, MetricKind::Gauge | MetricKind::Counter) {
            c.report(
                join_key(&path, "metric"),
                format!(
                    "metric {:?} is a {}; a headline is a gauge or a counter",
                    h.metric,
                    m.kind.as_str()
                ),
            );
        } else if !fed_by_sources.contains(h.metric.as_str()) {
            c.report(
                join_key(&path, "metric"),
                format!(
                    "metric {:?} is fed by no source, so it is not on /metrics",
                    h.metric
                ),
            );
        }
    }
}

/// A sample target that makes a module's URL template a URL, for validating it: one that fits
/// where the template puts `$target`. At the start it is a whole URL (`$target`,
/// `$target/metrics`: json_exporter's form); in the host, followed by a port or joined to more
/// of the host name, a host name (`http://$target:8080/status`,
/// `http://$target.svc.cluster.local/`); alone in the authority a host and port
/// (`http://$target/status`); anywhere else (path, query) any text.
fn sample_target(url_template: &str) -> &'static str {
    const URL: &str = "http://localhost:9";
    const URL_HOST: &str = "http://localhost";
    const HOST: &str = "localhost";
    const HOST_PORT: &str = "localhost:9";
    let Ok(pieces) = template::parse(url_template) else {
        return HOST_PORT;
    };
    let Some(at) = pieces
        .iter()
        .position(|p| matches!(p, Piece::Field(f) if f == TARGET_FIELD))
    else {
        return HOST_PORT;
    };
    let literal = |p: Option<&Piece>| match p {
        Some(Piece::Literal(l)) => l.clone(),
        _ => String::new(),
    };
    let before = literal(at.checked_sub(1).and_then(|i| pieces.get(i)));
    let after = literal(pieces.get(at + 1));
    let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if before.trim().is_empty() {
        // A URL, or the start of one that the template goes on with (`$target:8080/x`).
        return if after.starts_with(':') || after.starts_with(host_char) {
            URL_HOST
        } else {
            URL
        };
    }
    let Some(scheme_end) = before.find("://") else {
        return HOST_PORT;
    };
    let in_authority = !before[scheme_end + 3..].contains(['/', '?', '#']);
    if !in_authority {
        return HOST_PORT;
    }
    let joined =
        before.ends_with(host_char) || after.starts_with(host_char) || after.starts_with(':');
    if joined {
        HOST
    } else {
        HOST_PORT
    }
}

/// A probe module: an `http:` source template whose URL or headers use `$target`, without an
/// interval (Prometheus' scrapes of `/probe` drive it), and its rules.
fn check_module(
    c: &mut Checker,
    path: &str,
    m: &SourceConfig,
    metrics: &HashMap<&str, &MetricConfig>,
    broken_metrics: &[String],
) {
    let mut http = None;
    let mut socket = None;
    let mut others = 0;
    for kind in m.kinds_present() {
        match kind {
            SourceKind::Http(h) => http = Some(h),
            SourceKind::Socket(s) => socket = Some(s),
            SourceKind::File(_) | SourceKind::Command(_) | SourceKind::StatusFile(_) => {
                let other = kind.key();
                others += 1;
                c.report(
                    join_key(path, other),
                    format!("a probe module fetches over HTTP or a socket only: `{other}:` cannot be probed (declare it under `sources:`)"),
                );
            }
        }
    }
    if let Some(s) = socket {
        if http.is_some() {
            c.report(
                join_key(path, "socket"),
                "a module has one kind; this one has http and socket",
            );
        }
        check_socket_module(c, &join_key(path, "socket"), s);
        if http.is_none() {
            check_rules(c, path, m, metrics, broken_metrics);
            return;
        }
    }
    let Some(h) = http else {
        if others == 0 {
            c.report(
                path.to_owned(),
                "a probe module needs `http:` with `$target` in its url or in a header, e.g. url: \"http://$target/status\", or `socket:` with address: \"$target\"",
            );
        }
        return;
    };
    let hp = join_key(path, "http");
    if h.interval.is_some() {
        c.report(
            join_key(&hp, "interval"),
            "a probe module runs when Prometheus scrapes /probe: `interval` does not apply (the scrape_interval decides)",
        );
    }
    let sample = sample_target(&h.url);
    let mut uses_target = false;
    let mut substitute = |c: &mut Checker, at: String, text: &str| -> String {
        match template::parse(text) {
            Err(e) => {
                c.report(at, e);
                text.to_owned()
            }
            Ok(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Literal(l) => out.push_str(&l),
                        Piece::Field(f) if f == TARGET_FIELD => {
                            uses_target = true;
                            out.push_str(sample);
                        }
                        Piece::Field(f) => {
                            c.report(
                                at.clone(),
                                format!("unknown field ${f}: a module's url and headers know only $target"),
                            );
                        }
                    }
                }
                out
            }
        }
    };
    let mut checked = h.clone();
    checked.interval = None;
    checked.url = substitute(c, join_key(&hp, "url"), &h.url);
    for (name, value) in checked.headers.iter_mut() {
        *value = substitute(c, join_key(&join_key(&hp, "headers"), name), value);
    }
    if !uses_target {
        c.report(
            join_key(&hp, "url"),
            "a probe module's url or one of its headers must use $target (the `target` parameter of /probe), e.g. \"http://$target/status\"",
        );
    }
    check_http_source(c, &hp, &checked, Some((&h.url, sample)));
    check_rules(c, path, m, metrics, broken_metrics);
}

/// A `socket:` probe module: its address is a template of `$target` (host:port once the
/// target is in), no interval, and the rest as in sources.
fn check_socket_module(c: &mut Checker, sp: &str, s: &crate::config::SocketSourceConfig) {
    if s.interval.is_some() {
        c.report(
            join_key(sp, "interval"),
            "a probe module runs when Prometheus scrapes /probe: `interval` does not apply (the scrape_interval decides)",
        );
    }
    let Some(address) = &s.address else {
        c.report(
            sp.to_owned(),
            "a socket probe module connects to `address` made of the target (`$target` for host:port, `$target:6379` for a host); a Unix `path` cannot be probed",
        );
        return;
    };
    let ap = join_key(sp, "address");
    match template::parse(address) {
        Err(e) => c.report(ap, e),
        Ok(pieces) => {
            let mut uses_target = false;
            for p in &pieces {
                match p {
                    Piece::Field(f) if f == TARGET_FIELD => uses_target = true,
                    Piece::Field(f) => c.report(
                        ap.clone(),
                        format!("unknown field ${f}: a module's address knows only $target"),
                    ),
                    Piece::Literal(_) => {}
                }
            }
            if !uses_target {
                c.report(
                    ap,
                    "a probe module's address must use $target (the `target` parameter of /probe), e.g. \"$target\" or \"$target:6379\"",
                );
            }
        }
    }
    let mut checked = s.clone();
    checked.address = Some("localhost:9".into());
    checked.interval = None;
    check_socket_source(c, sp, &checked);
}

fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What a metric's `label_values` pre-declare: series (every combination) and an estimate of
/// their exposition in bytes; `None` past u128 (hundreds of labels).
fn declared_size(m: &MetricConfig) -> (Option<u128>, Option<u128>) {
    let Some(values) = &m.label_values else {
        return (Some(0), Some(0));
    };
    // Labels without a list, or lists of names that are no labels, are errors of their own.
    let lists: Vec<&Vec<LabelValue>> = m.labels.iter().filter_map(|l| values.get(l)).collect();
    let series = lists
        .iter()
        .try_fold(1u128, |n, l| n.checked_mul(l.len() as u128));
    let bytes = series.and_then(|series| {
        if series == 0 {
            return Some(0);
        }
        let max = m
            .max_label_value_length
            .unwrap_or(DEFAULT_MAX_LABEL_VALUE_LENGTH) as u128;
        // Each value of a label is in series / (its list's length) combinations.
        let mut text = 0u128;
        for list in &lists {
            let values: u128 = list.iter().map(|v| (v.0.len() as u128).min(max)).sum();
            text = text.checked_add(values.checked_mul(series / list.len() as u128)?)?;
        }
        let per_series = match m.kind {
            MetricKind::Histogram => {
                m.buckets.as_ref().map_or(default_buckets().len(), Vec::len) as u128 + 3
            }
            MetricKind::State => m.states.as_ref().map_or(0, Vec::len) as u128 + 2,
            _ => 1,
        };
        // Name, suffix, `le` or `state`, the value, punctuation: 48 bytes is generous.
        let line =
            (m.name.len() + 48 + m.labels.iter().map(|l| l.len() + 4).sum::<usize>()) as u128;
        per_series.checked_mul(series.checked_mul(line)?.checked_add(text)?)
    });
    (series, bytes)
}

/// `n` written out, or roughly (`1.2e45`) when it did not fit a u128.
fn count_text(n: Option<u128>, m: &MetricConfig) -> String {
    match n {
        Some(n) => n.to_string(),
        None => {
            let values = m.label_values.as_ref();
            let rough: f64 = m
                .labels
                .iter()
                .filter_map(|l| values?.get(l))
                .map(|list| list.len() as f64)
                .product();
            format!("about {rough:.1e}")
        }
    }
}

/// Bytes as MiB, with one decimal unless whole.
fn mib(bytes: u128) -> String {
    if bytes.is_multiple_of(1 << 20) {
        return format!("{} MiB", bytes >> 20);
    }
    format!("{:.1} MiB", bytes as f64 / (1u128 << 20) as f64)
}

fn check_metric(c: &mut Checker, path: &str, m: &MetricConfig, declared_bytes: &mut u128) {
    let name_path = join_key(path, "name");
    let name = m.name.as_str();
    if !is_metric_name(name) {
        c.report(
            name_path.clone(),
            format!("invalid metric name {name:?}: use letters, digits, `_` and `:`, not starting with a digit"),
        );
    } else if name.starts_with("process_") {
        c.report(
            name_path.clone(),
            format!("metric name {name:?} uses the prefix `process_`, which the exporter's process metrics use"),
        );
    } else if name.starts_with("quarry_") {
        c.report(
            name_path.clone(),
            format!("metric name {name:?} uses the prefix `quarry_`, which is reserved for the exporter's own metrics"),
        );
    } else {
        for suffix in ["_bucket", "_sum", "_count"] {
            if name.ends_with(suffix) {
                c.report(
                    name_path.clone(),
                    format!("metric name {name:?} ends in `{suffix}`, which Prometheus reserves for histogram series"),
                );
            }
        }
        match (m.kind, name.ends_with("_total")) {
            (MetricKind::Counter, false) if !c.drop_in => c.report(
                name_path.clone(),
                format!("counter names end in `_total` by Prometheus convention: rename {name:?} to \"{name}_total\""),
            ),
            // A drop-in keeps its exporter's gauges named `_total` too (redis_exporter's
            // `redis_migrate_cached_sockets_total`); histograms and states are never copies.
            (MetricKind::Gauge, true) if c.drop_in => {}
            (MetricKind::Gauge | MetricKind::Histogram | MetricKind::State, true) => c.report(
                name_path.clone(),
                format!(
                    "only counters end in `_total`; {name:?} is a {}{}",
                    m.kind.as_str(),
                    if m.kind == MetricKind::Gauge {
                        " (an upstream running total is a counter: declare it `type: counter` and update it with `total:`)"
                    } else {
                        ""
                    }
                ),
            ),
            _ => {}
        }
    }
    if m.help.trim().is_empty() {
        c.report(
            join_key(path, "help"),
            "help must say what the metric measures",
        );
    }
    let mut seen = HashSet::new();
    for (i, label) in m.labels.iter().enumerate() {
        let lp = join_index(&join_key(path, "labels"), i);
        if !is_label_name(label) {
            c.report(
                lp,
                format!("invalid label name {label:?}: use letters, digits and `_`, not starting with a digit"),
            );
        } else if label.starts_with("__") {
            c.report(
                lp,
                format!("label name {label:?} starts with `__`, which Prometheus reserves"),
            );
        } else if m.kind == MetricKind::Histogram && label == "le" {
            c.report(
                lp,
                "a histogram cannot have a label `le`: Prometheus uses it for the bucket bound",
            );
        } else if !seen.insert(label.as_str()) {
            c.report(lp, format!("label {label:?} is listed twice"));
        }
    }
    match (&m.buckets, m.kind) {
        (Some(_), MetricKind::Counter | MetricKind::Gauge) => c.report(
            join_key(path, "buckets"),
            format!(
                "buckets are for histograms; {name:?} is a {}",
                m.kind.as_str()
            ),
        ),
        (Some(buckets), MetricKind::Histogram) => {
            if buckets.is_empty() {
                c.report(join_key(path, "buckets"), "buckets must not be empty");
            }
            for (i, pair) in buckets.windows(2).enumerate() {
                if pair[1] <= pair[0] {
                    c.report(
                        join_index(&join_key(path, "buckets"), i + 1),
                        format!("buckets must increase: {} follows {}", pair[1], pair[0]),
                    );
                }
            }
            for (i, b) in buckets.iter().enumerate() {
                if !b.is_finite() {
                    c.report(
                        join_index(&join_key(path, "buckets"), i),
                        "bucket bounds must be finite (+Inf is always added)",
                    );
                }
            }
        }
        _ => {}
    }
    if m.le_format.is_some() && m.kind != MetricKind::Histogram {
        c.report(
            join_key(path, "le_format"),
            format!(
                "le_format is for histograms; {name:?} is a {}",
                m.kind.as_str()
            ),
        );
    }
    if m.max_series == Some(0) {
        c.report(
            join_key(path, "max_series"),
            "max_series must be at least 1",
        );
    }
    if m.max_label_value_length == Some(0) {
        c.report(
            join_key(path, "max_label_value_length"),
            "max_label_value_length must be at least 1 (bytes)",
        );
    } else if m.max_label_value_length.is_some_and(|n| n > 1 << 20) {
        c.report(
            join_key(path, "max_label_value_length"),
            "max_label_value_length must be at most 1048576 (1 MiB)",
        );
    }
    match (&m.states, m.kind) {
        (None, MetricKind::State) => c.report(
            path.to_owned(),
            format!("state metric {name:?} needs `states`: its states from best to worst, e.g. [up, degraded, down]"),
        ),
        (Some(_), k) if k != MetricKind::State => c.report(
            join_key(path, "states"),
            format!("states are for state metrics; {name:?} is a {}", k.as_str()),
        ),
        (Some(states), _) => {
            if states.is_empty() {
                c.report(join_key(path, "states"), "states must not be empty");
            }
            let mut seen = HashSet::new();
            for (i, st) in states.iter().enumerate() {
                if st.trim().is_empty() {
                    c.report(join_index(&join_key(path, "states"), i), "a state needs a name");
                } else if !seen.insert(st.as_str()) {
                    c.report(join_index(&join_key(path, "states"), i), format!("state {st:?} is listed twice"));
                }
            }
        }
        _ => {}
    }
    if let Some(states) = &m.states {
        if let Some(i) = states.iter().position(|st| st == UNKNOWN_STATE) {
            c.report(
                join_index(&join_key(path, "states"), i),
                format!("`{UNKNOWN_STATE}` is the state the exporter gives a series it cannot see (its source failing); leave it out"),
            );
        }
    }
    positive(c, path, "expire_after", m.expire_after);
    if let Some(values) = &m.label_values {
        let vp = join_key(path, "label_values");
        for (label, list) in values {
            if !m.labels.contains(label) {
                c.report(
                    join_key(&vp, label),
                    format!(
                        "{label:?} is not a label of {name:?} (its labels: {})",
                        list_or_none(&m.labels)
                    ),
                );
            } else if list.is_empty() {
                c.report(join_key(&vp, label), "give at least one value");
            }
        }
        let missing: Vec<&str> = m
            .labels
            .iter()
            .filter(|l| !values.contains_key(*l))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            c.report(
                vp.clone(),
                format!(
                    "every combination is exported, so every label needs its values; missing: {}",
                    missing.join(", ")
                ),
            );
        }
        // Counted in u128 with checked arithmetic: the product of a few dozen short lists
        // passes any machine word (it wrapped to 0 once, and the build then ran out of memory).
        let cap = m.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        let (series, bytes) = declared_size(m);
        if series.is_none_or(|n| n > cap as u128) {
            c.report(
                vp,
                format!(
                    "{} combinations is more than max_series ({cap}): every combination is a series made at start, and they must fit under the cap",
                    count_text(series, m)
                ),
            );
        } else {
            let total = bytes.and_then(|b| declared_bytes.checked_add(b));
            match total {
                Some(total) if total <= MAX_DECLARED_BYTES => *declared_bytes = total,
                _ => {
                    let before = match total {
                        Some(total) if *declared_bytes > 0 => format!(
                            "; with the {} the metrics before it pre-declare that is {}",
                            mib(*declared_bytes),
                            mib(total)
                        ),
                        _ => String::new(),
                    };
                    c.report(
                        vp,
                        format!(
                            "{} combinations make about {} of exposition{before}, more than the {} the label_values of a config may pre-declare: declare fewer or shorter values",
                            count_text(series, m),
                            bytes.map_or("more than 2^128 bytes".to_owned(), mib),
                            mib(MAX_DECLARED_BYTES)
                        ),
                    );
                }
            }
        }
    }
    if m.kind == MetricKind::State && m.labels.iter().any(|l| l == "state") {
        c.report(
            join_key(path, "labels"),
            "a state metric cannot have a label `state`: it holds the state names",
        );
    }
}

fn check_source(
    c: &mut Checker,
    path: &str,
    s: &SourceConfig,
    metrics: &HashMap<&str, &MetricConfig>,
    broken_metrics: &[String],
) {
    if let Err(e) = s.kind() {
        report_kind_error(c, path, &e);
    }
    // Each kind present is checked, even beside another (all errors at once).
    for kind in s.kinds_present() {
        let kp = join_key(path, kind.key());
        match kind {
            SourceKind::File(f) => check_file_source(c, &kp, f),
            SourceKind::Http(h) => check_http_source(c, &kp, h, None),
            SourceKind::Command(cmd) => check_command_source(c, &kp, cmd),
            SourceKind::StatusFile(f) => check_status_file_source(c, &kp, f),
            SourceKind::Socket(sock) => check_socket_source(c, &kp, sock),
        }
    }
    check_rules(c, path, s, metrics, broken_metrics);
}

/// A `socket:` source at `sp`: what [`crate::source::socket::problems`] finds, each at its key.
fn check_socket_source(c: &mut Checker, sp: &str, s: &crate::config::SocketSourceConfig) {
    for (key, message) in crate::source::socket::problems(s) {
        let at = if key.is_empty() {
            sp.to_owned()
        } else {
            join_key(sp, &key)
        };
        c.report(at, message);
    }
}

/// A `command:` source at `cp`.
fn check_command_source(c: &mut Checker, cp: &str, cmd: &CommandSourceConfig) {
    if cmd.argv.is_empty() || cmd.argv[0].trim().is_empty() {
        c.report(
            join_key(cp, "argv"),
            "argv needs the program to run, e.g. [\"/usr/bin/stat\", \"-c\", \"%s\", \"file\"]",
        );
    }
    positive(c, cp, "timeout", cmd.timeout);
    positive(c, cp, "interval", cmd.interval);
    if cmd.max_output_bytes == Some(0) {
        c.report(
            join_key(cp, "max_output_bytes"),
            "max_output_bytes must be at least 1",
        );
    }
}

/// A `status_file:` source at `fp`.
fn check_status_file_source(c: &mut Checker, fp: &str, f: &StatusFileSourceConfig) {
    if f.path.trim().is_empty() {
        c.report(join_key(fp, "path"), "path needs the file to read");
    }
    positive(c, fp, "interval", f.interval);
    positive(c, fp, "timeout", f.timeout);
    if f.max_bytes == Some(0) {
        c.report(join_key(fp, "max_bytes"), "max_bytes must be at least 1");
    }
}

/// Checks the rules of a source or module: names, extractors, updates.
fn check_rules(
    c: &mut Checker,
    path: &str,
    s: &SourceConfig,
    metrics: &HashMap<&str, &MetricConfig>,
    broken_metrics: &[String],
) {
    // With several kinds (already an error), the rules are read as the file kind's.
    let kinds = s.kinds_present();
    let lines = kinds.iter().any(SourceKind::reads_lines);
    let container = kinds
        .iter()
        .any(|k| matches!(k, SourceKind::File(f) if f.format != crate::config::FileFormat::Plain));
    let mut rule_names = HashSet::new();
    for (i, rule) in s.rules.iter().enumerate() {
        let rp = join_index(&join_key(path, "rules"), i);
        if let Some(name) = &rule.name {
            if !rule_names.insert(name.as_str()) {
                c.report(
                    join_key(&rp, "name"),
                    format!("rule name {name:?} is used twice in this source"),
                );
            }
        }
        let fields = check_extractor(c, &rp, rule, lines).map(|mut fields| {
            fields.insert(SOURCE_FIELD.to_owned());
            if container {
                fields.insert(STREAM_FIELD.to_owned());
                fields.insert(TIME_FIELD.to_owned());
            }
            check_derived(c, &rp, rule, &mut fields);
            fields
        });
        for (j, update) in rule.update.iter().enumerate() {
            let up = join_index(&join_key(&rp, "update"), j);
            if broken_metrics.contains(&update.metric) {
                continue; // its declaration has an error of its own
            }
            check_update(c, &up, update, metrics, fields.as_ref(), lines);
        }
    }
}

/// Reports a source or rule without exactly one kind: at the entry when it has none, at the
/// second kind's key when it has several.
fn report_kind_error(c: &mut Checker, path: &str, e: &KindError) {
    match e {
        KindError::Missing { .. } => c.report(path.to_owned(), e.to_string()),
        KindError::Several { present, .. } => c.report(join_key(path, present[1]), e.to_string()),
    }
}

fn positive(c: &mut Checker, path: &str, key: &str, d: Option<Duration>) {
    if d == Some(Duration::ZERO) {
        c.report(join_key(path, key), format!("{key} must be more than 0"));
    }
}

/// Checks an `http:` source, or a module's with `$target` already replaced by a sample:
/// then `template` is the URL as written and the sample, so that a message shows what the
/// user wrote rather than a URL they never did.
fn check_http_source(
    c: &mut Checker,
    path: &str,
    h: &HttpSourceConfig,
    template: Option<(&str, &str)>,
) {
    let shown = |e: &dyn std::fmt::Display| match template {
        Some((written, sample)) => {
            format!("invalid URL {written:?}: {e} (checked with $target = {sample:?})")
        }
        None => format!("invalid URL {:?}: {e}", h.url),
    };
    match reqwest::Url::parse(&h.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(u) => c.report(
            join_key(path, "url"),
            format!("the URL scheme must be http or https, not {:?}", u.scheme()),
        ),
        Err(e) => c.report(join_key(path, "url"), shown(&e)),
    }
    if let Some(m) = &h.method {
        if reqwest::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
            c.report(
                join_key(path, "method"),
                format!("invalid HTTP method {m:?}"),
            );
        }
    }
    if h.body.is_some() && h.body_file.is_some() {
        c.report(
            join_key(path, "body_file"),
            "give body or body_file, not both",
        );
    }
    for (name, value) in &h.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.report(
                join_key(&join_key(path, "headers"), name),
                format!("invalid header name {name:?}"),
            );
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            c.report(
                join_key(&join_key(path, "headers"), name),
                "invalid header value (control characters?)",
            );
        }
    }
    if h.basic_auth.is_some() && h.bearer_token_file.is_some() {
        c.report(
            join_key(path, "bearer_token_file"),
            "give basic_auth or bearer_token_file, not both",
        );
    }
    if let Some(tls) = &h.tls {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            c.report(
                join_key(path, "tls"),
                "a client certificate needs both cert_file and key_file",
            );
        }
        if let Some(name) = &tls.server_name {
            if reqwest::Url::parse(&format!("https://{name}/"))
                .ok()
                .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(name)))
                != Some(true)
            {
                c.report(
                    join_key(&join_key(path, "tls"), "server_name"),
                    format!("{name:?} is not a host name or IP address"),
                );
            }
        }
    }
    check_client_settings(c, path, h);
    positive(c, path, "timeout", h.timeout);
    positive(c, path, "interval", h.interval);
    for (i, code) in h.accept_status.iter().flatten().enumerate() {
        if !(100..=599).contains(code) {
            c.report(
                join_index(&join_key(path, "accept_status"), i),
                format!("{code} is not an HTTP status code"),
            );
        }
    }
    if h.max_body_bytes == Some(0) {
        c.report(
            join_key(path, "max_body_bytes"),
            "max_body_bytes must be at least 1",
        );
    }
}

/// The settings of Prometheus' HTTP client config: proxy, OAuth2, `http_headers`.
fn check_client_settings(c: &mut Checker, path: &str, h: &HttpSourceConfig) {
    let http_url =
        |c: &mut Checker, at: String, url: &str, what: &str| match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            Ok(_) => c.report(
                at,
                format!("{what} must be an http or https URL with a host"),
            ),
            Err(e) => c.report(at, format!("invalid {what} {url:?}: {e}")),
        };
    if let Some(proxy) = &h.proxy_url {
        http_url(c, join_key(path, "proxy_url"), proxy, "proxy_url");
    }
    if let Some(o) = &h.oauth2 {
        let op = join_key(path, "oauth2");
        if h.basic_auth.is_some() || h.bearer_token_file.is_some() {
            c.report(
                op.clone(),
                "give one of basic_auth, bearer_token_file and oauth2, not several",
            );
        }
        if o.client_id.is_empty() {
            c.report(join_key(&op, "client_id"), "client_id must not be empty");
        }
        if o.client_secret.is_some() {
            c.report(
                join_key(&op, "client_secret"),
                "secrets come from files here: put the secret in a file and give client_secret_file",
            );
        } else if o.client_secret_file.is_none() {
            c.report(op.clone(), "oauth2 needs client_secret_file");
        }
        http_url(c, join_key(&op, "token_url"), &o.token_url, "token_url");
        for key in o.endpoint_params.keys() {
            if matches!(
                key.as_str(),
                "grant_type" | "scope" | "client_id" | "client_secret"
            ) {
                c.report(
                    join_key(&join_key(&op, "endpoint_params"), key),
                    format!("{key:?} is set by the exporter (use scopes for the scope)"),
                );
            }
        }
    }
    for (name, header) in &h.http_headers {
        let hp = join_key(&join_key(path, "http_headers"), name);
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.report(hp.clone(), format!("invalid header name {name:?}"));
        }
        if h.headers.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            c.report(
                hp.clone(),
                format!("header {name:?} is also in `headers`: give it in one of them"),
            );
        }
        if !header.secrets.is_empty() {
            c.report(
                join_key(&hp, "secrets"),
                "secrets come from files here: put each in a file and list it under files",
            );
        }
        for (i, v) in header.values.iter().enumerate() {
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                c.report(
                    join_index(&join_key(&hp, "values"), i),
                    "invalid header value (control characters?)",
                );
            }
        }
        if header.values.is_empty() && header.files.is_empty() && header.secrets.is_empty() {
            c.report(hp, "a header needs values or files");
        }
    }
}

fn is_field_name(name: &str) -> bool {
    is_label_name(name)
}

/// Checks a rule's extractor; returns the fields its matches have (`None` when it is broken).
fn check_extractor(
    c: &mut Checker,
    rp: &str,
    rule: &RuleConfig,
    lines: bool,
) -> Option<BTreeSet<String>> {
    let extractor = match rule.extractor() {
        Ok(extractor) => extractor,
        Err(e) => {
            report_kind_error(c, rp, &e);
            return None;
        }
    };
    if lines && rule.keep_absent {
        c.report(
            join_key(rp, "keep_absent"),
            "a log has no document for a series to be absent from: `keep_absent` is for page sources (to let idle log-fed series go, give the metric `expire_after`)",
        );
    }
    let key = extractor.key();
    let kp = join_key(rp, key);
    match extractor {
        Extractor::Regex(pattern) => match crate::extract::limits::regex(pattern) {
            Ok(re) => Some(capture_fields(c, rp, key, &re, lines)),
            Err(e) => {
                c.report(kp, e);
                None
            }
        },
        Extractor::Grok { expression, .. } => {
            let pattern = match crate::grok::compile(expression, &c.grok_patterns) {
                Ok(p) => p,
                Err(e) => {
                    c.report(kp, e.in_expression(expression));
                    return None;
                }
            };
            match crate::extract::limits::regex(&pattern) {
                Ok(re) => Some(capture_fields(c, rp, key, &re, lines)),
                Err(e) => {
                    c.report(kp, format!("the expanded pattern: {e}"));
                    None
                }
            }
        }
        // File sources read each record; page sources each line of the document.
        Extractor::Logfmt(l) => check_logfmt(c, &kp, l),
        Extractor::Json(j) => Some(check_query_fields(
            c,
            &kp,
            lines,
            j.for_each.as_deref(),
            &j.fields,
            |fe| crate::extract::json::path(fe).map(|_| ()),
            crate::extract::json::JsonExtractor::check_field,
        )),
        Extractor::Xml(x) => {
            if lines {
                return document_only(c, kp, key);
            }
            let declared = || x.namespaces.keys().map(String::as_str);
            let check = |expr: &str| crate::extract::xml::XmlExtractor::check(expr, declared());
            let fields = check_query_fields(
                c,
                &kp,
                lines,
                x.for_each.as_deref(),
                &x.fields,
                check,
                check,
            );
            for prefix in x.namespaces.keys() {
                if !is_field_name(prefix) {
                    c.report(
                        join_key(&join_key(&kp, "namespaces"), prefix),
                        format!("invalid namespace prefix {prefix:?}"),
                    );
                }
            }
            Some(fields)
        }
        Extractor::Html(h) => {
            if lines {
                return document_only(c, kp, key);
            }
            Some(check_query_fields(
                c,
                &kp,
                lines,
                h.for_each.as_deref(),
                &h.fields,
                |fe| crate::extract::html::selector(fe).map(|_| ()),
                crate::extract::html::HtmlExtractor::check_field,
            ))
        }
    }
}

/// Reports a document extractor (`xml:`, `html:`) in a file source's rule.
fn document_only(c: &mut Checker, kp: String, key: &str) -> Option<BTreeSet<String>> {
    c.report(
        kp,
        format!("a file source reads log records: its rules use `regex:`, `grok:`, `json:` or `logfmt:`, not `{key}:` (read whole documents with `status_file:`)"),
    );
    None
}

/// Checks a `logfmt:` extractor at `kp`; returns its fields.
fn check_logfmt(
    c: &mut Checker,
    kp: &str,
    l: &crate::config::LogfmtRuleConfig,
) -> Option<BTreeSet<String>> {
    if l.fields.is_empty() {
        c.report(
            join_key(kp, "fields"),
            "fields needs at least one `name: key`",
        );
    }
    for (name, key) in &l.fields {
        let fp = join_key(&join_key(kp, "fields"), name);
        if !is_field_name(name) {
            c.report(
                fp.clone(),
                format!("invalid field name {name:?}: use letters, digits and `_`"),
            );
        }
        if key.is_empty()
            || key
                .chars()
                .any(|ch| ch.is_whitespace() || ch == '=' || ch == '"')
        {
            c.report(
                fp,
                format!("{key:?} is not a logfmt key (no spaces, `=` or quotes)"),
            );
        }
    }
    let mut names: BTreeSet<String> = l.fields.keys().cloned().collect();
    names.insert(FILE_FIELD.to_owned());
    Some(names)
}

/// Checks a query extractor (`json:`, `xml:`, `html:`) at `kp`: its `for_each` with
/// `check_for_each`, each field's name and expression (`check_field`); returns its fields.
fn check_query_fields(
    c: &mut Checker,
    kp: &str,
    lines: bool,
    for_each: Option<&str>,
    fields: &std::collections::BTreeMap<String, String>,
    check_for_each: impl Fn(&str) -> Result<(), String>,
    check_field: impl Fn(&str) -> Result<(), String>,
) -> BTreeSet<String> {
    if let Some(fe) = for_each {
        if let Err(e) = check_for_each(fe) {
            c.report(join_key(kp, "for_each"), e);
        }
    }
    if fields.is_empty() {
        c.report(
            join_key(kp, "fields"),
            "fields needs at least one `name: expression`",
        );
    }
    for (name, expr) in fields {
        let fp = join_key(&join_key(kp, "fields"), name);
        if !is_field_name(name) {
            c.report(
                fp.clone(),
                format!("invalid field name {name:?}: use letters, digits and `_`"),
            );
        }
        if let Err(e) = check_field(expr) {
            c.report(fp, e);
        }
    }
    let mut names: BTreeSet<String> = fields.keys().cloned().collect();
    if lines {
        names.insert(FILE_FIELD.to_owned());
    }
    names
}

/// The fields of a regex (or expanded grok) rule: its capture names, and `$__file__` on files.
fn capture_fields(
    c: &mut Checker,
    rp: &str,
    key: &str,
    re: &regex::Regex,
    lines: bool,
) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = re.capture_names().flatten().map(String::from).collect();
    for reserved in [FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD] {
        if names.contains(reserved) {
            c.report(
                join_key(rp, key),
                format!("capture name `{reserved}` is reserved for a built-in field"),
            );
        }
    }
    if lines {
        names.insert(FILE_FIELD.to_owned());
    }
    names
}

/// Checks `derive:` (each reads a known field; its regex compiles and names its groups) and
/// `when:` (known fields, regexes that compile); adds the derived fields to `fields`.
fn check_derived(c: &mut Checker, rp: &str, rule: &RuleConfig, fields: &mut BTreeSet<String>) {
    // `unquote:` names the rule's own fields (not built-in or derived ones).
    for (i, name) in rule.unquote.iter().enumerate() {
        let name = name.strip_prefix('$').unwrap_or(name);
        let builtin = [FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD].contains(&name);
        if builtin || !fields.contains(name) {
            let own = fields
                .iter()
                .map(String::as_str)
                .filter(|f| ![FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD].contains(f));
            let hint = did_you_mean(name, own.clone());
            let list: Vec<&str> = own.collect();
            c.report(
                join_index(&join_key(rp, "unquote"), i),
                format!(
                    "unknown field {name:?}{hint}: unquote takes the rule's own fields ({})",
                    list.join(", ")
                ),
            );
        }
    }
    for (i, d) in rule.derive.iter().enumerate() {
        let dp = join_index(&join_key(rp, "derive"), i);
        match template::parse(&d.from).ok().as_deref() {
            Some([Piece::Field(f)]) if fields.contains(f) => {}
            Some([Piece::Field(f)]) => {
                let hint = closest(f, fields.iter().map(String::as_str))
                    .map(|k| format!(" (did you mean `${k}`?)"))
                    .unwrap_or_default();
                c.report(
                    join_key(&dp, "from"),
                    format!(
                        "unknown field `${f}`{hint}; the rule's fields so far: {}",
                        fields
                            .iter()
                            .map(|f| format!("${f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            _ => c.report(
                join_key(&dp, "from"),
                format!(
                    "`from` names one field, like \"$upstream\", not {:?}",
                    d.from
                ),
            ),
        }
        match crate::extract::limits::regex(&d.regex) {
            Ok(re) => {
                let names: Vec<&str> = re.capture_names().flatten().collect();
                if names.is_empty() {
                    c.report(
                        join_key(&dp, "regex"),
                        "the regex names no group: its named groups (?P<name>...) are the fields it makes",
                    );
                }
                for n in names {
                    if !fields.insert(n.to_owned()) {
                        c.report(
                            join_key(&dp, "regex"),
                            format!(
                                "group `{n}` is already a field of this rule; give it another name"
                            ),
                        );
                    }
                }
            }
            Err(e) => c.report(join_key(&dp, "regex"), e),
        }
    }
    for (name, pattern) in &rule.when {
        let wp = join_key(&join_key(rp, "when"), name);
        let name = name.strip_prefix('$').unwrap_or(name);
        if !fields.contains(name) {
            let hint = did_you_mean(name, fields.iter().map(String::as_str));
            c.report(wp.clone(), format!("unknown field {name:?}{hint}"));
        }
        if let Err(e) = crate::extract::limits::regex(pattern) {
            c.report(wp, e);
        }
    }
}

fn check_file_source(c: &mut Checker, path: &str, f: &FileSourceConfig) {
    if f.paths.is_empty() {
        c.report(join_key(path, "paths"), "paths needs at least one glob");
    }
    for (i, p) in f.paths.iter().enumerate() {
        let pp = join_index(&join_key(path, "paths"), i);
        if p.trim().is_empty() {
            c.report(pp, "empty path");
        } else if let Err(e) = glob::Pattern::new(p) {
            c.report(pp, format!("invalid glob {p:?}: {}", e.msg));
        }
    }
    for (i, p) in f.exclude.iter().enumerate() {
        if let Err(e) = glob::Pattern::new(p) {
            c.report(
                join_index(&join_key(path, "exclude"), i),
                format!("invalid glob {p:?}: {}", e.msg),
            );
        }
    }
    if f.max_line_length == Some(0) {
        c.report(
            join_key(path, "max_line_length"),
            "max_line_length must be at least 1",
        );
    }
    if f.poll_interval == Some(Duration::ZERO) {
        c.report(
            join_key(path, "poll_interval"),
            "poll_interval must be more than 0",
        );
    }
    if let Some(m) = &f.multiline {
        let mp = join_key(path, "multiline");
        match (&m.start, &m.continue_) {
            (Some(_), Some(_)) => c.report(
                join_key(&mp, "continue"),
                "give `start` or `continue`, not both",
            ),
            (None, None) => c.report(
                mp.clone(),
                "multiline needs `start` (a regex for the first line of a record) or `continue` (a regex for the lines that continue one)",
            ),
            _ => {}
        }
        for (key, pattern) in [("start", &m.start), ("continue", &m.continue_)] {
            if let Some(p) = pattern {
                if let Err(e) = crate::extract::limits::regex(p) {
                    c.report(join_key(&mp, key), e);
                }
            }
        }
        if m.max_bytes == Some(0) {
            c.report(join_key(&mp, "max_bytes"), "max_bytes must be at least 1");
        }
        positive(c, &mp, "flush_after", m.flush_after);
    }
}

/// The operations an update may name, in the order they are reported.
fn operations(u: &UpdateConfig) -> Vec<(&'static str, &ValueSpec)> {
    [
        ("inc", &u.inc),
        ("add", &u.add),
        ("dec", &u.dec),
        ("set", &u.set),
        ("observe", &u.observe),
        ("state", &u.state),
        ("total", &u.total),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
    .collect()
}

fn check_update(
    c: &mut Checker,
    path: &str,
    u: &UpdateConfig,
    metrics: &HashMap<&str, &MetricConfig>,
    fields: Option<&BTreeSet<String>>,
    lines: bool,
) {
    let ops = operations(u);
    if ops.len() > 1 {
        let names: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
        c.report(
            join_key(path, ops[1].0),
            format!(
                "an update has one operation; this one has {}",
                names.join(" and ")
            ),
        );
    }
    let Some(metric) = metrics.get(u.metric.as_str()) else {
        let hint = did_you_mean(&u.metric, metrics.keys().copied());
        c.report(
            join_key(path, "metric"),
            format!(
                "unknown metric {:?}{hint}; declare it under `metrics`",
                u.metric
            ),
        );
        return;
    };
    if u.on_failure.is_some() && (lines || u.set.is_none()) {
        c.report(
            join_key(path, "on_failure"),
            "`on_failure` is the value a `set:` of a page source (http, command, status_file) takes while the source fails".to_owned(),
        );
    }
    if u.count.is_some() && (u.map.is_some() || u.convert.is_some()) {
        c.report(
            join_key(path, "count"),
            "`count` makes the value a number of characters; it does not go with `map` or `as`"
                .to_owned(),
        );
    }
    let allowed: &[&str] = match (metric.kind, lines) {
        (MetricKind::Counter, true) => &["inc", "add"],
        (MetricKind::Counter, false) => &["inc", "add", "total"],
        (MetricKind::Gauge, _) => &["set", "inc", "dec", "add"],
        (MetricKind::Histogram, _) => &["observe"],
        (MetricKind::State, _) => &["state"],
    };
    if let Some((op, _)) = ops.first() {
        if *op == "total" && lines && metric.kind == MetricKind::Counter {
            c.report(
                join_key(path, op),
                format!("`total` takes an upstream running total from a document (http, command, status_file); in a log each line is an event: use `inc` or `add` on {:?}", metric.name),
            );
        } else if *op == "set" && metric.kind == MetricKind::Counter {
            c.report(
                join_key(path, op),
                format!(
                    "a counter is not set; for an upstream running total (nginx `accepts`, HAProxy `stot`) use `total`{}, to count events use `inc` or `add` on {:?}",
                    if lines { " in a page source" } else { "" },
                    metric.name
                ),
            );
        } else if !allowed.contains(op) {
            c.report(
                join_key(path, op),
                format!(
                    "`{op}` does not fit {} {:?}; use {}",
                    metric.kind.as_str(),
                    metric.name,
                    allowed.join(", ")
                ),
            );
        }
    } else if metric.kind != MetricKind::Counter {
        c.report(
            path.to_owned(),
            format!(
                "an update of {} {:?} needs an operation: {}",
                metric.kind.as_str(),
                metric.name,
                allowed.join(", ")
            ),
        );
    }

    let declared: BTreeSet<&str> = metric.labels.iter().map(String::as_str).collect();
    let given: BTreeSet<&str> = u.labels.keys().map(String::as_str).collect();
    for extra in given.difference(&declared) {
        c.report(
            join_key(&join_key(path, "labels"), extra),
            format!(
                "{extra:?} is not a label of metric {:?} (its labels: {})",
                metric.name,
                list_or_none(&metric.labels)
            ),
        );
    }
    let missing: Vec<&str> = declared.difference(&given).copied().collect();
    if !missing.is_empty() {
        c.report(
            join_key(path, "labels"),
            format!(
                "metric {:?} needs a value for every label; missing: {}",
                metric.name,
                missing.join(", ")
            ),
        );
    }

    for (label, value) in &u.labels {
        let lp = join_key(&join_key(path, "labels"), label);
        match template::parse(&value.0) {
            Err(e) => c.report(lp, e),
            Ok(pieces) => check_fields(c, &lp, &pieces, fields),
        }
    }
    let states: Vec<&str> = metric.states.iter().flatten().map(String::as_str).collect();
    let is_state = metric.kind == MetricKind::State;
    if u.convert.is_some() && u.map.is_some() {
        c.report(
            join_key(path, "as"),
            "give `map` or `as`, not both: map values are final",
        );
    }
    if u.convert.is_some() && is_state {
        c.report(
            join_key(path, "as"),
            "`as` converts numbers; a state metric takes state names (use `map`)",
        );
    }
    if let Some(scale) = u.scale {
        let reads_a_field = ops.first().is_some_and(|(_, v)| {
            matches!(v, ValueSpec::Text(t) if matches!(template::parse(t).ok().as_deref(), Some([Piece::Field(_)])))
        });
        if !reads_a_field && !is_state {
            c.report(
                join_key(path, "scale"),
                "`scale` multiplies a value read from a field (like `add: $ms`); this update has none to scale",
            );
        } else if is_state {
            c.report(
                join_key(path, "scale"),
                "`scale` multiplies numbers; a state metric takes state names",
            );
        } else if !scale.is_finite() || scale == 0.0 {
            c.report(
                join_key(path, "scale"),
                format!("scale must be a finite number other than 0, not {scale}"),
            );
        }
    }
    if let Some(none) = u.none {
        let reads_a_field = ops.first().is_some_and(|(_, v)| {
            matches!(v, ValueSpec::Text(t) if matches!(template::parse(t).ok().as_deref(), Some([Piece::Field(_)])))
        });
        if !reads_a_field {
            c.report(
                join_key(path, "none"),
                "`none` says what a field's `-`, empty or missing value does (like `add: $bytes, none: 0`); this update reads no field",
            );
        } else if is_state && none != NoneValue::Skip {
            c.report(
                join_key(path, "none"),
                "a state metric takes state names: `none: skip` leaves the state as it is",
            );
        } else if let NoneValue::Value(v) = none {
            if !v.is_finite() {
                c.report(
                    join_key(path, "none"),
                    format!("`none` is `skip` or a finite number, not {v}"),
                );
            } else if v < 0.0 && metric.kind == MetricKind::Counter {
                c.report(
                    join_key(path, "none"),
                    format!(
                        "a counter does not go down: `none` is `skip` or a number ≥ 0, not {v}"
                    ),
                );
            }
        }
    }
    if u.default.is_some() && u.map.is_none() {
        c.report(
            join_key(path, "default"),
            "`default` goes with `map`: it is the value for unmapped text",
        );
    }
    let check_target = |c: &mut Checker, p: String, v: &str| {
        if is_state {
            if !states.contains(&v) {
                c.report(
                    p,
                    format!(
                        "{v:?} is not a state of {:?} (its states: {})",
                        metric.name,
                        states.join(", ")
                    ),
                );
            }
        } else if v.trim().parse::<f64>().is_err() {
            c.report(p, format!("map values are numbers here, not {v:?}"));
        }
    };
    for (key, value) in u.map.iter().flatten() {
        check_target(c, join_key(&join_key(path, "map"), key), &value.0);
    }
    if let Some(d) = &u.default {
        check_target(c, join_key(path, "default"), &d.0);
    }
    for (op, value) in &ops {
        let vp = join_key(path, op);
        match value {
            ValueSpec::Number(_) if *op == "state" => {
                c.report(vp, "a state is a name or a field like \"$status\"")
            }
            ValueSpec::Number(n) if !n.is_finite() => c.report(vp, "the value must be finite"),
            ValueSpec::Number(n) if *n < 0.0 && metric.kind == MetricKind::Counter => {
                c.report(vp, "a counter only goes up: the value must not be negative")
            }
            ValueSpec::Number(_) => {}
            ValueSpec::Text(text) => match template::parse(text) {
                Err(e) => c.report(vp, e),
                Ok(pieces) => match pieces.as_slice() {
                    [Piece::Field(_)] => check_fields(c, &vp, &pieces, fields),
                    [Piece::Literal(l)] if *op == "state" => {
                        if u.map.is_none() && !states.contains(&l.as_str()) {
                            c.report(
                                vp,
                                format!(
                                    "{l:?} is not a state of {:?} (its states: {})",
                                    metric.name,
                                    states.join(", ")
                                ),
                            );
                        }
                    }
                    [Piece::Literal(l)] if l.trim().parse::<f64>().is_ok() => {}
                    _ => c.report(
                        vp,
                        format!(
                            "the value must be a number or one field like \"$bytes\", not {text:?}"
                        ),
                    ),
                },
            },
        }
    }
}

fn check_fields(c: &mut Checker, path: &str, pieces: &[Piece], fields: Option<&BTreeSet<String>>) {
    let Some(fields) = fields else {
        return; // The regex did not compile; that error is already reported.
    };
    for piece in pieces {
        if let Piece::Field(name) = piece {
            if !fields.contains(name) {
                let captures: Vec<&str> = fields
                    .iter()
                    .map(String::as_str)
                    .filter(|f| !f.starts_with("__"))
                    .collect();
                let hint = closest(name, fields.iter().map(String::as_str))
                    .map(|k| format!(" (did you mean `${k}`?)"))
                    .unwrap_or_default();
                c.report(
                    path.to_owned(),
                    format!(
                        "unknown field `${name}`{hint}; the rule's fields: {}{}",
                        if captures.is_empty() {
                            "none (name regex groups like (?P<name>...))".to_owned()
                        } else {
                            captures.join(", ")
                        },
                        {
                            let built_in: Vec<String> = fields
                                .iter()
                                .filter(|f| f.starts_with("__"))
                                .map(|f| format!("`${f}`"))
                                .collect();
                            if built_in.is_empty() {
                                String::new()
                            } else {
                                format!("; built in: {}", built_in.join(", "))
                            }
                        }
                    ),
                );
            }
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// ` (did you mean "x"?)` when a known name is within a small edit distance.
pub fn did_you_mean<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> String {
    closest(wanted, known)
        .map(|k| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn closest<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_rules() {
        assert!(is_metric_name("http_requests_total"));
        assert!(is_metric_name("ns:rate5m"));
        assert!(!is_metric_name("5xx_total"));
        assert!(!is_metric_name("a-b"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("a:b"));
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("web_request_total", ["web_requests_total", "x"].into_iter()),
            " (did you mean \"web_requests_total\"?)"
        );
        assert_eq!(did_you_mean("zzz", ["web_requests_total"].into_iter()), "");
    }

    /// Issue 24, item 8: json_exporter users' templates put `$target` in the host.
    #[test]
    fn the_sample_target_fits_where_the_template_puts_it() {
        for (template, sample) in [
            ("$target", "http://localhost:9"),
            ("${target}/metrics", "http://localhost:9"),
            ("$target:8080/status", "http://localhost"),
            ("http://$target/status", "localhost:9"),
            ("https://user@${target}/status", "localhost:9"),
            ("http://$target:8080/status", "localhost"),
            ("http://$target.svc.cluster.local/status", "localhost"),
            ("http://api-$target/status", "localhost"),
            ("http://proxy:3128/probe?target=$target", "localhost:9"),
            ("http://host/$target/status", "localhost:9"),
        ] {
            assert_eq!(sample_target(template), sample, "{template}");
            let url = template
                .replace("${target}", sample)
                .replace("$target", sample);
            assert!(reqwest::Url::parse(&url).is_ok(), "{template} → {url}");
        }
    }
}
