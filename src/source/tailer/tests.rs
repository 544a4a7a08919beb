//! Directed tests of the tailer on real files, for orders of events the simulation
//! (`src/source/sim.rs`) does not schedule: here, a file written at a matched path and renamed
//! away between two scans, before the tailer ever listed it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;
use crate::source::fs::RealFs;
use crate::source::lines::LineStats;

/// Counts each line by its text, and keeps the events.
#[derive(Default)]
struct Lines {
    counts: HashMap<String, u32>,
    events: Vec<String>,
}

impl Sink for Lines {
    fn line(&mut self, line: &str, _: &str, _: Option<&str>, _: Option<&str>) {
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

fn tailer(root: &Path) -> Tailer<RealFs> {
    let globs = Globs::new(vec![format!("{}/pods/*/*/0.log", root.display())], &[]);
    Tailer::new(
        RealFs::new(),
        globs,
        TailOptions {
            start_at: StartAt::Beginning,
            max_line_length: 1 << 20,
            rotate_wait: Duration::from_secs(5),
            framing: None,
        },
    )
}

/// A scan and the reads after it, `later` after now (past `rotate_wait`: drained files close).
fn scan_and_read(t: &mut Tailer<RealFs>, sink: &mut Lines, later: Duration) {
    let stop = AtomicBool::new(false);
    let now = Instant::now() + later;
    t.scan(now, &stop, sink);
    while t.read_all(now, sink) {}
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
