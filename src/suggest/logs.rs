//! Log samples: container framing (CRI, Docker json-file) unwrapped, multi-line records found
//! by the head most lines start with, then the record format scored over the records' first
//! lines, and rules for it; tracebacks (Python, Java and Node.js, Go panics) get rules of
//! their own.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use regex::Regex;

use crate::config::FileFormat;

use super::draft::{dq, sanitize, sq, Draft, MetricDraft, RuleDraft};
use super::fields::{self, Structured};
use super::shapes::{self, LineFormat, Shapes};

/// Lines read from a sample (the rest is not looked at).
pub const MAX_LINES: usize = 5000;

/// Share of lines a container format must take to be the file's format.
const CONTAINER_SHARE: f64 = 0.8;
/// Share of records a line format must take to be the records' format.
const FORMAT_SHARE: f64 = 0.6;

/// A record of the sample as the source would make it: its text, stream, and the sample's
/// lines it came from (an example's input is those lines).
#[derive(Debug, Clone)]
pub struct Record {
    pub text: String,
    pub stream: String,
    pub lines: Range<usize>,
}

/// The container format a sample's lines are in, when most are: `cri` or `docker`.
fn container_format(lines: &[&str]) -> Option<&'static str> {
    let cri = Regex::new(r"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [PF](?::\S*)?(?: |$)")
        .expect("cri shape");
    let nonempty: Vec<&&str> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    if nonempty.is_empty() {
        return None;
    }
    let share = |n: usize| n as f64 / nonempty.len() as f64;
    let cri_lines = nonempty.iter().filter(|l| cri.is_match(l)).count();
    if share(cri_lines) >= CONTAINER_SHARE {
        return Some("cri");
    }
    let docker_lines = nonempty
        .iter()
        .filter(|l| unwrap_line("docker", l).is_some())
        .count();
    (share(docker_lines) >= CONTAINER_SHARE).then_some("docker")
}

/// A sample line unwrapped as the file source would (`format` is `cri` or `docker`).
fn unwrap_line(format: &str, line: &str) -> Option<(String, String, bool)> {
    let format = if format == "cri" {
        FileFormat::Cri
    } else {
        FileFormat::Docker
    };
    crate::source::records::unwrap_container_line(format, line)
}

/// The sample's lines as the container stage makes them (partial lines merged per stream),
/// each with the sample lines it came from.
fn unwrap_lines(lines: &[&str], format: Option<&str>) -> Vec<Record> {
    let Some(format) = format else {
        return lines
            .iter()
            .enumerate()
            .map(|(i, l)| Record {
                text: (*l).to_owned(),
                stream: String::new(),
                lines: i..i + 1,
            })
            .collect();
    };
    let mut out = Vec::new();
    let mut pending: BTreeMap<String, Record> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((text, stream, partial)) = unwrap_line(format, line) else {
            continue;
        };
        let held = pending.remove(&stream);
        let mut r = held.unwrap_or(Record {
            text: String::new(),
            stream: stream.clone(),
            lines: i..i + 1,
        });
        r.text.push_str(&text);
        r.lines.end = i + 1;
        if partial {
            pending.insert(stream, r);
        } else {
            out.push(r);
        }
    }
    out.extend(pending.into_values());
    out.sort_by_key(|r| r.lines.start);
    out
}

/// The head that starts records, when lines are records of several lines: the head most
/// lines start with, if some lines do not and those look like continuations.
fn record_head<'a>(
    shapes: &'a Shapes,
    lines: &[Record],
) -> Option<(&'a Regex, &'static str, &'static str)> {
    let nonempty: Vec<&Record> = lines.iter().filter(|l| !l.text.trim().is_empty()).collect();
    if nonempty.len() < 2 {
        return None;
    }
    let (re, pattern, why, n) = shapes
        .heads
        .iter()
        .map(|(re, p, why)| {
            (
                re,
                *p,
                *why,
                nonempty.iter().filter(|l| re.is_match(&l.text)).count(),
            )
        })
        .max_by_key(|(.., n)| *n)?;
    if n == nonempty.len() || (n as f64) < 0.2 * nonempty.len() as f64 || n == 0 {
        return None;
    }
    let others: Vec<&&Record> = nonempty.iter().filter(|l| !re.is_match(&l.text)).collect();
    let continuing = others
        .iter()
        .filter(|l| shapes.continuation.is_match(&l.text))
        .count();
    (continuing * 2 >= others.len()).then_some((re, pattern, why))
}

