//! Checkpoints: the offsets of every followed file and the values of every metric family fed
//! by file sources, saved together, so that a restart neither loses nor counts twice.
//!
//! **Consistency.** Every change of counts and offsets happens inside a *section* of the
//! [`Gate`] (in [`crate::gate`]: a read lock, taken by file sources per chunk of lines and by
//! page sources per document). A checkpoint pauses the gate (the write lock: no section
//! runs), copies the families' series and the records the sources published in their
//! sections, and resumes. So the offsets saved are exactly the ends of the lines the values
//! saved have counted.
//!
//! **Off the serving path.** Checkpoints are written by one thread of their own
//! ([`Checkpointer`]); nothing else waits on the disk longer than a bound. `/metrics` shows,
//! for the persisted families, the values of the last checkpoint written — so after a restart
//! no counter is lower than Prometheus saw. A scrape asks for a new checkpoint when something
//! changed since the last one (the gate counts sections) and none was written in the last
//! [`MIN_WRITE_INTERVAL`]; it waits for it at most [`SCRAPE_WAIT`]. Scrapes in between show
//! the last one written (at most that old), so a flood of scrapes costs no writes. When a
//! checkpoint cannot be written (a full disk, a write that does not return), `/metrics` shows
//! the current values instead — monitoring goes on, `quarry_checkpoint_last_write_successful`
//! is 0 and says that a restart may then go back to the last checkpoint written — and a write
//! that has not returned for [`STUCK_AFTER`] makes `/-/healthy` fail with the reason.
//!
//! **When else.** Every `--storage.interval` if something changed, when a source is about to
//! read a new file ([`crate::source::tailer::Sink::durable`]: waited for, within a bound), and
//! at shutdown (within [`SHUTDOWN_WAIT`]).
//!
//! The format is in [`codec`] (versioned, checksummed), the directory and its files in
//! [`store`], and what is checked before a checkpoint is restored in [`verify`].

pub mod codec;
pub mod store;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gate::{CheckpointRequests, Gate};
use crate::registry::{Family, FamilySnapshot};
use crate::source::fs::FileId;
use crate::source::identity::Known;
use crate::source::tailer::{FileRecord, TailState};

pub use codec::{decode, encode, DecodeError};
pub use store::{Loaded, Store, FILE_NAME};

/// How long a checkpoint waits for the sources' sections to end before giving up (a source
/// stuck on a hung filesystem must not stall the checkpoint thread for longer).
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Least time between two checkpoints a scrape asks for: scrapes in between show the last one.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a scrape waits for the checkpoint it asked for.
pub const SCRAPE_WAIT: Duration = Duration::from_secs(2);
/// Longest a source waits for the checkpoint it asked for before reading a new file.
pub const DURABLE_WAIT: Duration = Duration::from_secs(5);
/// Longest shutdown waits for the last checkpoint.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// A write that has not returned for this long is stuck: `/-/healthy` says so.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The records one file source publishes in its sections, for checkpoints to read.
#[derive(Default)]
pub struct SourceShare {
    inner: Mutex<ShareInner>,
}

#[derive(Default)]
struct ShareInner {
    records: BTreeMap<FileId, FileRecord>,
    /// Shared with the tailer's list: a publish copies pointers, not records.
    gone: Vec<Arc<Known>>,
    restored: Vec<FileRecord>,
}

impl SourceShare {
    fn inner(&self) -> std::sync::MutexGuard<'_, ShareInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A file's record changed (`None`: no longer followed).
    pub fn record(&self, id: FileId, record: Option<FileRecord>) {
        let mut inner = self.inner();
        match record {
            Some(r) => {
                inner.records.insert(id, r);
            }
            None => {
                inner.records.remove(&id);
            }
        }
    }

    /// The remembered gone content and the unmatched checkpoint records changed.
    pub fn remembered(&self, gone: Vec<Arc<Known>>, restored: &[FileRecord]) {
        let mut inner = self.inner();
        inner.gone = gone;
        inner.restored = restored.to_vec();
    }

    /// Starts from a restored state (nothing followed yet: all of it is unmatched).
    pub fn reset(&self, state: &TailState) {
        let mut inner = self.inner();
        inner.records.clear();
        inner.gone = state.gone.iter().cloned().map(Arc::new).collect();
        inner.restored = state.files.clone();
    }

    /// The state as published (a file followed now wins over an unmatched record of it).
    pub fn state(&self) -> TailState {
        let inner = self.inner();
        let mut files: Vec<FileRecord> = inner.records.values().cloned().collect();
        files.extend(
            inner
                .restored
                .iter()
                .filter(|r| !inner.records.contains_key(&r.known.id))
                .cloned(),
        );
        TailState {
            files,
            gone: inner.gone.iter().map(|k| Known::clone(k)).collect(),
        }
    }
}

/// Everything a checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When it was taken (Unix milliseconds).
    pub taken_at_ms: u64,
    pub families: Vec<FamilySnapshot>,
    pub sources: Vec<(String, TailState)>,
}

