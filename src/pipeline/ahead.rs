//! Matching ahead on a second core: one thread runs a source's line matchers over batches of
//! records while the source's own thread reads the next ones and applies the matches, in order.
//!
//! A line's cost is mostly two halves: its rules' matchers (finding the captures) and what a
//! match does (fields, `when`, the updates under the families' locks). The matchers need
//! nothing but the line, so a clone of them ([`LineMatchers`]) can run on another thread;
//! everything that touches a series stays on the source's thread and runs in record order
//! ([`super::Pipeline::process_matched`]), so the counts, the order of a histogram's
//! additions (its sum to the last digit) and a gauge set from the last line are what the
//! sequential path gives. Records are copied into a [`Batch`] (their text and context), sent
//! to the matching thread, and come back with each matching rule's group spans. When that
//! thread is [`BACKLOG`] batches behind (on logs of many rules, matching is most of a line's
//! cost), the source's thread matches the next batch itself: both cores match then, and each
//! side does what it has time for. Batches wait for those before them, at most
//! `2 × IN_FLIGHT` in all, so memory stays bounded whichever side is slower.
//!
//! Used by `one-shot` (a large file read on two cores), only for pipelines whose rules are
//! all line rules (regex, grok) and only without a trace (`explain`).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::{Extract, Pipeline, RecordContext};
use crate::matcher::set::{rule_matches, Candidates};
use crate::matcher::Matcher;

/// Records a batch holds before it is sent.
const BATCH_LINES: usize = 1024;
/// Bytes of record text a batch holds before it is sent (a long record ends a batch early).
const BATCH_BYTES: usize = 128 * 1024;
/// Batches at the matching thread (matched there or not, not yet applied), at most.
const IN_FLIGHT: usize = 4;
/// Batches the matching thread has not matched yet, at most: with more, the source's thread
/// matches the next batch itself.
const BACKLOG: usize = 3;

/// Clones of a pipeline's line matchers (and its rule set, with many rules), to run on
/// another thread.
pub struct LineMatchers {
    matchers: Vec<Matcher>,
    candidates: Option<Candidates>,
}

impl LineMatchers {
    /// Matches `line` with every rule in order (those the set rules out are not asked), as
    /// [`Pipeline::process_line`] does; each matching rule is pushed to `found` with the range
    /// of its groups' spans in `spans`.
    pub fn match_line(
        &mut self,
        line: &str,
        found: &mut Vec<(usize, Range<usize>)>,
        spans: &mut Vec<(usize, usize)>,
    ) {
        let ascii = crate::matcher::is_ascii(line);
        if let Some(candidates) = &mut self.candidates {
            candidates.scan(line);
        }
        for (index, matcher) in self.matchers.iter_mut().enumerate() {
            if !rule_matches(self.candidates.as_ref(), index, matcher, line, ascii) {
                continue;
            }
            let start = spans.len();
            spans.extend_from_slice(matcher.slots());
            found.push((index, start..spans.len()));
        }
    }
}

