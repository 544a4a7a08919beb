//! Records from lines: container log formats unwrapped, partial lines merged, multi-line
//! records joined.
//!
//! A file's lines go through two optional stages before the pipeline sees them. The container
//! stage reads each line as CRI (`<time> <stream> <P|F> <text>`, Kubernetes' `/var/log/pods`)
//! or as Docker's json-file object (`{"log": "...\n", "stream": ..., "time": ...}`), and
//! merges the partial lines a runtime splits a long line into (`P` parts up to the `F`; `log`
//! values without their `\n`), per stream. The multiline stage joins lines into one record by
//! a start pattern (a matching line opens a record) or a continuation pattern (a matching line
//! extends the record before it). A record is emitted when the next one starts, when the file
//! ends (closed after rotation, or one-shot), or when the writer pauses for `flush_after`.
//!
//! What is held has not been counted, so it must not be checkpointed as read: [`Assembler::
//! held_from`] is the file offset of the first line held, and the tailer never commits past
//! it. After a restart, reading resumes there and the record is assembled again, whole. With
//! several streams in one file (a container's stdout and stderr), the lines after that offset
//! are not all held: the other streams' records were counted. A [`Replay`] says which lines
//! after the committed offset are held — per stream, from its first held line — so that only
//! those are read again, and every other stream's record stays counted once.
//!
//! What is held is bounded: at most [`MAX_STREAMS`] streams per file (CRI and Docker write two;
//! a line on a further stream is taken as complete and counted `too_many_streams`), each
//! partial line at the line cap and each record at its `max_bytes`.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::config::{FileFormat, FileSourceConfig};
use crate::selfmetrics::RecordErrorReason;

/// Default cap of a multi-line record.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 10;
/// Default pause after which a held multi-line record is emitted.
pub const DEFAULT_FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Most streams one file holds partial lines or records for at once. Container runtimes write
/// two (stdout, stderr); the stream is a field of each line, so without a bound a hostile or
/// broken writer could make the exporter hold a record per distinct value.
pub const MAX_STREAMS: usize = 4;

/// How a file's lines become records (built once per source, shared by its files).
#[derive(Debug)]
pub struct Framing {
    format: FileFormat,
    multiline: Option<Multiline>,
    /// Cap of a line merged from partial lines.
    max_merged: usize,
}

#[derive(Debug)]
struct Multiline {
    /// `true`: `pattern` starts a record; `false`: it continues one.
    starts: bool,
    pattern: Regex,
    max_bytes: usize,
    flush_after: Duration,
}

impl Framing {
    /// The framing a file source's config asks for; `None` for plain lines (no stage).
    pub fn from_config(c: &FileSourceConfig, max_line_length: usize) -> Option<Arc<Framing>> {
        let multiline = c.multiline.as_ref().and_then(|m| {
            let (starts, pattern) = match (&m.start, &m.continue_) {
                (Some(p), _) => (true, p),
                (None, Some(p)) => (false, p),
                (None, None) => return None,
            };
            Some(Multiline {
                starts,
                // Validated when the config loaded.
                pattern: crate::extract::limits::regex(pattern).ok()?,
                max_bytes: m.max_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                flush_after: m.flush_after.unwrap_or(DEFAULT_FLUSH_AFTER),
            })
        });
        if c.format == FileFormat::Plain && multiline.is_none() {
            return None;
        }
        Some(Arc::new(Framing {
            format: c.format,
            multiline,
            max_merged: max_line_length,
        }))
    }

    /// How long a held record waits for more lines, when records are joined.
    pub fn flush_after(&self) -> Option<Duration> {
        self.multiline.as_ref().map(|m| m.flush_after)
    }

    /// The container format (which names the streams).
    pub fn format(&self) -> FileFormat {
        self.format
    }
}

