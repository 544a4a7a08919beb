//! The user's metric families, built from the `metrics:` declarations: their series, caps and
//! exposition, and the copies of their series a checkpoint saves ([`FamilySnapshot`]).
//!
//! Each family owns a [`SeriesTable`] behind one lock: every update takes it, finds its series
//! by the whole key (label values joined by [`KEY_SEPARATOR`], in exposition order) and changes
//! plain `f64` values. A rule may remember where its series sat ([`SeriesAt`], see
//! `pipeline/cache.rs`), but such a place is honoured only while the table's removal count is
//! the one it was given with (checked under the lock), so removing a series (an expiry, an item
//! gone from its document) can never leave an update pointing at the wrong series. `/metrics`
//! copies a family's table under the lock (a memcpy of its arena) and renders outside it.
//!
//! Bounds: `max_series` caps the label sets (new ones beyond it are dropped and counted), and
//! `max_label_value_length` caps each label value (longer ones are cut at a character boundary
//! and counted), so a family's memory is bounded by its caps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::config::{
    default_buckets, MetricConfig, MetricKind, DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_SERIES,
    UNKNOWN_STATE,
};
use crate::exposition::{header, sample, Chunk};
use crate::selfmetrics::{IntCounter, IntGauge, SelfMetrics};
use crate::series::{split_key, SeriesTable, TableCopy};

pub use crate::series::KEY_SEPARATOR;

/// What an update does to its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Counter or gauge: add (a counter never gets a negative amount).
    Add(f64),
    /// Gauge: subtract.
    Sub(f64),
    /// Gauge: set.
    Set(f64),
    /// Histogram: count an observation.
    Observe(f64),
    /// State metric: make the state at this position the current one.
    State(usize),
}

/// Where a series sits in its family's table, as [`Family::apply_and_place`] found it: valid
/// for [`Family::apply_at`] while no series of that family is removed (checked there, under
/// the family's lock). Another family refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesAt {
    /// The family that gave it ([`Family`]'s `id`).
    family: u64,
    slot: u32,
    /// The table's removal count when the place was given.
    removals: u64,
}

/// The `id` of the next family made.
static NEXT_FAMILY_ID: AtomicU64 = AtomicU64::new(0);

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
    /// Label names in key (and exposition) order: alphabetical.
    key_labels: Vec<String>,
    /// Histogram bucket bounds (without +Inf).
    buckets: Vec<f64>,
    /// State names, best first.
    states: Vec<String>,
    /// The declaration this family was built from: a reload keeps the family (and its values)
    /// when the new declaration is the same.
    declaration: MetricConfig,
    max_series: usize,
    max_label_value_length: usize,
    /// Series idle this long are removed (`expire_after`).
    expire_after: Option<Duration>,
    /// The family's clock for idle expiry: seconds since this.
    epoch: Instant,
    /// Pre-declared label values: their series are exported from the start, never removed.
    declared: Declared,
    /// Pre-declared series are made when first updated, not at start ([`Families::build_lazily`]).
    lazy: bool,
    /// Pre-declared series made so far, in a lazy family (changed under the table's lock).
    declared_made: AtomicUsize,
    table: Mutex<SeriesTable>,
    /// Unique among the families of the process: a [`SeriesAt`] names the family it is of.
    id: u64,
    series_count: IntGauge,
    dropped: IntCounter,
    truncated: IntCounter,
}

impl Family {
    fn new(config: &MetricConfig, self_metrics: &SelfMetrics, lazy: bool) -> Family {
        let mut key_labels = config.labels.clone();
        key_labels.sort();
        let buckets = match config.kind {
            MetricKind::Histogram => {
                let mut b = config.buckets.clone().unwrap_or_else(default_buckets);
                // +Inf is always there; a declared one adds nothing.
                b.retain(|x| !(x.is_infinite() && *x > 0.0));
                b
            }
            _ => Vec::new(),
        };
        let width = match config.kind {
            // Non-cumulative count per bucket, then the +Inf bucket, the sum and the count.
            MetricKind::Histogram => buckets.len() + 3,
            _ => 1,
        };
        let family = Family {
            name: config.name.clone(),
            kind: config.kind,
            label_names: config.labels.clone(),
            key_labels,
            buckets,
            states: config.states.clone().unwrap_or_default(),
            declaration: config.clone(),
            max_series: config.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            max_label_value_length: config
                .max_label_value_length
                .unwrap_or(DEFAULT_MAX_LABEL_VALUE_LENGTH),
            expire_after: config.expire_after,
            epoch: Instant::now(),
            declared: Declared::of(config),
            lazy,
            declared_made: AtomicUsize::new(0),
            table: Mutex::new(SeriesTable::new(width)),
            id: NEXT_FAMILY_ID.fetch_add(1, Ordering::Relaxed),
            series_count: self_metrics.series.with_label_values(&[&config.name]),
            dropped: self_metrics
                .series_dropped
                .with_label_values(&[&config.name]),
            truncated: self_metrics
                .label_values_truncated
                .with_label_values(&[&config.name]),
        };
        // A metric without labels has exactly one series: export it at 0 from the start
        // (not a state metric: no state is known before the first observation). Pre-declared
        // label values likewise, a state metric's as unknown.
        let mut table = family.table();
        let initial = family.initial();
        if family.label_names.is_empty() && family.kind != MetricKind::State {
            let hash = table.hash(b"");
            table.find_or_insert(b"", hash, 1, &initial);
        }
        if !lazy {
            family.declared.for_each_key(|key| {
                let hash = table.hash(key);
                table.find_or_insert(key, hash, usize::MAX, &initial);
            });
        }
        family.series_count.set(table.len() as i64);
        drop(table);
        family
    }

