//! Grafana dashboards made from a config: a panel per metric chosen by its type (state →
//! worst-state stat and state timeline, counter → rate by its labels, histogram → quantiles
//! and heatmap, gauge → time series; a catalog module's metrics under a row titled by its
//! instances), then the exporter-health rows. The bundled dashboards in
//! `dashboards/` are this module's output (a test keeps them in step).
//!
//! Conventions: a `datasource` variable used by every panel and target, `job` and `instance`
//! variables in every selector (`probe_job` and `target` for what `/probe` serves), stable uids, tags, a unit and a description on every panel,
//! `$__rate_interval` in rates.
//!
//! Every query shows something when nothing went wrong: a generated board has only the health
//! panels its config can feed ([`Feeds`]), error counters are exported at 0 for every reason a
//! source or module can have, and the health board's queries fall back to one series at 0
//! labelled `(no page sources)`, `(no files)`, ... where the config has nothing of the kind.
//! Metrics fed by probe modules are shown per target (`instance`), and a target whose probe
//! fails keeps its state lanes, as `unknown`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::config::{Config, MetricConfig, MetricKind, ModuleDashboard, UsedModule, UNKNOWN_STATE};
use crate::pipeline::record_error_reasons;
use crate::registry::level_name;

const DATASOURCE: &str = "${datasource}";
/// Grafana's dashboard schema version this output follows (Grafana 10.4 / 11).
pub const SCHEMA_VERSION: u32 = 39;
const SELECTOR: &str = r#"job="$job", instance=~"$instance""#;
/// The selector of metrics served by `/probe`: the probe job, one instance per target.
const PROBE_SELECTOR: &str = r#"job="$probe_job", instance=~"$target""#;

fn ds() -> Value {
    json!({"type": "prometheus", "uid": DATASOURCE})
}

/// One panel before layout.
struct Panel {
    kind: &'static str,
    title: String,
    description: String,
    unit: &'static str,
    width: u32,
    height: u32,
    targets: Vec<(String, String)>,
    extra: Value,
}

impl Panel {
    fn new(
        kind: &'static str,
        title: impl Into<String>,
        description: impl Into<String>,
        unit: &'static str,
    ) -> Panel {
        Panel {
            kind,
            title: title.into(),
            description: description.into(),
            unit,
            width: 12,
            height: 8,
            targets: Vec::new(),
            extra: json!({}),
        }
    }
    fn size(mut self, width: u32, height: u32) -> Panel {
        self.width = width;
        self.height = height;
        self
    }
    fn target(mut self, expr: impl Into<String>, legend: impl Into<String>) -> Panel {
        self.targets.push((expr.into(), legend.into()));
        self
    }
    fn with(mut self, extra: Value) -> Panel {
        self.extra = extra;
        self
    }
}

/// Lays out rows of panels left to right, wrapping at 24 columns.
struct Layout {
    panels: Vec<Value>,
    next_id: u32,
    x: u32,
    y: u32,
    row_height: u32,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            panels: Vec::new(),
            next_id: 1,
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn row(&mut self, title: &str) {
        self.newline();
        let id = self.id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []
        }));
        self.y += 1;
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    fn add(&mut self, p: Panel) {
        if self.x + p.width > 24 {
            self.newline();
        }
        let id = self.id();
        let targets: Vec<Value> = p
            .targets
            .iter()
            .enumerate()
            .map(|(i, (expr, legend))| {
                json!({"refId": ((b'A' + i as u8) as char).to_string(), "datasource": ds(), "expr": expr,
                       "legendFormat": legend, "range": true, "instant": false})
            })
            .collect();
        let mut panel = json!({
            "type": p.kind, "id": id, "title": p.title, "description": p.description, "datasource": ds(),
            "gridPos": {"h": p.height, "w": p.width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
            "options": {}, "targets": targets,
        });
        merge(&mut panel, &p.extra);
        self.panels.push(panel);
        self.x += p.width;
        self.row_height = self.row_height.max(p.height);
    }
}

/// Deep-merges `extra` into `base`.
fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// `p50`, `p90`, `p99` for `0.5`, `0.9`, `0.99`.
fn quantile_legend(q: &str) -> String {
    let percent = q.parse::<f64>().map(|v| v * 100.0).unwrap_or(0.0);
    if (percent - percent.round()).abs() < 1e-9 {
        format!("p{}", percent.round() as u32)
    } else {
        format!("p{percent:.1}")
    }
}

/// The metric name for people: `_total` and unit suffixes the axis shows off, words spaced,
/// first letter capital (`web_request_duration_seconds` → `Web request duration`).
pub fn human(name: &str) -> String {
    let mut base = name.strip_suffix("_total").unwrap_or(name);
    // The axis shows these units; "bytes" reads better kept (`Web response bytes per second`).
    for unit in ["_seconds", "_ratio", "_percent", "_celsius", "_info"] {
        if let Some(b) = base.strip_suffix(unit) {
            base = b;
            break;
        }
    }
    let spaced = base.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name.to_owned(),
    }
}