/// The lines after a file's committed offset that are to be read again: those of the streams
/// that held a record there (from each one's first held line), and no other — the other
/// streams' lines before `until` were counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Lines that start before this offset were read before.
    pub until: u64,
    /// The format whose streams `held` names (a replay is only applied under the same format).
    pub format: FileFormat,
    /// Each stream with lines held (not counted yet), and the offset of its first held line.
    pub held: Vec<(String, u64)>,
}

impl Replay {
    /// Whether the line starting at `from` (before `until`) is one held, to be read again.
    /// A line the format cannot read was counted as an error already: not again.
    pub fn rereads(&self, line: &str, from: u64) -> bool {
        if self.held.is_empty() {
            return false;
        }
        let Some(stream) = stream_of(self.format, line) else {
            return false;
        };
        self.held
            .iter()
            .any(|(s, first)| *s == stream && from >= *first)
    }
}

/// The stream a line belongs to under `format` (`""` for plain lines); `None` if the line is
/// not in the format.
pub fn stream_of(format: FileFormat, line: &str) -> Option<std::borrow::Cow<'_, str>> {
    match format {
        FileFormat::Plain => Some("".into()),
        FileFormat::Cri => unwrap_cri(line).map(|u| u.stream.into()),
        FileFormat::Docker => serde_json::from_str::<DockerLine>(line)
            .ok()
            .map(|d| d.stream.unwrap_or_default().into_owned().into()),
    }
}

/// What the assembler hands on.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled<'a> {
    /// A complete record, with the container's stream and time when the format has them.
    Record {
        text: &'a str,
        stream: Option<&'a str>,
        time: Option<&'a str>,
    },
    /// A line or record that could not be read as the format says.
    Error(RecordErrorReason),
}

/// A record being built: its text, the first line's stream and time, where it started.
#[derive(Debug, Default)]
struct Held {
    text: String,
    stream: String,
    time: String,
    from: u64,
    /// It reached its cap: what follows is dropped until the record ends.
    full: bool,
    /// Something was cut from it: counted (`record_too_long`) once, when it is emitted — so
    /// a record assembled again after a restart or reload is not counted twice.
    cut: bool,
}

/// Partial container lines taken from one file's assembler for another's.
#[derive(Debug)]
pub struct Partials(Vec<Held>);

/// The record state of one file.
#[derive(Debug)]
pub struct Assembler {
    framing: Arc<Framing>,
    /// Partial container lines, per stream (at most stdout and stderr in practice).
    partials: Vec<Held>,
    /// The multi-line records being joined, per stream (a stack trace on stderr does not
    /// take in the lines written to stdout meanwhile).
    records: Vec<Held>,
}

/// One line unwrapped from its container format.
struct Unwrapped<'a> {
    text: std::borrow::Cow<'a, str>,
    stream: &'a str,
    time: &'a str,
    partial: bool,
}

#[derive(serde::Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    stream: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    time: Option<std::borrow::Cow<'a, str>>,
}

/// A Docker json-file `log` string: its text without the newline (and a `\r` before it), and
/// whether it is a partial line (no newline: the rest comes in the next object).
fn docker_text(log: &str) -> (&str, bool) {
    match log.strip_suffix('\n') {
        Some(t) => (t.strip_suffix('\r').unwrap_or(t), false),
        None => (log, true),
    }
}

/// A line of a container log in `format` unwrapped exactly as a file source does it (for
/// `suggest`, which merges the partial lines itself to know which sample lines a record
/// came from): its text, its stream, and whether it is partial. `None` for a line that is
/// not in `format` (and for [`FileFormat::Plain`]).
pub fn unwrap_container_line(format: FileFormat, line: &str) -> Option<(String, String, bool)> {
    match format {
        FileFormat::Plain => None,
        FileFormat::Cri => {
            unwrap_cri(line).map(|u| (u.text.into_owned(), u.stream.to_owned(), u.partial))
        }
        FileFormat::Docker => {
            let mut repaired = None;
            let d = crate::extract::json::from_str_lossy::<DockerLine>(line, &mut repaired).ok()?;
            let (text, partial) = docker_text(&d.log);
            Some((
                text.to_owned(),
                d.stream.as_deref().unwrap_or("").to_owned(),
                partial,
            ))
        }
    }
}

