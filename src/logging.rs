//! Logging to stderr that can never take the process down.
//!
//! A log line that cannot be written (stderr on a full disk, a closed pipe, a terminal that
//! went away) is dropped and counted in `quarry_log_messages_dropped_total`; tracing-subscriber
//! would otherwise report the failure with `eprintln!`, which panics when stderr is broken.
//! `--log.level debug` shows this crate's debug events; its dependencies (HTML parsers, HTTP
//! clients) stay at `warn`, so their internals do not bury the exporter's own messages.

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

/// Starts logging at `level` (`debug`, `info`, `warn`, `error`) for this crate.
pub fn init(level: &str) {
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
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
}
