//! The compiled plan of one source: its rules, and what each match does to which metric.
//!
//! Built once from the validated config: line regexes compiled, templates resolved to field
//! indexes, metric families looked up, self-metric handles resolved. A line goes through
//! [`Pipeline::process_line`], which allocates nothing once its label sets have been seen; a
//! document (HTTP body, command output, status file) is parsed and extracted by the source's
//! document worker ([`crate::source::worker`]), and its rows go through
//! [`Pipeline::process_rows`].
//!
//! One idea per file: `build.rs` compiles the plan, `records.rs` runs a record through the
//! rules, `update.rs` applies what a match makes, `trace.rs` keeps what `explain` shows. The
//! plan's types are here, their fields private to this module and its files.

pub mod ahead;
mod build;
mod cache;
mod records;
mod trace;
mod update;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use crate::config::template::{FILE_FIELD, SOURCE_FIELD, STREAM_FIELD, TIME_FIELD};
use crate::config::{Conversion, NoneValue};
use crate::extract::json::JsonExtractor;
use crate::extract::json_record::PathTrie;
use crate::extract::Row;
use crate::matcher::set::Candidates;
use crate::matcher::Matcher;
use crate::registry::Family;
use crate::selfmetrics::{IntCounter, RecordErrorReason, RuleErrorReason};
use crate::value::ValueMap;

pub use build::record_error_reasons;
pub use records::unquote;
pub use trace::{FieldFilter, FieldTest, MatchTrace, RuleTrace, Trace, TraceOptions, UpdateTrace};

/// What a record carries besides its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordContext<'a> {
    /// The path of the file a line came from (the `$__file__` field).
    pub file: &'a str,
    /// The number its reader gave that path (from [`next_file_generation`]: the same for
    /// every record of one path, never given to another), so that the pipeline need not
    /// compare the path with the last record's; `None`: it does.
    pub generation: Option<u64>,
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

/// What one document did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentOutcome {
    /// Matches over all rules.
    pub matches: u64,
    /// Updates whose value did not convert (not a number, unmapped, unknown state, missing).
    pub conversion_errors: u64,
}

/// Where a field's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One `when:` entry: the field and the pattern its text must match.
type When = (FieldRef, records::WhenPattern);

/// One `derive:` entry, compiled.
struct Derive {
    from: FieldRef,
    regex: Regex,
    /// The capture indexes of its named groups, in the order of `Rule::derived_names`.
    groups: Vec<usize>,
    /// From a field that is the same for every record of a file (its path, the source's
    /// name): the last text matched and its groups' texts, so that the regex runs once per
    /// file rather than once per record (a node's pod labels come from the path).
    memo: Option<DeriveMemo>,
}

/// The groups' texts of a [`Derive`] per input seen (a file's path), in two generations of at
/// most [`DERIVE_MEMO_GENERATION`] inputs each: when the current one is full it becomes the
/// previous one (the one before is forgotten), and an input found in the previous one moves to
/// the current one. The files of a node stay while they are written; those of deleted pods
/// are forgotten within two generations, so memory stays bounded as pods come and go.
#[derive(Default)]
struct DeriveMemo {
    current: HashMap<Box<str>, Arc<[String]>, foldhash::fast::FixedState>,
    previous: HashMap<Box<str>, Arc<[String]>, foldhash::fast::FixedState>,
    /// The last record's input and its groups' texts (shared with the map: a switch of
    /// file allocates nothing).
    last: (String, Arc<[String]>),
    /// The [`FileGeneration`] of the record `last` was brought up to: a record of the same
    /// generation has the same file and source, so a file's records in a row cost one
    /// comparison of numbers (the path is compared once per record, by the pipeline, however
    /// many rules derive from it).
    generation: u64,
}

