//! The data `suggest` recognises samples by: line shapes (what a whole line of each log
//! format looks like), record heads (what the first line of a multi-line record starts with),
//! level words, and the names and values that make a field level-like, status-like or
//! duration-like. Detection is scoring over the sample's lines against these tables, never a
//! match on any one sample: a new format is a row here, not a branch elsewhere.

use regex::Regex;

/// The log formats a line can be in, each recognised by a regex on the whole line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// NCSA combined (nginx's and Apache's default access logs), possibly with more fields
    /// after the user agent.
    Combined,
    /// NCSA common (Apache's `common`: no referrer, no agent).
    Common,
    /// One JSON object per line.
    JsonLines,
    /// `key=value` pairs.
    Logfmt,
    /// BSD syslog (RFC 3164), with or without its `<PRI>`, or with an RFC 3339 time as
    /// rsyslog writes it.
    Syslog3164,
    /// The syslog protocol (RFC 5424).
    Syslog5424,
}

impl LineFormat {
    /// What the format is called in what `suggest` says.
    pub fn describe(self) -> &'static str {
        match self {
            LineFormat::Combined => "an NCSA combined access log (nginx's and Apache's default)",
            LineFormat::Common => "an NCSA common access log (Apache's `common`)",
            LineFormat::JsonLines => "JSON lines (one object per record)",
            LineFormat::Logfmt => "logfmt (`key=value` pairs)",
            LineFormat::Syslog3164 => "BSD syslog (RFC 3164)",
            LineFormat::Syslog5424 => "syslog (RFC 5424)",
        }
    }
}

/// Line shapes, most specific first: a line counts for the first shape it matches (a
/// combined line also has the shape of a common one).
pub const LINE_SHAPES: &[(LineFormat, &str)] = &[
    (
        LineFormat::Combined,
        r#"^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (?:\d{3}|-) (?:\d+|-) "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*""#,
    ),
    (
        LineFormat::Common,
        r#"^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (?:\d{3}|-) (?:\d+|-)\s*$"#,
    ),
    (
        LineFormat::Syslog5424,
        r"^<\d{1,3}>\d{1,2} (?:\d{4}-\d\d-\d\dT\S+|-) \S+ \S+ \S+ \S+ (?:-|\[.*?\])",
    ),
    (
        LineFormat::Syslog3164,
        r"^(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S*) \S+ [^\s:\[]+(?:\[\d+\])?: ",
    ),
    (LineFormat::JsonLines, r"^\s*\{.*\}\s*$"),
    (
        LineFormat::Logfmt,
        r#"^\s*[A-Za-z_][\w.\-]*=(?:"(?:[^"\\]|\\.)*"|\S*)(?:\s+[A-Za-z_][\w.\-]*(?:=(?:"(?:[^"\\]|\\.)*"|\S*))?)+\s*$"#,
    ),
];