/// A uid for the board of `config_file`: its name and a digest of its absolute path, so boards
/// of different configs never overwrite each other or the bundled ones (`quarry-status-board`,
/// `quarry-exporter-health`) on import, and regenerating one updates it.
pub fn default_uid(config_file: &std::path::Path) -> String {
    let absolute = std::fs::canonicalize(config_file).unwrap_or_else(|_| config_file.to_path_buf());
    let digest = ring::digest::digest(&ring::digest::SHA256, absolute.to_string_lossy().as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stem: String = config_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(20)
        .collect();
    format!("quarry-{stem}-{hex}")
}

/// A title for the board of `config_file`: `quarry_exporter / <file name>`.
pub fn default_title(config_file: &std::path::Path) -> String {
    let name = config_file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    format!("quarry_exporter / {name}")
}

fn unit_for(name: &str, rate: bool) -> &'static str {
    let base = name.trim_end_matches("_total");
    match () {
        _ if base.ends_with("_bytes") => {
            if rate {
                "Bps"
            } else {
                "bytes"
            }
        }
        _ if base.ends_with("_seconds") => {
            if rate {
                "percentunit"
            } else {
                "s"
            }
        }
        _ if base.ends_with("_ratio") => "percentunit",
        _ if base.ends_with("_percent") => "percent",
        _ if base.ends_with("_celsius") => "celsius",
        _ if rate => "ops",
        _ => "short",
    }
}

