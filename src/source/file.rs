//! The file source: `tail -F` over globs, and better.
//!
//! Files are tracked by identity (device and inode), not by name, so a rename within reach of
//! the globs is followed, and a new file at an old path is a rotation. A file that is renamed
//! away or deleted is kept open and read until it has been quiet for `rotate_wait`, so lines
//! its writer adds after the rotation are not lost; keeping it open also stops its inode from
//! being reused under our feet. A file found shorter than the read offset was truncated
//! (copytruncate) and is read again from its start. Files present at start-up begin at
//! `start_at`; every file that appears later is read from its beginning.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use super::discover::{FileId, Globs, Wake, Watcher};
use super::lines::{LineSplitter, LineStats};
use crate::config::{
    FileSourceConfig, StartAt, DEFAULT_MAX_LINE_LENGTH, DEFAULT_POLL_INTERVAL, DEFAULT_ROTATE_WAIT,
};
use crate::pipeline::{Pipeline, RecordContext};
use crate::selfmetrics::{FileCounters, IntGauge, SelfMetrics};
use crate::status::{FileState, FileStatus, SharedStatus};

/// Most bytes read from one file in one pass, so one busy file cannot starve the others.
const READ_BUDGET_PER_PASS: u64 = 16 << 20;
/// Size of the read buffer shared by all files of a source.
const READ_BUFFER: usize = 256 << 10;
/// Least time between two status snapshots, unless files came or went.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// The settings of a file source, with defaults applied.
#[derive(Debug, Clone)]
pub struct FileOptions {
    pub start_at: StartAt,
    pub max_line_length: usize,
    pub poll_interval: Duration,
    pub rotate_wait: Duration,
    pub watch: bool,
}

impl FileOptions {
    /// Applies defaults to what the config says.
    pub fn from_config(c: &FileSourceConfig) -> FileOptions {
        FileOptions {
            start_at: c.start_at,
            max_line_length: c.max_line_length.unwrap_or(DEFAULT_MAX_LINE_LENGTH),
            poll_interval: c.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            rotate_wait: c.rotate_wait.unwrap_or(DEFAULT_ROTATE_WAIT),
            watch: c.watch.unwrap_or(true),
        }
    }
}

/// Resolves a config path against the config file's directory, as Prometheus does.
pub fn absolute_pattern(base_dir: &Path, pattern: &str) -> String {
    crate::config::resolve_path(base_dir, pattern)
        .to_string_lossy()
        .into_owned()
}

struct Tracked {
    id: FileId,
    path: String,
    file: File,
    offset: u64,
    size: u64,
    lines: LineSplitter,
    /// Set when no glob matches this file any more (renamed away or deleted).
    draining_since: Option<Instant>,
    last_data: Instant,
    counters: FileCounters,
    last_error: Option<String>,
}

/// One file source with its pipeline; owned and driven by its own thread.
pub struct FileSource {
    name: String,
    globs: Globs,
    options: FileOptions,
    files: HashMap<FileId, Tracked>,
    /// The identity last found at each matched path: a different one there is a rotation.
    path_ids: HashMap<String, FileId>,
    /// Paths that could not be opened, with the error, so each is logged once.
    open_errors: HashMap<String, String>,
    pipeline: Pipeline,
    self_metrics: SelfMetrics,
    files_gauge: IntGauge,
    buffer: Vec<u8>,
    status: SharedStatus,
    status_at: Option<Instant>,
    scanned_once: bool,
    source_error: Option<String>,
}

