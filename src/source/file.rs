//! The file source: its thread, its wake-ups, and what it tells the world.
//!
//! The decisions about files (identity, rotation, truncation, copies, draining) are the
//! [`Tailer`]'s; this module runs it on the real filesystem, feeds its lines to the
//! [`Pipeline`], turns its events into logs and self-metrics, publishes the records a
//! checkpoint keeps, and refreshes the status the landing page shows. Every change of counts
//! and offsets happens inside a section of the checkpoint [`Gate`], so a checkpoint always
//! pairs the offsets with exactly the counts of the lines before them.

use foldhash::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info, warn};

use super::activity::{is_routine, Activity};
use super::discover::{Globs, Wake, Watcher};
use super::fs::{not_read_counts, FileId, Listings, RealFs};
use super::identity::Known;
use super::lines::LineStats;
use super::records::Framing;
use super::tailer::{
    EventKind, FileRecord, Phase, RecordPath, Sink, TailOptions, TailState, Tailer,
};
use crate::checkpoint::SourceShare;
use crate::config::{
    FileSourceConfig, SourceKind, StartAt, WatchMode, DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_POLL_INTERVAL, DEFAULT_ROTATE_WAIT,
};
use crate::gate::Gate;
use crate::pipeline::ahead::{Found, MatchAhead};
use crate::pipeline::{Pipeline, RecordContext};
use crate::selfmetrics::{FileCounters, IntCounter, IntGauge, SelfMetrics};
use crate::status::{FileState, FileStatus, SharedStatus};

/// A pass (scan and read) waits, after the previous one started, this many times as long as the
/// previous one took...
const PASS_GAP_FACTOR: u32 = 50;
/// ...but never longer than this.
const PASS_GAP_MAX: Duration = Duration::from_millis(250);

/// A rescan waits this long for the events that come with the one that woke it.
const RESCAN_SETTLE: Duration = Duration::from_millis(5);

/// Without notifications, a poll lists again only the directories whose times moved (the
/// listing of each other one is kept, checked by one `statx`; on a node of 250 pods that is
/// 750 calls a poll instead of 3,000, and no file in those directories is stat'ed by its path
/// or checked twice); every this many polls, every directory is listed afresh: the safety net
/// for a filesystem whose directory times do not move.
const POLLS_PER_FULL_LISTING: u32 = 10;

/// With notifications of names only (`watch: names`), a poll lists only the directories they
/// named, with no look at the others; every this many polls, every directory is listed afresh
/// all the same (the safety net for a change no notification told of).
const POLLS_PER_FULL_LISTING_NOTIFIED: u32 = 60;

/// How a poll's (or a rescan's) scan takes the directories' listings, from the kind of
/// notifications and the polls so far (see [`Listings`]). With notifications of names, the
/// kept listings of the directories they named are forgotten from `fs` first.
fn listings_for(watcher: &Watcher, fs: &RealFs, polled: bool, polls: u32) -> Listings {
    match watcher.mode() {
        // The poll of a watched source lists every directory afresh; a rescan woken by a
        // notification reuses what provably did not change.
        WatchMode::All if polled => Listings::Renew,
        WatchMode::All => Listings::Reuse,
        WatchMode::Names => {
            // Taken before the scan lists: what changes during it is noted for the next.
            let changed = watcher.take_changed();
            if changed.all || (polled && polls.is_multiple_of(POLLS_PER_FULL_LISTING_NOTIFIED)) {
                Listings::Renew
            } else if changed.untrusted {
                Listings::Reuse
            } else {
                fs.forget_changed(&changed.dirs);
                Listings::Notified
            }
        }
        WatchMode::Off if polled && polls.is_multiple_of(POLLS_PER_FULL_LISTING) => Listings::Renew,
        WatchMode::Off => Listings::Reuse,
    }
}

/// When the next pass may start while notifications keep coming. A pass reads every write
/// since the last one, so passes spaced out read more per read, at a cost per pass that does
/// not grow with the writes: on a node of hundreds of busy files, one read per file per pass
/// instead of one per write. The space is [`PASS_GAP_FACTOR`] times the previous pass's time
/// (at most [`PASS_GAP_MAX`]), so passes take at most about 2% of the source's time unless
/// lines fill them; a wake after a quiet spell (a file written now and then) finds the gap long
/// past and is read at once.
#[derive(Debug)]
struct PassPace {
    last_start: Instant,
    gap: Duration,
}

impl PassPace {
    fn new(now: Instant) -> PassPace {
        PassPace {
            last_start: now,
            gap: Duration::ZERO,
        }
    }

    /// The earliest start of the next pass.
    fn next_start(&self) -> Instant {
        self.last_start + self.gap
    }

    /// A pass ran from `start` to `end`.
    fn pass(&mut self, start: Instant, end: Instant) {
        self.last_start = start;
        self.gap = (end.saturating_duration_since(start) * PASS_GAP_FACTOR).min(PASS_GAP_MAX);
    }
}