/// Where the first space of `rest` is (its length and `false` when it has none), for a field
/// of a few bytes: a byte loop, which ends before a search would be set up.
#[inline]
fn short_field(rest: &str) -> (usize, bool) {
    match rest.bytes().position(|b| b == b' ') {
        Some(i) => (i, true),
        None => (rest.len(), false),
    }
}

fn unwrap_cri(line: &str) -> Option<Unwrapped<'_>> {
    // `<time> <stream> <tag> <text>`, split at its first three spaces (a byte search: the
    // spaces are ASCII, so every cut is at a character boundary). Run once per line of every
    // container log: `str::splitn` cost a twentieth of a node's polling.
    let field = |rest: &str| -> (usize, bool) {
        match memchr::memchr(b' ', rest.as_bytes()) {
            Some(i) => (i, true),
            None => (rest.len(), false),
        }
    };
    let (end, more) = field(line);
    let time = &line[..end];
    if time.is_empty() || !more {
        return None;
    }
    let rest = &line[end + 1..];
    // The stream and the tag are a few bytes: found by looking at them rather than by a
    // search each (its set-up cost more than the scan), `stdout F ` the commonest.
    let (end, more) = short_field(rest);
    let stream = &rest[..end];
    if stream.is_empty() || !more {
        return None;
    }
    let rest = &rest[end + 1..];
    let (end, more) = short_field(rest);
    let tag = &rest[..end];
    // The text may be empty, with or without its separating space.
    let text = if more { &rest[end + 1..] } else { "" };
    // The tag's first `:`-separated part (`F`, or `F:attr=value` with attributes), found by
    // bytes: `str::split` costs more than the rest of the tag's work.
    let tag = tag.as_bytes();
    let flag = &tag[..tag.iter().position(|&b| b == b':').unwrap_or(tag.len())];
    let partial = match flag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Unwrapped {
        text: text.into(),
        stream,
        time,
        partial,
    })
}

