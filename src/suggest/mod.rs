//! `quarry_exporter suggest`: a starter config from a sample (a log file, a page, a command's
//! output). Pure: text in, YAML out; the command only reads the sample.
//!
//! The sample is recognised by scoring, never by matching known files: documents (JSON that
//! parses whole, HTML, XML) are read as lists of items ([`documents`]); anything else as log
//! lines ([`logs`]): container framing scored per line, multi-line records by the head most
//! lines start with, then the record format that most records' first lines have, each from
//! the tables of [`shapes`]; fields of structured records are classified by name and values
//! ([`fields`]). Metrics follow Prometheus' conventions (`_total` counters, `_seconds` with
//! units scaled, `_bytes`). Every rule gets `examples:` cut from the sample, whose samples are
//! what the exporter's own pipeline makes of them; the result is loaded as `check` loads it,
//! so what is printed passes `check`. What was recognised, why, and what was not understood
//! are comments at the top.

mod documents;
pub(crate) mod draft;
mod fields;
mod logs;
mod shapes;

use std::path::{Path, PathBuf};

use draft::{dq, sq, Draft};

/// Where the sample came from (it decides the source the config reads).
#[derive(Debug, Clone)]
pub enum Origin {
    /// A file: a file source (a log) or a status file (a document) on that path.
    File(PathBuf),
    /// A URL: an `http` source (a document).
    Url(String),
    /// Standard input: a placeholder path to change.
    Stdin,
}

impl Origin {
    /// How the sample is named in what `suggest` prints.
    pub fn describe(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Url(u) => u.clone(),
            Origin::Stdin => "-".to_owned(),
        }
    }

    /// The name a metric prefix can come from: a file's name before its first `.` (and a
    /// date or number after a `-`), a URL's last path segment.
    fn stem(&self) -> Option<String> {
        let name = match self {
            Origin::File(p) => p.file_name()?.to_string_lossy().into_owned(),
            Origin::Url(u) => u
                .split(['?', '#'])
                .next()?
                .trim_end_matches('/')
                .rsplit('/')
                .next()?
                .to_owned(),
            Origin::Stdin => return None,
        };
        let stem = name.split('.').next().unwrap_or("");
        let stem = match stem.find(['-', '_']) {
            Some(i) if stem[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => &stem[..i],
            _ => stem,
        };
        (!stem.is_empty() && stem.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .then(|| stem.to_owned())
    }
}

/// How to suggest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The metric name prefix (and source name); default from the sample's name and format.
    pub prefix: Option<String>,
}

/// A suggested config and what was said about the sample.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The config, with what was recognised and not understood as comments at its top.
    pub yaml: String,
    pub recognised: Vec<String>,
    pub not_understood: Vec<String>,
}

/// Largest document written whole into an example.
const MAX_EXAMPLE_DOCUMENT: usize = 4096;
/// Records tried per rule for its example.
const EXAMPLE_TRIES: usize = 300;

/// Suggests a config for `text`, read from `origin`.
pub fn suggest(text: &str, origin: &Origin, options: &Options) -> Suggestion {
    let stem = origin.stem();
    let prefix = options.prefix.as_deref();
    let from_url = matches!(origin, Origin::Url(_));
    if let Some(kind) = documents::kind(text, from_url) {
        let source = match origin {
            Origin::Url(u) => vec![format!(
                "http: {{url: {}, interval: 15s, timeout: 10s}}",
                dq(u)
            )],
            Origin::File(p) => vec![format!(
                "status_file: {{path: {}, interval: 15s}}",
                sq(&absolute(p))
            )],
            Origin::Stdin => vec![
                "# the sample came from standard input: say where the document comes from".into(),
                "command: {argv: [/bin/cat, /path/to/document], interval: 15s}".into(),
            ],
        };
        let mut d = documents::draft(text, kind, stem.as_deref(), prefix, source);
        let example = document_example(text, kind);
        return finish(&mut d, origin, text, |_| {
            example.clone().into_iter().collect()
        });
    }
    let path = match origin {
        Origin::File(p) => absolute(p),
        Origin::Url(_) | Origin::Stdin => "/var/log/app.log".to_owned(),
    };
    let mut source = vec!["file:".to_owned(), format!("  paths: [{}]", sq(&path))];
    if !matches!(origin, Origin::File(_)) {
        source.insert(
            0,
            "# the sample was not a file: set `paths` to the files that hold such logs".into(),
        );
    }
    let (mut d, records) = logs::draft(text, stem.as_deref(), prefix, source);
    let lines: Vec<&str> = text.lines().take(logs::MAX_LINES).collect();
    let inputs: Vec<String> = records
        .iter()
        .take(EXAMPLE_TRIES)
        .map(|r| lines[r.lines.clone()].join("\n"))
        .collect();
    finish(&mut d, origin, text, |_| inputs.clone())
}

