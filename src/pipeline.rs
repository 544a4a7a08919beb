//! The compiled plan of one source: its rules, and what each match does to which metric.
//!
//! Built once from the validated config: line regexes compiled, templates resolved to field
//! indexes, metric families looked up, self-metric handles resolved. A line goes through
//! [`Pipeline::process_line`], which allocates nothing once its label sets have been seen; a
//! document (HTTP body, command output, status file) is parsed and extracted by the source's
//! document worker ([`crate::source::worker`]), and its rows go through
//! [`Pipeline::process_rows`].

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use regex::Regex;

use crate::config::template::{self, Piece, FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD};
use crate::config::{
    Conversion, FileFormat, MetricKind, NoneValue, RuleConfig, SourceConfig, UpdateConfig,
    ValueSpec,
};
use crate::extract::json::JsonExtractor;
use crate::extract::json_record::{member_path, value_text, PathTrie};
use crate::extract::Row;
use crate::matcher::Matcher;
use crate::registry::{cut_label_value, Change, Families, Family, KEY_SEPARATOR};
use crate::selfmetrics::{IntCounter, RecordErrorReason, RuleErrorReason, SelfMetrics};
use crate::value::{self, ValueMap};

/// What a record carries besides its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordContext<'a> {
    /// The path of the file a line came from (the `$__file__` field).
    pub file: &'a str,
    /// Container formats: the stream the line was written to (`$__stream__`).
    pub stream: Option<&'a str>,
    /// Container formats: the runtime's time of the line, as written (`$__time__`).
    pub time: Option<&'a str>,
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
    /// Per reason that occurred: the reason and the text of its last failure (bounded).
    pub last_failures: Vec<(&'static str, String)>,
}

/// Longest text kept to show why an update failed or what a record no rule matched was.
pub const SHOWN_TEXT: usize = 240;
/// Records no rule matched kept per source, the latest last.
pub const UNMATCHED_KEPT: usize = 5;

/// `text` cut to [`SHOWN_TEXT`] bytes at a character boundary, with `…` when cut.
fn shown(text: &str, out: &mut String) {
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

/// What one document did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentOutcome {
    /// Matches over all rules.
    pub matches: u64,
    /// Updates whose value did not convert (not a number, unmapped, unknown state, missing).
    pub conversion_errors: u64,
}

/// Where a field's text comes from.
#[derive(Debug, Clone, Copy)]
enum FieldRef {
    /// A regex capture group, or a document rule's field, by index.
    Index(usize),
    /// The path of the file.
    File,
    /// The source's name.
    Source,
    /// A container log's stream.
    Stream,
    /// A container log's time.
    Time,
    /// A field made by the rule's `derive:`, by index.
    Derived(usize),
}

/// One `when:` entry: the field and the regex its text must match.
type When = (FieldRef, Regex);

/// One `derive:` entry, compiled.
struct Derive {
    from: FieldRef,
    regex: Regex,
    /// The capture indexes of its named groups, in the order of `Rule::derived_names`.
    groups: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field(FieldRef),
}

/// How an update's value is read.
#[derive(Debug, Clone)]
enum ValueSource {
    Constant(f64),
    /// A state, by position.
    ConstantState(usize),
    Field {
        field: FieldRef,
        map: Option<ValueMap>,
        convert: Conversion,
        scale: Option<Scale>,
        /// What `-`, empty text or a field that selected nothing does (`none:`).
        none: Option<NoneValue>,
    },
}

/// `scale:` as applied: a division for 10^-k (exact, 42 × 0.001 = 0.042), else a product.
#[derive(Debug, Clone, Copy)]
enum Scale {
    Divide(f64),
    Multiply(f64),
}

impl Scale {
    fn new(factor: f64) -> Scale {
        let inverse = 1.0 / factor;
        if inverse.abs() >= 1.0 && inverse == inverse.round() && inverse.abs() <= 1e18 {
            // 0.001 is not exactly representable; 1000 is.
            let exp = inverse.abs().log10().round();
            if 10f64.powi(exp as i32) == inverse.abs() {
                return Scale::Divide(inverse);
            }
        }
        Scale::Multiply(factor)
    }

    fn apply(self, value: f64) -> f64 {
        match self {
            Scale::Divide(d) => value / d,
            Scale::Multiply(m) => value * m,
        }
    }

