//! `quarry_exporter explain`: why each rule did what it did, on the real inputs.
//!
//! Like `one-shot`, every file source is read from its beginning and every page source fetched
//! once, through the same pipelines; each pipeline records a trace: per rule its first matches
//! in full (the record, every field's text, what each update made of them: the series, the
//! value or why it failed) and the first records no rule matched. For a page source the fetch
//! is shown too (what was fetched, how it answered, its size, type and time). Readable on a
//! terminal, or `--output json` for tools.
//!
//! Records are cut at 240 bytes by default (saying so), so the output stays short; `--full` shows
//! them whole (a multi-line record, such as a traceback, as its lines), `--failed` only the
//! matches with a failed update (and only those updates), `--where FIELD=VALUE` (also `!=`,
//! `~REGEX`) only the matches whose fields pass. The counts stay whole either way.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;

use crate::config::{Config, SourceKind};
use crate::gate::Gate;
use crate::pipeline::{Trace, TraceOptions};

/// What one source did.
#[derive(Debug, Clone, Serialize)]
pub struct SourceExplanation {
    pub source: String,
    /// `file`, `http`, `command`, `status_file` or `socket`.
    pub kind: &'static str,
    /// Whether it reads log records line by line (a file source) rather than a fetched
    /// document.
    #[serde(skip)]
    pub reads_lines: bool,
    /// What it reads: its globs, URL (secrets hidden), command or file.
    pub reads: String,
    /// File sources: the files read.
    pub files: Vec<String>,
    /// File sources: matched paths not read and directories not listed, with why
    /// (`/logs/app.pipe is not read: it is a FIFO, not a regular file`).
    pub not_read: Vec<String>,
    /// Page sources: the fetch.
    pub fetch: Option<FetchExplanation>,
    pub trace: Trace,
    /// The samples of the metrics this source's rules update, after reading.
    pub samples: Vec<String>,
}

/// How a page source's fetch went.
#[derive(Debug, Clone, Serialize)]
pub struct FetchExplanation {
    pub ok: bool,
    /// `HTTP 200`, `exit 0`, `512 bytes`.
    pub detail: String,
    pub bytes: Option<usize>,
    pub content_type: Option<String>,
    pub milliseconds: f64,
    pub error: Option<String>,
}

