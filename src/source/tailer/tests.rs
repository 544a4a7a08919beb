//! Directed tests of the tailer on real files, for orders of events the simulation
//! (`src/source/sim.rs`) does not schedule: a file written at a matched path and renamed away
//! between two scans, before the tailer ever listed it; and copytruncate finishing between two
//! steps of one pass (the tailer's thread descheduled on a busy machine), made to happen there
//! by a filesystem that runs the rotation when the tailer reaches that step ([`Racing`]); and
//! logs of one name in two directories (the simulation has one).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;
use crate::source::fs::{Entry, Listings, RealFile, RealFs};
use crate::source::lines::LineStats;

/// Counts each line by its text, and keeps the events.
#[derive(Default)]
struct Lines {
    counts: HashMap<String, u32>,
    events: Vec<String>,
}

impl Sink for Lines {
    fn line(&mut self, line: &str, _: RecordPath<'_>, _: Option<&str>, _: Option<&str>) {
        *self.counts.entry(line.to_owned()).or_default() += 1;
    }
    fn read(&mut self, _: &str, _: u64, _: LineStats) {}
    fn event(&mut self, kind: EventKind, path: &str, detail: &str) {
        self.events
            .push(format!("{}: {path}: {detail}", kind.as_str()));
    }
    fn error(&mut self, _: &str, _: Option<&str>) {}
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Read from the beginning, a rotated file drained for 5 s.
fn options() -> TailOptions {
    TailOptions {
        start_at: StartAt::Beginning,
        max_line_length: 1 << 20,
        rotate_wait: Duration::from_secs(5),
        framing: None,
    }
}

fn tailer(root: &Path) -> Tailer<RealFs> {
    let globs = Globs::new(vec![format!("{}/pods/*/*/0.log", root.display())], &[]);
    Tailer::new(RealFs::new(), globs, options())
}

/// A scan and the reads after it, `later` after now (past `rotate_wait`: drained files close).
fn scan_and_read<F: Fs>(t: &mut Tailer<F>, sink: &mut Lines, later: Duration) {
    let stop = AtomicBool::new(false);
    let now = Instant::now() + later;
    t.scan(now, &stop, sink);
    t.read_until_quiet(now, sink);
}

#[test]
fn a_file_renamed_away_before_its_first_listing_is_read_once_and_older_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pod = |name: &str| root.join("pods").join(name).join("app");
    fs::create_dir_all(pod("a")).unwrap();
    append(&pod("a").join("0.log"), "a1\na2\n");
    // Born before the tailer's first listing, never matched: old content, never read.
    fs::create_dir_all(pod("c")).unwrap();
    append(&pod("c").join("0.log.20261205-235959"), "c-old\n");
    if fs::metadata(pod("c").join("0.log.20261205-235959"))
        .unwrap()
        .created()
        .is_err()
    {
        eprintln!("skipped: this filesystem keeps no birth times");
        return;
    }
    let mut t = tailer(root);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(20));

    // Pod d's 0.log is renamed away while no file is at its path, and a scan comes then: the
    // new 0.log is found one scan later, with the rotated file born before that scan began.
    fs::create_dir_all(pod("d")).unwrap();
    append(&pod("d").join("0.log"), "d1\nd2\n");
    fs::rename(
        pod("d").join("0.log"),
        pod("d").join("0.log.20261206-101000"),
    )
    .unwrap();
    // Pod f's 0.log is followed, renamed away, drained and closed: let go, not missed.
    fs::create_dir_all(pod("f")).unwrap();
    append(&pod("f").join("0.log"), "f1\n");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    fs::rename(pod("f").join("0.log"), pod("f").join("0.log.1")).unwrap();
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    scan_and_read(&mut t, &mut sink, Duration::from_secs(20));
    append(&pod("d").join("0.log"), "d3\n");
    append(&pod("f").join("0.log"), "f2\n");

    // Between two scans: pod b's 0.log is written, renamed to its rotated name (the writer
    // adds a line through its descriptor), and a new 0.log takes its place.
    fs::create_dir_all(pod("b")).unwrap();
    let live = pod("b").join("0.log");
    append(&live, "b1\nb2\nb3\n");
    let mut held = OpenOptions::new().append(true).open(&live).unwrap();
    let rotated = pod("b").join("0.log.20261206-101500");
    fs::rename(&live, &rotated).unwrap();
    held.write_all(b"b4\n").unwrap();
    append(&live, "b5\n");
    // An older rotation of pod b, compressed: never read as text.
    File::create(pod("b").join("0.log.20261206-090000.gz"))
        .unwrap()
        .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
        .unwrap();
    // Pod c's live file appears (its old rotation was there before the first scan).
    append(&pod("c").join("0.log"), "c1\n");
    // A copy of pod a's followed content (copytruncate's first step): read from pod a.
    fs::copy(pod("a").join("0.log"), pod("a").join("0.log.1")).unwrap();
    append(&pod("a").join("0.log"), "a3\n");
    scan_and_read(&mut t, &mut sink, Duration::from_secs(20));
    // The writer is not done with the rotated file yet.
    held.write_all(b"b6\n").unwrap();
    scan_and_read(&mut t, &mut sink, Duration::from_secs(21));

    let want: HashMap<String, u32> = [
        "a1", "a2", "a3", "b1", "b2", "b3", "b4", "b5", "b6", "c1", "d1", "d2", "d3", "f1", "f2",
    ]
    .iter()
    .map(|l| (l.to_string(), 1))
    .collect();
    assert_eq!(sink.counts, want, "events:\n{}", sink.events.join("\n"));
    assert!(
        sink.events
            .iter()
            .any(|e| e.contains("0.log.20261206-101500") && e.contains("before it was first seen")),
        "{:?}",
        sink.events
    );
}

