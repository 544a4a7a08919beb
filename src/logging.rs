//! Logging to stderr that can never take the process down.
//!
//! A log line that cannot be written (stderr on a full disk, a closed pipe, a terminal that
//! went away) is dropped and counted in `quarry_log_messages_dropped_total`; tracing-subscriber
//! would otherwise report the failure with `eprintln!`, which panics when stderr is broken.
//! `--log.level debug` shows this crate's debug events; its dependencies (HTML parsers, HTTP
//! clients) stay at `warn`, so their internals do not bury the exporter's own messages. Lines
//! are logfmt (`ts=… level=… msg=… key=value`) or, with `--log.format=json`, JSON objects, as
//! Prometheus components write them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log messages that could not be written since start.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Writes to stderr; a failed write is dropped and counted, never returned as an error.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().lock().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().lock().flush();
        Ok(())
    }
}

/// Writes `text` and a newline to stderr, dropping (and counting) it if that fails. For the
/// messages the commands print themselves, where `eprintln!` would panic.
pub fn print_err(text: &str) {
    let mut err = io::stderr().lock();
    if writeln!(err, "{text}").is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts logging at `level` (`debug`, `info`, `warn`, `error`) for this crate, in `format`
/// (`logfmt` or `json`, as exporter-toolkit's `--log.format`).
pub fn init(level: &str, format: &str) {
    let level = match level {
        "debug" | "info" | "warn" | "error" => level,
        _ => "info",
    };
    // Dependencies speak at warn or above, unless the exporter itself is quieter.
    let deps = if matches!(level, "error") {
        "error"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("{deps},quarry_exporter={level}"));
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Stderr)
        .with_env_filter(filter)
        .log_internal_errors(false)
        .event_format(Format {
            json: format == "json",
        })
        .try_init();
}

/// One event per line: `ts=… level=… msg="…" key=value …` (logfmt, quoting values that need
/// it) or the same keys as a JSON object.
struct Format {
    json: bool,
}

/// An event's fields in the order they were given; the message apart.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, serde_json::Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field.name(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field.name(), value.into());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field.name(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field.name(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}").into());
    }
}

impl Fields {
    fn put(&mut self, name: &'static str, value: serde_json::Value) {
        if name == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.pairs.push((name, value));
        }
    }
}

/// A logfmt value: bare when it is a plain word, else quoted with `\`, `"`, newlines and other
/// control characters escaped.
fn logfmt_value(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters (a terminal's escape sequences among them) as go-logfmt
            // writes them: a log line read on a terminal cannot drive it.
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Format
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        let mut ts = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut ts))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        if self.json {
            let mut object = serde_json::Map::new();
            object.insert("ts".into(), ts.into());
            object.insert("level".into(), level.into());
            object.insert("msg".into(), fields.message.into());
            for (k, v) in fields.pairs {
                object.insert(k.into(), v);
            }
            writeln!(writer, "{}", serde_json::Value::Object(object))
        } else {
            let mut line = format!("ts={ts} level={level} msg=");
            logfmt_value(&mut line, &fields.message);
            for (k, v) in &fields.pairs {
                line.push(' ');
                line.push_str(k);
                line.push('=');
                match v {
                    serde_json::Value::String(text) => logfmt_value(&mut line, text),
                    other => logfmt_value(&mut line, &other.to_string()),
                }
            }
            writeln!(writer, "{line}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_values_are_bare_or_quoted_and_escaped() {
        let show = |v: &str| {
            let mut s = String::new();
            logfmt_value(&mut s, v);
            s
        };
        assert_eq!(show("0.0.0.0:9847"), "0.0.0.0:9847");
        assert_eq!(show("two words"), "\"two words\"");
        assert_eq!(show(""), "\"\"");
        assert_eq!(show("a=b"), "\"a=b\"");
        assert_eq!(show("say \"hi\"\\n"), "\"say \\\"hi\\\"\\\\n\"");
        assert_eq!(show("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(
            show("\u{1b}]0;title\u{7}\u{85}"),
            "\"\\u001b]0;title\\u0007\\u0085\""
        );
        // What it writes, the logfmt reader reads back.
        let odd = "a \"b\" \\ \u{1b}[2J\t\r\n\u{0}\u{9b}é";
        let line = format!("msg={}", show(odd));
        let mut pairs = Vec::new();
        assert!(crate::extract::logfmt::parse(&line, &mut pairs));
        assert_eq!(
            crate::extract::logfmt::value(&line, &pairs, "msg").as_deref(),
            Some(odd)
        );
    }
}