    /// The values a series starts with: zeros, a state metric's in the unknown state.
    fn initial(&self) -> Vec<f64> {
        let width = match self.kind {
            MetricKind::Histogram => self.buckets.len() + 3,
            _ => 1,
        };
        let mut initial = vec![0.0; width];
        if self.kind == MetricKind::State {
            initial[0] = self.states.len() as f64;
        }
        initial
    }

    /// The family's clock for idle expiry, in tenths of a second since it was made (a u32
    /// lasts 13 years).
    fn now(&self) -> u32 {
        (self.epoch.elapsed().as_millis() / 100).min(u32::MAX as u128) as u32
    }

    /// Removes the series not changed for `expire_after` (pre-declared ones stay); returns how
    /// many went.
    pub fn expire(&self) -> usize {
        let Some(after) = self.expire_after else {
            return 0;
        };
        let now = self.now();
        // Both clock readings are rounded down: one tick more guarantees a full `after` of
        // idleness (a series goes between `after` and `after` + 0.2 s + the sweep interval).
        let after = (after.as_millis() / 100).clamp(1, u32::MAX as u128 - 1) as u32 + 1;
        let mut table = self.table();
        let idle: Vec<u32> = table
            .iter()
            .filter(|(slot, key, _)| {
                now.saturating_sub(table.touched(*slot)) >= after && !self.declared.contains(key)
            })
            .map(|(slot, ..)| slot)
            .collect();
        for slot in &idle {
            table.remove(*slot);
        }
        self.series_count.set(table.len() as i64);
        idle.len()
    }

    /// The keys of every series held, pre-declared ones excepted.
    pub fn keys(&self) -> Vec<Box<[u8]>> {
        let table = self.table();
        table
            .iter()
            .filter(|(_, key, _)| !self.declared.contains(key))
            .map(|(_, key, _)| key.into())
            .collect()
    }

    /// Whether series of this family expire.
    pub fn expires(&self) -> bool {
        self.expire_after.is_some()
    }

    /// Removes the series `key` (an item gone from its document), unless it is pre-declared.
    pub fn remove(&self, key: &[u8]) {
        if self.declared.contains(key) {
            if self.kind == MetricKind::State {
                // A pre-declared state series stays, as unknown.
                self.set_unknown(key);
            }
            return;
        }
        let mut table = self.table();
        let hash = table.hash(key);
        if let Some(slot) = table.find(key, hash) {
            table.remove(slot);
            self.series_count.set(table.len() as i64);
        }
    }

    /// Puts the state series `key`, if it exists, into the unknown state (its source cannot
    /// be seen).
    pub fn set_unknown(&self, key: &[u8]) {
        let mut table = self.table();
        let hash = table.hash(key);
        if let Some(slot) = table.find(key, hash) {
            table.values_mut(slot)[0] = self.states.len() as f64;
        }
    }

    fn table(&self) -> MutexGuard<'_, SeriesTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Label names in the order their values make up a key (alphabetical, as exposed).
    pub fn key_labels(&self) -> &[String] {
        &self.key_labels
    }

    /// The longest label value kept; longer values are cut to it (see [`cut_label_value`]).
    pub fn max_label_value_length(&self) -> usize {
        self.max_label_value_length
    }

    /// Counts label values cut to [`Family::max_label_value_length`].
    pub fn count_truncated(&self) {
        self.truncated.inc();
    }

    /// The `# HELP` text.
    pub fn help(&self) -> &str {
        &self.declaration.help
    }

    /// The state names of a state metric (empty for other types).
    pub fn state_names(&self) -> &[String] {
        &self.states
    }

    /// Histogram bucket bounds, without +Inf (empty for other types).
    pub fn buckets(&self) -> &[f64] {
        &self.buckets
    }

    /// Values per series.
    pub fn width(&self) -> usize {
        self.table().width()
    }

    /// Puts back series saved by a checkpoint (the family must fit them): each key gets its
    /// saved values, as far as `max_series` allows (the rest is counted as dropped).
    pub fn restore(&self, saved: &TableCopy) {
        let mut table = self.table();
        let mut dropped = 0;
        for i in 0..saved.len() {
            let key = saved.key(i);
            let hash = table.hash(key);
            match table.find_or_insert(key, hash, self.max_series, saved.values(i)) {
                Some((slot, false)) => table.values_mut(slot).copy_from_slice(saved.values(i)),
                Some((_, true)) => {}
                None => dropped += 1,
            }
        }
        self.series_count.set(table.len() as i64);
        drop(table);
        if dropped > 0 {
            self.dropped.inc_by(dropped);
        }
    }