/// Joins lines into records (per stream, as the source's multiline stage does).
fn join(lines: Vec<Record>, head: &Regex) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        match open.get(&l.stream) {
            Some(&i) if !head.is_match(&l.text) => {
                let r = &mut out[i];
                r.text.push('\n');
                r.text.push_str(&l.text);
                r.lines.end = l.lines.end;
            }
            _ => {
                open.insert(l.stream.clone(), out.len());
                out.push(l);
            }
        }
    }
    out
}

/// The prefix of metric names for a sample named `stem` whose format suggests `fallback`.
fn prefix(stem: Option<&str>, fallback: &str, prefer_fallback: bool) -> String {
    match stem {
        Some(s) if !prefer_fallback && !s.is_empty() => {
            let p = sanitize(s);
            if p.starts_with("quarry") || p == "x" {
                fallback.to_owned()
            } else {
                p
            }
        }
        _ => fallback.to_owned(),
    }
}

/// A share in words.
fn share(n: usize, of: usize) -> String {
    format!("{n} of {of} ({:.0}%)", 100.0 * n as f64 / of.max(1) as f64)
}

/// Cut for a comment.
pub fn cut(text: &str, max: usize) -> String {
    let mut t: String = text.chars().take(max).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t
}

/// Drafts rules for a log sample.
pub fn draft(
    text: &str,
    stem: Option<&str>,
    forced_prefix: Option<&str>,
    source: Vec<String>,
) -> (Draft, Vec<Record>) {
    let shapes = Shapes::new();
    let lines: Vec<&str> = text.lines().take(MAX_LINES).collect();
    let mut d = Draft {
        file_source: true,
        ..Draft::default()
    };
    let mut source = source;
    let container = container_format(&lines);
    if let Some(format) = container {
        d.recognised.push(format!(
            "container log lines (`format: {format}`): {} lines are {}",
            share(
                lines
                    .iter()
                    .filter(|l| unwrap_line(format, l).is_some())
                    .count(),
                lines.len()
            ),
            if format == "cri" {
                "`<time> <stream> <P|F> <text>` (CRI, Kubernetes' /var/log/pods)"
            } else {
                "Docker json-file objects with a `log` string"
            }
        ));
        source.push(format!("  format: {format}"));
    }
    let unwrapped = unwrap_lines(&lines, container);
    let head = record_head(&shapes, &unwrapped);
    let records = match head {
        Some((re, pattern, why)) => {
            let n = unwrapped.iter().filter(|l| re.is_match(&l.text)).count();
            d.recognised.push(format!(
                "multi-line records (`multiline`): {} lines start with {why} ({}), the others continue the record before them (indented lines, tracebacks, stack frames)",
                share(n, unwrapped.len()),
                pattern
            ));
            source.push(format!("  multiline: {{start: {}}}", sq(pattern)));
            join(unwrapped, re)
        }
        None => unwrapped,
    };
    d.source = source;
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| !r.text.trim().is_empty())
        .collect();
    if records.is_empty() {
        d.not_understood
            .push("the sample is empty: nothing to recognise".to_owned());
        d.source_name = forced_prefix.unwrap_or("app").to_owned();
        return (d, records);
    }
    // The records' format: the line shape most first lines have.
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    let formats: Vec<Option<LineFormat>> = records
        .iter()
        .map(|r| shapes.line_format(r.text.lines().next().unwrap_or("")))
        .collect();
    for f in formats.iter().flatten() {
        let i = shapes.lines.iter().position(|(x, _)| x == f).unwrap_or(0);
        *counts.entry(i).or_default() += 1;
    }
    let best = counts
        .iter()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(**i)))
        .map(|(i, n)| (shapes.lines[*i].0, *n));
    let format = match best {
        Some((f, n)) if n as f64 >= FORMAT_SHARE * records.len() as f64 => {
            d.recognised.push(format!(
                "{}: {} records have its shape",
                f.describe(),
                share(n, records.len())
            ));
            let others: Vec<&Record> = records
                .iter()
                .zip(&formats)
                .filter(|(_, g)| **g != Some(f))
                .map(|(r, _)| r)
                .collect();
            if let Some(first) = others.first() {
                d.not_understood.push(format!(
                    "{} records are not {}; the first: {}",
                    others.len(),
                    f.describe(),
                    dq(&cut(first.text.lines().next().unwrap_or(""), 160))
                ));
            }
            Some(f)
        }
        _ => None,
    };
    let access = matches!(format, Some(LineFormat::Combined | LineFormat::Common));
    let syslog = matches!(
        format,
        Some(LineFormat::Syslog3164 | LineFormat::Syslog5424)
    );
    let p = match forced_prefix {
        Some(p) => sanitize(p),
        None if access => prefix(stem, "http", true),
        None if syslog => prefix(stem, "syslog", true),
        None => prefix(stem, "app", false),
    };
    d.source_name = p.clone();
    match format {
        Some(f @ (LineFormat::Combined | LineFormat::Common)) => {
            access_rules(&mut d, &p, f, &records)
        }
        Some(LineFormat::Syslog3164) => syslog_rules(&mut d, &p, false),
        Some(LineFormat::Syslog5424) => syslog_rules(&mut d, &p, true),
        Some(LineFormat::JsonLines) => {
            let s = fields::json_records(records.iter().map(|r| first_line(&r.text)));
            structured_rules(&mut d, &p, &s, true);
        }
        Some(LineFormat::Logfmt) => {
            let s = fields::logfmt_records(records.iter().map(|r| first_line(&r.text)));
            structured_rules(&mut d, &p, &s, false);
        }
        None => text_rules(&mut d, &p, &records),
    }
    traceback_rules(&mut d, &p, &records);
    (d, records)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// NCSA access logs: grok's bundled pattern, requests by method and status, body bytes (`-`
