//! Traces for `explain`: which records and matches to keep (`--where` filters, limits),
//! and what each kept match's updates would make of it, computed without applying.

use regex::Regex;

use super::{FieldRef, Fields, Op, Pipeline, Rule, Update, ValueSource, SHOWN_TEXT};
use crate::config::template::{FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD};
use crate::config::{Conversion, NoneValue};
use crate::registry::KEY_SEPARATOR;

/// `text` cut to [`SHOWN_TEXT`] bytes at a character boundary, with `…` when cut.
pub(super) fn shown(text: &str, out: &mut String) {
    out.clear();
    if text.len() <= SHOWN_TEXT {
        out.push_str(text);
        return;
    }
    let mut cut = SHOWN_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&text[..cut]);
    out.push('…');
}

/// Which matches `explain` shows and how: how many per rule, whole records or cut ones, only
/// those with a failed update, only those whose fields pass filters.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Matches recorded in full per rule (the rest are counted).
    pub limit: usize,
    /// Records shown whole (else cut to [`SHOWN_TEXT`] bytes).
    pub full: bool,
    /// Only matches with at least one failed update, and of them only the failed updates.
    pub failed_only: bool,
    /// Only matches whose fields pass every filter (`--where`).
    pub filters: Vec<FieldFilter>,
}

impl TraceOptions {
    /// Whether some matches are left out (`--failed`, `--where`).
    pub fn selects(&self) -> bool {
        self.failed_only || !self.filters.is_empty()
    }

    /// What is selected, in words (`with a failed update where level=error`); empty when all.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.failed_only {
            words.push("with a failed update".to_owned());
        }
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(ToString::to_string).collect();
            words.push(format!("where {}", filters.join(" and ")));
        }
        words.join(" ")
    }
}

/// One `--where` filter: a field's text compared with a value, or searched with a regex.
#[derive(Debug, Clone)]
pub struct FieldFilter {
    /// The field's name (a named group, a JSON or logfmt field, a derived field or a built-in
    /// such as `__stream__`), without `$`.
    pub field: String,
    pub test: FieldTest,
}

/// How a [`FieldFilter`] tests a field's text. A field that selected nothing passes none.
#[derive(Debug, Clone)]
pub enum FieldTest {
    /// `FIELD=VALUE`: the text is exactly the value.
    Equals(String),
    /// `FIELD!=VALUE`: the text is something else.
    NotEquals(String),
    /// `FIELD~REGEX`: the regex matches somewhere in the text.
    Matches(Regex),
}

impl FieldFilter {
    /// Parses `FIELD=VALUE`, `FIELD!=VALUE` or `FIELD~REGEX` (a leading `$` on the field is
    /// allowed).
    pub fn parse(text: &str) -> Result<FieldFilter, String> {
        let body = text.strip_prefix('$').unwrap_or(text);
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let (field, rest) = body.split_at(end);
        let usage =
            || format!("{text:?} is not a filter: write FIELD=VALUE, FIELD!=VALUE or FIELD~REGEX");
        if field.is_empty() {
            return Err(usage());
        }
        let test = if let Some(v) = rest.strip_prefix("!=") {
            FieldTest::NotEquals(v.to_owned())
        } else if let Some(v) = rest.strip_prefix('=') {
            FieldTest::Equals(v.to_owned())
        } else if let Some(re) = rest.strip_prefix('~') {
            FieldTest::Matches(Regex::new(re).map_err(|e| format!("{text:?}: {e}"))?)
        } else {
            return Err(usage());
        };
        Ok(FieldFilter {
            field: field.to_owned(),
            test,
        })
    }

    /// Whether a field's text (`None`: it selected nothing) passes.
    pub fn passes(&self, text: Option<&str>) -> bool {
        match (&self.test, text) {
            (_, None) => false,
            (FieldTest::Equals(v), Some(t)) => t == v,
            (FieldTest::NotEquals(v), Some(t)) => t != v,
            (FieldTest::Matches(re), Some(t)) => re.is_match(t),
        }
    }
}

impl std::fmt::Display for FieldFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.test {
            FieldTest::Equals(v) => write!(f, "{}={v}", self.field),
            FieldTest::NotEquals(v) => write!(f, "{}!={v}", self.field),
            FieldTest::Matches(re) => write!(f, "{}~{}", self.field, re.as_str()),
        }
    }
}

