//! The file tailer's decisions: which file is which, where to read it, and when it is done.
//! Generic over [`Fs`], so the same code runs on real files and, in the model tests, on a
//! simulated filesystem with renames, copies, truncations, listing errors and crashes.
//!
//! The promise is that every line written is counted exactly once. The rules:
//! - **Identity while open is the inode.** A file held open cannot have its inode reused; a
//!   rename within the globs is the same file under a new name.
//! - **Content decides the rest.** A file that is new to the tailer (a new inode, or a known
//!   inode whose content was replaced) is compared with the content already read: if it holds
//!   the same head and, at the offset read, the same marker, it *is* that content (a copy, or
//!   the same file after a restart) and reading resumes at that offset instead of 0. Content is
//!   matched across files only between related names (`access.log` and `access.log.1`, never
//!   `a.log` and `b.log`, which may share a header). A file decided on by fewer bytes than a
//!   head, with no line read from it since, that grows is decided again by all it holds: a few
//!   bytes alike do not tell its growth from a copy written over it in place.
//! - **A copy of a live file is a shadow.** While the original is intact its lines are read
//!   from the original; the copy is read only from where the original was when the original was
//!   truncated or replaced — which closes copytruncate's race when the rotated copy is in the
//!   globs: the lines not yet read when the original was truncated are read from the copy.
//!   A copy is never larger than its intact original (the original's size is taken now, not
//!   as last read: a reader running late sees a copy grow past an old size), and an original
//!   is followed before its copies are decided on (waiting files first, new files largest
//!   first, by their sizes as they are now, not as a listing taken earlier saw them). A
//!   copy's own content is checked for replacement as a followed file's is: a live file taken
//!   for a copy, then emptied by copytruncate and written on, holds new content, decided on as
//!   such.
//! - **Gone content is remembered** (offset, head, marker, first bytes) for a while, so that a
//!   copy that shows up later (logrotate copies before it truncates, compresses a day later) is
//!   recognised instead of read again — also a copy shorter than what was read from truncated
//!   content (logrotate copied, the original was read on, then truncated): it starts with the
//!   same bytes and holds nothing unread.
//! - **Streams are committed apart.** With container streams, a record held on one stream keeps
//!   the committed offset at its first line while the others' records are counted; the file's
//!   record then carries a [`Replay`] so that only the held lines are read again.
//! - **Draining never re-reads.** A file no longer matched (renamed away, deleted) is read to
//!   its end through the descriptor already open, until quiet for `rotate_wait`; if it shrinks
//!   or its content is replaced meanwhile, it is closed, never read from its start.
//! - **Not seen is not gone.** A file under a directory that could not be listed stays as it
//!   is; only a listing that worked can retire a file.
//! - **Offsets are line boundaries.** The offset kept for a file (and checkpointed) is the end
//!   of its last complete line; the partial line after it is read again after a restart.

mod phase;
mod record;
mod sink;
mod state;
#[cfg(test)]
mod tests;
mod tracked;

use foldhash::HashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::discover::{Found, Globs, Listing};
use super::fs::{FileId, Fs, Handle, Meta};
use super::identity::{self, Digest, Known, HEAD_LEN, MARKER_LEN};
use super::lines::LineSplitter;
use super::records::{Assembler, Framing, Replay};
use crate::config::{FileFormat, StartAt};

pub use phase::Phase;
pub use record::{FileRecord, SavedPhase};
pub use sink::{EventKind, RecordPath, Section, Sink};
pub use state::TailState;
pub use tracked::Tracked;
use tracked::{deliver, known, record};

/// Most bytes read from one file in one pass, so one busy file cannot starve the others.
pub const READ_BUDGET_PER_PASS: u64 = 16 << 20;
/// Size of the read buffer shared by all files of a source.
const READ_BUFFER: usize = 256 << 10;
/// How long content that is no longer followed is remembered, to recognise a late copy.
pub const GONE_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Most records of gone content kept per source.
pub const GONE_KEPT: usize = 512;
/// How far back a file renamed away before its first listing is looked for (by its birth).
const MISSED_WINDOW: Duration = Duration::from_secs(60);

/// The settings the tailer needs.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub start_at: StartAt,
    pub max_line_length: usize,
    pub rotate_wait: Duration,
    /// How lines become records (container formats, multiline); `None`: each line is one.
    pub framing: Option<std::sync::Arc<Framing>>,
}

/// The tailer of one source.
pub struct Tailer<F: Fs> {
    fs: F,
    globs: Globs,
    options: TailOptions,
    files: BTreeMap<FileId, Box<Tracked<F::File>>>,
    /// Content let go lately (each shared with the checkpoints' copy of the list, which is
    /// published again whenever the list changes: a file closed at every rotation of a node
    /// would otherwise copy up to [`GONE_KEPT`] records, twice, each time).
    gone: VecDeque<(Arc<Known>, Instant)>,
    /// Records of a checkpoint not yet matched to a file.
    restored: Vec<FileRecord>,
    /// Compressed files seen (not read), by identity, with their path and size: a change of
    /// either means the inode now holds another file (numbers are reused).
    compressed: BTreeMap<FileId, (PathBuf, u64)>,
    /// The identity last found at each path: a new identity there is a rotation.
    paths: BTreeMap<PathBuf, FileId>,
    scans: u64,
    had_checkpoint: bool,
    buffer: Vec<u8>,
    /// The last listing's problems, for the status: directory, error, bounded reason.
    pub listing_errors: Vec<(PathBuf, String, &'static str)>,
    /// Matched paths that are not read, and why.
    pub skipped: Vec<(PathBuf, &'static str)>,
    /// Files whose last read stopped at the pass's budget: the next pass reads them, named
    /// or not.
    behind: BTreeSet<FileId>,
    /// This pass's fstat of each followed file found unchanged in content, for its read.
    pass_meta: HashMap<FileId, Meta>,
    /// When the last listing applied began ([`Listing::began`]): a file born after it and
    /// not followed now was never looked at.
    last_listing_began: Option<u64>,
    /// When listings of the last [`MISSED_WINDOW`] began (one a second at most), with when
    /// they were applied: a file born after the oldest, not followed now and not let go
    /// since ([`Self::let_go`]), was never followed.
    listings_began: VecDeque<(Instant, u64)>,
    /// Files let go (closed, lost, replaced while draining) in the last [`MISSED_WINDOW`].
    let_go: VecDeque<(FileId, Instant)>,
    /// Bytes the reads took in so far: the progress passes make ([`Self::consumed`]).
    consumed: u64,
}

fn compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
}

impl<F: Fs> Tailer<F> {
    /// A tailer of `globs` on `fs`.
    pub fn new(fs: F, globs: Globs, options: TailOptions) -> Tailer<F> {
        Tailer {
            fs,
            globs,
            options,
            files: BTreeMap::new(),
            gone: VecDeque::new(),
            restored: Vec::new(),
            compressed: BTreeMap::new(),
            paths: BTreeMap::new(),
            scans: 0,
            had_checkpoint: false,
            buffer: vec![0; READ_BUFFER],
            listing_errors: Vec::new(),
            skipped: Vec::new(),
            behind: BTreeSet::new(),
            pass_meta: HashMap::default(),
            last_listing_began: None,
            listings_began: VecDeque::new(),
            let_go: VecDeque::new(),
            consumed: 0,
        }
    }

    /// The filesystem.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// The globs.
    pub fn globs(&self) -> &Globs {
        &self.globs
    }

    /// Where files present at the first scan start (one-shot reads from the beginning).
    pub fn set_start_at(&mut self, start_at: StartAt) {
        self.options.start_at = start_at;
    }

    /// Takes over another tailer's files (a reload with the same source name): they go on from
    /// their offsets under this tailer's options. What the old framing held was not counted:
    /// under the same container format it is read again with the new framing (only the held
    /// streams' lines: the others' records were counted); under another format the old
    /// framing's records are emitted first (the file ends for it), in a section of `sink`.
    pub fn adopt_state_of(&mut self, previous: Tailer<F>, sink: &mut impl Sink) {
        self.files = previous.files;
        self.gone = previous.gone;
        self.restored = previous.restored;
        self.compressed = previous.compressed;
        self.paths = previous.paths;
        self.scans = previous.scans;
        self.had_checkpoint = previous.had_checkpoint;
        let framing = self.options.framing.clone();
        let format = framing.as_ref().map_or(FileFormat::Plain, |f| f.format());
        let fs = &self.fs;
        for t in self.files.values_mut() {
            t.lines.set_max_line_length(self.options.max_line_length);
            if framing.is_none() && t.records.is_none() {
                continue;
            }
            if t.format() != format {
                // Streams are named otherwise now: what was held is emitted as it was framed.
                if t.records.is_some() {
                    let (text, generation) = (t.path_shared(), t.path_generation);
                    let path = RecordPath {
                        text: &text,
                        generation,
                    };
                    let mut section = Section::open(sink);
                    if let Some(records) = &mut t.records {
                        records.finish(&mut |a| deliver(a, path, &mut *section));
                    }
                    t.advance_marker();
                    t.records = None;
                    section.record(t.id, Some(record(t)));
                    drop(section);
                }
                // A replay under the old format: its held lines cannot be named any more.
                if let Some(r) = &mut t.replay {
                    r.held.clear();
                    r.format = format;
                }
                t.records = framing.clone().map(Assembler::new);
                t.line_marker = (t.committed(), t.marker);
                continue;
            }
            // The framing may have changed (multiline): what is held was not counted, so it is
            // read again from the committed offset with the new framing.
            let committed = t.committed();
            let replay = t.replay_now();
            if committed < t.read {
                let back = committed.min(MARKER_LEN);
                let opened;
                let handle = match &t.handle {
                    Some(h) => Some(h),
                    None => {
                        opened = fs
                            .open(&t.path)
                            .ok()
                            .filter(|h| h.meta().is_ok_and(|m| m.id == t.id));
                        opened.as_ref()
                    }
                };
                match handle.and_then(|h| identity::read_range(h, committed - back, back).ok()) {
                    Some(tail) => {
                        t.tail = tail;
                        t.read = committed;
                        t.lines.reset();
                    }
                    // Cannot be read now: this file keeps its old framing.
                    None => continue,
                }
            }
            t.records = framing.clone().map(Assembler::new);
            t.replay = replay;
            t.line_marker = (t.committed(), t.marker);
        }
    }

