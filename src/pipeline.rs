//! The compiled plan of one source: its rules, and what each match does to which metric.
//!
//! Built once from the validated config: regexes compiled, templates resolved to capture
//! indexes, metric families looked up, self-metric handles resolved. At run time a record
//! goes through [`Pipeline::process_line`], which allocates nothing once the label sets it
//! meets have been seen: capture positions are reused, series keys are built in a reused
//! buffer, and series handles are cached per update.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use prometheus::IntCounter;
use regex::Regex;

use crate::config::template::{self, Piece, FILE_FIELD};
use crate::config::{MetricKind, SourceConfig, UpdateConfig, ValueSpec};
use crate::matcher::Matcher;
use crate::registry::{Families, Family, Series, KEY_SEPARATOR};
use crate::selfmetrics::{RuleErrorReason, SelfMetrics};

/// What a record carries besides its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordContext<'a> {
    /// The path of the file a line came from (the `$__file__` field).
    pub file: &'a str,
}

/// Counts of one rule, as the landing page shows them.
#[derive(Debug, Clone)]
pub struct RuleStats {
    /// The rule's name (or index).
    pub name: String,
    /// Matches so far.
    pub matches: u64,
    /// Updates that failed, all reasons.
    pub errors: u64,
}

/// Where a field's text comes from.
#[derive(Debug, Clone, Copy)]
enum FieldRef {
    /// A regex capture group, by index.
    Capture(usize),
    /// The path of the file.
    File,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field(FieldRef),
}

#[derive(Debug, Clone, Copy)]
enum ValueSource {
    Constant(f64),
    Field(FieldRef),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Add,
    Sub,
    Set,
    Observe,
}

struct Update {
    family: Arc<Family>,
    /// One template per label, in the family's label order.
    labels: Vec<Vec<Part>>,
    op: Op,
    value: ValueSource,
    /// Series handles by key; bounded by the family's `max_series`. foldhash: these lookups
    /// are on the hot path, and SipHash was a tenth of the time per line.
    cache: foldhash::HashMap<Box<[u8]>, Series>,
}

struct Rule {
    name: String,
    matcher: Matcher,
    updates: Vec<Update>,
    matches: IntCounter,
    errors: Vec<(RuleErrorReason, IntCounter)>,
}

/// The compiled rules of one source.
pub struct Pipeline {
    rules: Vec<Rule>,
    unmatched: IntCounter,
    key: Vec<u8>,
}

impl Pipeline {
    /// Compiles the rules of `source` against the declared `families`.
    pub fn build(
        source: &SourceConfig,
        families: &Families,
        self_metrics: &SelfMetrics,
    ) -> anyhow::Result<Pipeline> {
        let mut rules = Vec::with_capacity(source.rules.len());
        for (i, rule) in source.rules.iter().enumerate() {
            let rule_name = rule.name.clone().unwrap_or_else(|| i.to_string());
            let matcher = Matcher::new(&rule.regex)
                .with_context(|| format!("source {:?} rule {rule_name}", source.name))?;
            let updates = rule
                .update
                .iter()
                .map(|u| build_update(u, matcher.regex(), families))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("source {:?} rule {rule_name}", source.name))?;
            let errors = RuleErrorReason::ALL
                .iter()
                .map(|r| {
                    let c = self_metrics.rule_errors.with_label_values(&[
                        &source.name,
                        &rule_name,
                        r.as_str(),
                    ]);
                    (*r, c)
                })
                .collect();
            rules.push(Rule {
                name: rule_name.clone(),
                matcher,
                updates,
                matches: self_metrics
                    .rule_matches
                    .with_label_values(&[&source.name, &rule_name]),
                errors,
            });
        }
        Ok(Pipeline {
            rules,
            unmatched: self_metrics
                .source_unmatched
                .with_label_values(&[&source.name]),
            key: Vec::with_capacity(256),
        })
    }

    /// Matches and failed updates per rule, and records no rule matched, for the landing page.
    pub fn stats(&self) -> (Vec<RuleStats>, u64) {
        let rules = self
            .rules
            .iter()
            .map(|r| RuleStats {
                name: r.name.clone(),
                matches: r.matches.get(),
                errors: r.errors.iter().map(|(_, c)| c.get()).sum(),
            })
            .collect();
        (rules, self.unmatched.get())
    }

    /// Runs every rule on one line; returns whether any matched.
    pub fn process_line(&mut self, line: &str, ctx: &RecordContext) -> bool {
        let mut matched = false;
        for rule in &mut self.rules {
            if !rule.matcher.matches(line) {
                continue;
            }
            matched = true;
            rule.matches.inc();
            let fields = Fields {
                line,
                matcher: &rule.matcher,
                ctx,
            };
            for update in &mut rule.updates {
                if let Err(reason) = update.apply(&fields, &mut self.key) {
                    if let Some((_, c)) = rule.errors.iter().find(|(r, _)| *r == reason) {
                        c.inc();
                    }
                }
            }
        }
        if !matched {
            self.unmatched.inc();
        }
        matched
    }
}

