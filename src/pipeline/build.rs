//! Building a [`Pipeline`] from a validated source config: each rule's extractor, field
//! names, derived fields, `when` filters and updates compiled once, metric families looked
//! up; and a built pipeline rebound to fresh families (probes).

use std::sync::Arc;

use anyhow::{anyhow, Context};
use regex::Regex;

use super::{
    Derive, Extract, FieldRef, Op, Part, Pipeline, Rule, Scale, Update, ValueSource, When,
};
use crate::config::template::{self, Piece, FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD};
use crate::config::{
    Extractor, FileFormat, HtmlRuleConfig, JsonRuleConfig, RuleConfig, SourceConfig, SourceKind,
    UpdateConfig, ValueSpec, XmlRuleConfig,
};
use crate::extract::json::JsonExtractor;
use crate::extract::json_record::{member_path, PathTrie};
use crate::matcher::set::Candidates;
use crate::matcher::Matcher;
use crate::registry::Families;
use crate::selfmetrics::{RecordErrorReason, RuleErrorReason, SelfMetrics};
use crate::value::ValueMap;

/// Field names of a rule, in index order, and how to find them.
struct FieldNames {
    base: Vec<Option<String>>,
    /// Records of a file (`$__file__`).
    lines: bool,
    /// Records of a container log (`$__stream__`, `$__time__`).
    container: bool,
    derived: Vec<String>,
}

impl FieldNames {
    fn new(base: Vec<Option<String>>, lines: bool) -> FieldNames {
        FieldNames {
            base,
            lines,
            container: false,
            derived: Vec::new(),
        }
    }

    fn resolve(&self, name: &str) -> anyhow::Result<FieldRef> {
        match name {
            FILE_FIELD if self.lines => return Ok(FieldRef::File),
            SOURCE_FIELD => return Ok(FieldRef::Source),
            STREAM_FIELD if self.container => return Ok(FieldRef::Stream),
            TIME_FIELD if self.container => return Ok(FieldRef::Time),
            _ => {}
        }
        if let Some(i) = self.derived.iter().position(|n| n == name) {
            return Ok(FieldRef::Derived(i));
        }
        self.base
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .map(FieldRef::Index)
            .ok_or_else(|| anyhow!("unknown field ${name}"))
    }
}