/// What `explain` shows of a pipeline's work: per rule its first matches in full (those the
/// options select), and the first records no rule matched.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Trace {
    /// Matches recorded in full per rule (the rest are counted).
    pub limit: usize,
    /// What the matches shown were selected by, in words (`with a failed update where
    /// level=error`); absent when every match could be shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_by: Option<String>,
    pub rules: Vec<RuleTrace>,
    /// Records no rule matched, in all.
    pub unmatched: u64,
    /// The first of them (none when matches are selected: they have no fields or updates).
    pub unmatched_shown: Vec<String>,
    #[serde(skip)]
    pub(super) options: TraceOptions,
}

/// One rule's matches.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matches: u64,
    /// Matches the options select (`--failed`, `--where`), when they select.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<u64>,
    pub shown: Vec<MatchTrace>,
    /// The field each filter reads in this rule (`None`: the rule has no such field).
    #[serde(skip)]
    filter_fields: Vec<Option<FieldRef>>,
}

/// One match: the record (a line; none for a document's row), its fields, what each update
/// did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MatchTrace {
    /// The record, cut to [`SHOWN_TEXT`] bytes (with `…`) unless whole records were asked for.
    pub record: Option<String>,
    /// The record's whole length in bytes, when `record` is cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_bytes: Option<usize>,
    /// Field name and its text (`None`: the field selected nothing).
    pub fields: Vec<(String, Option<String>)>,
    pub updates: Vec<UpdateTrace>,
    /// Updates not shown because they did not fail (with `--failed`).
    #[serde(skip_serializing_if = "is_zero")]
    pub updates_not_shown: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One update of a match.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpdateTrace {
    /// The series: metric name and labels, as `/metrics` writes it.
    pub series: String,
    /// `add`, `sub`, `set`, `observe`, `state` or `total`.
    pub op: &'static str,
    /// The value applied (a state by name), when it read.
    pub value: Option<String>,
    /// Why it failed, and the text that failed.
    pub error: Option<String>,
    /// How the text became the value, when not as a plain number (`as: duration`,
    /// `scale: 0.001`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion: Option<String>,
}