    /// Forgets every file and starts again from `state` (a source restarting after a panic:
    /// its last committed state).
    pub fn restart_from(&mut self, state: TailState, now: Instant) {
        self.files.clear();
        self.gone.clear();
        self.restored.clear();
        self.compressed.clear();
        self.paths.clear();
        self.scans = 0;
        self.last_listing_began = None;
        self.listings_began.clear();
        self.let_go.clear();
        self.listing_errors.clear();
        self.skipped.clear();
        self.behind.clear();
        self.pass_meta.clear();
        self.restore(state, now);
    }

    /// Starts from a checkpoint: its files are matched on the first scan (by inode and
    /// content, or by content alone), and files it does not know are read from their
    /// beginning (they may have been written while the exporter was down).
    pub fn restore(&mut self, state: TailState, now: Instant) {
        self.had_checkpoint = true;
        self.restored = state.files;
        for k in state.gone {
            if k.has_content() {
                self.gone.push_back((Arc::new(k), now));
            }
        }
    }

    /// The followed files.
    pub fn files(&self) -> impl Iterator<Item = &Tracked<F::File>> {
        self.files.values().map(|t| &**t)
    }

    /// How many files are read in turns (no descriptor held).
    pub fn in_turns(&self) -> usize {
        self.files.values().filter(|t| t.in_turns()).count()
    }

    /// The state to checkpoint: every file's record at its last line boundary, the checkpoint
    /// records not matched yet, and the gone content still remembered.
    pub fn state(&self) -> TailState {
        let mut files: Vec<FileRecord> = self.files.values().map(|t| record(t)).collect();
        files.extend(self.restored.iter().cloned());
        TailState {
            files,
            gone: self.gone.iter().map(|(k, _)| Known::clone(k)).collect(),
        }
    }

    fn remember(&mut self, k: Known, now: Instant, sink: &mut impl Sink) {
        // Every way a file is let go remembers its content: the files let go lately.
        while self
            .let_go
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > MISSED_WINDOW)
        {
            self.let_go.pop_front();
        }
        self.let_go.push_back((k.id, now));
        if k.has_content() {
            self.gone.retain(|(g, _)| {
                !(g.head == k.head && g.offset == k.offset && g.marker == k.marker)
            });
            self.gone.push_back((Arc::new(k), now));
            while self.gone.len() > GONE_KEPT {
                self.gone.pop_front();
            }
        }
        self.publish_remembered(sink);
    }

    fn publish_remembered(&self, sink: &mut impl Sink) {
        let gone = self.gone.iter().map(|(k, _)| Arc::clone(k)).collect();
        sink.remembered(gone, &self.restored);
    }

    /// Expands the globs and brings the followed files in line with what they match.
    pub fn scan(&mut self, now: Instant, stop: &AtomicBool, sink: &mut impl Sink) {
        let listing = self.globs.expand(&self.fs, stop);
        self.apply_listing(listing, now, sink);
    }

