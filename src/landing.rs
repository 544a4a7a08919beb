//! The landing page at `/`: every source, every file it reads, their state, counts and last
//! error, and the probe modules with their counts, so an operator can see what the exporter is
//! doing without reading logs. It links to the status board (`/status`), whose tiles link back
//! to each source's section here (`#source-NAME`).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::board::page::esc;
use crate::server::WebState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:14px}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37}.warn{color:#9a6700}.err{color:#cf222e}code{background:#f6f8fa;padding:0 .2em}";

/// Renders the page from the latest status snapshots.
pub fn render(state: &WebState) -> String {
    let mut h = String::with_capacity(8 << 10);
    let pending = state.pending_sources.load(Ordering::SeqCst);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>quarry_exporter</title>\
         <style>{STYLE}</style></head><body><h1>quarry_exporter</h1>\
         <p>Version {} &middot; config <code>{}</code> &middot; {}</p>\
         <p><a href=\"status\">Status board</a> &middot; <a href=\"{}\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; <a href=\"/-/ready\">Readiness</a></p>",
        env!("CARGO_PKG_VERSION"),
        esc(&state.config_file),
        if pending == 0 {
            "<span class=\"ok\">ready</span>".to_owned()
        } else {
            format!("<span class=\"warn\">{pending} source(s) starting</span>")
        },
        esc(&state.telemetry_path),
    );
    h.push_str("<h2>Sources</h2>");
    let statuses = state
        .statuses
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if statuses.is_empty() {
        h.push_str("<p>No sources are configured.</p>");
    }
    for status in &statuses {
        let s = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = write!(
            h,
            "<h3 id=\"source-{}\">{} <small>({})</small></h3><p>Reads <code>{}</code>",
            crate::board::encode(&s.name),
            esc(&s.name),
            s.kind,
            s.targets
                .iter()
                .map(|t| esc(t))
                .collect::<Vec<_>>()
                .join("</code>, <code>"),
        );
        if s.kind == "file" {
            let _ = write!(
                h,
                " &middot; {} &middot; {} file(s)",
                if s.notifications {
                    "notified by inotify"
                } else {
                    "polling"
                },
                s.files.len()
            );
        }
        h.push_str("</p>");
        if let Some(f) = &s.fetch {
            let ago =
                f.at.elapsed()
                    .map(|d| format!("{:.0} s ago", d.as_secs_f64()))
                    .unwrap_or_default();
            let _ = write!(
                h,
                "<p>Last fetch {ago}: <span class=\"{}\">{}</span> &middot; {} &middot; {:.3} s &middot; {} match(es)</p>",
                if f.ok { "ok" } else { "err" },
                if f.ok { "OK" } else { "failed" },
                esc(&f.detail),
                f.duration.as_secs_f64(),
                f.matches,
            );
        } else if s.kind != "file" {
            h.push_str("<p class=\"warn\">Not fetched yet.</p>");
        }
        if let Some(e) = &s.last_error {
            let _ = write!(h, "<p class=\"err\">Last error: {}</p>", esc(e));
        }
        for note in &s.notes {
            let _ = write!(h, "<p class=\"warn\">{}</p>", esc(note));
        }
        h.push_str("<table><tr><th>Rule</th><th>Matches</th><th>Failed updates</th><th>Last failing text, by reason</th></tr>");
        for r in &s.rules {
            let mut failures = String::new();
            for (reason, text) in &r.last_failures {
                let _ = write!(
                    failures,
                    "<div><code>{}</code> <code class=\"err\">{}</code></div>",
                    esc(reason),
                    esc(text)
                );
            }
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num {}\">{}</td><td>{failures}</td></tr>",
                esc(&r.name),
                r.matches,
                if r.errors > 0 { "err" } else { "" },
                r.errors
            );
        }
        let mut samples = String::new();
        for line in &s.unmatched_samples {
            let _ = write!(samples, "<div><code>{}</code></div>", esc(line));
        }
        let _ = write!(
            h,
            "<tr><td><em>no rule matched</em></td><td class=\"num\">{}</td><td></td><td>{samples}</td></tr></table>",
            s.unmatched
        );
        if s.kind != "file" {
            continue;
        }
        if s.files.is_empty() {
            h.push_str("<p class=\"warn\">No file matches yet.</p>");
            continue;
        }
        h.push_str("<table><tr><th>File</th><th>State</th><th>Offset</th><th>Size</th><th>Lines</th><th>Bytes</th><th>Last error</th></tr>");
        for f in &s.files {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
                esc(&f.path),
                match (&f.last_error, f.state) {
                    (Some(_), _) => "err",
                    (None, crate::status::FileState::Following) => "ok",
                    _ => "warn",
                },
                f.state.as_str(),
                f.offset,
                f.size,
                f.lines,
                f.bytes,
                esc(f.last_error.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table>");
    }
    let probes = state
        .probes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !probes.is_empty() {
        h.push_str(
            "<h2>Probe modules</h2><p>Run by <code>/probe?module=NAME&amp;target=TARGET</code> \
             (add <code>&amp;debug=true</code> to see what a probe does).</p>\
             <table><tr><th>module</th><th>fetches</th><th>probes</th><th>failed</th><th>last failure</th></tr>",
        );
        for m in probes.summaries() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&m.name),
                esc(&m.fetches),
                m.probes,
                m.failed,
                esc(&m.last_failure),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