impl Pipeline {
    /// Clones of the matchers, when every rule of this pipeline is a line rule and no trace is
    /// kept (the only pipelines [`Pipeline::process_matched`] serves); `None` otherwise.
    pub fn line_matchers(&self) -> Option<LineMatchers> {
        if self.trace.is_some() || self.rules.is_empty() {
            return None;
        }
        let matchers = self
            .rules
            .iter()
            .map(|rule| match &rule.extract {
                Extract::Lines(matcher) => Some(matcher.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(LineMatchers {
            matchers,
            candidates: self.candidates.clone(),
        })
    }
}

/// A piece of a batch's buffer, as `u32`s (a batch holds far less than 4 GiB: it is sent at
/// [`BATCH_BYTES`], and a record is at most the source's `max_line_length`, itself bounded).
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const NONE: Span = Span {
        start: u32::MAX,
        end: u32::MAX,
    };

    fn of(range: Range<usize>) -> Span {
        Span {
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    fn in_text(self, text: &str) -> Option<&str> {
        (self.start != u32::MAX).then(|| &text[self.range()])
    }
}

/// Where one record of a batch is (small: a batch holds hundreds).
struct Entry {
    /// Its text in `Batch::text`.
    text: Span,
    /// Its file's path, stream and time in `Batch::context` (`Span::NONE`: no stream, time).
    file: Span,
    /// The number its reader gave the path ([`RecordContext::generation`]).
    generation: Option<u64>,
    stream: Span,
    time: Span,
    /// Its matches in `Batch::found` (set by the matching thread).
    found: Span,
}

/// Records on their way to the matching thread and back.
#[derive(Default)]
struct Batch {
    text: String,
    context: String,
    entries: Vec<Entry>,
    found: Vec<(usize, Range<usize>)>,
    spans: Vec<(usize, usize)>,
    /// The records the matchers panicked on (a bug), by entry, with the panic's message: each
    /// is skipped, as a panic in the pipeline skips its record.
    panicked: Vec<(usize, String)>,
}

impl Batch {
    fn clear(&mut self) {
        self.text.clear();
        self.context.clear();
        self.entries.clear();
        self.found.clear();
        self.spans.clear();
        self.panicked.clear();
    }

    fn push(&mut self, line: &str, ctx: &RecordContext) {
        let text = append(&mut self.text, line);
        // A file's records come in runs: its path is written once per run.
        let file = match self.entries.last() {
            // The same number is the same path (the reader gives one number to one path).
            Some(last) if ctx.generation.is_some() && last.generation == ctx.generation => {
                last.file
            }
            Some(last) if &self.context[last.file.range()] == ctx.file => last.file,
            _ => append(&mut self.context, ctx.file),
        };
        let stream = ctx
            .stream
            .map_or(Span::NONE, |s| append(&mut self.context, s));
        let time = ctx
            .time
            .map_or(Span::NONE, |t| append(&mut self.context, t));
        self.entries.push(Entry {
            text,
            file,
            generation: ctx.generation,
            stream,
            time,
            found: Span::NONE,
        });
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= BATCH_LINES || self.text.len() >= BATCH_BYTES
    }

    /// The matching thread's part: every record matched, in order.
    fn match_all(&mut self, matchers: &mut LineMatchers) {
        let Batch {
            text,
            entries,
            found,
            spans,
            panicked,
            ..
        } = self;
        for (i, entry) in entries.iter_mut().enumerate() {
            let line = &text[entry.text.range()];
            let (found_before, spans_before) = (found.len(), spans.len());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::faults::panic_on_record(line);
                matchers.match_line(line, found, spans)
            }));
            if let Err(payload) = outcome {
                found.truncate(found_before);
                spans.truncate(spans_before);
                panicked.push((i, crate::source::file::panic_message(&*payload)));
            }
            entry.found = Span::of(found_before..found.len());
        }
    }

    /// Hands each record, in order, to `apply` with what was found in it.
    fn apply_all(&self, apply: &mut dyn FnMut(&str, &RecordContext, Option<Found<'_>>)) {
        let mut panicked = self.panicked.iter().peekable();
        for (i, entry) in self.entries.iter().enumerate() {
            let ctx = RecordContext {
                file: &self.context[entry.file.range()],
                generation: entry.generation,
                stream: entry.stream.in_text(&self.context),
                time: entry.time.in_text(&self.context),
            };
            let found = match panicked.next_if(|(j, _)| *j == i) {
                Some((_, why)) => Found::Panicked(why),
                None => Found::Matches(FoundMatches {
                    found: &self.found[entry.found.range()],
                    spans: &self.spans,
                }),
            };
            apply(&self.text[entry.text.range()], &ctx, Some(found));
        }
    }
}

fn append(buffer: &mut String, text: &str) -> Span {
    let start = buffer.len();
    buffer.push_str(text);
    Span::of(start..buffer.len())
}

/// What the matching thread found in one record.
pub enum Found<'b> {
    /// Each matching rule with its groups' spans, in rule order.
    Matches(FoundMatches<'b>),
    /// The matchers panicked on the record (the message).
    Panicked(&'b str),
}

/// The matching rules of one record.
#[derive(Clone, Copy)]
pub struct FoundMatches<'b> {
    found: &'b [(usize, Range<usize>)],
    spans: &'b [(usize, usize)],
}

impl<'b> FoundMatches<'b> {
    /// Each matching rule's index and its groups' spans, in rule order.
    pub fn iter(self) -> impl Iterator<Item = (usize, &'b [(usize, usize)])> {
        self.found
            .iter()
            .map(move |(rule, range)| (*rule, &self.spans[range.clone()]))
    }
}

/// A batch on its way, in record order.
enum Pending {
    /// Sent to the matching thread (which hands batches back in the order it took them).
    AtMatcher,
    /// Matched here, waiting for the batches before it.
    Ready(Batch),
}

/// The source thread's end: batches filled, matched (by the matching thread, or here when it is
/// behind), applied in order.
pub struct MatchAhead {
    /// The matchers' own clone: the reading thread matches a batch itself when the matching
    /// thread is [`BACKLOG`] batches behind (matching is most of a line's cost on logs of many
    /// rules), has [`IN_FLIGHT`] not yet applied, or is gone.
    local: LineMatchers,
    filling: Batch,
    to_matcher: Option<mpsc::Sender<Batch>>,
    matched: mpsc::Receiver<Batch>,
    /// Batches not yet applied, oldest first.
    pending: VecDeque<Pending>,
    /// Batches sent to the matching thread, and those it has matched (it counts them): the
    /// difference is its backlog.
    sent: usize,
    done: Arc<AtomicUsize>,
    /// [`BACKLOG`] (tests set others).
    backlog: usize,
    spare: Vec<Batch>,
    thread: Option<JoinHandle<()>>,
}

/// Batches not yet applied, at most (those at the matching thread and those matched here).
const PENDING: usize = 2 * IN_FLIGHT;

type Apply<'a> = dyn FnMut(&str, &RecordContext, Option<Found<'_>>) + 'a;

impl MatchAhead {
    /// Starts the matching thread for `pipeline`, when its rules allow it
    /// ([`Pipeline::line_matchers`]) and the thread can be made.
    pub fn start(pipeline: &Pipeline) -> Option<MatchAhead> {
        let local = pipeline.line_matchers()?;
        let matchers = pipeline.line_matchers()?;
        MatchAhead::with(local, matchers, BACKLOG)
    }