/// is no body: `none: skip`), and a trailing decimal number (nginx's `$request_time`) as the
/// request duration.
fn access_rules(d: &mut Draft, p: &str, f: LineFormat, records: &[Record]) {
    let pattern = if f == LineFormat::Combined {
        "COMBINEDAPACHELOG"
    } else {
        "COMMONAPACHELOG"
    };
    let trailing = Regex::new(r#"" (?:\S+ )*?(\d+\.\d+)\s*$"#).expect("trailing time");
    let with_time = f == LineFormat::Combined
        && records
            .iter()
            .filter(|r| trailing.is_match(&r.text) && r.text.matches('"').count() >= 6)
            .count() as f64
            >= 0.8 * records.len() as f64;
    d.metric(MetricDraft {
        name: format!("{p}_requests_total"),
        kind: "counter",
        help: "Requests by method and status, from the access log.".into(),
        labels: vec!["method".into(), "status".into()],
        ..Default::default()
    });
    d.metric(MetricDraft {
        name: format!("{p}_response_bytes_total"),
        kind: "counter",
        help: "Response body bytes by method, from the access log.".into(),
        labels: vec!["method".into()],
        ..Default::default()
    });
    let mut updates = vec![
        format!("{{metric: {p}_requests_total, labels: {{method: $verb, status: $response}}}}"),
        format!(
            "{{metric: {p}_response_bytes_total, labels: {{method: $verb}}, add: $bytes, none: skip}}"
        ),
    ];
    let grok = if with_time {
        d.metric(MetricDraft {
            name: format!("{p}_request_duration_seconds"),
            kind: "histogram",
            help: "Request duration by method (the log's last field, in seconds).".into(),
            labels: vec!["method".into()],
            ..Default::default()
        });
        updates.push(format!(
            "{{metric: {p}_request_duration_seconds, labels: {{method: $verb}}, observe: $request_time}}"
        ));
        d.recognised.push("a decimal number ends most lines after the user agent: taken as the request time in seconds (nginx's `$request_time`)".into());
        format!(r"%{{{pattern}}}.* (?P<request_time>\d+\.\d+)\s*$")
    } else {
        format!("%{{{pattern}}}")
    };
    d.rules.push(RuleDraft {
        name: "requests".into(),
        comment: format!(
            "{} (grok: verb, request, response, bytes, …); `-` bytes (no body) are skipped",
            f.describe()
        ),
        extractor: vec![format!("grok: {}", sq(&grok))],
        updates,
        ..Default::default()
    });
}

/// Syslog: grok's bundled patterns, messages by program.
fn syslog_rules(d: &mut Draft, p: &str, rfc5424: bool) {
    let (grok, program) = if rfc5424 {
        ("%{SYSLOG5424LINE}", "$syslog5424_app")
    } else {
        (r"^(?:<%{NONNEGINT:priority}>)?%{SYSLOGLINE}", "$program")
    };
    d.metric(MetricDraft {
        name: format!("{p}_messages_total"),
        kind: "counter",
        help: "Syslog messages by program.".into(),
        labels: vec!["program".into()],
        ..Default::default()
    });
    d.rules.push(RuleDraft {
        name: "messages".into(),
        comment: "syslog lines (grok's bundled pattern)".into(),
        extractor: vec![format!("grok: {}", sq(grok))],
        updates: vec![format!(
            "{{metric: {p}_messages_total, labels: {{program: {program}}}}}"
        )],
        ..Default::default()
    });
    d.not_understood.push("the priority's facility and severity are not split out (the message text is free-form: add rules for what it says)".into());
}

/// JSON lines and logfmt: records by the level-like field, by the status-like field (with
/// the method when there is one), histograms of duration-like fields in seconds.
fn structured_rules(d: &mut Draft, p: &str, s: &Structured, json: bool) {
    let reader = |fields: &[(String, String)]| -> Vec<String> {
        let list: Vec<String> = fields
            .iter()
            .map(|(name, key)| format!("{name}: {}", dq(key)))
            .collect();
        if json {
            vec![
                "json:".to_owned(),
                format!("  fields: {{{}}}", list.join(", ")),
            ]
        } else {
            vec![
                "logfmt:".to_owned(),
                format!("  fields: {{{}}}", list.join(", ")),
            ]
        }
    };
    let key_ref = |key: &str| {
        if json {
            fields::json_path(key)
        } else {
            key.to_owned()
        }
    };
    let mut used = BTreeSet::new();
    match &s.level {
        Some(k) => {
            used.insert(k.clone());
            d.metric(MetricDraft {
                name: format!("{p}_log_records_total"),
                kind: "counter",
                help: format!("Log records by level (the `{}` field).", fields::shown(k)),
                labels: vec!["level".into()],
                ..Default::default()
            });
            d.rules.push(RuleDraft {
                name: "levels".into(),
                comment: format!("`{}` holds a level in {}", fields::shown(k), s.describe(k)),
                extractor: reader(&[("level".into(), key_ref(k))]),
                updates: vec![format!(
                    "{{metric: {p}_log_records_total, labels: {{level: $level}}}}"
                )],
                ..Default::default()
            });
        }
        None => count_every_record(
            d,
            p,
            "no field holds a level: every record is counted",
            reader(&[]),
        ),
    }
    if let Some(k) = &s.status {
        used.insert(k.clone());
        let http = s.http_status(k);
        let name = if http {
            format!("{p}_requests_total")
        } else {
            format!("{p}_{}_total", sanitize(shapes::last_segment(k)))
        };
        let mut labels = vec!["status".to_owned()];
        let mut fields = vec![("status".to_owned(), key_ref(k))];
        let mut label_map = "status: $status".to_owned();
        if let Some(m) = &s.method {
            used.insert(m.clone());
            labels.insert(0, "method".into());
            fields.push(("method".into(), key_ref(m)));
            label_map = format!("method: $method, {label_map}");
        }
        d.metric(MetricDraft {
            name: name.clone(),
            kind: "counter",
            help: format!(
                "Records with a `{}` field, by {}.",
                fields::shown(k),
                if s.method.is_some() {
                    "method and status"
                } else {
                    "status"
                }
            ),
            labels,
            ..Default::default()
        });
        d.rules.push(RuleDraft {
            name: "status".into(),
            comment: format!("`{}` holds a status in {}", fields::shown(k), s.describe(k)),
            extractor: reader(&fields),
            when: vec![("status".into(), String::new())],
            updates: vec![format!("{{metric: {name}, labels: {{{label_map}}}}}")],
            ..Default::default()
        });
    }
    for (k, factor, with_unit, as_duration) in &s.durations {
        used.insert(k.clone());
        let stem = shapes::duration_stem(k);
        let name = shapes::duration_metric(p, k);
        let mut update = format!("{{metric: {name}, observe: $value");
        let unit_note = if *as_duration {
            update.push_str(", as: duration");
            "values carry their unit (`as: duration` reads them as seconds)".to_owned()
        } else if *factor != 1.0 {
            update.push_str(&format!(", scale: {factor}"));
            format!("the name gives the unit: × {factor} to seconds")
        } else if *with_unit {
            "the name says seconds".to_owned()
        } else {
            d.not_understood.push(format!("`{}` has no unit in its name or values: taken as seconds (add `scale: 0.001` if it is milliseconds)", fields::shown(k)));
            "taken as seconds".to_owned()
        };
        update.push_str(", none: skip}");
        d.metric(MetricDraft {
            name: name.clone(),
            kind: "histogram",
            help: format!("The `{}` field of records, in seconds.", fields::shown(k)),
            ..Default::default()
        });
        d.rules.push(RuleDraft {
            name: sanitize(&stem),
            comment: format!(
                "`{}` is a duration in {}; {unit_note}",
                fields::shown(k),
                s.describe(k)
            ),
            extractor: reader(&[("value".into(), key_ref(k))]),
            when: vec![("value".into(), String::new())],
            updates: vec![update],
            ..Default::default()
        });
    }
    let unused: Vec<&String> = s
        .keys
        .iter()
        .filter(|k| !used.contains(*k) && !s.is_timestamp(k))
        .collect();
    if !unused.is_empty() {
        let list: Vec<String> = unused
            .iter()
            .take(12)
            .map(|k| format!("`{}`", fields::shown(k)))
            .collect();
        d.not_understood.push(format!(
            "fields not used (neither a level, a status nor a duration): {}{}",
            list.join(", "),
            if unused.len() > 12 { ", …" } else { "" }
        ));
    }
}

/// Without a level: one counter of every record, read by `extractor`.
fn count_every_record(d: &mut Draft, p: &str, comment: &str, extractor: Vec<String>) {
    d.metric(MetricDraft {
        name: format!("{p}_log_records_total"),
        kind: "counter",
        help: "Log records.".into(),
        ..Default::default()
    });
    d.rules.push(RuleDraft {
        name: "records".into(),
        comment: comment.into(),
        extractor,
        updates: vec![format!("{{metric: {p}_log_records_total}}")],
        ..Default::default()
    });
}

/// Plain text records: a level where most first lines (or second lines, as
/// java.util.logging writes them) have one, else records counted.
fn text_rules(d: &mut Draft, p: &str, records: &[Record]) {
    let word = Regex::new(r"[A-Za-z]+").expect("word");
    // The first level word among a line's first words.
    let level_in = |line: &str| -> Option<String> {
        word.find_iter(line)
            .take(8)
            .map(|m| m.as_str())
            .find(|w| shapes::is_level(w) && w.len() > 2)
            .map(str::to_owned)
    };
    let mut best: Option<(usize, Vec<String>)> = None;
    for line_no in 0..2 {
        let found: Vec<String> = records
            .iter()
            .filter_map(|r| r.text.lines().nth(line_no).and_then(level_in))
            .collect();
        if found.len() * 2 >= records.len()
            && best.as_ref().is_none_or(|(_, b)| found.len() > b.len())
        {
            best = Some((line_no, found));
        }
    }
    let Some((line_no, found)) = best else {
        count_every_record(
            d,
            p,
            "no level found in the records: every record is counted",
            vec!["regex: ''".into()],
        );
        d.not_understood.push(format!(
            "the records' format (not a known shape, no level in most of them); the first: {}",
            dq(&cut(first_line(&records[0].text), 160))
        ));
        return;
    };
    // Every level word in the case the sample writes them, so levels the sample lacks
    // (a first WARNING) are counted too.
    let upper = found
        .iter()
        .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .count();
    let lower = found
        .iter()
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        .count();
    let mut words: BTreeSet<String> = found.iter().cloned().collect();
    for w in shapes::COMMON_LEVELS {
        if upper * 2 >= found.len() {
            words.insert(w.to_ascii_uppercase());
        } else if lower * 2 >= found.len() {
            words.insert((*w).to_owned());
        } else {
            let mut c = w.chars();
            let cap: String = c
                .next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default();
            words.insert(cap);
        }
    }
    let mut words: Vec<String> = words.into_iter().collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    let skip = if line_no == 1 { r"[^\n]*\n" } else { "" };
    let regex = format!(r"^{skip}[^\n]*?\b(?P<level>{})\b", words.join("|"));
    d.metric(MetricDraft {
        name: format!("{p}_log_records_total"),
        kind: "counter",
        help: "Log records by level.".into(),
        labels: vec!["level".into()],
        ..Default::default()
    });
    let seen: BTreeSet<&String> = found.iter().collect();
    d.recognised.push(format!(
        "text records with a level on their {} line: {} records ({})",
        if line_no == 0 { "first" } else { "second" },
        share(found.len(), records.len()),
        seen.into_iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if found.len() < records.len() {
        d.not_understood.push(format!(
            "{} records have no level where the others have it",
            records.len() - found.len()
        ));
    }
    d.rules.push(RuleDraft {
        name: "levels".into(),
        comment: "the first level word of the record's line".into(),
        extractor: vec![format!("regex: {}", sq(&regex))],
        updates: vec![format!(
            "{{metric: {p}_log_records_total, labels: {{level: $level}}}}"
        )],
        ..Default::default()
    });
}

/// Rules for the tracebacks the records hold: Python's (the exception of the last
/// traceback: the one raised), Java's and Node.js' (the exception, and the root cause: the
/// last `Caused by:`), Go's panics.
fn traceback_rules(d: &mut Draft, p: &str, records: &[Record]) {
    let python = records
        .iter()
        .filter(|r| r.text.contains("Traceback (most recent call last):"))
        .count();
    let frame = Regex::new(r"(?m)^\s+at \S").expect("frame");
    let class = Regex::new(
        r"(?m)^(?:Exception in thread [^\n]*? )?[\w$.]*[\w$](?:Exception|Error|Throwable)(?::|$)",
    )
    .expect("class");
    let stack = records
        .iter()
        .filter(|r| frame.is_match(&r.text) && class.is_match(&r.text))
        .count();
    let caused = records.iter().any(|r| r.text.contains("\nCaused by: "));
    let panic = Regex::new(r"(?m)^panic: ").expect("panic");
    let goroutine = Regex::new(r"(?m)^goroutine \d+ \[").expect("goroutine");
    let panics = records
        .iter()
        .filter(|r| panic.is_match(&r.text) && goroutine.is_match(&r.text))
        .count();
    if python > 0 && python >= stack {
        d.metric(MetricDraft {
            name: format!("{p}_exceptions_total"),
            kind: "counter",
            help: "Python exceptions in the log, by type (of the last traceback of a record: the one raised).".into(),
            labels: vec!["exception".into()],
            ..Default::default()
        });
        d.recognised.push(format!(
            "Python tracebacks in {} records",
            share(python, records.len())
        ));
        d.rules.push(RuleDraft {
            name: "python_exceptions".into(),
            comment: "the exception line after the last `Traceback` header's indented frames".into(),
            extractor: vec![format!(
                "regex: {}",
                sq(r"(?s)^.*Traceback \(most recent call last\):\n(?:[ \t][^\n]*\n)*(?P<exception>[A-Za-z_][\w.]*)(?::|\n|$)")
            )],
            updates: vec![format!(
                "{{metric: {p}_exceptions_total, labels: {{exception: $exception}}}}"
            )],
            ..Default::default()
        });
    } else if stack > 0 {
        let mut labels = vec!["exception".to_owned()];
        let mut map = "exception: $exception".to_owned();
        let mut regex = r"(?m)^(?:Exception in thread [^\n]*? )?(?P<exception>[\w$.]*[\w$](?:Exception|Error|Throwable))(?::|$)".to_owned();
        if caused {
            labels.push("cause".into());
            map.push_str(", cause: $cause");
            regex = format!("(?s){regex}(?:.*\\nCaused by: (?P<cause>[\\w$.]+))?");
        }
        d.metric(MetricDraft {
            name: format!("{p}_exceptions_total"),
            kind: "counter",
            help: if caused {
                "Exceptions in the log, by class and root cause (the last `Caused by:`).".into()
            } else {
                "Exceptions in the log, by class.".into()
            },
            labels,
            ..Default::default()
        });
        d.recognised.push(format!(
            "stack traces with `at` frames (Java, Node.js) in {}{}",
            share(stack, records.len()),
            if caused {
                ", with `Caused by:` chains"
            } else {
                ""
            }
        ));
        d.rules.push(RuleDraft {
            name: "exceptions".into(),
            comment: "the first exception line of the record (and its last `Caused by:`)".into(),
            extractor: vec![format!("regex: {}", sq(&regex))],
            updates: vec![format!(
                "{{metric: {p}_exceptions_total, labels: {{{map}}}}}"
            )],
            ..Default::default()
        });
    }
    if panics > 0 {
        d.metric(MetricDraft {
            name: format!("{p}_panics_total"),
            kind: "counter",
            help: "Go panics in the log.".into(),
            ..Default::default()
        });
        d.recognised.push(format!(
            "Go panics (`panic:` with goroutine dumps) in {}",
            share(panics, records.len())
        ));
        d.rules.push(RuleDraft {
            name: "panics".into(),
            comment: "a `panic:` line".into(),
            extractor: vec![format!("regex: {}", sq(r"(?m)^panic: "))],
            updates: vec![format!("{{metric: {p}_panics_total}}")],
            ..Default::default()
        });
    }
}
