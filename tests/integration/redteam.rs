//! The adversary's cases: checkpoints with offsets or identities that cannot be right, the
//! storage directory's leftovers, and config errors that must say where they are — each with
//! the real binary and real files, counts keyed per line.

use std::path::Path;
use std::time::{Duration, Instant};

use quarry_exporter::checkpoint::{decode, encode, Snapshot};

use crate::common::*;

const CONFIG: &str = r#"version: 1
metrics:
  - {name: lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}
sources:
  - name: app
    file: {paths: ["app*.log"], start_at: beginning, poll_interval: 100ms}
    rules:
      - regex: '^L(?P<key>\d+)$'
        update: [{metric: lines_total, labels: {key: $key}}]
"#;

fn write_lines(log: &Path, from: usize, to: usize) {
    let text: String = (from..to).map(|i| format!("L{i}\n")).collect();
    append(log, text);
}

/// Every key of `0..n` of `lines_total` exactly once (see [`exactly_once`]).
fn each_once(exporter: &Exporter, n: usize) {
    let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    exactly_once(exporter, "lines_total", &keys);
}

fn start_stored(config: &Path, store: &Path) -> Exporter {
    Exporter::start_with(config, &[&format!("--storage.path={}", store.display())])
}

fn tamper(store: &Path, edit: impl FnOnce(&mut Snapshot)) {
    let path = store.join("quarry.checkpoint");
    let mut snapshot = decode(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut snapshot);
    std::fs::write(&path, encode(&snapshot)).unwrap();
}