impl Pipeline {
    /// Records, from now on, the first `options.limit` matches of each rule that the options
    /// select in full, the others counted, and the first records no rule matched (`explain`).
    pub fn start_trace(&mut self, options: &TraceOptions) {
        let selects = options.selects();
        self.trace = Some(Trace {
            limit: options.limit,
            selected_by: selects.then(|| options.describe()),
            rules: self
                .rules
                .iter()
                .map(|r| RuleTrace {
                    rule: r.name.clone(),
                    selected: selects.then_some(0),
                    filter_fields: options
                        .filters
                        .iter()
                        .map(|f| r.field_ref(&f.field))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            options: options.clone(),
            ..Default::default()
        });
    }

    /// Every field name a rule of this source has (named groups, JSON and logfmt fields,
    /// derived fields) and the built-in ones, for `explain --where` to check its fields.
    pub fn field_names(&self) -> Vec<String> {
        let builtins = [FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD];
        let mut names: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| r.field_names.iter().flatten().chain(&r.derived_names))
            .cloned()
            .chain(builtins.iter().map(|b| (*b).to_owned()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What was recorded since [`Pipeline::start_trace`].
    pub fn take_trace(&mut self) -> Option<Trace> {
        self.trace.take()
    }
}

/// Records one match of rule `index` in `trace`: counted, and, when the trace's options
/// select it, counted as selected and (the first `limit`) kept with its fields and what each
/// update makes of them, computed without applying anything.
pub(super) fn record(
    trace: &mut Trace,
    index: usize,
    line: Option<&str>,
    compiled: &Rule,
    fields: &Fields,
) {
    let names = &compiled.field_names;
    let updates = &compiled.updates;
    let limit = trace.limit;
    let options = &trace.options;
    let Some(rule) = trace.rules.get_mut(index) else {
        return;
    };
    rule.matches += 1;
    let passes = options
        .filters
        .iter()
        .zip(&rule.filter_fields)
        .all(|(filter, field)| filter.passes(field.and_then(|f| fields.get(f))));
    if !passes {
        return;
    }
    // With `--failed`, every match's updates are tried, to count those that fail.
    let mut updates_shown = None;
    if options.failed_only {
        let traced: Vec<UpdateTrace> = updates.iter().map(|u| u.trace(fields)).collect();
        let total = traced.len();
        let failed: Vec<UpdateTrace> = traced.into_iter().filter(|u| u.error.is_some()).collect();
        if failed.is_empty() {
            return;
        }
        updates_shown = Some((total - failed.len(), failed));
    }
    if let Some(selected) = &mut rule.selected {
        *selected += 1;
    }
    if rule.shown.len() >= limit {
        return;
    }
    let mut record_bytes = None;
    let record = line.map(|l| {
        let mut text = String::new();
        if options.full {
            text.push_str(l);
        } else {
            shown(l, &mut text);
            record_bytes = (l.len() > SHOWN_TEXT).then_some(l.len());
        }
        text
    });
    let fields_shown = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let n = n.as_ref()?;
            Some((n.clone(), fields.get(FieldRef::Index(i)).map(str::to_owned)))
        })
        .chain(compiled.derived_names.iter().enumerate().map(|(i, n)| {
            (
                n.clone(),
                fields.get(FieldRef::Derived(i)).map(str::to_owned),
            )
        }))
        .collect();
    let (updates_not_shown, updates) =
        updates_shown.unwrap_or_else(|| (0, updates.iter().map(|u| u.trace(fields)).collect()));
    rule.shown.push(MatchTrace {
        record,
        record_bytes,
        fields: fields_shown,
        updates,
        updates_not_shown,
    });
}

impl Update {
    /// What this update makes of `fields`, without applying it (`explain`).
    fn trace(&self, fields: &Fields) -> UpdateTrace {
        let mut key = Vec::new();
        self.build_key(fields, &mut key);
        let values: Vec<&[u8]> = if self.labels.is_empty() {
            Vec::new()
        } else {
            key.split(|b| *b == KEY_SEPARATOR).collect()
        };
        let mut series = Vec::new();
        let labels: Vec<(&str, &[u8])> = self
            .family
            .key_labels()
            .iter()
            .map(String::as_str)
            .zip(values)
            .collect();
        crate::exposition::sample(&mut series, &self.family.name, "", &labels, None, 0.0);
        let series = String::from_utf8_lossy(&series);
        let series = series.trim_end();
        let series = series.strip_suffix(" 0").unwrap_or(series).to_owned();
        let op = match self.op {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Set => "set",
            Op::Observe => "observe",
            Op::State => "state",
            Op::Total => "total",
        };
        let conversion = self.conversion();
        match self.value(fields).and_then(|v| self.refuse_negative(v)) {
            Ok(None) => UpdateTrace {
                series,
                op,
                value: Some("skipped (none)".to_owned()),
                error: None,
                conversion,
            },
            Ok(Some(v)) if self.op == Op::State => UpdateTrace {
                series,
                op,
                value: self.family.state_names().get(v as usize).cloned(),
                error: None,
                conversion,
            },
            Ok(Some(v)) => UpdateTrace {
                series,
                op,
                value: Some(v.to_string()),
                error: None,
                conversion,
            },
            Err(reason) => UpdateTrace {
                series,
                op,
                value: None,
                error: Some(format!(
                    "{}: {}",
                    reason.as_str(),
                    self.offending_text(fields, reason)
                )),
                conversion,
            },
        }
    }

    /// How a field's text becomes this update's value, when not as a plain number.
    fn conversion(&self) -> Option<String> {
        let ValueSource::Field {
            map,
            convert,
            scale,
            none,
            ..
        } = &self.value
        else {
            return None;
        };
        let mut parts = Vec::new();
        match none {
            Some(NoneValue::Skip) => parts.push("none: skip".to_owned()),
            Some(NoneValue::Value(v)) => parts.push(format!("none: {v}")),
            None => {}
        }
        if map.is_some() {
            parts.push("map".to_owned());
        } else if *convert != Conversion::Number {
            parts.push(format!("as {}", convert.as_str()));
        }
        if let Some(s) = scale {
            parts.push(format!("× {}", s.factor()));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}