/// Passes in a row that each say there is more to read and read nothing, after which a file
/// source waits for its next wake or poll instead of passing again at once.
const STALLED_PASSES: u32 = 1_000;

/// Contains a tailer that keeps saying it has more to read while reading nothing: a file
/// decided again and again, as a bug once made one (a read that found its file "replaced"
/// every time). Left alone, the source would pass again at once for ever: a core spinning and
/// the log flooded. A pass with more to read either read bytes (it stopped at the read budget)
/// or decided a file whose next pass reads it, so real work never comes near
/// [`STALLED_PASSES`] in a row; after that many, the source waits for its next wake or poll,
/// as when nothing is left to read, and the stall is logged and counted.
#[derive(Debug, Default)]
struct StallGuard {
    passes: u32,
    /// Stalls ended since the source (re)started: the first is a warning.
    stalls: u64,
}

impl StallGuard {
    /// After a pass that said `more` and read bytes (`progressed`) or not: whether the next
    /// pass starts at once, and whether this pass ended a stall.
    fn after_pass(&mut self, more: bool, progressed: bool) -> (bool, bool) {
        if !more || progressed {
            self.passes = 0;
            return (more, false);
        }
        self.passes += 1;
        if self.passes < STALLED_PASSES {
            return (true, false);
        }
        self.passes = 0;
        self.stalls += 1;
        (false, true)
    }
}

/// Takes the wakes that come until `until` (noting in `rescan` whether one asked for a rescan;
/// with `end_at_rescan`, only until one does); false when the source is to stop.
fn gather_wakes(
    wake_rx: &Receiver<Wake>,
    until: Instant,
    rescan: &mut bool,
    end_at_rescan: bool,
) -> bool {
    while !(end_at_rescan && *rescan) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match wake_rx.recv_timeout(left) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
            Ok(w) => *rescan |= w == Wake::Rescan,
            Err(RecvTimeoutError::Timeout) => break,
        }
    }
    true
}

/// Least time between two status snapshots, unless files came or went.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// How long a source that panicked waits before it starts again, at first…
const PANIC_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// …and at most (doubling each time; back to the first after this long without a panic).
const PANIC_BACKOFF_LAST: Duration = Duration::from_secs(60);
/// Panics on single records logged per source (then only counted).
const RECORD_PANICS_LOGGED: u64 = 10;

/// Runs `process` on `record` (fault `panic_on_record` first), catching a panic: its
/// message.
#[inline(always)]
fn contained(record: &str, process: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::faults::panic_on_record(record);
        process();
    }))
    .map_err(|payload| panic_message(&*payload))
}

/// The text a panic carried.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The settings of a file source, with defaults applied.
#[derive(Debug, Clone)]
pub struct FileOptions {
    pub start_at: StartAt,
    pub max_line_length: usize,
    pub poll_interval: Duration,
    pub rotate_wait: Duration,
    pub watch: WatchMode,
    /// Container format and multiline joining (`None`: plain lines).
    pub framing: Option<Arc<Framing>>,
}

impl FileOptions {
    /// Applies defaults to what the config says.
    pub fn from_config(c: &FileSourceConfig) -> FileOptions {
        FileOptions {
            start_at: c.start_at,
            max_line_length: c.max_line_length.unwrap_or(DEFAULT_MAX_LINE_LENGTH),
            poll_interval: c.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            rotate_wait: c.rotate_wait.unwrap_or(DEFAULT_ROTATE_WAIT),
            watch: c.watch.unwrap_or_default(),
            framing: Framing::from_config(c, c.max_line_length.unwrap_or(DEFAULT_MAX_LINE_LENGTH)),
        }
    }

    fn tail(&self) -> TailOptions {
        TailOptions {
            start_at: self.start_at,
            max_line_length: self.max_line_length,
            rotate_wait: self.rotate_wait,
            framing: self.framing.clone(),
        }
    }
}

/// Resolves a config path against the config file's directory, as Prometheus does.
pub fn absolute_pattern(base_dir: &Path, pattern: &str) -> String {
    crate::config::resolve_path(base_dir, pattern)
        .to_string_lossy()
        .into_owned()
}

/// What the source's sink needs besides the pipeline: self-metric handles and the last error
/// per path. Kept across reloads with the files.
struct Books {
    counters: HashMap<String, FileCounters>,
    errors: HashMap<String, String>,
    events: Vec<(EventKind, IntCounter)>,
    /// `quarry_source_panics_total{source}`.
    panics: IntCounter,
    /// `quarry_source_stalls_total{source}`.
    stalls: IntCounter,
    /// Routine file events since their last summary (logged at most once a minute).
    activity: Activity,
    /// [`held_paths_print`] of the paths held and the number of paths with counters, when
    /// the self-metrics of the paths no file holds were last forgotten.
    forgotten_at: Option<(u64, usize)>,
}