    /// With the matchers of each side and the backlog at which this side matches batches
    /// itself.
    fn with(local: LineMatchers, mut matchers: LineMatchers, backlog: usize) -> Option<MatchAhead> {
        let (to_matcher, batches) = mpsc::channel::<Batch>();
        let (send_matched, matched) = mpsc::channel::<Batch>();
        let done = Arc::new(AtomicUsize::new(0));
        let counted = done.clone();
        let thread = std::thread::Builder::new()
            .name("quarry-match".into())
            .spawn(move || {
                while let Ok(mut batch) = batches.recv() {
                    batch.match_all(&mut matchers);
                    counted.fetch_add(1, Ordering::Release);
                    if send_matched.send(batch).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(MatchAhead {
            local,
            filling: Batch::default(),
            to_matcher: Some(to_matcher),
            matched,
            pending: VecDeque::new(),
            sent: 0,
            done,
            backlog,
            spare: Vec::new(),
            thread: Some(thread),
        })
    }

    /// Takes one record; applies, in order, those whose matches are known (`apply` is given
    /// `None` for a record it is to match itself).
    pub fn push(&mut self, line: &str, ctx: &RecordContext, apply: &mut Apply<'_>) {
        if line.len() > BATCH_BYTES {
            // A record that would fill batches on its own (`max_line_length` can be set that
            // high) is matched by `apply`, after every record before it.
            self.finish(apply);
            apply(line, ctx, None);
            return;
        }
        self.filling.push(line, ctx);
        if !self.filling.is_full() {
            return;
        }
        let next = self.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.filling, next);
        let backlog = self.sent - self.done.load(Ordering::Acquire);
        let unsent = match &self.to_matcher {
            Some(to) if backlog < self.backlog && self.at_matcher() < IN_FLIGHT => {
                match to.send(batch) {
                    Ok(()) => None,
                    // The matching thread is gone (it catches a panic per record, so this is not
                    // expected): batches are matched here from now on.
                    Err(mpsc::SendError(unsent)) => {
                        self.to_matcher = None;
                        Some(unsent)
                    }
                }
            }
            // The matching thread is behind: this thread matches this batch itself.
            _ => Some(batch),
        };
        match unsent {
            None => {
                self.sent += 1;
                self.pending.push_back(Pending::AtMatcher);
            }
            Some(mut batch) => {
                batch.match_all(&mut self.local);
                self.pending.push_back(Pending::Ready(batch));
            }
        }
        while self.apply_front(self.pending.len() > PENDING, apply) {}
    }

    /// Matches what is being filled and applies every record still pending, in order.
    pub fn finish(&mut self, apply: &mut Apply<'_>) {
        if !self.filling.entries.is_empty() {
            let next = self.spare.pop().unwrap_or_default();
            let mut batch = std::mem::replace(&mut self.filling, next);
            batch.match_all(&mut self.local);
            self.pending.push_back(Pending::Ready(batch));
        }
        while self.apply_front(true, apply) {}
    }

    /// Applies the oldest pending batch if its matches are known, waiting for the matching
    /// thread when `wait`; whether one was applied.
    fn apply_front(&mut self, wait: bool, apply: &mut Apply<'_>) -> bool {
        let mut batch = match self.pending.front_mut() {
            None => return false,
            Some(Pending::Ready(batch)) => std::mem::take(batch),
            Some(Pending::AtMatcher) => {
                let batch = if wait {
                    self.matched.recv().ok()
                } else {
                    self.matched.try_recv().ok()
                };
                match batch {
                    Some(batch) => batch,
                    None if wait => {
                        // Only if the thread ended with batches out, which its loop does not
                        // do (it catches a panic per record): their records are lost, said here.
                        tracing::error!(
                            batches = self.at_matcher(),
                            "the matching thread ended before it handed back all records"
                        );
                        self.pending.retain(|p| matches!(p, Pending::Ready(_)));
                        self.to_matcher = None;
                        return !self.pending.is_empty();
                    }
                    None => return false,
                }
            }
        };
        self.pending.pop_front();
        batch.apply_all(apply);
        batch.clear();
        self.spare.push(batch);
        true
    }

    /// Pending batches at the matching thread (matched there or not).
    fn at_matcher(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p, Pending::AtMatcher))
            .count()
    }
}

impl Drop for MatchAhead {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.to_matcher = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `apply_all` handed on: per record its text, context and matches (rule, texts).
    type Applied = Vec<(
        String,
        String,
        Option<String>,
        Option<String>,
        Vec<(usize, Vec<String>)>,
    )>;

