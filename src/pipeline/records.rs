//! Per-record extraction: a line (or a document's rows) through every rule — the matcher,
//! JSON (the one-pass reader, else the record parsed once as a document) or logfmt — then
//! the match's fields (own, built-in, unquoted, derived) and the `when` filters.

use std::borrow::Cow;

use super::trace::{record, shown};
use super::update::failed;
use super::{
    Base, Derive, Derived, DocumentOutcome, Extract, FieldRef, Fields, Pipeline, RecordContext,
    When, UNMATCHED_KEPT,
};
use crate::extract::json::JsonExtractor;
use crate::extract::json_record::value_text_into;
use crate::extract::Row;
use crate::matcher::set::rule_matches;
use crate::selfmetrics::{IntCounter, RecordErrorReason};

impl Pipeline {
    /// Counts a record that could not be read as its format says (the record assemblers of
    /// file sources report here too).
    pub fn record_error(&mut self, reason: RecordErrorReason) {
        count_record_error(&self.record_errors, reason);
    }

    /// Runs every rule on one record (a line, or lines joined); returns whether any matched.
    pub fn process_line(&mut self, line: &str, ctx: &RecordContext) -> bool {
        let mut matched = false;
        let ascii = crate::matcher::is_ascii(line);
        // Parsed on first use, once per record, whatever number of rules read them.
        let mut json: Option<Option<serde_json::Value>> = None;
        let mut json_fast: Option<bool> = None;
        let mut logfmt_read: Option<bool> = None;
        let mut generation = None;
        if let Some(candidates) = &mut self.candidates {
            candidates.scan(line);
        }
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let mut one_pass_used = false;
            let rows = match &mut rule.extract {
                Extract::Document => continue,
                Extract::Lines(matcher) => {
                    if !rule_matches(self.candidates.as_ref(), index, matcher, line, ascii) {
                        continue;
                    }
                    None
                }
                Extract::JsonRecord(extractor, slots) => {
                    // Plain member paths: the one-pass reader, unless it refuses the record;
                    // then (and for other queries) the record parsed as a document.
                    let one_pass = slots.as_ref().filter(|_| {
                        *json_fast
                            .get_or_insert_with(|| self.json_paths.read(line, &mut self.json_spans))
                    });
                    if let Some(slots) = one_pass {
                        // One row, its text written into the buffers of this rule's row of
                        // the last record (its own: a row shared with a rule of fewer fields
                        // would lose them, and allocate them again, on every record).
                        let mut rows = own_row(&mut self.one_pass_rows, index);
                        one_pass_row(
                            line,
                            slots,
                            &self.json_spans,
                            &mut rows[0],
                            &mut self.one_pass_spare,
                        );
                        one_pass_used = true;
                        Some(rows)
                    } else {
                        let rows = json_document_rows(
                            line,
                            &mut json,
                            extractor,
                            &self.record_errors,
                            &mut self.rows,
                        );
                        let Some(rows) = rows else { continue };
                        Some(rows)
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
                    // One row in this rule's own buffers, as for the one-pass JSON reader
                    // (a `Vec` and a `String` per field per record were a third of a line).
                    let mut rows = own_row(&mut self.one_pass_rows, index);
                    logfmt_row(
                        line,
                        &self.logfmt,
                        keys,
                        &mut rows[0],
                        &mut self.one_pass_spare,
                    );
                    one_pass_used = true;
                    Some(rows)
                }
            };
            let plan = Plan {
                source: &self.source,
                generation: &mut generation,
                files: &mut self.file_generation,
                key: &mut self.key,
                trace: &mut self.trace,
            };
            let by = match &rows {
                Some(rows) => MatchedBy::Rows(rows),
                None => MatchedBy::OwnMatcher,
            };
            matched |= apply_rule(rule, index, by, line, ctx, plan);
            if let Some(rows) = rows {
                // Kept with their buffers: each use begins by emptying or overwriting them.
                if one_pass_used {
                    self.one_pass_rows[index] = rows;
                } else {
                    self.rows = rows;
                }
            }
        }
        if !matched {
            self.count_unmatched(line);
        }
        matched
    }

