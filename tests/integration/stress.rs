//! Trust under stress: what used to count twice, crash or hang when streams interleave,
//! checkpoints are tampered with or hang, sources panic, or scrapes flood — each with the
//! real binary, real files and real signals, counts keyed per line so that a loss and a
//! double count cannot cancel out.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quarry_exporter::checkpoint::{decode, encode, Snapshot};
use quarry_exporter::registry::FamilySnapshot;
use quarry_exporter::series::TableCopy;

use crate::common::*;

fn reload_and_wait(exporter: &Exporter) {
    let reloads = "quarry_config_last_reload_success_timestamp_seconds";
    let before = exporter.value(reloads).unwrap();
    // The timestamp has a resolution of a millisecond.
    std::thread::sleep(Duration::from_millis(5));
    sighup(exporter);
    exporter.wait_at_least(reloads, before + 1e-6);
}

fn start_stored(config: &Path, store: &Path) -> Exporter {
    Exporter::start_with(config, &[&format!("--storage.path={}", store.display())])
}

fn kill9(exporter: Exporter) {
    Command::new("kill")
        .args(["-9", &exporter.pid().to_string()])
        .status()
        .unwrap();
    drop(exporter);
}

const CRI_CONFIG: &str = r#"version: 1
metrics:
  - {name: records_total, type: counter, help: Records by key., labels: [key], max_series: 100000}
sources:
  - name: pod
    file: {paths: [app.log], format: cri, start_at: beginning, poll_interval: 100ms}
    rules:
      - regex: '^(?P<key>\S+)'
        update: [{metric: records_total, labels: {key: $key}}]
"#;

/// A CRI log with a partial line held on stdout while stderr writes 100 complete records:
/// reloads of the same config (SIGHUP), a SIGTERM restart and a `kill -9` restart with a
/// checkpoint count each stderr record once (they were counted 100 → 200 → 300 → 400 when the
/// committed offset was the oldest held line of any stream); then the stdout line completes
/// and is counted once, whole.
#[test]
fn interleaved_container_streams_count_once_across_reloads_and_restarts() {
    let dir = tempdir();
    let d = dir.path();
    let log = d.join("app.log");
    let config = d.join("exporter.yaml");
    std::fs::write(&config, CRI_CONFIG).unwrap();
    let store = d.join("store");
    append(&log, "2026-12-05T10:00:00Z stdout P out-\n");
    let mut keys = Vec::new();
    let write_err = |from: usize, to: usize, keys: &mut Vec<String>| {
        let mut text = String::new();
        for i in from..to {
            text.push_str(&format!("2026-12-05T10:00:01Z stderr F err-{i}\n"));
            keys.push(format!("err-{i}"));
        }
        append(&log, text);
    };
    write_err(0, 100, &mut keys);
    let mut exporter = start_stored(&config, &store);
    exactly_once(&exporter, "records_total", &keys);
    for round in 0..3 {
        reload_and_wait(&exporter);
        write_err(100 + round * 10, 110 + round * 10, &mut keys);
        exactly_once(&exporter, "records_total", &keys);
    }
    assert!(exporter.terminate().success());
    write_err(130, 140, &mut keys);
    exporter = start_stored(&config, &store);
    exactly_once(&exporter, "records_total", &keys);
    // A checkpoint with the held line in it, then kill -9.
    exporter.scrape();
    kill9(exporter);
    write_err(140, 150, &mut keys);
    exporter = start_stored(&config, &store);
    exactly_once(&exporter, "records_total", &keys);
    reload_and_wait(&exporter);
    // The stdout line completes: one record, whole.
    append(&log, "2026-12-05T10:00:02Z stdout F line\n");
    keys.push("out-line".into());
    exactly_once(&exporter, "records_total", &keys);
}

const TAMPER_CONFIG: &str = r#"version: 1
metrics:
  - {name: lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}
  - {name: level, type: state, help: The last level., labels: [app], states: [ok, warn, down]}
  - {name: took_seconds, type: histogram, help: Durations., labels: [app], buckets: [0.1, 1]}