/// The path as the config should hold it: absolute, so the config works wherever it is saved.
fn absolute(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// A document small enough for an example: JSON with its lists cut to three items, markup
/// when it is small.
fn document_example(text: &str, kind: documents::DocKind) -> Option<String> {
    match kind {
        documents::DocKind::Json => {
            let v: serde_json::Value =
                serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
            let cut = cut_json(v);
            let s = serde_json::to_string(&cut).ok()?;
            (s.len() <= MAX_EXAMPLE_DOCUMENT).then_some(s)
        }
        _ => (text.len() <= MAX_EXAMPLE_DOCUMENT).then(|| text.to_owned()),
    }
}

fn cut_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(a) => Value::Array(a.into_iter().take(3).map(cut_json).collect()),
        Value::Object(o) => {
            let lists = o.len() >= 3 && o.values().all(Value::is_object);
            let n = if lists { 3 } else { usize::MAX };
            Value::Object(
                o.into_iter()
                    .take(n)
                    .map(|(k, v)| (k, cut_json(v)))
                    .collect(),
            )
        }
        other => other,
    }
}

/// Loads the draft as `check` would, adds each rule's examples (inputs `inputs` gives; the
/// samples the pipeline makes of them), and loads it again.
fn finish(
    d: &mut Draft,
    origin: &Origin,
    text: &str,
    inputs: impl Fn(usize) -> Vec<String>,
) -> Suggestion {
    let header = format!(
        "Suggested by `quarry_exporter suggest {}` from {} lines ({} bytes) of the sample.\n\
         A starting point: try it (`quarry_exporter one-shot --config.file=THIS.yaml`), read why\n\
         each rule did what it did (`explain`), then rename metrics and add rules you need.\n\
         Each rule's examples were cut from the sample; their samples are what this config made.",
        origin.describe(),
        text.lines().count(),
        text.len()
    );
    let plain = d.render(false, &header);
    let config = match crate::config::load_str(&plain, "suggested.yaml") {
        Ok(c) => c,
        Err(e) => {
            // A bug: say so in the output rather than hide it.
            d.not_understood.push(format!(
                "this suggestion does not load, a bug to report: {e}"
            ));
            return Suggestion {
                yaml: d.render(false, &header),
                recognised: d.recognised.clone(),
                not_understood: d.not_understood.clone(),
            };
        }
    };
    let (Some(source), true) = (
        config.sources.first(),
        d.rules.len() == config.sources.first().map_or(0, |s| s.rules.len()),
    ) else {
        return Suggestion {
            yaml: plain,
            recognised: d.recognised.clone(),
            not_understood: d.not_understood.clone(),
        };
    };
    for (i, rule) in source.rules.iter().enumerate() {
        let candidates = inputs(i);
        let mut chosen: Vec<(String, Vec<String>)> = Vec::new();
        for input in candidates {
            let Ok(made) = crate::examples::samples_made(&config, source, rule, &input) else {
                continue;
            };
            let series: Vec<String> = made.iter().map(|s| series_of(s)).collect();
            if made.is_empty() || chosen.iter().any(|(_, s)| *s == series) {
                continue;
            }
            chosen.push((input, series));
            if chosen.len() == 3 || !d.file_source {
                break;
            }
        }
        if chosen.is_empty() {
            continue;
        }
        let input = chosen
            .iter()
            .map(|(i, _)| i.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let Ok(made) = crate::examples::samples_made(&config, source, rule, &input) else {
            continue;
        };
        let samples: Vec<String> = made
            .into_iter()
            .filter(|s| {
                let name = s.split(['{', ' ']).next().unwrap_or("");
                !name.ends_with("_bucket") && !name.ends_with("_level") && !s.ends_with(" 0")
            })
            .take(6)
            .collect();
        if !samples.is_empty() {
            d.rules[i].examples = vec![(input, samples)];
        }
    }
    let yaml = d.render(true, &header);
    let yaml = match crate::config::load_str(&yaml, "suggested.yaml") {
        Ok(_) => yaml,
        Err(e) => {
            d.not_understood.push(format!(
                "examples left out: with them the config does not load, a bug to report: {e}"
            ));
            d.render(false, &header)
        }
    };
    Suggestion {
        yaml,
        recognised: d.recognised.clone(),
        not_understood: d.not_understood.clone(),
    }
}

/// `name{labels} value` → `name{labels}`.
fn series_of(sample: &str) -> String {
    sample
        .rsplit_once(' ')
        .map_or(sample, |(s, _)| s)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> crate::config::Config {
        crate::config::load_str(yaml, "suggested.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn stems_name_the_prefix() {
        let f = |p: &str| Origin::File(PathBuf::from(p)).stem();
        assert_eq!(f("/var/log/prometheus.log").as_deref(), Some("prometheus"));
        assert_eq!(f("app-2026-11-28.log").as_deref(), Some("app"));
        assert_eq!(f("access.log.1").as_deref(), Some("access"));
        assert_eq!(f("/tmp/1.log"), None);
        assert_eq!(
            Origin::Url("http://h:8080/api/health?x=1".into())
                .stem()
                .as_deref(),
            Some("health")
        );
    }

    #[test]
    fn an_access_log_gets_grok_requests_and_bytes_with_none() {
        let text = "127.0.0.1 - - [28/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 512 \"-\" \"curl/8\"\n\
                    127.0.0.1 - - [28/Nov/2026:10:00:01 +0000] \"HEAD / HTTP/1.1\" 200 - \"-\" \"curl/8\"\n\
                    127.0.0.1 - - [28/Nov/2026:10:00:02 +0000] \"GET /x HTTP/1.1\" 404 9 \"-\" \"curl/8\"\n";
        let s = suggest(text, &Origin::Stdin, &Options::default());
        let c = check(&s.yaml);
        assert!(
            s.yaml.contains("grok: '%{COMBINEDAPACHELOG}'"),
            "{}",
            s.yaml
        );
        assert!(s.yaml.contains("none: skip"), "{}", s.yaml);
        assert_eq!(c.metrics[0].name, "http_requests_total");
        assert!(!c.sources[0].rules[0].examples.is_empty(), "{}", s.yaml);
    }

    #[test]
    fn json_lines_get_levels_status_and_durations_in_seconds() {
        let text = (0..20)
            .map(|i| {
                format!(
                    r#"{{"ts":"2026-11-28T10:00:{i:02}Z","level":"{}","status":{},"latency_ms":{}.5,"msg":"m"}}"#,
                    if i % 5 == 0 { "error" } else { "info" },
                    if i % 4 == 0 { 500 } else { 200 },
                    i
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let s = suggest(
            &text,
            &Origin::File("/nonexistent/api.log".into()),
            &Options::default(),
        );
        check(&s.yaml);
        for want in [
            "api_log_records_total",
            "api_requests_total",
            "api_latency_seconds",
            "scale: 0.001",
        ] {
            assert!(s.yaml.contains(want), "{want}:\n{}", s.yaml);
        }
    }

    #[test]
    fn python_tracebacks_become_multiline_records() {
        let text = "2026-11-28 10:00:00,001 INFO app: start\n\
                    2026-11-28 10:00:00,002 ERROR app: failed\n\
                    Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    x()\n\
                    KeyError: 'x'\n\
                    2026-11-28 10:00:00,003 WARNING app: slow\n";
        let s = suggest(text, &Origin::Stdin, &Options::default());
        check(&s.yaml);
        assert!(
            s.yaml
                .contains(r"multiline: {start: '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d'}"),
            "{}",
            s.yaml
        );
        assert!(
            s.yaml
                .contains(r#"app_exceptions_total{exception=\"KeyError\"} 1"#)
                || s.yaml
                    .contains(r#"app_exceptions_total{exception="KeyError"} 1"#),
            "{}",
            s.yaml
        );
    }

    #[test]
    fn a_json_document_gets_states_and_gauges() {
        let text = r#"{"cluster": "eu", "uptime_seconds": 12, "services": [
            {"name": "db", "status": "UP", "latency_ms": 3},
            {"name": "cache", "status": "DEGRADED", "latency_ms": 1},
            {"name": "queue", "status": "DOWN", "latency_ms": 9}]}"#;
        let s = suggest(
            text,
            &Origin::Url("http://x:8080/health".into()),
            &Options::default(),
        );
        let c = check(&s.yaml);
        assert!(s.yaml.contains("type: state"), "{}", s.yaml);
        let state = c
            .metrics
            .iter()
            .find(|m| m.name == "health_service_state")
            .expect(&s.yaml);
        assert_eq!(state.states.as_deref().unwrap(), ["UP", "DEGRADED", "DOWN"]);
        assert!(
            s.yaml.contains("health_service_latency_seconds"),
            "{}",
            s.yaml
        );
        assert!(s.yaml.contains("health_uptime_seconds"), "{}", s.yaml);
    }
}
