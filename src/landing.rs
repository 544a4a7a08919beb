//! The landing page at `/`: every source, every file it reads, their state, counts and last
//! error, and the probe modules with their counts, so an operator can see what the exporter is
//! doing without reading logs. It links to the status board (`/status`), whose tiles link back
//! to each source's section here (`#source-NAME`).

use std::fmt::Write;

use crate::board::page::esc;
use crate::probe::ModuleSummary;
use crate::status::SharedStatus;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:14px}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37}.warn{color:#9a6700}.err{color:#cf222e}code{background:#f6f8fa;padding:0 .2em}";

/// What the landing page shows, gathered by the server from its state.
pub struct Facts<'a> {
    /// The config file, as named on the command line.
    pub config_file: &'a str,
    /// Where `/metrics` is served (`--web.telemetry-path`).
    pub telemetry_path: &'a str,
    /// Sources that have not finished their first scan.
    pub pending_sources: usize,
    /// One status per source.
    pub statuses: &'a [SharedStatus],
    /// The probe modules' counts and last failures (empty without modules).
    pub probe_modules: &'a [ModuleSummary],
}

/// Renders the page from the latest status snapshots.
pub fn render(facts: &Facts<'_>) -> String {
    let mut h = String::with_capacity(8 << 10);
    let pending = facts.pending_sources;
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>quarry_exporter</title>\
         <style>{STYLE}</style></head><body><h1>quarry_exporter</h1>\
         <p>Version {} &middot; config <code>{}</code> &middot; {}</p>\
         <p><a href=\"status\">Status board</a> &middot; <a href=\"{}\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; <a href=\"/-/ready\">Readiness</a></p>",
        env!("CARGO_PKG_VERSION"),
        esc(facts.config_file),
        if pending == 0 {
            "<span class=\"ok\">ready</span>".to_owned()
        } else {
            format!("<span class=\"warn\">{pending} source(s) starting</span>")
        },
        esc(facts.telemetry_path),
    );
    h.push_str("<h2>Sources</h2>");
    if facts.statuses.is_empty() {
        h.push_str("<p>No sources are configured.</p>");
    }
    for status in facts.statuses {
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
        if s.reads_lines {
            let _ = write!(
                h,
                " &middot; {} &middot; {} file(s)",
                match s.notifications {
                    crate::config::WatchMode::All => "notified by inotify",
                    crate::config::WatchMode::Names =>
                        "polling contents, names notified by inotify",
                    crate::config::WatchMode::Off => "polling",
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
        } else if !s.reads_lines {
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
        if !s.reads_lines {
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
    if !facts.probe_modules.is_empty() {
        h.push_str(
            "<h2>Probe modules</h2><p>Run by <code>/probe?module=NAME&amp;target=TARGET</code> \
             (add <code>&amp;debug=true</code> to see what a probe does).</p>\
             <table><tr><th>module</th><th>fetches</th><th>probes</th><th>failed</th><th>last failure</th></tr>",
        );
        for m in facts.probe_modules {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::SourceStatus;
    use std::sync::{Arc, Mutex};

    /// The page is made from its facts alone (no server needed): readiness, each source and
    /// each probe module, everything they name escaped.
    #[test]
    fn page_shows_its_facts_escaped() {
        let source = SourceStatus {
            name: "web<1>".into(),
            kind: "http",
            targets: vec!["http://a/?q=<x>".into()],
            last_error: Some("status 500 & more".into()),
            ..SourceStatus::default()
        };
        let module = ModuleSummary {
            name: "health\"json".into(),
            fetches: "GET http://$target/health".into(),
            probes: 7,
            failed: 2,
            last_failure: "t: timeout <slow>".into(),
        };
        let statuses = [Arc::new(Mutex::new(source))];
        let page = render(&Facts {
            config_file: "conf/<exporter>.yaml",
            telemetry_path: "/metrics",
            pending_sources: 1,
            statuses: &statuses,
            probe_modules: std::slice::from_ref(&module),
        });
        for expected in [
            "config <code>conf/&lt;exporter&gt;.yaml</code>",
            "1 source(s) starting",
            "<a href=\"/metrics\">Metrics</a>",
            "web&lt;1&gt; <small>(http)</small>",
            "<code>http://a/?q=&lt;x&gt;</code>",
            "Last error: status 500 &amp; more",
            "<h2>Probe modules</h2>",
            "<tr><td>health&quot;json</td><td><code>GET http://$target/health</code></td><td class=\"num\">7</td><td class=\"num\">2</td><td>t: timeout &lt;slow&gt;</td></tr>",
        ] {
            assert!(page.contains(expected), "{expected}\nnot in\n{page}");
        }
        assert!(!page.contains("<exporter>") && !page.contains("web<1>"));

        let empty = render(&Facts {
            config_file: "exporter.yaml",
            telemetry_path: "/metrics",
            pending_sources: 0,
            statuses: &[],
            probe_modules: &[],
        });
        assert!(empty.contains("<span class=\"ok\">ready</span>"));
        assert!(empty.contains("No sources are configured."));
        assert!(!empty.contains("Probe modules"));
    }
}