    #[test]
    fn a_batch_hands_back_each_record_in_order_with_its_context_and_matches() {
        let mut matchers = LineMatchers {
            matchers: vec![
                Matcher::new(r"a(?P<n>\d+)").unwrap(),
                Matcher::new(r"(?P<w>b+)(?P<opt>c)?").unwrap(),
            ],
            candidates: None,
        };
        let records = [
            ("a12 bb", "f1", Some("stdout"), Some("t1")),
            ("zz", "f1", None, None),
            ("bbbc a7", "f2", Some("stderr"), Some("t2")),
            ("b", "f1", None, Some("t3")),
        ];
        let mut batch = Batch::default();
        for (line, file, stream, time) in records {
            let ctx = RecordContext {
                file,
                generation: None,
                stream,
                time,
            };
            batch.push(line, &ctx);
        }
        batch.match_all(&mut matchers);
        let mut applied: Applied = Vec::new();
        batch.apply_all(&mut |line, ctx, found| {
            let Some(Found::Matches(found)) = found else {
                panic!("{line}: not matched")
            };
            let matches = found
                .iter()
                .map(|(rule, slots)| {
                    let texts = slots
                        .iter()
                        .map(|&(s, e)| {
                            if (s, e) == crate::matcher::UNSET {
                                "-".to_owned()
                            } else {
                                line[s..e].to_owned()
                            }
                        })
                        .collect();
                    (rule, texts)
                })
                .collect();
            applied.push((
                line.to_owned(),
                ctx.file.to_owned(),
                ctx.stream.map(str::to_owned),
                ctx.time.map(str::to_owned),
                matches,
            ));
        });
        let s = |t: &str| t.to_owned();
        let expected: Applied = vec![
            (
                s("a12 bb"),
                s("f1"),
                Some(s("stdout")),
                Some(s("t1")),
                vec![
                    (0, vec![s("a12"), s("12")]),
                    (1, vec![s("bb"), s("bb"), s("-")]),
                ],
            ),
            (s("zz"), s("f1"), None, None, vec![]),
            (
                s("bbbc a7"),
                s("f2"),
                Some(s("stderr")),
                Some(s("t2")),
                vec![
                    (0, vec![s("a7"), s("7")]),
                    (1, vec![s("bbbc"), s("bbb"), s("c")]),
                ],
            ),
            (
                s("b"),
                s("f1"),
                None,
                Some(s("t3")),
                vec![(1, vec![s("b"), s("b"), s("-")])],
            ),
        ];
        assert_eq!(applied, expected);
    }