sources:
  - name: app
    file: {paths: [app.log], start_at: beginning, poll_interval: 100ms}
    rules:
      - regex: '^L(?P<key>\d+) (?P<level>\w+) (?P<took>[\d.]+)$'
        update:
          - {metric: lines_total, labels: {key: $key}}
          - {metric: level, labels: {app: web}, state: $level}
          - {metric: took_seconds, labels: {app: web}, observe: $took}
"#;

fn write_tamper_lines(log: &Path, from: usize, to: usize) {
    let mut text = String::new();
    let levels = ["ok", "warn", "down"];
    for i in from..to {
        text.push_str(&format!("L{i} {} 0.{}\n", levels[i % 3], i % 10));
    }
    append(log, text);
}

/// Rewrites the checkpoint in `store` with `edit` applied, its checksum made anew (as someone
/// who edits it by hand, or a broken build, would leave it).
fn tamper(store: &Path, edit: impl FnOnce(&mut Snapshot)) {
    let path = store.join("quarry.checkpoint");
    let mut snapshot = decode(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut snapshot);
    std::fs::write(&path, encode(&snapshot)).unwrap();
}

/// The series of `family` with `edit` applied to each one's key and values.
fn edit_series(family: &mut FamilySnapshot, mut edit: impl FnMut(&mut Vec<u8>, &mut Vec<f64>)) {
    let mut copy = TableCopy::new(family.series.width());
    for i in 0..family.series.len() {
        let mut key = family.series.key(i).to_vec();
        let mut values = family.series.values(i).to_vec();
        edit(&mut key, &mut values);
        copy.push(&key, &values);
    }
    family.series = copy;
}

fn family<'a>(s: &'a mut Snapshot, name: &str) -> &'a mut FamilySnapshot {
    s.families.iter_mut().find(|f| f.name == name).unwrap()
}

/// A checkpoint whose checksum holds but whose content cannot be right is refused whole:
/// said in the log, counted in `quarry_checkpoint_restore_errors_total{reason="refused"}`,
/// moved aside, and the exporter starts afresh (counters from 0, the file read again from
/// its beginning) — never a counter of −5, NaN or +Inf, a state of 99, buckets that do not add
/// up, a series twice, a label value promtool refuses, or a file read again on top of its
/// restored counts (205 for 105 lines).
#[test]
fn a_checkpoint_that_cannot_be_right_is_refused_whole() {
    type Edit = Box<dyn Fn(&mut Snapshot)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "a counter of -5",
            Box::new(|s| edit_series(family(s, "lines_total"), |_, v| v[0] = -5.0)),
        ),
        (
            "a counter of NaN",
            Box::new(|s| edit_series(family(s, "lines_total"), |_, v| v[0] = f64::NAN)),
        ),
        (
            "a counter of inf",
            Box::new(|s| edit_series(family(s, "lines_total"), |_, v| v[0] = f64::INFINITY)),
        ),
        (
            "state level 99",
            Box::new(|s| edit_series(family(s, "level"), |_, v| v[0] = 99.0)),
        ),
        (
            "buckets that hold",
            Box::new(|s| edit_series(family(s, "took_seconds"), |_, v| v[0] += 3.0)),
        ),
        (
            "twice",
            Box::new(|s| {
                let f = family(s, "lines_total");
                let mut copy = TableCopy::new(1);
                for i in 0..f.series.len() {
                    copy.push(f.series.key(i), f.series.values(i));
                }
                copy.push(f.series.key(0), f.series.values(0));
                f.series = copy;
            }),
        ),
        (
            "not UTF-8",
            Box::new(|s| edit_series(family(s, "lines_total"), |k, _| k.push(0xc3))),
        ),
        (
            "the bytes before offset",
            Box::new(|s| {
                // Back by one line: the offset still ends a line, but not the one read there.
                let r = &mut s.sources[0].1.files[0];
                r.known.offset -= 7;
            }),
        ),
    ];
    for (expected, edit) in cases {
        let dir = tempdir();
        let d = dir.path();
        let log = d.join("app.log");
        let config = d.join("exporter.yaml");
        std::fs::write(&config, TAMPER_CONFIG).unwrap();
        let store = d.join("store");
        write_tamper_lines(&log, 0, 100);
        let exporter = start_stored(&config, &store);
        exporter.wait_value(r#"lines_total{key="99"}"#, 1.0);
        assert!(exporter.terminate().success());
        tamper(&store, edit);
        write_tamper_lines(&log, 100, 105);
        let exporter = start_stored(&config, &store);
        let keys: Vec<String> = (0..105).map(|i| i.to_string()).collect();
        exactly_once(&exporter, "lines_total", &keys);
        let text = exporter.scrape();
        assert_eq!(
            value_in(
                &text,
                r#"quarry_checkpoint_restore_errors_total{reason="refused"}"#
            ),
            Some(1.0),
            "{expected}: {text}"
        );
        let log_text = exporter.log_text();
        assert!(
            log_text.contains("the checkpoint is refused") && log_text.contains(expected),
            "{expected}: {log_text}"
        );
        assert_eq!(
            value_in(&text, "took_seconds_count{app=\"web\"}"),
            Some(105.0)
        );
        assert_promtool_accepts(&text);
        let aside = std::fs::read_dir(&store).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("quarry.checkpoint.refused-")
        });
        assert!(aside, "{expected}: the refused checkpoint is kept aside");
    }
}