    /// Applies `change` to the series `key` (label values in [`Family::key_labels`] order,
    /// joined by [`KEY_SEPARATOR`]), creating it first. Returns false when the series is new
    /// and the family already holds `max_series` (the drop is counted).
    pub fn apply(&self, key: &[u8], change: Change) -> bool {
        self.apply_and_place(key, change).is_some()
    }

    /// Like [`Family::apply`], and says where the series is: a place [`Family::apply_at`]
    /// takes instead of the key while no series of the family is removed. `None` when the
    /// series is new and the family is full (the drop is counted; nothing is kept, so the
    /// next update of that key asks the cap again).
    pub fn apply_and_place(&self, key: &[u8], change: Change) -> Option<SeriesAt> {
        let mut table = self.table();
        let hash = table.hash(key);
        let slot = match table.find(key, hash) {
            Some(slot) => slot,
            None => {
                let mut zeros = vec![0.0; table.width()];
                let mut cap = self.max_series;
                if self.lazy {
                    // As if every pre-declared series were there: one is made whatever the
                    // cap, the others leave room for those not made yet.
                    let made = self.declared_made.load(Ordering::Relaxed);
                    if self.declared.contains(key) {
                        cap = usize::MAX;
                        self.declared_made.store(made + 1, Ordering::Relaxed);
                        if self.kind == MetricKind::State {
                            zeros[0] = self.states.len() as f64;
                        }
                    } else {
                        cap = cap.saturating_sub(self.declared.len().saturating_sub(made));
                    }
                }
                let Some((slot, _)) = table.find_or_insert(key, hash, cap, &zeros) else {
                    drop(table);
                    self.dropped.inc();
                    return None;
                };
                self.series_count.set(table.len() as i64);
                slot
            }
        };
        self.change_slot(&mut table, slot, change);
        Some(SeriesAt {
            family: self.id,
            slot,
            removals: table.removals(),
        })
    }

    /// Applies `change` to the series at `at` (from [`Family::apply_and_place`] on this
    /// family), unless a series of the family was removed since `at` was given (idle expiry, an
    /// item gone from its document): then nothing changes and
    /// false says to go by the key. Removal is the only way a slot can come to hold another
    /// series or none ([`SeriesTable::removals`]), so an unchanged count means `at` still
    /// names the series it named, whose existence already passed the family's limits.
    pub fn apply_at(&self, at: SeriesAt, change: Change) -> bool {
        let mut table = self.table();
        if at.family != self.id || table.removals() != at.removals {
            return false;
        }
        self.change_slot(&mut table, at.slot, change);
        true
    }

    /// Changes the values of a held slot (and marks it changed, for idle expiry).
    fn change_slot(&self, table: &mut SeriesTable, slot: u32, change: Change) {
        if self.expire_after.is_some() {
            let now = self.now();
            table.touch(slot, now);
        }
        let values = table.values_mut(slot);
        match change {
            Change::Add(v) => values[0] += v,
            Change::Sub(v) => values[0] -= v,
            Change::Set(v) => values[0] = v,
            Change::State(i) => values[0] = i as f64,
            Change::Observe(v) => {
                let n = self.buckets.len();
                // The first bucket whose bound holds v; values above every bound, and NaN,
                // go to +Inf only (as the Go client does).
                let bucket = self.buckets.partition_point(|b| *b < v);
                let bucket = if v.is_nan() { n } else { bucket };
                values[bucket] += 1.0;
                values[n + 1] += v;
                values[n + 2] += 1.0;
            }
        }
    }

    /// A copy of the series, taken under the lock.
    pub fn copy(&self) -> TableCopy {
        self.table().copy()
    }

    /// Series held now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether the family holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends this family's exposition (two chunks for a state metric): `# HELP`, `# TYPE`,
    /// then the series in label-value order, as the prometheus crate's text encoder writes them.
    fn render(&self, out: &mut Vec<Chunk>) {
        let copy = self.copy();
        if copy.is_empty() {
            return;
        }
        self.render_copy(&copy, out);
    }

