//! One followed file: its descriptor, what was read of it (offsets, head, marker), its line
//! splitter and record assembler, and the record a checkpoint keeps of it.

use std::path::PathBuf;
use std::time::Instant;

use crate::config::FileFormat;
use crate::source::fs::{FileId, Handle};
use crate::source::identity::{self, Digest, Known, HEAD_LEN, MARKER_LEN};
use crate::source::lines::LineSplitter;
use crate::source::records::{Assembled, Assembler, Replay};

use super::phase::Phase;
use super::record::{FileRecord, SavedPhase};
use super::sink::{RecordPath, Sink};

/// One followed file.
pub struct Tracked<H> {
    pub id: FileId,
    /// Changed by [`Tracked::rename`] only, which keeps `path_text` and `path_generation` in
    /// step.
    pub path: PathBuf,
    /// `path` as text (lossy), made once: every read names the file to the sink (shared, so
    /// a read holds it while the file changes).
    pub(super) path_text: std::sync::Arc<str>,
    /// The number given to `path_text` (see [`RecordPath`]): new with every name.
    pub(super) path_generation: u64,
    /// The path is a symlink (another path to the same file is preferred for naming it).
    pub(super) symlink: bool,
    /// `None`: read in turns (opened for each pass: over the descriptor budget).
    pub(super) handle: Option<H>,
    /// Bytes handed to the splitter.
    pub(super) read: u64,
    pub(super) lines: LineSplitter,
    /// Lines into records, when the source frames them (container formats, multiline).
    pub(super) records: Option<Assembler>,
    /// Reading again from a committed offset behind which some streams' records were counted
    /// (a restart or reload while another stream held a record): only the held lines of the
    /// region are read again.
    pub(super) replay: Option<Replay>,
    /// With records: the marker at the end of the last complete line (which may be past the
    /// committed offset while a record is held), and that offset.
    pub(super) line_marker: (u64, Digest),
    /// With records: the marker at the start of each partial line or record held, taken
    /// when it started. With several streams the committed offset can move to a record held
    /// since an earlier chunk (another stream's record ended); its marker is here.
    pub(super) held_markers: Vec<(u64, Digest)>,
    /// The first `min(size, HEAD_LEN)` bytes, as far as known.
    pub(super) head: Vec<u8>,
    /// The last `min(read, MARKER_LEN)` bytes before `read`.
    pub(super) tail: Vec<u8>,
    /// Digest of the bytes before `committed()`, and the offset it was taken at.
    pub(super) marker: Digest,
    pub(super) marker_at: u64,
    pub size: u64,
    pub phase: Phase,
    pub(super) last_data: Instant,
    /// For a shadow: how far its content was checked to equal the original's.
    pub(super) verified: u64,
    /// Under a directory that could not be listed in the last scan.
    pub unseen: bool,
    /// The path it was followed under before it was renamed (out of the globs: draining; or
    /// within them): the file now at that path replaced it (see `Tailer::inherit_partials`).
    pub(super) left: Option<PathBuf>,
    /// (size, ctime, read) when the content was last found not replaced: while they stay the
    /// same the head is not read again (an idle file costs one fstat per scan).
    pub(super) checked: std::cell::Cell<Option<(u64, u64, u64)>>,
    /// The digest of `head` when it was last taken. The head only grows, by appending, so a
    /// digest of its length is its digest: each read's checkpoint record of the file reuses it
    /// instead of hashing up to a head again (500 SHA-256 a poll on a node).
    pub(super) head_digest: std::cell::Cell<Option<Digest>>,
}

impl<H> Tracked<H> {
    /// The first bytes as far as known (the simulation tells with them whether the file's
    /// content is still the one the offsets are into).
    #[cfg(test)]
    pub fn head_bytes(&self) -> &[u8] {
        &self.head
    }

    /// The end of the last complete record read: where reading resumes after a restart (a
    /// record still being assembled is read again then).
    pub fn committed(&self) -> u64 {
        let lines = self.read.saturating_sub(self.lines.pending());
        match self.records.as_ref().and_then(Assembler::held_from) {
            Some(held) => held.min(lines),
            None => lines,
        }
    }