#[test]
fn a_new_pods_log_alike_to_another_pods_log_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pod = |name: &str| root.join("pods").join(name).join("app");
    // Two replicas of one application, whose logs carry no time: they start alike, byte for
    // byte, and the second one stays shorter than the first.
    let lines: String = (0..100).map(|k| format!("ready {k}\n")).collect();
    fs::create_dir_all(pod("a")).unwrap();
    append(&pod("a").join("0.log"), &lines);
    append(&pod("a").join("0.log"), "a-only\n");
    let mut t = tailer(root);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    fs::create_dir_all(pod("b")).unwrap();
    append(&pod("b").join("0.log"), &lines);
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    let mut want: HashMap<String, u32> = lines.lines().map(|l| (l.to_owned(), 2)).collect();
    want.insert("a-only".into(), 1);
    assert_eq!(sink.counts, want, "events:\n{}", sink.events.join("\n"));
}

#[test]
fn rotation_names() {
    let p = Path::new;
    assert!(is_rotation_of(p("/d/0.log"), p("/d/0.log.20261206-101500")));
    assert!(is_rotation_of(p("/d/app.log"), p("/d/app.log-20261206")));
    assert!(is_rotation_of(p("/d/app.log"), p("/d/app.log_1")));
    assert!(!is_rotation_of(p("/d/0.log"), p("/d/0.log")));
    assert!(!is_rotation_of(p("/d/0.log"), p("/d/0.log.")));
    assert!(!is_rotation_of(p("/d/0.log"), p("/d/10.log.1")));
    assert!(!is_rotation_of(p("/d/app.log"), p("/d/app.logger")));
    assert!(!is_rotation_of(p("/d/0.log"), p("/d/1.log")));
}

/// A rotation run at a chosen step of the tailer: when it opens `on_open`, or reads at
/// `on_read_at` (before that open or read is done).
type Rotation = Box<dyn FnOnce()>;

/// The rotation to run and when; taken (and run) once.
type Armed = Rc<RefCell<Option<(Trigger, Rotation)>>>;

/// Real files, with a rotation run once at a chosen step of the tailer (see [`Rotation`]).
struct Racing {
    real: RealFs,
    armed: Armed,
}

#[derive(Clone, PartialEq)]
enum Trigger {
    Open(PathBuf),
    ReadAt(u64),
}

struct RacingFile {
    real: RealFile,
    armed: Armed,
}