    fn render_copy<'a>(&'a self, copy: &'a TableCopy, out: &mut Vec<Chunk>) {
        let order = copy.sorted();
        let names: Vec<&'a str> = self.key_labels.iter().map(String::as_str).collect();
        let n = names.len();
        let help = &self.declaration.help;
        let mut labels: Vec<(&str, &[u8])> = Vec::with_capacity(n + 1);
        let fill = |labels: &mut Vec<(&'a str, &'a [u8])>, i: u32| {
            labels.clear();
            labels.extend(
                names
                    .iter()
                    .copied()
                    .zip(split_key(copy.key(i as usize), n)),
            );
        };
        let per_series = match self.kind {
            MetricKind::Histogram => self.buckets.len() + 3,
            MetricKind::State => self.states.len(),
            _ => 1,
        };
        let mut text = Vec::with_capacity(128 + copy.len() * per_series * (self.name.len() + 40));
        match self.kind {
            MetricKind::Counter | MetricKind::Gauge => {
                header(&mut text, &self.name, help, self.kind.as_str());
                for &i in &order {
                    fill(&mut labels, i);
                    sample(
                        &mut text,
                        &self.name,
                        "",
                        &labels,
                        None,
                        copy.values(i as usize)[0],
                    );
                }
                out.push((self.name.clone(), text));
            }
            MetricKind::Histogram => {
                header(&mut text, &self.name, help, "histogram");
                let le_format = self.declaration.le_format.unwrap_or_default();
                let bounds: Vec<String> =
                    self.buckets.iter().map(|b| le_format.write(*b)).collect();
                let nb = self.buckets.len();
                for &i in &order {
                    fill(&mut labels, i);
                    let v = copy.values(i as usize);
                    let mut cumulative = 0.0;
                    for (b, bound) in bounds.iter().enumerate() {
                        cumulative += v[b];
                        sample(
                            &mut text,
                            &self.name,
                            "_bucket",
                            &labels,
                            Some(bound),
                            cumulative,
                        );
                    }
                    sample(
                        &mut text,
                        &self.name,
                        "_bucket",
                        &labels,
                        Some("+Inf"),
                        v[nb + 2],
                    );
                    sample(&mut text, &self.name, "_sum", &labels, None, v[nb + 1]);
                    sample(&mut text, &self.name, "_count", &labels, None, v[nb + 2]);
                }
                out.push((self.name.clone(), text));
            }
            MetricKind::State => {
                header(&mut text, &self.name, help, "gauge");
                // `state` takes its alphabetical place among the labels; within a label set
                // the states go alphabetically, `unknown` (the state of a series whose source
                // fails) among them.
                let at = names.partition_point(|n| *n < "state");
                let all: Vec<&str> = self
                    .states
                    .iter()
                    .map(String::as_str)
                    .chain([UNKNOWN_STATE])
                    .collect();
                let mut by_name: Vec<usize> = (0..all.len()).collect();
                by_name.sort_by_key(|&s| all[s]);
                let mut rows: Vec<(u32, usize)> = Vec::with_capacity(copy.len() * by_name.len());
                if at == n {
                    for &i in &order {
                        rows.extend(by_name.iter().map(|&s| (i, s)));
                    }
                } else {
                    // Labels after `state` sort below it: order by (labels before, state,
                    // labels after), which is the key order with the state spliced in.
                    let mut sortable: Vec<(Vec<&[u8]>, usize, u32)> = Vec::new();
                    for &i in &order {
                        let parts: Vec<&[u8]> = split_key(copy.key(i as usize), n).collect();
                        for &s in &by_name {
                            sortable.push((parts.clone(), s, i));
                        }
                    }
                    sortable.sort_by(|a, b| {
                        a.0[..at]
                            .cmp(&b.0[..at])
                            .then_with(|| all[a.1].cmp(all[b.1]))
                            .then_with(|| a.0[at..].cmp(&b.0[at..]))
                    });
                    rows.extend(sortable.into_iter().map(|(_, s, i)| (i, s)));
                }
                for (i, s) in rows {
                    fill(&mut labels, i);
                    labels.insert(at, ("state", all[s].as_bytes()));
                    let current = copy.values(i as usize)[0];
                    let v = if current == s as f64 { 1.0 } else { 0.0 };
                    sample(&mut text, &self.name, "", &labels, None, v);
                }
                out.push((self.name.clone(), text));
                let level = level_name(&self.name);
                let mut text = Vec::with_capacity(128 + copy.len() * (level.len() + 40));
                header(&mut text, &level, &self.level_help(), "gauge");
                for &i in &order {
                    fill(&mut labels, i);
                    sample(
                        &mut text,
                        &level,
                        "",
                        &labels,
                        None,
                        copy.values(i as usize)[0],
                    );
                }
                out.push((level, text));
            }
        }
    }

    fn level_help(&self) -> String {
        format!(
            "{} (position of the current state: 0 = {}, {} = unknown).",
            self.declaration.help.trim_end_matches('.'),
            self.states.first().map(String::as_str).unwrap_or("first"),
            self.states.len()
        )
    }
}

/// One family's series as a checkpoint saves them (and `/metrics` shows them while that
/// checkpoint is the last written), with the declaration they were counted under.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    pub name: String,
    pub kind: MetricKind,
    /// Label names in key order.
    pub labels: Vec<String>,
    pub buckets: Vec<f64>,
    pub states: Vec<String>,
    pub series: TableCopy,
}

impl FamilySnapshot {
    /// A family's series now (its declaration with them).
    pub fn of(family: &Family) -> FamilySnapshot {
        FamilySnapshot {
            name: family.name.clone(),
            kind: family.kind,
            labels: family.key_labels().to_vec(),
            buckets: family.buckets().to_vec(),
            states: family.state_names().to_vec(),
            series: family.copy(),
        }
    }