impl FileSource {
    /// A source over `config`'s globs (resolved against `base_dir`) feeding `pipeline`.
    pub fn new(
        name: &str,
        config: &FileSourceConfig,
        base_dir: &Path,
        pipeline: Pipeline,
        self_metrics: SelfMetrics,
        status: SharedStatus,
    ) -> FileSource {
        let include = config
            .paths
            .iter()
            .map(|p| absolute_pattern(base_dir, p))
            .collect();
        let exclude: Vec<String> = config
            .exclude
            .iter()
            .map(|p| absolute_pattern(base_dir, p))
            .collect();
        let globs = Globs::new(include, &exclude);
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.name = name.to_owned();
            s.kind = "file";
            s.targets = globs.patterns().to_vec();
        }
        FileSource {
            files_gauge: self_metrics.source_files.with_label_values(&[name]),
            name: name.to_owned(),
            globs,
            options: FileOptions::from_config(config),
            files: HashMap::new(),
            path_ids: HashMap::new(),
            open_errors: HashMap::new(),
            pipeline,
            self_metrics,
            buffer: vec![0; READ_BUFFER],
            status,
            status_at: None,
            scanned_once: false,
            source_error: None,
        }
    }

    /// One-shot mode: reads every matched file from its beginning to its end, including a
    /// last line without a newline, then closes them.
    pub fn read_everything_once(&mut self) {
        self.options.start_at = StartAt::Beginning;
        self.scan();
        while self.read_all() {}
        let pipeline = &mut self.pipeline;
        for t in self.files.values_mut() {
            let Tracked { lines, path, .. } = t;
            let stats = lines.finish(|line| {
                pipeline.process_line(line, &RecordContext { file: path });
            });
            add_stats(&t.counters, stats);
        }
    }

    /// Takes over the files `previous` was reading (after a reload): they go on from their
    /// offsets, and files that appear later are read from their beginning.
    pub fn resume_from(&mut self, previous: FileSource) {
        self.files = previous.files;
        self.path_ids = previous.path_ids;
        self.open_errors = previous.open_errors;
        self.scanned_once = previous.scanned_once;
        for t in self.files.values_mut() {
            // Lines already held stay with their file; the new line-length cap applies to
            // what comes next.
            t.lines.set_max_line_length(self.options.max_line_length);
        }
    }

    /// Follows the files until [`Wake::Stop`] arrives, then hands itself back (a reload passes
    /// its files to the next config). `ready` is called once the first scan is done, before the
    /// first read (which may be long with `start_at: beginning`).
    pub fn run(
        mut self,
        wake_tx: Sender<Wake>,
        wake_rx: Receiver<Wake>,
        ready: impl FnOnce(),
    ) -> FileSource {
        let (mut watcher, problem) = Watcher::new(wake_tx, self.options.watch);
        if let Some(p) = problem {
            warn!(source = %self.name, "{p}");
            self.source_error = Some(p);
        }
        self.scan();
        self.update_watches(&mut watcher);
        ready();
        let mut more = self.read_all();
        self.publish_status(true, watcher.is_active());
        let mut next_poll = Instant::now() + self.options.poll_interval;
        loop {
            let timeout = if more {
                Duration::ZERO
            } else {
                next_poll.saturating_duration_since(Instant::now())
            };
            let mut rescan = false;
            match wake_rx.recv_timeout(timeout) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(w) => {
                    rescan |= w == Wake::Rescan;
                    for w in wake_rx.try_iter() {
                        if w == Wake::Stop {
                            return self;
                        }
                        rescan |= w == Wake::Rescan;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_poll {
                rescan = true;
                next_poll = now + self.options.poll_interval;
            }
            if rescan {
                self.scan();
                self.update_watches(&mut watcher);
            }
            more = self.read_all();
            self.publish_status(rescan, watcher.is_active());
        }
        self
    }

    fn update_watches(&mut self, watcher: &mut Watcher) {
        for problem in watcher.update(self.globs.watch_dirs()) {
            if self.source_error.as_deref() != Some(problem.as_str()) {
                warn!(source = %self.name, "{problem}");
                self.source_error = Some(problem);
            }
        }
    }

    /// Expands the globs and brings the tracked files in line with what they match.
    fn scan(&mut self) {
        let now = Instant::now();
        let mut present = HashSet::new();
        for found in self.globs.expand() {
            let path = found.path.to_string_lossy().into_owned();
            present.insert(found.id);
            if let Some(t) = self.files.get_mut(&found.id) {
                t.draining_since = None;
                if t.path != path {
                    // The old path keeps this identity in path_ids, so a new file there is
                    // still recognised as a rotation.
                    info!(source = %self.name, from = %t.path, to = %path, "file renamed; following it");
                    t.path = path.clone();
                    t.counters = self.self_metrics.file_counters(&self.name, &path);
                }
                self.path_ids.insert(path, found.id);
                continue;
            }
            match self.open(&found.path, &path, found.id) {
                Ok(tracked) => {
                    let rotated = self
                        .path_ids
                        .insert(path.clone(), tracked.id)
                        .is_some_and(|old| old != tracked.id);
                    if rotated {
                        tracked.counters.rotations.inc();
                        info!(source = %self.name, path = %path, "file rotated; reading the new one from its start");
                    } else {
                        debug!(source = %self.name, path = %path, offset = tracked.offset, "following file");
                    }
                    self.open_errors.remove(&path);
                    self.files.insert(tracked.id, tracked);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {} // gone since the listing
                Err(e) => {
                    let message = format!("cannot open {path}: {e}");
                    if self.open_errors.get(&path) != Some(&message) {
                        warn!(source = %self.name, "{message}");
                        self.self_metrics
                            .file_counters(&self.name, &path)
                            .read_errors
                            .inc();
                        self.source_error = Some(message.clone());
                        self.open_errors.insert(path, message);
                    }
                }
            }
        }
        for t in self.files.values_mut() {
            if !present.contains(&t.id) && t.draining_since.is_none() {
                info!(source = %self.name, path = %t.path, "file renamed away or deleted; reading it to its end");
                t.draining_since = Some(now);
            }
        }
        self.scanned_once = true;
        self.files_gauge.set(self.files.len() as i64);
    }

    fn open(&self, fs_path: &Path, path: &str, expected: FileId) -> std::io::Result<Tracked> {
        let mut file = File::open(fs_path)?;
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        if id != expected {
            // Replaced between the listing and the open: the next scan sees the new one.
            return Err(ErrorKind::NotFound.into());
        }
        let mut lines = LineSplitter::new(self.options.max_line_length);
        let mut offset = 0;
        if !self.scanned_once && self.options.start_at == StartAt::End {
            offset = file.seek(SeekFrom::End(0))?;
            let mut last = [0u8; 1];
            if offset > 0 && file.read_at(&mut last, offset - 1)? == 1 && last[0] != b'\n' {
                lines.skip_to_next_line(); // we start inside a line: drop its fragment
            }
        }
        Ok(Tracked {
            id,
            path: path.to_owned(),
            file,
            offset,
            size: meta.len(),
            lines,
            draining_since: None,
            last_data: Instant::now(),
            counters: self.self_metrics.file_counters(&self.name, path),
            last_error: None,
        })
    }

    /// Reads what is new in every file; closes drained files. Returns true when some file
    /// has more to read right away.
    fn read_all(&mut self) -> bool {
        let mut more = false;
        let mut finished = Vec::new();
        let now = Instant::now();
        for t in self.files.values_mut() {
            more |= read_file(t, &mut self.buffer, &mut self.pipeline, &self.name);
            if let Some(since) = t.draining_since {
                let quiet_since = since.max(t.last_data);
                if now.saturating_duration_since(quiet_since) >= self.options.rotate_wait {
                    finished.push(t.id);
                }
            }
        }
        for id in finished {
            self.close(id);
        }
        more
    }

    /// Stops reading a file: its last unterminated line counts, and its path's self-metrics
    /// go once no other file holds that path.
    fn close(&mut self, id: FileId) {
        let Some(mut t) = self.files.remove(&id) else {
            return;
        };
        let Tracked { lines, path, .. } = &mut t;
        let pipeline = &mut self.pipeline;
        let stats = lines.finish(|line| {
            pipeline.process_line(line, &RecordContext { file: path });
        });
        add_stats(&t.counters, stats);
        debug!(source = %self.name, path = %t.path, "closed file");
        self.path_ids.retain(|_, held| *held != id);
        if !self.files.values().any(|o| o.path == t.path) {
            self.self_metrics.forget_file(&self.name, &t.path);
        }
        self.files_gauge.set(self.files.len() as i64);
    }

    fn publish_status(&mut self, force: bool, notifications: bool) {
        let now = Instant::now();
        if !force && self.status_at.is_some_and(|at| now - at < STATUS_EVERY) {
            return;
        }
        self.status_at = Some(now);
        let mut files: Vec<FileStatus> = self
            .files
            .values()
            .map(|t| FileStatus {
                path: t.path.clone(),
                state: if t.draining_since.is_some() {
                    FileState::Draining
                } else {
                    FileState::Following
                },
                offset: t.offset,
                size: t.size,
                lines: t.counters.lines.get(),
                bytes: t.counters.bytes.get(),
                last_error: t.last_error.clone(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let (rules, unmatched) = self.pipeline.stats();
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.files = files;
        s.rules = rules;
        s.unmatched = unmatched;
        s.notifications = notifications;
        s.last_error = self.source_error.clone();
        s.updated = Some(SystemTime::now());
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn add_stats(c: &FileCounters, stats: LineStats) {
    if stats.lines > 0 {
        c.lines.inc_by(stats.lines);
    }
    if stats.too_long > 0 {
        c.too_long.inc_by(stats.too_long);
    }
    if stats.invalid_utf8 > 0 {
        c.invalid_utf8.inc_by(stats.invalid_utf8);
    }
}

/// Reads what is new in one file. Returns true when the read budget ran out before the end.
fn read_file(t: &mut Tracked, buffer: &mut [u8], pipeline: &mut Pipeline, source: &str) -> bool {
    let size = match t.file.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            record_error(t, source, format!("cannot stat {}: {e}", t.path));
            return false;
        }
    };
    if size < t.offset {
        info!(source, path = %t.path, offset = t.offset, size, "file truncated; reading it again from its start");
        t.counters.truncations.inc();
        if let Err(e) = t.file.seek(SeekFrom::Start(0)) {
            record_error(t, source, format!("cannot seek {}: {e}", t.path));
            return false;
        }
        t.offset = 0;
        t.lines.reset();
    }
    let mut budget = READ_BUDGET_PER_PASS;
    let mut more = false;
    loop {
        match t.file.read(buffer) {
            Ok(0) => break,
            Ok(n) => {
                t.offset += n as u64;
                t.last_data = Instant::now();
                t.counters.bytes.inc_by(n as u64);
                let Tracked { lines, path, .. } = t;
                let stats = lines.push(&buffer[..n], |line| {
                    pipeline.process_line(line, &RecordContext { file: path });
                });
                add_stats(&t.counters, stats);
                budget = budget.saturating_sub(n as u64);
                if budget == 0 {
                    more = true;
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                record_error(t, source, format!("cannot read {}: {e}", t.path));
                break;
            }
        }
    }
    t.size = size.max(t.offset);
    t.counters.lag.set(size.saturating_sub(t.offset) as i64);
    more
}

fn record_error(t: &mut Tracked, source: &str, message: String) {
    t.counters.read_errors.inc();
    if t.last_error.as_ref() != Some(&message) {
        warn!(source, "{message}");
        t.last_error = Some(message);
    }
}
