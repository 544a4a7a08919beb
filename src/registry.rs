//! The user's metric families, built from the `metrics:` declarations, with a series cap.
//!
//! Each family wraps a prometheus `*Vec` and a table of the label sets it holds. Rules keep
//! their own caches of series handles (see [`crate::pipeline`]); they come here only the first
//! time they see a label set, which is where `max_series` is enforced and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntGauge, Opts, Registry,
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

    /// The state names of a state metric (empty for other types).
    pub fn state_names(&self) -> &[String] {
        match &self.vec {
            VecKind::State { names, .. } => names,
            _ => &[],
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        match &self.vec {
            VecKind::Counter(v) => vec![Box::new(v.clone())],
            VecKind::Gauge(v) => vec![Box::new(v.clone())],
            VecKind::Histogram(v) => vec![Box::new(v.clone())],
            VecKind::State { states, level, .. } => {
                vec![Box::new(states.clone()), Box::new(level.clone())]
            }
        }
    }
}

/// Every declared metric family, by name.
pub struct Families {
    by_name: HashMap<String, Arc<Family>>,
}

impl Families {
    /// Builds and registers a family per declaration. The config is validated, so a failure
    /// here is a bug or a clash with another registered collector.
    pub fn build(
        configs: &[MetricConfig],
        registry: &Registry,
        self_metrics: &SelfMetrics,
    ) -> anyhow::Result<Families> {
        Families::rebuild(configs, registry, self_metrics, None)
    }

    /// Like [`Families::build`], after a reload: a family whose declaration did not change is
    /// kept with its values; the others are unregistered, and new ones registered.
    pub fn rebuild(
        configs: &[MetricConfig],
        registry: &Registry,
        self_metrics: &SelfMetrics,
        previous: Option<Families>,
    ) -> anyhow::Result<Families> {
        let mut old = previous.map(|p| p.by_name).unwrap_or_default();
        let mut kept = HashMap::new();
        for config in configs {
            if let Some(f) = old.remove(&config.name) {
                if f.declaration == *config {
                    kept.insert(config.name.clone(), f);
                } else {
                    old.insert(config.name.clone(), f);
                }
            }
        }
        for (name, family) in old {
            for collector in family.collectors() {
                let _ = registry.unregister(collector);
            }
            let _ = self_metrics.series.remove_label_values(&[&name]);
            let _ = self_metrics.series_dropped.remove_label_values(&[&name]);
        }
        let mut by_name = HashMap::new();
        for config in configs {
            if let Some(f) = kept.remove(&config.name) {
                by_name.insert(config.name.clone(), f);
                continue;
            }
            let family = Family::new(config, self_metrics)
                .map_err(|e| anyhow::anyhow!("metric {:?}: {e}", config.name))?;
            for collector in family.collectors() {
                registry
                    .register(collector)
                    .map_err(|e| anyhow::anyhow!("metric {:?}: {e}", config.name))?;
            }
            by_name.insert(config.name.clone(), Arc::new(family));
        }
        Ok(Families { by_name })
    }

    /// The family called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Family>> {
        self.by_name.get(name)
    }
}