/// A checkpoint that is a FIFO or a symlink to `/dev/zero`: the start neither hangs nor fills
/// memory; the file is moved aside and counted as unreadable. A FIFO at the lock's path is a
/// clear error.
#[test]
fn a_fifo_or_a_device_in_the_storage_directory_neither_hangs_nor_fills_memory() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    write_tamper_lines(&d.join("app.log"), 0, 10);
    for make in ["fifo", "zero"] {
        let store = d.join(format!("store-{make}"));
        std::fs::create_dir_all(&store).unwrap();
        let path = store.join("quarry.checkpoint");
        match make {
            "fifo" => assert!(Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success()),
            _ => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
        }
        let exporter = start_stored(&config, &store);
        exporter.wait_value(r#"lines_total{key="9"}"#, 1.0);
        assert_eq!(
            exporter.value(r#"quarry_checkpoint_restore_errors_total{reason="unreadable"}"#),
            Some(1.0)
        );
        let log_text = exporter.log_text();
        assert!(log_text.contains("cannot be read"), "{log_text}");
    }
    let store = d.join("store-lock");
    std::fs::create_dir_all(&store).unwrap();
    assert!(Command::new("mkfifo")
        .arg(store.join(".lock"))
        .status()
        .unwrap()
        .success());
    let out = Command::new(binary())
        .arg(format!("--config.file={}", config.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!("--storage.path={}", store.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("a FIFO") && err.contains("remove it"), "{err}");
}

/// A checkpoint write that never returns (a hung volume; injected in this debug build) holds
/// neither `/metrics` nor SIGTERM; `/-/healthy` says what is wrong; `/metrics` says it cannot
/// write.
#[test]
fn a_checkpoint_write_that_never_returns_holds_neither_scrapes_nor_shutdown() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    let log = d.join("app.log");
    write_tamper_lines(&log, 0, 10);
    let store = d.join("store");
    let exporter = Exporter::start_wrapped(
        &config,
        &["env", "QUARRY_TEST_FAULTS=hang_checkpoint_write"],
        &[&format!("--storage.path={}", store.display())],
    );
    // Scrapes are answered, with the current values, while the write hangs.
    exporter.wait_value(r#"lines_total{key="9"}"#, 1.0);
    write_tamper_lines(&log, 10, 20);
    exporter.wait_value(r#"lines_total{key="19"}"#, 1.0);
    exporter.wait_value("quarry_checkpoint_last_write_successful", 0.0);
    // After a while the health check fails with the reason.
    let start = Instant::now();
    loop {
        let (status, _, body) = exporter.get("/-/healthy", &[]);
        if status == 503 {
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("has not returned"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < WAIT * 2,
            "/-/healthy never said the write hangs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM ends the process (the harness fails after WAIT).
    assert!(exporter.terminate().success());
}

/// A checkpoint larger than `ulimit -f`: the write fails with EFBIG and is counted — the
/// process is not killed by SIGXFSZ — and a FIFO put at the temporary file's path is not
/// written into (it is replaced).
#[test]
fn a_checkpoint_over_the_file_size_limit_is_an_error_not_a_signal() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    let log = d.join("app.log");
    write_tamper_lines(&log, 0, 2000);
    let store = d.join("store");
    // 4 KiB: ulimit -f counts blocks of 1 KiB with prlimit --fsize in bytes.
    let exporter = Exporter::start_wrapped(
        &config,
        &["prlimit", "--fsize=4096", "--"],
        &[&format!("--storage.path={}", store.display())],
    );
    exporter.wait_value(r#"lines_total{key="1999"}"#, 1.0);
    exporter.wait_at_least("quarry_checkpoint_errors_total", 1.0);
    exporter.wait_value("quarry_checkpoint_last_write_successful", 0.0);
    let log_text = exporter.log_text();
    assert!(log_text.contains("File too large"), "{log_text}");
    assert!(exporter.terminate().success());

    // A FIFO at the temporary file's path.
    let store = d.join("store-fifo");
    std::fs::create_dir_all(&store).unwrap();
    assert!(Command::new("mkfifo")
        .arg(store.join("quarry.checkpoint.tmp"))
        .status()
        .unwrap()
        .success());
    let exporter = start_stored(&config, &store);
    exporter.wait_value(r#"lines_total{key="1999"}"#, 1.0);
    exporter.wait_at_least("quarry_checkpoint_writes_total", 1.0);
    assert_eq!(
        exporter.value("quarry_checkpoint_last_write_successful"),
        Some(1.0)
    );
    assert!(exporter.terminate().success());
    assert!(store.join("quarry.checkpoint").is_file());
}

/// Scrapes with nothing changed write no checkpoint; a flood of scrapes while lines arrive
/// writes at most about one a second; and no counter a scrape showed is ever lower after a
/// `kill -9` restart.
#[test]
fn a_flood_of_scrapes_writes_checkpoints_only_when_something_changed() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    let log = d.join("app.log");
    write_tamper_lines(&log, 0, 100);
    let store = d.join("store");
    let exporter = start_stored(&config, &store);
    exporter.wait_value(r#"lines_total{key="99"}"#, 1.0);
    let writes = |e: &Exporter| e.value("quarry_checkpoint_writes_total").unwrap();
    let before = writes(&exporter);
    for _ in 0..300 {
        exporter.scrape();
    }
    assert!(
        writes(&exporter) <= before + 1.0,
        "300 scrapes of nothing new wrote {} checkpoints",
        writes(&exporter) - before
    );
    // Lines arrive while scrapes flood: the writes are bounded by time, not by scrapes.
    let started = Instant::now();
    let before = writes(&exporter);
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    let mut scrapes = 0;
    for round in 0..20 {
        write_tamper_lines(&log, 100 + round * 5, 105 + round * 5);
        for _ in 0..20 {
            let text = exporter.scrape();
            scrapes += 1;
            for (k, v) in keyed(&text, "lines_total") {
                seen.insert(k, v);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = writes(&exporter) - before;
    assert!(
        written <= elapsed.ceil() + 2.0,
        "{scrapes} scrapes in {elapsed:.1}s wrote {written} checkpoints"
    );
    kill9(exporter);
    let exporter = start_stored(&config, &store);
    let text = exporter.scrape();
    let now = keyed(&text, "lines_total");
    for (k, v) in &seen {
        assert!(
            now.get(k).copied().unwrap_or(0.0) >= *v,
            "lines_total{{key={k}}} was {v} before the restart, {:?} after",
            now.get(k)
        );
    }
    let keys: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    exactly_once(&exporter, "lines_total", &keys);
}

/// A panic in a file source's thread (injected: a bug) is contained: logged, counted, shown
/// on the landing page, and the source starts again from its last committed state — every
/// line before and after it counted exactly once. A panic on one record skips that record
/// only.
#[test]
fn a_panic_in_a_file_source_is_contained_and_the_source_starts_again() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    let log = d.join("app.log");
    let trigger = d.join("panic-now");
    write_tamper_lines(&log, 0, 50);
    let exporter = Exporter::start_wrapped(
        &config,
        &[
            "env",
            &format!(
                "QUARRY_TEST_FAULTS=panic_once:{},panic_on_record:L77 ",
                trigger.display()
            ),
        ],
        &[],
    );
    exporter.wait_value(r#"lines_total{key="49"}"#, 1.0);
    std::fs::write(&trigger, "").unwrap();
    write_tamper_lines(&log, 50, 100);
    exporter.wait_at_least(r#"quarry_source_panics_total{source="app"}"#, 1.0);
    let keys: Vec<String> = (0..100)
        .filter(|i| *i != 77)
        .map(|i| i.to_string())
        .collect();
    exactly_once(&exporter, "lines_total", &keys);
    assert!(!trigger.exists(), "the injected panic happened");
    // The record panic: L77 skipped, counted as a panic; every other line once.
    assert_eq!(
        exporter.value(r#"quarry_source_panics_total{source="app"}"#),
        Some(2.0)
    );
    write_tamper_lines(&log, 100, 120);
    let keys: Vec<String> = (0..120)
        .filter(|i| *i != 77)
        .map(|i| i.to_string())
        .collect();
    exactly_once(&exporter, "lines_total", &keys);
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("panicked"), "{page}");
    let log_text = exporter.log_text();
    assert!(
        log_text.contains("injected fault: panic_once"),
        "{log_text}"
    );
}

/// A file source whose passes all say there is more to read while reading nothing (injected:
/// the shape of a tailer bug that decides one file again and again) does not pass again at
/// once for ever: after 1,000 such passes it waits for its next wake or poll, logs the stall
/// once and counts each. Lines written meanwhile are still read, each exactly once.
#[test]
fn a_source_that_keeps_having_more_to_read_and_reads_nothing_is_contained() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(&config, TAMPER_CONFIG).unwrap();
    let log = d.join("app.log");
    write_tamper_lines(&log, 0, 50);
    let exporter =
        Exporter::start_wrapped(&config, &["env", "QUARRY_TEST_FAULTS=endless_more"], &[]);
    exporter.wait_at_least(r#"quarry_source_stalls_total{source="app"}"#, 1.0);
    write_tamper_lines(&log, 50, 100);
    // Each poll (100 ms) wakes it; each wake ends in another stall.
    exporter.wait_at_least(r#"quarry_source_stalls_total{source="app"}"#, 3.0);
    let keys: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    exactly_once(&exporter, "lines_total", &keys);
    let log_text = exporter.log_text();
    assert_eq!(
        log_text
            .matches("passes in a row had more to read and read nothing")
            .count(),
        1,
        "{log_text}"
    );
}

/// A log renamed away and a new one that starts with the same line (a service that writes
/// the same banner at each start): the new file is a new file, read from its start, not taken
/// for a copy of the old one's beginning — even after `rotate_wait`, when the old file has
/// been drained and closed.
#[test]
fn a_new_log_that_starts_like_the_old_one_is_read() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    std::fs::write(
        &config,
        r#"version: 1
metrics:
  - {name: requests_total, type: counter, help: Requests by status., labels: [status]}
sources:
  - name: app
    file: {paths: [app.log], start_at: beginning, rotate_wait: 1s, poll_interval: 100ms}
    rules:
      - regex: 'status=(?P<status>\d+)'
        update: [{metric: requests_total, labels: {status: $status}}]
"#,
    )
    .unwrap();
    let log = d.join("app.log");
    let mut first = String::new();
    for i in 1..=20 {
        first.push_str(&format!("request {i} status=200\n"));
    }
    std::fs::write(&log, first).unwrap();
    let exporter = Exporter::start_with(&config, &[]);
    exporter.wait_value(r#"requests_total{status="200"}"#, 20.0);
    append(&log, "request 21 status=500\n");
    std::fs::rename(&log, d.join("app.log.1")).unwrap();
    std::fs::write(&log, "request 1 status=200\n").unwrap();
    exporter.wait_value(r#"requests_total{status="200"}"#, 21.0);
    // Past rotate_wait: the old file is closed; the new one stays counted, and goes on.
    std::thread::sleep(Duration::from_millis(2500));
    append(&log, "request 2 status=200\n");
    exporter.wait_value(r#"requests_total{status="200"}"#, 22.0);
    exporter.wait_value(r#"requests_total{status="500"}"#, 1.0);
}

/// Debian's logrotate with `copytruncate`, forced every half second, the rotated copies in
/// the globs, while a writer appends 2,000 lines a second — with every core kept busy and the
/// exporter at `nice 19`, so its reader runs late (a copy seen while it is being written, the
/// live file read between the copy and the truncate). Three runs; every line counted at most
/// once, and lost only if logrotate destroyed it (written between its copy and its truncate
/// and never in any file).
#[test]
fn copytruncate_with_the_copies_matched_counts_nothing_twice_on_a_saturated_machine() {
    for run in 0..env_or("STRESS_RUNS", 3) {
        copytruncate_under_load(run, Copies::Matched);
    }
}

/// The same with only the live file matched: the lines written after the exporter's last
/// read and before a truncate are in a copy nobody reads (lost, as with every tailer: 2,035
/// and 270 of 20,000 in two runs here), every line of the live file is counted, and none
/// twice. Two runs. (A truncate and a rewrite past the offset between the exporter's check
/// and its read, which the padded lines would make dangerous, is rare here: this test did not
/// catch its mishandling in 9 runs; `src/source/tailer/tests.rs` makes it happen.)
#[test]
fn copytruncate_of_the_live_file_only_counts_nothing_twice_on_a_saturated_machine() {
    for run in 0..env_or("STRESS_RUNS", 2) {
        copytruncate_under_load(run, Copies::NotMatched);
    }
}

/// The same as the first with the file read on the poll alone (`watch: names`, the DaemonSet's
/// choice: no wake per write, passes 200 ms apart): copytruncate's copy and truncate fall
/// between two passes, or in the middle of one, far more often. Three runs; nothing counted
/// twice, nothing lost that some file held.
#[test]
fn copytruncate_read_on_the_poll_alone_counts_nothing_twice_on_a_saturated_machine() {
    for run in 0..env_or("STRESS_RUNS", 3) {
        copytruncate_under_load_with(run, Copies::Matched, ", watch: names");
    }
}

/// The number in the environment variable `name`, else `default` (a longer run on demand).
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the globs match logrotate's copies.
#[derive(Clone, Copy, PartialEq)]
enum Copies {
    Matched,
    NotMatched,
}

fn copytruncate_under_load(run: usize, copies: Copies) {
    copytruncate_under_load_with(run, copies, "");
}

/// [`copytruncate_under_load`] with `file_options` (`, key: value` pairs) added to the file
/// source.
fn copytruncate_under_load_with(run: usize, copies: Copies, file_options: &str) {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("exporter.yaml");
    let paths = match copies {
        Copies::Matched => r#"["access.log*"]"#,
        Copies::NotMatched => r#"["access.log"]"#,
    };
    std::fs::write(
        &config,
        format!(
            r#"version: 1
metrics:
  - {{name: lines_total, type: counter, help: Lines by key., labels: [key], max_series: 1000000}}
sources:
  - name: app
    file: {{paths: {paths}, exclude: ["*.gz"], start_at: beginning, rotate_wait: 2s, poll_interval: 200ms{file_options}}}
    rules:
      - regex: '^L(?P<key>\d+) '
        update: [{{metric: lines_total, labels: {{key: $key}}}}]
"#
        ),
    )
    .unwrap();
    let conf = d.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{}/access.log {{\n    rotate 100\n    copytruncate\n    missingok\n}}\n",
            d.display()
        ),
    )
    .unwrap();
    let state = d.join("logrotate.state");
    // Busy loops on every core.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<std::process::Child> = (0..cores)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        })
        .collect();
    struct Burners(Vec<std::process::Child>);
    impl Drop for Burners {
        fn drop(&mut self) {
            for b in &mut self.0 {
                let _ = b.kill();
                let _ = b.wait();
            }
        }
    }
    let _burners = Burners(burners);
    let exporter = Exporter::start_wrapped(&config, &["nice", "-n", "19"], &[]);
    let log = d.join("access.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let total: u64 = env_or("STRESS_LINES", 20_000);
    let started = Instant::now();
    let every = Duration::from_millis(env_or("STRESS_ROTATE_MS", 1000));
    let mut next_rotation = started + every;
    let mut written = 0u64;
    while written < total {
        // 2,000 lines a second, in batches of 20.
        let due = (started.elapsed().as_secs_f64() * 2000.0) as u64;
        if due > written {
            let mut batch = String::new();
            for k in written..due.min(total).min(written + 20) {
                batch.push_str(&format!("L{k} {}\n", "x".repeat(100 + (k % 300) as usize)));
            }
            use std::io::Write;
            file.write_all(batch.as_bytes()).unwrap();
            written = due.min(total).min(written + 20);
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
        if Instant::now() >= next_rotation {
            // logrotate starved too: descheduled in the middle of its copy, or between the
            // copy and the truncate, as on a busy machine.
            let out = Command::new("nice")
                .args(["-n", "19", "logrotate"])
                .arg("-f")
                .arg("-s")
                .arg(&state)
                .arg(&conf)
                .output()
                .expect("logrotate (Debian package) is installed");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            next_rotation = Instant::now() + every;
        }
    }
    drop(_burners);
    // What the files the exporter reads still hold (with the copies matched, a line in none of
    // them was destroyed by logrotate).
    let mut present = std::collections::HashSet::new();
    for entry in std::fs::read_dir(d).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Without the copies matched, only the live file's lines must all be counted.
        let read_by_the_exporter = match copies {
            Copies::Matched => name.starts_with("access.log"),
            Copies::NotMatched => name == "access.log",
        };
        if read_by_the_exporter {
            let bytes = std::fs::read(entry.path()).unwrap();
            for line in bytes.split(|b| *b == b'\n') {
                if let Some(k) = std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.strip_prefix('L'))
                    .and_then(|l| l.split(' ').next())
                    .and_then(|k| k.parse::<u64>().ok())
                {
                    present.insert(k);
                }
            }
        }
    }
    let start = Instant::now();
    let mut counts;
    loop {
        counts = keyed_u64(&exporter.scrape());
        let have = present.iter().filter(|k| counts.contains_key(k)).count();
        if have == present.len() || start.elapsed() > WAIT * 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    counts = keyed_u64(&exporter.scrape());
    let twice: Vec<u64> = counts
        .iter()
        .filter(|(_, v)| **v > 1.0)
        .map(|(k, _)| *k)
        .collect();
    let missing: Vec<u64> = present
        .iter()
        .filter(|k| !counts.contains_key(k))
        .copied()
        .collect();
    let not_read = total as usize - present.len();
    let why = match copies {
        Copies::Matched => "destroyed by logrotate",
        Copies::NotMatched => "in no file read (in copies, or destroyed)",
    };
    println!(
        "run {run}: {total} lines, {} rotations' worth of copies, {not_read} {why}, {} counted",
        std::fs::read_dir(d).unwrap().count(),
        counts.len()
    );
    assert!(
        twice.is_empty() && missing.is_empty(),
        "run {run}: {} lines counted twice ({:?}…), {} present in a file but never counted ({:?}…)\n--- log ---\n{}",
        twice.len(),
        &twice[..twice.len().min(10)],
        missing.len(),
        &missing[..missing.len().min(10)],
        exporter.log_text()
    );
}

fn keyed_u64(text: &str) -> BTreeMap<u64, f64> {
    keyed(text, "lines_total")
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
        .collect()
}