    /// The decisions of a scan, from its listing.
    pub fn apply_listing(&mut self, listing: Listing, now: Instant, sink: &mut impl Sink) {
        let initial = self.scans == 0;
        self.scans += 1;
        let previous_began = std::mem::replace(&mut self.last_listing_began, listing.began);
        // The oldest listing of the window began before a file this scan may find missed:
        // every listing before it ended before it began.
        while self
            .listings_began
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > MISSED_WINDOW)
        {
            self.listings_began.pop_front();
        }
        let missed_since = self
            .listings_began
            .front()
            .map(|(_, began)| *began)
            .or(previous_began);
        if let Some(began) = listing.began {
            if self
                .listings_began
                .back()
                .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= Duration::from_secs(1))
            {
                self.listings_began.push_back((now, began));
            }
        }
        self.listing_errors = listing
            .failed
            .iter()
            .map(|(d, e)| (d.clone(), e.to_string(), super::fs::error_reason(e)))
            .collect();
        self.skipped = listing.skipped.clone();
        let before = self.gone.len();
        self.gone
            .retain(|(_, at)| now.saturating_duration_since(*at) < GONE_RETENTION);
        if self.gone.len() != before {
            self.publish_remembered(sink);
        }
        // Several paths may name one file (a symlink and its target): one decision per file,
        // named by its preferred path.
        let mut by_id: BTreeMap<FileId, &Found> = BTreeMap::new();
        for f in &listing.found {
            by_id
                .entry(f.meta.id)
                .and_modify(|chosen| {
                    if preferred(f, chosen) {
                        *chosen = f;
                    }
                })
                .or_insert(f);
        }
        self.mark_replaced_restored(&by_id);
        // Content replaced in a followed file, and files waiting, are decided on before new
        // files: a copy of the old content (copytruncate's) then matches the old content's
        // record, and an original is followed before its copies are decided on. A scan that
        // left unchanged directories alone checks the files in the others (where new files
        // come); the rest are checked by the reads, as content replaced after a scan is.
        let looked_at: Option<BTreeSet<FileId>> = listing.is_partial().then(|| {
            self.files
                .values()
                .filter(|t| !listing.is_unchanged(&t.path))
                .map(|t| t.id)
                .collect()
        });
        if !self.handle_replaced_and_pending(now, sink, looked_at.as_ref(), false) {
            self.pass_meta.clear();
            self.handle_replaced_and_pending(now, sink, None, false);
        }
        let mut adopted = false;
        let mut adopted_now: Vec<PathBuf> = Vec::new();
        // Files new to the tailer are decided on the largest first: a copy is never larger
        // than its intact original, so an original (after a restart, both unknown) is followed
        // before its copies are decided on — and they become its shadows.
        let mut order: Vec<(&FileId, &&Found)> = by_id.iter().collect();
        // A file its checkpoint record names (by inode) resumes before any other file can be
        // taken for that content; between files of one size, the shorter name (the live file
        // rather than its rotation) goes first.
        let restored_ids: std::collections::BTreeSet<FileId> =
            self.restored.iter().map(|r| r.known.id).collect();
        // The sizes of files new to the tailer as they are now, not as the listing saw them: a
        // listing taken a while ago (a slow walk of many directories) may have seen a copy's
        // target before copytruncate wrote over it in place, larger than its original then.
        let size_now: BTreeMap<FileId, u64> = order
            .iter()
            .filter(|(id, _)| !self.files.contains_key(id) && !self.compressed.contains_key(id))
            .map(|(id, f)| {
                let now = self.fs.stat(&f.path).ok().filter(|m| m.id == **id);
                (**id, now.map_or(f.meta.size, |m| m.size))
            })
            .collect();
        order.sort_by_key(|(id, f)| {
            (
                !self.files.contains_key(id),
                !restored_ids.contains(id),
                std::cmp::Reverse(size_now.get(id).copied().unwrap_or(f.meta.size)),
                f.path.as_os_str().len(),
                **id,
            )
        });
        for (id, found) in order {
            if let Some(t) = self.files.get_mut(id) {
                t.unseen = false;
                // Keep the name while it still names the file (no flapping between a symlink
                // and its target); otherwise take the preferred one.
                let renamed = !paths_of(&listing, *id).any(|p| *p == t.path);
                let back = matches!(t.phase, Phase::Draining { .. });
                if renamed || back {
                    let mut section = Section::open(sink);
                    if renamed {
                        let from = t.path_str().to_owned();
                        // Renamed within the globs (a kubelet's `0.log` → `0.log.<time>`
                        // with `*.log*`): the file now at the old path replaced it, as for a
                        // rename out of the globs.
                        t.left = Some(t.path.clone());
                        t.rename(found.path.clone());
                        t.symlink = found.symlink;
                        section.event(EventKind::Renamed, t.path_str(), &format!("from {from}"));
                    }
                    if back {
                        t.phase = Phase::Following;
                    }
                    section.record(*id, Some(record(t)));
                    drop(section);
                }
                self.paths.insert(found.path.clone(), *id);
                continue;
            }
            if self.compressed.get(id) == Some(&(found.path.clone(), found.meta.size)) {
                continue;
            }
            if self.adopt(found, now, initial, sink) {
                adopted = true;
                adopted_now.push(found.path.clone());
            }
        }
        // Before the files no longer matched are let go: a file followed since the last scan
        // must still be known as followed here.
        if let (false, Some(since)) = (initial, missed_since) {
            adopted |= self.drain_missed_rotations(&adopted_now, &by_id, since, now, sink);
        }
        // Followed files no longer matched.
        let missing: Vec<FileId> = self
            .files
            .keys()
            .filter(|id| !by_id.contains_key(id))
            .copied()
            .collect();
        for id in missing {
            let t = self.files.get_mut(&id).expect("listed");
            if listing.is_unchanged(&t.path) {
                continue;
            }
            if listing.unseen(&t.path) {
                t.unseen = true;
                continue;
            }
            // A copy is checked against its original first, as a read would: an original
            // whose inode holds other content now (replaced while the exporter was down, and
            // not read since) is not intact, and the copy holds what it lost.
            if let Phase::Shadow { of } = t.phase {
                self.check_shadow(id, of, now, sink);
            }
            let Some(t) = self.files.get_mut(&id) else {
                continue;
            };
            match t.phase {
                Phase::Pending { since, .. } => {
                    t.phase = Phase::Pending { since, free: true };
                }
                // A copy that went away while its original is intact: nothing to read, unless
                // it is still written to (the live file taken for a copy). It is kept, as a
                // draining file is, until it is quiet for `rotate_wait`, grows past its
                // original (then read from there) or its original goes (`check_shadow`).
                Phase::Shadow { .. } => {
                    if t.left.is_none() {
                        t.left = Some(t.path.clone());
                        t.last_data = now;
                    }
                }
                Phase::Following if t.in_turns() => {
                    // Nothing holds it open: what it has beyond the offset cannot be read.
                    let t = self.files.remove(&id).expect("listed");
                    let k = known(&t);
                    let mut section = Section::open(sink);
                    section.record(id, None);
                    section.event(
                        EventKind::Lost,
                        &k.path,
                        "renamed away or deleted while read in turns (over the open-file limit)",
                    );
                    self.remember(k, now, &mut *section);
                    drop(section);
                }
                Phase::Following => {
                    t.phase = Phase::Draining { since: now };
                    t.left = Some(t.path.clone());
                    let mut section = Section::open(sink);
                    section.record(id, Some(record(t)));
                    section.event(
                        EventKind::Draining,
                        t.path_str(),
                        "renamed away or deleted; reading it to its end",
                    );
                    drop(section);
                }
                Phase::Draining { .. } => {}
            }
        }
        self.compressed
            .retain(|id, (path, _)| by_id.contains_key(id) || listing.is_unchanged(path));
        let files = &self.files;
        self.paths
            .retain(|_, id| by_id.contains_key(id) || files.contains_key(id));
        if !listing.interrupted
            && listing.failed.is_empty()
            && !listing.is_partial()
            && !self.restored.is_empty()
        {
            self.settle_restored(now, sink);
            adopted = true;
        }
        if adopted {
            sink.durable();
        }
    }

    /// After the first complete scan: checkpointed files that were not found are looked for by
    /// inode next to where they were (a rotation while the exporter was down moved them out of
    /// the globs) and drained; the rest is remembered as gone content.
    fn settle_restored(&mut self, now: Instant, sink: &mut impl Sink) {
        let records = std::mem::take(&mut self.restored);
        let mut keep = Vec::new();
        for r in records {
            if !r.known.has_content() && r.known.id.birth == 0 {
                // Nothing was read from it and its inode number may name another file by now
                // (no birth time to tell): nothing to resume safely.
                let mut section = Section::open(sink);
                section.event(EventKind::Lost, &r.known.path, "in the checkpoint before its first read, not found again; this filesystem keeps no birth times to find it by inode safely");
                drop(section);
                continue;
            }
            let dir = super::fs::parent(Path::new(&r.known.path));
            let entries = match self.fs.list(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    // Cannot look now: try again after the next scan.
                    keep.push(r);
                    continue;
                }
                Err(_) => Vec::new(),
            };
            // By inode (renamed next to where it was), else by content (a copy next to it,
            // as copytruncate leaves).
            let candidates: Vec<PathBuf> = entries
                .iter()
                .filter(|e| !e.is_dir)
                .map(|e| dir.join(&e.name))
                .collect();
            let by_inode = candidates.iter().find(|p| {
                self.fs
                    .stat(p)
                    .is_ok_and(|m| m.id == r.known.id && m.is_file)
            });
            let by_content = || {
                candidates.iter().find(|p| {
                    identity::related(Path::new(&r.known.path), p)
                        && r.known.has_content()
                        && self.fs.open(p).is_ok_and(|h| {
                            h.meta().is_ok_and(|m| {
                                !self.files.contains_key(&m.id)
                                    && r.known.continues_in(&h, m.size)
                                    // Content read before (a drained file) is not this record's.
                                    && !self.gone.iter().any(|(g, _)| g.continues_in(&h, m.size))
                            })
                        })
                })
            };
            let opened = |path: &PathBuf| {
                let h = self.fs.open(path).ok()?;
                let m = h.meta().ok()?;
                (!self.files.contains_key(&m.id)).then_some((path.clone(), h, m))
            };
            let continues = |(_, h, m): &(PathBuf, F::File, Meta)| r.known.continues_in(h, m.size);
            // Nothing read from it yet (it was pending at the checkpoint), and found by its
            // inode and birth time: whatever it holds now (emptied by copytruncate and written
            // again, say) is decided on as a pending file that left the globs is, a copy of
            // known content or new, and read to its end; it is not "lost" while its writer
            // still writes to it.
            let unread = r.known.offset == 0 && r.known.replay.is_none() && r.known.id.birth != 0;
            let same_file = by_inode
                .and_then(opened)
                .filter(|(_, _, m)| m.id == r.known.id);
            // Where it is resumed: `Some(offset)` read on from there, `None` decided afresh. A
            // record at 0 says nothing of what the file is (it may have been pending then, too
            // short to tell whether it was a copy of content read before): found by inode, it is
            // decided afresh whether or not it still holds its first bytes, never read from 0
            // on the record's word.
            let resumed = match same_file {
                Some(f) if unread => Some((f, None)),
                Some(f) if continues(&f) => Some((f, Some(r.known.offset))),
                _ => by_content()
                    .and_then(opened)
                    .filter(|f| continues(f))
                    .map(|f| (f, Some(r.known.offset))),
            };
            let mut section = Section::open(sink);
            match resumed {
                Some(((path, h, m), from)) => {
                    let offset = from.unwrap_or(0);
                    let mut t = self.track(path, false, Some(h), m, offset, r.skipping, now);
                    let detail = match from {
                        // A copy whose original it was found equal to: still a copy of it
                        // (resolved against it, or against what is known of its content).
                        Some(offset) if r.phase == SavedPhase::Shadow && m.id == r.known.id => {
                            t.phase = Phase::Shadow { of: r.of };
                            format!("a copy moved out of the globs while the exporter was down; its original was read to {offset} there")
                        }
                        Some(offset) => {
                            t.set_replay(r.known.replay.as_ref());
                            t.phase = Phase::Draining { since: now };
                            format!("moved out of the globs while the exporter was down; reading it to its end from {offset}")
                        }
                        None => {
                            t.phase = Phase::Pending {
                                since: now,
                                free: true,
                            };
                            "moved out of the globs while the exporter was down, before its first read; decided on as a new file is".to_owned()
                        }
                    };
                    t.left = Some(PathBuf::from(&r.known.path));
                    section.event(EventKind::Resumed, t.path_str(), &detail);
                    section.record(m.id, Some(record(&t)));
                    self.files.insert(m.id, Box::new(t));
                }
                None => {
                    section.event(
                        EventKind::Lost,
                        &r.known.path,
                        "in the checkpoint, not found again (deleted while the exporter was down?)",
                    );
                    self.remember(r.known, now, &mut *section);
                }
            }
            drop(section);
        }
        self.restored = keep;
        let mut section = Section::open(sink);
        self.publish_remembered(&mut *section);
        drop(section);
    }

    /// Content written at a matched path and renamed away between two scans, never seen: on a
    /// busy machine the kubelet can rotate a new container's `0.log` (to `0.log.<time>`)
    /// before the exporter's first listing of the new pod's directory. Next to each file
    /// adopted by this scan, a file named as a rotation of it (its name followed by `.`, `-` or
    /// `_` and more) that was born after a listing of the last minute began (`since`: no
    /// earlier listing can have seen it), is neither followed nor let go since (so no scan
    /// took it) and holds content not read before (not a copy of known content) is read from
    /// its beginning to its end, as a file renamed away is. Only a birth time tells that its
    /// content cannot have been read: on a filesystem without one, such a file stays unread.
    /// Returns whether it took one.
    fn drain_missed_rotations(
        &mut self,
        adopted: &[PathBuf],
        matched: &BTreeMap<FileId, &Found>,
        since: u64,
        now: Instant,
        sink: &mut impl Sink,
    ) -> bool {
        let mut drained = false;
        let dirs: BTreeSet<PathBuf> = adopted.iter().map(|p| super::fs::parent(p)).collect();
        for dir in dirs {
            let Ok(entries) = self.fs.list(&dir) else {
                continue;
            };
            for entry in entries.iter().filter(|e| !e.is_dir && !e.is_symlink) {
                let path = dir.join(&entry.name);
                // A name the globs match is the scans' to decide (patiently: it may be a copy
                // still being written); only names out of the globs are looked at here.
                if self.globs.concerns(&path) {
                    continue;
                }
                let Some(live) = adopted
                    .iter()
                    .find(|a| a.parent() == path.parent() && is_rotation_of(a, &path))
                else {
                    continue;
                };
                // Looked at (a stat) before it is opened: most are the files let go before.
                let Ok(seen) = self.fs.stat(&path) else {
                    continue;
                };
                let never_followed = |meta: Meta| {
                    meta.is_file
                        && meta.id.birth > since
                        && !self.files.contains_key(&meta.id)
                        && !self.let_go.iter().any(|(id, _)| *id == meta.id)
                        && !matched.contains_key(&meta.id)
                        && !self.compressed.contains_key(&meta.id)
                        && !self.restored.iter().any(|r| r.known.id == meta.id)
                };
                if !never_followed(seen) {
                    continue;
                }
                let Ok(h) = self.fs.open(&path) else { continue };
                let Ok(meta) = h.meta() else { continue };
                if meta.id != seen.id
                    || meta.size == 0
                    || compressed(&identity::read_range(&h, 0, 8).unwrap_or_default())
                {
                    continue;
                }
                // A copy of content read (or followed) is no missed content; one that may still
                // be being written is left for the next scan.
                match self.decide(&path, &h, meta, false, true) {
                    Some(d) if d.kind == EventKind::New && d.start == 0 => {}
                    _ => continue,
                }
                let live = live.clone();
                let mut t = self.track(path, false, Some(h), meta, 0, false, now);
                t.phase = Phase::Draining { since: now };
                // Its partial last line (a container's `P` parts) continues in the live file.
                t.left = Some(live.clone());
                if !self.fs.may_hold_open() {
                    t.handle = None;
                }
                let mut section = Section::open(sink);
                section.event(
                    EventKind::New,
                    t.path_str(),
                    &format!(
                        "renamed away from {} before it was first seen (born since the last scan, never read): read from its beginning to its end",
                        live.display()
                    ),
                );
                section.record(meta.id, Some(record(&t)));
                drop(section);
                self.files.insert(meta.id, Box::new(t));
                drained = true;
            }
        }
        drained
    }

    #[allow(clippy::too_many_arguments)]
    fn track(
        &self,
        path: PathBuf,
        symlink: bool,
        handle: Option<F::File>,
        meta: Meta,
        offset: u64,
        skipping: bool,
        now: Instant,
    ) -> Tracked<F::File> {
        let mut lines = LineSplitter::new(self.options.max_line_length);
        if skipping {
            lines.skip_to_next_line();
        }
        let (head, tail) = match handle.as_ref() {
            Some(h) => (
                identity::read_range(h, 0, meta.size.min(HEAD_LEN).min(offset.max(HEAD_LEN)))
                    .unwrap_or_default(),
                identity::read_range(h, offset - offset.min(MARKER_LEN), offset.min(MARKER_LEN))
                    .unwrap_or_default(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Tracked {
            id: meta.id,
            path_text: path.to_string_lossy().into(),
            path_generation: crate::pipeline::next_file_generation(),
            path,
            symlink,
            handle,
            read: offset,
            lines,
            records: self.options.framing.clone().map(Assembler::new),
            replay: None,
            line_marker: (offset, Digest::of(&tail)),
            held_markers: Vec::new(),
            marker: Digest::of(&tail),
            marker_at: offset,
            tail,
            head,
            size: meta.size,
            phase: Phase::Following,
            last_data: now,
            verified: offset,
            unseen: false,
            left: None,
            checked: Default::default(),
            head_digest: Default::default(),
        }
    }

    /// Decides where a file new to the tailer is read from, and follows it; returns whether it
    /// does.
    fn adopt(&mut self, found: &Found, now: Instant, initial: bool, sink: &mut impl Sink) -> bool {
        let path = found.path.clone();
        let shown = path.to_string_lossy().into_owned();
        let h = match self.fs.open(&path) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                sink.error(&shown, Some(&format!("cannot open {shown}: {e}")));
                // Tried again at every scan, even while its directory does not change.
                self.fs.forget_listing(&super::fs::parent(&path));
                return false;
            }
        };
        let Ok(meta) = h.meta() else { return false };
        if meta.id != found.meta.id {
            return false; // replaced between the listing and the open: the next scan sees it
        }
        sink.error(&shown, None);
        let first = identity::read_range(&h, 0, 8).unwrap_or_default();
        if compressed(&first) {
            self.compressed.insert(meta.id, (path.clone(), meta.size));
            sink.event(
                EventKind::SkippedCompressed,
                &shown,
                "compressed: not read as text",
            );
            return false;
        }
        let rotated = self
            .paths
            .insert(path.clone(), meta.id)
            .is_some_and(|old| old != meta.id);
        // Nothing read from a file yet, nothing decided: an empty file waits for its first
        // bytes (a copy may be written into it, as copytruncate does into an old rotation).
        let restored_before = self.restored.len();
        // Its checkpoint record at 0 says nothing of it — unless other streams' records after a
        // held one were counted (a replay): then that content is looked for elsewhere (a copy
        // taken before a truncate, below).
        if meta.size == 0 {
            self.restored.retain(|r| {
                !(r.known.id == meta.id && r.known.offset == 0 && !r.known.has_content())
            });
        }
        let decision = (meta.size > 0)
            .then(|| self.decide(&path, &h, meta, initial, true))
            .flatten()
            .unwrap_or_else(|| Decision::pending(now));
        let kind = if decision.kind == EventKind::New && rotated {
            EventKind::Rotated
        } else {
            decision.kind
        };
        let hold = self.fs.may_hold_open();
        let mut t = self.track(
            path,
            found.symlink,
            Some(h),
            meta,
            decision.start,
            decision.skipping,
            now,
        );
        t.phase = decision.phase;
        t.set_replay(decision.replay.as_ref());
        if !hold {
            t.handle = None;
        }
        let mut section = Section::open(sink);
        if let Some(i) = decision.consumed_restored {
            self.restored.swap_remove(i);
        }
        if let Some(i) = decision.consumed_gone {
            self.gone.remove(i);
        }
        // Other checkpoint records of this inode describe content it no longer holds (the
        // inode was reused, or the file truncated while the exporter was down): they stay
        // only as content to look for next to it (a copy), no longer tied to the inode.
        self.restored.retain_mut(|r| {
            if r.known.id != meta.id {
                return true;
            }
            r.known.id = FileId::default();
            r.known.truncated = true;
            r.known.has_content()
        });
        if decision.consumed_restored.is_some()
            || decision.consumed_gone.is_some()
            || self.restored.len() != restored_before
        {
            self.publish_remembered(&mut *section);
        }
        section.event(kind, &shown, &decision.detail);
        section.record(meta.id, Some(record(&t)));
        self.files.insert(meta.id, Box::new(t));
        drop(section);
        true
    }

    /// Where to start reading new content `h`; `None` (only when `patient`) when it is too
    /// short yet to tell whether it is a copy of a followed file.
    fn decide(
        &self,
        path: &Path,
        h: &F::File,
        meta: Meta,
        initial: bool,
        patient: bool,
    ) -> Option<Decision> {
        let size = meta.size;
        let plain = |start, kind, detail: String| Decision {
            start,
            replay: None,
            skipping: false,
            phase: Phase::Following,
            kind,
            detail,
            consumed_restored: None,
            consumed_gone: None,
        };
        // A file that holds content `k` (a copy of it, or the file it was in): read on from
        // where `k` was read to.
        let read_to = |k: &Known| Decision {
            replay: k.replay.clone(),
            ..plain(
                k.offset,
                EventKind::Recognised,
                format!("holds {} read to {}", k.path, k.offset),
            )
        };
        // A copy of content `k` taken before all of it was read: all it holds was read (a
        // cut last line, copied before its newline was written, is skipped). `None` while,
        // shorter than `k`'s first bytes, it may still be being written.
        let all_read_copy = |k: &Known| {
            if patient && (size as usize) < k.first.len() {
                return None;
            }
            let ends_line = identity::read_range(h, size - 1, 1)
                .ok()
                .is_none_or(|b| b.first() == Some(&b'\n'));
            Some(Decision {
                skipping: !ends_line,
                ..plain(
                    size,
                    EventKind::Recognised,
                    format!("a copy of {} up to {size}, all read there", k.path),
                )
            })
        };
        // The same file after a restart (a record at 0 says nothing: decided afresh — unless
        // other streams' records after it were counted).
        if let Some(i) = self.restored.iter().position(|r| {
            r.known.id == meta.id && r.known.has_content() && r.known.continues_in(h, size)
        }) {
            let r = &self.restored[i];
            let phase = if r.phase == SavedPhase::Shadow {
                Phase::Shadow { of: r.of }
            } else {
                Phase::Following
            };
            return Some(Decision {
                skipping: r.skipping,
                replay: r.known.replay.clone(),
                phase,
                consumed_restored: Some(i),
                ..plain(
                    r.known.offset,
                    EventKind::Resumed,
                    format!("from the checkpoint at {}", r.known.offset),
                )
            });
        }
        // Content read before, in another file: a copy, or the file before a restart. (Every
        // file followed or remembered is asked about this one: its side of the question is
        // made once.)
        let related = identity::RelatedTo::new(path);
        if let Some(i) = self.restored.iter().position(|r| {
            r.known.has_content()
                && related.of(Path::new(&r.known.path))
                && r.known.continues_in(h, size)
        }) {
            let r = &self.restored[i];
            return Some(Decision {
                skipping: r.skipping,
                replay: r.known.replay.clone(),
                consumed_restored: Some(i),
                ..plain(
                    r.known.offset,
                    EventKind::Recognised,
                    format!(
                        "holds {} read to {} before the restart",
                        r.known.path, r.known.offset
                    ),
                )
            });
        }
        if let Some(i) = self
            .gone
            .iter()
            .rposition(|(k, _)| related.of(Path::new(&k.path)) && k.continues_in(h, size))
        {
            return Some(Decision {
                consumed_gone: Some(i),
                ..read_to(&self.gone[i].0)
            });
        }
        // A copy taken before its original was read as far as it was (copytruncate, the
        // original read on after the copy, then truncated): all it holds was read.
        let copied = self
            .gone
            .iter()
            .map(|(k, _)| &**k)
            .chain(self.restored.iter().map(|r| &r.known))
            // New content in the same inode replaced that content: it is no copy of it.
            .filter(|k| k.id != meta.id && related.of(Path::new(&k.path)))
            .find(|k| k.copied_before_offset(h, size));
        if let Some(k) = copied {
            return all_read_copy(k);
        }
        // A copy of a file still followed: a shadow until the original is truncated or gone.
        for t in self.files.values() {
            if matches!(t.phase, Phase::Shadow { .. } | Phase::Pending { .. })
                || !related.of(&t.path)
            {
                continue;
            }
            // The original truncated (or replaced) since a pass looked at it — copytruncate
            // finished while this thread was not running, or before the pass that will find
            // the truncation: a copy is decided against what was read of the original, as
            // that pass will remember it (that content's copy, never new content), however
            // long the patience has lasted.
            let intact = original_intact(t, &self.fs);
            if !intact {
                let k = Known {
                    truncated: true,
                    ..known(t)
                };
                if k.has_content() && k.continues_in(h, size) {
                    return Some(read_to(&k));
                }
                if k.has_content() && k.copied_before_offset(h, size) {
                    return all_read_copy(&k);
                }
            }
            // A copy is never larger than its intact original (one shorter than what was read
            // from it was truncated: its record decides).
            let intact_smaller = t.handle.as_ref().is_some_and(|oh| {
                oh.meta()
                    .is_ok_and(|m| m.size < size && !content_replaced(t, oh, m))
            });
            if intact_smaller {
                continue;
            }
            // The original's first bytes: as read, or — not read that far yet (new content
            // just found) — as it holds them now; then they are all it holds, when fewer than
            // a head.
            let (first, whole) = t.first_bytes();
            let head = &first[..];
            if head.is_empty() {
                continue;
            }
            let at = t.committed().min(size);
            if size < head.len() as u64 {
                // Shorter than the original's head: a copy being written, or a new file that
                // starts alike. Wait for it to grow (or for rotate_wait) when it starts alike.
                let start = Digest::of(&head[..size as usize]);
                if patient && size > 0 && identity::starts_with(h, size, &start).unwrap_or(false) {
                    return None;
                }
                continue;
            }
            // Nothing read from the original yet (a restart found both unknown, or its new
            // content was just found): the whole head must be alike, or all it holds.
            let whole_head = at > 0 || head.len() as u64 == HEAD_LEN || whole;
            if !whole_head || !identity::starts_with(h, size, &Digest::of(head)).unwrap_or(false) {
                continue;
            }
            // The original's bytes before `at`: known without reading when `at` is where it
            // was read to (it may be truncated already).
            let original = if at == t.committed() && t.marker_at == at {
                Some(t.marker)
            } else {
                match t.handle.as_ref() {
                    Some(oh) => identity::marker(oh, at).ok(),
                    None => self
                        .fs
                        .open(&t.path)
                        .ok()
                        .filter(|oh| oh.meta().is_ok_and(|m| m.id == t.id))
                        .and_then(|oh| identity::marker(&oh, at).ok()),
                }
            };
            if original.is_some() && original == identity::marker(h, at).ok() {
                return Some(Decision {
                    phase: Phase::Shadow { of: t.id },
                    ..plain(
                        at,
                        EventKind::Shadowed,
                        format!(
                            "a copy of {} (read from there while it is intact)",
                            t.path_str()
                        ),
                    )
                });
            }
            // A copy of the original's start, whose original was truncated (or replaced) since
            // this pass looked at it, and that is not that content's copy by what was read of
            // it (above): it is decided after the pass that finds the truncation.
            if patient && !intact {
                return None;
            }
        }
        if initial && !self.had_checkpoint && self.options.start_at == StartAt::End {
            let (start, skipping) = end_position(h, size, self.options.max_line_length);
            return Some(Decision {
                skipping,
                ..plain(start, EventKind::New, "from its end (start_at: end)".into())
            });
        }
        Some(plain(0, EventKind::New, "from its beginning".into()))
    }

    /// Bytes the reads took in so far. A pass that says there is more to read and leaves this
    /// where it was made no progress: a file decided again and again (a bug) looks like that.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Reads what is new in every file; closes drained files. Returns true when some file has
    /// more to read right away.
    pub fn read_all(&mut self, now: Instant, sink: &mut impl Sink) -> bool {
        self.read_pass(now, sink, None)
    }

    /// Reads until no file has more to read right away, as the daemon does before it waits.
    /// Each pass reads up to [`READ_BUDGET_PER_PASS`], so a tailer that still has more after
    /// 10,000 passes is stuck deciding the same file again and again: the test fails there
    /// instead of hanging.
    #[cfg(test)]
    pub(crate) fn read_until_quiet(&mut self, now: Instant, sink: &mut impl Sink) {
        for _ in 0..10_000 {
            if !self.read_all(now, sink) {
                return;
            }
        }
        panic!("the tailer still had more to read after 10,000 passes: a livelock");
    }

    /// Reads what is new in the followed files at `named` (the paths file notifications named
    /// since the last pass) and in every file that is not simply followed (draining, pending,
    /// shadows, read in turns) or that had more to read; the rest are not even looked at. A
    /// named path no file is known by makes it a pass over every file, as [`Self::read_all`];
    /// so do files waiting for a decision, shadows, files read in turns, and a named file
    /// whose content was replaced (those are decided against every file as it is now).
    /// Which files a pass reads never decides what is counted, only when: every pass reads a
    /// file from its offset, and a notification that was lost is made up for by the next full
    /// pass (a rescan or the poll).
    pub fn read_named(&mut self, now: Instant, sink: &mut impl Sink, named: &[PathBuf]) -> bool {
        let ids: Option<BTreeSet<FileId>> =
            named.iter().map(|p| self.paths.get(p).copied()).collect();
        self.read_pass(now, sink, ids.as_ref())
    }

    /// Whether a pass reading the files `named` (all when `None`) looks at `t`. A file holding
    /// a multi-line record due to be emitted ([`Self::flush_idle`]) is always read first: the
    /// record's next line may be written and its notification not yet come.
    fn in_pass(
        &self,
        t: &Tracked<F::File>,
        named: Option<&BTreeSet<FileId>>,
        now: Instant,
    ) -> bool {
        named.is_none_or(|named| {
            t.phase != Phase::Following
                || t.in_turns()
                || self.behind.contains(&t.id)
                || named.contains(&t.id)
                || self.flush_due(t, now)
        })
    }

    /// Whether `t` holds a multi-line record whose writer was quiet for `flush_after` (as far
    /// as its last read saw).
    fn flush_due(&self, t: &Tracked<F::File>, now: Instant) -> bool {
        let Some(after) = self.options.framing.as_ref().and_then(|f| f.flush_after()) else {
            return false;
        };
        t.records.as_ref().is_some_and(Assembler::holds_record)
            && now.saturating_duration_since(t.last_data) >= after
    }

    fn read_pass(
        &mut self,
        now: Instant,
        sink: &mut impl Sink,
        named: Option<&BTreeSet<FileId>>,
    ) -> bool {
        // Files waiting to be decided on, copies being read as shadows of their original,
        // files read in turns, and named files nothing was read from yet (their first bytes
        // are decided on: copytruncate writing into an emptied rotation) are decided on or
        // checked against other files as they are now: with any of them, the pass looks at
        // every file.
        let decisions = self.files.values().any(|t| {
            t.in_turns()
                || matches!(t.phase, Phase::Pending { .. } | Phase::Shadow { .. })
                || (t.read == 0 && t.head.is_empty() && named.is_some_and(|n| n.contains(&t.id)))
        });
        let mut named = named.filter(|_| !decisions);
        self.pass_meta.clear();
        if !self.handle_replaced_and_pending(now, sink, named, true) {
            self.pass_meta.clear();
            named = None;
            self.handle_replaced_and_pending(now, sink, None, true);
        }
        // Draining files first: what a rotation left in a file comes before the first lines
        // of the file that replaced it (see `inherit_partials`).
        let mut ids: Vec<(bool, FileId)> = self
            .files
            .values()
            .filter(|t| self.in_pass(t, named, now))
            .map(|t| {
                let predecessor = matches!(t.phase, Phase::Draining { .. }) || t.left.is_some();
                (!predecessor, t.id)
            })
            .collect();
        ids.sort_unstable_by_key(|(later, _)| *later);
        self.behind.clear();
        for (_, id) in ids {
            if self.read_file(id, now, sink) {
                self.behind.insert(id);
            }
        }
        self.pass_meta.clear();
        !self.behind.is_empty()
    }

    /// A container line cut by a rotation: its first parts (`P`) ended the rotated file, its
    /// end starts the file that replaced it at the same path. Before the new file's first
    /// read, the partial lines its predecessor holds (read to its end, nothing pending) are
    /// moved to it, so the line is one record, counted once, rather than two. Both records
    /// move in one section. Only once the new file has lines (`size`): the writer moved to
    /// it, so the old one is complete. After a restart, a file renamed out of the globs while
    /// the exporter was down is the predecessor of the one at its checkpointed path.
    fn inherit_partials(&mut self, t: &mut Tracked<F::File>, size: u64, sink: &mut impl Sink) {
        if t.read != 0 || size == 0 || t.phase != Phase::Following {
            return;
        }
        let Some(into) = t.records.as_mut() else {
            return;
        };
        let Some(p) = self.files.values_mut().find(|p| {
            matches!(p.phase, Phase::Draining { .. } | Phase::Following)
                && p.left.as_ref() == Some(&t.path)
                && p.records.as_ref().is_some_and(|r| r.holds_partial())
        }) else {
            return;
        };
        let size = p
            .handle
            .as_ref()
            .and_then(|h| h.meta().ok())
            .map(|m| m.size);
        if size.is_none_or(|s| s > p.read) || p.lines.pending() > 0 {
            return;
        }
        let Some(from) = p.records.as_mut() else {
            return;
        };
        into.inherit_partials(from.take_partials(), t.read);
        p.advance_marker();
        t.keep_held_markers(None);
        let mut section = Section::open(sink);
        section.record(p.id, Some(record(p)));
        section.record(t.id, Some(record(t)));
        drop(section);
    }

    fn read_file(&mut self, id: FileId, now: Instant, sink: &mut impl Sink) -> bool {
        let Some(t) = self.files.get(&id) else {
            return false;
        };
        if let Phase::Shadow { of } = t.phase {
            self.check_shadow(id, of, now, sink);
            return false;
        }
        // Nothing read from it yet and it was empty: its first bytes may be a copy of known
        // content (copytruncate writing into an emptied rotation), so they are decided on first.
        if t.read == 0 && t.head.is_empty() && t.phase == Phase::Following && !t.in_turns() {
            let grew = t
                .handle
                .as_ref()
                .and_then(|h| h.meta().ok())
                .is_some_and(|m| m.size > 0);
            if grew {
                if let Some(t) = self.files.get_mut(&id) {
                    t.phase = Phase::Pending {
                        since: now,
                        free: false,
                    };
                }
            }
        }
        if let Some(Phase::Pending { since, free }) = self.files.get(&id).map(|t| t.phase) {
            self.check_pending(id, since, free, now, sink);
            // Decided: read it in this same pass (a new file's first line is not delayed).
            let decided = self
                .files
                .get(&id)
                .is_some_and(|t| matches!(t.phase, Phase::Following | Phase::Draining { .. }));
            if !decided {
                return false;
            }
        }
        let mut t = self.files.remove(&id).expect("present");
        let path = t.path_shared();
        let held = t.handle.is_some();
        let h = match t.handle.take() {
            Some(h) => h,
            None => match self.fs.open(&t.path) {
                Ok(h) if h.meta().is_ok_and(|m| m.id == t.id) => h,
                // The path names another file now, or none: the next scan decides.
                Ok(_) => {
                    self.files.insert(id, t);
                    return false;
                }
                Err(e) => {
                    sink.error(&path, Some(&format!("cannot open {path}: {e}")));
                    self.files.insert(id, t);
                    return false;
                }
            },
        };
        let meta = match self.pass_meta.remove(&id).map_or_else(|| h.meta(), Ok) {
            Ok(m) => m,
            Err(e) => {
                sink.error(&path, Some(&format!("cannot stat {path}: {e}")));
                if held {
                    t.handle = Some(h);
                }
                self.files.insert(id, t);
                return false;
            }
        };
        if !told_by_the_read(&t, meta) && content_replaced(&t, &h, meta) {
            if held {
                t.handle = Some(h);
            }
            return self.replaced(t, meta, now, sink, false);
        }
        self.inherit_partials(&mut t, meta.size, sink);
        let mut more = false;
        let mut budget = READ_BUDGET_PER_PASS;
        let mut error = None;
        let before = t.read;
        // fstat said there is nothing past the offset: no read (an idle file costs no pread).
        let nothing_new = meta.changed != 0 && meta.size <= t.read;
        loop {
            if nothing_new {
                break;
            }
            // Each read takes the bytes before the offset again: content replaced before the
            // read (no check above for a file that grew: `told_by_the_read`) or since the
            // check (truncated and written past the offset while this thread was not running,
            // as on a saturated machine) is told by them, not read from its middle.
            let overlap = t.tail.len();
            // And the file's first bytes after the read: content replaced by content alike
            // before the offset (repeated lines, padding) is told by its start. The whole
            // head is compared, not only up to the end of this read: a copy followed from
            // an offset inside its head (read in small chunks) would otherwise be found
            // "replaced" on every read, and decided again for ever.
            let got = read_with_overlap(&h, t.read, overlap, &mut self.buffer);
            let replaced_since = |n: usize| {
                n < overlap
                    || self.buffer[..overlap] != t.tail[..]
                    || (n > overlap && !identity::begins_with(&h, &t.head).unwrap_or(false))
            };
            let n = match got {
                Ok(n) if replaced_since(n) => {
                    if held {
                        t.handle = Some(h);
                    }
                    let meta = t
                        .handle
                        .as_ref()
                        .and_then(|h| h.meta().ok())
                        .unwrap_or(meta);
                    return self.replaced(t, meta, now, sink, false);
                }
                Ok(n) if n == overlap => break,
                Ok(n) => n,
                Err(e) => {
                    error = Some(format!("cannot read {path}: {e}"));
                    break;
                }
            };
            let mut section = Section::open(sink);
            t.consume(&self.buffer[overlap..n], now, &mut *section);
            self.consumed += (n - overlap) as u64;
            section.record(id, Some(record(&t)));
            drop(section);
            budget = budget.saturating_sub(n as u64);
            if budget == 0 {
                more = true;
                break;
            }
            // A followed file read up to the size this pass's fstat saw: what was written
            // after it wakes another pass (or waits for the poll), as a write after the end of
            // this pass would; looking for it now costs two more `pread`s per file per pass.
            // A draining file is read to its end: the pass may close it.
            if t.phase == Phase::Following && t.read >= meta.size {
                break;
            }
        }
        sink.error(&path, error.as_deref());
        let counted = t.read > before;
        t.size = meta.size.max(t.read);
        if held {
            t.handle = Some(h);
        }
        if counted && meta.links == 0 {
            sink.durable();
        }
        if let Phase::Draining { since } = t.phase {
            let quiet_since = since.max(t.last_data);
            if !more && now.saturating_duration_since(quiet_since) >= self.options.rotate_wait {
                self.close(t, now, sink);
                return false;
            }
        }
        self.files.insert(id, t);
        more
    }

    /// The content of `t` was replaced (truncation, a copy written over it in place). Its old
    /// content is remembered (a copy of it may hold what was not read yet), shadows of it are
    /// resolved, and the new content is decided on like a new file's.
    fn replaced(
        &mut self,
        t: Box<Tracked<F::File>>,
        meta: Meta,
        now: Instant,
        sink: &mut impl Sink,
        remembered: bool,
    ) -> bool {
        // A record held is not complete: the old content is remembered read to its start
        // (the committed offset), so that a copy of it (copytruncate's) is read from there and
        // the record made whole; without a copy in the globs it is lost, as lines written
        // before a truncation and not yet read are. The new content gets a new assembler.
        let old = Known {
            truncated: true,
            ..known(&t)
        };
        let path = t.path_shared();
        self.resolve_shadows(t.id, &old, now, sink);
        if let Phase::Draining { .. } = t.phase {
            let mut section = Section::open(sink);
            section.record(t.id, None);
            section.event(
                EventKind::ReplacedWhileDraining,
                &path,
                &format!("shrank or was replaced after {} bytes; closed", old.offset),
            );
            if !remembered {
                self.remember(old, now, &mut *section);
            }
            drop(section);
            return false;
        }
        let Tracked {
            id,
            path: fs_path,
            symlink,
            handle,
            ..
        } = *t;
        let reopened = match handle {
            Some(h) => Some(h),
            None => self.fs.open(&fs_path).ok(),
        };
        let Some(h) = reopened else {
            let mut section = Section::open(sink);
            section.record(id, None);
            if !remembered {
                self.remember(old, now, &mut *section);
            }
            drop(section);
            return false;
        };
        // The new content may be a copy still being written (copytruncate writing over an
        // older rotation in place): too short yet to tell, it waits as a new file does.
        let decision = self
            .decide(&fs_path, &h, meta, false, meta.size > 0)
            .unwrap_or_else(|| Decision::pending(now));
        let mut n = self.track(
            fs_path,
            symlink,
            Some(h),
            meta,
            decision.start,
            decision.skipping,
            now,
        );
        n.phase = decision.phase;
        n.set_replay(decision.replay.as_ref());
        if !self.fs.may_hold_open() {
            n.handle = None;
        }
        let mut section = Section::open(sink);
        section.event(
            EventKind::Truncated,
            &path,
            &format!(
                "shorter than the {} bytes read, or replaced; the new content: {}",
                old.offset, decision.detail
            ),
        );
        if let Some(i) = decision.consumed_restored {
            self.restored.swap_remove(i);
        }
        if let Some(i) = decision.consumed_gone {
            self.gone.remove(i);
        }
        if !remembered {
            self.remember(old, now, &mut *section);
        }
        section.record(id, Some(record(&n)));
        self.files.insert(id, Box::new(n));
        drop(section);
        // New content: saved before its lines are counted, as a new file's.
        sink.durable();
        true
    }

    /// Finds the followed files whose content was replaced (truncated, or written over in
    /// place), remembers every old content, decides on the files waiting, then on the new
    /// contents. In this order a copy decided on finds the content it copies whatever the
    /// rotation did: a copy written into a file that was waiting (copytruncate into an emptied
    /// rotation) finds the truncated original's content; a copy written over an older
    /// rotation in place finds its original followed, even one that was waiting itself.
    /// `before_reads`: the pass reads the files next, and a file that grew past its offset is
    /// left to its read to check ([`told_by_the_read`]); a scan checks every file itself.
    fn handle_replaced_and_pending(
        &mut self,
        now: Instant,
        sink: &mut impl Sink,
        named: Option<&BTreeSet<FileId>>,
        before_reads: bool,
    ) -> bool {
        // Shadows too: a copy's own content can be replaced (the live file taken for a copy,
        // then truncated by copytruncate and written on by its writer); what it holds then is
        // not the copy any more, and is decided on as new content, in this same order.
        let checked: Vec<FileId> = self
            .files
            .values()
            .filter(|t| {
                matches!(t.phase, Phase::Following | Phase::Shadow { .. })
                    && !t.in_turns()
                    && self.in_pass(t, named, now)
            })
            .map(|t| t.id)
            .collect();
        let mut replaced: Vec<(FileId, Meta)> = Vec::new();
        let mut decided_on_little: Vec<(FileId, Meta)> = Vec::new();
        for id in checked {
            let t = &self.files[&id];
            let Some(h) = t.handle.as_ref() else { continue };
            let Ok(meta) = h.meta() else { continue };
            let left_to_the_read = before_reads && told_by_the_read(t, meta);
            if !left_to_the_read && content_replaced(t, h, meta) {
                replaced.push((id, meta));
            } else if t.phase != Phase::Following {
                // An intact shadow: `check_shadow` looks at it in the read.
                continue;
            } else if grew_past_what_it_was_decided_by(t, meta) {
                decided_on_little.push((id, meta));
            } else {
                // The file's read in this pass uses this fstat (one per file per pass): what
                // is written after it wakes another pass.
                self.pass_meta.insert(id, meta);
            }
        }
        if named.is_some() && !(replaced.is_empty() && decided_on_little.is_empty()) {
            // What replaced content is (a copy of which file, read from where) is decided
            // against every file as it is now: copytruncate writes the copy, then truncates the
            // original, and a pass may know of the first only. The pass looks at every file.
            return false;
        }
        if !replaced.is_empty() {
            let mut section = Section::open(sink);
            for (id, _) in &replaced {
                let old = Known {
                    truncated: true,
                    ..known(&self.files[id])
                };
                self.remember(old, now, &mut *section);
            }
            drop(section);
        }
        self.decide_pending(now, sink);
        for (id, meta) in replaced {
            let t = self.files.remove(&id).expect("listed");
            self.replaced(t, meta, now, sink, true);
        }
        // A file decided on by its first few bytes, nothing read from it since, that grew past
        // them: the same file growing, or a copy alike in those bytes written over it in place
        // (copytruncate into an old rotation). Decided again by all it holds now, as a new
        // file would be, after the files waiting (its original may be one); when that says "a
        // new file, from its beginning" (it grew), it is read on as it was.
        for (id, meta) in decided_on_little {
            let Some(t) = self.files.remove(&id) else {
                continue;
            };
            let again = t
                .handle
                .as_ref()
                .and_then(|h| self.decide(&t.path, h, meta, false, meta.size > 0));
            if again
                .as_ref()
                .is_some_and(Decision::is_new_from_its_beginning)
            {
                self.pass_meta.insert(id, meta);
                self.files.insert(id, t);
            } else {
                self.replaced(t, meta, now, sink, false);
            }
        }
        true
    }

    /// Checkpoint records whose inode is listed but holds other content now (truncated while
    /// the exporter was down) are marked truncated before any file is decided on: a copy of
    /// that content taken before it was all read (copytruncate's) is then told by its first
    /// bytes, whatever order the files come in.
    fn mark_replaced_restored(&mut self, by_id: &BTreeMap<FileId, &Found>) {
        for r in &mut self.restored {
            if r.known.truncated || !r.known.has_content() {
                continue;
            }
            let Some(found) = by_id.get(&r.known.id) else {
                continue;
            };
            let Ok(h) = self.fs.open(&found.path) else {
                continue;
            };
            let Ok(meta) = h.meta() else { continue };
            if meta.id == r.known.id && !r.known.continues_in(&h, meta.size) {
                r.known.truncated = true;
            }
        }
    }

    /// Decides on the files waiting where they can be, before anything else: one that turns
    /// out to be an original is then followed when its copies are decided on.
    fn decide_pending(&mut self, now: Instant, sink: &mut impl Sink) {
        let mut pending: Vec<(FileId, Instant, bool, u64, usize)> = self
            .files
            .iter()
            .filter_map(|(id, t)| match t.phase {
                Phase::Pending { since, free } => {
                    let size = t
                        .handle
                        .as_ref()
                        .and_then(|h| h.meta().ok())
                        .map_or(0, |m| m.size);
                    Some((*id, since, free, size, t.path.as_os_str().len()))
                }
                _ => None,
            })
            .collect();
        // The largest first, then the shorter name: among files waiting, an original (a copy
        // is never larger) is decided on before its copy.
        pending.sort_by_key(|&(id, _, _, size, name)| (std::cmp::Reverse(size), name, id));
        for (id, since, free, _, _) in pending {
            self.check_pending(id, since, free, now, sink);
        }
    }

    /// A pending file: decided once it can be (or must be); then read like any other.
    fn check_pending(
        &mut self,
        id: FileId,
        since: Instant,
        free: bool,
        now: Instant,
        sink: &mut impl Sink,
    ) {
        let Some(t) = self.files.get_mut(&id) else {
            return;
        };
        let Some(Ok(meta)) = t.handle.as_ref().map(|h| h.meta()) else {
            return;
        };
        if meta.size == 0 && !free {
            // Still empty: the patience starts with its first bytes.
            t.phase = Phase::Pending { since: now, free };
            return;
        }
        // Still growing (a copy being written, however slowly the copier runs): the patience
        // starts again from its last growth, so that a copy is never decided before the
        // truncate that follows its end. Bounded: only a file that is still all alike and
        // shorter than a head waits.
        let mut since = since;
        if meta.size != t.size && !free {
            t.size = meta.size;
            since = now;
            t.phase = Phase::Pending { since, free };
        }
        let t = &self.files[&id];
        let patient = !free && now.saturating_duration_since(since) < self.options.rotate_wait;
        let path = t.path.clone();
        let decision = {
            let h = t
                .handle
                .as_ref()
                .expect("pending files hold their descriptor");
            self.decide(&path, h, meta, false, patient)
        };
        let Some(decision) = decision else { return };
        let t = self.files.remove(&id).expect("present");
        let mut n = self.track(
            t.path,
            t.symlink,
            t.handle,
            meta,
            decision.start,
            decision.skipping,
            now,
        );
        n.phase = match decision.phase {
            Phase::Following if free => Phase::Draining { since: now },
            other => other,
        };
        n.set_replay(decision.replay.as_ref());
        let mut section = Section::open(sink);
        if let Some(i) = decision.consumed_restored {
            self.restored.swap_remove(i);
        }
        if let Some(i) = decision.consumed_gone {
            self.gone.remove(i);
        }
        if decision.consumed_restored.is_some() || decision.consumed_gone.is_some() {
            self.publish_remembered(&mut *section);
        }
        section.event(decision.kind, n.path_str(), &decision.detail);
        section.record(id, Some(record(&n)));
        self.files.insert(id, Box::new(n));
        drop(section);
        sink.durable();
    }

    /// A shadow of `of`: nothing to read while `of` is intact. When `of` is gone, the shadow
    /// is read from where `of` was read to.
    fn check_shadow(&mut self, id: FileId, of: FileId, now: Instant, sink: &mut impl Sink) {
        let shadow_head = self
            .files
            .get(&id)
            .map(|t| t.head.clone())
            .unwrap_or_default();
        // The original by identity holds the content this is a copy of while its first bytes
        // are the copy's; other content under its inode (truncated and written again, found
        // so after a restart) is not the original any more: then it is gone (below).
        // An original shorter than the copy's head is not intact (a copy is never larger than
        // its intact original): new content after a truncate that starts alike is not it.
        let original = self.files.get(&of).filter(|o| {
            let (first, _) = o.first_bytes();
            !shadow_head.is_empty() && first.starts_with(&shadow_head)
        });
        if let Some(original) = original {
            if let Phase::Shadow { of: next } = original.phase {
                // A copy of a copy: the original of both.
                if let Some(t) = self.files.get_mut(&id) {
                    t.phase = Phase::Shadow { of: next };
                }
                return;
            }
            // The original's size now, not as last read: a copy being written grows while the
            // original does, and a reader running late has an old size for the original.
            let now_size = original
                .handle
                .as_ref()
                .and_then(|h| h.meta().ok())
                .map(|m| m.size);
            if now_size.is_some_and(|s| s < original.read) {
                // Truncated: decided when the original is read next (its shadows resolved).
                return;
            }
            let original_size = original.size.max(original.read).max(now_size.unwrap_or(0));
            // How far the original was read, and its marker there (known when it is where the
            // original's lines end).
            let committed = original.committed();
            let original_marker = (original.marker_at == committed).then_some(original.marker);
            let Some(t) = self.files.get_mut(&id) else {
                return;
            };
            let size = match t.handle.as_ref().map(|h| h.meta()) {
                Some(Ok(m)) => m.size,
                _ => t.size,
            };
            if size != t.size {
                t.last_data = now;
            }
            t.size = size;
            // The copy's lines before where the original was read to were counted there, when
            // it holds the same bytes up to that point: it stands there now (saved so), so that
            // when it grows past its original or outlives it, it is read from there — found
            // equal while neither was read (two files alike after an in-place copy), it stood
            // at 0 and would count again what the original counted since.
            let len = committed.min(MARKER_LEN);
            let tail = match (original_marker, t.handle.as_ref()) {
                (Some(marker), Some(h)) if committed > t.verified && committed <= size => {
                    identity::read_range(h, committed - len, len)
                        .ok()
                        .filter(|b| b.len() as u64 == len && Digest::of(b) == marker)
                }
                _ => None,
            };
            if let Some(tail) = tail {
                let marker = Digest::of(&tail);
                t.verified = committed;
                t.read = committed;
                t.tail = tail;
                t.marker = marker;
                t.marker_at = committed;
                t.line_marker = (committed, marker);
                let mut section = Section::open(sink);
                section.record(id, Some(record(t)));
                drop(section);
            }
            if size > original_size {
                // More than the original ever had: not a copy. Read it from where it was
                // found equal (to its end, when it is out of the globs).
                let mut section = Section::open(sink);
                t.phase = match t.left {
                    Some(_) => Phase::Draining { since: now },
                    None => Phase::Following,
                };
                t.lines.reset();
                if let Some(r) = &mut t.records {
                    r.abandon();
                }
                section.event(
                    EventKind::New,
                    t.path_str(),
                    &format!("grew past its original; read from {}", t.verified),
                );
                section.record(id, Some(record(t)));
                drop(section);
            } else if t.left.is_some()
                && now.saturating_duration_since(t.last_data) >= self.options.rotate_wait
            {
                // Out of the globs, no larger than its intact original and quiet: a copy
                // renamed away; nothing of it is to be read.
                let t = self.files.remove(&id).expect("present");
                let mut section = Section::open(sink);
                section.record(id, None);
                section.event(
                    EventKind::Closed,
                    t.path_str(),
                    "a copy out of the globs, quiet while its original is intact",
                );
            }
            return;
        }
        // The original is gone (closed after draining, replaced, or not found again after a
        // restart): the content it held was read as far as its records say. The furthest
        // record this copy continues is that content's (its inode may be another's by now, or
        // the record detached from it); else the latest record of the original's inode.
        let holding = self.furthest_known_in(id);
        let gone = self
            .gone
            .iter()
            .rev()
            .find(|(k, _)| k.id == of)
            .map(|(k, _)| Known::clone(k));
        let restored = self
            .restored
            .iter()
            .find(|r| r.known.id == of)
            .map(|r| r.known.clone());
        // The checkpoint record of the original is its latest state; gone records of the same
        // inode are older contents of it (truncated before).
        let restored = holding.or(restored);
        match restored.or(gone) {
            Some(k) => self.resolve_shadow(id, &k, now, sink),
            None => {
                // Nothing known about the original: read the shadow from where it was found
                // equal.
                let Some(t) = self.files.get_mut(&id) else {
                    return;
                };
                let mut section = Section::open(sink);
                t.phase = Phase::Following;
                t.lines.reset();
                if let Some(r) = &mut t.records {
                    r.abandon();
                }
                section.record(id, Some(record(t)));
                drop(section);
            }
        }
    }

    /// The record of content read that file `id` holds furthest (same head, same bytes
    /// before the offset), among the remembered gone content and the checkpoint records of a
    /// related name; else one of truncated content it is a shorter copy of.
    fn furthest_known_in(&self, id: FileId) -> Option<Known> {
        let t = self.files.get(&id)?;
        let opened;
        let h = match t.handle.as_ref() {
            Some(h) => h,
            None => {
                opened = self.fs.open(&t.path).ok()?;
                &opened
            }
        };
        let size = h.meta().ok()?.size;
        let head = &t.head;
        self.gone
            .iter()
            .map(|(k, _)| &**k)
            .chain(self.restored.iter().map(|r| &r.known))
            .filter(|k| {
                k.has_content()
                    && identity::related(Path::new(&k.path), &t.path)
                    && match head.get(..k.head.len as usize) {
                        Some(start) => Digest::of(start) == k.head,
                        // A copy shorter than the content's head (taken before it grew that
                        // far): its first bytes are the content's first bytes.
                        None => k.first.get(..head.len()) == Some(&head[..]),
                    }
            })
            .filter(|k| k.continues_in(h, size) || k.copied_before_offset(h, size))
            .max_by_key(|k| (k.continues_in(h, size), k.offset))
            .cloned()
    }

    fn resolve_shadows(
        &mut self,
        of: FileId,
        original: &Known,
        now: Instant,
        sink: &mut impl Sink,
    ) {
        let shadows: Vec<FileId> = self
            .files
            .values()
            .filter(|t| t.phase == Phase::Shadow { of })
            .map(|t| t.id)
            .collect();
        for id in shadows {
            // A shadow made of an older content of the inode (truncated and written again
            // while the exporter was down) is that content's copy, not this one's: it is
            // resolved by what it holds.
            // Content of the original read less far than the shadow was found equal to it is
            // newer content of its inode (the original truncated and adopted again after a
            // restart, its record not fitting any more): not this shadow's either.
            let (head, verified) = self
                .files
                .get(&id)
                .map(|t| (t.head.clone(), t.verified))
                .unwrap_or_default();
            let n = head.len().min(original.first.len());
            let of_this = original.first.is_empty()
                || (head[..n] == original.first[..n] && original.offset >= verified);
            let held = (!of_this).then(|| self.furthest_known_in(id)).flatten();
            self.resolve_shadow(id, held.as_ref().unwrap_or(original), now, sink);
        }
    }

    /// The original of shadow `id` is gone, read to `original.offset`: the shadow takes over
    /// from there (reading the lines the original lost), or, if it holds less, it is known.
    fn resolve_shadow(&mut self, id: FileId, original: &Known, now: Instant, sink: &mut impl Sink) {
        let Some(t) = self.files.get(&id) else { return };
        let opened = match t.handle {
            Some(_) => None,
            None => self.fs.open(&t.path).ok(),
        };
        let Some(h) = t.handle.as_ref().or(opened.as_ref()) else {
            return;
        };
        let meta = h.meta().ok();
        let size = meta.map_or(t.size, |m| m.size);
        // Its own content replaced since it was found a copy (another copy written in place
        // over it, as copytruncate does into an old rotation): it holds none of that content
        // now, whatever its size. It waits, as a new file does, and is decided afresh.
        if meta.is_some_and(|m| content_replaced(t, h, m)) {
            let t = self.files.get_mut(&id).expect("present");
            if t.handle.is_none() {
                t.handle = opened;
            }
            t.phase = Phase::Pending {
                since: now,
                free: false,
            };
            t.size = size;
            let mut section = Section::open(sink);
            section.event(
                EventKind::Truncated,
                t.path_str(),
                &format!(
                    "no longer a copy of {}: its content was replaced; decided again",
                    original.path
                ),
            );
            section.record(id, Some(record(t)));
            return;
        }
        let holds = original.continues_in(h, size);
        let ends_line = identity::read_range(h, size.saturating_sub(1), 1)
            .ok()
            .is_none_or(|b| b.first() == Some(&b'\n'));
        let (start, skipping, kind, detail) = if holds {
            // Never before where it was found equal to its original: the bytes before were
            // counted there, whatever record of the original is at hand now.
            let start = original.offset.max(t.verified);
            (
                start,
                false,
                EventKind::TailRecovered,
                format!(
                    "{} was read to {start}; the rest is read here",
                    original.path
                ),
            )
        } else if size <= original.offset {
            // All it holds was read from the original; a line cut at its end was too.
            (
                size,
                !ends_line,
                EventKind::Recognised,
                format!("a copy of {} up to {}, all read there", original.path, size),
            )
        } else {
            (
                t.verified,
                false,
                EventKind::New,
                format!(
                    "no longer a copy of {}; read from {}",
                    original.path, t.verified
                ),
            )
        };
        let meta = Meta {
            id,
            size,
            changed: 0,
            links: 1,
            is_file: true,
            special: false,
        };
        let (path, symlink) = (t.path.clone(), t.symlink);
        let handle = match self.files.remove(&id).and_then(|t| t.handle) {
            Some(h) => Some(h),
            None => opened,
        };
        let mut n = self.track(path, symlink, handle, meta, start, skipping, now);
        if holds {
            n.set_replay(original.replay.as_ref());
        }
        if !self.fs.may_hold_open() {
            n.handle = None;
        }
        let mut section = Section::open(sink);
        section.event(kind, n.path_str(), &detail);
        section.record(id, Some(record(&n)));
        self.files.insert(id, Box::new(n));
        drop(section);
    }

    /// Stops reading a drained file: its last unterminated line counts, and its content is
    /// remembered.
    fn close(&mut self, mut t: Box<Tracked<F::File>>, now: Instant, sink: &mut impl Sink) {
        let path = t.path_shared();
        let mut section = Section::open(sink);
        t.finish_records(&mut *section);
        let end = Known {
            offset: t.read,
            marker: t
                .handle
                .as_ref()
                .and_then(|h| identity::marker(h, t.read).ok())
                .unwrap_or_else(|| Digest::of(&t.tail)),
            // All of it was read and every record held emitted.
            replay: None,
            ..known(&t)
        };
        section.record(t.id, None);
        section.event(EventKind::Closed, &path, "drained");
        self.remember(end.clone(), now, &mut *section);
        drop(section);
        self.paths.retain(|_, id| *id != t.id);
        self.resolve_shadows(t.id, &end, now, sink);
        // Saved before the descriptor goes: after it, a deleted file's content is gone.
        sink.durable();
        drop(t);
    }

    /// One-shot: every file is read to its end, including a last line without a newline.
    pub fn finish_all(&mut self, sink: &mut impl Sink) {
        for t in self.files.values_mut() {
            t.finish_records(sink);
        }
    }

    /// Emits the multi-line records whose file got no new line for the framing's
    /// `flush_after` (the writer paused: the record is complete). Returns the shortest wait
    /// left for a record still held, to wake up for it.
    pub fn flush_idle(&mut self, now: Instant, sink: &mut impl Sink) -> Option<Duration> {
        let after = self.options.framing.as_ref()?.flush_after()?;
        let mut next: Option<Duration> = None;
        for (id, t) in self.files.iter_mut() {
            if !t.records.as_ref().is_some_and(Assembler::holds_record) {
                continue;
            }
            let idle = now.saturating_duration_since(t.last_data);
            if idle < after {
                let left = after - idle;
                next = Some(next.map_or(left, |n| n.min(left)));
                continue;
            }
            let mut section = Section::open(sink);
            t.flush_record(&mut *section);
            section.record(*id, Some(record(t)));
            drop(section);
        }
        next
    }
}