impl Assembler {
    /// An empty assembler for one file.
    pub fn new(framing: Arc<Framing>) -> Assembler {
        Assembler {
            framing,
            partials: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The file offset of the first line held (not yet part of an emitted record).
    pub fn held_from(&self) -> Option<u64> {
        self.partials
            .iter()
            .chain(&self.records)
            .map(|h| h.from)
            .min()
    }

    /// Where every partial line and record held starts.
    pub fn held_starts(&self) -> impl Iterator<Item = u64> + '_ {
        self.partials.iter().chain(&self.records).map(|h| h.from)
    }

    /// Each stream holding lines, with the offset of its first held line.
    pub fn held_streams(&self) -> Vec<(String, u64)> {
        let mut held: Vec<(String, u64)> = Vec::new();
        for h in self.partials.iter().chain(&self.records) {
            match held.iter_mut().find(|(s, _)| *s == h.stream) {
                Some((_, from)) => *from = (*from).min(h.from),
                None => held.push((h.stream.clone(), h.from)),
            }
        }
        held
    }

    /// The format whose streams [`Assembler::held_streams`] names.
    pub fn format(&self) -> FileFormat {
        self.framing.format
    }

    /// Whether a multi-line record is held (the flush timeout applies).
    pub fn holds_record(&self) -> bool {
        !self.records.is_empty()
    }

    /// Whether a container line is held whose end is not read yet (a `P` line, a Docker
    /// `log` without its newline).
    pub fn holds_partial(&self) -> bool {
        !self.partials.is_empty()
    }

    /// Takes the partial lines held out of this file's assembler: a rotation (kubelet's, or
    /// Docker's own) put their ends in the file that replaced this one, whose assembler
    /// inherits them ([`Assembler::inherit_partials`]).
    pub fn take_partials(&mut self) -> Partials {
        Partials(std::mem::take(&mut self.partials))
    }

    /// Holds the partial lines of the file this one replaced, as if read at `at` (this
    /// file's offset: a restart before their record ends reads it again from there, without
    /// the part the other file held, and counts it once). A stream already held here, or
    /// one over the stream bound, keeps its own.
    pub fn inherit_partials(&mut self, partials: Partials, at: u64) {
        for mut held in partials.0 {
            if self.partials.len() >= MAX_STREAMS
                || self.partials.iter().any(|p| p.stream == held.stream)
            {
                continue;
            }
            held.from = at;
            self.partials.push(held);
        }
    }

    /// Takes one line of the file that starts at offset `from`.
    pub fn push(&mut self, line: &str, from: u64, emit: &mut dyn FnMut(Assembled)) {
        // Docker writes invalid text as U+FFFD; a lone surrogate escape is read the same way.
        let mut repaired = None;
        let owned;
        let unwrapped = match self.framing.format {
            FileFormat::Plain => Unwrapped {
                text: line.into(),
                stream: "",
                time: "",
                partial: false,
            },
            FileFormat::Cri => match unwrap_cri(line) {
                Some(u) => u,
                None => {
                    emit(Assembled::Error(RecordErrorReason::NotCri));
                    return;
                }
            },
            FileFormat::Docker => {
                match crate::extract::json::from_str_lossy::<DockerLine>(line, &mut repaired) {
                    Ok(d) => {
                        owned = d;
                        let (text, partial) = docker_text(&owned.log);
                        Unwrapped {
                            text: text.into(),
                            stream: owned.stream.as_deref().unwrap_or(""),
                            time: owned.time.as_deref().unwrap_or(""),
                            partial,
                        }
                    }
                    Err(_) => {
                        emit(Assembled::Error(RecordErrorReason::NotDockerJson));
                        return;
                    }
                }
            }
        };
        let slot = self
            .partials
            .iter()
            .position(|p| p.stream == unwrapped.stream);
        let cap = self.framing.max_merged;
        if unwrapped.partial {
            match slot {
                Some(i) => append(&mut self.partials[i], &unwrapped.text, "", cap),
                None if self.partials.len() < MAX_STREAMS => {
                    let mut held = Held {
                        stream: unwrapped.stream.to_owned(),
                        time: unwrapped.time.to_owned(),
                        from,
                        ..Default::default()
                    };
                    append(&mut held, &unwrapped.text, "", cap);
                    self.partials.push(held);
                }
                None => {
                    // One stream too many: this part is not held but taken as a line.
                    emit(Assembled::Error(RecordErrorReason::TooManyStreams));
                    let (stream, time) = (unwrapped.stream, unwrapped.time);
                    self.join(&unwrapped.text, stream, time, from, false, emit);
                }
            }
            return;
        }
        match slot {
            Some(i) => {
                let mut held = self.partials.swap_remove(i);
                append(&mut held, &unwrapped.text, "", cap);
                self.join(
                    &held.text,
                    &held.stream,
                    &held.time,
                    held.from,
                    held.cut,
                    emit,
                );
            }
            None => {
                let (stream, time) = (unwrapped.stream, unwrapped.time);
                self.join(&unwrapped.text, stream, time, from, false, emit)
            }
        }
    }

    /// The multiline stage: a complete line in (`cut`: merged from partial lines and cut at
    /// the line cap), records out.
    fn join(
        &mut self,
        text: &str,
        stream: &str,
        time: &str,
        from: u64,
        cut: bool,
        emit: &mut dyn FnMut(Assembled),
    ) {
        // Borrowed beside `self.records` (no Arc clone per line).
        let framing: &Framing = &self.framing;
        let Some(m) = &framing.multiline else {
            if cut {
                emit(Assembled::Error(RecordErrorReason::RecordTooLong));
            }
            emit(record(text, stream, time, framing.format));
            return;
        };
        let continues = if m.starts {
            !m.pattern.is_match(text)
        } else {
            m.pattern.is_match(text)
        };
        let slot = self.records.iter().position(|r| r.stream == stream);
        if continues {
            if let Some(i) = slot {
                let held = &mut self.records[i];
                held.cut |= cut && !held.full;
                append(held, text, "\n", m.max_bytes);
                return;
            }
        }
        if let Some(i) = slot {
            let done = self.records.remove(i);
            emit_held(&done, framing.format, emit);
        } else if self.records.len() >= MAX_STREAMS {
            // One stream too many: its line is a record of its own.
            emit(Assembled::Error(RecordErrorReason::TooManyStreams));
            let mut alone = Held {
                cut,
                ..Default::default()
            };
            append(&mut alone, text, "", m.max_bytes);
            alone.stream = stream.to_owned();
            alone.time = time.to_owned();
            emit_held(&alone, framing.format, emit);
            return;
        }
        let mut held = Held {
            stream: stream.to_owned(),
            time: time.to_owned(),
            from,
            cut,
            ..Default::default()
        };
        append(&mut held, text, "", m.max_bytes);
        self.records.push(held);
    }

    /// Emits the multi-line records held (one per stream), oldest first: the writer paused,
    /// or the file ends.
    pub fn flush_record(&mut self, emit: &mut dyn FnMut(Assembled)) {
        let mut held_records = std::mem::take(&mut self.records);
        held_records.sort_by_key(|h| h.from);
        for held in held_records {
            emit_held(&held, self.framing.format, emit);
        }
    }

    /// The file ends (closed, or one-shot): partial lines are lines after all, and every
    /// record held is emitted.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Assembled)) {
        let mut partials = std::mem::take(&mut self.partials);
        partials.sort_by_key(|p| p.from);
        for p in partials {
            self.join(&p.text, &p.stream, &p.time, p.from, p.cut, emit);
        }
        self.flush_record(emit);
    }