    fn factor(self) -> f64 {
        match self {
            Scale::Divide(d) => 1.0 / d,
            Scale::Multiply(m) => m,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Set,
    Observe,
    State,
    /// A counter takes an upstream running total.
    Total,
}

struct Update {
    family: Arc<Family>,
    /// One template per label, in the family's key order.
    labels: Vec<Vec<Part>>,
    op: Op,
    value: ValueSource,
    /// Keys set in the current document (`set`, `state`, `total`): the first match wins.
    seen_in_document: foldhash::HashSet<Box<[u8]>>,
    /// Keys set from the last successful document: those absent from the next one are removed
    /// (unless the rule keeps absent series), a state one goes unknown while the source fails.
    owned: foldhash::HashSet<Box<[u8]>>,
    keep_absent: bool,
}

enum Extract {
    /// A regex (or expanded grok) on records: the first match of each.
    Lines(Matcher),
    /// A record read as JSON, once per record for all such rules: in one pass into the
    /// source's path trie when every field is a member path (the slots of its fields), else
    /// as a document for JSONPath.
    JsonRecord(JsonExtractor, Option<Vec<usize>>),
    /// A record read as logfmt (parsed once per record): the key of each field.
    Logfmt(Vec<String>),
    /// Rows extracted from documents by the source's document worker
    /// ([`crate::extract::document`]).
    Document,
}

struct Rule {
    name: String,
    extract: Extract,
    updates: Vec<Update>,
    matches: IntCounter,
    errors: Vec<(RuleErrorReason, IntCounter)>,
    /// The text of the last failure per reason, in `errors` order (empty: none yet).
    last_failures: Vec<String>,
    /// The rule's field names by index (unnamed regex groups are `None`), for traces.
    field_names: Vec<Option<String>>,
    /// `derive:`, in order.
    derive: Vec<Derive>,
    /// The names of the derived fields, by `FieldRef::Derived` index.
    derived_names: Vec<String>,
    /// `when:`: the match counts only if each field's text matches its regex.
    when: Vec<When>,
    /// `unquote:`: the fields (by index) read without their quotes.
    unquote: Vec<usize>,
}

impl Rule {
    /// The field `name` names in this rule's matches (`explain --where`), if it has one.
    fn field_ref(&self, name: &str) -> Option<FieldRef> {
        match name {
            FILE_FIELD => return Some(FieldRef::File),
            SOURCE_FIELD => return Some(FieldRef::Source),
            STREAM_FIELD => return Some(FieldRef::Stream),
            TIME_FIELD => return Some(FieldRef::Time),
            _ => {}
        }
        if let Some(i) = self.derived_names.iter().position(|n| n == name) {
            return Some(FieldRef::Derived(i));
        }
        self.field_names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .map(FieldRef::Index)
    }
}

/// The compiled rules of one source.
pub struct Pipeline {
    source: String,
    rules: Vec<Rule>,
    unmatched: IntCounter,
    /// Records that could not be read as their format says, by reason (only the reasons the
    /// source can have are exported).
    record_errors: Vec<(RecordErrorReason, IntCounter)>,
    /// Reused per record: logfmt pairs as byte spans, and rows of record rules.
    logfmt: Vec<crate::extract::logfmt::Pair>,
    rows: Vec<Row>,
    /// The member paths of the source's JSON rules, read in one pass per record, and the
    /// spans of their values in the record being read.
    json_paths: Arc<PathTrie>,
    json_spans: Vec<Option<(usize, usize)>>,
    /// The latest records no rule matched (bounded), for the landing page.
    unmatched_samples: std::collections::VecDeque<String>,
    key: Vec<u8>,
    /// `explain`: what each rule did with the first records it matched.
    trace: Option<Trace>,
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
    options: TraceOptions,
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

/// What the landing page shows of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    /// Per rule: matches, failed updates, last failing texts.
    pub rules: Vec<RuleStats>,
    /// Records no rule matched.
    pub unmatched: u64,
    /// The latest of them (bounded), oldest first.
    pub unmatched_samples: Vec<String>,
}

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
        derive.push(Derive {
            from,
            regex,
            groups,
        });
    }
    let when = rule
        .when
        .iter()
        .map(|(field, pattern)| {
            let field = names.resolve(field.strip_prefix('$').unwrap_or(field))?;
            let regex = crate::extract::limits::regex(pattern).map_err(|e| anyhow!(e))?;
            Ok((field, regex))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((derive, when))
}

fn build_extract(
    rule: &RuleConfig,
    lines: bool,
    json_paths: &mut PathTrie,
) -> anyhow::Result<(Extract, FieldNames)> {
    if let Some(pattern) = rule.regex_pattern() {
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
        return Ok((extract, names));
    }
    if let Some(l) = &rule.logfmt {
        let names = FieldNames::new(l.fields.keys().cloned().map(Some).collect(), lines);
        return Ok((Extract::Logfmt(l.fields.values().cloned().collect()), names));
    }
    if let (Some(j), true) = (&rule.json, lines) {
        let extractor =
            JsonExtractor::new(j.for_each.as_deref(), j.fields.values().map(String::as_str))
                .map_err(|e| anyhow!(e))?;
        let names = FieldNames::new(j.fields.keys().cloned().map(Some).collect(), lines);
        let paths: Option<Vec<Vec<String>>> = match j.for_each {
            Some(_) => None,
            None => j.fields.values().map(|e| member_path(e)).collect(),
        };
        let slots = paths.map(|p| p.iter().map(|path| json_paths.insert(path)).collect());
        return Ok((Extract::JsonRecord(extractor, slots), names));
    }
    let fields = [
        rule.json.as_ref().map(|j| &j.fields),
        rule.xml.as_ref().map(|x| &x.fields),
        rule.html.as_ref().map(|h| &h.fields),
    ]
    .into_iter()
    .flatten()
    .next()
    .ok_or_else(|| anyhow!("a rule needs an extractor"))?;
    // Rows come in field-name order (the fields are a sorted map), like the extractors emit.
    let names = FieldNames::new(fields.keys().cloned().map(Some).collect(), false);
    Ok((Extract::Document, names))
}

/// The reasons a source's records can be unreadable (`quarry_source_record_errors_total`),
/// each exported at 0 from the start: `not_json`/`not_logfmt` for a file source with `json:`
/// or `logfmt:` rules, `not_cri`/`not_docker_json`, `record_too_long` and `too_many_streams`
/// with its `format` and `multiline`. Empty for a source that reads no records (page sources,
/// plain lines read by `regex:` or `grok:`): the dashboards leave out what it cannot feed.
pub fn record_error_reasons(source: &SourceConfig) -> Vec<RecordErrorReason> {
    let Some(file) = source.file.as_ref() else {
        return Vec::new();
    };
    let container = matches!(file.format, FileFormat::Cri | FileFormat::Docker);
    let mut reasons = Vec::new();
    if source.rules.iter().any(|r| r.json.is_some()) {
        reasons.push(RecordErrorReason::NotJson);
    }
    if source.rules.iter().any(|r| r.logfmt.is_some()) {
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
        let lines = source.file.is_some();
        let format = source.file.as_ref().map(|f| f.format);
        let container = matches!(format, Some(FileFormat::Cri | FileFormat::Docker));
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
            rules.push(Rule {
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
        Ok(Pipeline {
            source: source.name.clone(),
            unmatched_samples: Default::default(),
            trace: None,
            record_errors,
            logfmt: Vec::new(),
            rows: Vec::new(),
            json_paths: Arc::new(json_paths),
            json_spans: Vec::new(),
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
                    .map(|d| Derive {
                        from: d.from,
                        regex: d.regex.clone(),
                        groups: d.groups.clone(),
                    })
                    .collect(),
                derived_names: rule.derived_names.clone(),
                when: rule.when.clone(),
                unquote: rule.unquote.clone(),
            });
        }
        Some(Pipeline {
            source: self.source.clone(),
            unmatched_samples: Default::default(),
            trace: None,
            record_errors: self.record_errors.clone(),
            logfmt: Vec::new(),
            rows: Vec::new(),
            json_paths: self.json_paths.clone(),
            json_spans: Vec::new(),
            rules,
            unmatched: self.unmatched.clone(),
            key: Vec::with_capacity(256),
        })
    }

    /// Matches, failed updates and their last texts per rule, and records no rule matched,
    /// for the landing page.
    pub fn stats(&self) -> PipelineStats {
        let rules = self
            .rules
            .iter()
            .map(|r| RuleStats {
                name: r.name.clone(),
                matches: r.matches.get(),
                errors: r.errors.iter().map(|(_, c)| c.get()).sum(),
                last_failures: r
                    .errors
                    .iter()
                    .zip(&r.last_failures)
                    .filter(|((_, c), _)| c.get() > 0)
                    .map(|((reason, _), text)| (reason.as_str(), text.clone()))
                    .collect(),
            })
            .collect();
        PipelineStats {
            rules,
            unmatched: self.unmatched.get(),
            unmatched_samples: self.unmatched_samples.iter().cloned().collect(),
        }
    }

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

    /// Counts a record that could not be read as its format says (the record assemblers of
    /// file sources report here too).
    pub fn record_error(&mut self, reason: RecordErrorReason) {
        count_record_error(&self.record_errors, reason);
    }

    /// Runs every rule on one record (a line, or lines joined); returns whether any matched.
    pub fn process_line(&mut self, line: &str, ctx: &RecordContext) -> bool {
        let mut matched = false;
        let ascii = line.is_ascii();
        // Parsed on first use, once per record, whatever number of rules read them.
        let mut json: Option<Option<serde_json::Value>> = None;
        let mut json_fast: Option<bool> = None;
        let mut logfmt_read: Option<bool> = None;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let rows = match &mut rule.extract {
                Extract::Document => continue,
                Extract::Lines(matcher) => {
                    if !matcher.matches(line, ascii) {
                        continue;
                    }
                    None
                }
                Extract::JsonRecord(extractor, slots) => {
                    if let Some(slots) = slots {
                        let read = *json_fast.get_or_insert_with(|| {
                            self.json_paths.read(line, &mut self.json_spans)
                        });
                        if read {
                            let spans = &self.json_spans;
                            let row: Row = slots
                                .iter()
                                .map(|s| spans[*s].and_then(|(a, b)| value_text(&line[a..b])))
                                .collect();
                            self.rows.clear();
                            self.rows.push(row);
                            Some(std::mem::take(&mut self.rows))
                        } else {
                            // Refused by the one-pass reader: the document reader decides.
                            let doc = json.get_or_insert_with(|| {
                                parse_json_record(line, &self.record_errors)
                            });
                            let Some(doc) = doc else { continue };
                            self.rows.clear();
                            extractor.extract(doc, &mut self.rows);
                            Some(std::mem::take(&mut self.rows))
                        }
                    } else {
                        let doc = json
                            .get_or_insert_with(|| parse_json_record(line, &self.record_errors));
                        let Some(doc) = doc else { continue };
                        self.rows.clear();
                        extractor.extract(doc, &mut self.rows);
                        Some(std::mem::take(&mut self.rows))
                    }
                }
                Extract::Logfmt(keys) => {
                    let ok = *logfmt_read.get_or_insert_with(|| {
                        let ok = crate::extract::logfmt::parse(line, &mut self.logfmt);
                        if !ok {
                            count_record_error(&self.record_errors, RecordErrorReason::NotLogfmt);
                        }
                        ok
                    });
                    if !ok {
                        continue;
                    }
                    let row: Row = keys
                        .iter()
                        .map(|k| crate::extract::logfmt::value(line, &self.logfmt, k))
                        .collect();
                    Some(vec![row])
                }
            };
            // A regex's one match, or the rows of a JSON/logfmt rule (no allocation for the
            // former: the hot path of plain logs).
            let single = match &rule.extract {
                Extract::Lines(matcher) => Some(Base::Line { line, matcher }),
                _ => None,
            };
            let row_bases = rows.iter().flatten().map(Base::Row);
            for base in single.into_iter().chain(row_bases) {
                let unquoted = base.unquoted(&rule.unquote);
                let mut fields = Fields {
                    base,
                    source: &self.source,
                    ctx,
                    derived: Vec::new(),
                    unquoted: &unquoted,
                };
                fields.derive(&rule.derive);
                if !fields.passes(&rule.when) {
                    continue;
                }
                matched = true;
                rule.matches.inc();
                if let Some(trace) = &mut self.trace {
                    record(trace, index, Some(line), rule, &fields);
                }
                for update in &mut rule.updates {
                    if let Err(reason) = update.apply(&fields, &mut self.key, false) {
                        let books = (&rule.name, &rule.errors, &mut rule.last_failures);
                        failed(&self.source, books, update, &fields, reason);
                    }
                }
            }
            if let Some(mut rows) = rows {
                rows.clear();
                self.rows = rows;
            }
        }
        if !matched {
            self.unmatched.inc();
            if let Some(trace) = &mut self.trace {
                trace.unmatched += 1;
                if trace.unmatched_shown.len() < trace.limit && !trace.options.selects() {
                    let mut text = String::new();
                    if trace.options.full {
                        text.push_str(line);
                    } else {
                        shown(line, &mut text);
                    }
                    trace.unmatched_shown.push(text);
                }
            }
            // Kept for the landing page: the oldest buffer is reused.
            let mut slot = if self.unmatched_samples.len() >= UNMATCHED_KEPT {
                self.unmatched_samples.pop_front().unwrap_or_default()
            } else {
                String::new()
            };
            shown(line, &mut slot);
            self.unmatched_samples.push_back(slot);
        }
        matched
    }

    /// After a successful document: series an update set from the previous document and not
    /// from this one are removed (the item is gone), unless its rule keeps absent series.
    pub fn retire_absent(&mut self) {
        for update in self.rules.iter_mut().flat_map(|r| r.updates.iter_mut()) {
            if !matches!(update.op, Op::Set | Op::State | Op::Total) {
                continue;
            }
            if !update.keep_absent {
                for key in update.owned.difference(&update.seen_in_document) {
                    update.family.remove(key);
                }
            }
            update.owned = std::mem::take(&mut update.seen_in_document);
        }
    }

    /// Takes the series already in the families of updates `sole_feeder` says no other update
    /// feeds (kept across a reload) as set from the last document, so those the next document
    /// lacks go as they would have without the reload.
    pub fn adopt_existing(&mut self, sole_feeder: impl Fn(&str) -> bool) {
        for update in self.rules.iter_mut().flat_map(|r| r.updates.iter_mut()) {
            if matches!(update.op, Op::Set | Op::State | Op::Total)
                && sole_feeder(&update.family.name)
            {
                update.owned = update.family.keys().into_iter().collect();
            }
        }
    }

    /// While the source fails: every state series it set says `unknown` (it cannot be seen);
    /// other values keep their last reading (their age is in the source's last-success time).
    pub fn mark_unknown(&mut self) {
        for update in self.rules.iter().flat_map(|r| r.updates.iter()) {
            if update.op == Op::State {
                for key in &update.owned {
                    update.family.set_unknown(key);
                }
            }
        }
    }

    /// Applies the rows the document worker extracted, one `Vec<Row>` per rule in rule order.
    pub fn process_rows(&mut self, per_rule: Vec<Vec<Row>>) -> DocumentOutcome {
        let mut outcome = DocumentOutcome::default();
        for (index, (rule, rows)) in self.rules.iter_mut().zip(per_rule).enumerate() {
            if !matches!(rule.extract, Extract::Document) {
                continue;
            }
            for update in &mut rule.updates {
                update.seen_in_document.clear();
            }
            let ctx = RecordContext::default();
            for row in &rows {
                let unquoted = Base::Row(row).unquoted(&rule.unquote);
                let mut fields = Fields {
                    base: Base::Row(row),
                    source: &self.source,
                    ctx: &ctx,
                    derived: Vec::new(),
                    unquoted: &unquoted,
                };
                fields.derive(&rule.derive);
                if !fields.passes(&rule.when) {
                    continue;
                }
                outcome.matches += 1;
                rule.matches.inc();
                if let Some(trace) = &mut self.trace {
                    record(trace, index, None, rule, &fields);
                }
                for update in &mut rule.updates {
                    if let Err(reason) = update.apply(&fields, &mut self.key, true) {
                        let books = (&rule.name, &rule.errors, &mut rule.last_failures);
                        failed(&self.source, books, update, &fields, reason);
                        if reason.is_conversion() {
                            outcome.conversion_errors += 1;
                        }
                    }
                }
            }
        }
        if outcome.matches == 0 {
            self.unmatched.inc();
            if let Some(trace) = &mut self.trace {
                trace.unmatched += 1;
            }
        }
        outcome
    }
}

/// A record parsed as a JSON document (leniently, as page documents are); `None`, counted as
/// `not_json`, when it is not JSON.
fn parse_json_record(
    line: &str,
    record_errors: &[(RecordErrorReason, IntCounter)],
) -> Option<serde_json::Value> {
    let parsed = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .or_else(|| JsonExtractor::parse(line).ok());
    if parsed.is_none() {
        count_record_error(record_errors, RecordErrorReason::NotJson);
    }
    parsed
}

/// Counts a record refused for `reason` (its counter exists when the source can have it).
fn count_record_error(
    record_errors: &[(RecordErrorReason, IntCounter)],
    reason: RecordErrorReason,
) {
    if let Some((_, c)) = record_errors.iter().find(|(r, _)| *r == reason) {
        c.inc();
    }
}

/// Records one match of rule `index` in `trace`: counted, and, when the trace's options
/// select it, counted as selected and (the first `limit`) kept with its fields and what each
/// update makes of them, computed without applying anything.
fn record(trace: &mut Trace, index: usize, line: Option<&str>, compiled: &Rule, fields: &Fields) {
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

/// A rule's name, error counters and last failing texts (borrowed apart from its updates).
type Books<'a> = (
    &'a String,
    &'a Vec<(RuleErrorReason, IntCounter)>,
    &'a mut Vec<String>,
);

/// Counts a failed update, keeps its text for the landing page and logs it at debug.
fn failed(source: &str, books: Books, update: &Update, fields: &Fields, reason: RuleErrorReason) {
    let (rule, errors, last_failures) = books;
    let Some(i) = errors.iter().position(|(r, _)| *r == reason) else {
        return;
    };
    errors[i].1.inc();
    let text = update.offending_text(fields, reason);
    shown(&text, &mut last_failures[i]);
    tracing::debug!(
        source,
        rule = %rule,
        metric = %update.family.name,
        reason = reason.as_str(),
        text = %last_failures[i],
        "update failed"
    );
}

/// Where a match's own fields are.
enum Base<'a> {
    /// Capture groups of a regex match on a line.
    Line { line: &'a str, matcher: &'a Matcher },
    /// Fields an extractor made (a document's row, a JSON or logfmt record).
    Row(&'a Row),
}

/// The fields of one match: its own, the built-in ones, the derived ones.
struct Fields<'a> {
    base: Base<'a>,
    source: &'a str,
    ctx: &'a RecordContext<'a>,
    derived: Vec<Option<&'a str>>,
    /// `unquote:` fields (by index) without their quotes (empty for most rules: nothing made).
    unquoted: &'a [(usize, Cow<'a, str>)],
}