/// A fingerprint of a set of paths: the sum of their hashes (the same for the same set in
/// any order; another set gives another sum but for a 64-bit coincidence).
fn held_paths_print<'p>(paths: impl Iterator<Item = &'p Path>) -> u64 {
    use std::hash::BuildHasher;
    use std::os::unix::ffi::OsStrExt;
    let state = foldhash::fast::FixedState::with_seed(0x5157_4152_5259);
    paths.fold(0u64, |sum, p| {
        sum.wrapping_add(state.hash_one(p.as_os_str().as_bytes()))
    })
}

/// The tailer's output, turned into counts, logs, metrics and checkpoint records.
struct SourceSink<'a> {
    source: &'a str,
    pipeline: &'a mut Pipeline,
    self_metrics: &'a SelfMetrics,
    books: &'a mut Books,
    share: &'a SourceShare,
    gate: &'a Gate,
    section: Option<parking_lot::RwLockReadGuard<'a, ()>>,
    depth: u32,
    /// Files came, went or changed state: refresh the status now.
    changed: bool,
    /// `one-shot` on two cores: the records' matchers run on another thread, a batch ahead
    /// (boxed: it is taken out and put back per record).
    ahead: Option<Box<MatchAhead>>,
}

impl SourceSink<'_> {
    /// Runs one record through the pipeline: matched here (`found` is `None`), or matched
    /// ahead on another thread. A panic on one record (a bug) is that record's: counted,
    /// logged, and the source goes on with the next (its section and offsets stay
    /// consistent).
    fn apply(&mut self, line: &str, ctx: &RecordContext, found: Option<Found<'_>>) {
        let pipeline = &mut *self.pipeline;
        // One closure per path, each compiled on its own: the one-thread path stays as lean as
        // it was (a shared closure with a branch inside cost 0.4% more instructions a line).
        let outcome = match found {
            None => contained(line, || {
                pipeline.process_line(line, ctx);
            }),
            Some(Found::Matches(matches)) => contained(line, || {
                pipeline.process_matched(line, ctx, matches.iter());
            }),
            Some(Found::Panicked(why)) => Err(why.to_owned()),
        };
        if let Err(why) = outcome {
            self.record_panicked(line, ctx.file, &why);
        }
    }

    /// A record made the pipeline (or the matchers) panic: counted, and logged (the first
    /// [`RECORD_PANICS_LOGGED`]).
    #[cold]
    fn record_panicked(&mut self, line: &str, path: &str, why: &str) {
        self.books.panics.inc();
        if self.books.panics.get() <= RECORD_PANICS_LOGGED {
            error!(
                source = self.source,
                path,
                "a record made the pipeline panic ({why}); the record is skipped: {:.200}",
                line
            );
        }
    }

    /// A record for the matching thread (out of line: the path of every other record stays
    /// small enough for the line splitter's loop to keep its own code inlined).
    #[inline(never)]
    fn line_ahead(&mut self, line: &str, ctx: &RecordContext) {
        if let Some(mut ahead) = self.ahead.take() {
            ahead.push(line, ctx, &mut |line, ctx, found| {
                self.apply(line, ctx, found)
            });
            self.ahead = Some(ahead);
        }
    }

    /// Applies every record still out on the matching thread, in order (`one-shot`'s end).
    fn finish_ahead(&mut self) {
        if let Some(mut ahead) = self.ahead.take() {
            ahead.finish(&mut |line, ctx, found| self.apply(line, ctx, found));
        }
    }

    /// Runs `f` on the counters of `path`, made on first use: one lookup for a file seen
    /// before (every read of a followed file).
    fn with_counters(&mut self, path: &str, f: impl FnOnce(&FileCounters)) {
        if let Some(c) = self.books.counters.get(path) {
            return f(c);
        }
        let c = self.self_metrics.file_counters(self.source, path);
        f(&c);
        self.books.counters.insert(path.to_owned(), c);
    }
}