    fn two_rules() -> LineMatchers {
        LineMatchers {
            matchers: vec![
                Matcher::new(r"^n=(?P<n>\d+) ").unwrap(),
                Matcher::new(r"(?P<x>x+)$").unwrap(),
            ],
            candidates: None,
        }
    }

    /// Each rule `matchers` finds in `line`, with its groups' spans.
    fn matched(matchers: &mut LineMatchers, line: &str) -> Vec<(usize, Vec<(usize, usize)>)> {
        let (mut found, mut spans) = (Vec::new(), Vec::new());
        matchers.match_line(line, &mut found, &mut spans);
        found
            .into_iter()
            .map(|(r, range)| (r, spans[range].to_vec()))
            .collect()
    }

    /// Per record: its text and each match as (rule, group texts).
    fn described(line: &str, found: impl Iterator<Item = (usize, Vec<(usize, usize)>)>) -> String {
        let mut out = line.to_owned();
        for (rule, slots) in found {
            out.push_str(&format!(" |{rule}:"));
            for (s, e) in slots {
                if (s, e) != crate::matcher::UNSET {
                    out.push_str(&line[s..e]);
                }
                out.push(',');
            }
        }
        out
    }

    #[test]
    fn records_come_out_in_order_whichever_thread_matched_them() {
        // Lines of varied length, some matching neither rule, one longer than a batch.
        let lines: Vec<String> = (0..12_000)
            .map(|n| match n % 7 {
                0 => format!("other line {n}"),
                _ if n == 5_001 => format!("n={n} {}", "x".repeat(BATCH_BYTES + 10)),
                k => format!("n={n} {}", "x".repeat(k * 11)),
            })
            .collect();
        let mut direct = two_rules();
        let expected: Vec<String> = lines
            .iter()
            .map(|line| described(line, matched(&mut direct, line).into_iter()))
            .collect();
        // Backlog 0: every batch matched on this thread; huge: every batch on the other one;
        // 1: both, as the threads' speeds have it.
        for backlog in [0, 1, usize::MAX] {
            let mut ahead = MatchAhead::with(two_rules(), two_rules(), backlog).unwrap();
            let mut local = two_rules();
            let mut got = Vec::new();
            let mut apply = |line: &str, ctx: &RecordContext, found: Option<Found<'_>>| {
                assert_eq!(ctx.file, "f");
                let found: Vec<(usize, Vec<(usize, usize)>)> = match found {
                    Some(Found::Matches(m)) => m.iter().map(|(r, s)| (r, s.to_vec())).collect(),
                    Some(Found::Panicked(why)) => panic!("{why}"),
                    // Too long for a batch: matched by the caller.
                    None => matched(&mut local, line),
                };
                got.push(described(line, found.into_iter()));
            };
            let ctx = RecordContext {
                file: "f",
                generation: None,
                stream: None,
                time: None,
            };
            for line in &lines {
                ahead.push(line, &ctx, &mut apply);
            }
            ahead.finish(&mut apply);
            assert_eq!(got.len(), expected.len(), "backlog {backlog}");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(g == e, "backlog {backlog}, record {i}: {g:.80} != {e:.80}");
            }
        }
    }
}
