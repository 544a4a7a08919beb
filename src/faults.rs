//! Faults that tests inject into a debug build, to see that the exporter contains them: a
//! panic in a source, a checkpoint write that never returns. `QUARRY_TEST_FAULTS` lists them,
//! comma-separated, each `name` or `name:argument`. A release build has none: every check is
//! a constant `None` there.
//!
//! - `panic_on_record:TEXT` — the pipeline panics on a record that contains TEXT (matched ahead
//!   by `one-shot` on two threads: the matchers panic, on whichever thread matches it).
//! - `panic_once:PATH` — a file source's thread panics once when PATH exists (removed first).
//! - `hang_checkpoint_write` — every checkpoint write blocks for good.
//! - `endless_more` — a file source's passes all say there is more to read, while reading
//!   nothing more (a tailer deciding the same file again and again).

/// The argument of fault `name` when it is injected (`Some("")` without one).
#[cfg(debug_assertions)]
pub fn injected(name: &str) -> Option<String> {
    let faults = std::env::var("QUARRY_TEST_FAULTS").ok()?;
    faults.split(',').find_map(|f| match f.split_once(':') {
        Some((n, arg)) if n == name => Some(arg.to_owned()),
        None if f == name => Some(String::new()),
        _ => None,
    })
}

/// The argument of fault `name` when it is injected: never, in a release build.
#[cfg(not(debug_assertions))]
pub fn injected(_name: &str) -> Option<String> {
    None
}

/// Panics if fault `panic_on_record` names text in `record`.
pub fn panic_on_record(record: &str) {
    if cfg!(debug_assertions) {
        if let Some(text) = injected("panic_on_record") {
            if !text.is_empty() && record.contains(&text) {
                panic!("injected fault: panic_on_record:{text}");
            }
        }
    }
}

/// Panics once if fault `panic_once` names a file that exists (the file is removed first).
pub fn panic_once() {
    if cfg!(debug_assertions) {
        if let Some(path) = injected("panic_once") {
            if !path.is_empty() && std::fs::remove_file(&path).is_ok() {
                panic!("injected fault: panic_once:{path}");
            }
        }
    }
}

/// Blocks for good if fault `hang_checkpoint_write` is injected.
pub fn hang_checkpoint_write() {
    if cfg!(debug_assertions) && injected("hang_checkpoint_write").is_some() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Whether fault `endless_more` is injected: every pass of a file source says it has more to
/// read.
pub fn endless_more() -> bool {
    cfg!(debug_assertions) && injected("endless_more").is_some()
}
