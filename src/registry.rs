//! The user's metric families, built from the `metrics:` declarations, with a series cap.
//!
//! Each family wraps a prometheus `*Vec` (the atomics behind each series) and a table of the
//! label sets it holds. Rules keep their own caches of series handles (see
//! [`crate::pipeline`]); they come here only the first time they see a label set, which is
//! where `max_series` is enforced and counted. The families are not registered with the
//! prometheus registry: they render their own exposition straight from that table, in the same
//! format and order (tests compare the bytes with the crate's encoder). At 100k series the
//! first byte of `/metrics` came after ~60 ms instead of ~115 ms through the registry's gather
//! (curl, this machine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntGauge, Opts,
};

use crate::config::{default_buckets, MetricConfig, MetricKind, DEFAULT_MAX_SERIES};
use crate::selfmetrics::SelfMetrics;

/// Separates label values in a series key. 0xFF never occurs in UTF-8, so keys are unambiguous.
pub const KEY_SEPARATOR: u8 = 0xFF;

/// A handle to one series: what an update changes.
#[derive(Clone)]
pub enum Series {
    /// A counter series.
    Counter(Counter),
    /// A gauge series.
    Gauge(Gauge),
    /// A histogram series.
    Histogram(Histogram),
    /// A state metric's label set: one gauge per state, and the level gauge.
    State {
        /// 1 for the current state, 0 for the others, in declaration order.
        states: Vec<Gauge>,
        /// The current state's position (0 = the first, best state).
        level: Gauge,
    },
}

impl Series {
    /// Makes state `index` the current one.
    pub fn set_state(states: &[Gauge], level: &Gauge, index: usize) {
        for (i, g) in states.iter().enumerate() {
            g.set(if i == index { 1.0 } else { 0.0 });
        }
        level.set(index as f64);
    }
}

enum VecKind {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
    /// `name{labels…, state}` and `name_level{labels…}`.
    State {
        states: GaugeVec,
        level: GaugeVec,
        names: Vec<String>,
    },
}

/// `# HELP` and `# TYPE` lines, in a buffer sized for `samples` lines.
fn header(name: &str, help: &str, kind: &str, samples: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(64 + samples * (name.len() + 48));
    text.extend_from_slice(b"# HELP ");
    text.extend_from_slice(name.as_bytes());
    text.push(b' ');
    escape(&mut text, help.as_bytes(), false);
    text.extend_from_slice(b"\n# TYPE ");
    text.extend_from_slice(name.as_bytes());
    text.push(b' ');
    text.extend_from_slice(kind.as_bytes());
    text.push(b'\n');
    text
}

/// Label names and values of one sample, in exposition order.
type Labels<'a> = Vec<(&'a str, &'a [u8])>;