    /// [`Pipeline::process_line`] for a line whose line rules were matched already, elsewhere
    /// (by [`super::ahead::LineMatchers`] on another thread): `found` is each matching rule's
    /// index with its groups' spans, in rule order. Only for a pipeline whose rules are all
    /// line rules ([`Pipeline::line_matchers`] gives none for other pipelines); what follows the
    /// match (derive, when, updates, the books) is as in `process_line`, in the same order.
    pub fn process_matched<'f>(
        &mut self,
        line: &str,
        ctx: &RecordContext,
        found: impl IntoIterator<Item = (usize, &'f [(usize, usize)])>,
    ) -> bool {
        let mut matched = false;
        let mut generation = None;
        for (index, slots) in found {
            let Some(rule) = self.rules.get_mut(index) else {
                continue;
            };
            let plan = Plan {
                source: &self.source,
                generation: &mut generation,
                files: &mut self.file_generation,
                key: &mut self.key,
                trace: &mut self.trace,
            };
            matched |= apply_rule(rule, index, MatchedBy::Spans(slots), line, ctx, plan);
        }
        if !matched {
            self.count_unmatched(line);
        }
        matched
    }

    /// Books a record no rule matched: counted, traced, kept among the latest shown.
    fn count_unmatched(&mut self, line: &str) {
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
            let generation = self.file_generation.of(ctx.file, ctx.generation);
            for d in &mut rule.derive {
                d.refresh(ctx.file, &self.source, generation);
            }
            for row in &rows {
                let unquoted = Base::Row(row).unquoted(&rule.unquote);
                let mut fields = Fields {
                    base: Base::Row(row),
                    source: &self.source,
                    ctx: &ctx,
                    memoized: &[],
                    derived: Derived::new(),
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

/// What the rules of a pipeline share while one of them is applied.
struct Plan<'p> {
    source: &'p str,
    /// The record's [`super::FileGeneration`], once a rule with `derive:` asked for it (the
    /// path compared with the last record's once per record, and only when needed).
    generation: &'p mut Option<u64>,
    files: &'p mut super::FileGeneration,
    key: &'p mut Vec<u8>,
    trace: &'p mut Option<super::Trace>,
}

/// Where a rule's match is.
enum MatchedBy<'a> {
    /// In the rule's own matcher (it just matched the line).
    OwnMatcher,
    /// In these group spans of the line (matched elsewhere).
    Spans(&'a [(usize, usize)]),
    /// In these rows (a JSON or logfmt rule).
    Rows(&'a [Row]),
}

/// Applies one rule's match (a line's captures, or each row of a JSON or logfmt rule): its
/// derived fields, its `when`, then its updates; returns whether any of it passed `when`.
#[inline(always)]
fn apply_rule(
    rule: &mut super::Rule,
    index: usize,
    by: MatchedBy<'_>,
    line: &str,
    ctx: &RecordContext,
    plan: Plan<'_>,
) -> bool {
    let Plan {
        source,
        generation,
        files,
        key,
        trace,
    } = plan;
    let mut matched = false;
    if !rule.derive.is_empty() {
        let generation = *generation.get_or_insert_with(|| files.of(ctx.file, ctx.generation));
        for d in &mut rule.derive {
            d.refresh(ctx.file, source, generation);
        }
    }
    // A regex's one match (no allocation: the hot path of plain logs), or the rows.
    let (single, rows) = match (by, &rule.extract) {
        (MatchedBy::OwnMatcher, Extract::Lines(matcher)) => (
            Some(Base::Line {
                line,
                slots: matcher.slots(),
            }),
            &[][..],
        ),
        (MatchedBy::OwnMatcher, _) => (None, &[][..]),
        (MatchedBy::Spans(slots), _) => (Some(Base::Line { line, slots }), &[][..]),
        (MatchedBy::Rows(rows), _) => (None, rows),
    };
    for base in single.into_iter().chain(rows.iter().map(Base::Row)) {
        let unquoted = base.unquoted(&rule.unquote);
        let mut fields = Fields {
            base,
            source,
            ctx,
            memoized: &[],
            derived: Derived::new(),
            unquoted: &unquoted,
        };
        fields.derive(&rule.derive);
        if !fields.passes(&rule.when) {
            continue;
        }
        matched = true;
        rule.matches.inc();
        if let Some(trace) = trace.as_mut() {
            record(trace, index, Some(line), rule, &fields);
        }
        // The same label texts as a recent match: the series where they were.
        let entry = match rule.cache.as_mut() {
            Some(cache) => cache.entry(&fields),
            None => None,
        };
        for (u, update) in rule.updates.iter_mut().enumerate() {
            let applied = match (entry, rule.cache.as_mut()) {
                (Some(e), Some(cache)) => {
                    update.apply_remembered(&fields, key, cache.remembered(e, u))
                }
                _ => update.apply(&fields, key, false),
            };
            if let Err(reason) = applied {
                let books = (&rule.name, &rule.errors, &mut rule.last_failures);
                failed(source, books, update, &fields, reason);
            }
        }
    }
    matched
}

/// The rows rule `index` wrote its one row into on the last record, taken out to be written
/// over (one empty row the first time); they are put back after the rule is applied.
fn own_row(rows_by_rule: &mut Vec<Vec<Row>>, index: usize) -> Vec<Row> {
    if rows_by_rule.len() <= index {
        rows_by_rule.resize_with(index + 1, Vec::new);
    }
    let mut rows = std::mem::take(&mut rows_by_rule[index]);
    if rows.is_empty() {
        rows.push(Row::new());
    }
    rows
}

/// The row of a rule read by the one-pass JSON reader: per field slot, the text of the value
/// at its span (`None`: absent or `null`), written into `row`'s own strings where it has them.
/// The string of a field that is absent this time is kept in `spare`, for the next field that
/// needs one (an absent field does not cost a free, nor its return a `malloc` and regrowth).
fn one_pass_row(
    line: &str,
    slots: &[usize],
    spans: &[Option<(usize, usize)>],
    row: &mut Row,
    spare: &mut Vec<String>,
) {
    // (The same length as the last record's row but for the first: not resized again.)
    if row.len() != slots.len() {
        row.resize(slots.len(), None);
    }
    for (cell, slot) in row.iter_mut().zip(slots) {
        let Some((start, end)) = spans[*slot] else {
            spare.extend(cell.take());
            continue;
        };
        let text = cell.get_or_insert_with(|| spare.pop().unwrap_or_default());
        text.clear();
        if !value_text_into(&line[start..end], text) {
            spare.extend(cell.take());
        }
    }
}

/// The row of a `logfmt:` rule: per key, its value's text (`None`: the record has no such
/// key), written into `row`'s own strings as [`one_pass_row`] does. Not inlined: in
/// `process_line` it moved the JSON rules' code and cost them 3% of CPU with fewer
/// instructions (BENCHMARKS.md, fifteenth round). Its loop is [`one_pass_row`]'s but for
/// the absent cell's shortcut there (no spare string taken and given back); one generic
/// helper for both cost JSON lines 33 instructions more (5,603 → 5,636) and about 1% CPU.
#[inline(never)]
fn logfmt_row(
    line: &str,
    pairs: &[crate::extract::logfmt::Pair],
    keys: &[String],
    row: &mut Row,
    spare: &mut Vec<String>,
) {
    if row.len() != keys.len() {
        row.resize(keys.len(), None);
    }
    for (cell, key) in row.iter_mut().zip(keys) {
        let text = cell.get_or_insert_with(|| spare.pop().unwrap_or_default());
        text.clear();
        if !crate::extract::logfmt::value_into(line, pairs, key, text) {
            spare.extend(cell.take());
        }
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

/// The rows `extractor` selects in a record read as a JSON document, parsed on first use
/// (`doc` keeps it for the record's other rules); `None` when it is not JSON.
fn json_document_rows(
    line: &str,
    doc: &mut Option<Option<serde_json::Value>>,
    extractor: &JsonExtractor,
    record_errors: &[(RecordErrorReason, IntCounter)],
    rows: &mut Vec<Row>,
) -> Option<Vec<Row>> {
    let doc = doc
        .get_or_insert_with(|| parse_json_record(line, record_errors))
        .as_ref()?;
    rows.clear();
    extractor.extract(doc, rows);
    Some(std::mem::take(rows))
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

impl<'a> Base<'a> {
    /// Field `i` of the match as it is in the record.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            // A group that did not take part in the match is empty text, as in the regex crate.
            Base::Line { line, slots } => Some(match slots.get(i) {
                Some(&(s, e)) if (s, e) != crate::matcher::UNSET => &line[s..e],
                _ => "",
            }),
            Base::Row(row) => row.get(i).and_then(|v| v.as_deref()),
        }
    }

    /// The `unquote:` fields of a match, unquoted (allocating only for text with escapes).
    fn unquoted(&self, fields: &[usize]) -> Vec<(usize, Cow<'a, str>)> {
        // Most rules unquote nothing: no iterator set up per match.
        if fields.is_empty() {
            return Vec::new();
        }
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
    #[inline]
    pub(super) fn get(&self, field: FieldRef) -> Option<&'a str> {
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
            (_, FieldRef::Derived(i)) => match self.memoized.get(i) {
                Some(text) => Some(text),
                None => self.derived.get(i - self.memoized.len()).copied().flatten(),
            },
        }
    }

    /// Computes the derived fields, in order (a later one may read an earlier one). A regex
    /// that does not match, or a group that did not take part, gives empty text; a field that
    /// selected nothing gives nothing.
    fn derive(&mut self, derive: &'a [Derive]) {
        for (n, d) in derive.iter().enumerate() {
            if let Some(groups) = d.memoized() {
                // Brought up to this record's file and source by `Derive::refresh`.
                if n == 0 {
                    self.memoized = groups;
                } else {
                    self.derived.extend(groups.iter().map(|g| Some(g.as_str())));
                }
                continue;
            }
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

/// The regex of a `when:` entry. One that is a single literal anchored at both ends
/// (`^request done$`, the usual way to pick one message) is answered by comparing the text
/// with the literal: the regex's answer without the cost of its search.
#[derive(Clone, Debug)]
pub(super) struct WhenPattern {
    regex: regex::Regex,
    exact: Option<String>,
}

impl WhenPattern {
    /// The pattern of `regex` (compiled with the regex crate's default syntax).
    pub(super) fn new(regex: regex::Regex) -> Self {
        let exact = exact_literal(regex.as_str());
        WhenPattern { regex, exact }
    }

    /// Whether `text` matches.
    pub(super) fn is_match(&self, text: &str) -> bool {
        match &self.exact {
            Some(literal) => text == literal,
            None => self.regex.is_match(text),
        }
    }
}

/// The literal `pattern` matches when it is `^literal$` (start and end of the text, as the
/// regex crate reads `^` and `$` without the `m` flag) and nothing else.
fn exact_literal(pattern: &str) -> Option<String> {
    use regex_syntax::hir::{HirKind, Look};
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    match parts
        .iter()
        .map(|h| h.kind())
        .collect::<Vec<_>>()
        .as_slice()
    {
        [HirKind::Look(Look::Start), HirKind::Literal(lit), HirKind::Look(Look::End)] => {
            String::from_utf8(lit.0.to_vec()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// A logfmt row written over the last record's buffers holds exactly this record's values:
    /// keys absent now are `None` (not the last record's text), present ones their own text,
    /// unescaped, whatever came before; the same as values read afresh.
    #[test]
    fn a_logfmt_row_over_reused_buffers_is_the_records_own() {
        use crate::extract::logfmt;
        let keys: Vec<String> = ["level", "msg", "status"].map(String::from).to_vec();
        let records = [
            r#"level=info msg="request done" status=200"#,
            "level=warn",
            r#"msg="a \"quoted\" word" status=503 extra=1"#,
            "",
            "status=201 level=debug msg=",
            r#"level=error msg="x" level=info"#,
        ];
        let (mut row, mut spare, mut pairs) = (super::Row::new(), Vec::new(), Vec::new());
        for line in records {
            assert!(logfmt::parse(line, &mut pairs), "{line}");
            super::logfmt_row(line, &pairs, &keys, &mut row, &mut spare);
            let fresh: Vec<Option<String>> = keys
                .iter()
                .map(|k| logfmt::value(line, &pairs, k))
                .collect();
            assert_eq!(row, fresh, "{line}");
        }
    }

    /// A `when:` pattern compared as text answers as its regex does.
    #[test]
    fn anchored_literal_when_patterns_answer_as_their_regex() {
        use super::{exact_literal, WhenPattern};
        assert_eq!(
            exact_literal("^request done$").as_deref(),
            Some("request done")
        );
        assert_eq!(exact_literal(r"^a\.b \$1$").as_deref(), Some("a.b $1"));
        assert_eq!(exact_literal("^é😀$").as_deref(), Some("é😀"));
        for other in [
            "request done",
            "^request",
            "done$",
            "(?i)^a$",
            "(?m)^a$",
            "^a|b$",
            "^a.$",
            "^$",
            "^a$|^b$",
            "\\A^a$",
        ] {
            assert_eq!(exact_literal(other), None, "{other}");
        }
        let patterns = [
            "^request done$",
            r"^a\.b$",
            "^é$",
            "(?m)^x$",
            "^x",
            "(?i)^x$",
            "^$",
            "^ab?$",
        ];
        let texts = [
            "request done",
            "request done\n",
            "request done ",
            " request done",
            "a.b",
            "aXb",
            "é",
            "x",
            "x\n",
            "X",
            "",
            "a",
            "ab",
            "xy",
        ];
        for p in patterns {
            let regex = regex::Regex::new(p).unwrap();
            let when = WhenPattern::new(regex.clone());
            for t in texts {
                assert_eq!(when.is_match(t), regex.is_match(t), "{p:?} on {t:?}");
            }
        }
    }

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
}