impl<'a> Base<'a> {
    /// Field `i` of the match as it is in the record.
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            // A group that did not take part in the match is empty text, as in the regex crate.
            Base::Line { line, matcher } => Some(matcher.group(i).map_or("", |(s, e)| &line[s..e])),
            Base::Row(row) => row.get(i).and_then(|v| v.as_deref()),
        }
    }

    /// The `unquote:` fields of a match, unquoted (allocating only for text with escapes).
    fn unquoted(&self, fields: &[usize]) -> Vec<(usize, Cow<'a, str>)> {
        fields
            .iter()
            .filter_map(|&i| Some((i, unquote(self.get(i)?))))
            .collect()
    }
}

/// `text` without its surrounding quotes (`"…"`, `'…'`, `` `…` ``), `\<quote>` and `\\`
/// unescaped (other escapes are kept as written); text not quoted is returned as it is.
pub fn unquote(text: &str) -> Cow<'_, str> {
    let quote = match text.as_bytes() {
        [q @ (b'"' | b'\'' | b'`'), .., last] if last == q => *q as char,
        _ => return Cow::Borrowed(text),
    };
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) if n == quote || n == '\\' => out.push(n),
                Some(n) => {
                    out.push(c);
                    out.push(n);
                }
                None => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl<'a> Fields<'a> {
    /// The field's text; `None` when a document field selected nothing.
    fn get(&self, field: FieldRef) -> Option<&'a str> {
        match (&self.base, field) {
            (_, FieldRef::Index(i)) if !self.unquoted.is_empty() => {
                match self.unquoted.iter().find(|(j, _)| *j == i) {
                    Some((_, text)) => Some(text.as_ref()),
                    None => self.base.get(i),
                }
            }
            (base, FieldRef::Index(i)) => base.get(i),
            (_, FieldRef::File) => Some(self.ctx.file),
            (_, FieldRef::Source) => Some(self.source),
            (_, FieldRef::Stream) => self.ctx.stream,
            (_, FieldRef::Time) => self.ctx.time,
            (_, FieldRef::Derived(i)) => self.derived.get(i).copied().flatten(),
        }
    }

    /// Computes the derived fields, in order (a later one may read an earlier one). A regex
    /// that does not match, or a group that did not take part, gives empty text; a field that
    /// selected nothing gives nothing.
    fn derive(&mut self, derive: &[Derive]) {
        for d in derive {
            match self.get(d.from) {
                Some(text) => match d.regex.captures(text) {
                    Some(caps) => {
                        for &g in &d.groups {
                            self.derived
                                .push(Some(caps.get(g).map_or("", |m| m.as_str())));
                        }
                    }
                    None => self.derived.extend(d.groups.iter().map(|_| Some(""))),
                },
                None => self.derived.extend(d.groups.iter().map(|_| None)),
            }
        }
    }

    /// Whether every `when:` field has text its regex matches.
    fn passes(&self, when: &[When]) -> bool {
        when.iter()
            .all(|(f, re)| self.get(*f).is_some_and(|t| re.is_match(t)))
    }
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

    /// What made this update fail with `reason`: the value's text (after `map`, as it was
    /// compared), or what is missing, or the series of a duplicate.
    fn offending_text<'a>(
        &self,
        fields: &Fields<'a>,
        reason: RuleErrorReason,
    ) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        let ValueSource::Field { field, map, .. } = &self.value else {
            return Cow::Borrowed("");
        };
        let Some(text) = fields.get(*field) else {
            return Cow::Borrowed("(the field selected nothing)");
        };
        match reason {
            RuleErrorReason::UnknownState => match map.as_ref().and_then(|m| m.lookup(text)) {
                Some(mapped) if mapped != text => {
                    Cow::Owned(format!("{text} (mapped to {mapped})"))
                }
                _ => Cow::Borrowed(text),
            },
            RuleErrorReason::DuplicateSeries => {
                let mut key = Vec::new();
                self.build_key(fields, &mut key);
                let values: Vec<_> = key
                    .split(|b| *b == KEY_SEPARATOR)
                    .map(String::from_utf8_lossy)
                    .collect();
                Cow::Owned(format!("series {{{}}}", values.join(", ")))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// The update's value; `None` when it reads a value meaning "none" that `none: skip`
    /// says to skip.
    fn value(&self, fields: &Fields) -> Result<Option<f64>, RuleErrorReason> {
        match &self.value {
            ValueSource::Constant(v) => Ok(Some(*v)),
            ValueSource::ConstantState(i) => Ok(Some(*i as f64)),
            ValueSource::Field {
                field,
                map,
                convert,
                scale,
                none,
            } => {
                let text = fields.get(*field);
                if let Some(none) = none {
                    if text.is_none_or(NoneValue::means_none) {
                        return Ok(match none {
                            NoneValue::Skip => None,
                            NoneValue::Value(v) => Some(*v),
                        });
                    }
                }
                let text = text.ok_or(RuleErrorReason::MissingField)?;
                let text = match map {
                    Some(m) => m.lookup(text).ok_or(RuleErrorReason::UnmappedValue)?,
                    None => text,
                };
                if self.op == Op::State {
                    let names = self.family.state_names();
                    return names
                        .iter()
                        .position(|n| n == text.trim())
                        .map(|i| Some(i as f64))
                        .ok_or(RuleErrorReason::UnknownState);
                }
                let convert = if map.is_some() {
                    Conversion::Number
                } else {
                    *convert
                };
                let v =
                    value::convert(text, convert).map_err(|_| RuleErrorReason::ValueNotANumber)?;
                Ok(Some(scale.map_or(v, |s| s.apply(v))))
            }
        }
    }

    fn apply(
        &mut self,
        fields: &Fields,
        key: &mut Vec<u8>,
        in_document: bool,
    ) -> Result<(), RuleErrorReason> {
        let takes_document_value =
            in_document && matches!(self.op, Op::Set | Op::State | Op::Total);
        if takes_document_value {
            // The item is in the document whether or not its value reads: it stays (a state
            // it has but that cannot be read is `unknown`; a number keeps its last value).
            self.build_key(fields, key);
            if !self.seen_in_document.insert(key.as_slice().into()) {
                return Err(RuleErrorReason::DuplicateSeries);
            }
            let value = self.value(fields).and_then(|v| self.refuse_negative(v));
            let value = match value {
                Ok(Some(v)) => v,
                // `none: skip`: the item is there, its value says nothing; nothing changes.
                Ok(None) => return Ok(()),
                Err(e) => {
                    if self.op == Op::State {
                        self.family.set_unknown(key);
                    }
                    return Err(e);
                }
            };
            self.family.apply(key, self.change(value));
            return Ok(());
        }
        let Some(value) = self.value(fields).and_then(|v| self.refuse_negative(v))? else {
            return Ok(());
        };
        self.build_key(fields, key);
        // A full family drops the update; the family counts the drop.
        self.family.apply(key, self.change(value));
        Ok(())
    }

    /// A counter does not go down: a negative increment or total is refused.
    fn refuse_negative(&self, value: Option<f64>) -> Result<Option<f64>, RuleErrorReason> {
        if matches!(self.op, Op::Add | Op::Total)
            && self.family.kind == MetricKind::Counter
            && value.is_some_and(|v| v < 0.0)
        {
            return Err(RuleErrorReason::NegativeCounterIncrement);
        }
        Ok(value)
    }

    fn change(&self, value: f64) -> Change {
        match self.op {
            Op::Add => Change::Add(value),
            Op::Sub => Change::Sub(value),
            Op::Set => Change::Set(value),
            Op::Observe => Change::Observe(value),
            Op::State => Change::State(value as usize),
            // A value below the last is a reset upstream: passed on as one.
            Op::Total => Change::Set(value),
        }
    }

    /// The series key of this match: label values in key order, each cut to the family's
    /// `max_label_value_length` (counted).
    fn build_key(&self, fields: &Fields, key: &mut Vec<u8>) {
        key.clear();
        let max = self.family.max_label_value_length();
        for (i, parts) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            let start = key.len();
            for part in parts {
                match part {
                    Part::Literal(s) => key.extend_from_slice(s.as_bytes()),
                    Part::Field(f) => {
                        key.extend_from_slice(fields.get(*f).unwrap_or("").as_bytes())
                    }
                }
            }
            if cut_label_value(key, start, max) {
                self.family.count_truncated();
            }
        }
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
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unquote_takes_off_the_quotes_and_unescapes_only_the_quote_and_backslash() {
        use super::unquote;
        assert_eq!(unquote(r#""curl/8""#), "curl/8");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(unquote("`x`"), "x");
        assert_eq!(unquote(r#""say \"hi\" \\ \n""#), r#"say "hi" \ \n"#);
        assert_eq!(unquote(r#"'it\'s'"#), "it's");
        // Not quoted, or not closed by the same quote: kept.
        for kept in ["-", "\"", "", r#""a'"#, "plain"] {
            assert_eq!(unquote(kept), kept);
        }
        assert_eq!(unquote(r#""""#), "");
        assert!(matches!(
            unquote(r#""no escapes""#),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    use super::Scale;

    #[test]
    fn powers_of_ten_below_one_divide_exactly_and_others_multiply() {
        let ms = Scale::new(0.001);
        assert!(matches!(ms, Scale::Divide(d) if d == 1000.0));
        assert_eq!(ms.apply(9.0), 0.009);
        assert_eq!(ms.apply(42.0), 0.042);
        assert_eq!(Scale::new(0.000001).apply(1500.0), 0.0015);
        assert_eq!(Scale::new(-0.01).apply(5.0), -0.05);
        assert!(matches!(Scale::new(1024.0), Scale::Multiply(_)));
        assert_eq!(Scale::new(1024.0).apply(2.0), 2048.0);
        assert!(matches!(Scale::new(0.25), Scale::Multiply(_)));
        assert_eq!(Scale::new(0.25).factor(), 0.25);
        assert_eq!(ms.factor(), 0.001);
    }
}