fn fire(armed: &RefCell<Option<(Trigger, Rotation)>>, at: &Trigger) {
    let due = armed.borrow().as_ref().is_some_and(|(t, _)| t == at);
    if due {
        let (_, rotation) = armed.borrow_mut().take().unwrap();
        rotation();
    }
}

impl Handle for RacingFile {
    fn meta(&self) -> std::io::Result<Meta> {
        self.real.meta()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        fire(&self.armed, &Trigger::ReadAt(offset));
        self.real.read_at(offset, buf)
    }
}

impl Fs for Racing {
    type File = RacingFile;
    fn stat(&self, path: &Path) -> std::io::Result<Meta> {
        self.real.stat(path)
    }
    fn is_symlink(&self, path: &Path) -> bool {
        self.real.is_symlink(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<Entry>> {
        self.real.list(dir)
    }
    fn open(&self, path: &Path) -> std::io::Result<RacingFile> {
        fire(&self.armed, &Trigger::Open(path.to_path_buf()));
        Ok(RacingFile {
            real: self.real.open(path)?,
            armed: self.armed.clone(),
        })
    }
    fn birth_clock(&self) -> Option<u64> {
        self.real.birth_clock()
    }
    fn may_hold_open(&self) -> bool {
        true
    }
}

/// A tailer of `dir/access.log*` (the rotated copies matched too) on [`Racing`] files, which
/// has read `first`, written to `access.log`.
fn racing_tailer(dir: &Path, first: &str) -> (Tailer<Racing>, Armed, Lines) {
    append(&dir.join("access.log"), first);
    let armed = Rc::new(RefCell::new(None));
    let fs = Racing {
        real: RealFs::new(),
        armed: armed.clone(),
    };
    let globs = Globs::new(vec![format!("{}/access.log*", dir.display())], &[]);
    let mut t = Tailer::new(fs, globs, options());
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    (t, armed, sink)
}

/// Lines of one length whose last 300 bytes are alike: the bytes before any line's end are
/// the same in every file made of them (as repeated messages or padding make them).
fn padded(prefix: &str, keys: std::ops::Range<u32>) -> String {
    keys.map(|k| format!("{prefix}{k:04} {}\n", "x".repeat(400)))
        .collect()
}

/// `access.log` emptied in place (copytruncate's second step).
fn truncate(dir: &Path) {
    OpenOptions::new()
        .write(true)
        .open(dir.join("access.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// copytruncate: the file copied to `access.log.1`, then emptied in place.
fn copytruncate(dir: &Path) {
    fs::copy(dir.join("access.log"), dir.join("access.log.1")).unwrap();
    truncate(dir);
}

fn each_once(sink: &Lines, want: &[String]) {
    let want: HashMap<String, u32> = want
        .iter()
        .flat_map(|block| block.lines())
        .map(|l| (l.to_owned(), 1))
        .collect();
    let wrong: Vec<(&String, u32)> = want
        .keys()
        .map(|l| (l, sink.counts.get(l).copied().unwrap_or(0)))
        .chain(
            sink.counts
                .iter()
                .filter(|(l, _)| !want.contains_key(*l))
                .map(|(l, n)| (l, *n)),
        )
        .filter(|(_, n)| *n != 1)
        .collect();
    let shown: Vec<String> = wrong
        .iter()
        .map(|(l, n)| format!("{}… ×{n}", l.get(..5).unwrap_or(l)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{shown:?}\nevents:\n{}",
        sink.events.join("\n")
    );
}

#[test]
fn a_file_truncated_and_written_past_the_offset_during_a_read_is_not_read_from_its_middle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old1, old2, new) = (padded("L", 0..10), padded("L", 10..15), padded("N", 0..20));
    let (mut t, armed, mut sink) = racing_tailer(d, &old1);
    append(&d.join("access.log"), &old2);
    // Between the pass's look at the file and its read: copied, truncated, and written again
    // past the offset read, with the same bytes before that offset as the old content.
    let read = old1.len() as u64;
    let dd = d.to_path_buf();
    let new2 = new.clone();
    *armed.borrow_mut() = Some((
        Trigger::ReadAt(read - MARKER_LEN),
        Box::new(move || {
            copytruncate(&dd);
            append(&dd.join("access.log"), &new2);
        }),
    ));
    t.read_until_quiet(Instant::now(), &mut sink);
    assert!(armed.borrow().is_none(), "the read was not reached");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    each_once(&sink, &[old1, old2, new]);
}

#[test]
fn a_copy_whose_original_is_truncated_while_it_is_decided_is_not_read_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old1, old2, new) = (padded("L", 0..10), padded("L", 10..15), padded("N", 0..2));
    let (mut t, armed, mut sink) = racing_tailer(d, &old1);
    // logrotate's copy; the writer goes on and the tailer reads past the copy's end.
    fs::copy(d.join("access.log"), d.join("access.log.1")).unwrap();
    append(&d.join("access.log"), &old2);
    t.read_until_quiet(Instant::now(), &mut sink);
    // The next scan lists the copy with its original intact, and the truncate comes before
    // the copy is decided on.
    let dd = d.to_path_buf();
    let new2 = new.clone();
    *armed.borrow_mut() = Some((
        Trigger::Open(d.join("access.log.1")),
        Box::new(move || {
            truncate(&dd);
            append(&dd.join("access.log"), &new2);
        }),
    ));
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    assert!(armed.borrow().is_none(), "the copy was not opened");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    each_once(&sink, &[old1, old2, new]);
}

/// A restart looks for a checkpoint's file in its directory (it was renamed out of the globs
/// while the exporter was down). That listing is not a scan's: a file that came into the
/// directory before it, after the scan's own listing was taken, is adopted by the next scan
/// woken by a notification (which leaves directories it listed unchanged alone). Before, the
/// record's search was kept as the directory's listing, and the new `app.log` waited for the
/// poll — lost if it was rotated out of the globs first.
#[test]
fn a_file_come_while_a_restart_looks_for_its_records_is_taken_by_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let globs = || Globs::new(vec![format!("{}/app.lo[g]", d.display())], &[]);
    let (old, new) = (padded("O", 0..3), padded("N", 0..3));
    append(&d.join("app.log"), &old);
    let mut before = Tailer::new(RealFs::new(), globs(), options());
    let mut sink = Lines::default();
    scan_and_read(&mut before, &mut sink, Duration::ZERO);
    let state = before.state();
    drop(before);
    // Down: the file is rotated out of the globs.
    fs::rename(d.join("app.log"), d.join("app.log-1")).unwrap();
    let mut after = Tailer::new(RealFs::new(), globs(), options());
    // Watched, as by default: the scans keep the listings of settled directories.
    after.fs().listings(Listings::Renew);
    after.restore(state, Instant::now());
    let stop = AtomicBool::new(false);
    // The first scan's listing is taken; the application's new file comes before it is
    // applied, and the directory settles (listings of a directory changed within a second
    // are never kept).
    let listing = after.globs().expand(after.fs(), &stop);
    append(&d.join("app.log"), &new);
    std::thread::sleep(Duration::from_millis(1_100));
    let now = Instant::now();
    after.apply_listing(listing, now, &mut sink);
    after.read_until_quiet(now, &mut sink);
    // A scan woken by a notification.
    after.fs().listings(Listings::Reuse);
    after.scan(now, &stop, &mut sink);
    after.read_until_quiet(now, &mut sink);
    each_once(&sink, &[old, new]);
}

/// A tailer of `app.log*` in `dir`, from the beginning.
fn app_log_tailer(dir: &Path) -> Tailer<RealFs> {
    let globs = Globs::new(vec![format!("{}/app.log*", dir.display())], &[]);
    Tailer::new(RealFs::new(), globs, options())
}

/// `app.log` and its copy written over the rotated `app.log.1` in place (truncated and
/// written through the same inode, as a copier that opens its target with `O_TRUNC` does).
fn copy_in_place(dir: &Path) {
    let content = fs::read(dir.join("app.log")).unwrap();
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join("app.log.1"))
        .unwrap();
    f.write_all(&content).unwrap();
}

