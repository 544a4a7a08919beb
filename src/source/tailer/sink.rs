//! Where the tailer's output goes ([`Sink`]), the sections its changes are made in
//! ([`Section`]), and what it reports happening to files ([`EventKind`]).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::selfmetrics::RecordErrorReason;
use crate::source::fs::FileId;
use crate::source::identity::Known;
use crate::source::lines::LineStats;

use super::record::FileRecord;

/// What happened to a file, for the log and the self-metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A file appeared and is read from its beginning (or end, at start).
    New,
    /// A file appeared at a path another file had: a rotation.
    Rotated,
    /// A followed file moved to another matched path.
    Renamed,
    /// Resumed where a checkpoint left it.
    Resumed,
    /// A file holds content already read (a copy, or the same file elsewhere): read from where
    /// that content was read to.
    Recognised,
    /// A copy of a live file: not read while the original is intact.
    Shadowed,
    /// A shadow's original was truncated or went away: the shadow is read from there.
    TailRecovered,
    /// The file shrank below the read offset, or its head changed: its content was replaced.
    Truncated,
    /// No longer matched: read to its end, then closed.
    Draining,
    /// Drained and closed.
    Closed,
    /// A draining file shrank or was replaced: closed without reading the new content.
    ReplacedWhileDraining,
    /// A checkpointed file was not found again after a restart: its unread rest is lost.
    Lost,
    /// A compressed file (gzip, zstd, bzip2, xz) matched by the globs: never read as text.
    SkippedCompressed,
}

impl EventKind {
    /// The label value in `quarry_source_file_events_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Rotated => "rotated",
            EventKind::Renamed => "renamed",
            EventKind::Resumed => "resumed",
            EventKind::Recognised => "recognised",
            EventKind::Shadowed => "shadowed",
            EventKind::TailRecovered => "tail_recovered",
            EventKind::Truncated => "truncated",
            EventKind::Draining => "draining",
            EventKind::Closed => "closed",
            EventKind::ReplacedWhileDraining => "replaced_while_draining",
            EventKind::Lost => "lost",
            EventKind::SkippedCompressed => "skipped_compressed",
        }
    }

    /// Every kind, so each can be exported at 0 from the start.
    pub const ALL: [EventKind; 13] = [
        EventKind::New,
        EventKind::Rotated,
        EventKind::Renamed,
        EventKind::Resumed,
        EventKind::Recognised,
        EventKind::Shadowed,
        EventKind::TailRecovered,
        EventKind::Truncated,
        EventKind::Draining,
        EventKind::Closed,
        EventKind::ReplacedWhileDraining,
        EventKind::Lost,
        EventKind::SkippedCompressed,
    ];
}

/// Where the tailer's output goes: lines, read statistics, events, and the records a checkpoint
/// keeps. Every change of lines counted and offsets kept happens between `begin` and `end` (a
/// checkpoint is taken only outside such sections, so it always pairs offsets with the counts
/// of exactly the lines before them); no read of file data happens inside one. The tailer
/// calls `begin` and `end` only through a [`Section`], which pairs them.
pub trait Sink {
    /// A section of changes starts (sections may nest: only the outermost one counts).
    fn begin(&mut self) {}
    /// The section ends.
    fn end(&mut self) {}
    /// The checkpoint record of a file changed (`None`: the file is no longer followed).
    fn record(&mut self, _id: FileId, _record: Option<FileRecord>) {}
    /// The remembered gone content (and checkpoint records still unmatched) changed.
    fn remembered(&mut self, _gone: Vec<Arc<Known>>, _restored: &[FileRecord]) {}
    /// A checkpoint should be written now, before going on (called outside sections): a new
    /// file is about to be read (so a restart knows it even if it is renamed away before the
    /// next checkpoint), or lines were counted from a file that nothing but this tailer's
    /// descriptor keeps (deleted), whose content a crash would take with it.
    fn durable(&mut self) {}
    /// A complete record of `path` (a line, or lines joined), with the container's stream and
    /// time when its format has them.
    fn line(&mut self, line: &str, path: RecordPath<'_>, stream: Option<&str>, time: Option<&str>);
    /// A line could not be read as the file's format says, or a record outgrew its cap.
    fn record_error(&mut self, _reason: RecordErrorReason) {}
    /// `bytes` were read from `path`, giving `stats`.
    fn read(&mut self, path: &str, bytes: u64, stats: LineStats);
    /// Something happened to a file.
    fn event(&mut self, kind: EventKind, path: &str, detail: &str);
    /// A file could not be opened or read (`None` clears the file's error).
    fn error(&mut self, path: &str, error: Option<&str>);
}

/// The path a record was read under, with the number the tailer gave that name of the file
/// (from [`crate::pipeline::next_file_generation`]: the same for every record read under it,
/// never given to another path or to the same path again after a rename), so that the
/// pipeline knows a file's run of records without comparing paths.
#[derive(Debug, Clone, Copy)]
pub struct RecordPath<'a> {
    /// The path as text (invalid UTF-8 replaced), as `$__file__` gives it.
    pub text: &'a str,
    /// The number of this name of the file.
    pub generation: u64,
}

