//! Checks that need the whole config: names follow Prometheus rules, every reference resolves,
//! every operation fits its metric. Each problem is returned with its YAML path; none stops
//! the others from being found.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use super::model::*;
use super::positions::{join_index, join_key};
use super::template::{self, Piece, FILE_FIELD};

/// Series a metric may hold when it does not say.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Longest line a file source accepts when it does not say: 1 MiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1 << 20;
/// How often a file source re-checks its globs and files without a notification.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a rotated-away or deleted file is still read after its last new data.
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(5);

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
}

impl Checker {
    fn report(&mut self, path: String, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            message: message.into(),
        });
    }
}

/// Returns every problem in `config`.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let mut metrics: HashMap<&str, &MetricConfig> = HashMap::new();
    for (i, m) in config.metrics.iter().enumerate() {
        let path = join_index("metrics", i);
        check_metric(&mut c, &path, m);
        if metrics.insert(m.name.as_str(), m).is_some() {
            c.report(
                join_key(&path, "name"),
                format!("metric {:?} is declared twice", m.name),
            );
        }
    }
    let mut source_names = HashSet::new();
    for (i, s) in config.sources.iter().enumerate() {
        let path = join_index("sources", i);
        if s.name.trim().is_empty() {
            c.report(join_key(&path, "name"), "a source needs a non-empty name");
        } else if !source_names.insert(s.name.as_str()) {
            c.report(
                join_key(&path, "name"),
                format!("source name {:?} is used twice", s.name),
            );
        }
        check_source(&mut c, &path, s, &metrics);
    }
    c.problems
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

fn check_metric(c: &mut Checker, path: &str, m: &MetricConfig) {
    let name_path = join_key(path, "name");
    let name = m.name.as_str();
    if !is_metric_name(name) {
        c.report(
            name_path.clone(),
            format!("invalid metric name {name:?}: use letters, digits, `_` and `:`, not starting with a digit"),
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
            (MetricKind::Counter, false) => c.report(
                name_path.clone(),
                format!("counter names end in `_total` by Prometheus convention: rename {name:?} to \"{name}_total\""),
            ),
            (MetricKind::Gauge | MetricKind::Histogram, true) => c.report(
                name_path.clone(),
                format!("only counters end in `_total`; {name:?} is a {}", m.kind.as_str()),
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
    if m.max_series == Some(0) {
        c.report(
            join_key(path, "max_series"),
            "max_series must be at least 1",
        );
    }
}

fn check_source(
    c: &mut Checker,
    path: &str,
    s: &SourceConfig,
    metrics: &HashMap<&str, &MetricConfig>,
) {
    match &s.file {
        None => c.report(path.to_owned(), "a source needs a kind: `file:`"),
        Some(f) => check_file_source(c, &join_key(path, "file"), f),
    }
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
        let fields = match regex::Regex::new(&rule.regex) {
            Ok(re) => {
                let mut names: BTreeSet<String> =
                    re.capture_names().flatten().map(String::from).collect();
                if names.contains(FILE_FIELD) {
                    c.report(
                        join_key(&rp, "regex"),
                        format!("capture name `{FILE_FIELD}` is reserved for the path of the file"),
                    );
                }
                names.insert(FILE_FIELD.to_owned());
                Some(names)
            }
            Err(e) => {
                c.report(join_key(&rp, "regex"), format!("invalid regex: {e}"));
                None
            }
        };
        for (j, update) in rule.update.iter().enumerate() {
            let up = join_index(&join_key(&rp, "update"), j);
            check_update(c, &up, update, metrics, fields.as_ref());
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
}

/// The operations an update may name, in the order they are reported.
fn operations(u: &UpdateConfig) -> Vec<(&'static str, &ValueSpec)> {
    [
        ("inc", &u.inc),
        ("add", &u.add),
        ("dec", &u.dec),
        ("set", &u.set),
        ("observe", &u.observe),
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
    let allowed: &[&str] = match metric.kind {
        MetricKind::Counter => &["inc", "add"],
        MetricKind::Gauge => &["set", "inc", "dec", "add"],
        MetricKind::Histogram => &["observe"],
    };
    if let Some((op, _)) = ops.first() {
        if !allowed.contains(op) {
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
    for (op, value) in &ops {
        let vp = join_key(path, op);
        match value {
            ValueSpec::Number(n) if !n.is_finite() => c.report(vp, "the value must be finite"),
            ValueSpec::Number(n) if *n < 0.0 && metric.kind == MetricKind::Counter => {
                c.report(vp, "a counter only goes up: the value must not be negative")
            }
            ValueSpec::Number(_) => {}
            ValueSpec::Text(text) => match template::parse(text) {
                Err(e) => c.report(vp, e),
                Ok(pieces) => match pieces.as_slice() {
                    [Piece::Field(_)] => check_fields(c, &vp, &pieces, fields),
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
                    .filter(|f| *f != FILE_FIELD)
                    .collect();
                let hint = closest(name, fields.iter().map(String::as_str))
                    .map(|k| format!(" (did you mean `${k}`?)"))
                    .unwrap_or_default();
                c.report(
                    path.to_owned(),
                    format!(
                        "unknown field `${name}`{hint}; the regex captures: {}, and `${FILE_FIELD}` is the file's path",
                        if captures.is_empty() { "nothing (add named groups like (?P<name>...))".to_owned() } else { captures.join(", ") }
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
fn did_you_mean<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> String {
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
}