/// Simulation seed 90032, on real files: `app.log.1` was decided on by its first 3 bytes (a
/// line being written) and no line was read from it; a copy of the live `app.log`, starting
/// with the same 3 bytes, is written over it in place, and no pass sees it empty. Those 3
/// bytes alike do not make it the same file grown: it is decided again by all it holds (a
/// copy of `app.log`), and the copy's lines are counted once.
#[test]
fn a_copy_written_in_place_over_a_file_known_by_a_few_bytes_is_not_counted_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log.1"), "L56");
    let mut t = app_log_tailer(d);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    let live: String = (564..600).map(|k| format!("L{k} request done\n")).collect();
    append(&d.join("app.log"), &live);
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    copy_in_place(d);
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    each_once(&sink, &[live]);
}

/// The other side of the same decision: a file known by a few bytes that grows is read on,
/// each line once, with no replacement reported, even beside a file that starts alike.
#[test]
fn a_file_known_by_a_few_bytes_that_grows_is_read_on_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let older: String = (500..520).map(|k| format!("L{k} older\n")).collect();
    append(&d.join("app.log.1"), &older);
    append(&d.join("app.log"), "L5");
    let mut t = app_log_tailer(d);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    append(&d.join("app.log"), "64 first\n");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    append(&d.join("app.log"), "L565 second\n");
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    each_once(&sink, &[older, "L564 first\nL565 second\n".into()]);
    let replaced: Vec<&String> = sink
        .events
        .iter()
        .filter(|e| e.starts_with("truncated"))
        .collect();
    assert!(replaced.is_empty(), "{replaced:?}");
}