/// Numbers the runs of records from one file, process-wide: a pipeline takes a new one when a
/// record's file is not the last record's. A number is never given twice, so a memo that holds
/// one holds the answer for that file, whichever pipeline it came from. 0 is the empty path's
/// (what memos are primed with and a pipeline starts from).
static FILE_GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A number for a file's path that no other path has (see [`FILE_GENERATIONS`]): a reader
/// that keeps one per path it reads passes it in [`RecordContext::generation`].
pub fn next_file_generation() -> u64 {
    FILE_GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The file of a pipeline's last record and its generation (see [`FILE_GENERATIONS`]).
#[derive(Default)]
struct FileGeneration {
    file: String,
    number: u64,
    /// `number` was given with the last record (and `file` not kept): the next record
    /// without one takes a new number.
    given: bool,
}

impl FileGeneration {
    /// The generation of a record from `file`: the one its reader gave (`given`), else the
    /// last one's when the file is the same.
    fn of(&mut self, file: &str, given: Option<u64>) -> u64 {
        if let Some(number) = given {
            self.number = number;
            self.given = true;
        } else if self.given || self.file != file {
            self.given = false;
            self.file.clear();
            self.file.push_str(file);
            self.number = next_file_generation();
        }
        self.number
    }
}

/// Inputs one generation of a [`DeriveMemo`] holds (up to twice as many files keep their
/// answers; beyond that, the regex runs per record as without a memo).
const DERIVE_MEMO_GENERATION: usize = 1024;

impl Derive {
    fn new(from: FieldRef, regex: Regex, groups: Vec<usize>) -> Derive {
        let memo = matches!(from, FieldRef::File | FieldRef::Source).then(DeriveMemo::default);
        let mut d = Derive {
            from,
            regex,
            groups,
            memo,
        };
        // Primed with the empty text, so that the memo always holds a computed answer.
        let texts = d.texts("");
        if let Some(memo) = d.memo.as_mut() {
            memo.last = (String::new(), texts);
        }
        d
    }

    /// The groups' texts the regex gives for `input` (empty for a group that did not take
    /// part, or when it does not match).
    fn texts(&self, input: &str) -> Arc<[String]> {
        let caps = self.regex.captures(input);
        self.groups
            .iter()
            .map(|&g| {
                let text = caps.as_ref().and_then(|c| c.get(g));
                text.map_or(String::new(), |m| m.as_str().to_owned())
            })
            .collect()
    }

    /// Brings the memo up to the record's file and source (`generation`: the record's
    /// [`FileGeneration`]): nothing when they are the last record's, a lookup when the file
    /// was seen lately, else the regex.
    fn refresh(&mut self, file: &str, source: &str, generation: u64) {
        let Some(memo) = self.memo.as_mut() else {
            return;
        };
        if memo.generation == generation {
            return;
        }
        memo.generation = generation;
        let input = match self.from {
            FieldRef::File => file,
            _ => source,
        };
        if memo.last.0 == input {
            return;
        }
        let known = memo.current.get(input).cloned();
        let texts = match known {
            Some(texts) => texts,
            None => {
                let texts = match self.memo.as_mut().and_then(|m| m.previous.remove(input)) {
                    Some(texts) => texts,
                    None => self.texts(input),
                };
                let Some(memo) = self.memo.as_mut() else {
                    return;
                };
                if memo.current.len() >= DERIVE_MEMO_GENERATION {
                    memo.previous = std::mem::take(&mut memo.current);
                }
                memo.current.insert(input.into(), texts.clone());
                texts
            }
        };
        if let Some(memo) = self.memo.as_mut() {
            memo.last.0.clear();
            memo.last.0.push_str(input);
            memo.last.1 = texts;
        }
    }

    /// The groups' texts for the input of the last [`Self::refresh`], when memoized.
    fn memoized(&self) -> Option<&[String]> {
        self.memo.as_ref().map(|m| &*m.last.1)
    }
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
        /// `count:` — the value is how many of the text's characters are among these.
        count: Option<Box<str>>,
    },
}

/// `scale:` as applied: a division for 10^-k (exact, 42 × 0.001 = 0.042), else a product.
#[derive(Debug, Clone, Copy)]
enum Scale {
    Divide(f64),
    Multiply(f64),
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
    /// `on_failure:` — what the owned series are set to while the source fails.
    on_failure: Option<f64>,
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
    /// Where the updates' series sat for recent label texts (record rules; `None` for
    /// document rules and rules without updates).
    cache: Option<cache::SeriesCache>,
}