/// A section of a [`Sink`]'s changes: [`Sink::begin`] when it opens, [`Sink::end`] when it is
/// dropped, so no return, `?` or panic can leave one open (the file source's sink holds the
/// checkpoint gate for reading while a section is open: one left open would stall every
/// checkpoint). The sink is used through it while it is open.
pub struct Section<'s, S: Sink + ?Sized> {
    sink: &'s mut S,
}

impl<'s, S: Sink + ?Sized> Section<'s, S> {
    /// Begins a section of `sink`.
    pub fn open(sink: &'s mut S) -> Section<'s, S> {
        sink.begin();
        Section { sink }
    }
}

impl<S: Sink + ?Sized> Deref for Section<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        self.sink
    }
}

impl<S: Sink + ?Sized> DerefMut for Section<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        self.sink
    }
}

impl<S: Sink + ?Sized> Drop for Section<'_, S> {
    fn drop(&mut self) {
        self.sink.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts how deep in sections it is, and how many were begun.
    #[derive(Default)]
    struct Depth {
        depth: i32,
        begun: u32,
        events_inside: u32,
    }

    impl Sink for Depth {
        fn begin(&mut self) {
            self.depth += 1;
            self.begun += 1;
        }
        fn end(&mut self) {
            self.depth -= 1;
        }
        fn line(&mut self, _: &str, _: RecordPath<'_>, _: Option<&str>, _: Option<&str>) {}
        fn read(&mut self, _: &str, _: u64, _: LineStats) {}
        fn event(&mut self, _: EventKind, _: &str, _: &str) {
            if self.depth > 0 {
                self.events_inside += 1;
            }
        }
        fn error(&mut self, _: &str, _: Option<&str>) {}
    }

    fn changes(sink: &mut impl Sink, fail: bool) -> Result<(), ()> {
        let mut section = Section::open(sink);
        section.event(EventKind::New, "a.log", "");
        if fail {
            Err(())?;
        }
        section.event(EventKind::Closed, "a.log", "");
        drop(section);
        sink.event(EventKind::Lost, "a.log", "outside");
        Ok(())
    }

    #[test]
    fn a_section_ends_on_every_way_out() {
        let mut sink = Depth::default();
        changes(&mut sink, false).unwrap();
        assert_eq!((sink.depth, sink.begun, sink.events_inside), (0, 1, 2));
        changes(&mut sink, true).unwrap_err();
        assert_eq!((sink.depth, sink.begun, sink.events_inside), (0, 2, 3));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _section = Section::open(&mut sink);
            panic!("a bug inside a section");
        }));
        assert!(panicked.is_err());
        assert_eq!((sink.depth, sink.begun), (0, 3));
    }
}