    /// Forgets what is held (reading starts again elsewhere).
    pub fn abandon(&mut self) {
        self.partials.clear();
        self.records.clear();
    }
}

/// Appends `text` (after `separator` when the record has text), cutting the record at
/// `cap` bytes (at a character boundary): once cut, the rest of the record is dropped; the
/// cut is counted when the record is emitted.
fn append(held: &mut Held, text: &str, separator: &str, cap: usize) {
    if held.full {
        return;
    }
    let sep = if held.text.is_empty() { "" } else { separator };
    if held.text.len() + sep.len() + text.len() <= cap {
        held.text.push_str(sep);
        held.text.push_str(text);
        return;
    }
    held.full = true;
    held.cut = true;
    if held.text.len() + sep.len() < cap {
        held.text.push_str(sep);
        let room = cap - held.text.len();
        held.text.push_str(cut_at(text, room));
    }
}

/// The longest start of `text` of at most `cap` bytes that ends at a character boundary.
fn cut_at(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut room = cap;
    while !text.is_char_boundary(room) {
        room -= 1;
    }
    &text[..room]
}

/// Emits a held record, after the count of its cut when it was cut.
fn emit_held(held: &Held, format: FileFormat, emit: &mut dyn FnMut(Assembled)) {
    if held.cut {
        emit(Assembled::Error(RecordErrorReason::RecordTooLong));
    }
    emit(record(&held.text, &held.stream, &held.time, format));
}