struct Fields<'a> {
    line: &'a str,
    matcher: &'a Matcher,
    ctx: &'a RecordContext<'a>,
}

impl<'a> Fields<'a> {
    fn get(&self, field: FieldRef) -> &'a str {
        match field {
            FieldRef::Capture(i) => match self.matcher.group(i) {
                Some((start, end)) => &self.line[start..end],
                None => "",
            },
            FieldRef::File => self.ctx.file,
        }
    }
}

impl Update {
    fn apply(&mut self, fields: &Fields, key: &mut Vec<u8>) -> Result<(), RuleErrorReason> {
        let value = match self.value {
            ValueSource::Constant(v) => v,
            ValueSource::Field(f) => fields
                .get(f)
                .trim()
                .parse::<f64>()
                .map_err(|_| RuleErrorReason::ValueNotANumber)?,
        };
        if value.is_nan() {
            return Err(RuleErrorReason::ValueNotANumber);
        }
        if matches!(self.op, Op::Add) && self.family.kind == MetricKind::Counter && value < 0.0 {
            return Err(RuleErrorReason::NegativeCounterIncrement);
        }
        key.clear();
        for (i, parts) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            for part in parts {
                match part {
                    Part::Literal(s) => key.extend_from_slice(s.as_bytes()),
                    Part::Field(f) => key.extend_from_slice(fields.get(*f).as_bytes()),
                }
            }
        }
        let series = match self.cache.get(key.as_slice()) {
            Some(s) => s,
            None => {
                // A full family drops the update; the family counts the drop.
                let Some(s) = self.family.series(key) else {
                    return Ok(());
                };
                self.cache.entry(key.as_slice().into()).or_insert(s)
            }
        };
        match (series, self.op) {
            (Series::Counter(c), Op::Add) => c.inc_by(value),
            (Series::Gauge(g), Op::Add) => g.add(value),
            (Series::Gauge(g), Op::Sub) => g.sub(value),
            (Series::Gauge(g), Op::Set) => g.set(value),
            (Series::Histogram(h), Op::Observe) => h.observe(value),
            _ => unreachable!("validation pairs operations with metric types"),
        }
        Ok(())
    }
}

fn resolve_field(name: &str, regex: &Regex) -> anyhow::Result<FieldRef> {
    if name == FILE_FIELD {
        return Ok(FieldRef::File);
    }
    regex
        .capture_names()
        .position(|n| n == Some(name))
        .map(FieldRef::Capture)
        .ok_or_else(|| anyhow!("unknown field ${name}"))
}

fn build_update(u: &UpdateConfig, regex: &Regex, families: &Families) -> anyhow::Result<Update> {
    let family = families
        .get(&u.metric)
        .ok_or_else(|| anyhow!("unknown metric {:?}", u.metric))?
        .clone();
    let mut labels = Vec::with_capacity(family.label_names.len());
    for name in &family.label_names {
        let text = &u
            .labels
            .get(name)
            .ok_or_else(|| anyhow!("missing label {name}"))?
            .0;
        let parts = template::parse(text)
            .map_err(|e| anyhow!(e))?
            .into_iter()
            .map(|p| match p {
                Piece::Literal(s) => Ok(Part::Literal(s)),
                Piece::Field(f) => resolve_field(&f, regex).map(Part::Field),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        labels.push(parts);
    }
    let (op, spec) = match (&u.inc, &u.add, &u.dec, &u.set, &u.observe) {
        (Some(v), ..) | (_, Some(v), ..) => (Op::Add, Some(v)),
        (_, _, Some(v), ..) => (Op::Sub, Some(v)),
        (_, _, _, Some(v), _) => (Op::Set, Some(v)),
        (.., Some(v)) => (Op::Observe, Some(v)),
        _ => (Op::Add, None),
    };
    let value = match spec {
        None => ValueSource::Constant(1.0),
        Some(ValueSpec::Number(n)) => ValueSource::Constant(*n),
        Some(ValueSpec::Text(t)) => match template::parse(t).map_err(|e| anyhow!(e))?.as_slice() {
            [Piece::Field(f)] => ValueSource::Field(resolve_field(f, regex)?),
            [Piece::Literal(l)] => ValueSource::Constant(l.trim().parse()?),
            _ => return Err(anyhow!("value {t:?} is not one field")),
        },
    };
    Ok(Update {
        family,
        labels,
        op,
        value,
        cache: foldhash::HashMap::default(),
    })
}