impl Rule {
    /// The memo of where a record rule's updates' series sit, keyed on the fields their labels
    /// read.
    fn series_cache(updates: &[Update]) -> Option<cache::SeriesCache> {
        let fields = updates
            .iter()
            .flat_map(|u| u.labels.iter().flatten())
            .filter_map(|p| match p {
                Part::Field(f) => Some(*f),
                Part::Literal(_) => None,
            });
        cache::SeriesCache::new(fields, updates.len())
    }

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
    /// With several line rules: one pass per line over their patterns says which can match,
    /// and only those run their matcher.
    candidates: Option<Candidates>,
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
    /// Per rule (by index, grown on first use), the row the one-pass JSON reader or the
    /// logfmt reader last wrote: its strings are written over by the next record.
    one_pass_rows: Vec<Vec<Row>>,
    /// Strings of those rows' fields absent from the last record, kept for reuse.
    one_pass_spare: Vec<String>,
    /// The last record's file, numbered for the rules' derive memos.
    file_generation: FileGeneration,
    /// The latest records no rule matched (bounded), for the landing page.
    unmatched_samples: std::collections::VecDeque<String>,
    key: Vec<u8>,
    /// `explain`: what each rule did with the first records it matched.
    trace: Option<Trace>,
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

impl Pipeline {
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
}

/// Where a match's own fields are.
enum Base<'a> {
    /// Capture groups of a regex match on a line: each group's span (`matcher::UNSET` when
    /// it did not take part).
    Line {
        line: &'a str,
        slots: &'a [(usize, usize)],
    },
    /// Fields an extractor made (a document's row, a JSON or logfmt record).
    Row(&'a Row),
}

/// Derived fields held without an allocation; a rule with more spills to the heap.
const DERIVED_INLINE: usize = 8;

/// The derived fields of one match, by `FieldRef::Derived` index.
type Derived<'a> = smallvec::SmallVec<[Option<&'a str>; DERIVED_INLINE]>;

/// The fields of one match: its own, the built-in ones, the derived ones.
struct Fields<'a> {
    base: Base<'a>,
    source: &'a str,
    ctx: &'a RecordContext<'a>,
    /// The first derived fields, when the rule's first `derive:` is memoized: its memo's
    /// texts, read where they are (not copied per match: a node's pod labels).
    memoized: &'a [String],
    /// The derived fields after those. Inline up to [`DERIVED_INLINE`] fields: a match's
    /// derived fields cost no allocation (a `Vec` here was a `malloc` and a `free` per rule
    /// per line, a tenth of a node line).
    derived: Derived<'a>,
    /// `unquote:` fields (by index) without their quotes (empty for most rules: nothing made).
    unquoted: &'a [(usize, Cow<'a, str>)],
}

#[cfg(test)]
mod tests {
    use super::{
        next_file_generation, Derive, FieldRef, FileGeneration, Pipeline, RecordContext,
        DERIVE_MEMO_GENERATION,
    };
    use regex::Regex;

    /// The groups' texts as the regex gives them for `input`.
    fn direct(re: &Regex, groups: &[usize], input: &str) -> Vec<String> {
        let caps = re.captures(input);
        groups
            .iter()
            .map(|&g| {
                let m = caps.as_ref().and_then(|c| c.get(g));
                m.map_or(String::new(), |m| m.as_str().to_owned())
            })
            .collect()
    }