/// Explains every source (or only `only`), showing up to `options.limit` of the matches the
/// options select per rule. A `--where` field no rule of those sources has is an error (with
/// the closest name), not an empty answer.
pub fn explain(
    config_file: &Path,
    config: &Config,
    only: Option<&str>,
    options: &TraceOptions,
) -> anyhow::Result<Vec<SourceExplanation>> {
    if let Some(name) = only {
        if !config.sources.iter().any(|s| s.name == name) {
            let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "no source is named {name:?}; the config has: {}",
                names.join(", ")
            );
        }
    }
    let (_, metrics) = crate::app::new_registry()?;
    let mut built = crate::app::build(
        config,
        &crate::config::base_dir(config_file),
        &metrics,
        None,
        &Arc::new(Gate::default()),
    )?;
    let families = built.families.clone();
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    if !options.filters.is_empty() {
        let mut known: Vec<String> = built
            .sources
            .iter_mut()
            .filter(|(name, _)| wanted(name))
            .flat_map(|(_, s)| s.pipeline_mut().field_names())
            .chain(
                built
                    .pages
                    .iter_mut()
                    .filter(|p| wanted(p.name()))
                    .flat_map(|p| p.pipeline_mut().field_names()),
            )
            .collect();
        known.sort();
        known.dedup();
        for f in &options.filters {
            if !known.contains(&f.field) {
                anyhow::bail!(
                    "--where {f}: no rule has a field named {:?}{}; the fields are: {}",
                    f.field,
                    crate::config::did_you_mean(&f.field, known.iter().map(String::as_str)),
                    known.join(", ")
                );
            }
        }
    }
    let mut out = Vec::new();
    for (name, mut source) in built.sources {
        if !wanted(&name) {
            continue;
        }
        source.pipeline_mut().start_trace(options);
        let mut files = source.read_everything_once(false);
        files.sort();
        let mut not_read = source.not_read();
        not_read.sort();
        let kind = config
            .sources
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("source {name:?} is not in the config"))?
            .kind()?;
        let reads = match kind {
            SourceKind::File(f) => f.paths.join(", "),
            SourceKind::Http(_)
            | SourceKind::Command(_)
            | SourceKind::StatusFile(_)
            | SourceKind::Socket(_) => {
                anyhow::bail!(
                    "source {name:?} is read as a file source but is `{}:`",
                    kind.key()
                )
            }
        };
        out.push(SourceExplanation {
            reads,
            source: name,
            kind: kind.key(),
            reads_lines: kind.reads_lines(),
            files,
            not_read,
            fetch: None,
            trace: source.pipeline_mut().take_trace().unwrap_or_default(),
            samples: Vec::new(),
        });
    }
    let pages: Vec<_> = built
        .pages
        .into_iter()
        .filter(|p| wanted(p.name()))
        .collect();
    if !pages.is_empty() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            for mut page in pages {
                page.pipeline_mut().start_trace(options);
                page.run_once().await;
                let kind = page.kind();
                let fetch = page.last_fetch().map(|f| FetchExplanation {
                    ok: f.ok,
                    detail: f.detail,
                    bytes: f.bytes,
                    content_type: f.content_type,
                    milliseconds: f.duration.as_secs_f64() * 1000.0,
                    error: f.error,
                });
                out.push(SourceExplanation {
                    source: page.name().to_owned(),
                    kind,
                    reads_lines: false,
                    reads: page.target(),
                    files: Vec::new(),
                    not_read: Vec::new(),
                    fetch,
                    trace: page.pipeline_mut().take_trace().unwrap_or_default(),
                    samples: Vec::new(),
                });
            }
        });
    }
    // Config order, and each source's samples.
    let exposition = crate::exposition::concat(families.render(), |_| true);
    let exposition = String::from_utf8_lossy(&exposition);
    let order = |name: &str| config.sources.iter().position(|s| s.name == name);
    out.sort_by_key(|e| order(&e.source));
    for e in &mut out {
        let Some(source) = config.sources.iter().find(|s| s.name == e.source) else {
            continue;
        };
        let names: Vec<&str> = source
            .rules
            .iter()
            .flat_map(|r| r.update.iter().map(|u| u.metric.as_str()))
            .collect();
        e.samples = exposition
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                let name = l.split(['{', ' ']).next().unwrap_or("");
                names.iter().any(|n| {
                    name == *n
                        || name
                            .strip_prefix(n)
                            .is_some_and(|s| matches!(s, "_bucket" | "_sum" | "_count" | "_level"))
                })
            })
            .map(str::to_owned)
            .collect();
    }
    // A used module's secret parameters (a token in a URL path, say) are shown nowhere.
    let secrets: Vec<&str> = config
        .uses
        .iter()
        .flat_map(|u| u.secrets.iter().map(String::as_str))
        .collect();
    if !secrets.is_empty() {
        let hide = |text: &mut String| {
            for secret in &secrets {
                if text.contains(secret) {
                    *text = text.replace(secret, "<secret>");
                }
            }
        };
        for e in &mut out {
            hide(&mut e.reads);
            if let Some(fetch) = &mut e.fetch {
                hide(&mut fetch.detail);
                if let Some(error) = &mut fetch.error {
                    hide(error);
                }
            }
        }
    }
    Ok(out)
}