fn legend(labels: &[String]) -> String {
    if labels.is_empty() {
        "{{instance}}".into()
    } else {
        labels
            .iter()
            .map(|l| format!("{{{{{l}}}}}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn by(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!(" by ({})", labels.join(", "))
    }
}

/// Colours from best (green) to worst (red) for `n` states.
fn state_colors(n: usize) -> Vec<&'static str> {
    const PALETTE: [&str; 5] = ["green", "yellow", "orange", "purple", "red"];
    match n {
        0 => vec![],
        1 => vec!["green"],
        _ => (0..n)
            .map(|i| PALETTE[(i * (PALETTE.len() - 1) + (n - 1) / 2) / (n - 1)])
            .collect(),
    }
}

/// Value mappings for a state level: each declared state in its colour, then `unknown` (the
/// level of a series whose source cannot be seen, one past the worst) in grey.
fn state_mappings(states: &[String]) -> Value {
    let colors = state_colors(states.len());
    let mut options = serde_json::Map::new();
    for (i, (s, c)) in states.iter().zip(colors).enumerate() {
        options.insert(i.to_string(), json!({"text": s, "color": c, "index": i}));
    }
    let unknown = states.len();
    options.insert(
        unknown.to_string(),
        json!({"text": UNKNOWN_STATE, "color": "text", "index": unknown}),
    );
    json!([{"type": "value", "options": options}])
}

/// Threshold steps matching [`state_mappings`]: a colour per state, grey from `unknown` on.
fn state_thresholds(states: &[String]) -> Vec<Value> {
    let mut steps: Vec<Value> = state_colors(states.len())
        .into_iter()
        .enumerate()
        .map(|(i, c)| json!({"color": c, "value": if i == 0 { Value::Null } else { json!(i) }}))
        .collect();
    steps.push(json!({"color": "text", "value": states.len()}));
    steps
}

/// The lanes of a state metric, one per series: its level by its labels, worst first. For a
/// metric fed by a probe module (`probed`), one lane per target and series (`instance` first),
/// and a target whose last probe failed keeps its lanes as `unknown` (grey): a failed probe
/// answers only the series its state metrics pre-declare (it keeps nothing between probes, so
/// it cannot know the others), so the query adds the series the target had in the last hour
/// at the `unknown` level, and a target with none gets one lane whose first label reads
/// `(not seen)`.
fn state_lanes(m: &MetricConfig, probed: bool) -> String {
    let level = level_name(&m.name);
    if !probed {
        return format!("max{}({level}{{{SELECTOR}}})", by(&m.labels));
    }
    let sel = PROBE_SELECTOR;
    let unknown = m.states.as_ref().map_or(0, Vec::len);
    let mut grouped = vec!["instance".to_owned()];
    grouped.extend(m.labels.iter().cloned());
    let by = grouped.join(", ");
    let failing = format!("max by (instance) (quarry_probe_success{{{sel}}}) == 0");
    let never_seen = match m.labels.first() {
        Some(first) => format!(r#"label_replace({failing}, "{first}", "(not seen)", "", "")"#),
        None => format!("({failing})"),
    };
    format!(
        "max by ({by}) ({level}{{{sel}}}) \
         or (max by ({by}) (last_over_time({level}{{{sel}}}[1h])) * 0 + {unknown} and on (instance) ({failing})) \
         or on (instance) {never_seen} + {unknown}"
    )
}

/// The legend of a metric's series: its labels, after the target for a probed metric.
fn series_legend(m: &MetricConfig, probed: bool) -> String {
    if probed {
        format!("{{{{instance}}}} {}", legend(&m.labels))
            .replace("{{instance}} {{instance}}", "{{instance}}")
            .trim()
            .to_owned()
    } else {
        legend(&m.labels)
    }
}

/// The labels a metric's series are summed by: its own, after `instance` for a probed metric
/// (each target apart).
fn series_labels(m: &MetricConfig, probed: bool) -> Vec<String> {
    let mut labels = Vec::new();
    if probed {
        labels.push("instance".to_owned());
    }
    labels.extend(m.labels.iter().cloned());
    labels
}

fn metric_panels(layout: &mut Layout, m: &MetricConfig, probed: bool) {
    let sel = if probed { PROBE_SELECTOR } else { SELECTOR };
    let help = m.help.trim();
    let per_target = if probed {
        " One series per target (`instance`) and label set."
    } else {
        ""
    };
    match m.kind {
        MetricKind::State => {
            let states = m.states.clone().unwrap_or_default();
            let mappings = state_mappings(&states);
            let unknown = states.len();
            let thresholds = state_thresholds(&states);
            let lanes = state_lanes(m, probed);
            let failed = if probed {
                " A target whose probe fails shows its components of the last hour as unknown."
            } else {
                ""
            };
            layout.add(
                Panel::new("stat", format!("Worst {}", human(&m.name).to_lowercase()), format!("{help} (`{}`) The worst current state over all series (0 = {}, {} = {}, {unknown} = unknown: a source that cannot be seen counts as worse than any state it could report).{failed}", m.name, states.first().map(String::as_str).unwrap_or(""), unknown.saturating_sub(1), states.last().map(String::as_str).unwrap_or("")), "none")
                    .size(6, 6)
                    .target(format!("max({lanes})"), "worst")
                    .with(json!({
                        "fieldConfig": {"defaults": {"mappings": mappings, "min": 0, "max": unknown,
                            "thresholds": {"mode": "absolute", "steps": thresholds}, "color": {"mode": "thresholds"}}},
                        "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}}
                    })),
            );
            let lane_labels = series_labels(m, probed).len() as u32;
            layout.add(
                Panel::new("state-timeline", format!("{} over time", human(&m.name)), format!("{help} (`{}`) One lane per series{}, coloured by state (grey: unknown, the source cannot be seen); worst first.{failed}", m.name, if probed { " of each target" } else { "" }), "none")
                    .size(18, 6 + lane_labels.min(2) * 2)
                    .target(format!("sort_desc({lanes})"), series_legend(m, probed))
                    .with(json!({
                        "fieldConfig": {"defaults": {"mappings": mappings, "color": {"mode": "thresholds"},
                            "thresholds": {"mode": "absolute", "steps": thresholds}}},
                        "options": {"showValue": "auto", "mergeValues": true, "rowHeight": 0.9, "legend": {"showLegend": false}}
                    })),
            );
        }
        MetricKind::Counter => layout.add(
            Panel::new(
                "timeseries",
                format!("{} per second", human(&m.name)),
                format!("{help} Per-second rate of `{}`.{per_target}", m.name),
                unit_for(&m.name, true),
            )
            .target(
                format!(
                    "sum{}(rate({}{{{sel}}}[$__rate_interval]))",
                    by(&series_labels(m, probed)),
                    m.name
                ),
                series_legend(m, probed),
            ),
        ),
        MetricKind::Gauge => layout.add(
            Panel::new(
                "timeseries",
                human(&m.name),
                format!("{help} (`{}`){per_target}", m.name),
                unit_for(&m.name, false),
            )
            .target(format!("{}{{{sel}}}", m.name), series_legend(m, probed)),
        ),
        MetricKind::Histogram => {
            let labels = series_labels(m, probed);
            let mut grouped = vec!["le".to_owned()];
            grouped.extend(labels.iter().cloned());
            let mut p = Panel::new(
                "timeseries",
                format!("{} quantiles", human(&m.name)),
                format!(
                    "{help} Median, 90th and 99th percentile of `{}`.{per_target}",
                    m.name
                ),
                unit_for(&m.name, false),
            );
            for q in ["0.5", "0.9", "0.99"] {
                let l = if labels.is_empty() {
                    String::new()
                } else {
                    series_legend(m, probed)
                };
                p = p.target(
                    format!("histogram_quantile({q}, sum by ({}) (rate({}_bucket{{{sel}}}[$__rate_interval])))", grouped.join(", "), m.name),
                    format!("{} {l}", quantile_legend(q)).trim().to_owned(),
                );
            }
            layout.add(p);
            layout.add(
                Panel::new("heatmap", format!("{} distribution", human(&m.name)), format!("{help} Observations of `{}` per bucket.", m.name), unit_for(&m.name, false))
                    .target(format!("sum by (le) (rate({}_bucket{{{sel}}}[$__rate_interval]))", m.name), "{{le}}")
                    .with(json!({
                        "targets": [{"refId": "A", "datasource": ds(), "format": "heatmap",
                                     "expr": format!("sum by (le) (rate({}_bucket{{{sel}}}[$__rate_interval]))", m.name), "legendFormat": "{{le}}"}],
                        "options": {"calculate": false, "yAxis": {"unit": unit_for(&m.name, false)}, "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}}
                    })),
            );
        }
    }
}

/// Which exporter-health panels a config can feed: a panel whose self-metrics the config can
/// never export could only say "No data", so a generated board leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feeds {
    /// Page sources (`http:`, `command:`, `status_file:`): `quarry_source_up`, errors, fetches.
    pub page_sources: bool,
    /// Probe modules: `quarry_probe_*` capacity and errors.
    pub probes: bool,
    /// File sources: `quarry_file_*`, `quarry_source_files`.
    pub files: bool,
    /// Sources with rules (modules' rules are not counted on `/metrics`): matches, failed
    /// updates, unmatched records.
    pub rules: bool,
    /// File sources that read records (`format`, `multiline`, `json:` or `logfmt:` rules):
    /// `quarry_source_record_errors_total`.
    pub records: bool,
    /// Metrics served on `/metrics` (not only fed by modules): `quarry_series`, drops.
    pub served_metrics: bool,
}

impl Feeds {
    /// Every panel: the bundled health board, for any config.
    pub const ALL: Feeds = Feeds {
        page_sources: true,
        probes: true,
        files: true,
        rules: true,
        records: true,
        served_metrics: true,
    };

    /// What `config` can feed.
    pub fn of(config: &Config) -> Feeds {
        Feeds {
            page_sources: config.sources.iter().any(|s| !s.reads_lines()),
            probes: !config.modules.is_empty(),
            files: config.sources.iter().any(|s| s.reads_lines()),
            rules: !config.sources.is_empty(),
            records: config
                .sources
                .iter()
                .any(|s| !record_error_reasons(s).is_empty()),
            served_metrics: !config.served_metrics().is_empty(),
        }
    }
}

/// `expr`, or, when it has no series at all (nothing of its kind exists, or nothing has
/// happened yet), one series at `value` labelled `label="text"`, so the panel reads 0 with a
/// legend that says why instead of "No data". `or on()` adds it only when `expr` is empty.
fn or_none(expr: impl AsRef<str>, label: &str, text: &str, value: i32) -> String {
    format!(
        r#"({}) or on() label_replace(vector({value}), "{label}", "{text}", "", "")"#,
        expr.as_ref()
    )
}

/// A fallback lane of a 0/1 state timeline: -1, shown grey as `none`.
fn none_mapping() -> Value {
    json!({"text": "none", "color": "text"})
}

fn health_panels(layout: &mut Layout, feeds: Feeds) {
    let sel = SELECTOR;
    const NO_PAGE: &str = "(no page sources)";
    const NO_FILE: &str = "(no files)";
    const NONE: &str = "(none)";
    if feeds.page_sources {
        layout.row("Page sources");
        layout.add(Panel::new("stat", "Page sources down", "Page sources whose last fetch failed or matched nothing.", "none").size(6, 6)
            .target(format!("count(quarry_source_up{{{sel}}} == 0) or vector(0)"), "down")
            .with(json!({"fieldConfig": {"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 1}]}, "color": {"mode": "thresholds"}}},
                         "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}}})));
        layout.add(Panel::new("state-timeline", "Source up", "1 when the last fetch succeeded and some rule matched (grey `none`: the exporter has no page source).", "none").size(18, 6)
            .target(or_none(format!("max by (source) (quarry_source_up{{{sel}}})"), "source", NO_PAGE, -1), "{{source}}")
            .with(json!({"fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {"-1": none_mapping(), "0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}], "color": {"mode": "thresholds"}}},
                         "options": {"showValue": "never", "mergeValues": true}})));
        layout.add(Panel::new("timeseries", "Source failures by reason", "Failed fetches or documents per second, by source and bounded reason (every reason is exported at 0, so a healthy source reads 0).", "ops")
            .target(or_none(format!("sum by (source, reason) (rate(quarry_source_errors_total{{{sel}}}[$__rate_interval]))"), "source", NO_PAGE, 0), "{{source}} {{reason}}"));
        layout.add(
            Panel::new(
                "timeseries",
                "Fetch duration",
                "How long the last fetch and extraction of each page source took.",
                "s",
            )
            .target(
                or_none(
                    format!("quarry_source_duration_seconds{{{sel}}}"),
                    "source",
                    NO_PAGE,
                    0,
                ),
                "{{source}}",
            ),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Time since last success",
                "Seconds since each page source last succeeded: the age of the values it feeds.",
                "s",
            )
            .target(
                or_none(
                    format!("time() - quarry_source_last_success_timestamp_seconds{{{sel}}}"),
                    "source",
                    NO_PAGE,
                    0,
                ),
                "{{source}}",
            ),
        );
    }
    if feeds.probes {
        layout.row("Probes (/probe): capacity and errors");
        layout.add(
            Panel::new(
                "timeseries",
                "Probe slots",
                "Probe slots held (a probe holds one from its fetch until its document is parsed), the bound (--probe.max-concurrent) and the probes in flight, those waiting for a slot of their target or over all targets included. A target holds at most --probe.max-per-target slots, so slots held near the bound mean many slow targets at once. Exported once the config has a probe module.",
                "short",
            )
            .target(or_none(format!("quarry_probe_slots_in_use{{{sel}}}"), "instance", "(no probe modules)", 0), "{{instance}} in use")
            .target(or_none(format!("quarry_probe_slots{{{sel}}}"), "instance", "(no probe modules)", 0), "{{instance}} slots")
            .target(or_none(format!("quarry_probes_in_flight{{{sel}}}"), "instance", "(no probe modules)", 0), "{{instance}} in flight"),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Probe errors by reason",
                "Failed probes per second, by module and reason: the target's (timeout, connect, http_status, parse, no_match, ...) or the exporter's own capacity (no_slot: no slot of the target, no slot over all targets, no room for the document, no turn to parse it, within the probe's budget). Every reason is exported at 0 per module, so no failures read 0.",
                "ops",
            )
            .target(or_none(format!("sum by (module, reason) (rate(quarry_probe_errors_total{{{sel}}}[$__rate_interval]))"), "module", "(no probe modules)", 0), "{{module}} {{reason}}")
            .target(or_none(format!("sum by (module) (rate(quarry_probes_total{{{sel}}}[$__rate_interval]))"), "module", "(no probe modules)", 0), "{{module}} probes"),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Probe documents in flight",
                "Bytes of probed documents held now (taken as bodies arrive, given back once parsed) and the budget they share (--probe.max-body-bytes-in-flight).",
                "bytes",
            )
            .target(or_none(format!("quarry_probe_body_bytes_in_flight{{{sel}}}"), "instance", "(no probe modules)", 0), "{{instance}} in flight")
            .target(or_none(format!("quarry_probe_body_budget_bytes{{{sel}}}"), "instance", "(no probe modules)", 0), "{{instance}} budget"),
        );
    }
    if feeds.files {
        layout.row("Files");
        layout.add(
            Panel::new(
                "timeseries",
                "Lines read per second",
                "Lines read from each file.",
                "ops",
            )
            .target(
                or_none(
                    format!("sum by (source, path) (rate(quarry_file_lines_total{{{sel}}}[$__rate_interval]))"),
                    "path",
                    NO_FILE,
                    0,
                ),
                "{{path}}",
            ),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Bytes read per second",
                "Bytes read from each file.",
                "Bps",
            )
            .target(
                or_none(
                    format!("sum by (source, path) (rate(quarry_file_bytes_total{{{sel}}}[$__rate_interval]))"),
                    "path",
                    NO_FILE,
                    0,
                ),
                "{{path}}",
            ),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Lag",
                "Bytes in each file after the read offset at the last check.",
                "bytes",
            )
            .target(
                or_none(
                    format!("quarry_file_lag_bytes{{{sel}}}"),
                    "path",
                    NO_FILE,
                    0,
                ),
                "{{path}}",
            ),
        );
        layout.add(Panel::new("timeseries", "Rotations and truncations", "Rotations (a new file at the path) and truncations (copytruncate) seen.", "short")
            .target(or_none(format!("sum by (path) (increase(quarry_file_rotations_total{{{sel}}}[$__rate_interval]))"), "path", NO_FILE, 0), "rotated {{path}}")
            .target(or_none(format!("sum by (path) (increase(quarry_file_truncations_total{{{sel}}}[$__rate_interval]))"), "path", NO_FILE, 0), "truncated {{path}}"));
        layout.add(Panel::new("timeseries", "File problems", "Read errors, over-long lines skipped and lines that were not UTF-8.", "short")
            .target(or_none(format!("sum by (path) (increase(quarry_file_read_errors_total{{{sel}}}[$__rate_interval]))"), "path", NO_FILE, 0), "read errors {{path}}")
            .target(or_none(format!("sum by (path) (increase(quarry_file_lines_too_long_total{{{sel}}}[$__rate_interval]))"), "path", NO_FILE, 0), "too long {{path}}")
            .target(or_none(format!("sum by (path) (increase(quarry_file_invalid_utf8_lines_total{{{sel}}}[$__rate_interval]))"), "path", NO_FILE, 0), "invalid UTF-8 {{path}}"));
        layout.add(
            Panel::new(
                "timeseries",
                "Files followed",
                "Files each file source reads now.",
                "short",
            )
            .target(
                or_none(
                    format!("sum by (source) (quarry_source_files{{{sel}}})"),
                    "source",
                    "(no file sources)",
                    0,
                ),
                "{{source}}",
            ),
        );
    }
    if feeds.rules {
        layout.row("Rules");
        layout.add(Panel::new("timeseries", "Matches per second", "Matches of each rule.", "ops")
            .target(or_none(format!("sum by (source, rule) (rate(quarry_rule_matches_total{{{sel}}}[$__rate_interval]))"), "source", "(no sources)", 0), "{{source}} {{rule}}"));
        layout.add(Panel::new("timeseries", "Failed updates by reason", "Updates skipped per second, by rule and reason (value_not_a_number, unknown_state, duplicate_series, ...; every reason is exported at 0 per rule).", "ops")
            .target(or_none(format!("sum by (source, rule, reason) (rate(quarry_rule_errors_total{{{sel}}}[$__rate_interval]))"), "source", "(no sources)", 0), "{{source}} {{rule}} {{reason}}"));
        layout.add(Panel::new("timeseries", "Unmatched records", "Lines or documents no rule matched, per second.", "ops")
            .target(or_none(format!("sum by (source) (rate(quarry_source_unmatched_lines_total{{{sel}}}[$__rate_interval]))"), "source", "(no sources)", 0), "{{source}}"));
        if feeds.records {
            layout.add(Panel::new("timeseries", "Unreadable records by reason", "Log records not in their format (not_json, not_logfmt, not_cri, not_docker_json: skipped) or cut at their cap (record_too_long), per second. Each source exports the reasons it can have at 0; sources that read plain lines with regex: or grok: have none.", "ops")
                .target(or_none(format!("sum by (source, reason) (rate(quarry_source_record_errors_total{{{sel}}}[$__rate_interval]))"), "source", "(no record-reading sources)", 0), "{{source}} {{reason}}"));
        }
    }
    layout.row("Series, config and process");
    if feeds.served_metrics {
        layout.add(
            Panel::new(
                "timeseries",
                "Series per metric",
                "Label sets each metric served on /metrics holds (capped by max_series; metrics fed by probe modules live only for a probe).",
                "short",
            )
            .target(
                or_none(
                    format!("sum by (metric) (quarry_series{{{sel}}})"),
                    "metric",
                    NONE,
                    0,
                ),
                "{{metric}}",
            ),
        );
        layout.add(
            Panel::new(
                "timeseries",
                "Dropped series updates",
                "Updates dropped per second because the metric was at max_series.",
                "ops",
            )
            .target(
                or_none(
                    format!("sum by (metric) (rate(quarry_series_dropped_total{{{sel}}}[$__rate_interval]))"),
                    "metric",
                    NONE,
                    0,
                ),
                "{{metric}}",
            ),
        );
    }
    layout.add(Panel::new("stat", "Config loaded", "Whether the last configuration load succeeded.", "none").size(6, 5)
        .target(format!("min(quarry_config_last_reload_successful{{{sel}}})"), "loaded")
        .with(json!({"fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "failed", "color": "red"}, "1": {"text": "OK", "color": "green"}}}], "color": {"mode": "thresholds"}}},
                     "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}}})));
    layout.add(Panel::new("stat", "Config loaded at", "When the configuration last loaded successfully.", "dateTimeFromNow").size(6, 5)
        .target(format!("max(quarry_config_last_reload_success_timestamp_seconds{{{sel}}}) * 1000"), "loaded at")
        .with(json!({"options": {"graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}}})));
    layout.add(
        Panel::new(
            "timeseries",
            "Memory",
            "Resident memory of the exporter.",
            "bytes",
        )
        .size(6, 5)
        .target(
            format!("process_resident_memory_bytes{{{sel}}}"),
            "{{instance}}",
        ),
    );
    layout.add(
        Panel::new(
            "timeseries",
            "CPU",
            "CPU used by the exporter, in cores.",
            "percentunit",
        )
        .size(6, 5)
        .target(
            format!("rate(process_cpu_seconds_total{{{sel}}}[$__rate_interval])"),
            "{{instance}}",
        ),
    );
}

fn dashboard(uid: &str, title: &str, description: &str, panels: Vec<Value>, probes: bool) -> Value {
    let mut d = json!({
        "uid": uid, "title": title, "description": description,
        "tags": ["quarry_exporter", "prometheus"],
        "timezone": "browser", "editable": true, "graphTooltip": 1, "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION, "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "options": [], "regex": ""},
            {"name": "job", "label": "Job", "type": "query", "datasource": ds(),
             "query": {"query": "label_values(quarry_build_info, job)", "refId": "job"},
             "definition": "label_values(quarry_build_info, job)", "refresh": 2, "sort": 1,
             "includeAll": false, "multi": false, "current": {}, "options": [], "hide": 0},
            {"name": "instance", "label": "Instance", "type": "query", "datasource": ds(),
             "query": {"query": "label_values(quarry_build_info{job=\"$job\"}, instance)", "refId": "instance"},
             "definition": "label_values(quarry_build_info{job=\"$job\"}, instance)", "refresh": 2, "sort": 1,
             "includeAll": true, "allValue": ".*", "multi": true, "current": {}, "options": [], "hide": 0}
        ]},
        "panels": panels,
    });
    if probes {
        let vars = d["templating"]["list"].as_array_mut().expect("a list");
        vars.push(
            json!({"name": "probe_job", "label": "Probe job", "type": "query", "datasource": ds(),
             "query": {"query": "label_values(quarry_probe_success, job)", "refId": "probe_job"},
             "definition": "label_values(quarry_probe_success, job)", "refresh": 2, "sort": 1,
             "includeAll": false, "multi": false, "current": {}, "options": [], "hide": 0}),
        );
        vars.push(json!({"name": "target", "label": "Target", "type": "query", "datasource": ds(),
             "query": {"query": "label_values(quarry_probe_success{job=\"$probe_job\"}, instance)", "refId": "target"},
             "definition": "label_values(quarry_probe_success{job=\"$probe_job\"}, instance)", "refresh": 2, "sort": 1,
             "includeAll": true, "allValue": ".*", "multi": true, "current": {}, "options": [], "hide": 0}));
    }
    d
}

/// The probe row: which targets fail and why, how long probes take.
fn probe_panels(layout: &mut Layout) {
    let sel = PROBE_SELECTOR;
    layout.row("Probes (/probe, one instance per target)");
    layout.add(Panel::new("stat", "Targets failing", "Probed targets whose last probe failed (quarry_probe_success 0).", "none").size(6, 6)
        .target(format!("count(quarry_probe_success{{{sel}}} == 0) or vector(0)"), "failing")
        .with(json!({"fieldConfig": {"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 1}]}, "color": {"mode": "thresholds"}}},
                     "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}}})));
    layout.add(Panel::new("state-timeline", "Probe success by target", "Whether each target's probe succeeded (green) or failed (red), over time.", "none").size(18, 6)
        .target(format!("max by (instance) (quarry_probe_success{{{sel}}})"), "{{instance}}")
        .with(json!({"fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "failed", "color": "red"}, "1": {"text": "ok", "color": "green"}}}],
                     "color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "green", "value": 1}]}}},
                     "options": {"showValue": "never", "mergeValues": true, "rowHeight": 0.9, "legend": {"showLegend": false}}})));
    layout.add(Panel::new("timeseries", "Probe duration", "How long each target's probe took: waiting for a slot, fetching, parsing (bounded by the scrape timeout).", "s")
        .size(12, 8)
        .target(format!("max by (instance) (quarry_probe_duration_seconds{{{sel}}})"), "{{instance}}"));
    layout.add(Panel::new("timeseries", "Probe failures by reason", "Targets failing, by the reason of their last probe (timeout, connect, http_status, parse, no_match, ...; no_slot: the exporter had no capacity for it).", "none")
        .size(12, 8)
        .target(format!("sum by (reason) (quarry_probe_failure_reason{{{sel}}})"), "{{reason}}"));
}

/// The exporter-health dashboard (the same for every config): every row, each query falling
/// back to one `(none)`-like series at 0 where its config has nothing of the kind.
pub fn health() -> Value {
    let mut layout = Layout::new();
    health_panels(&mut layout, Feeds::ALL);
    dashboard(
        "quarry-exporter-health",
        "quarry_exporter / Exporter health",
        "Is the exporter reading what it should? Page sources and their failure reasons, probe capacity and errors, files, rules, series and the process.",
        layout.panels,
        false,
    )
}

/// The rows of the catalog modules `config` uses: one per module file, titled by its
/// instances (`nginx`; `front (nginx)` for an instance named otherwise; `front, back (nginx)`
/// for two uses of one module, which share its metrics), with the names of its metrics and
/// its header's `dashboard:` (the counters to show as values, not rates).
fn module_rows(config: &Config) -> Vec<ModuleRow<'_>> {
    let mut rows: Vec<(&str, &UsedModule, Vec<&str>, BTreeSet<&str>)> = Vec::new();
    for used in &config.uses {
        let names = used.config.metrics.iter().map(|m| m.name.as_str());
        match rows.iter_mut().find(|(file, ..)| *file == used.file) {
            Some((_, _, instances, metrics)) => {
                instances.push(used.instance.as_str());
                metrics.extend(names);
            }
            None => rows.push((
                used.file.as_str(),
                used,
                vec![used.instance.as_str()],
                names.collect(),
            )),
        }
    }
    rows.into_iter()
        .map(|(_, used, instances, metrics)| {
            let module = used.header.name.as_str();
            let title = if instances == [module] {
                module.to_owned()
            } else {
                format!("{} ({module})", instances.join(", "))
            };
            ModuleRow {
                title,
                metrics,
                dashboard: &used.header.dashboard,
            }
        })
        .collect()
}

/// A used module's row: its title, its metrics and how its header says to show them.
struct ModuleRow<'a> {
    title: String,
    metrics: BTreeSet<&'a str>,
    dashboard: &'a ModuleDashboard,
}

/// A status board for `config`: its own state metrics first (worst state, then timelines),
/// then counters, histograms and gauges, then a row per catalog module it uses (titled by the
/// module's instances, its metrics by kind in the same order), then the probes (a module
/// whose metrics probe modules feed has its row there), then the exporter-health rows the
/// config can feed ([`Feeds::of`]).
pub fn for_config(config: &Config, uid: &str, title: &str) -> Value {
    let mut layout = Layout::new();
    let order = [
        MetricKind::State,
        MetricKind::Counter,
        MetricKind::Histogram,
        MetricKind::Gauge,
    ];
    let section = |k: MetricKind| match k {
        MetricKind::State => "States",
        MetricKind::Counter => "Rates",
        MetricKind::Histogram => "Distributions",
        MetricKind::Gauge => "Values",
    };
    let probed = Config::metrics_fed_by(&config.modules);
    let modules = module_rows(config);
    let in_module = |name: &str| modules.iter().any(|r| r.metrics.contains(name));
    // Metrics of the rows `rows`, by kind (a counter the module shows as a value, as a
    // gauge); each probed or not as it is fed.
    let module_panels = |layout: &mut Layout, rows: &[&ModuleRow]| {
        for row in rows {
            layout.row(&row.title);
            let shown: Vec<MetricConfig> = config
                .metrics
                .iter()
                .filter(|m| row.metrics.contains(m.name.as_str()))
                .map(|m| {
                    let mut m = m.clone();
                    if m.kind == MetricKind::Counter && row.dashboard.shows_value(&m.name) {
                        m.kind = MetricKind::Gauge;
                    }
                    m
                })
                .collect();
            for kind in order {
                for m in shown.iter().filter(|m| m.kind == kind) {
                    metric_panels(layout, m, probed.contains(m.name.as_str()));
                }
            }
        }
    };
    for kind in order {
        let metrics: Vec<&MetricConfig> = config
            .metrics
            .iter()
            .filter(|m| m.kind == kind && !probed.contains(m.name.as_str()) && !in_module(&m.name))
            .collect();
        if metrics.is_empty() {
            continue;
        }
        layout.row(section(kind));
        for m in metrics {
            metric_panels(&mut layout, m, false);
        }
    }
    let (probed_rows, served_rows): (Vec<_>, Vec<_>) = modules
        .iter()
        .partition(|r| r.metrics.iter().any(|n| probed.contains(n)));
    module_panels(&mut layout, &served_rows);
    let probes = !config.modules.is_empty();
    if probes {
        probe_panels(&mut layout);
        for kind in order {
            for m in config.metrics.iter().filter(|m| {
                m.kind == kind && probed.contains(m.name.as_str()) && !in_module(&m.name)
            }) {
                metric_panels(&mut layout, m, true);
            }
        }
        module_panels(&mut layout, &probed_rows);
    }
    health_panels(&mut layout, Feeds::of(config));
    dashboard(uid, title, "What is up, what is degraded and why: every metric of the configuration by its type, the probed targets, then the exporter's own health.", layout.panels, probes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    /// A config of `metrics` (one counter `m_total`) and these `sources:`/`modules:` entries.
    fn config(sections: &str) -> Config {
        let text = format!(
            "version: 1\nmetrics:\n  - {{name: m_total, type: counter, help: M.}}\n  - {{name: s, type: state, help: S., labels: [c], states: [up, down]}}\n{sections}"
        );
        load_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn file_source(file: &str, rule: &str) -> String {
        format!("sources:\n  - name: f\n    file: {{paths: [x.log]{file}}}\n    rules:\n      - {rule}\n        update: [{{metric: m_total}}]\n")
    }

    fn titles(board: &Value) -> Vec<String> {
        board["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["title"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Issue 22: each used catalog module's metrics sit under a row titled by its instances
    /// (two uses of one module share a row, as they share its metrics), the config's own
    /// metrics under the kind rows; a module fed by probe modules has its row after the probes.
    #[test]
    fn a_used_module_has_a_row_of_its_own() {
        let c = config("use:\n  - {module: nginx}\n  - {module: apache, name: front, labels: {site: front}}\n  - {module: apache, name: back, labels: {site: back}}\n  - {module: redis-probe}\n  - {module: squid}\n");
        let board = for_config(&c, "u", "t");
        let panels = board["panels"].as_array().unwrap();
        // Each row's panels: those after it, up to the next row.
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for p in panels {
            let title = p["title"].as_str().unwrap().to_owned();
            if p["type"] == "row" {
                rows.push((title, Vec::new()));
            } else {
                let exprs = p["targets"].as_array().unwrap().iter();
                rows.last_mut()
                    .unwrap()
                    .1
                    .extend(exprs.map(|t| t["expr"].as_str().unwrap().to_owned()));
            }
        }
        let row = |title: &str| {
            let found = rows.iter().find(|(t, _)| t == title);
            found
                .unwrap_or_else(|| {
                    panic!(
                        "no row {title}: {:?}",
                        rows.iter().map(|r| &r.0).collect::<Vec<_>>()
                    )
                })
                .1
                .join("\n")
        };
        let titles: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let at = |t: &str| titles.iter().position(|x| *x == t).unwrap();
        assert!(
            at("States") < at("nginx") && at("nginx") < at("front, back (apache)"),
            "{titles:?}"
        );
        assert!(
            at("Probes (/probe, one instance per target)") < at("redis-probe"),
            "{titles:?}"
        );
        assert!(
            row("nginx").contains("nginx_connections_accepted{job="),
            "{}",
            row("nginx")
        );
        assert!(!row("nginx").contains("apache_"));
        assert!(row("front, back (apache)").contains("apache_up{job="));
        assert!(
            row("redis-probe").contains(r#"redis_up{job="$probe_job""#),
            "{}",
            row("redis-probe")
        );
        // A counter the module's header shows as a value (a percentile typed as a counter by
        // the exporter the module copies): its value, not its rate; a true counter's rate.
        let squid = row("squid");
        assert!(squid.contains("\nsquid_Cache_Hits_5{job="), "{squid}");
        assert!(!squid.contains("rate(squid_Cache_Hits_5{"), "{squid}");
        assert!(
            squid.contains("rate(squid_client_http_requests_total{"),
            "{squid}"
        );
        // The config's own metrics stay in the kind rows.
        assert!(row("States").contains("s_level{"));
        assert!(row("Rates").contains("m_total{"));
    }

    /// Issue 24, item 7: the unreadable-records panel only where a source reads records
    /// (`format`, `multiline`, `json:`, `logfmt:`), never on plain lines read by a regex.
    #[test]
    fn the_records_panel_comes_only_with_record_reading_sources() {
        let regex = "regex: 'x'";
        for (file, rule, records) in [
            ("", regex, false),
            ("", "grok: '%{WORD:w}'", false),
            (", format: cri", regex, true),
            (", format: docker", regex, true),
            (", multiline: {start: '^x'}", regex, true),
            ("", "json: {fields: {a: $.a}}", true),
            ("", "logfmt: {fields: {a: a}}", true),
        ] {
            let c = config(&file_source(file, rule));
            assert_eq!(Feeds::of(&c).records, records, "{file} {rule}");
            let has =
                titles(&for_config(&c, "u", "t")).contains(&"Unreadable records by reason".into());
            assert_eq!(has, records, "{file} {rule}");
            assert!(Feeds::of(&c).files && !Feeds::of(&c).page_sources && !Feeds::of(&c).probes);
        }
        // The health board has every panel, whatever the config.
        assert!(titles(&health()).contains(&"Unreadable records by reason".into()));
    }

    /// A probe-only config: no page-source, file or rule panels; the probe rows; the state
    /// metric per target.
    #[test]
    fn a_probe_only_board_has_probe_rows_and_per_target_lanes() {
        let c = config("modules:\n  - name: p\n    http: {url: 'http://$target/'}\n    rules:\n      - json: {for_each: '$.*', fields: {c: '@key', s: '@'}}\n        update: [{metric: s, labels: {c: $c}, state: $s}]\n");
        let f = Feeds::of(&c);
        assert_eq!(
            (
                f.page_sources,
                f.probes,
                f.files,
                f.rules,
                f.records,
                f.served_metrics
            ),
            // `m_total` is fed by nothing, so it is served on /metrics (at 0).
            (false, true, false, false, false, true)
        );
        let board = for_config(&c, "u", "t");
        let t = titles(&board);
        for absent in [
            "Page sources",
            "Files",
            "Rules",
            "Source up",
            "Matches per second",
        ] {
            assert!(!t.contains(&absent.into()), "{absent}: {t:?}");
        }
        for present in [
            "Probes (/probe): capacity and errors",
            "Targets failing",
            "S over time",
        ] {
            assert!(t.contains(&present.into()), "{present}: {t:?}");
        }
        let lanes = board["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == "S over time")
            .unwrap();
        assert_eq!(lanes["targets"][0]["legendFormat"], "{{instance}} {{c}}");
        let expr = lanes["targets"][0]["expr"].as_str().unwrap();
        assert!(
            expr.starts_with("sort_desc(max by (instance, c) (s_level{"),
            "{expr}"
        );
        // A failing target: its last hour's series at unknown (2), or one `(not seen)` lane.
        assert!(expr.contains("last_over_time(s_level{"), "{expr}");
        assert!(
            expr.contains(r#""c", "(not seen)""#) && expr.contains(") + 2)"),
            "{expr}"
        );
    }
}