    #[test]
    fn a_derive_from_the_path_answers_as_the_regex_whatever_the_order_of_files() {
        let re = Regex::new(r"pods/(?P<ns>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<c>[^/]+)/").unwrap();
        let groups = vec![1, 2, 3];
        // Two rules deriving from the path, numbered by one pipeline's generations; the
        // second is asked only at some records (a rule that does not match every line).
        let mut files = FileGeneration::default();
        let mut d = Derive::new(FieldRef::File, re.clone(), groups.clone());
        let mut sometimes = Derive::new(FieldRef::File, re.clone(), groups.clone());
        let inputs: Vec<String> = (0..3 * DERIVE_MEMO_GENERATION + 300)
            .map(|i| match i % 7 {
                // Not matching: every group empty.
                0 => format!("/var/log/other/{i}.log"),
                _ => format!("/var/log/pods/ns{}_pod{i}_uid/c{}/0.log", i % 3, i % 2),
            })
            .collect();
        // Files interleaved, in runs of one to three records, seen again after others, and
        // more of them than the memo keeps (it forgets and learns again).
        let order = (0..inputs.len())
            .flat_map(|i| [i, i / 2, i, (i * 7919) % inputs.len()])
            .chain(0..50)
            .enumerate()
            .flat_map(|(n, i)| std::iter::repeat_n(i, 1 + n % 3));
        for (n, i) in order.enumerate() {
            let generation = files.of(&inputs[i], None);
            let want = direct(&re, &groups, &inputs[i]);
            d.refresh(&inputs[i], "source", generation);
            assert_eq!(d.memoized().unwrap(), want, "input {}", inputs[i]);
            if n % 5 == 0 || n % 7 == 3 {
                sometimes.refresh(&inputs[i], "source", generation);
                assert_eq!(sometimes.memoized().unwrap(), want, "input {}", inputs[i]);
            }
        }
        // Bounded, however many files came and went.
        let memo = d.memo.as_ref().unwrap();
        assert!(memo.current.len() + memo.previous.len() <= 2 * DERIVE_MEMO_GENERATION);
        // From the source's name: one input, whatever the file.
        let re = Regex::new(r"^(?P<team>[a-z]+)-").unwrap();
        let mut d = Derive::new(FieldRef::Source, re, vec![1]);
        for f in ["/a", "/b", "/a"] {
            d.refresh(f, "search-logs", files.of(f, None));
            assert_eq!(d.memoized().unwrap(), ["search".to_owned()]);
        }
        // From a match's own field: never memoized.
        let d = Derive::new(FieldRef::Index(1), Regex::new("(x)").unwrap(), vec![1]);
        assert!(d.memoized().is_none());
    }

    #[test]
    fn file_generations_are_the_same_for_a_run_of_one_file_and_never_given_twice() {
        let (mut a, mut b) = (FileGeneration::default(), FileGeneration::default());
        assert_eq!(a.of("", None), 0, "the empty path's, as memos are primed");
        let first = a.of("/x", None);
        assert_eq!(a.of("/x", None), first);
        let other = b.of("/x", None);
        assert_ne!(other, first, "another pipeline's run is another generation");
        let back = a.of("/y", None);
        assert_ne!(
            a.of("/x", None),
            first,
            "a file seen again after another is a new run"
        );
        assert!(![0, first, other].contains(&back));
        // A number its reader gave is the generation; the next record without one, even of
        // the path last compared, is a new run (the given one is never taken for it).
        let given = next_file_generation();
        let last = a.of("/x", None);
        assert_eq!(a.of("/x", Some(given)), given);
        let after = a.of("/x", None);
        assert!(![given, last].contains(&after));
        assert_eq!(a.of("/x", None), after);
        assert!(![0, first, other, back, last, given].contains(&next_file_generation()));
    }