fn record<'a>(text: &'a str, stream: &'a str, time: &'a str, format: FileFormat) -> Assembled<'a> {
    let container = format != FileFormat::Plain;
    Assembled::Record {
        text,
        stream: container.then_some(stream),
        time: container.then_some(time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MultilineConfig;

    fn framing(format: FileFormat, start: Option<&str>, cont: Option<&str>) -> Arc<Framing> {
        let c = FileSourceConfig {
            format,
            multiline: (start.is_some() || cont.is_some()).then(|| MultilineConfig {
                start: start.map(String::from),
                continue_: cont.map(String::from),
                max_bytes: Some(200),
                flush_after: None,
            }),
            ..Default::default()
        };
        Framing::from_config(&c, 100).expect("framing")
    }

    /// Pushes lines (offsets as if each line and its newline were in the file) and returns
    /// what came out, records as `stream|time|text`.
    fn run(a: &mut Assembler, lines: &[&str], out: &mut Vec<String>) {
        let mut at = 0;
        for line in lines {
            a.push(line, at, &mut |e| out.push(shown(e)));
            at += line.len() as u64 + 1;
        }
    }

    fn shown(e: Assembled) -> String {
        match e {
            Assembled::Record { text, stream, time } => {
                format!("{}|{}|{text}", stream.unwrap_or("-"), time.unwrap_or("-"))
            }
            Assembled::Error(r) => format!("error {}", r.as_str()),
        }
    }

    /// The byte search agrees with splitting at the first three spaces (`splitn(4, ' ')`, what
    /// it replaced) on every line made of a few pieces: empty fields, a missing tag or text,
    /// double spaces, tags with attributes, multi-byte text.
    #[test]
    fn unwrap_cri_agrees_with_splitting_at_the_first_three_spaces() {
        fn by_splitn(line: &str) -> Option<(&str, &str, &str, bool)> {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().filter(|t| !t.is_empty())?;
            let stream = parts.next().filter(|s| !s.is_empty())?;
            let tag = parts.next()?;
            let text = parts.next().unwrap_or("");
            let partial = match tag.split(':').next() {
                Some("P") => true,
                Some("F") => false,
                _ => return None,
            };
            Some((time, stream, text, partial))
        }
        let pieces = [
            "",
            " ",
            "2026-12-06T10:00:00.1Z",
            "stdout",
            "F",
            "P",
            "F:x",
            "Q",
            "é ü",
            "a b",
        ];
        let mut lines = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        for sep in [" ", "  ", ""] {
                            let line = [a, b, c, d].join(sep);
                            let got = unwrap_cri(&line)
                                .map(|u| (u.time, u.stream, u.text.into_owned(), u.partial));
                            let want = by_splitn(&line).map(|(t, s, x, p)| (t, s, x.to_owned(), p));
                            assert_eq!(got, want, "{line:?}");
                            lines += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(lines, 30_000);
    }

    #[test]
    fn cri_partials_merge_per_stream_and_bad_lines_are_counted() {
        let mut a = Assembler::new(framing(FileFormat::Cri, None, None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                "2026-11-28T10:00:00.1Z stdout P hello ",
                "2026-11-28T10:00:00.2Z stderr F oops",
                "2026-11-28T10:00:00.3Z stdout P big ",
                "2026-11-28T10:00:00.4Z stdout F world",
                "2026-11-28T10:00:00.5Z stdout F",
                "not a cri line",
            ],
            &mut out,
        );
        assert_eq!(
            out,
            [
                "stderr|2026-11-28T10:00:00.2Z|oops",
                "stdout|2026-11-28T10:00:00.1Z|hello big world",
                "stdout|2026-11-28T10:00:00.5Z|",
                "error not_cri",
            ]
        );
        assert_eq!(a.held_from(), None);
    }

    #[test]
    fn a_held_partial_holds_the_offset_of_its_first_part() {
        let mut a = Assembler::new(framing(FileFormat::Cri, None, None));
        let mut out = Vec::new();
        run(&mut a, &["t stdout F done", "t stdout P part "], &mut out);
        assert_eq!(a.held_from(), Some(16));
        a.finish(&mut |e| out.push(shown(e)));
        assert_eq!(out, ["stdout|t|done", "stdout|t|part "]);
    }

    #[test]
    fn docker_lines_unwrap_and_partials_merge() {
        let mut a = Assembler::new(framing(FileFormat::Docker, None, None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                r#"{"log":"GET / 200\n","stream":"stdout","time":"2026-11-28T10:00:00Z"}"#,
                r#"{"log":"long ","stream":"stdout","time":"2026-11-28T10:00:01Z"}"#,
                r#"{"log":"line \"quoted\" é\n","stream":"stdout","time":"2026-11-28T10:00:02Z"}"#,
                r#"{"log":"crlf\r\n","stream":"stderr","time":"t"}"#,
                r#"{"nolog":1}"#,
                "garbage",
            ],
            &mut out,
        );
        assert_eq!(
            out,
            [
                "stdout|2026-11-28T10:00:00Z|GET / 200",
                "stdout|2026-11-28T10:00:01Z|long line \"quoted\" é",
                "stderr|t|crlf",
                "error not_docker_json",
                "error not_docker_json",
            ]
        );
    }

    #[test]
    fn start_pattern_joins_a_java_stack_trace() {
        let mut a = Assembler::new(framing(FileFormat::Plain, Some(r"^\d{4}-"), None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                "2026-11-28 ERROR boom",
                "java.lang.IllegalStateException: x",
                "\tat a.B.c(B.java:1)",
                "2026-11-28 INFO ok",
            ],
            &mut out,
        );
        assert_eq!(
            out,
            ["-|-|2026-11-28 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)"]
        );
        assert_eq!(a.held_from(), Some(77));
        a.flush_record(&mut |e| out.push(shown(e)));
        assert_eq!(out[1], "-|-|2026-11-28 INFO ok");
        assert_eq!(a.held_from(), None);
    }

    #[test]
    fn continue_pattern_joins_indented_lines_and_a_leading_continuation_stands_alone() {
        let mut a = Assembler::new(framing(FileFormat::Plain, None, Some(r"^\s")));
        let mut out = Vec::new();
        run(
            &mut a,
            &["  orphan", "Traceback:", "  File x", "Next"],
            &mut out,
        );
        assert_eq!(out, ["-|-|  orphan", "-|-|Traceback:\n  File x"]);
    }

    #[test]
    fn records_over_the_cap_keep_their_start_and_are_counted_once() {
        let mut a = Assembler::new(framing(FileFormat::Plain, Some("^S"), None));
        let mut out = Vec::new();
        let long = "x".repeat(90);
        run(&mut a, &["S", &long, &long, &long, "short", "S2"], &mut out);
        assert_eq!(out[0], "error record_too_long");
        // Cut at 200 bytes; the short line after the cut is not taken in (no holes).
        let cut = format!("S\n{long}\n{long}\n{}", "x".repeat(200 - 1 - 2 * 91 - 1));
        assert_eq!(out[1], format!("-|-|{cut}"));
        assert_eq!(out.len(), 2);
        // A first line over the cap is cut too: the record keeps its head.
        let mut out = Vec::new();
        let mut a = Assembler::new(framing(FileFormat::Plain, Some("^S"), None));
        run(
            &mut a,
            &[&format!("S{}", "é".repeat(150)), "more", "S3"],
            &mut out,
        );
        assert_eq!(out[0], "error record_too_long");
        assert_eq!(out[1], format!("-|-|S{}", "é".repeat(99)));
    }

    #[test]
    fn cri_with_multiline_joins_the_unwrapped_lines() {
        let mut a = Assembler::new(framing(FileFormat::Cri, Some("^[A-Z]"), None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                "t1 stdout F Error: x",
                "t2 stdout P   at ",
                "t3 stdout F y",
                "t4 stdout F Ok",
            ],
            &mut out,
        );
        assert_eq!(out, ["stdout|t1|Error: x\n  at y"]);
    }

    /// A writer that names a new stream on every line (hostile or broken) makes the file hold
    /// at most MAX_STREAMS partial lines: the lines beyond are taken whole and counted, in
    /// time linear in the lines (100,000 distinct streams took 27 s and 106 MB before).
    #[test]
    fn streams_held_per_file_are_bounded() {
        let mut a = Assembler::new(framing(FileFormat::Cri, None, None));
        let mut records = 0;
        let mut too_many = 0;
        let mut at = 0;
        for i in 0..100_000 {
            let line = format!("t s{i} P part-{i}");
            a.push(&line, at, &mut |e| match e {
                Assembled::Record { .. } => records += 1,
                Assembled::Error(RecordErrorReason::TooManyStreams) => too_many += 1,
                Assembled::Error(other) => panic!("{other:?}"),
            });
            at += line.len() as u64 + 1;
        }
        assert_eq!(a.held_streams().len(), MAX_STREAMS);
        assert_eq!(too_many, 100_000 - MAX_STREAMS);
        assert_eq!(records, 100_000 - MAX_STREAMS);
        // The streams held still complete.
        let mut out = Vec::new();
        a.push("t s0 F end", at, &mut |e| out.push(shown(e)));
        assert_eq!(out, ["s0|t|part-0end"]);
    }

    /// Held lines are named per stream, from each one's first held line; a replay reads again
    /// only those (the other streams' lines were counted), and a line the format cannot read
    /// was counted as an error already.
    #[test]
    fn a_replay_reads_again_only_the_held_streams_lines() {
        let mut a = Assembler::new(framing(FileFormat::Cri, None, None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                "t stdout P a",    // 0: held
                "t stderr F e1",   // 13
                "t stderr P x",    // 27: held
                "t stdout P b",    // 40: held (stdout from 0)
                "t stderr F done", // 53: stderr's record complete
            ],
            &mut out,
        );
        assert_eq!(out, ["stderr|t|e1", "stderr|t|xdone"]);
        assert_eq!(a.held_streams(), [("stdout".to_owned(), 0)]);
        let replay = Replay {
            until: 69,
            format: FileFormat::Cri,
            held: a.held_streams(),
        };
        assert!(replay.rereads("t stdout P a", 0));
        assert!(!replay.rereads("t stderr F e1", 13));
        assert!(replay.rereads("t stdout P b", 40));
        assert!(!replay.rereads("t stderr F done", 53));
        assert!(!replay.rereads("not cri", 60));
        let nothing = Replay {
            held: Vec::new(),
            ..replay.clone()
        };
        assert!(!nothing.rereads("t stdout P a", 0));
    }

    /// A record cut at its cap is counted when it is emitted, once: assembling the same lines
    /// again (after a restart or reload) is not a second cut until it is emitted.
    #[test]
    fn a_cut_is_counted_when_its_record_is_emitted() {
        let mut a = Assembler::new(framing(FileFormat::Plain, Some("^S"), None));
        let mut out = Vec::new();
        let long = "x".repeat(150);
        run(&mut a, &["S", &long, &long], &mut out);
        assert!(
            out.is_empty(),
            "nothing emitted, nothing counted yet: {out:?}"
        );
        a.flush_record(&mut |e| out.push(shown(e)));
        assert_eq!(out[0], "error record_too_long");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn multiline_records_are_joined_per_stream() {
        let mut a = Assembler::new(framing(FileFormat::Cri, Some("^[A-Z]"), None));
        let mut out = Vec::new();
        run(
            &mut a,
            &[
                "t1 stderr F Exception: x",
                "t2 stdout F GET / 200",
                "t3 stderr F   at a.b",
                "t4 stdout F GET /b 200",
            ],
            &mut out,
        );
        assert_eq!(out, ["stdout|t2|GET / 200"]);
        a.flush_record(&mut |e| out.push(shown(e)));
        assert_eq!(
            out,
            [
                "stdout|t2|GET / 200",
                "stderr|t1|Exception: x\n  at a.b",
                "stdout|t4|GET /b 200"
            ]
        );
    }
}