    /// The file's first bytes (up to a head): as read, or — when it was not read that far
    /// yet — as it holds them now (through its descriptor); and whether they are all it holds
    /// (it is shorter than a head).
    pub(super) fn first_bytes(&self) -> (std::borrow::Cow<'_, [u8]>, bool)
    where
        H: Handle,
    {
        if (self.head.len() as u64) < HEAD_LEN && self.phase == Phase::Following {
            let now = self
                .handle
                .as_ref()
                .and_then(|h| identity::read_range(h, 0, HEAD_LEN).ok())
                .filter(|b| b.len() >= self.head.len() && b.starts_with(&self.head));
            if let Some(b) = now {
                let whole = (b.len() as u64) < HEAD_LEN;
                return (b.into(), whole);
            }
        }
        ((&self.head[..]).into(), false)
    }

    /// The digest of the head as it is now (see `head_digest`).
    pub(super) fn head_digest(&self) -> Digest {
        let digest = match self.head_digest.get() {
            Some(d) if d.len as usize == self.head.len() => d,
            _ => {
                let d = Digest::of(&self.head);
                self.head_digest.set(Some(d));
                d
            }
        };
        // Every test and simulation run checks that the head was only appended to.
        debug_assert_eq!(digest, Digest::of(&self.head), "{}", self.path.display());
        digest
    }

    /// The end of the last complete line read.
    pub(super) fn lines_end(&self) -> u64 {
        self.read.saturating_sub(self.lines.pending())
    }

    /// The format the file's streams are named in.
    pub(super) fn format(&self) -> FileFormat {
        self.records
            .as_ref()
            .map_or(FileFormat::Plain, Assembler::format)
    }

    /// Which lines after the committed offset a restart must read again (`None`: all of
    /// them): the held streams' from their first held line — those of the assembler and,
    /// during a replay, those not reached yet. Plain lines are one stream: all are held.
    pub(super) fn replay_now(&self) -> Option<Replay> {
        let format = self.format();
        if format == FileFormat::Plain {
            return None;
        }
        let lines = self.lines_end();
        let mut held = self
            .records
            .as_ref()
            .map(Assembler::held_streams)
            .unwrap_or_default();
        let mut until = lines;
        if let Some(r) = self.replay.as_ref().filter(|r| r.until > lines) {
            until = r.until;
            for (stream, first) in &r.held {
                if *first >= lines && !held.iter().any(|(s, _)| s == stream) {
                    held.push((stream.clone(), *first));
                }
            }
        }
        (until > self.committed()).then_some(Replay {
            until,
            format,
            held,
        })
    }

    /// Reads again from the committed offset under `replay` (from a checkpoint, a copy's
    /// original, or a reload). Held lines named in another format than this file's now (the
    /// config changed) cannot be told apart: the region is skipped, as counted.
    pub(super) fn set_replay(&mut self, replay: Option<&Replay>) {
        self.replay = replay.map(|r| {
            let mut r = r.clone();
            if r.format != self.format() {
                r.held.clear();
                r.format = self.format();
            }
            r
        });
    }

    /// Emits every record held (the file ends: closed, replaced, or one-shot). In a section.
    pub(super) fn finish_records(&mut self, sink: &mut impl Sink) {
        let path = RecordPath {
            text: &self.path_text,
            generation: self.path_generation,
        };
        let stats = match &mut self.records {
            Some(records) => {
                let stats = self.lines.finish(|line| {
                    records.push(line, 0, &mut |a| deliver(a, path, sink));
                });
                records.finish(&mut |a| deliver(a, path, sink));
                stats
            }
            None => self.lines.finish(|line| sink.line(line, path, None, None)),
        };
        sink.read(path.text, 0, stats);
    }

    /// Whether no descriptor is held (read in turns).
    pub fn in_turns(&self) -> bool {
        self.handle.is_none()
    }

    /// The path as text (invalid UTF-8 replaced), as the sink and events name the file.
    pub(super) fn path_str(&self) -> &str {
        &self.path_text
    }

    /// The path as text, shared: held while the file changes (a read's error messages).
    pub(crate) fn path_shared(&self) -> std::sync::Arc<str> {
        self.path_text.clone()
    }

    /// Follows the file under `path` from now on.
    pub(super) fn rename(&mut self, path: PathBuf) {
        self.path_text = path.to_string_lossy().into();
        self.path_generation = crate::pipeline::next_file_generation();
        self.path = path;
    }

    /// The marker at `offset` (at or after `start`, where `chunk` was read): the end of the
    /// old tail, then the chunk's start. Called before the tail takes the chunk in.
    pub(super) fn digest_before(&self, offset: u64, start: u64, chunk: &[u8]) -> Digest {
        let in_chunk = (offset - start) as usize;
        let want = offset.min(MARKER_LEN) as usize;
        let from_chunk = in_chunk.min(want);
        let from_tail = want - from_chunk;
        let mut bytes = Vec::with_capacity(want);
        bytes.extend_from_slice(&self.tail[self.tail.len() - from_tail..]);
        bytes.extend_from_slice(&chunk[in_chunk - from_chunk..in_chunk]);
        Digest::of(&bytes)
    }

    /// Emits the multi-line record held (complete: the writer paused, or the content ends);
    /// the marker follows the committed offset. In a section.
    pub(super) fn flush_record(&mut self, sink: &mut impl Sink) {
        let path = RecordPath {
            text: &self.path_text,
            generation: self.path_generation,
        };
        let Some(records) = &mut self.records else {
            return;
        };
        records.flush_record(&mut |a| deliver(a, path, sink));
        self.advance_marker();
    }

    /// Records held were emitted: the committed offset moved to the end of the lines, whose
    /// marker was kept for this.
    pub(super) fn advance_marker(&mut self) {
        self.keep_held_markers(None);
        let committed = self.committed();
        if committed == self.marker_at {
            return;
        }
        let kept = self.held_markers.iter().find(|(at, _)| *at == committed);
        if let Some((_, d)) = kept {
            self.marker = *d;
            self.marker_at = committed;
        } else if committed == self.line_marker.0 {
            self.marker = self.line_marker.1;
            self.marker_at = committed;
        }
    }

    /// Takes the marker of each record held that started in `chunk` (read at `start`) or,
    /// when it started before, at the end of the lines before it; forgets those of records
    /// no longer held. Called before `line_marker` moves on.
    pub(super) fn keep_held_markers(&mut self, chunk: Option<(u64, &[u8])>) {
        let Some(records) = &self.records else {
            self.held_markers.clear();
            return;
        };
        let starts: Vec<u64> = records.held_starts().collect();
        self.held_markers.retain(|(at, _)| starts.contains(at));
        for at in starts {
            if self.held_markers.iter().any(|(a, _)| *a == at) {
                continue;
            }
            let digest = match chunk {
                Some((start, chunk)) if at >= start => Some(self.digest_before(at, start, chunk)),
                _ if at == self.line_marker.0 => Some(self.line_marker.1),
                _ if at == self.marker_at => Some(self.marker),
                _ => None,
            };
            if let Some(d) = digest {
                self.held_markers.push((at, d));
            }
        }
    }

    /// Hands `chunk` (read at `self.read`) to the splitter and keeps head, tail and marker in
    /// step, from the bytes in memory.
    pub(super) fn consume(&mut self, chunk: &[u8], now: Instant, sink: &mut impl Sink) {
        let start = self.read;
        let path = RecordPath {
            text: &self.path_text,
            generation: self.path_generation,
        };
        // Each line starts where the one before it ended.
        let mut line_start = start.saturating_sub(self.lines.pending());
        let replay = &mut self.replay;
        // Lines and bytes read again (counted as read before).
        let mut again = (0u64, 0u64);
        // Whether the line starting at `from` is read (not a counted line of a replay).
        let mut admit = |line: &str, from: u64, end: u64| match replay {
            Some(r) if from < r.until => {
                again.0 += 1;
                again.1 += end.min(r.until).saturating_sub(from.max(start));
                r.rereads(line, from)
            }
            Some(_) => {
                *replay = None;
                true
            }
            None => true,
        };
        let mut stats = match &mut self.records {
            None => self.lines.push(chunk, |line, end| {
                let (from, end) = (line_start, start + end as u64);
                line_start = end;
                if admit(line, from, end) {
                    sink.line(line, path, None, None);
                }
            }),
            Some(records) => self.lines.push(chunk, |line, end| {
                let (from, end) = (line_start, start + end as u64);
                line_start = end;
                if admit(line, from, end) {
                    records.push(line, from, &mut |a| deliver(a, path, sink));
                }
            }),
        };
        stats.lines = stats.lines.saturating_sub(again.0);
        sink.read(
            path.text,
            (chunk.len() as u64).saturating_sub(again.1),
            stats,
        );
        self.read += chunk.len() as u64;
        self.last_data = now;
        // The head grows with what is read until it is HEAD_LEN long.
        let have = self.head.len() as u64;
        if have < HEAD_LEN && have >= start && have < start + chunk.len() as u64 {
            let from = (have - start) as usize;
            let to = ((HEAD_LEN - start) as usize).min(chunk.len());
            self.head.extend_from_slice(&chunk[from..to]);
        }
        self.keep_held_markers(Some((start, chunk)));
        let committed = self.committed();
        if committed != self.marker_at {
            let kept = self.held_markers.iter().find(|(at, _)| *at == committed);
            if let Some((_, d)) = kept {
                // A record held since an earlier chunk (another stream's record ended).
                self.marker = *d;
                self.marker_at = committed;
            } else if committed >= start {
                self.marker = self.digest_before(committed, start, chunk);
                self.marker_at = committed;
            } else if committed == self.line_marker.0 {
                // A record held from the line that was partial when this chunk came: it
                // starts at the end of the lines before, whose marker was kept.
                self.marker = self.line_marker.1;
                self.marker_at = committed;
            }
        }
        if self.records.is_some() {
            // Kept for when the record held is emitted: the marker at the end of the lines.
            let lines = self.read.saturating_sub(self.lines.pending());
            if lines == committed {
                self.line_marker = (committed, self.marker);
            } else if lines >= start && lines != self.line_marker.0 {
                self.line_marker = (lines, self.digest_before(lines, start, chunk));
            }
        }
        let keep = MARKER_LEN as usize;
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }
}

/// Hands what the assembler made to the sink.
pub(super) fn deliver(a: Assembled, path: RecordPath<'_>, sink: &mut impl Sink) {
    match a {
        Assembled::Record { text, stream, time } => sink.line(text, path, stream, time),
        Assembled::Error(reason) => sink.record_error(reason),
    }
}

/// What is known of `t`'s content: where it was read to, its head and marker.
pub(super) fn known<H>(t: &Tracked<H>) -> Known {
    let offset = match t.phase {
        Phase::Shadow { .. } => t.verified,
        Phase::Pending { .. } => 0,
        _ => t.committed(),
    };
    Known {
        path: t.path_str().to_owned(),
        id: t.id,
        head: t.head_digest(),
        first: t.head.clone(),
        truncated: false,
        offset,
        marker: if t.marker_at == offset {
            t.marker
        } else {
            Digest::default()
        },
        replay: match t.phase {
            Phase::Following | Phase::Draining { .. } => t.replay_now(),
            Phase::Shadow { .. } | Phase::Pending { .. } => None,
        },
    }
}

/// The record a checkpoint keeps of `t`.
pub(super) fn record<H>(t: &Tracked<H>) -> FileRecord {
    let (phase, of) = match t.phase {
        // A pending file is saved as followed from its start (nothing read yet).
        Phase::Following | Phase::Pending { .. } => (SavedPhase::Following, FileId::default()),
        Phase::Draining { .. } => (SavedPhase::Draining, FileId::default()),
        Phase::Shadow { of } => (SavedPhase::Shadow, of),
    };
    FileRecord {
        known: known(t),
        phase,
        of,
        skipping: t.lines.is_skipping(),
    }
}