    /// Derived fields read where the memo holds them and copied after: a rule whose first
    /// `derive:` is memoized (the path), a second reading the first's field, a third memoized
    /// (the source's name), over records of files interleaved in runs and rules that match
    /// only some lines. Every series is counted as the regexes give its labels.
    #[test]
    fn derived_fields_are_the_regexes_answers_in_every_position() {
        use crate::registry::Families;
        use crate::selfmetrics::SelfMetrics;
        use std::collections::BTreeMap;
        let config = crate::config::load_str(
            r#"version: 1
metrics:
  - {name: m_total, type: counter, help: By pod., labels: [ns, pod, first, team, x]}
  - {name: e_total, type: counter, help: Errors by pod., labels: [pod, team]}
sources:
  - name: search-logs
    file: {paths: [pods/*/*.log]}
    rules:
      - name: all
        regex: 'GET (?P<x>\S+)'
        derive:
          - {from: $__file__, regex: '/pods/(?P<ns>[^_/]+)_(?P<pod>[^_/]+)_'}
          - {from: $ns, regex: '^(?P<first>.)'}
          - {from: $__source__, regex: '^(?P<team>[a-z]+)-'}
        update:
          - {metric: m_total, labels: {ns: $ns, pod: $pod, first: $first, team: $team, x: $x}}
      - name: errors
        regex: ' error'
        derive:
          - {from: $__source__, regex: '^(?P<team>[a-z]+)-'}
          - {from: $__file__, regex: '_(?P<pod>[^_/]+)_'}
        update:
          - {metric: e_total, labels: {pod: $pod, team: $team}}
"#,
            "exporter.yaml",
        )
        .unwrap();
        let self_metrics = SelfMetrics::new();
        let families = Families::build(&config.metrics, &self_metrics);
        let mut p = Pipeline::build(&config.sources[0], &families, &self_metrics).unwrap();
        let files: Vec<String> = (0..40)
            .map(|i| match i % 9 {
                // Not matching the path's regex: its groups (and the one read from them) empty.
                0 => format!("/var/log/other/{i}.log"),
                _ => format!("/var/log/pods/n{}s_pod{i}_uid/app.log", i % 4),
            })
            .collect();
        let mut want_m: BTreeMap<String, u64> = BTreeMap::new();
        let mut want_e: BTreeMap<String, u64> = BTreeMap::new();
        let pod = Regex::new(r"/pods/(?P<ns>[^_/]+)_(?P<pod>[^_/]+)_").unwrap();
        let other_pod = Regex::new(r"_(?P<pod>[^_/]+)_").unwrap();
        let mut rng = crate::test_rng::Rng(11);
        // Each path's number, as a file source's reader gives it (some records come without
        // one: the pipeline compares paths for those).
        let numbers: Vec<u64> = files.iter().map(|_| next_file_generation()).collect();
        for n in 0..6000u64 {
            let i = (rng.next() % files.len() as u64) as usize;
            let file = &files[i];
            for k in 0..=(n % 4) {
                let line = format!("GET /p{k}{}", if (n + k) % 3 == 0 { " error" } else { "" });
                let ctx = RecordContext {
                    file,
                    generation: (n % 5 != 0).then_some(numbers[i]),
                    ..Default::default()
                };
                p.process_line(&line, &ctx);
                let caps = pod.captures(file);
                let group = |g: &str| {
                    caps.as_ref()
                        .map_or("", |c| c.name(g).map_or("", |m| m.as_str()))
                };
                let (ns, podname) = (group("ns"), group("pod"));
                let first = ns.get(..1).unwrap_or("");
                let series = format!(
                    "m_total{{ns=\"{ns}\",pod=\"{podname}\",first=\"{first}\",team=\"search\",x=\"/p{k}\"}}"
                );
                *want_m.entry(series).or_default() += 1;
                if line.contains(" error") {
                    let podname = other_pod
                        .captures(file)
                        .map_or("", |c| c.name("pod").map_or("", |m| m.as_str()));
                    let series = format!("e_total{{pod=\"{podname}\",team=\"search\"}}");
                    *want_e.entry(series).or_default() += 1;
                }
            }
        }
        let text: String = families
            .render()
            .into_iter()
            .map(|(_, t)| String::from_utf8(t).unwrap())
            .collect();
        assert_eq!(
            exposed(&text),
            exposed(&want_m.into_iter().chain(want_e).fold(
                String::new(),
                |mut text, (series, n)| {
                    text.push_str(&format!("{series} {n}\n"));
                    text
                }
            ))
        );
    }

    /// Series and values of an exposition, each series as its name and its labels sorted,
    /// empty ones left out (the same series to Prometheus).
    fn exposed(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let mut labels: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty() && !l.ends_with("=\"\""))
                    .collect();
                labels.sort_unstable();
                (format!("{name}{{{}}}", labels.join(",")), value.to_owned())
            })
            .collect()
    }
}