/// `text` safe to print on a terminal: control characters, which a log line may carry to
/// retitle, clear or recolour the terminal, are written as Rust writes them in a string
/// (`\u{1b}`, `\n`, `\r`), as the `fields:` lines already show them; a tab stays a tab, and
/// other text (backslashes included) is as it was. `--output json` gives the exact text.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(escaped) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// The explanation for a terminal (every text from outside the config passed through
/// [`terminal_safe`]).
pub fn render_text(sources: &[SourceExplanation]) -> String {
    let safe = terminal_safe;
    let mut t = String::new();
    for e in sources {
        let _ = writeln!(t, "== source {} ({}) ==", safe(&e.source), e.kind);
        let _ = writeln!(t, "reads: {}", safe(&e.reads));
        if e.reads_lines {
            if e.files.is_empty() {
                let _ = writeln!(
                    t,
                    "files: {}",
                    if e.not_read.is_empty() {
                        "none matched"
                    } else {
                        "none read"
                    }
                );
            }
            for f in &e.files {
                let _ = writeln!(t, "file: {}", safe(f));
            }
            for why in &e.not_read {
                let _ = writeln!(t, "note: {}", safe(why));
            }
        }
        if let Some(f) = &e.fetch {
            let _ = write!(t, "fetch: {}", if f.ok { "ok" } else { "FAILED" });
            if !f.detail.is_empty() {
                let _ = write!(t, ", {}", safe(&f.detail));
            }
            if let Some(b) = f.bytes.filter(|_| !f.detail.ends_with("bytes")) {
                let _ = write!(t, ", {b} bytes");
            }
            if let Some(c) = &f.content_type {
                let _ = write!(t, ", {}", safe(c));
            }
            let _ = writeln!(t, ", {:.1} ms", f.milliseconds);
            if let Some(err) = &f.error {
                let _ = writeln!(t, "  error: {}", safe(err));
            }
        }
        for r in &e.trace.rules {
            let selected = match (r.selected, &e.trace.selected_by) {
                (Some(n), Some(by)) => format!(", {n} {}", safe(by)),
                _ => String::new(),
            };
            let _ = writeln!(
                t,
                "rule {}: {} match{}{selected} (showing {})",
                safe(&r.rule),
                r.matches,
                if r.matches == 1 { "" } else { "es" },
                r.shown.len()
            );
            for (i, m) in r.shown.iter().enumerate() {
                match (&m.record, m.record_bytes) {
                    (Some(record), cut) if record.contains('\n') => {
                        // A multi-line record (a traceback) as its lines.
                        let _ = writeln!(t, "  #{} record:", i + 1);
                        for line in record.split('\n') {
                            let _ = writeln!(t, "     | {}", safe(line));
                        }
                        if let Some(bytes) = cut {
                            let _ = writeln!(
                                t,
                                "     (cut: {bytes} bytes in all, --full shows it whole)"
                            );
                        }
                    }
                    (Some(line), None) => {
                        let _ = writeln!(t, "  #{} line: {}", i + 1, safe(line));
                    }
                    (Some(line), Some(bytes)) => {
                        let _ = writeln!(
                            t,
                            "  #{} line: {}  (cut: {bytes} bytes in all, --full shows it whole)",
                            i + 1,
                            safe(line)
                        );
                    }
                    (None, _) => {
                        let _ = writeln!(t, "  #{} row", i + 1);
                    }
                }
                let fields: Vec<String> = m
                    .fields
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{}={v:?}", safe(n)),
                        None => format!("{}=(nothing selected)", safe(n)),
                    })
                    .collect();
                let _ = writeln!(t, "     fields: {}", fields.join(" "));
                for u in &m.updates {
                    let series = safe(&u.series);
                    match (&u.value, &u.error) {
                        (_, Some(err)) => {
                            let _ = writeln!(t, "     {} {series}: FAILED {}", u.op, safe(err));
                        }
                        (Some(v), None) => {
                            let how = u
                                .conversion
                                .as_ref()
                                .map(|c| format!("  ({})", safe(c)))
                                .unwrap_or_default();
                            let _ = writeln!(t, "     {} {series} {}{how}", u.op, safe(v));
                        }
                        (None, None) => {
                            let _ = writeln!(t, "     {} {series}", u.op);
                        }
                    }
                }
                if m.updates_not_shown > 0 {
                    let n = m.updates_not_shown;
                    let _ = writeln!(
                        t,
                        "     (and {n} update{} that did not fail)",
                        if n == 1 { "" } else { "s" }
                    );
                }
            }
        }
        let _ = writeln!(
            t,
            "no rule matched: {} record{}{}",
            e.trace.unmatched,
            if e.trace.unmatched == 1 { "" } else { "s" },
            if e.trace.selected_by.is_some() && e.trace.unmatched > 0 {
                " (not shown: only matches are selected)"
            } else {
                ""
            }
        );
        for record in &e.trace.unmatched_shown {
            let mut lines = record.split('\n');
            let _ = writeln!(t, "  {}", safe(lines.next().unwrap_or("")));
            for line in lines {
                let _ = writeln!(t, "  | {}", safe(line));
            }
        }
        let _ = writeln!(t, "samples:");
        if e.samples.is_empty() {
            let _ = writeln!(t, "  (none)");
        }
        for s in &e.samples {
            let _ = writeln!(t, "  {}", safe(s));
        }
        t.push('\n');
    }
    t
}