/// Compiles `derive:` (adding its fields to `names`) and `when:`.
fn build_derived(
    rule: &RuleConfig,
    names: &mut FieldNames,
) -> anyhow::Result<(Vec<Derive>, Vec<When>)> {
    let mut derive = Vec::with_capacity(rule.derive.len());
    for d in &rule.derive {
        let from = match template::parse(&d.from).map_err(|e| anyhow!(e))?.as_slice() {
            [Piece::Field(f)] => names.resolve(f)?,
            _ => return Err(anyhow!("derive from {:?} is not one field", d.from)),
        };
        let regex = crate::extract::limits::regex(&d.regex).map_err(|e| anyhow!(e))?;
        let mut groups = Vec::new();
        for (i, n) in regex.capture_names().enumerate() {
            if let Some(n) = n {
                groups.push(i);
                names.derived.push(n.to_owned());
            }
        }
        derive.push(Derive::new(from, regex, groups));
    }
    let when = rule
        .when
        .iter()
        .map(|(field, pattern)| {
            let field = names.resolve(field.strip_prefix('$').unwrap_or(field))?;
            let regex = crate::extract::limits::regex(pattern).map_err(|e| anyhow!(e))?;
            Ok((field, super::records::WhenPattern::new(regex)))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((derive, when))
}

fn build_extract(
    rule: &RuleConfig,
    lines: bool,
    json_paths: &mut PathTrie,
) -> anyhow::Result<(Extract, FieldNames)> {
    match rule.extractor()? {
        Extractor::Regex(pattern)
        | Extractor::Grok {
            expanded: Some(pattern),
            ..
        } => build_regex_extract(pattern, lines),
        Extractor::Grok { expanded: None, .. } => {
            Err(anyhow!("its grok expression did not expand"))
        }
        Extractor::Logfmt(l) => {
            let names = FieldNames::new(l.fields.keys().cloned().map(Some).collect(), lines);
            // A page source's logfmt rule: the document worker reads each line as a record.
            let extract = match lines {
                true => Extract::Logfmt(l.fields.values().cloned().collect()),
                false => Extract::Document,
            };
            Ok((extract, names))
        }
        Extractor::Json(j) if lines => {
            let extractor =
                JsonExtractor::new(j.for_each.as_deref(), j.fields.values().map(String::as_str))
                    .map_err(|e| anyhow!(e))?;
            let names = FieldNames::new(j.fields.keys().cloned().map(Some).collect(), lines);
            let paths: Option<Vec<Vec<String>>> = match j.for_each {
                Some(_) => None,
                None => j.fields.values().map(|e| member_path(e)).collect(),
            };
            let slots = paths.map(|p| p.iter().map(|path| json_paths.insert(path)).collect());
            Ok((Extract::JsonRecord(extractor, slots), names))
        }
        // A page source's query rule: the document worker extracts its rows, in field-name
        // order (the fields are a sorted map), like the extractors emit.
        Extractor::Json(JsonRuleConfig { fields, .. })
        | Extractor::Xml(XmlRuleConfig { fields, .. })
        | Extractor::Html(HtmlRuleConfig { fields, .. }) => {
            let names = FieldNames::new(fields.keys().cloned().map(Some).collect(), false);
            Ok((Extract::Document, names))
        }
    }
}

/// A `regex:` (or expanded `grok:`) rule: a [`Matcher`] per line in a file source; in a
/// page source the document worker finds every match.
fn build_regex_extract(pattern: &str, lines: bool) -> anyhow::Result<(Extract, FieldNames)> {
    let regex: Regex = crate::extract::limits::regex(pattern).map_err(|e| anyhow!(e))?;
    let names = FieldNames::new(
        regex.capture_names().map(|n| n.map(String::from)).collect(),
        lines,
    );
    let extract = if lines {
        Extract::Lines(Matcher::new(pattern).map_err(|e| anyhow!(e))?)
    } else {
        Extract::Document
    };
    Ok((extract, names))
}

/// The reasons a source's records can be unreadable (`quarry_source_record_errors_total`),
/// each exported at 0 from the start: `not_json`/`not_logfmt` for a file source with `json:`
/// or `logfmt:` rules, `not_cri`/`not_docker_json`, `record_too_long` and `too_many_streams`
/// with its `format` and `multiline`. Empty for a source that reads no records (page sources,
/// plain lines read by `regex:` or `grok:`): the dashboards leave out what it cannot feed.
pub fn record_error_reasons(source: &SourceConfig) -> Vec<RecordErrorReason> {
    let file = match source.kind() {
        Ok(SourceKind::File(file)) => file,
        Ok(
            SourceKind::Http(_)
            | SourceKind::Command(_)
            | SourceKind::StatusFile(_)
            | SourceKind::Socket(_),
        )
        | Err(_) => return Vec::new(),
    };
    let container = matches!(file.format, FileFormat::Cri | FileFormat::Docker);
    let mut reasons = Vec::new();
    let extractors: Vec<Extractor> = source
        .rules
        .iter()
        .filter_map(|r| r.extractor().ok())
        .collect();
    if extractors.iter().any(|e| matches!(e, Extractor::Json(_))) {
        reasons.push(RecordErrorReason::NotJson);
    }
    if extractors.iter().any(|e| matches!(e, Extractor::Logfmt(_))) {
        reasons.push(RecordErrorReason::NotLogfmt);
    }
    match file.format {
        FileFormat::Cri => reasons.push(RecordErrorReason::NotCri),
        FileFormat::Docker => reasons.push(RecordErrorReason::NotDockerJson),
        FileFormat::Plain => {}
    }
    if container || file.multiline.is_some() {
        reasons.push(RecordErrorReason::RecordTooLong);
    }
    if container {
        reasons.push(RecordErrorReason::TooManyStreams);
    }
    reasons
}

impl Pipeline {
    /// Compiles the rules of `source` against the declared `families`.
    pub fn build(
        source: &SourceConfig,
        families: &Families,
        self_metrics: &SelfMetrics,
    ) -> anyhow::Result<Pipeline> {
        let kind = source
            .kind()
            .with_context(|| format!("source {:?}", source.name))?;
        let lines = kind.reads_lines();
        let container = match kind {
            SourceKind::File(f) => matches!(f.format, FileFormat::Cri | FileFormat::Docker),
            SourceKind::Http(_)
            | SourceKind::Command(_)
            | SourceKind::StatusFile(_)
            | SourceKind::Socket(_) => false,
        };
        let mut json_paths = PathTrie::default();
        let mut rules = Vec::with_capacity(source.rules.len());
        for (i, rule) in source.rules.iter().enumerate() {
            let rule_name = rule.name.clone().unwrap_or_else(|| i.to_string());
            let context = || format!("source {:?} rule {rule_name}", source.name);
            let (extract, mut names) =
                build_extract(rule, lines, &mut json_paths).with_context(context)?;
            names.container = container;
            let unquote = rule
                .unquote
                .iter()
                .map(|n| match names.resolve(n.strip_prefix('$').unwrap_or(n)) {
                    Ok(FieldRef::Index(i)) => Ok(i),
                    _ => Err(anyhow!("unquote: {n:?} is not a field of the rule")),
                })
                .collect::<anyhow::Result<Vec<usize>>>()
                .with_context(context)?;
            let (derive, when) = build_derived(rule, &mut names).with_context(context)?;
            let updates = rule
                .update
                .iter()
                .map(|u| build_update(u, &names, families, rule.keep_absent))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(context)?;
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
            let cache = match extract {
                Extract::Document => None,
                _ => Rule::series_cache(&updates),
            };
            rules.push(Rule {
                cache,
                matches: self_metrics
                    .rule_matches
                    .with_label_values(&[&source.name, &rule_name]),
                name: rule_name,
                extract,
                updates,
                last_failures: vec![String::new(); RuleErrorReason::ALL.len()],
                field_names: names.base.clone(),
                derived_names: names.derived.clone(),
                derive,
                when,
                unquote,
                errors,
            });
        }
        let record_errors = record_error_reasons(source)
            .into_iter()
            .map(|r| {
                let c = self_metrics
                    .source_record_errors
                    .with_label_values(&[&source.name, r.as_str()]);
                (r, c)
            })
            .collect();
        let line_matchers = rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.extract {
                Extract::Lines(m) => Some((i, m)),
                _ => None,
            });
        let candidates = Candidates::build(line_matchers, rules.len());
        Ok(Pipeline {
            candidates,
            source: source.name.clone(),
            unmatched_samples: Default::default(),
            trace: None,
            record_errors,
            logfmt: Vec::new(),
            rows: Vec::new(),
            json_paths: Arc::new(json_paths),
            json_spans: Vec::new(),
            one_pass_rows: Vec::new(),
            one_pass_spare: Vec::new(),
            file_generation: Default::default(),
            rules,
            unmatched: self_metrics
                .source_unmatched
                .with_label_values(&[&source.name]),
            key: Vec::with_capacity(256),
        })
    }

    /// The same document rules updating the same-named metrics of `families` (a probe's fresh
    /// families), without compiling anything again; `None` for a pipeline with line rules.
    pub fn with_families(&self, families: &Families) -> Option<Pipeline> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            if !matches!(rule.extract, Extract::Document) {
                return None;
            }
            let updates = rule
                .updates
                .iter()
                .map(|u| {
                    Some(Update {
                        family: families.get(&u.family.name)?.clone(),
                        labels: u.labels.clone(),
                        op: u.op,
                        value: u.value.clone(),
                        seen_in_document: Default::default(),
                        owned: Default::default(),
                        keep_absent: u.keep_absent,
                        on_failure: u.on_failure,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            rules.push(Rule {
                name: rule.name.clone(),
                extract: Extract::Document,
                updates,
                matches: rule.matches.clone(),
                errors: rule.errors.clone(),
                last_failures: vec![String::new(); RuleErrorReason::ALL.len()],
                field_names: rule.field_names.clone(),
                derive: rule
                    .derive
                    .iter()
                    .map(|d| Derive::new(d.from, d.regex.clone(), d.groups.clone()))
                    .collect(),
                derived_names: rule.derived_names.clone(),
                when: rule.when.clone(),
                unquote: rule.unquote.clone(),
                cache: None,
            });
        }
        Some(Pipeline {
            candidates: None,
            source: self.source.clone(),
            unmatched_samples: Default::default(),
            trace: None,
            record_errors: self.record_errors.clone(),
            logfmt: Vec::new(),
            rows: Vec::new(),
            json_paths: self.json_paths.clone(),
            json_spans: Vec::new(),
            one_pass_rows: Vec::new(),
            one_pass_spare: Vec::new(),
            file_generation: Default::default(),
            rules,
            unmatched: self.unmatched.clone(),
            key: Vec::with_capacity(256),
        })
    }
}

fn build_update(
    u: &UpdateConfig,
    names: &FieldNames,
    families: &Families,
    keep_absent: bool,
) -> anyhow::Result<Update> {
    let family = families
        .get(&u.metric)
        .ok_or_else(|| anyhow!("unknown metric {:?}", u.metric))?
        .clone();
    let mut labels = Vec::with_capacity(family.label_names.len());
    for name in family.key_labels() {
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
                Piece::Field(f) => names.resolve(&f).map(Part::Field),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        labels.push(parts);
    }
    let (op, spec) = match (
        &u.inc, &u.add, &u.dec, &u.set, &u.observe, &u.state, &u.total,
    ) {
        (Some(v), ..) | (_, Some(v), ..) => (Op::Add, Some(v)),
        (_, _, Some(v), ..) => (Op::Sub, Some(v)),
        (_, _, _, Some(v), ..) => (Op::Set, Some(v)),
        (_, _, _, _, Some(v), ..) => (Op::Observe, Some(v)),
        (_, _, _, _, _, Some(v), _) => (Op::State, Some(v)),
        (.., Some(v)) => (Op::Total, Some(v)),
        _ => (Op::Add, None),
    };
    let map = u.map.as_ref().map(|m| {
        ValueMap::new(
            m.iter().map(|(k, v)| (k.as_str(), v.0.as_str())),
            u.default.as_ref().map(|d| d.0.as_str()),
        )
    });
    let state_index = |name: &str| {
        family
            .state_names()
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| anyhow!("unknown state {name:?}"))
    };
    let value = match spec {
        None => ValueSource::Constant(1.0),
        Some(ValueSpec::Number(n)) => ValueSource::Constant(*n),
        Some(ValueSpec::Text(t)) => match template::parse(t).map_err(|e| anyhow!(e))?.as_slice() {
            [Piece::Field(f)] => ValueSource::Field {
                field: names.resolve(f)?,
                map,
                convert: u.convert.unwrap_or_default(),
                scale: u.scale.map(Scale::new),
                none: u.none,
                count: u.count.as_deref().map(Box::from),
            },
            [Piece::Literal(l)] if op == Op::State => match &map {
                Some(m) => ValueSource::ConstantState(state_index(
                    m.lookup(l).ok_or_else(|| anyhow!("{l:?} is not mapped"))?,
                )?),
                None => ValueSource::ConstantState(state_index(l.trim())?),
            },
            [Piece::Literal(l)] => ValueSource::Constant(l.trim().parse()?),
            _ => return Err(anyhow!("value {t:?} is not one field")),
        },
    };
    Ok(Update {
        family,
        labels,
        op,
        value,
        seen_in_document: foldhash::HashSet::default(),
        owned: foldhash::HashSet::default(),
        keep_absent,
        on_failure: u.on_failure,
    })
}