    /// Whether these series fit `family` (same type, labels, buckets, states).
    pub fn fits(&self, family: &Family) -> bool {
        self.name == family.name
            && self.kind == family.kind
            && self.labels == family.key_labels()
            && self.buckets == family.buckets()
            && self.states == family.state_names()
            && self.series.width() == family.width()
    }
}

/// A metric's pre-declared label values (`label_values`), per label in key order, each cut to
/// the metric's `max_label_value_length` as an update's would be. A key is pre-declared when
/// each of its values is among its label's: no set of every combination is kept (that is
/// what the table holds, once).
#[derive(Debug, Default)]
struct Declared {
    /// `None` without `label_values` (or when a label has none: validation refuses that).
    values: Option<Vec<HashSet<Box<[u8]>>>>,
}

impl Declared {
    fn of(config: &MetricConfig) -> Declared {
        let Some(given) = &config.label_values else {
            return Declared::default();
        };
        let max = config
            .max_label_value_length
            .unwrap_or(DEFAULT_MAX_LABEL_VALUE_LENGTH);
        let mut names = config.labels.clone();
        names.sort();
        let values = names
            .iter()
            .map(|name| {
                let list = given.get(name)?;
                Some(
                    list.iter()
                        .map(|v| {
                            let mut k = v.0.as_bytes().to_vec();
                            cut_label_value(&mut k, 0, max);
                            k.into_boxed_slice()
                        })
                        .collect(),
                )
            })
            .collect::<Option<Vec<HashSet<_>>>>();
        Declared { values }
    }

    /// Whether `key` is one of the combinations.
    fn contains(&self, key: &[u8]) -> bool {
        let Some(values) = &self.values else {
            return false;
        };
        let mut parts = key.split(|b| *b == KEY_SEPARATOR);
        if values.is_empty() {
            return key.is_empty();
        }
        values
            .iter()
            .all(|set| parts.next().is_some_and(|p| set.contains(p)))
            && parts.next().is_none()
    }

    /// How many combinations there are (validation bounds it).
    fn len(&self) -> usize {
        self.values.as_ref().map_or(0, |values| {
            values
                .iter()
                .fold(1usize, |n, set| n.saturating_mul(set.len()))
        })
    }

    /// Calls `each` with the key of every combination, in key order.
    fn for_each_key(&self, mut each: impl FnMut(&[u8])) {
        let Some(values) = &self.values else {
            return;
        };
        let mut lists: Vec<Vec<&[u8]>> = values
            .iter()
            .map(|set| set.iter().map(|v| &**v).collect())
            .collect();
        if lists.iter().any(Vec::is_empty) {
            return;
        }
        for list in &mut lists {
            list.sort_unstable();
        }
        // An odometer over the lists: the last label turns fastest.
        let mut at = vec![0usize; lists.len()];
        let mut key = Vec::new();
        loop {
            key.clear();
            for (i, list) in lists.iter().enumerate() {
                if i > 0 {
                    key.push(KEY_SEPARATOR);
                }
                key.extend_from_slice(list[at[i]]);
            }
            each(&key);
            let mut i = lists.len();
            loop {
                if i == 0 {
                    return;
                }
                i -= 1;
                at[i] += 1;
                if at[i] < lists[i].len() {
                    break;
                }
                at[i] = 0;
            }
        }
    }
}

