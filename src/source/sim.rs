//! The tailer against a simulated filesystem: seeded random schedules of writes, rotations
//! (rename, copytruncate, copy over an older rotation in place, delete and recreate,
//! compression), listing errors, inode reuse, the descriptor budget running out, and crashes
//! that roll back to a checkpoint. Every line carries a unique key, so a loss and a double
//! count cannot cancel out: each key must be counted exactly once (or, in the schedules that
//! have copytruncate's documented race, at most once, and lost only if it was not yet read
//! when its file was truncated). Thousands of schedules run in a few seconds; a failure prints
//! its seed and the steps that led to it.
//!
//! What a tailer meets under load is modelled too: logrotate's copy seen while it is still
//! being written, the live file read (and written) between the copy and the truncate, listings
//! taken and applied steps apart (a reader running late), reloads that hand the files over to
//! a new tailer, and container logs (CRI, and Docker's json-file) whose stdout and stderr
//! records are split into partial lines and interleaved, across restarts and reloads.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::discover::{Globs, Listing};
use super::fs::{Entries, Entry, FileId, Fs, Handle, Meta};
use super::identity::Known;
use super::lines::LineStats;
use super::tailer::{
    EventKind, FileRecord, Phase, RecordPath, Sink, TailOptions, TailState, Tailer,
};
use crate::config::StartAt;
use crate::test_rng::Rng;

struct Inode {
    data: Vec<u8>,
    links: usize,
    open: usize,
    birth: u64,
    /// The world's clock at the last change of `data` (ctime).
    changed: u64,
}

#[derive(Default)]
struct World {
    inodes: HashMap<u64, Inode>,
    /// path → inode; directories are implicit (every file is in /logs or /logs/old).
    names: BTreeMap<PathBuf, u64>,
    free: Vec<u64>,
    next: u64,
    failing_dirs: HashSet<PathBuf>,
    budget: usize,
    held: usize,
    births: u64,
    /// The filesystem keeps no birth times (inode reuse is then told apart by content only).
    no_birth: bool,
    /// Ticks at every change of a file's data: what ctime says.
    clock: u64,
    /// What each directory held (names, and the inode of each file) at its last listing: a
    /// listing that finds the same is "kept" ([`Fs::list_kept`]) while `reuse` is on, as the
    /// real filesystem's kept listings are for scans woken by notifications.
    kept: HashMap<PathBuf, Vec<(String, Option<u64>)>>,
    reuse: bool,
}

impl World {
    fn alloc(&mut self) -> u64 {
        let ino = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        self.births += 1;
        let birth = if self.no_birth { 0 } else { self.births };
        self.clock += 1;
        self.inodes.insert(
            ino,
            Inode {
                data: Vec::new(),
                links: 0,
                open: 0,
                birth,
                changed: self.clock,
            },
        );
        ino
    }
    /// The data of `ino` is about to change: its ctime moves.
    fn data_mut(&mut self, ino: u64) -> Option<&mut Vec<u8>> {
        self.clock += 1;
        let clock = self.clock;
        self.inodes.get_mut(&ino).map(|i| {
            i.changed = clock;
            &mut i.data
        })
    }
    fn release(&mut self, ino: u64) {
        let i = &self.inodes[&ino];
        if i.links == 0 && i.open == 0 {
            self.inodes.remove(&ino);
            // Freed inode numbers are reused first, as ext4 and tmpfs often do.
            self.free.push(ino);
        }
    }
    fn link(&mut self, path: &Path, ino: u64) {
        if let Some(old) = self.names.insert(path.to_path_buf(), ino) {
            self.inodes.get_mut(&old).unwrap().links -= 1;
            self.release(old);
        }
        self.inodes.get_mut(&ino).unwrap().links += 1;
    }
    fn unlink(&mut self, path: &Path) -> Option<u64> {
        let ino = self.names.remove(path)?;
        self.inodes.get_mut(&ino).unwrap().links -= 1;
        self.release(ino);
        Some(ino)
    }
    /// rename(2): `to` is replaced if it exists.
    fn rename(&mut self, from: &Path, to: &Path) {
        if let Some(ino) = self.names.remove(from) {
            if let Some(old) = self.names.insert(to.to_path_buf(), ino) {
                self.inodes.get_mut(&old).unwrap().links -= 1;
                self.release(old);
            }
        }
    }
    fn hold(&mut self, ino: u64) {
        self.inodes.get_mut(&ino).unwrap().open += 1;
    }
    fn unhold(&mut self, ino: u64) {
        self.inodes.get_mut(&ino).unwrap().open -= 1;
        self.release(ino);
    }
}

#[derive(Clone)]
struct SimFs(Rc<RefCell<World>>);

struct SimFile {
    world: Rc<RefCell<World>>,
    ino: u64,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut w = self.world.borrow_mut();
        w.inodes.get_mut(&self.ino).unwrap().open -= 1;
        w.held -= 1;
        w.release(self.ino);
    }
}

fn meta(ino: u64, i: Option<&Inode>) -> Meta {
    Meta {
        id: FileId {
            dev: 1,
            ino,
            birth: i.map_or(0, |i| i.birth),
        },
        size: i.map_or(0, |i| i.data.len() as u64),
        links: i.map_or(1, |i| i.links as u64),
        changed: i.map_or(0, |i| i.changed),
        is_file: true,
        special: false,
    }
}