/// What the persisted families looked like in the last checkpoint written: what `/metrics`
/// shows of them.
pub type Saved = Arc<Vec<FamilySnapshot>>;

/// The running checkpointer: what to copy, where to write, and the thread that writes.
pub struct Checkpointer {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    gate: Arc<Gate>,
    current: Mutex<Current>,
    state: Mutex<WriterState>,
    /// Signalled when a request comes and when one is served.
    wake: Condvar,
    metrics: crate::selfmetrics::CheckpointMetrics,
    /// `--storage.interval`.
    interval: Duration,
}

#[derive(Default)]
struct Current {
    sources: Vec<(String, Arc<SourceShare>)>,
    families: Vec<Arc<Family>>,
}

#[derive(Default)]
struct WriterState {
    /// Requests made so far; the writer serves all of them with one checkpoint.
    requested: u64,
    /// The last request served (written, found unchanged, or failed).
    served: u64,
    /// The last checkpoint attempt wrote (or found nothing to write).
    ok: bool,
    /// The persisted families as the last checkpoint written holds them.
    saved: Option<Saved>,
    /// The gate's section count when `saved` was taken.
    saved_sections: u64,
    /// When the last checkpoint attempt started.
    last_attempt: Option<Instant>,
    /// When the write in progress started (a write that does not return stays here).
    writing_since: Option<Instant>,
    stop: bool,
}

/// What a checkpoint copied, at one point between sections.
struct Taken {
    snapshot: Snapshot,
    sections: u64,
}

impl Checkpointer {
    /// A checkpointer writing to `store` at least every `interval` when something changed,
    /// pausing `gate`; its thread starts here.
    pub fn new(
        store: Store,
        gate: Arc<Gate>,
        metrics: crate::selfmetrics::CheckpointMetrics,
        interval: Duration,
    ) -> anyhow::Result<Checkpointer> {
        let shared = Arc::new(Shared {
            store,
            gate,
            current: Mutex::new(Current::default()),
            state: Mutex::new(WriterState {
                ok: true,
                ..WriterState::default()
            }),
            wake: Condvar::new(),
            metrics,
            interval,
        });
        shared.metrics.last_write_successful.set(1.0);
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || writer.run())?;
        Ok(Checkpointer { shared })
    }

    /// What to save from now on (at start and after each reload): the file sources' shares and
    /// the families they feed.
    pub fn set(&self, sources: Vec<(String, Arc<SourceShare>)>, families: Vec<Arc<Family>>) {
        let mut c = self.shared.current();
        c.sources = sources;
        c.families = families;
        drop(c);
        // What was saved describes the old families: the next scrape waits for a new one.
        let mut state = self.shared.state();
        state.saved = None;
        state.last_attempt = None;
        drop(state);
        self.shared.gate.mark_changed();
    }

    /// The names of the families saved.
    pub fn persisted(&self) -> Vec<String> {
        self.shared
            .current()
            .families
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    /// The persisted families as a scrape shows them: as the last checkpoint written holds
    /// them — written anew first (waited for within [`SCRAPE_WAIT`]) when something changed
    /// and none was written in the last [`MIN_WRITE_INTERVAL`]. `None` when checkpoints cannot
    /// be written now: the scrape shows the current values.
    pub fn for_scrape(&self) -> Option<Saved> {
        let s = &self.shared;
        let mut state = s.state();
        if let Some(since) = state.writing_since {
            if since.elapsed() >= SCRAPE_WAIT {
                // A write that does not return: it cannot be written now.
                s.metrics.last_write_successful.set(0.0);
                return None;
            }
            if since.elapsed() >= MIN_WRITE_INTERVAL {
                // A slow write: no waiting behind it.
                return state.ok.then(|| state.saved.clone()).flatten();
            }
        }
        let unchanged = state.saved.is_some() && s.gate.sections() == state.saved_sections;
        let recent = state
            .last_attempt
            .is_some_and(|t| t.elapsed() < MIN_WRITE_INTERVAL);
        if state.ok && (unchanged || recent) {
            return state.saved.clone();
        }
        if !state.ok && recent {
            return None;
        }
        state = s.request_and_wait(state, SCRAPE_WAIT);
        state.ok.then(|| state.saved.clone()).flatten()
    }

    /// Asks for a checkpoint now and waits for it within `wait` (not at all behind a write
    /// that is stuck); returns whether one was written (or nothing had changed).
    pub fn checkpoint_within(&self, wait: Duration) -> bool {
        let s = &self.shared;
        let state = s.state();
        if state
            .writing_since
            .is_some_and(|t| t.elapsed() >= STUCK_AFTER)
        {
            return false;
        }
        let before = state.requested;
        let state = s.request_and_wait(state, wait);
        state.served > before && state.ok
    }

    /// Takes and writes the last checkpoint (at shutdown), within [`SHUTDOWN_WAIT`]; the
    /// thread stops after it.
    pub fn finish(&self) -> bool {
        let written = self.checkpoint_within(SHUTDOWN_WAIT);
        let mut state = self.shared.state();
        state.stop = true;
        drop(state);
        self.shared.wake.notify_all();
        written
    }

    /// What is wrong, for `/-/healthy`: a write that has not returned for [`STUCK_AFTER`].
    pub fn problem(&self) -> Option<String> {
        let state = self.shared.state();
        let since = state.writing_since?;
        (since.elapsed() >= STUCK_AFTER).then(|| {
            format!(
                "the checkpoint write to {} has not returned for {}s (a hung volume?); /metrics shows values the disk does not hold",
                self.shared.store.path().display(),
                since.elapsed().as_secs()
            )
        })
    }
}