/// Simulation seed 193431, on real files: the live `app.log`, empty while copytruncate copied
/// it in place over `app.log.1`, was then taken for a copy of `app.log.1` (both held the same
/// line, and `app.log.1` was being read). copytruncate truncated it, its writer wrote on and
/// the file was deleted: what it held then was read as the copy having grown "past its
/// original", from the copy's offset, then found replaced while draining and closed: its
/// lines were lost. A copy's own content is now checked for replacement like a followed
/// file's, and its new content decided on as new.
#[test]
fn a_live_file_taken_for_a_copy_then_truncated_and_written_on_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let older: String = (700..720).map(|k| format!("L{k} older\n")).collect();
    append(&d.join("app.log.1"), &older);
    let mut t = app_log_tailer(d);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    append(&d.join("app.log"), "");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    // The copy over `app.log.1` begins (opened with O_TRUNC), the writer writes a line to
    // `app.log`, the copy gets it too.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.join("app.log.1"))
        .unwrap();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    append(&d.join("app.log"), "L801 x\n");
    append(&d.join("app.log.1"), "L801 x\n");
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    // copytruncate empties `app.log`; its writer (append mode) writes on; it is deleted.
    let mut writer = OpenOptions::new()
        .append(true)
        .open(d.join("app.log"))
        .unwrap();
    writer.set_len(0).unwrap();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    fs::remove_file(d.join("app.log")).unwrap();
    let newer: String = (802..811).map(|k| format!("L{k} newer\n")).collect();
    writer.write_all(newer.as_bytes()).unwrap();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    each_once(&sink, &[older, "L801 x\n".into(), newer]);
}

/// A file taken for a copy of the live `app.log` (it held the same lines), then renamed out of
/// the globs and written on: the scans no longer see it, but it is not closed as soon as it
/// leaves them while its writer writes on; the lines past its original's
/// are read from it, once, and the lines it shares with the original are not counted again.
/// A copy renamed away that stays quiet is closed after `rotate_wait`.
#[test]
fn a_copy_renamed_out_of_the_globs_and_written_on_is_read_past_its_original() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shared: String = (0..10).map(|k| format!("L{k} shared\n")).collect();
    append(&d.join("app.log"), &shared);
    let mut t = app_log_tailer(d);
    let mut sink = Lines::default();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    append(&d.join("app.log.1"), &shared);
    append(&d.join("app.log.2"), &shared);
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    let shadowed = sink
        .events
        .iter()
        .filter(|e| e.starts_with("shadowed"))
        .count();
    assert_eq!(shadowed, 2, "{:?}", sink.events);
    fs::rename(d.join("app.log.1"), d.join("moved-away")).unwrap();
    fs::rename(d.join("app.log.2"), d.join("moved-quiet")).unwrap();
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    let later: String = (10..20).map(|k| format!("L{k} later\n")).collect();
    append(&d.join("moved-away"), &later);
    scan_and_read(&mut t, &mut sink, Duration::ZERO);
    scan_and_read(&mut t, &mut sink, Duration::from_secs(10));
    scan_and_read(&mut t, &mut sink, Duration::from_secs(20));
    each_once(&sink, &[shared, later]);
    // Events name a file by the path it was found under.
    let quiet: Vec<&String> = sink
        .events
        .iter()
        .filter(|e| e.starts_with("closed") && e.contains("app.log.2: a copy"))
        .collect();
    assert_eq!(quiet.len(), 1, "{:?}", sink.events);
    let followed: Vec<&PathBuf> = t.files.values().map(|f| &f.path).collect();
    assert_eq!(followed, [&d.join("app.log")]);
}