/// What the first line of a record starts with, for `multiline: {start: ...}`: the regex and
/// what it is, in words. The one that starts the most lines (and not all of them) wins.
pub const RECORD_HEADS: &[(&str, &str)] = &[
    (r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d", "an ISO 8601 date"),
    (
        r"^\[\d{4}-\d\d-\d\d[T ]\d\d:\d\d",
        "a bracketed ISO 8601 date",
    ),
    (
        r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d",
        "a date as Go's log package writes it",
    ),
    (r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", "a syslog date"),
    (
        r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [AP]M ",
        "a date as java.util.logging writes it",
    ),
    (
        r"^\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d",
        "a date as Tomcat writes it",
    ),
    (
        r"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d",
        "a date as Apache's error log writes it",
    ),
    (r"^[IWEF]\d{4} \d\d:\d\d:\d\d", "a klog header"),
    (r"^\d\d:\d\d:\d\d", "a time of day"),
    (
        r"^(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL|SEVERE)\b",
        "a level (as Python's logging.basicConfig writes it)",
    ),
    (r"^\{", "a JSON object"),
    (r"^<\d{1,3}>", "a syslog priority"),
];

/// Lines that can only continue a record: indented lines (stack frames, code), and the lines
/// Python, Java, Node.js and Go write inside a traceback or panic.
pub const CONTINUATION: &str = r"^(?:\s|Traceback \(most recent call last\):|Caused by: |During handling of the above exception|The above exception was the direct cause|[\w$.]+(?:Exception|Error|Throwable)(?::|$)|\.\.\. \d+ (?:more|common frames omitted)|goroutine \d+ \[|panic: |fatal error: |[\w.]+\(.*\)$|exit status \d+$|$)";

/// Words that are log levels, in any case (python, Java's JUL and log4j, Go, syslog).
pub const LEVEL_WORDS: &[&str] = &[
    "trace",
    "debug",
    "fine",
    "finer",
    "finest",
    "config",
    "info",
    "information",
    "notice",
    "warn",
    "warning",
    "error",
    "err",
    "crit",
    "critical",
    "alert",
    "emerg",
    "emergency",
    "fatal",
    "severe",
    "panic",
    "dpanic",
];

/// The levels a level regex always accepts (in the sample's case), besides those the sample
/// shows: what most writers use, so a first WARNING after the sample is counted too.
pub const COMMON_LEVELS: &[&str] = &[
    "trace", "debug", "info", "notice", "warn", "warning", "error", "crit", "critical", "alert",
    "emerg", "fatal", "severe", "panic",
];

/// Whether `word` is a log level.
pub fn is_level(word: &str) -> bool {
    LEVEL_WORDS.iter().any(|l| l.eq_ignore_ascii_case(word))
}

/// Field names (lowercased, without `_`, `-` and `.`) that hold a level.
pub const LEVEL_KEYS: &[&str] = &[
    "level",
    "lvl",
    "severity",
    "loglevel",
    "levelname",
    "severitytext",
];

/// Field names that hold a status or outcome.
pub const STATUS_KEYS: &[&str] = &[
    "status",
    "statuscode",
    "code",
    "httpstatus",
    "responsecode",
    "responsestatus",
    "state",
    "result",
    "outcome",
    "health",
];

/// Field names that hold a request method.
pub const METHOD_KEYS: &[&str] = &["method", "httpmethod", "requestmethod", "verb"];

/// Field names (after a unit suffix is taken off) that hold a duration.
pub const DURATION_STEMS: &[&str] = &[
    "duration",
    "latency",
    "elapsed",
    "took",
    "rt",
    "responsetime",
    "requesttime",
    "timetaken",
    "processingtime",
    "exectime",
    "executiontime",
    "upstreamresponsetime",
    "upstreamtime",
];

/// Unit suffixes of duration field names and the factor to seconds.
pub const DURATION_UNITS: &[(&str, f64)] = &[
    ("nanoseconds", 1e-9),
    ("nanos", 1e-9),
    ("ns", 1e-9),
    ("microseconds", 1e-6),
    ("micros", 1e-6),
    ("usec", 1e-6),
    ("us", 1e-6),
    ("milliseconds", 0.001),
    ("millis", 0.001),
    ("msec", 0.001),
    ("ms", 0.001),
    ("seconds", 1.0),
    ("secs", 1.0),
    ("sec", 1.0),
    ("s", 1.0),
];

/// Field names that name the item of a document's list (a service, a component, a host).
pub const NAME_KEYS: &[&str] = &[
    "name",
    "id",
    "service",
    "component",
    "host",
    "hostname",
    "server",
    "node",
    "instance",
    "target",
    "key",
    "title",
    "check",
    "job",
    "queue",
    "pool",
    "backend",
    "endpoint",
    "url",
];

/// Status words, best first: `suggest` orders a state metric's states by these (others go
/// between the good and the bad ones, in the order seen).
pub const GOOD_STATES: &[&str] = &[
    "ok",
    "up",
    "healthy",
    "pass",
    "passing",
    "green",
    "running",
    "active",
    "online",
    "ready",
    "available",
    "success",
    "operational",
    "normal",
    "enabled",
    "open",
    "true",
];
/// Status words that are the worst.
pub const BAD_STATES: &[&str] = &[
    "down",
    "fail",
    "failed",
    "failing",
    "critical",
    "crit",
    "error",
    "red",
    "offline",
    "unhealthy",
    "unavailable",
    "dead",
    "stopped",
    "outage",
    "false",
    "major_outage",
];

/// A key reduced to what the tables compare: lowercase, without `_`, `-`, `.` and spaces.
pub fn squash(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The last segment of a key path (`http.status` → `status`).
pub fn last_segment(key: &str) -> &str {
    key.rsplit(['.', '/', super::fields::SEP])
        .next()
        .unwrap_or(key)
}

/// The duration stem and factor to seconds of a field name (`latency_ms` → 0.001), or `None`
/// when the name is not duration-like. A name without a unit gives 1 (seconds) and `false`.
pub fn duration_unit(key: &str) -> Option<(f64, bool)> {
    let k = squash(last_segment(key));
    if DURATION_STEMS.contains(&k.as_str()) {
        return Some((1.0, false));
    }
    for (unit, factor) in DURATION_UNITS {
        if let Some(stem) = k.strip_suffix(unit) {
            // `…time_ms`: a time taken in a unit; `…ms` alone is not a name.
            if DURATION_STEMS.contains(&stem) || (stem.ends_with("time") && stem.len() > 4) {
                return Some((*factor, true));
            }
        }
    }
    None
}

/// A duration field's name for a metric, without its unit (`latency_ms` → `latency`,
/// `took` → `duration`).
pub fn duration_stem(key: &str) -> String {
    let mut st = super::draft::sanitize(last_segment(key));
    for (unit, _) in DURATION_UNITS {
        if let Some(x) = st.strip_suffix(&format!("_{unit}")) {
            st = x.to_owned();
            break;
        }
    }
    if matches!(st.as_str(), "took" | "elapsed" | "rt") {
        "duration".to_owned()
    } else {
        st
    }
}

/// The metric name of a duration field, in seconds: `{prefix}_latency_seconds`,
/// `{prefix}_request_time_duration_seconds`.
pub fn duration_metric(prefix: &str, key: &str) -> String {
    let stem = duration_stem(key);
    if stem.ends_with("duration") || stem.ends_with("latency") {
        format!("{prefix}_{stem}_seconds")
    } else {
        format!("{prefix}_{stem}_duration_seconds")
    }
}

/// Compiled tables (built once per `suggest`).
pub struct Shapes {
    pub lines: Vec<(LineFormat, Regex)>,
    pub heads: Vec<(Regex, &'static str, &'static str)>,
    pub continuation: Regex,
}

impl Shapes {
    /// Compiles the tables.
    pub fn new() -> Shapes {
        Shapes {
            lines: LINE_SHAPES
                .iter()
                .map(|(f, r)| (*f, Regex::new(r).expect("line shape")))
                .collect(),
            heads: RECORD_HEADS
                .iter()
                .map(|(r, why)| (Regex::new(r).expect("record head"), *r, *why))
                .collect(),
            continuation: Regex::new(CONTINUATION).expect("continuation"),
        }
    }

    /// The format of one line: the first shape it matches.
    pub fn line_format(&self, line: &str) -> Option<LineFormat> {
        self.lines
            .iter()
            .find(|(_, re)| re.is_match(line))
            .map(|(f, _)| *f)
    }
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_names_give_their_unit() {
        assert_eq!(duration_unit("duration"), Some((1.0, false)));
        assert_eq!(duration_unit("latency_ms"), Some((0.001, true)));
        assert_eq!(duration_unit("http.durationMs"), Some((0.001, true)));
        assert_eq!(duration_unit("request_time"), Some((1.0, false)));
        assert_eq!(duration_unit("response_time_us"), Some((1e-6, true)));
        assert_eq!(duration_unit("elapsed_seconds"), Some((1.0, true)));
        assert_eq!(duration_unit("time"), None);
        assert_eq!(duration_unit("ms"), None);
        assert_eq!(duration_unit("status"), None);
    }

    #[test]
    fn line_shapes_tell_formats_apart() {
        let s = Shapes::new();
        let f = |l: &str| s.line_format(l);
        assert_eq!(
            f(r#"1.2.3.4 - - [28/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#),
            Some(LineFormat::Combined)
        );
        assert_eq!(
            f(r#"1.2.3.4 - - [28/Nov/2026:10:00:00 +0000] "HEAD / HTTP/1.1" 200 -"#),
            Some(LineFormat::Common)
        );
        assert_eq!(
            f("<28>Dec  5 09:32:43 vm myapp: hello"),
            Some(LineFormat::Syslog3164)
        );
        assert_eq!(
            f("Dec  5 09:32:43 vm sshd[123]: Accepted publickey"),
            Some(LineFormat::Syslog3164)
        );
        assert_eq!(
            f("<28>1 2026-12-05T09:32:43.39+00:00 vm myapp - - [x a=\"1\"] hello"),
            Some(LineFormat::Syslog5424)
        );
        assert_eq!(
            f(r#"{"level":"info","msg":"x"}"#),
            Some(LineFormat::JsonLines)
        );
        assert_eq!(
            f(r#"ts=2026-11-28T10:00:00Z caller=main.go:1 level=info msg="a b""#),
            Some(LineFormat::Logfmt)
        );
        assert_eq!(f("2026-11-28 10:00:00,123 INFO app: started"), None);
    }
}