impl CheckpointRequests for Checkpointer {
    fn checkpoint_within(&self, wait: Duration) -> bool {
        Checkpointer::checkpoint_within(self, wait)
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a request and waits until it is served or `wait` passes.
    fn request_and_wait<'a>(
        &'a self,
        mut state: std::sync::MutexGuard<'a, WriterState>,
        wait: Duration,
    ) -> std::sync::MutexGuard<'a, WriterState> {
        state.requested += 1;
        let mine = state.requested;
        self.wake.notify_all();
        let deadline = Instant::now() + wait;
        while state.served < mine && !state.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state
    }

    /// The checkpoint thread: serves requests, and writes every `interval` if something
    /// changed.
    fn run(self: Arc<Self>) {
        let mut state = self.state();
        loop {
            let due = state
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.interval);
            if state.requested > state.served || (due && state.last_attempt.is_some()) {
                let serving = state.requested;
                state.last_attempt = Some(Instant::now());
                let since = state.saved_sections;
                let had = state.saved.is_some() && state.ok;
                drop(state);
                let outcome = self.take(since, had);
                state = self.state();
                match outcome {
                    Outcome::Unchanged => state.ok = true,
                    Outcome::NotTaken => state.ok = false,
                    Outcome::Taken(taken) => {
                        state.writing_since = Some(Instant::now());
                        drop(state);
                        let written = self.persist(&taken.snapshot);
                        state = self.state();
                        state.writing_since = None;
                        state.ok = written;
                        if written {
                            state.saved = Some(Arc::new(taken.snapshot.families));
                            state.saved_sections = taken.sections;
                        }
                    }
                }
                self.metrics
                    .last_write_successful
                    .set(if state.ok { 1.0 } else { 0.0 });
                state.served = state.served.max(serving);
                self.wake.notify_all();
                continue;
            }
            if state.stop {
                return;
            }
            let wait = state
                .last_attempt
                .map_or(self.interval, |t| self.interval.saturating_sub(t.elapsed()))
                .max(Duration::from_millis(10));
            if state.last_attempt.is_none() {
                // The first periodic checkpoint comes an interval after the start.
                state.last_attempt = Some(Instant::now());
            }
            state = self
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Copies everything at one point between sections, unless nothing changed since the
    /// checkpoint that holds `since` sections (when `had` one).
    fn take(&self, since: u64, had: bool) -> Outcome {
        let current = self.current();
        let Some(pause) = self.gate.pause(PAUSE_TIMEOUT) else {
            self.metrics.errors.inc();
            tracing::warn!("checkpoint skipped: a source did not leave its section within {PAUSE_TIMEOUT:?} (stuck on a hung filesystem?)");
            return Outcome::NotTaken;
        };
        let sections = self.gate.sections();
        if had && sections == since {
            return Outcome::Unchanged;
        }
        let families = current
            .families
            .iter()
            .map(|f| FamilySnapshot::of(f))
            .collect();
        let sources = current
            .sources
            .iter()
            .map(|(name, share)| (name.clone(), share.state()))
            .collect();
        drop(pause);
        let taken_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Outcome::Taken(Taken {
            snapshot: Snapshot {
                taken_at_ms,
                families,
                sources,
            },
            sections,
        })
    }

    /// Writes what was taken. A failure is logged and counted.
    fn persist(&self, snapshot: &Snapshot) -> bool {
        let started = Instant::now();
        let bytes = encode(snapshot);
        match self.store.write(&bytes) {
            Ok(()) => {
                self.metrics.writes.inc();
                self.metrics.bytes.set(bytes.len() as i64);
                self.metrics.duration.set(started.elapsed().as_secs_f64());
                self.metrics
                    .last_success
                    .set(snapshot.taken_at_ms as f64 / 1000.0);
                true
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::error!(
                    "cannot write the checkpoint to {}: {e}; /metrics shows the current values meanwhile, and a restart now would go back to the last checkpoint written",
                    self.store.path().display()
                );
                false
            }
        }
    }
}

/// What a checkpoint attempt found.
enum Outcome {
    /// Nothing changed since the last checkpoint written.
    Unchanged,
    /// The sources did not pause in time.
    NotTaken,
    Taken(Taken),
}