/// Each line with the path it was delivered under, and the path's number.
#[derive(Default)]
struct Named {
    lines: Vec<(String, String)>,
    generations: Vec<u64>,
}

impl Sink for Named {
    fn line(&mut self, line: &str, path: RecordPath<'_>, _: Option<&str>, _: Option<&str>) {
        self.lines.push((line.to_owned(), path.text.to_owned()));
        self.generations.push(path.generation);
    }
    fn read(&mut self, _: &str, _: u64, _: LineStats) {}
    fn event(&mut self, _: EventKind, _: &str, _: &str) {}
    fn error(&mut self, _: &str, _: Option<&str>) {}
}

/// A file renamed within the globs gives its lines under its new name from then on, and
/// under the old one before (the path's text is made once per name, and kept in step with a
/// rename); renamed twice, the second name. Each name's number is its own: the pipeline
/// takes one number for one path (its `derive:` from the path is not run again for it), so a
/// number given to two paths would label one file's lines with the other's pod.
#[test]
fn a_file_renamed_within_the_globs_gives_its_lines_under_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let globs = Globs::new(vec![format!("{}/*.log*", logs.display())], &[]);
    let mut t = Tailer::new(RealFs::new(), globs, options());
    let mut sink = Named::default();
    let scan = |t: &mut Tailer<RealFs>, sink: &mut Named| {
        let stop = AtomicBool::new(false);
        t.scan(Instant::now(), &stop, sink);
        t.read_until_quiet(Instant::now(), sink);
    };
    let (first, second, third) = (
        logs.join("app.log"),
        logs.join("app.log.1"),
        logs.join("app.log.old"),
    );
    let other = logs.join("other.log");
    append(&first, "one\n");
    append(&other, "a\n");
    scan(&mut t, &mut sink);
    append(&first, "one more\n");
    fs::rename(&first, &second).unwrap();
    append(&second, "two\n");
    append(&other, "b\n");
    scan(&mut t, &mut sink);
    fs::rename(&second, &third).unwrap();
    append(&third, "three\n");
    // A new file under the first name.
    append(&first, "new\n");
    scan(&mut t, &mut sink);
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let of = |path: &Path| -> Vec<&str> {
        sink.lines
            .iter()
            .filter(|(_, p)| *p == text(path))
            .map(|(l, _)| l.as_str())
            .collect()
    };
    assert_eq!(of(&first), ["one", "new"]);
    assert_eq!(of(&second), ["one more", "two"]);
    assert_eq!(of(&third), ["three"]);
    assert_eq!(of(&other), ["a", "b"]);
    // One path per number; the same number for a name's lines in a row of reads; another
    // for every other name, the new file under an old name included.
    let mut path_of: HashMap<u64, &str> = HashMap::default();
    for ((line, path), g) in sink.lines.iter().zip(&sink.generations) {
        assert_eq!(*path_of.entry(*g).or_insert(path), path, "{line}");
    }
    let number =
        |line: &str| sink.generations[sink.lines.iter().position(|(l, _)| l == line).unwrap()];
    assert_eq!(number("a"), number("b"));
    assert_eq!(number("one more"), number("two"));
    let distinct: std::collections::BTreeSet<u64> = ["one", "two", "three", "new", "a"]
        .map(number)
        .into_iter()
        .collect();
    assert_eq!(distinct.len(), 5);
}