/// Cuts `key[start..]` (one label value being built) to `max` bytes at a character boundary;
/// returns whether it was cut.
pub fn cut_label_value(key: &mut Vec<u8>, start: usize, max: usize) -> bool {
    if key.len() - start <= max {
        return false;
    }
    let mut end = start + max;
    // Back up to the first byte of a UTF-8 sequence (never a continuation byte 10xxxxxx).
    while end > start && (key[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    key.truncate(end);
    true
}

/// Every declared metric family, by name. Cheap to clone (the families are shared).
#[derive(Clone, Default)]
pub struct Families {
    by_name: HashMap<String, Arc<Family>>,
}

impl Families {
    /// Builds a family per declaration.
    pub fn build(configs: &[MetricConfig], self_metrics: &SelfMetrics) -> Families {
        Families::rebuild(configs, self_metrics, None)
    }

    /// Like [`Families::build`], but a pre-declared series (`label_values`) is made when an
    /// update first reaches it, not at start, as if it had been there (its initial values,
    /// room under `max_series` kept for those not made yet). For rules' `examples`: an example
    /// then costs what its input touches, not every combination of the values.
    pub fn build_lazily(configs: &[MetricConfig], self_metrics: &SelfMetrics) -> Families {
        let by_name = configs
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Family::new(c, self_metrics, true))))
            .collect();
        Families { by_name }
    }

    /// Of lazily built families, fresh ones holding the pre-declared series these have made,
    /// at their initial values: what these showed of those series before any update.
    pub fn declared_before(&self, self_metrics: &SelfMetrics) -> Families {
        let by_name = self
            .by_name
            .iter()
            .map(|(name, f)| {
                let fresh = Family::new(&f.declaration, self_metrics, true);
                let initial = fresh.initial();
                {
                    let made = f.copy();
                    let mut table = fresh.table();
                    for i in 0..made.len() {
                        let key = made.key(i);
                        if fresh.declared.contains(key) {
                            let hash = table.hash(key);
                            table.find_or_insert(key, hash, usize::MAX, &initial);
                        }
                    }
                }
                (name.clone(), Arc::new(fresh))
            })
            .collect();
        Families { by_name }
    }

    /// Like [`Families::build`], after a reload: a family whose declaration did not change is
    /// kept with its values; the others start anew.
    pub fn rebuild(
        configs: &[MetricConfig],
        self_metrics: &SelfMetrics,
        previous: Option<Families>,
    ) -> Families {
        let mut old = previous.map(|p| p.by_name).unwrap_or_default();
        let mut by_name = HashMap::new();
        for config in configs {
            let kept = old
                .remove(&config.name)
                .filter(|f| f.declaration == *config);
            let family = kept.unwrap_or_else(|| Arc::new(Family::new(config, self_metrics, false)));
            by_name.insert(config.name.clone(), family);
        }
        for name in old.keys() {
            if !by_name.contains_key(name) {
                self_metrics.series.remove_label_values(&[name]);
                self_metrics.series_dropped.remove_label_values(&[name]);
                self_metrics
                    .label_values_truncated
                    .remove_label_values(&[name]);
            }
        }
        Families { by_name }
    }

    /// The text exposition of every family with at least one series, one chunk per metric
    /// family (a state metric gives two).
    pub fn render(&self) -> Vec<Chunk> {
        self.render_with(&[])
    }

    /// Like [`Families::render`], with the families in `saved` rendered from those copies.
    pub fn render_with(&self, saved: &[FamilySnapshot]) -> Vec<Chunk> {
        let mut out = Vec::new();
        for family in self.by_name.values() {
            // A copy that no longer fits the family (it changed since) is not shown.
            match saved
                .iter()
                .find(|s| s.name == family.name && s.fits(family))
            {
                Some(s) => {
                    if !s.series.is_empty() {
                        family.render_copy(&s.series, &mut out)
                    }
                }
                None => family.render(&mut out),
            }
        }
        out
    }

    /// The family called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Family>> {
        self.by_name.get(name)
    }

    /// Every family, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Family>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{
        CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder,
    };

    fn config(kind: MetricKind, labels: &[&str]) -> MetricConfig {
        MetricConfig {
            name: "m".into(),
            kind,
            help: "Help with \\ a backslash\nand a newline.".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            buckets: Some(vec![0.5, 1.0]),
            ..MetricConfig::default()
        }
    }

    /// The key of declared-order `values` for `family`: reordered into key order.
    fn key(family: &Family, values: &[&str]) -> Vec<u8> {
        let mut k = Vec::new();
        for (i, name) in family.key_labels().iter().enumerate() {
            if i > 0 {
                k.push(KEY_SEPARATOR);
            }
            let at = family.label_names.iter().position(|n| n == name).unwrap();
            k.extend_from_slice(values[at].as_bytes());
        }
        k
    }

    fn ours(family: &Family) -> String {
        let mut chunks = Vec::new();
        family.render(&mut chunks);
        chunks.sort_by(|a, b| a.0.cmp(&b.0));
        String::from_utf8(chunks.into_iter().flat_map(|(_, t)| t).collect()).unwrap()
    }

    fn theirs(registry: &Registry) -> String {
        let mut expected = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut expected)
            .unwrap();
        String::from_utf8(expected).unwrap()
    }

    /// The renderer writes what the prometheus crate's encoder writes for the same data (label
    /// sets chosen so that the crate's hash does not merge them).
    #[test]
    fn renders_like_the_prometheus_crate() {
        let values: &[&[&str]] = &[
            &["b", "x\"y"],
            &["a", "back\\slash"],
            &["a", "new\nline"],
            &["", "é"],
            &["a", ""],
        ];
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
        ] {
            let self_metrics = SelfMetrics::new();
            let registry = Registry::new();
            // Labels declared out of alphabetical order.
            let mut c = config(kind, &["zone", "app"]);
            if kind == MetricKind::Counter {
                c.name = "m_total".into();
            }
            let family = Family::new(&c, &self_metrics, false);
            let opts = Opts::new(&c.name, &c.help);
            let labels = ["zone", "app"];
            let counters = CounterVec::new(opts.clone(), &labels).unwrap();
            let gauges = GaugeVec::new(opts.clone(), &labels).unwrap();
            let histograms = HistogramVec::new(
                HistogramOpts::new(&c.name, &c.help).buckets(vec![0.5, 1.0]),
                &labels,
            )
            .unwrap();
            match kind {
                MetricKind::Counter => registry.register(Box::new(counters.clone())),
                MetricKind::Gauge => registry.register(Box::new(gauges.clone())),
                _ => registry.register(Box::new(histograms.clone())),
            }
            .unwrap();
            for (i, v) in values.iter().enumerate() {
                let k = key(&family, v);
                let x = i as f64;
                match kind {
                    MetricKind::Counter => {
                        counters.with_label_values(v).inc_by(x + 0.5);
                        family.apply(&k, Change::Add(x + 0.5));
                    }
                    MetricKind::Gauge => {
                        gauges.with_label_values(v).set(-x * 1e21);
                        family.apply(&k, Change::Set(-x * 1e21));
                    }
                    _ => {
                        for o in [x * 0.4, 0.5, 7.0] {
                            histograms.with_label_values(v).observe(o);
                            family.apply(&k, Change::Observe(o));
                        }
                    }
                }
            }
            assert_eq!(ours(&family), theirs(&registry), "{kind:?}");
        }
    }

    /// State metrics: `state` sorted among the labels wherever it falls alphabetically.
    #[test]
    fn renders_states_like_the_prometheus_crate() {
        for labels in [&["zone"][..], &["app"][..], &["zone", "app"][..]] {
            let self_metrics = SelfMetrics::new();
            let registry = Registry::new();
            let mut c = config(MetricKind::State, labels);
            c.buckets = None;
            c.states = Some(vec!["up".into(), "degraded".into(), "down".into()]);
            let family = Family::new(&c, &self_metrics, false);
            let mut with_state = labels.to_vec();
            with_state.push("state");
            let states = GaugeVec::new(Opts::new("m", &c.help), &with_state).unwrap();
            let level = GaugeVec::new(Opts::new("m_level", family.level_help()), labels).unwrap();
            registry.register(Box::new(states.clone())).unwrap();
            registry.register(Box::new(level.clone())).unwrap();
            for (i, v) in ["b", "a", "c\"x", "ab"].iter().enumerate() {
                let values: Vec<String> = (0..labels.len()).map(|j| format!("{v}{j}")).collect();
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                let current = i % 4; // 3: unknown
                for (s, name) in ["up", "degraded", "down", "unknown"].iter().enumerate() {
                    let mut l = values.clone();
                    l.push(name);
                    states
                        .with_label_values(&l)
                        .set(if s == current { 1.0 } else { 0.0 });
                }
                level.with_label_values(&values).set(current as f64);
                family.apply(&key(&family, &values), Change::State(current));
            }
            assert_eq!(ours(&family), theirs(&registry), "labels {labels:?}");
        }
    }

    /// The flaw this storage exists to fix: label sets whose values concatenate alike.
    #[test]
    fn label_sets_that_concatenate_alike_stay_apart() {
        let self_metrics = SelfMetrics::new();
        let family = Family::new(
            &config(MetricKind::Gauge, &["user", "host"]),
            &self_metrics,
            false,
        );
        family.apply(&key(&family, &["ab", "c"]), Change::Add(1.0));
        family.apply(&key(&family, &["a", "bc"]), Change::Add(1.0));
        assert_eq!(family.len(), 2);
        let text = ours(&family);
        assert!(text.contains("m{host=\"c\",user=\"ab\"} 1\n"), "{text}");
        assert!(text.contains("m{host=\"bc\",user=\"a\"} 1\n"), "{text}");
    }

    #[test]
    fn label_values_are_cut_at_a_character_boundary() {
        let mut k = b"x\xFF".to_vec();
        k.extend_from_slice("aé€".as_bytes()); // 1 + 2 + 3 bytes
        assert!(cut_label_value(&mut k, 2, 5));
        assert_eq!(&k[2..], "aé".as_bytes());
        assert!(!cut_label_value(&mut k, 2, 5));
    }

    /// A place is honoured by the family that gave it until that family removes a series,
    /// and never by another family (even one whose table has removed as many).
    #[test]
    fn a_place_holds_until_a_removal_and_only_in_its_family() {
        let self_metrics = SelfMetrics::new();
        let c = config(MetricKind::Gauge, &["k"]);
        let (family, other) = (
            Family::new(&c, &self_metrics, false),
            Family::new(&c, &self_metrics, false),
        );
        let at = family.apply_and_place(b"a", Change::Set(1.0)).unwrap();
        other.apply(b"x", Change::Set(5.0));
        assert!(!other.apply_at(at, Change::Add(1.0)));
        assert!(family.apply_at(at, Change::Add(1.0)));
        // Another series made, none removed: still the place of `a`.
        family.apply(b"b", Change::Set(7.0));
        assert!(family.apply_at(at, Change::Add(1.0)));
        assert_eq!(family.copy().values(0), [3.0]);
        // `a` removed, `c` made in its slot: the place is refused, `c` untouched.
        family.remove(b"a");
        family.apply(b"c", Change::Set(9.0));
        assert!(!family.apply_at(at, Change::Add(1.0)));
        let copy = family.copy();
        let values: Vec<(Vec<u8>, f64)> = (0..copy.len())
            .map(|i| (copy.key(i).to_vec(), copy.values(i)[0]))
            .collect();
        assert!(values.contains(&(b"c".to_vec(), 9.0)), "{values:?}");
        assert!(values.contains(&(b"b".to_vec(), 7.0)), "{values:?}");
        assert_eq!(values.len(), 2);
        assert_eq!(other.copy().values(0), [5.0]);
    }

    #[test]
    fn the_series_cap_drops_and_counts() {
        let self_metrics = SelfMetrics::new();
        let mut c = config(MetricKind::Gauge, &["k"]);
        c.max_series = Some(2);
        let family = Family::new(&c, &self_metrics, false);
        assert!(family.apply(b"a", Change::Set(1.0)));
        assert!(family.apply(b"b", Change::Set(1.0)));
        assert!(!family.apply(b"c", Change::Set(1.0)));
        assert!(family.apply(b"a", Change::Set(2.0)));
        assert_eq!(
            self_metrics.series_dropped.with_label_values(&["m"]).get(),
            1
        );
        assert_eq!(self_metrics.series.with_label_values(&["m"]).get(), 2);
    }

    fn declared(kind: MetricKind, max_series: usize) -> MetricConfig {
        let mut c = config(kind, &["zone", "app"]);
        c.max_series = Some(max_series);
        c.max_label_value_length = Some(3);
        c.states = (kind == MetricKind::State).then(|| vec!["up".into(), "down".into()]);
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| crate::config::LabelValue((*s).to_owned()))
                .collect()
        };
        // Two values that are one after the cut: 2 × 2 combinations.
        c.label_values = Some(
            [
                ("zone".to_owned(), list(&["eu", "us"])),
                ("app".to_owned(), list(&["web1", "web2", "api"])),
            ]
            .into(),
        );
        c
    }

    /// Pre-declared series: every combination once (values cut as updates' are), in no set of
    /// keys beside the table; never removed.
    #[test]
    fn pre_declared_series_are_every_combination_once() {
        let self_metrics = SelfMetrics::new();
        let family = Family::new(&declared(MetricKind::Gauge, 10), &self_metrics, false);
        assert_eq!(family.len(), 4);
        assert_eq!(family.declared.len(), 4);
        let mut keys = Vec::new();
        family.declared.for_each_key(|k| keys.push(k.to_vec()));
        // In key order (app before zone), the last label turning fastest.
        let expected: Vec<Vec<u8>> = [["eu", "api"], ["us", "api"], ["eu", "web"], ["us", "web"]]
            .iter()
            .map(|v| key(&family, v))
            .collect();
        assert_eq!(keys, expected);
        assert!(family.declared.contains(&key(&family, &["us", "web"])));
        assert!(!family.declared.contains(&key(&family, &["us", "web1"])));
        assert!(!family.declared.contains(b"api"));
        family.remove(&key(&family, &["us", "web"]));
        assert_eq!(family.len(), 4);
        // No labels, `label_values: {}`: the one series.
        let mut c = config(MetricKind::State, &[]);
        c.states = Some(vec!["up".into()]);
        c.label_values = Some(Default::default());
        let family = Family::new(&c, &self_metrics, false);
        assert_eq!(family.len(), 1);
        assert!(family.declared.contains(b""));
    }

    /// A lazily built family (examples) makes a pre-declared series when an update reaches
    /// it, and otherwise behaves as the family built at start: same answers, same values,
    /// the same room under `max_series`; what it holds is only what was touched.
    #[test]
    fn lazy_families_behave_as_if_every_declared_series_were_there() {
        for kind in [
            MetricKind::Counter,
            MetricKind::State,
            MetricKind::Histogram,
        ] {
            let self_metrics = SelfMetrics::new();
            let c = declared(kind, 6);
            let eager = Family::new(&c, &self_metrics, false);
            let lazy = Family::new(&c, &self_metrics, true);
            assert_eq!(lazy.len(), 0);
            let change = match kind {
                MetricKind::State => Change::State(1),
                MetricKind::Histogram => Change::Observe(0.7),
                _ => Change::Add(1.0),
            };
            let updates: [&[&str]; 6] = [
                &["us", "web"],
                &["mars", "web"],
                &["us", "web"],
                &["mars", "api"],
                &["moon", "api"], // the cap: 4 declared + 2 others
                &["eu", "api"],   // declared: always there
            ];
            for values in updates {
                let k = key(&eager, values);
                assert_eq!(
                    eager.apply(&k, change),
                    lazy.apply(&k, change),
                    "{values:?}"
                );
            }
            assert_eq!(lazy.len(), 4);
            let (eager_copy, lazy_copy) = (eager.copy(), lazy.copy());
            for i in 0..lazy_copy.len() {
                let k = lazy_copy.key(i);
                let at = (0..eager_copy.len())
                    .find(|j| eager_copy.key(*j) == k)
                    .unwrap();
                assert_eq!(lazy_copy.values(i), eager_copy.values(at), "{kind:?}");
            }
            // What the touched declared series showed before any update.
            let before = Families {
                by_name: [(c.name.clone(), Arc::new(lazy))].into(),
            }
            .declared_before(&self_metrics);
            let fresh = before.get(&c.name).unwrap();
            assert_eq!(fresh.len(), 2);
            let unknown = if kind == MetricKind::State { 2.0 } else { 0.0 };
            assert_eq!(fresh.copy().values(0)[0], unknown);
        }
    }
}