impl Sink for SourceSink<'_> {
    fn begin(&mut self) {
        if self.depth == 0 {
            self.section = Some(self.gate.section());
        }
        self.depth += 1;
    }

    fn end(&mut self) {
        self.depth -= 1;
        if self.depth == 0 {
            self.section = None;
        }
    }

    fn record(&mut self, id: FileId, record: Option<FileRecord>) {
        self.share.record(id, record);
    }

    fn remembered(&mut self, gone: Vec<Arc<Known>>, restored: &[FileRecord]) {
        self.share.remembered(gone, restored);
    }

    fn durable(&mut self) {
        // Outside sections (the tailer calls it there): the checkpoint pauses the gate.
        if let Some(c) = self.gate.checkpointer() {
            c.checkpoint_within(crate::checkpoint::DURABLE_WAIT);
        }
    }

    fn line(&mut self, line: &str, path: RecordPath<'_>, stream: Option<&str>, time: Option<&str>) {
        let ctx = RecordContext {
            file: path.text,
            generation: Some(path.generation),
            stream,
            time,
        };
        if self.ahead.is_some() {
            self.line_ahead(line, &ctx);
        } else {
            self.apply(line, &ctx, None);
        }
    }

    fn record_error(&mut self, reason: crate::selfmetrics::RecordErrorReason) {
        self.pipeline.record_error(reason);
    }

    fn read(&mut self, path: &str, bytes: u64, stats: LineStats) {
        self.with_counters(path, |c| {
            if bytes > 0 {
                c.bytes.inc_by(bytes);
            }
            if stats.lines > 0 {
                c.lines.inc_by(stats.lines);
            }
            if stats.too_long > 0 {
                c.too_long.inc_by(stats.too_long);
            }
            if stats.invalid_utf8 > 0 {
                c.invalid_utf8.inc_by(stats.invalid_utf8);
            }
        });
    }

    fn event(&mut self, kind: EventKind, path: &str, detail: &str) {
        self.changed = true;
        if let Some((_, c)) = self.books.events.iter().find(|(k, _)| *k == kind) {
            c.inc();
        }
        let source = self.source;
        // Routine events (a rotation, a rename, a file drained) each at debug, and in a
        // summary at most once a minute; what may have cost data, each at info or warn.
        match kind {
            EventKind::Lost | EventKind::ReplacedWhileDraining => {
                warn!(source, path, "{}: {detail}", kind.as_str())
            }
            _ if is_routine(kind) => {
                debug!(source, path, "{}: {detail}", kind.as_str());
                self.books.activity.note(kind, Instant::now());
            }
            _ => info!(source, path, "{}: {detail}", kind.as_str()),
        }
        match kind {
            EventKind::Rotated => self.with_counters(path, |c| c.rotations.inc()),
            EventKind::Truncated => self.with_counters(path, |c| c.truncations.inc()),
            _ => {}
        }
        if kind == EventKind::Closed {
            self.books.errors.remove(path);
        }
    }

    fn error(&mut self, path: &str, error: Option<&str>) {
        match error {
            None => {
                if self.books.errors.remove(path).is_some() {
                    self.changed = true;
                    info!(source = self.source, path, "readable again");
                }
            }
            Some(e) => {
                if self.books.errors.get(path).map(String::as_str) != Some(e) {
                    warn!(source = self.source, "{e}");
                    self.books.errors.insert(path.to_owned(), e.to_owned());
                    self.changed = true;
                }
                self.with_counters(path, |c| c.read_errors.inc());
            }
        }
    }
}