/// A checkpoint whose checksum holds but whose file records cannot be right: an offset past
/// the end of a file unchanged since (it was read to 1000 bytes short of that), an offset
/// past the end of any file (a negative one written unsigned), the identity of another
/// followed file, the paths of two files swapped. Each line of both files is counted once:
/// an impossible offset refuses the checkpoint (counted, and the exporter starts afresh);
/// before, the file was taken for another one and read again from 0 on top of the counts
/// restored (every line 2).
#[test]
fn a_checkpoint_with_an_impossible_offset_or_identity_counts_nothing_twice() {
    type Edit = Box<dyn Fn(&mut Snapshot)>;
    // (name, edit, refused)
    let cases: Vec<(&str, Edit, bool)> = vec![
        (
            "offset past the end",
            Box::new(|s| {
                let r = s.sources[0]
                    .1
                    .files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.offset += 1000;
            }),
            true,
        ),
        (
            "offset u64::MAX",
            Box::new(|s| {
                let r = s.sources[0]
                    .1
                    .files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.offset = u64::MAX;
            }),
            true,
        ),
        (
            "identity of the other file",
            Box::new(|s| {
                let files = &mut s.sources[0].1.files;
                let other = files
                    .iter()
                    .find(|r| r.known.path.ends_with("app2.log"))
                    .unwrap()
                    .known
                    .id;
                let r = files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.id = other;
            }),
            false,
        ),
        (
            "paths swapped",
            Box::new(|s| {
                let files = &mut s.sources[0].1.files;
                let a = files
                    .iter()
                    .position(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                let b = files
                    .iter()
                    .position(|r| r.known.path.ends_with("app2.log"))
                    .unwrap();
                let pa = files[a].known.path.clone();
                files[a].known.path = files[b].known.path.clone();
                files[b].known.path = pa;
            }),
            false,
        ),
    ];
    let only = std::env::var("RT_CASE").ok();
    for (name, edit, refused) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("case: {name}");
        let dir = tempdir();
        let d = dir.path();
        let config = d.join("exporter.yaml");
        std::fs::write(&config, CONFIG).unwrap();
        let store = d.join("store");
        write_lines(&d.join("app.log"), 0, 100);
        write_lines(&d.join("app2.log"), 1000, 1050);
        let exporter = start_stored(&config, &store);
        exporter.wait_value(r#"lines_total{key="1049"}"#, 1.0);
        exporter.wait_value(r#"lines_total{key="99"}"#, 1.0);
        assert!(exporter.terminate().success());
        tamper(&store, edit);
        // app.log is left as it was (changed before the checkpoint was taken); app2.log grows.
        write_lines(&d.join("app2.log"), 1050, 1060);
        let exporter = start_stored(&config, &store);
        // Every line of both files once: 0..100 and 1000..1060.
        let start = Instant::now();
        loop {
            let got = keyed(&exporter.scrape(), "lines_total");
            let done = (0..100)
                .chain(1000..1060)
                .all(|i| got.contains_key(&i.to_string()));
            if done || start.elapsed() > WAIT {
                let wrong: Vec<_> = (0..100)
                    .chain(1000..1060)
                    .map(|i| (i, got.get(&i.to_string()).copied()))
                    .filter(|(_, v)| *v != Some(1.0))
                    .take(10)
                    .collect();
                assert!(
                    wrong.is_empty() && got.len() == 160,
                    "{name}: not exactly once: {wrong:?} ({} keys)\n--- log ---\n{}",
                    got.len(),
                    exporter.log_text()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let refusals = exporter
            .value(r#"quarry_checkpoint_restore_errors_total{reason="refused"}"#)
            .unwrap();
        assert_eq!(refusals, if refused { 1.0 } else { 0.0 }, "{name}");
        if refused {
            let log = exporter.log_text();
            assert!(
                log.contains("the checkpoint is refused") && log.contains("past"),
                "{name}: {log}"
            );
        }
    }
}

/// What the storage directory may hold that the exporter did not put there, or left: a
/// directory at the temporary file's path is moved aside (it made every checkpoint fail
/// with "Is a directory", for good); a write cut short by `ulimit -f` (as by a full disk)
/// leaves no partial temporary file to keep the volume full (it left one of the limit's
/// size); a `--storage.path` that is a file says so (it said "cannot create it: File exists").
#[test]
fn the_storage_directory_survives_what_is_left_in_it() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    write_lines(&d.join("app.log"), 0, 100);

    // A directory (with a file in it) at the temporary file's path.
    let store = d.join("store");
    std::fs::create_dir_all(store.join("quarry.checkpoint.tmp")).unwrap();
    std::fs::write(store.join("quarry.checkpoint.tmp/keep"), "mine").unwrap();
    let exporter = start_stored(&config, &store);
    each_once(&exporter, 100);
    exporter.wait_at_least("quarry_checkpoint_writes_total", 1.0);
    assert_eq!(exporter.value("quarry_checkpoint_errors_total"), Some(0.0));
    assert!(exporter.terminate().success());
    assert!(store.join("quarry.checkpoint").is_file());
    let aside: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("quarry.checkpoint.tmp.unreadable-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the directory is kept aside");
    assert_eq!(
        std::fs::read_to_string(aside[0].path().join("keep")).unwrap(),
        "mine"
    );
    // The checkpoint written holds: a restart counts nothing again.
    write_lines(&d.join("app.log"), 100, 110);
    let exporter = start_stored(&config, &store);
    each_once(&exporter, 110);
    assert!(exporter.terminate().success());

    // A write over `ulimit -f` (4 KiB; the checkpoint of 2,000 series is larger).
    let store = d.join("store-limited");
    write_lines(&d.join("app.log"), 110, 2000);
    let exporter = Exporter::start_wrapped(
        &config,
        &["prlimit", "--fsize=4096", "--"],
        &[
            &format!("--storage.path={}", store.display()),
            "--storage.interval=1h",
        ],
    );
    each_once(&exporter, 2000);
    exporter.wait_at_least("quarry_checkpoint_errors_total", 1.0);
    // The shutdown checkpoint fails the same way; then nothing writes. (The first checkpoint,
    // before the file was read, was small enough.)
    assert!(exporter.terminate().success());
    let left: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("quarry.checkpoint.tmp"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A regular file as --storage.path.
    let file = d.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(binary())
        .arg(format!("--config.file={}", config.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!("--storage.path={}", file.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("it is a regular file, not a directory"),
        "{stderr}"
    );
}

/// Runs `check` on `config` and returns its exit code and stderr, or fails the test if it
/// has not exited within [`WAIT`] (it used to wait for ever on a FIFO).
fn check_bounded(config: &Path) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(binary())
        .arg("check")
        .arg(format!("--config.file={}", config.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check of {} did not exit", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config path that is a link to `/dev/zero`, or a FIFO nobody writes: `check` says what it
/// is and exits 1 (it read `/dev/zero` until memory ran out — 6.7 GB in 20 s — and waited for
/// ever on the FIFO); a reload onto either keeps the running config and says why, and the
/// exporter goes on counting; a good config after them reloads.
#[test]
fn a_config_path_that_is_a_device_or_a_fifo_is_refused_without_waiting_or_reading_for_ever() {
    let dir = tempdir();
    let d = dir.path();
    let zero = d.join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let (code, stderr) = check_bounded(&zero);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read config file: it is a device, not a regular file"),
        "{stderr}"
    );
    let fifo = d.join("fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, stderr) = check_bounded(&fifo);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read config file: it is a FIFO, not a regular file"),
        "{stderr}"
    );

    // Reloads onto them.
    let config = d.join("exporter.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    write_lines(&d.join("app.log"), 0, 10);
    let exporter = Exporter::start_with(&config, &[]);
    exporter.wait_value(r#"lines_total{key="9"}"#, 1.0);
    let mut n = 10;
    for (target, what) in [(&zero, "a device"), (&fifo, "a FIFO")] {
        std::fs::remove_file(&config).unwrap();
        std::os::unix::fs::symlink(target, &config).unwrap();
        sighup(&exporter);
        exporter.wait_value("quarry_config_last_reload_successful", 0.0);
        let start = Instant::now();
        while !exporter
            .log
            .lock()
            .unwrap()
            .join("\n")
            .contains(&format!("it is {what}, not a regular file"))
        {
            assert!(
                start.elapsed() < WAIT,
                "the reload onto {what} never failed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        write_lines(&d.join("app.log"), n, n + 10);
        n += 10;
        each_once(&exporter, n);
        std::fs::remove_file(&config).unwrap();
        std::fs::write(&config, CONFIG).unwrap();
        sighup(&exporter);
        exporter.wait_value("quarry_config_last_reload_successful", 1.0);
    }
    assert!(exporter.terminate().success());
}

/// A CRI line cut by a kubelet rotation (its `P` parts end `0.log`, renamed
/// `0.log.<time>`; its `F` starts the new `0.log`) with a glob that matches the rotated
/// names too (`*.log*`, as CONFIG.md recommends for copytruncate): one record, whole — as
/// with `*.log` (`records.rs`). It was not: the renamed file stayed followed (matched), so it
/// was not the draining predecessor `Tailer::inherit_partials` looked for; its `P` parts were
/// held for ever (never counted) and the `F` counted alone (here: unmatched). By hand, with
/// 150,000 records and two CPU burners: 2,105 records missing, 445 unmatched fragments.
#[test]
fn a_container_line_cut_by_a_rotation_is_one_record_when_the_rotated_names_are_matched() {
    let dir = tempdir();
    let d = dir.path();
    let config = r#"version: 1
metrics:
  - {name: records_total, type: counter, help: Records by key and end., labels: [key, end]}
sources:
  - name: pod
    file: {paths: ["*.log*"], format: cri, start_at: beginning, poll_interval: 100ms}
    rules:
      - regex: '^(?P<key>k\d+) x* (?P<end>e\d+)$'
        update: [{metric: records_total, labels: {key: $key, end: $end}}]
"#;
    std::fs::write(d.join("exporter.yaml"), config).unwrap();
    let exporter = Exporter::start_with(&d.join("exporter.yaml"), &[]);
    let live = d.join("0.log");
    let line = |i: usize, stream: &str, tag: &str, text: &str| {
        format!("2026-12-06T03:00:00.{i:09}Z {stream} {tag} {text}\n")
    };
    let mut n = 0;
    for round in 0..5 {
        let mut text = String::new();
        for _ in 0..10 {
            text.push_str(&line(n, "stdout", "F", &format!("k{n} x e{n}")));
            n += 1;
        }
        // The cut: a stdout line's first part, then the rotation.
        text.push_str(&line(n, "stdout", "P", &format!("k{n} xx")));
        append(&live, text);
        exporter.wait_value(
            &format!(r#"records_total{{end="e{}",key="k{}"}}"#, n - 1, n - 1),
            1.0,
        );
        std::fs::rename(&live, d.join(format!("0.log.20261206-03000{round}"))).unwrap();
        append(&live, line(n + 1, "stdout", "F", &format!("x e{n}")));
        n += 1;
    }
    // The last record of the last round: its end written, every cut line counted whole.
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        let got = series(&text, "records_total");
        let whole = (0..n)
            .filter(|i| got.get(&format!(r#"end="e{i}",key="k{i}""#)) == Some(&1.0))
            .count();
        if whole == n && got.len() == n {
            break;
        }
        if start.elapsed() > WAIT {
            let unmatched = text
                .lines()
                .find(|l| l.starts_with("quarry_source_unmatched_lines_total{"))
                .unwrap_or("");
            panic!(
                "{whole} of {n} records whole ({} series); {unmatched}",
                got.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A storage directory deleted and made again under a running exporter (by hand, or a volume
/// mounted anew), then used by a second exporter: the first one's lock is on the old
/// directory, so both run, and the first went on writing its checkpoints by path into the
/// second's directory — a restart of the second then resumed from the first's offsets and
/// counts. The first now writes nothing there and says why.
#[test]
fn a_storage_directory_made_again_is_not_written_by_the_exporter_that_lost_it() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    write_lines(&d.join("app.log"), 0, 10);
    let store = d.join("store");
    let first = start_stored(&config, &store);
    each_once(&first, 10);
    first.wait_at_least("quarry_checkpoint_writes_total", 1.0);
    std::fs::remove_dir_all(&store).unwrap();
    let second = start_stored(&config, &store);
    each_once(&second, 10);
    write_lines(&d.join("app.log"), 10, 20);
    each_once(&first, 20);
    each_once(&second, 20);
    // The first one's shutdown checkpoint, and any before it, fail.
    let log = first.log.clone();
    assert!(first.terminate().success());
    let text = log.lock().unwrap().join("\n");
    assert!(
        text.contains("was deleted or replaced since the exporter started"),
        "{text}"
    );
    // The directory holds the second one's checkpoint only: it resumes where it was.
    assert!(second.terminate().success());
    write_lines(&d.join("app.log"), 20, 30);
    let second = start_stored(&config, &store);
    each_once(&second, 30);
}