/// Fills `buf` with a row's labels in exposition order: `names` are in that order, and
/// `order[k]` is the index into `values` of the k-th label, or `declared` for a state metric's
/// `state` label.
fn fill_labels<'a>(
    buf: &mut Vec<(&'a str, &'a [u8])>,
    order: &[usize],
    names: &[&'a str],
    declared: usize,
    values: &[&'a [u8]],
    state: Option<&'a [u8]>,
) {
    buf.clear();
    for (position, &i) in order.iter().enumerate() {
        let v = if i == declared {
            state.unwrap_or_default()
        } else {
            values[i]
        };
        buf.push((names[position], v));
    }
}

/// One sample line: `name{labels[,le]} value`.
fn sample(
    text: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &[(&str, &[u8])],
    le: Option<&str>,
    value: f64,
) {
    use std::io::Write;
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() || le.is_some() {
        let mut separator = b'{';
        for (n, v) in labels {
            text.push(separator);
            text.extend_from_slice(n.as_bytes());
            text.extend_from_slice(b"=\"");
            escape(text, v, true);
            text.push(b'"');
            separator = b',';
        }
        if let Some(le) = le {
            text.push(separator);
            text.extend_from_slice(b"le=\"");
            text.extend_from_slice(le.as_bytes());
            text.push(b'"');
        }
        text.push(b'}');
    }
    let _ = write!(text, " {value}");
    text.push(b'\n');
}

/// Escapes `\\` and newlines (and `"` in label values) as the text format requires.
fn escape(text: &mut Vec<u8>, value: &[u8], quotes: bool) {
    let needs = if quotes {
        memchr::memchr3(b'\\', b'\n', b'"', value).is_some()
    } else {
        memchr::memchr2(b'\\', b'\n', value).is_some()
    };
    if !needs {
        text.extend_from_slice(value);
        return;
    }
    for &c in value {
        match c {
            b'\\' => text.extend_from_slice(b"\\\\"),
            b'\n' => text.extend_from_slice(b"\\n"),
            b'"' if quotes => text.extend_from_slice(b"\\\""),
            _ => text.push(c),
        }
    }
}

/// The name of a state metric's level gauge.
pub fn level_name(metric: &str) -> String {
    format!("{metric}_level")
}

/// One declared metric.
pub struct Family {
    /// The metric name.
    pub name: String,
    /// Its type.
    pub kind: MetricKind,
    /// Its label names, in declaration order.
    pub label_names: Vec<String>,
    vec: VecKind,
    /// The declaration this family was built from: a reload keeps the family (and its values)
    /// when the new declaration is the same.
    declaration: MetricConfig,
    max_series: usize,
    held: Mutex<HashMap<Box<[u8]>, Series>>,
    series_count: IntGauge,
    dropped: IntCounter,
}

impl Family {
    fn new(config: &MetricConfig, self_metrics: &SelfMetrics) -> prometheus::Result<Family> {
        let labels: Vec<&str> = config.labels.iter().map(String::as_str).collect();
        let vec = match config.kind {
            MetricKind::Counter => VecKind::Counter(CounterVec::new(
                Opts::new(&config.name, &config.help),
                &labels,
            )?),
            MetricKind::Gauge => VecKind::Gauge(GaugeVec::new(
                Opts::new(&config.name, &config.help),
                &labels,
            )?),
            MetricKind::Histogram => VecKind::Histogram(HistogramVec::new(
                HistogramOpts::new(&config.name, &config.help)
                    .buckets(config.buckets.clone().unwrap_or_else(default_buckets)),
                &labels,
            )?),
            MetricKind::State => {
                let mut with_state = labels.clone();
                with_state.push("state");
                VecKind::State {
                    states: GaugeVec::new(Opts::new(&config.name, &config.help), &with_state)?,
                    level: GaugeVec::new(
                        Opts::new(
                            level_name(&config.name),
                            format!(
                                "{} (position of the current state: 0 = {}).",
                                config.help.trim_end_matches('.'),
                                config
                                    .states
                                    .as_deref()
                                    .and_then(|s| s.first())
                                    .map(String::as_str)
                                    .unwrap_or("first")
                            ),
                        ),
                        &labels,
                    )?,
                    names: config.states.clone().unwrap_or_default(),
                }
            }
        };
        let family = Family {
            name: config.name.clone(),
            kind: config.kind,
            label_names: config.labels.clone(),
            vec,
            declaration: config.clone(),
            max_series: config.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            held: Mutex::new(HashMap::new()),
            series_count: self_metrics.series.with_label_values(&[&config.name]),
            dropped: self_metrics
                .series_dropped
                .with_label_values(&[&config.name]),
        };
        // A metric without labels has exactly one series: export it at 0 from the start
        // (not a state metric: no state is known before the first observation).
        if family.label_names.is_empty() && family.kind != MetricKind::State {
            family.series(&[]);
        }
        Ok(family)
    }

    /// The series for `key` (label values joined by [`KEY_SEPARATOR`], in declaration order),
    /// created on first use; `None` when the family is full (the drop is counted).
    pub fn series(&self, key: &[u8]) -> Option<Series> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = held.get(key) {
            return Some(s.clone());
        }
        if held.len() >= self.max_series {
            self.dropped.inc();
            return None;
        }
        let values: Vec<&str> = if self.label_names.is_empty() {
            Vec::new()
        } else {
            key.split(|b| *b == KEY_SEPARATOR)
                .map(|v| std::str::from_utf8(v).expect("keys are built from UTF-8 label values"))
                .collect()
        };
        let series = match &self.vec {
            VecKind::Counter(v) => Series::Counter(v.with_label_values(&values)),
            VecKind::Gauge(v) => Series::Gauge(v.with_label_values(&values)),
            VecKind::Histogram(v) => Series::Histogram(v.with_label_values(&values)),
            VecKind::State {
                states,
                level,
                names,
            } => {
                let mut with_state = values.clone();
                with_state.push("");
                let gauges = names
                    .iter()
                    .map(|n| {
                        *with_state.last_mut().expect("pushed above") = n;
                        states.with_label_values(&with_state)
                    })
                    .collect();
                Series::State {
                    states: gauges,
                    level: level.with_label_values(&values),
                }
            }
        };
        held.insert(key.into(), series.clone());
        self.series_count.set(held.len() as i64);
        Some(series)
    }

    /// Appends this family's exposition: `# HELP`, `# TYPE`, then the series sorted by their
    /// label values (label names in alphabetical order), exactly as the prometheus crate's
    /// text encoder writes them, without building its per-series protobuf structures. The
    /// series table stays locked while rendering: updates of known series do not need it.
    fn render(&self, out: &mut Vec<(String, Vec<u8>)>) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_empty() {
            return;
        }
        // Label names in exposition (alphabetical) order, as indexes into the declaration;
        // for a state metric the `state` label takes its place among them.
        let mut names: Vec<&str> = self.label_names.iter().map(String::as_str).collect();
        if self.kind == MetricKind::State {
            names.push("state");
        }
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_key(|&i| names[i]);
        let declared = self.label_names.len();
        // Each row's label values, permuted into exposition order (the state label aside), so
        // rows sort with a plain slice comparison.
        let permutation: Vec<usize> = order.iter().copied().filter(|&i| i < declared).collect();
        let identity = permutation.iter().enumerate().all(|(k, &i)| k == i);
        let mut rows: Vec<(Vec<&[u8]>, &Series)> = held
            .iter()
            .map(|(key, series)| {
                let mut values: Vec<&[u8]> = if declared == 0 {
                    Vec::new()
                } else {
                    key.split(|b| *b == KEY_SEPARATOR).collect()
                };
                if !identity {
                    values = permutation.iter().map(|&i| values[i]).collect();
                }
                (values, series)
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let state_last = order.last() == Some(&declared);
        // Label names in exposition order, and from here on `values` are in that order too.
        let names: Vec<&str> = order.iter().map(|&i| names[i]).collect();
        let order: Vec<usize> = {
            let mut next = 0;
            order
                .iter()
                .map(|&i| {
                    if i == declared {
                        declared
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect()
        };
        let help = &self.declaration.help;
        let mut buf: Vec<(&str, &[u8])> = Vec::with_capacity(order.len());
        match self.kind {
            MetricKind::Counter | MetricKind::Gauge => {
                let mut text = header(&self.name, help, self.kind.as_str(), rows.len());
                for (values, series) in &rows {
                    let v = match series {
                        Series::Counter(c) => c.get(),
                        Series::Gauge(g) => g.get(),
                        _ => continue,
                    };
                    fill_labels(&mut buf, &order, &names, declared, values, None);
                    sample(&mut text, &self.name, "", &buf, None, v);
                }
                out.push((self.name.clone(), text));
            }
            MetricKind::Histogram => {
                use prometheus::core::Metric;
                let mut text = header(&self.name, help, "histogram", rows.len() * 14);
                for (values, series) in &rows {
                    let Series::Histogram(h) = series else {
                        continue;
                    };
                    fill_labels(&mut buf, &order, &names, declared, values, None);
                    let m = h.metric();
                    let proto = m.get_histogram();
                    let mut inf_seen = false;
                    for b in proto.get_bucket() {
                        let bound = b.upper_bound();
                        inf_seen |= bound.is_infinite() && bound.is_sign_positive();
                        sample(
                            &mut text,
                            &self.name,
                            "_bucket",
                            &buf,
                            Some(&bound.to_string()),
                            b.cumulative_count() as f64,
                        );
                    }
                    if !inf_seen {
                        sample(
                            &mut text,
                            &self.name,
                            "_bucket",
                            &buf,
                            Some("+Inf"),
                            proto.get_sample_count() as f64,
                        );
                    }
                    sample(
                        &mut text,
                        &self.name,
                        "_sum",
                        &buf,
                        None,
                        proto.get_sample_sum(),
                    );
                    sample(
                        &mut text,
                        &self.name,
                        "_count",
                        &buf,
                        None,
                        proto.get_sample_count() as f64,
                    );
                }
                out.push((self.name.clone(), text));
            }
            MetricKind::State => {
                let states = self.state_names();
                let mut by_name: Vec<usize> = (0..states.len()).collect();
                by_name.sort_by_key(|&i| &states[i]);
                let mut text = header(&self.name, help, "gauge", rows.len() * states.len());
                // Within a row the states go alphabetically; when `state` sorts last that is
                // the exposition order already, otherwise the samples are sorted first.
                let sort = !state_last;
                let mut pending: Vec<(Labels, f64)> = Vec::new();
                for (values, series) in &rows {
                    let Series::State { states: gauges, .. } = series else {
                        continue;
                    };
                    for &i in &by_name {
                        let state = Some(states[i].as_bytes());
                        fill_labels(&mut buf, &order, &names, declared, values, state);
                        if sort {
                            pending.push((buf.clone(), gauges[i].get()));
                        } else {
                            sample(&mut text, &self.name, "", &buf, None, gauges[i].get());
                        }
                    }
                }
                pending.sort_by(|a, b| a.0.iter().map(|p| p.1).cmp(b.0.iter().map(|p| p.1)));
                for (labels, v) in &pending {
                    sample(&mut text, &self.name, "", labels, None, *v);
                }
                out.push((self.name.clone(), text));
                let level = level_name(&self.name);
                let mut text = header(&level, &self.level_help(), "gauge", rows.len());
                for (values, series) in &rows {
                    let Series::State { level: gauge, .. } = series else {
                        continue;
                    };
                    buf.clear();
                    for (position, &i) in order.iter().enumerate() {
                        if i < declared {
                            buf.push((names[position], values[i]));
                        }
                    }
                    sample(&mut text, &level, "", &buf, None, gauge.get());
                }
                out.push((level, text));
            }
        }
    }

    fn level_help(&self) -> String {
        format!(
            "{} (position of the current state: 0 = {}).",
            self.declaration.help.trim_end_matches('.'),
            self.state_names()
                .first()
                .map(String::as_str)
                .unwrap_or("first")
        )
    }

    /// The state names of a state metric (empty for other types).
    pub fn state_names(&self) -> &[String] {
        match &self.vec {
            VecKind::State { names, .. } => names,
            _ => &[],
        }
    }
}

/// Every declared metric family, by name. Cheap to clone (the families are shared).
#[derive(Clone, Default)]
pub struct Families {
    by_name: HashMap<String, Arc<Family>>,
}

impl Families {
    /// Builds a family per declaration. The config is validated, so a failure here is a bug.
    pub fn build(configs: &[MetricConfig], self_metrics: &SelfMetrics) -> anyhow::Result<Families> {
        Families::rebuild(configs, self_metrics, None)
    }

    /// Like [`Families::build`], after a reload: a family whose declaration did not change is
    /// kept with its values; the others start anew.
    pub fn rebuild(
        configs: &[MetricConfig],
        self_metrics: &SelfMetrics,
        previous: Option<Families>,
    ) -> anyhow::Result<Families> {
        let mut old = previous.map(|p| p.by_name).unwrap_or_default();
        let mut by_name = HashMap::new();
        for config in configs {
            let kept = old
                .remove(&config.name)
                .filter(|f| f.declaration == *config);
            let family = match kept {
                Some(f) => f,
                None => Arc::new(
                    Family::new(config, self_metrics)
                        .map_err(|e| anyhow::anyhow!("metric {:?}: {e}", config.name))?,
                ),
            };
            by_name.insert(config.name.clone(), family);
        }
        for name in old.keys() {
            if !by_name.contains_key(name) {
                let _ = self_metrics.series.remove_label_values(&[name]);
                let _ = self_metrics.series_dropped.remove_label_values(&[name]);
            }
        }
        Ok(Families { by_name })
    }

    /// The text exposition of every family with at least one series, one `(name, text)` per
    /// metric family (a state metric gives two).
    pub fn render(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for family in self.by_name.values() {
            family.render(&mut out);
        }
        out
    }

    /// The family called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Family>> {
        self.by_name.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};

    fn config(kind: MetricKind, labels: &[&str]) -> MetricConfig {
        MetricConfig {
            name: "m".into(),
            kind,
            help: "Help with \\ a backslash\nand a newline.".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            buckets: Some(vec![0.5, 1.0]),
            max_series: None,
            states: None,
        }
    }

    /// The direct renderer writes what the prometheus crate's encoder writes for the same data.
    #[test]
    fn renders_like_the_prometheus_crate() {
        let values: &[&[&str]] = &[
            &["b", "x\"y"],
            &["a", "back\\slash"],
            &["a", "new\nline"],
            &["", "é"],
        ];
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
        ] {
            let (registry, self_metrics) =
                (Registry::new(), SelfMetrics::register(&Registry::new()));
            // Labels declared out of alphabetical order.
            let mut c = config(kind, &["zone", "app"]);
            if kind == MetricKind::Counter {
                c.name = "m_total".into();
            }
            let family = Family::new(&c, &self_metrics).unwrap();
            let reference: Box<dyn prometheus::core::Collector> = match &family.vec {
                VecKind::Counter(v) => Box::new(v.clone()),
                VecKind::Gauge(v) => Box::new(v.clone()),
                VecKind::Histogram(v) => Box::new(v.clone()),
                VecKind::State { .. } => unreachable!(),
            };
            registry.register(reference).unwrap();
            for (i, v) in values.iter().enumerate() {
                let key = [v[0].as_bytes(), &[KEY_SEPARATOR], v[1].as_bytes()].concat();
                match family.series(&key).unwrap() {
                    Series::Counter(s) => s.inc_by(i as f64 + 0.5),
                    Series::Gauge(s) => s.set(-(i as f64) * 1e21),
                    Series::Histogram(s) => s.observe(i as f64 * 0.4),
                    Series::State { .. } => unreachable!(),
                }
            }
            let mut expected = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut expected)
                .unwrap();
            let mut ours = Vec::new();
            family.render(&mut ours);
            assert_eq!(
                String::from_utf8(ours[0].1.clone()).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{kind:?}"
            );
        }
    }

    /// State metrics: `state` sorted among the labels wherever it falls alphabetically.
    #[test]
    fn renders_states_like_the_prometheus_crate() {
        for labels in [&["zone"][..], &["app"][..], &["app", "zone"][..]] {
            let (registry, self_metrics) =
                (Registry::new(), SelfMetrics::register(&Registry::new()));
            let mut c = config(MetricKind::State, labels);
            c.buckets = None;
            c.states = Some(vec!["up".into(), "degraded".into(), "down".into()]);
            let family = Family::new(&c, &self_metrics).unwrap();
            let VecKind::State { states, level, .. } = &family.vec else {
                unreachable!()
            };
            registry.register(Box::new(states.clone())).unwrap();
            registry.register(Box::new(level.clone())).unwrap();
            for (i, v) in ["b", "a", "c\"x"].iter().enumerate() {
                let values: Vec<String> = (0..labels.len()).map(|j| format!("{v}{j}")).collect();
                let key = values.join("\u{1}").into_bytes();
                let key: Vec<u8> = key
                    .into_iter()
                    .map(|b| if b == 1 { KEY_SEPARATOR } else { b })
                    .collect();
                let Series::State { states, level } = family.series(&key).unwrap() else {
                    unreachable!()
                };
                Series::set_state(&states, &level, i % 3);
            }
            let mut expected = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut expected)
                .unwrap();
            let mut ours = Vec::new();
            family.render(&mut ours);
            ours.sort_by(|a, b| a.0.cmp(&b.0));
            let ours: Vec<u8> = ours.into_iter().flat_map(|(_, t)| t).collect();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(expected).unwrap(),
                "labels {labels:?}"
            );
        }
    }
}