/// One file source with its pipeline; owned and driven by its own thread.
pub struct FileSource {
    name: String,
    tailer: Tailer<RealFs>,
    options: FileOptions,
    pipeline: Pipeline,
    self_metrics: SelfMetrics,
    books: Books,
    share: Arc<SourceShare>,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    files_gauge: IntGauge,
    in_turns_gauge: IntGauge,
    status: SharedStatus,
    status_at: Option<Instant>,
    source_error: Option<String>,
    listing_errors_shown: Vec<String>,
    /// Matched paths not read (a FIFO, a device, ...) as last logged and counted.
    not_read_shown: Vec<(PathBuf, &'static str)>,
}

impl FileSource {
    /// A source over `config`'s globs (resolved against `base_dir`) feeding `pipeline`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        config: &FileSourceConfig,
        base_dir: &Path,
        pipeline: Pipeline,
        self_metrics: SelfMetrics,
        status: SharedStatus,
        gate: Arc<Gate>,
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
            s.kind = SourceKind::File(config).key();
            s.reads_lines = SourceKind::File(config).reads_lines();
            s.targets = globs.patterns().to_vec();
        }
        let options = FileOptions::from_config(config);
        FileSource {
            files_gauge: self_metrics.source_files.with_label_values(&[name]),
            in_turns_gauge: self_metrics
                .source_files_in_turns
                .with_label_values(&[name]),
            books: Books {
                counters: HashMap::default(),
                errors: HashMap::default(),
                panics: self_metrics.source_panics.with_label_values(&[name]),
                stalls: self_metrics.source_stalls.with_label_values(&[name]),
                activity: Activity::default(),
                forgotten_at: None,
                events: EventKind::ALL
                    .iter()
                    .map(|k| {
                        (
                            *k,
                            self_metrics
                                .source_file_events
                                .with_label_values(&[name, k.as_str()]),
                        )
                    })
                    .collect(),
            },
            name: name.to_owned(),
            tailer: Tailer::new(RealFs::new(), globs, options.tail()),
            options,
            pipeline,
            self_metrics,
            share: Arc::new(SourceShare::default()),
            gate,
            stop: Arc::new(AtomicBool::new(false)),
            status,
            status_at: None,
            source_error: None,
            listing_errors_shown: Vec::new(),
            not_read_shown: Vec::new(),
        }
    }

    /// The records a checkpoint reads (updated by the source in its sections).
    pub fn share(&self) -> Arc<SourceShare> {
        self.share.clone()
    }

    /// The flag that interrupts a long glob walk at shutdown.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Starts from a checkpoint's state of this source.
    pub fn restore(&mut self, state: TailState) {
        self.share.reset(&state);
        self.tailer.restore(state, Instant::now());
    }

    fn sink(&mut self) -> (SourceSink<'_>, &mut Tailer<RealFs>) {
        (
            SourceSink {
                source: &self.name,
                pipeline: &mut self.pipeline,
                self_metrics: &self.self_metrics,
                books: &mut self.books,
                share: &self.share,
                gate: &self.gate,
                section: None,
                depth: 0,
                changed: false,
                ahead: None,
            },
            &mut self.tailer,
        )
    }

    /// One-shot mode: reads every matched file from its beginning to its end, including a
    /// last line without a newline; returns the paths of the files it read.
    ///
    /// With `match_ahead`, a second thread runs the rules' matchers a batch of records ahead
    /// of this one, which reads and applies the matches in order (the same result, sooner on
    /// two cores); only where every rule is a line rule (regex, grok), else as without.
    pub fn read_everything_once(&mut self, match_ahead: bool) -> Vec<String> {
        self.tailer.set_start_at(StartAt::Beginning);
        let stop = AtomicBool::new(false);
        let now = Instant::now();
        let ahead = if match_ahead {
            MatchAhead::start(&self.pipeline)
        } else {
            None
        };
        if ahead.is_some() {
            debug!(source = %self.name, "records matched on a second thread, a batch ahead");
        }
        let read;
        {
            let (mut sink, tailer) = self.sink();
            sink.ahead = ahead.map(Box::new);
            tailer.scan(now, &stop, &mut sink);
            while tailer.read_all(now, &mut sink) {}
            read = tailer
                .files()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>();
            sink.begin();
            tailer.finish_all(&mut sink);
            sink.finish_ahead();
            sink.end();
        }
        let files = self.tailer.files().count();
        self.files_gauge.set(files as i64);
        read
    }

    /// Why matched paths are not read and directories could not be listed, at the last scan
    /// (for `explain`).
    pub fn not_read(&self) -> Vec<String> {
        let tailer = &self.tailer;
        let listing = tailer
            .listing_errors
            .iter()
            .map(|(dir, e, _)| format!("cannot list {}: {e}", dir.display()));
        let skipped = tailer
            .skipped
            .iter()
            .map(|(p, why)| format!("{} is not read: {why}", p.display()));
        listing.chain(skipped).collect()
    }

    /// The pipeline (for `explain`'s traces).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Takes over the files `previous` was reading (after a reload): they go on from their
    /// offsets; the counters and errors of their paths go on too.
    pub fn resume_from(&mut self, previous: FileSource) {
        self.books.counters = previous.books.counters;
        self.books.errors = previous.books.errors;
        self.share = previous.share;
        let (mut sink, tailer) = self.sink();
        tailer.adopt_state_of(previous.tailer, &mut sink);
    }

    /// Follows the files until [`Wake::Stop`] arrives, then hands itself back (a reload passes
    /// its files to the next config). `ready` is called once the first scan is done, before the
    /// first read (which may be long with `start_at: beginning`).
    ///
    /// A panic (a bug) does not end the source: it is logged, counted
    /// (`quarry_source_panics_total`) and shown on the landing page, and the source starts
    /// again from its last committed state — the file records its sections published, which
    /// go with the counts — after a backoff (1 s, doubling up to a minute, back to 1 s after a
    /// minute without one). A panic on one record is contained to that record.
    pub fn run(
        mut self,
        wake_tx: Sender<Wake>,
        wake_rx: Receiver<Wake>,
        ready: impl FnOnce(),
    ) -> FileSource {
        let mut ready = Some(ready);
        let mut backoff = PANIC_BACKOFF_FIRST;
        loop {
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.follow(&wake_tx, &wake_rx, &mut ready)
            }));
            let Err(payload) = outcome else {
                // Stopping (shutdown or reload): what was not summarised yet is said now.
                self.log_activity(true);
                return self;
            };
            if started.elapsed() >= PANIC_BACKOFF_LAST {
                backoff = PANIC_BACKOFF_FIRST;
            }
            let why = panic_message(&*payload);
            self.books.panics.inc();
            error!(source = %self.name, "the source panicked ({why}); it starts again from its last committed state in {backoff:?}");
            self.source_error = Some(format!(
                "panicked ({why}); started again from its last committed state"
            ));
            self.publish_status(true, WatchMode::Off);
            if let Some(ready) = ready.take() {
                ready();
            }
            match wake_rx.recv_timeout(backoff) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.log_activity(true);
                    return self;
                }
                _ => {}
            }
            if self.stop.load(Ordering::Relaxed) || wake_rx.try_iter().any(|w| w == Wake::Stop) {
                self.log_activity(true);
                return self;
            }
            let state = self.share.state();
            self.share.reset(&state);
            self.tailer.restart_from(state, Instant::now());
            backoff = (backoff * 2).min(PANIC_BACKOFF_LAST);
        }
    }

    /// The source's loop: scan, read, wait for a wake-up or the next poll; returns at a stop.
    fn follow<F: FnOnce()>(
        &mut self,
        wake_tx: &Sender<Wake>,
        wake_rx: &Receiver<Wake>,
        ready: &mut Option<F>,
    ) {
        let globs = self.tailer.globs().clone();
        let (mut watcher, problem) = Watcher::new(wake_tx.clone(), self.options.watch, globs);
        if let Some(p) = problem {
            warn!(source = %self.name, "{p}");
            self.source_error = Some(p);
        }
        // Every directory is listed; those that provably did not change are kept for the
        // scans that follow (those notifications wake, or the polls of a source without).
        self.tailer.fs().listings(Listings::Renew);
        self.scan();
        self.update_watches(&mut watcher);
        if let Some(ready) = ready.take() {
            ready();
        }
        let mut stall = StallGuard::default();
        let (mut more, mut flush_in) = self.read_guarded(None, &mut stall);
        self.publish_status(true, watcher.mode());
        let mut next_poll = Instant::now() + self.options.poll_interval;
        let mut polls: u32 = 0;
        let mut pace = PassPace::new(Instant::now());
        loop {
            let timeout = if more {
                Duration::ZERO
            } else {
                let poll = next_poll.saturating_duration_since(Instant::now());
                // A multi-line record held is emitted when its writer has paused long enough.
                flush_in.map_or(poll, |f| f.min(poll))
            };
            let mut rescan = false;
            let mut woken = false;
            match wake_rx.recv_timeout(timeout) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(w) => {
                    woken = true;
                    rescan |= w == Wake::Rescan;
                    for w in wake_rx.try_iter() {
                        if w == Wake::Stop {
                            return;
                        }
                        rescan |= w == Wake::Rescan;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if woken && !rescan && !more {
                // Data wakes that come sooner than the pace allows wait for it (see
                // `PassPace`); what they were for is read by the pass after the wait. A name
                // that changed ends the wait: a file created now is opened and read before it
                // can go again, as without the pace.
                if !gather_wakes(wake_rx, pace.next_start(), &mut rescan, true) {
                    return;
                }
            }
            // The names of one change come as several events (a rotation's rename, then its
            // create): the ones that follow at once are taken into the same scan.
            if rescan && !gather_wakes(wake_rx, Instant::now() + RESCAN_SETTLE, &mut rescan, false)
            {
                return;
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            let polled = now >= next_poll;
            if polled {
                rescan = true;
                next_poll = now + self.options.poll_interval;
            }
            let mut changed = false;
            if rescan {
                // Which directories are listed again: see `listings_for`.
                if polled {
                    polls = polls.wrapping_add(1);
                }
                let fs = self.tailer.fs();
                fs.listings(listings_for(&watcher, fs, polled, polls));
                changed |= self.scan();
                self.update_watches(&mut watcher);
            }
            crate::faults::panic_once();
            let named = watcher.pass_starts();
            // A rescan or a poll looks at every file; a data wake only at the files named.
            let full = rescan || named.all || !watcher.is_active();
            (more, flush_in) = self.read_guarded((!full).then_some(&named.paths[..]), &mut stall);
            pace.pass(now, Instant::now());
            self.publish_status(rescan || changed, watcher.mode());
            self.log_activity(false);
        }
    }

    /// Logs the summary of routine file events when one is due (or, when `all`, whatever is
    /// pending).
    fn log_activity(&mut self, all: bool) {
        let now = Instant::now();
        let summary = if all {
            self.books.activity.take(now)
        } else {
            self.books.activity.due(now)
        };
        if let Some(summary) = summary {
            info!(source = %self.name, "{summary}");
        }
    }

    /// A scan of the globs; returns whether files came, went or changed state.
    fn scan(&mut self) -> bool {
        let stop = self.stop.clone();
        let now = Instant::now();
        let changed = {
            let (mut sink, tailer) = self.sink();
            tailer.scan(now, &stop, &mut sink);
            sink.changed
        };
        self.after_scan();
        changed
    }

    /// Reads what is new (in every file, or in the files at `named` and those not simply
    /// followed: see [`Tailer::read_named`]), then emits the multi-line records whose writer
    /// paused; returns whether there is more to read right away, and when a held record is due.
    fn read(&mut self, named: Option<&[PathBuf]>) -> (bool, Option<Duration>) {
        let now = Instant::now();
        let (mut sink, tailer) = self.sink();
        let more = match named {
            Some(named) => tailer.read_named(now, &mut sink, named),
            None => tailer.read_all(now, &mut sink),
        };
        // The same instant as the read: a file whose record comes due is read first (`in_pass`).
        let flush_in = tailer.flush_idle(now, &mut sink);
        (more || crate::faults::endless_more(), flush_in)
    }

    /// [`Self::read`], with its stalls contained ([`StallGuard`]).
    fn read_guarded(
        &mut self,
        named: Option<&[PathBuf]>,
        guard: &mut StallGuard,
    ) -> (bool, Option<Duration>) {
        let before = self.tailer.consumed();
        let (more, flush_in) = self.read(named);
        let (more, stalled) = guard.after_pass(more, self.tailer.consumed() != before);
        if stalled {
            self.books.stalls.inc();
            // Once as a warning (each time the source starts: at a reload, after a panic);
            // then at debug, the counter keeping the tally: a stall that comes back comes
            // back at every wake.
            if guard.stalls == 1 {
                warn!(
                    source = %self.name,
                    "{STALLED_PASSES} passes in a row had more to read and read nothing: \
                     waiting for the next wake or poll instead (a bug; please report it with \
                     this source's debug log; quarry_source_stalls_total counts them)"
                );
            } else {
                debug!(source = %self.name, "another stall: {STALLED_PASSES} passes read nothing");
            }
        }
        (more, flush_in)
    }

    fn after_scan(&mut self) {
        let files = self.tailer.files().count();
        self.files_gauge.set(files as i64);
        self.in_turns_gauge.set(self.tailer.in_turns() as i64);
        let shown: Vec<String> = self
            .tailer
            .listing_errors
            .iter()
            .map(|(dir, e, _)| format!("cannot list {}: {e}", dir.display()))
            .collect();
        for (_, _, reason) in &self.tailer.listing_errors {
            self.self_metrics
                .source_listing_errors
                .with_label_values(&[&self.name, reason])
                .inc();
        }
        if shown != self.listing_errors_shown {
            for e in &shown {
                warn!(source = %self.name, "{e}; its files keep their offsets and are not taken for gone");
            }
            if shown.is_empty() && !self.listing_errors_shown.is_empty() {
                info!(source = %self.name, "listing works again");
            }
            self.listing_errors_shown = shown;
        }
        // A matched path that is not read (a FIFO, a device, a directory) is said once in the
        // log and counted by reason (the landing page lists it too).
        if self.tailer.skipped != self.not_read_shown {
            for (path, why) in &self.tailer.skipped {
                if !self.not_read_shown.iter().any(|(p, _)| p == path) {
                    warn!(source = %self.name, "{} is not read: {why}", path.display());
                }
            }
            let counts = not_read_counts(&self.tailer.skipped, &self.not_read_shown);
            for (reason, n) in counts {
                self.self_metrics
                    .source_paths_not_read
                    .with_label_values(&[&self.name, reason])
                    .set(n as i64);
            }
            self.not_read_shown = self.tailer.skipped.clone();
        }
        // Forget the self-metrics of paths no file holds any more, and the open errors of
        // paths neither held nor present. Skipped while the paths held and the number of paths
        // with counters are what they were when nothing was left to forget (a counter is only
        // made for a held path): every scan of a node's 500 files would otherwise copy each
        // path into a set.
        let print = (
            held_paths_print(self.tailer.files().map(|t| t.path.as_path())),
            self.books.counters.len(),
        );
        if self.books.forgotten_at == Some(print) && self.books.errors.is_empty() {
            return;
        }
        let held: foldhash::HashSet<String> = self
            .tailer
            .files()
            .map(|t| t.path.to_string_lossy().into_owned())
            .collect();
        let gone: Vec<String> = self
            .books
            .counters
            .keys()
            .filter(|p| !held.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            self.books.counters.remove(&path);
            self.self_metrics.forget_file(&self.name, &path);
        }
        self.books.forgotten_at = Some((print.0, self.books.counters.len()));
        // The error of a path that cannot be opened stays until it can (or is gone).
        self.books
            .errors
            .retain(|path, _| held.contains(path) || std::fs::symlink_metadata(path).is_ok());
    }

    fn update_watches(&mut self, watcher: &mut Watcher) {
        for problem in watcher.update(self.tailer.globs().watch_dirs()) {
            if self.source_error.as_deref() != Some(problem.as_str()) {
                warn!(source = %self.name, "{problem}");
                self.source_error = Some(problem);
            }
        }
    }

    fn publish_status(&mut self, force: bool, notifications: WatchMode) {
        let now = Instant::now();
        if !force && self.status_at.is_some_and(|at| now - at < STATUS_EVERY) {
            return;
        }
        self.status_at = Some(now);
        let mut files: Vec<FileStatus> = self
            .tailer
            .files()
            .map(|t| {
                let path = t.path_shared();
                let counters = self.books.counters.get(&*path);
                FileStatus {
                    state: match t.phase {
                        _ if t.unseen => FileState::Unseen,
                        Phase::Following if t.in_turns() => FileState::InTurns,
                        Phase::Following => FileState::Following,
                        Phase::Draining { .. } => FileState::Draining,
                        Phase::Shadow { .. } | Phase::Pending { .. } => FileState::Copy,
                    },
                    offset: t.committed(),
                    size: t.size,
                    lines: counters.map(|c| c.lines.get()).unwrap_or(0),
                    bytes: counters.map(|c| c.bytes.get()).unwrap_or(0),
                    last_error: self.books.errors.get(&*path).cloned(),
                    path,
                }
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let stats = self.pipeline.stats();
        // Errors of matched paths that are not followed (they cannot be opened).
        let mut unopened: Vec<String> = self
            .books
            .errors
            .iter()
            .filter(|(path, _)| !files.iter().any(|f| *f.path == ***path))
            .map(|(_, e)| e.clone())
            .collect();
        unopened.sort();
        let notes: Vec<String> = unopened
            .into_iter()
            .chain(self.listing_errors_shown.iter().cloned())
            .chain(
                self.tailer
                    .skipped
                    .iter()
                    .map(|(p, why)| format!("{} is not read: {why}", p.display())),
            )
            .chain((self.tailer.in_turns() > 0).then(|| {
                format!(
                    "{} file(s) read in turns (opened, read and closed each pass): over the open-file budget",
                    self.tailer.in_turns()
                )
            }))
            .collect();
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.files = files;
        s.rules = stats.rules;
        s.unmatched = stats.unmatched;
        s.unmatched_samples = stats.unmatched_samples;
        s.notifications = notifications;
        s.notes = notes;
        s.last_error = self.source_error.clone();
        s.updated = Some(SystemTime::now());
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_for_the_pace_ends_at_a_rescan_or_a_stop() {
        let (tx, rx) = std::sync::mpsc::channel();
        let far = Instant::now() + Duration::from_secs(3600);
        // Data wakes are taken while waiting; a rescan ends the wait at once.
        for w in [Wake::Data, Wake::Data, Wake::Rescan, Wake::Data] {
            tx.send(w).unwrap();
        }
        let mut rescan = false;
        assert!(gather_wakes(&rx, far, &mut rescan, true));
        assert!(rescan);
        assert_eq!(
            rx.try_iter().count(),
            1,
            "the wake after the rescan is left"
        );
        // Without ending at a rescan: every wake until the deadline, the rescan noted.
        tx.send(Wake::Rescan).unwrap();
        tx.send(Wake::Data).unwrap();
        let mut rescan = false;
        let soon = Instant::now() + Duration::from_millis(5);
        assert!(gather_wakes(&rx, soon, &mut rescan, false));
        assert!(rescan);
        assert_eq!(rx.try_iter().count(), 0);
        // A stop, or the sender gone: the source stops.
        tx.send(Wake::Stop).unwrap();
        assert!(!gather_wakes(&rx, far, &mut false, true));
        drop(tx);
        assert!(!gather_wakes(&rx, far, &mut false, false));
    }

    #[test]
    fn passes_are_spaced_by_their_cost_up_to_a_bound() {
        let t0 = Instant::now();
        let mut pace = PassPace::new(t0);
        assert_eq!(pace.next_start(), t0, "the first wake is read at once");
        // A pass of 2 ms: the next one 100 ms after it began.
        pace.pass(t0, t0 + Duration::from_millis(2));
        assert_eq!(pace.next_start(), t0 + Duration::from_millis(100));
        // A long pass: the bound.
        let t1 = t0 + Duration::from_secs(1);
        pace.pass(t1, t1 + Duration::from_secs(2));
        assert_eq!(pace.next_start(), t1 + PASS_GAP_MAX);
        // A cheap pass: the next is nearly due at once again.
        let t2 = t1 + Duration::from_secs(3);
        pace.pass(t2, t2 + Duration::from_micros(20));
        assert_eq!(pace.next_start(), t2 + Duration::from_millis(1));
    }

    #[test]
    fn passes_that_read_nothing_yet_say_there_is_more_stop_after_a_bound() {
        let mut guard = StallGuard::default();
        // Real work: more to read, and read (at the budget), for as long as it lasts.
        for _ in 0..10 * STALLED_PASSES {
            assert_eq!(guard.after_pass(true, true), (true, false));
        }
        // Nothing more to read: nothing to contain.
        assert_eq!(guard.after_pass(false, false), (false, false));
        // A few passes that decide files and read them in the next: not a stall.
        for _ in 0..3 {
            assert_eq!(guard.after_pass(true, false), (true, false));
            assert_eq!(guard.after_pass(true, true), (true, false));
        }
        // Nothing read, pass after pass: the bound ends it, once, and the count starts over.
        for _ in 1..STALLED_PASSES {
            assert_eq!(guard.after_pass(true, false), (true, false));
        }
        assert_eq!(guard.after_pass(true, false), (false, true));
        assert_eq!(guard.stalls, 1);
        assert_eq!(guard.after_pass(true, false), (true, false));
    }
}