impl Handle for SimFile {
    fn meta(&self) -> io::Result<Meta> {
        let w = self.world.borrow();
        Ok(meta(self.ino, Some(&w.inodes[&self.ino])))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let w = self.world.borrow();
        let data = &w.inodes[&self.ino].data;
        let start = (offset as usize).min(data.len());
        // Short reads, as a real read may give.
        let n = (data.len() - start).min(buf.len()).min(97);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

impl SimFs {
    /// What `dir` holds now.
    fn list_now(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let w = self.0.borrow();
        if w.failing_dirs.contains(dir) {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let mut out: Vec<Entry> = Vec::new();
        for p in w.names.keys() {
            if let Ok(rest) = p.strip_prefix(dir) {
                let mut parts = rest.components();
                let first = parts
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned();
                let is_dir = parts.next().is_some();
                if !out.iter().any(|e| e.name == first) {
                    out.push(Entry {
                        name: first,
                        is_dir,
                        is_symlink: false,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Whether listings found unchanged are kept (a scan woken by a notification) or taken
    /// afresh (the poll, a new tailer); off also forgets what was kept, as the real one does.
    fn reuse(&self, on: bool) {
        let mut w = self.0.borrow_mut();
        if !on {
            w.kept.clear();
        }
        w.reuse = on;
    }
}

impl Fs for SimFs {
    type File = SimFile;
    fn birth_clock(&self) -> Option<u64> {
        let w = self.0.borrow();
        (!w.no_birth).then_some(w.births)
    }
    fn stat(&self, path: &Path) -> io::Result<Meta> {
        let w = self.0.borrow();
        match w.names.get(path) {
            Some(ino) => Ok(meta(*ino, Some(&w.inodes[ino]))),
            None if w.names.keys().any(|p| p.starts_with(path)) => Ok(Meta {
                is_file: false,
                ..meta(0, None)
            }),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
    fn is_symlink(&self, _: &Path) -> bool {
        false
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        self.list_now(dir)
    }
    fn list_kept(&self, dir: &Path) -> io::Result<(Entries, bool)> {
        let entries = self.list_now(dir);
        let mut w = self.0.borrow_mut();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                w.kept.remove(dir);
                return Err(e);
            }
        };
        let held: Vec<(String, Option<u64>)> = entries
            .iter()
            .map(|e| (e.name.clone(), w.names.get(&dir.join(&e.name)).copied()))
            .collect();
        let kept = w.reuse && w.kept.get(dir) == Some(&held);
        w.kept.insert(dir.to_path_buf(), held);
        Ok((entries.into(), kept))
    }
    fn forget_listing(&self, dir: &Path) {
        self.0.borrow_mut().kept.remove(dir);
    }
    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let mut w = self.0.borrow_mut();
        let ino = *w.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        w.inodes.get_mut(&ino).unwrap().open += 1;
        w.held += 1;
        Ok(SimFile {
            world: self.0.clone(),
            ino,
        })
    }
    fn may_hold_open(&self) -> bool {
        let w = self.0.borrow();
        w.held <= w.budget
    }
}

/// Counts lines by key, and keeps what a checkpoint would (records published per section).
#[derive(Default, Clone)]
struct Counter {
    counts: HashMap<u64, u32>,
    records: BTreeMap<FileId, FileRecord>,
    gone: Vec<Known>,
    restored: Vec<FileRecord>,
    depth: u32,
    events: Vec<String>,
    /// Lines that are not whole lines of the writer (read from the middle of a line, or from a
    /// compressed file).
    bad: Vec<String>,
    /// The tailer asked for a checkpoint.
    durable: bool,
    /// Files read that had been renamed away before any scan saw them.
    missed_read: u64,
    /// The path each number the tailer gave came with: one path per number, or the
    /// pipeline's `derive:` from the path would answer for another file.
    path_of_generation: HashMap<u64, String>,
}

impl Sink for Counter {
    fn begin(&mut self) {
        self.depth += 1;
    }
    fn end(&mut self) {
        self.depth -= 1;
    }
    fn record(&mut self, id: FileId, record: Option<FileRecord>) {
        assert!(self.depth > 0, "a record changed outside a section");
        match record {
            Some(r) => self.records.insert(id, r),
            None => self.records.remove(&id),
        };
    }
    fn remembered(&mut self, gone: Vec<Arc<Known>>, restored: &[FileRecord]) {
        self.gone = gone.iter().map(|k| Known::clone(k)).collect();
        self.restored = restored.to_vec();
    }
    fn line(&mut self, line: &str, path: RecordPath<'_>, stream: Option<&str>, _: Option<&str>) {
        let (path, generation) = (path.text, path.generation);
        match self.path_of_generation.get(&generation) {
            Some(before) if before != path => self.bad.push(format!(
                "number {generation} given to {before} and to {path}: {line:?}"
            )),
            Some(_) => {}
            None => {
                self.path_of_generation.insert(generation, path.to_owned());
            }
        }
        assert!(self.depth > 0, "a line counted outside a section");
        if line.starts_with('<') {
            // A container record: its parts `<key:i/n:stream>pad`, all of them, in order, on
            // the stream it was written to.
            match cri_record_key(line, stream) {
                Some(key) => *self.counts.entry(key).or_default() += 1,
                None => self.bad.push(format!("{path}: {stream:?} {line:?}")),
            }
            self.events
                .push(format!("  record {line:.16} ({stream:?}) from {path}"));
            return;
        }
        // A multi-line record `L<key>/<n> …` must hold exactly its n lines `  +<key>`.
        let mut lines = line.split('\n');
        let first = lines.next().unwrap_or("");
        let key: Option<u64> = first
            .strip_prefix('L')
            .and_then(|l| l.split(' ').next())
            .and_then(|k| match k.split_once('/') {
                None => k.parse().ok(),
                Some((k, n)) => {
                    let (key, n): (u64, usize) = (k.parse().ok()?, n.parse().ok()?);
                    let rest: Vec<&str> = lines.collect();
                    let whole = rest.len() == n && rest.iter().all(|l| *l == format!("  +{key}"));
                    whole.then_some(key)
                }
            });
        match key {
            Some(key) => *self.counts.entry(key).or_default() += 1,
            None => self.bad.push(format!("{path}: {line:?}")),
        }
        self.events.push(format!("  line {line:.12} from {path}"));
    }
    fn read(&mut self, _: &str, _: u64, _: LineStats) {}
    fn event(&mut self, kind: EventKind, path: &str, detail: &str) {
        if detail.contains("before it was first seen") {
            self.missed_read += 1;
        }
        self.events
            .push(format!("{}: {path}: {detail}", kind.as_str()));
    }
    fn error(&mut self, _: &str, _: Option<&str>) {}
    fn durable(&mut self) {
        assert_eq!(self.depth, 0, "durable() inside a section");
        self.durable = true;
    }
}

impl Counter {
    /// The checkpoint: what was published, at a section boundary.
    fn checkpoint(&self) -> (TailState, HashMap<u64, u32>) {
        assert_eq!(self.depth, 0);
        let mut files: Vec<FileRecord> = self.records.values().cloned().collect();
        files.extend(
            self.restored
                .iter()
                .filter(|r| !self.records.contains_key(&r.known.id))
                .cloned(),
        );
        (
            TailState {
                files,
                gone: self.gone.clone(),
            },
            self.counts.clone(),
        )
    }
}

/// What the application writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Records {
    /// One keyed line per record.
    Lines,
    /// Records of a start line and 0 to 2 continuations, joined by a start pattern.
    Multiline,
    /// CRI container lines: each record on stdout or stderr, split into 1 to 3 partial
    /// lines (`P` … `F`), the two streams' parts interleaved.
    Cri,
    /// The same records as Docker's json-file lines: a part is an object whose `log` ends in
    /// `\n` only on the record's last part.
    Docker,
}

impl Records {
    /// Container lines: records in parts, on two streams.
    fn in_parts(self) -> bool {
        matches!(self, Records::Cri | Records::Docker)
    }
}

/// A copy (copytruncate's) in progress: logrotate copies `src` into `dst` over several steps
/// while the application goes on writing to `src`, then truncates `src` — a few steps after
/// the copy ended, so lines written meanwhile are read from `src` or lost with any tailer.
struct Copying {
    src: u64,
    dst: u64,
    /// The copy has reached the end of `src`; `src` is truncated in this many steps.
    done: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Only `app.log` in the globs; rename and delete rotations (nothing may be lost).
    LiveOnlyRename,
    /// `app.log*` in the globs; every rotation kind, copies included (nothing may be lost).
    WithCopies,
    /// Only `app.log`; copytruncate too: lines not read when their file was truncated may be
    /// lost (copytruncate's race), nothing may be counted twice.
    LiveOnlyCopytruncate,
}

struct Sim {
    rng: Rng,
    /// How the tailer is driven (which scans may leave unchanged directories alone, which
    /// reads follow a scan), apart from `rng`: the world's schedule of a seed stays the same.
    side: Rng,
    /// The live file is matched by a glob that lists its directory (`app.lo[g]`) rather than
    /// by its plain path, so that scans can find the directory unchanged.
    listed: bool,
    fs: SimFs,
    kind: Kind,
    tailer: Tailer<SimFs>,
    counter: Counter,
    now: Instant,
    next_key: u64,
    /// The inode the application writes to, and a line it has half written (with the key
    /// it completes, if any).
    writing: u64,
    half: Option<(Option<u64>, Vec<u8>)>,
    /// Set when the app must reopen app.log soon (after a rename or delete).
    reopen_in: Option<u32>,
    /// Keys that may be lost (copytruncate's race, documented).
    may_lose: HashSet<u64>,
    /// Keys fully written, and which inode holds each (for the race's bookkeeping).
    written: Vec<(u64, u64)>,
    checkpoint: Option<(TailState, HashMap<u64, u32>)>,
    log: Vec<String>,
    rotations: u32,
    /// Whether a scan has seen the files since the last rotation. A file that appears and
    /// leaves the globs between two scans (shorter than a poll interval, its notification
    /// lost, a busy machine) is read only if found next to the file that took its place
    /// (renamed, born since a listing of the last minute began): only the rename-and-delete
    /// schedules do that, with its lines allowed to be lost, never counted twice.
    seen_since_rotation: bool,
    /// Whether the schedule has crashes (kill -9 and a restart from the last checkpoint).
    crashes: bool,
    /// Deleted files the tailer did not hold: what the application writes to them later is
    /// lost too.
    lost_with: Vec<u64>,
    /// The birth of the inode each written line went to (inode numbers are reused).
    written_birth: Vec<u64>,
    /// What is written. With records of several lines (multiline, CRI), rotations come at
    /// least flush_after after the last write (the writer finishes its record; a record held
    /// is emitted before a second rotation could delete its file: a held record has not been
    /// counted, like a line not yet read), and the writer finishes its records first.
    records: Records,
    /// CRI records being written, per stream (0 stdout, 1 stderr): key and parts to come.
    open: [Option<(u64, Vec<String>)>; 2],
    /// A copytruncate in progress.
    copying: Option<Copying>,
    /// A listing taken earlier, applied later (a reader running late).
    stale: Option<Listing>,
}

const RW: Duration = Duration::from_secs(5);

fn options(records: Records) -> TailOptions {
    TailOptions {
        start_at: StartAt::Beginning,
        max_line_length: 4096,
        rotate_wait: RW,
        framing: match records {
            Records::Lines => None,
            // Records start with `L`; one held for a second with no line after it is complete.
            Records::Multiline => {
                let c = crate::config::FileSourceConfig {
                    multiline: Some(crate::config::MultilineConfig {
                        start: Some("^L".into()),
                        continue_: None,
                        max_bytes: None,
                        flush_after: Some(Duration::from_secs(1)),
                    }),
                    ..Default::default()
                };
                super::records::Framing::from_config(&c, 4096)
            }
            Records::Cri | Records::Docker => {
                let c = crate::config::FileSourceConfig {
                    format: if records == Records::Cri {
                        crate::config::FileFormat::Cri
                    } else {
                        crate::config::FileFormat::Docker
                    },
                    ..Default::default()
                };
                super::records::Framing::from_config(&c, 4096)
            }
        },
    }
}

fn globs(kind: Kind, listed: bool) -> Globs {
    match kind {
        Kind::WithCopies => Globs::new(vec!["/logs/app.log*".into()], &[]),
        _ if listed => Globs::new(vec!["/logs/app.lo[g]".into()], &[]),
        _ => Globs::new(vec!["/logs/app.log".into()], &[]),
    }
}

impl Sim {
    fn new(seed: u64, kind: Kind, budget: usize, records: Records) -> Sim {
        let fs = SimFs(Rc::new(RefCell::new(World {
            budget,
            ..World::default()
        })));
        let ino = {
            let mut w = fs.0.borrow_mut();
            let ino = w.alloc();
            w.link(Path::new("/logs/app.log"), ino);
            // The application holds the file it writes to open.
            w.hold(ino);
            ino
        };
        let mut side = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let listed = side.chance(50);
        Sim {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            side,
            listed,
            tailer: Tailer::new(fs.clone(), globs(kind, listed), options(records)),
            records,
            open: [None, None],
            copying: None,
            stale: None,
            fs,
            kind,
            counter: Counter::default(),
            now: Instant::now(),
            next_key: 0,
            writing: ino,
            half: None,
            reopen_in: None,
            may_lose: HashSet::new(),
            written: Vec::new(),
            // A checkpoint of nothing, as a first start with a storage directory writes.
            checkpoint: Some((TailState::default(), HashMap::new())),
            log: Vec::new(),
            rotations: 0,
            seen_since_rotation: true,
            crashes: std::env::var("SIM_NO_CRASH").is_err(),
            lost_with: Vec::new(),
            written_birth: Vec::new(),
        }
    }

    /// The files of the last checkpoint, for traces.
    fn describe_checkpoint(&self) -> String {
        let Some((state, _)) = &self.checkpoint else {
            return "none".into();
        };
        state
            .files
            .iter()
            .map(|r| {
                format!(
                    "#{}@{} head {} ph {}",
                    r.known.id.ino,
                    r.known.offset,
                    r.known.head.len,
                    r.phase.code()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.counter.events.push(format!("OP {what}"));
        self.log.push(what);
    }

    fn w(&self) -> std::cell::RefMut<'_, World> {
        self.fs.0.borrow_mut()
    }

    fn append(&mut self, bytes: &[u8]) {
        let ino = self.writing;
        if let Some(data) = self.w().data_mut(ino) {
            data.extend_from_slice(bytes);
        }
    }

    /// Finishes the line written in two writes.
    fn finish_half(&mut self) {
        if let Some((key, rest)) = self.half.take() {
            self.append(&rest);
            if let Some(key) = key {
                self.written_whole(key);
            }
        }
    }

    /// Finishes every record in progress (the half line, the CRI records' remaining parts).
    fn finish_records(&mut self) {
        self.finish_half();
        for s in 0..2 {
            while self.open[s].is_some() {
                let line = self.next_container_part(s);
                self.append(&line.0);
                if let Some(key) = line.1 {
                    self.written_whole(key);
                }
            }
        }
    }

    /// The next container line (CRI or Docker) of stream `s` (a new record when none is
    /// open): its bytes, and the key it completes when it is the record's last part.
    fn next_container_part(&mut self, s: usize) -> (Vec<u8>, Option<u64>) {
        let name = ["stdout", "stderr"][s];
        let (key, mut parts) = match self.open[s].take() {
            Some(open) => open,
            None => {
                let key = self.next_key;
                self.next_key += 1;
                let n = 1 + self.rng.below(3) as usize;
                let parts = (0..n)
                    .map(|i| {
                        let pad = "x".repeat(self.rng.below(30) as usize);
                        format!("<{key}:{i}/{n}:{name}>{pad}")
                    })
                    .collect();
                (key, parts)
            }
        };
        let part = parts.remove(0);
        let last = parts.is_empty();
        if !last {
            self.open[s] = Some((key, parts));
        }
        let line = if self.records == Records::Docker {
            let end = if last { "\\n" } else { "" };
            format!("{{\"log\":\"{part}{end}\",\"stream\":\"{name}\",\"time\":\"2026-12-05T00:00:00.000000000Z\"}}\n")
        } else {
            let tag = if last { "F" } else { "P" };
            format!("2026-12-05T00:00:00Z {name} {tag} {part}\n")
        };
        (line.into_bytes(), last.then_some(key))
    }

    fn write_lines(&mut self, n: u64) {
        for _ in 0..n {
            if self.half.is_some() {
                self.finish_half();
                continue;
            }
            if self.records.in_parts() {
                let s = self.rng.below(2) as usize;
                let (line, key) = self.next_container_part(s);
                if self.rng.chance(10) {
                    let cut = 1 + self.rng.below(line.len() as u64 - 1) as usize;
                    self.append(&line[..cut]);
                    self.half = Some((key, line[cut..].to_vec()));
                    return;
                }
                self.append(&line);
                if let Some(key) = key {
                    self.written_whole(key);
                }
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            let pad = "x".repeat(self.rng.below(60) as usize);
            let line = if self.records == Records::Multiline {
                let n = self.rng.below(3);
                let mut record = format!("L{key}/{n} {pad}\n");
                for _ in 0..n {
                    record.push_str(&format!("  +{key}\n"));
                }
                record.into_bytes()
            } else {
                format!("L{key} {pad}\n").into_bytes()
            };
            if self.rng.chance(10) {
                let cut = 1 + self.rng.below(line.len() as u64 - 1) as usize;
                self.append(&line[..cut]);
                self.half = Some((Some(key), line[cut..].to_vec()));
                return;
            }
            self.append(&line);
            self.written_whole(key);
        }
    }

    /// Line `key` is complete in the file being written.
    fn written_whole(&mut self, key: u64) {
        let writing = self.writing;
        self.written.push((key, writing));
        let birth = self.birth(writing);
        self.written_birth.push(birth);
        // Written to a deleted file the tailer does not hold (after a restart): no tailer can
        // read it.
        if (self.unlinked(writing) && !self.tailer.files().any(|t| t.id.ino == writing))
            || self.lost_with.contains(&writing)
        {
            self.may_lose.insert(key);
        }
    }

    fn reopen(&mut self) {
        // The application reopens app.log (logrotate's postrotate): creates it if missing. A
        // runtime does not carry a record over into the new file.
        self.finish_records();
        let old = self.writing;
        let mut w = self.w();
        let existing = w.names.get(Path::new("/logs/app.log")).copied();
        let ino = match existing {
            Some(ino) => ino,
            None => {
                let ino = w.alloc();
                w.link(Path::new("/logs/app.log"), ino);
                ino
            }
        };
        w.hold(ino);
        w.unhold(old);
        drop(w);
        self.writing = ino;
        if existing.is_none() {
            // A new file: it must be seen before it can leave the globs.
            self.seen_since_rotation = false;
        }
    }

    fn scan(&mut self) {
        // A walk in progress (its listing taken steps ago) ends first: the tailer's thread
        // does one thing at a time.
        if let Some(listing) = self.stale.take() {
            self.note("the listing taken earlier is applied (the walk ends)");
            self.tailer
                .apply_listing(listing, self.now, &mut self.counter);
            self.honour_durable();
            return;
        }
        let stop = AtomicBool::new(false);
        // Most scans are woken by a notification and may leave unchanged directories alone;
        // the others are the poll's, which lists every directory afresh.
        let reuse = self.side.chance(70);
        self.fs.reuse(reuse);
        self.counter.events.push(format!(
            "TAILER scan{}",
            if reuse {
                " (unchanged directories left alone)"
            } else {
                ""
            }
        ));
        if self.w().failing_dirs.is_empty() {
            self.seen_since_rotation = true;
        }
        self.tailer.scan(self.now, &stop, &mut self.counter);
        self.honour_durable();
    }

    /// A checkpoint the tailer asked for is written before anything else happens (as the file
    /// source does, synchronously).
    fn honour_durable(&mut self) {
        if std::mem::take(&mut self.counter.durable) {
            self.checkpoint = Some(self.counter.checkpoint());
            self.counter.events.push(format!(
                "CHECKPOINT (asked by the tailer): {}",
                self.describe_checkpoint()
            ));
        }
    }

    fn tail(&mut self) {
        let scanned = self.rng.chance(60) || self.stale.is_some();
        if scanned {
            self.scan();
        }
        // Without a scan, half the passes read only some files, as a pass woken by file
        // notifications does: any subset (notifications are lost, or name a file written
        // long ago), now and then with a path no file has. Which files a pass reads must
        // never change what is counted, only when.
        let named: Option<Vec<PathBuf>> = (!scanned && self.rng.chance(50)).then(|| {
            let paths: Vec<PathBuf> = self.tailer.files().map(|t| t.path.clone()).collect();
            let mut named: Vec<PathBuf> =
                paths.into_iter().filter(|_| self.rng.chance(50)).collect();
            if self.rng.chance(5) {
                named.push(PathBuf::from("/nowhere/x.log"));
            }
            named
        });
        self.counter.events.push(format!(
            "TAILER read ({} files{})",
            self.tailer.files().count(),
            named
                .as_ref()
                .map_or(String::new(), |n| format!(", named {n:?}"))
        ));
        match &named {
            Some(named) => self.tailer.read_named(self.now, &mut self.counter, named),
            None => self.tailer.read_all(self.now, &mut self.counter),
        };
        self.tailer.flush_idle(self.now, &mut self.counter);
        self.honour_durable();
        let files: Vec<String> = self
            .tailer
            .files()
            .map(|t| {
                format!(
                    "{}#{}@{}/{} {:?}",
                    t.path.display(),
                    t.id.ino,
                    t.committed(),
                    t.size,
                    t.phase
                )
            })
            .collect();
        self.counter
            .events
            .push(format!("  files: {}", files.join(", ")));
    }

    fn rotated_names(&self) -> Vec<PathBuf> {
        (1..=3)
            .map(|i| PathBuf::from(format!("/logs/app.log.{i}")))
            .collect()
    }

    /// Shifts app.log.N → N+1 (the oldest deleted), as logrotate does before rotating.
    fn shift(&mut self) {
        let names = self.rotated_names();
        // The oldest rotation is deleted: what the tailer does not hold open (it has not seen
        // it since a restart: a listing error) and has not read goes with it, as with a delete.
        let oldest = self.w().names.get(&names[2]).copied();
        if let Some(ino) = oldest {
            if !self
                .tailer
                .files()
                .any(|t| t.id.ino == ino && !t.in_turns())
            {
                self.mark_unread(ino);
            }
        }
        let mut w = self.w();
        w.unlink(&names[2]);
        for i in (0..2).rev() {
            w.rename(&names[i], &names[i + 1]);
        }
    }

    fn step(&mut self) {
        let r = self.rng.below(100);
        if self.copying.is_some() && self.rng.chance(50) {
            self.progress_copy();
        }
        if let Some(n) = self.reopen_in.as_mut() {
            if *n == 0 {
                self.reopen_in = None;
                self.reopen();
                self.note("app reopens app.log");
            } else {
                *n -= 1;
            }
        }
        match r {
            0..=39 => {
                let n = 1 + self.rng.below(20);
                let (from, ino) = (self.next_key, self.writing);
                self.write_lines(n);
                self.note(format!("write L{from}..L{} to inode {ino}", self.next_key));
            }
            40..=64 => self.tail(),
            // Time passes, but not while the application still writes to a rotated file: a
            // writer that outlives rotate_wait loses lines with any tailer (documented).
            // Nor while a record is half written: a writer that pauses mid-record for longer
            // than flush_after has its record emitted in two (documented).
            // Nor between the end of logrotate's copy and its truncate: steps pass there (the
            // tailer reads, the writer writes), but not seconds — logrotate truncates right
            // after it copied (a file still whole after rotate_wait is a new one, not a copy).
            // Nor while the copy is shorter than a head: a copy that stalls there for longer
            // than rotate_wait is taken for a new file that starts alike (documented).
            65..=69
                if self.reopen_in.is_none()
                    && !(self.records == Records::Multiline && self.half.is_some())
                    && self
                        .copying
                        .as_ref()
                        .is_none_or(|c| c.done.is_none() && self.copied_a_head(c.dst)) =>
            {
                self.now += Duration::from_millis(200 + self.rng.below(3000));
            }
            // With renames and deletes only, a live file no scan has seen yet is sometimes
            // rotated too (a busy machine; drawn from the side stream, so that the schedules
            // that rotate only seen files stay as they were).
            70..=79
                if self.reopen_in.is_none()
                    && (self.seen_since_rotation
                        || (self.kind == Kind::LiveOnlyRename && self.side.chance(30)))
                    && self.copying.is_none() =>
            {
                // A runtime does not carry a record over into another file.
                if self.records.in_parts() {
                    self.finish_records();
                }
                if self.records == Records::Multiline {
                    // Rotations are further apart than flush_after from the last write: the
                    // writer finishes its record, and the last record of each file is
                    // complete (emitted) before the next rotation moves it.
                    self.finish_half();
                    self.tailer.read_all(self.now, &mut self.counter);
                    self.now += Duration::from_secs(2);
                    self.tailer.flush_idle(self.now, &mut self.counter);
                    self.honour_durable();
                }
                self.rotate()
            }
            80..=83 => {
                let failing = self.rng.chance(50);
                let mut w = self.w();
                if failing {
                    w.failing_dirs.insert(PathBuf::from("/logs"));
                } else {
                    w.failing_dirs.clear();
                }
                drop(w);
                self.note(format!("listing of /logs fails: {failing}"));
            }
            84..=86 => {
                self.checkpoint = Some(self.counter.checkpoint());
                let d = self.describe_checkpoint();
                self.note(format!("checkpoint: {d}"));
            }
            87..=88 if self.crashes => self.crash(),
            89..=90 if self.kind == Kind::WithCopies => self.compress(),
            // A slow walk: the listing is taken now and applied when the tailer's thread
            // next gets to scan or read (a reader running late); the world changes meanwhile.
            91..=93 if self.stale.is_none() => {
                let stop = AtomicBool::new(false);
                self.stale = Some(self.tailer.globs().expand(&self.fs, &stop));
                self.note("a listing is taken (applied some steps later)");
            }
            94..=95 => self.reload(),
            _ => self.tail(),
        }
    }

    /// A reload: a new tailer takes the files over (same options).
    fn reload(&mut self) {
        self.stale = None;
        self.note("reload");
        // A new tailer lists every directory afresh (the file source's first scan does).
        self.fs.reuse(false);
        let fresh = Tailer::new(
            self.fs.clone(),
            globs(self.kind, self.listed),
            options(self.records),
        );
        let old = std::mem::replace(&mut self.tailer, fresh);
        self.tailer.adopt_state_of(old, &mut self.counter);
        self.honour_durable();
    }

    /// Whether the last checkpoint has a record of inode `ino` that its content (at `path`)
    /// still continues: the restarted tailer finds the file by it, wherever it went.
    fn record_fits(&self, ino: u64, path: &Path) -> bool {
        let Some((state, _)) = &self.checkpoint else {
            return false;
        };
        let Ok(h) = self.fs.open(path) else {
            return false;
        };
        let Ok(size) = h.meta().map(|m| m.size) else {
            return false;
        };
        state
            .files
            .iter()
            .any(|r| r.known.id.ino == ino && r.known.continues_in(&h, size))
    }

    /// The copy being written at `dst` holds at least a head's bytes.
    fn copied_a_head(&self, dst: u64) -> bool {
        let w = self.fs.0.borrow();
        w.inodes
            .get(&dst)
            .is_some_and(|i| i.data.len() as u64 >= super::identity::HEAD_LEN)
    }

    /// logrotate's copy goes on: more bytes copied, or, once complete, the truncate comes
    /// nearer.
    fn progress_copy(&mut self) {
        let Some(c) = self.copying.as_ref() else {
            return;
        };
        let (src, dst) = (c.src, c.dst);
        match c.done {
            None => {
                let (have, total) = {
                    let w = self.fs.0.borrow();
                    (
                        w.inodes.get(&dst).map_or(0, |i| i.data.len()),
                        w.inodes.get(&src).map_or(0, |i| i.data.len()),
                    )
                };
                let step = 1 + self.rng.below(400) as usize;
                if have + step >= total {
                    // The copy reaches the end of what is there. A line being written is
                    // finished first (the key checker needs whole lines).
                    if self.writing == src {
                        self.finish_half();
                    }
                    let mut w = self.w();
                    let data = w
                        .inodes
                        .get(&src)
                        .map(|i| i.data.clone())
                        .unwrap_or_default();
                    if let Some(d) = w.data_mut(dst) {
                        *d = data;
                    }
                    drop(w);
                    let wait = self.rng.below(6) as u32;
                    self.copying.as_mut().expect("copying").done = Some(wait);
                    self.note(format!(
                        "the copy of inode {src} is complete; truncated in {wait} steps"
                    ));
                } else {
                    let mut w = self.w();
                    let more = w.inodes[&src].data[have..have + step].to_vec();
                    if let Some(d) = w.data_mut(dst) {
                        d.extend_from_slice(&more);
                    }
                    drop(w);
                    self.note(format!(
                        "the copy of inode {src} goes on: {} bytes",
                        have + step
                    ));
                }
            }
            Some(0) => self.truncate_copied(),
            Some(n) => self.copying.as_mut().expect("copying").done = Some(n - 1),
        }
    }

    /// The copy is complete: logrotate truncates the original. What was written after the
    /// copy and not read yet is lost with any tailer (logrotate destroys it).
    fn truncate_copied(&mut self) {
        let Some(c) = self.copying.take() else {
            return;
        };
        if self.writing == c.src {
            self.finish_half();
        }
        let copied = self
            .fs
            .0
            .borrow()
            .inodes
            .get(&c.dst)
            .map_or(0, |i| i.data.len() as u64);
        if self.kind == Kind::LiveOnlyCopytruncate {
            self.mark_unread(c.src);
        } else {
            self.mark_unread_from(c.src, copied);
        }
        if let Some(d) = self.w().data_mut(c.src) {
            d.clear();
        }
        // Like a rotation: the next one waits until a scan has seen the files since (what a
        // tailer has not seen it cannot read; the schedules do not do that).
        self.seen_since_rotation = false;
        self.note(format!(
            "copytruncate: inode {} truncated ({copied} bytes were copied)",
            c.src
        ));
    }

    fn rotate(&mut self) {
        self.rotations += 1;
        let unseen = !self.seen_since_rotation;
        self.seen_since_rotation = false;
        let how = match self.kind {
            Kind::LiveOnlyRename => self.rng.below(2),
            Kind::WithCopies => self.rng.below(4),
            Kind::LiveOnlyCopytruncate => self.rng.below(3),
        };
        let live = PathBuf::from("/logs/app.log");
        match how {
            0 => {
                // Rename (logrotate `create`): app.log → app.log.1 (or out of the globs into
                // /logs/old when only the live file is matched), a new app.log; the
                // application writes to the old one a little longer.
                let to = if self.kind == Kind::WithCopies {
                    self.shift();
                    self.rotated_names()[0].clone()
                } else {
                    // Next to it, out of the glob (dateext-style names never repeat).
                    PathBuf::from(format!("/logs/app.log-{}", self.rotations))
                };
                // Out of the glob, a file the tailer does not hold (it has not seen it since a
                // restart: a listing error) is found again only by its checkpoint record; with
                // its content replaced since (a copytruncate), what it holds now is lost.
                let ino = self.w().names.get(&live).copied();
                if let Some(ino) = ino.filter(|_| self.kind != Kind::WithCopies) {
                    let held = self
                        .tailer
                        .files()
                        .any(|t| t.id.ino == ino && !t.in_turns());
                    if !held && !self.record_fits(ino, &live) {
                        self.mark_unread(ino);
                    }
                    // Never seen: the tailer reads it only if it finds it next to the file
                    // that took its place, born since a listing of the last minute began
                    // (`drain_missed_rotations`); lost otherwise, never counted twice.
                    if !held && unseen {
                        self.mark_unread(ino);
                        self.lost_with.push(ino);
                    }
                }
                let mut w = self.w();
                w.rename(&live, &to);
                let ino = w.alloc();
                w.link(&live, ino);
                drop(w);
                self.reopen_in = Some(self.rng.below(4) as u32);
                self.note(format!("rename app.log -> {}", to.display()));
            }
            1 => {
                // Delete (the application still holds it open and writes to it a little
                // longer), then the application recreates it when it reopens. If the tailer
                // does not hold it (it has not seen it since a restart: a listing error), its
                // unread lines go with it.
                let ino = self.w().names.get(&live).copied();
                if let Some(ino) = ino {
                    if !self
                        .tailer
                        .files()
                        .any(|t| t.id.ino == ino && !t.in_turns())
                    {
                        self.mark_unread(ino);
                        self.lost_with.push(ino);
                    }
                }
                self.w().unlink(&live);
                self.reopen_in = Some(self.rng.below(4) as u32);
                self.note("delete app.log");
            }
            2 => {
                // copytruncate: copy app.log to app.log.1 (in the globs only WithCopies), then
                // truncate app.log; the application goes on writing at its (new) end. A
                // half-written line at the copy would be cut in two: finish it first
                // (logrotate's copy sees whatever bytes are there; the key checker needs
                // whole lines); likewise a record in progress.
                self.finish_records();
                // Plain lines: the copy often takes a while, and the truncate comes some
                // steps after it ends (the application writes, the tailer reads meanwhile).
                let phased = self.records == Records::Lines && self.rng.chance(60);
                let in_place = self.kind == Kind::WithCopies && self.rng.chance(40);
                let target = if self.kind == Kind::WithCopies {
                    if !in_place {
                        self.shift();
                    }
                    self.rotated_names()[0].clone()
                } else {
                    PathBuf::from(format!("/logs/app.log-{}", self.rotations))
                };
                let Some(live_ino) = self.w().names.get(&live).copied() else {
                    return;
                };
                if self.kind == Kind::LiveOnlyCopytruncate && !phased {
                    // What the tailer had not read from app.log is in a copy it cannot see.
                    self.mark_unread(live_ino);
                }
                if in_place {
                    // Writing over an older rotation destroys what it held: its lines the tailer
                    // had not read yet are lost by the rotation itself (no tailer can read
                    // them).
                    let old = self.w().names.get(&target).copied();
                    if let Some(old) = old {
                        self.mark_unread(old);
                    }
                }
                let first = if phased {
                    let len = self.fs.0.borrow().inodes[&live_ino].data.len() as u64;
                    // Often seen while shorter than a head, sometimes from the first bytes on.
                    if self.rng.chance(50) {
                        self.rng.below(len.min(600) + 1)
                    } else {
                        self.rng.below(len + 1)
                    }
                } else {
                    u64::MAX
                };
                let mut w = self.w();
                let mut data = w.inodes[&live_ino].data.clone();
                data.truncate(first.min(data.len() as u64) as usize);
                let copy = match w.names.get(&target).copied() {
                    Some(ino) if in_place => ino,
                    _ => {
                        let ino = w.alloc();
                        w.link(&target, ino);
                        ino
                    }
                };
                *w.data_mut(copy).unwrap() = data;
                if !phased {
                    w.data_mut(live_ino).unwrap().clear();
                }
                drop(w);
                if phased {
                    self.copying = Some(Copying {
                        src: live_ino,
                        dst: copy,
                        done: None,
                    });
                }
                self.note(format!(
                    "copytruncate app.log -> {} (in place: {in_place}, over some steps: {phased})",
                    target.display()
                ));
            }
            _ => {
                // Compress the oldest rotation, as `compress` without `delaycompress` would.
                self.compress();
            }
        }
    }

    /// The lines of inode `ino` the tailer has not read yet may be lost (its content is about
    /// to be destroyed where no tailer can see) — and, should the exporter crash before its
    /// next checkpoint, those it read after the last one.
    fn mark_unread(&mut self, ino: u64) {
        self.mark_unread_from(ino, 0);
    }

    /// [`Sim::mark_unread`] for the lines of `ino` at or after `from` only (those before it
    /// are in a copy).
    fn mark_unread_from(&mut self, ino: u64, from: u64) {
        let data = self.w().inodes[&ino].data.clone();
        // The offset read to is into the content the tailer last read; content that replaced
        // it (truncated and written again before the tailer looked) was not read at all.
        let read = self
            .tailer
            .files()
            .find(|t| {
                t.id.ino == ino && !matches!(t.phase, Phase::Shadow { .. } | Phase::Pending { .. })
            })
            .filter(|t| data.starts_with(t.head_bytes()))
            .map(|t| t.committed())
            .unwrap_or(0);
        let saved = self
            .checkpoint
            .as_ref()
            .and_then(|(state, _)| {
                state
                    .files
                    .iter()
                    .find(|r| r.known.id.ino == ino)
                    .map(|r| r.known.offset)
            })
            .unwrap_or(0);
        let read = if self.crashes { read.min(saved) } else { read };
        let mut at = 0u64;
        for line in data.split_inclusive(|b| *b == b'\n') {
            if at + line.len() as u64 > read && at >= from {
                if let Some(k) = parse_key(line) {
                    self.may_lose.insert(k);
                }
            }
            at += line.len() as u64;
        }
    }

    fn compress(&mut self) {
        let names = self.rotated_names();
        let target = self.w().names.get(&names[1]).copied();
        if let Some(ino) = target {
            // Compressed files are not read (documented): what the tailer does not hold open
            // and has not read is lost with the plain file.
            if !self
                .tailer
                .files()
                .any(|t| t.id.ino == ino && !t.in_turns())
            {
                self.mark_unread(ino);
            }
        }
        let mut w = self.w();
        if let Some(ino) = w.names.get(&names[1]).copied() {
            let mut gz = vec![0x1f, 0x8b, 8, 0];
            gz.extend(w.inodes[&ino].data.iter().rev().take(50));
            let z = w.alloc();
            w.link(&PathBuf::from("/logs/app.log.2.gz"), z);
            *w.data_mut(z).unwrap() = gz;
            w.unlink(&names[1]);
            drop(w);
            self.note("compress app.log.2");
        }
    }

    /// Whether an inode is deleted (only descriptors keep it).
    fn unlinked(&self, ino: u64) -> bool {
        !self.fs.0.borrow().names.values().any(|i| *i == ino)
    }

    /// The birth of inode number `ino` now (0 if free).
    fn birth(&self, ino: u64) -> u64 {
        self.fs.0.borrow().inodes.get(&ino).map_or(0, |i| i.birth)
    }

    /// After a restart from the last checkpoint, a line it did not count can only be read
    /// from a file that still has a name: one that sits only in deleted files (reachable only
    /// through descriptors, and the tailer's die with it) may be lost — documented — never
    /// counted twice.
    fn mark_unreachable_after_crash(&mut self) {
        let (_, saved_counts) = self.checkpoint.clone().unwrap_or_default();
        let mut present = HashSet::new();
        {
            let w = self.fs.0.borrow();
            for (ino, inode) in &w.inodes {
                if w.names.values().any(|i| i == ino) {
                    for line in inode
                        .data
                        .split_inclusive(|b| *b == b'\n')
                        .filter(|l| l.ends_with(b"\n"))
                    {
                        if let Some(k) = parse_key(line) {
                            present.insert(k);
                        }
                    }
                }
            }
        }
        let unreachable: Vec<u64> = self
            .written
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !saved_counts.contains_key(k) && !present.contains(k))
            .collect();
        self.may_lose.extend(unreachable);
    }

    /// kill -9: everything since the last checkpoint is forgotten; a new tailer starts from it.
    fn crash(&mut self) {
        let (state, counts) = self.checkpoint.clone().unwrap_or_default();
        let detail: Vec<String> = state
            .files
            .iter()
            .map(|r| {
                let fits = self.fs.open(Path::new(&r.known.path)).ok().and_then(|h| {
                    let size = h.meta().ok()?.size;
                    Some(r.known.continues_in(&h, size))
                });
                format!(
                    "#{}@{} head {} ph {} fits {fits:?} {:?}",
                    r.known.id.ino,
                    r.known.offset,
                    r.known.head.len,
                    r.phase.code(),
                    r.known.replay
                )
            })
            .collect();
        self.note(format!(
            "crash; restart from a checkpoint of {} files, {} gone: {}",
            state.files.len(),
            state.gone.len(),
            detail.join(", ")
        ));
        // The old tailer's descriptors close with it.
        // A new tailer lists every directory afresh (the file source's first scan does).
        self.fs.reuse(false);
        let fresh = Tailer::new(
            self.fs.clone(),
            globs(self.kind, self.listed),
            options(self.records),
        );
        drop(std::mem::replace(&mut self.tailer, fresh));
        self.stale = None;
        let (events, bad) = (
            std::mem::take(&mut self.counter.events),
            std::mem::take(&mut self.counter.bad),
        );
        self.counter = Counter {
            counts,
            events,
            bad,
            ..Counter::default()
        };
        if self.checkpoint.is_some() {
            // As the file source does (SourceShare::reset): the restored records are what a
            // checkpoint saves until they are matched.
            self.counter.restored = state.files.clone();
            self.counter.gone = state.gone.clone();
            self.tailer.restore(state, self.now);
        } else {
            // No checkpoint: everything is read again from the beginning (start_at: beginning)
            // — and counted again. Only allowed before any checkpoint; start from zero.
            self.counter.counts.clear();
        }
        // While the exporter is down the application goes on writing, and sometimes its log
        // is rotated by a rename (a delete would take unread lines with it: documented).
        let n = self.rng.below(10);
        self.write_lines(n);
        if self.rng.chance(50)
            && self.reopen_in.is_none()
            && self.seen_since_rotation
            && self.copying.is_none()
            && self.kind != Kind::LiveOnlyCopytruncate
        {
            if self.records.in_parts() {
                self.finish_records();
            }
            self.rotations += 1;
            let live = PathBuf::from("/logs/app.log");
            let to = PathBuf::from(format!("/logs/app.log-{}", self.rotations));
            if self.kind == Kind::WithCopies {
                self.shift();
                let first = self.rotated_names()[0].clone();
                self.w().rename(&live, &first);
            } else {
                self.w().rename(&live, &to);
            }
            self.reopen();
            let n = self.rng.below(10);
            self.write_lines(n);
            self.note("rotated by rename while the exporter was down");
        }
        // What the checkpoint did not count and no named file holds any more (deleted while
        // down, by the rotation above) is lost with any tailer.
        self.mark_unreachable_after_crash();
        // The restart: the new process scans at once.
        self.scan();
    }

    /// Lets everything settle: the application reopens, listings work, every drained file is
    /// read and closed.
    fn settle(&mut self) {
        if self.reopen_in.is_some() {
            self.reopen_in = None;
            self.reopen();
        }
        while self.copying.is_some() {
            self.progress_copy();
        }
        self.finish_records();
        self.w().failing_dirs.clear();
        // A walk in progress ends first (its listing is what the kept listings hold now);
        // then every directory is listed afresh, as the poll does.
        if let Some(listing) = self.stale.take() {
            self.tailer
                .apply_listing(listing, self.now, &mut self.counter);
            self.honour_durable();
        }
        self.fs.reuse(false);
        let stop = AtomicBool::new(false);
        for _ in 0..6 {
            self.tailer.scan(self.now, &stop, &mut self.counter);
            self.tailer.read_until_quiet(self.now, &mut self.counter);
            self.tailer.flush_idle(self.now, &mut self.counter);
            self.honour_durable();
            self.now += RW + Duration::from_secs(1);
        }
        // The writer has stopped: the last record held is due.
        self.now += Duration::from_secs(7200);
        self.tailer.flush_idle(self.now, &mut self.counter);
    }
}

/// The key of a line as the writer wrote it: a record's first line (`L<key> …`,
/// `L<key>/<n> …`), or a part of a container record (CRI or Docker).
fn parse_key(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    if let Some(cri) = line.strip_prefix("2026-12-05T00:00:00Z ") {
        // A CRI part: `<stream> <P|F> <key:i/n:stream>pad`.
        return cri
            .splitn(3, ' ')
            .nth(2)?
            .strip_prefix('<')?
            .split(':')
            .next()?
            .parse()
            .ok();
    }
    if let Some(docker) = line.strip_prefix("{\"log\":\"<") {
        // A Docker part: `{"log":"<key:i/n:stream>pad[\n]","stream":…}`.
        return docker.split(':').next()?.parse().ok();
    }
    line.strip_prefix('L')?
        .split([' ', '/'])
        .next()?
        .parse()
        .ok()
}

/// The key of a merged container record `<key:0/n:s>pad<key:1/n:s>pad…` whose parts are all
/// there, in order, of one key, on the stream `stream` names; `None` if it is not whole.
fn cri_record_key(record: &str, stream: Option<&str>) -> Option<u64> {
    let mut key = None;
    let mut expected = 0usize;
    let mut total = None;
    for part in record.split('<').skip(1) {
        let (token, pad) = part.split_once('>')?;
        if pad.bytes().any(|b| b != b'x') {
            return None;
        }
        let mut fields = token.split(':');
        let k: u64 = fields.next()?.parse().ok()?;
        let (i, n) = fields.next()?.split_once('/')?;
        let (i, n): (usize, usize) = (i.parse().ok()?, n.parse().ok()?);
        let s = fields.next()?;
        if key.is_some_and(|key| key != k)
            || i != expected
            || total.is_some_and(|t| t != n)
            || Some(s) != stream
        {
            return None;
        }
        key = Some(k);
        total = Some(n);
        expected += 1;
    }
    (total == Some(expected)).then_some(key?)
}

/// Runs one schedule; returns a description of what went wrong, if anything.
/// One schedule: how many files renamed away before any scan saw them were read, or what
/// went wrong.
fn run(seed: u64, kind: Kind, steps: u32, records: Records) -> Result<u64, String> {
    let mut sim = Sim::new(seed, kind, usize::MAX, records);
    // The exporter starts before the application writes.
    sim.scan();
    for _ in 0..steps {
        sim.step();
    }
    sim.settle();
    let mut problems = Vec::new();
    for (key, _) in &sim.written {
        let n = sim.counter.counts.get(key).copied().unwrap_or(0);
        let ok = n == 1 || (n == 0 && sim.may_lose.contains(key));
        if !ok {
            problems.push(format!("line {key} counted {n} times"));
        }
    }
    for bad in sim.counter.bad.iter().take(3) {
        problems.push(format!("not a whole line: {bad}"));
    }
    let written: HashSet<u64> = sim.written.iter().map(|(k, _)| *k).collect();
    for key in sim.counter.counts.keys() {
        if !written.contains(key) {
            problems.push(format!("line {key} counted but never written whole"));
        }
    }
    if problems.is_empty() {
        return Ok(sim.counter.missed_read);
    }
    problems.truncate(10);
    Err(format!(
        "seed {seed} ({kind:?}): {}\n--- timeline ---\n{}",
        problems.join("; "),
        sim.counter.events.join("\n")
    ))
}

/// `SIM_SEED=n cargo test --lib sim` runs one schedule and prints its whole trace.
fn run_many(kind: Kind, seeds: std::ops::Range<u64>, steps: u32) {
    run_many_of(kind, seeds, steps, Records::Lines)
}

fn run_many_of(kind: Kind, seeds: std::ops::Range<u64>, steps: u32, records: Records) {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        if let Err(e) = run(seed, kind, steps, records) {
            panic!("{e}");
        }
        return;
    }
    // `SIM_SCALE=k` runs k times as many schedules (deeper runs by hand); `SIM_SCALE_FROM=j`
    // skips the first j times as many (those a run at scale j already ran).
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let scale = env("SIM_SCALE").unwrap_or(1);
    let from = env("SIM_SCALE_FROM").map_or(seeds.start * scale, |j| seeds.end * j);
    assert!(
        from < seeds.end * scale,
        "SIM_SCALE_FROM must be below SIM_SCALE: no schedule to run"
    );
    let seeds = from..seeds.end * scale;
    let mut missed_read = 0;
    let mut failures = Vec::new();
    for seed in seeds {
        match run(seed, kind, steps, records) {
            Ok(n) => missed_read += n,
            Err(e) => failures.push(e),
        }
    }
    if let Some(first) = failures.first() {
        panic!(
            "{} of the schedules failed; the first:\n{first}",
            failures.len()
        );
    }
    // These schedules also rotate files no scan has seen: some must be found and read.
    if kind == Kind::LiveOnlyRename {
        assert!(
            missed_read > 0,
            "no file renamed away before its first scan was read"
        );
        eprintln!("{kind:?}/{records:?}: {missed_read} files renamed away unseen were read");
    }
}

/// Rename and delete rotations with the writer still writing to the old file for a while,
/// listing errors, inode reuse, crashes back to a checkpoint: every line exactly once.
#[test]
fn every_line_exactly_once_with_rename_and_delete_rotations() {
    run_many(Kind::LiveOnlyRename, 0..600, 400);
}

/// The rotated copies in the globs: renames, copytruncate (also written over an older rotation
/// in place), compression, crashes: every line exactly once — copytruncate's race is closed
/// by reading the unread rest from the copy.
#[test]
fn every_line_exactly_once_with_the_rotated_copies_in_the_globs() {
    run_many(Kind::WithCopies, 0..600, 400);
}

/// Schedules that once failed, found by deeper runs (`SIM_SCALE`), kept whatever the ranges
/// above become.
#[test]
fn schedules_that_once_failed() {
    // 15258: a copytruncate copy saved as the shadow of its original; after a crash the
    // original's inode held new content and the copy was deleted (compressed) before any read:
    // it was closed as "a copy of an intact original" and the lines only it held were lost.
    // 4492: a copy shorter than the head of its original, which was truncated and written
    // again before any pass looked at it, was decided after the patience ran out: "new, from
    // its beginning" (its lines counted twice); now it is decided against what was read.
    // 1385 (CRI): a restart's search for its records listed the directory just after a new
    // `app.log` came; that listing was kept as the scans' own, so the next scans left the
    // directory alone and the file was rotated out of the globs unread.
    // 20702: a shadow resumed after a restart (its original's inode held new content) had
    // a copy of the new content written in place over it; it was resolved against the old
    // content ("a copy … all read there") and the new content's lines counted twice; now a
    // shadow whose own content was replaced is decided afresh.
    // 90032: a rotated file decided on by its first 3 bytes, no line read from it, had a
    // copytruncate copy of the new live file written over it in place, starting with the same
    // 3 bytes; it was read as the same file growing and the copy's lines counted twice; now
    // such a file that grew is decided again by all it holds.
    // 158733: after a restart, a listing taken before copytruncate wrote a short copy in
    // place over `app.log.1` (5 KB of old content then) ordered the copy before its original;
    // the copy was decided on first, as new, and its lines counted twice. New files are now
    // ordered by their sizes as they are, not as the listing saw them.
    // 193431: the live `app.log`, empty while copytruncate copied it in place over
    // `app.log.1`, was taken for a copy of it once both held the same line; copytruncate then
    // emptied it, its writer wrote on and it was deleted: its new lines were read as the copy
    // grown past its original, found replaced while draining, and lost. A copy's own content
    // is now checked for replacement as a followed file's is.
    // 369512 (live file only, copytruncate): a new `app.log`, pending at a checkpoint (too
    // short to tell whether it was a copy), was emptied by copytruncate and renamed out of
    // the globs; after a crash it was found by inode but no longer held its first bytes, and
    // was let go as "lost" while its writer went on writing to it. A file nothing was read
    // from, found by inode, is now decided on as a pending file that left the globs is.
    // 499037: `app.log.1`, a copytruncate copy of lines already read from `app.log`, pending
    // at a checkpoint (too short to tell) with its record at 0, was renamed out of the globs
    // while the exporter was down; found by inode after the restart, it was read from 0 on
    // its record's word ("reading it to its end from 0") and its 2 lines counted twice. A
    // record at 0 found by inode is now decided afresh (a copy of content read: all read).
    // 406212: a shadow (`app.log.1`, found equal to `app.log` up to 778) outlived a restart at
    // which `app.log`'s record no longer fitted (copytruncate had emptied it); the emptied
    // inode was followed as new content, and when it was truncated next the shadow was
    // resolved against that content's record (read to 0): its first 10 lines counted twice.
    for (seed, kind, records) in [
        (499037, Kind::WithCopies, Records::Lines),
        (406212, Kind::WithCopies, Records::Lines),
        (369512, Kind::LiveOnlyCopytruncate, Records::Lines),
        (15258, Kind::WithCopies, Records::Lines),
        (193431, Kind::WithCopies, Records::Lines),
        (90032, Kind::WithCopies, Records::Lines),
        (158733, Kind::WithCopies, Records::Lines),
        (20702, Kind::WithCopies, Records::Lines),
        (4492, Kind::WithCopies, Records::Lines),
        (1385, Kind::LiveOnlyRename, Records::Cri),
    ] {
        if let Err(e) = run(seed, kind, 400, records) {
            panic!("{e}");
        }
    }
}

/// copytruncate with only the live file in the globs: lines not read before the truncation
/// may be lost (no tailer can read them), none is ever counted twice.
#[test]
fn copytruncate_of_the_live_file_alone_never_counts_twice() {
    run_many(Kind::LiveOnlyCopytruncate, 0..600, 400);
}

/// Multi-line records (a start line and 0 to 2 continuations, writes cut anywhere) under
/// rename and delete rotations and crashes: every record exactly once, and whole — a record
/// held when a checkpoint is taken is read again after the restart, never split.
#[test]
fn every_multiline_record_exactly_once_and_whole_with_rename_rotations() {
    run_many_of(Kind::LiveOnlyRename, 0..400, 400, Records::Multiline);
}

/// Multi-line records with the rotated copies in the globs (copytruncate — the copy is read
/// from the start of the record held when the original was truncated —, compression, crashes
/// with rotations while down): every record exactly once and whole.
#[test]
fn every_multiline_record_exactly_once_and_whole_with_copies_in_the_globs() {
    run_many_of(Kind::WithCopies, 0..400, 400, Records::Multiline);
}

/// CRI container logs: each record split into partial lines, stdout's and stderr's parts
/// interleaved, under rename and delete rotations, restarts from checkpoints and reloads:
/// every record exactly once and whole — a partial line held on one stream never makes the
/// other stream's records count again.
#[test]
fn every_container_record_exactly_once_with_streams_interleaved() {
    run_many_of(Kind::LiveOnlyRename, 0..400, 400, Records::Cri);
}

/// The same with the rotated copies in the globs (copytruncate, compression).
#[test]
fn every_container_record_exactly_once_with_copies_in_the_globs() {
    run_many_of(Kind::WithCopies, 0..400, 400, Records::Cri);
}

/// Docker's json-file logs: the same records and streams as the CRI ones, each part a JSON
/// object, under rename and delete rotations, restarts and reloads.
#[test]
fn every_docker_record_exactly_once_with_streams_interleaved() {
    run_many_of(Kind::LiveOnlyRename, 0..200, 400, Records::Docker);
}

/// The same with the rotated copies in the globs (copytruncate, compression).
#[test]
fn every_docker_record_exactly_once_with_copies_in_the_globs() {
    run_many_of(Kind::WithCopies, 0..200, 400, Records::Docker);
}