/// Whether the content `t` follows is still in its file: no shorter than what was read, and
/// starting with the same bytes (the file is opened by path when no descriptor is held).
fn original_intact<F: Fs>(t: &Tracked<F::File>, fs: &F) -> bool {
    let check = |h: &F::File| h.meta().is_ok_and(|m| !content_replaced(t, h, m));
    match t.handle.as_ref() {
        Some(h) => check(h),
        None => fs
            .open(&t.path)
            .is_ok_and(|h| h.meta().is_ok_and(|m| m.id == t.id) && check(&h)),
    }
}

/// Reads at `offset - overlap` into `buf` until it holds more than `overlap` bytes or the
/// file ends (a read may give fewer bytes than asked); returns how many it holds.
fn read_with_overlap<H: Handle>(
    h: &H,
    offset: u64,
    overlap: usize,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let from = offset - overlap as u64;
    let mut got = 0;
    while got <= overlap {
        match h.read_at(from + got as u64, &mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Whether the content of `t` (open as `h`) was replaced: it is shorter now, or starts
/// differently (truncated and written again past the offset). Not read again while size,
/// ctime and the offset are what they were at the last check that found it unchanged: a
/// truncation moves ctime (a replacement of the same size within one ctime tick, about 4 ms,
/// is found at the file's next change instead).
fn content_replaced<H: Handle>(t: &Tracked<H>, h: &H, meta: Meta) -> bool {
    let stamp = (meta.size, meta.changed, t.read);
    if meta.changed != 0 && t.checked.get() == Some(stamp) {
        return false;
    }
    let replaced = meta.size < t.read
        || (!t.head.is_empty()
            && !identity::starts_with_bytes(h, meta.size, &t.head).unwrap_or(true));
    if !replaced {
        t.checked.set(Some(stamp));
    }
    replaced
}

/// Whether the read of `t` about to be made tells by itself whether its content was replaced,
/// so that its first bytes need not be read before (a `pread` per file per pass saved): a
/// followed file read from an offset that grew past it is read with the bytes before the
/// offset, and its first bytes are compared after the read ([`Tailer::read_file`]); content
/// replaced before the read is found there, as content replaced after this check would be,
/// and nothing of it is counted. A file shorter than its offset is found by its size; one of
/// the same size (written over in place), one nothing was read from yet (its predecessor's
/// partial lines go to it first) and one without a known head are checked as before.
fn told_by_the_read<H>(t: &Tracked<H>, meta: Meta) -> bool {
    t.phase == Phase::Following && t.read > 0 && meta.size > t.read && !t.head.is_empty()
}

/// Whether `t` was decided on by fewer bytes than a head, nothing was read from it since (no
/// whole line: nothing counted), and it grew past them. Those few bytes alike do not tell its
/// growth from content alike written over it in place, as a copy of another log is.
fn grew_past_what_it_was_decided_by<H>(t: &Tracked<H>, meta: Meta) -> bool {
    let known = t.head.len() as u64;
    known < HEAD_LEN && meta.size > known && t.lines_end() == 0 && t.replay.is_none()
}

impl Decision {
    /// A file not known in any way, read from its beginning (what growth of a file nothing
    /// was read from is decided as).
    fn is_new_from_its_beginning(&self) -> bool {
        self.kind == EventKind::New
            && self.start == 0
            && !self.skipping
            && self.phase == Phase::Following
            && self.replay.is_none()
            && self.consumed_restored.is_none()
            && self.consumed_gone.is_none()
    }

    /// Too short yet to tell whether it is a copy: held open, not read, decided later.
    fn pending(now: Instant) -> Decision {
        Decision {
            start: 0,
            replay: None,
            skipping: false,
            phase: Phase::Pending {
                since: now,
                free: false,
            },
            kind: EventKind::New,
            detail: "too short yet to tell whether it is a copy: waits".into(),
            consumed_restored: None,
            consumed_gone: None,
        }
    }
}

/// Where new content is read from, and what that is.
struct Decision {
    start: u64,
    /// The lines after `start` already counted (the content's record said so).
    replay: Option<Replay>,
    skipping: bool,
    phase: Phase,
    kind: EventKind,
    detail: String,
    /// The checkpoint record or gone record this content was recognised as (used up).
    consumed_restored: Option<usize>,
    consumed_gone: Option<usize>,
}

/// Whether `rotated` is named as a rotation of `live` in the same directory: `live`'s name
/// followed by `.`, `-` or `_` and more (`0.log.20261206-101500`, `app.log.1`,
/// `app.log-20261206`).
fn is_rotation_of(live: &Path, rotated: &Path) -> bool {
    let (Some(l), Some(r)) = (live.file_name(), rotated.file_name()) else {
        return false;
    };
    let (l, r) = (l.as_encoded_bytes(), r.as_encoded_bytes());
    r.len() > l.len() + 1 && r.starts_with(l) && matches!(r[l.len()], b'.' | b'-' | b'_')
}

/// Whether `a` names a file better than `b`: a real path over a symlink, then the shorter,
/// then the first in order (stable, so a file never flaps between names).
fn preferred(a: &Found, b: &Found) -> bool {
    (a.symlink, a.path.as_os_str().len(), &a.path) < (b.symlink, b.path.as_os_str().len(), &b.path)
}

fn paths_of(listing: &Listing, id: FileId) -> impl Iterator<Item = &PathBuf> {
    listing
        .found
        .iter()
        .filter(move |f| f.meta.id == id)
        .map(|f| &f.path)
}

/// Where to start in a file at its end: after its last newline, skipping the line in progress
/// (if any): (offset, skip the line there).
fn end_position<H: Handle>(h: &H, size: u64, max_line_length: usize) -> (u64, bool) {
    if size == 0 {
        return (0, false);
    }
    let back = (max_line_length as u64 + 1).min(size).min(64 << 10);
    let tail = identity::read_range(h, size - back, back).unwrap_or_default();
    match memchr::memrchr(b'\n', &tail) {
        Some(i) if i + 1 == tail.len() => (size, false),
        Some(i) => (size - back + i as u64 + 1, true),
        None => (size, true),
    }
}
