//! The file source against real files, rotated, truncated, deleted and recreated for real.
//! Every count is exact: nothing lost, nothing read twice.

use std::fs;
use std::io::Write;

use crate::common::*;

/// One counter fed by a rule over lines `KIND N`.
fn config(paths: &str, extra: &str) -> String {
    format!(
        r#"version: 1
metrics:
  - {{name: events_total, type: counter, help: Events by kind., labels: [kind]}}
sources:
  - name: logs
    file:
      paths: [{paths}]
      start_at: beginning
      rotate_wait: 1s
      poll_interval: 250ms
{extra}
    rules:
      - name: event
        regex: '^(?P<kind>\S+) \d+$'
        update: [{{metric: events_total, labels: {{kind: $kind}}}}]
"#
    )
}

/// A temp dir with an empty `logs/` and the path of `logs/app.log` (not created).
fn log_dir() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let live = logs.join("app.log");
    (dir, logs, live)
}

#[test]
fn rename_rotation_while_the_writer_still_writes_to_the_old_file() {
    let (dir, logs, live) = log_dir();
    // Rotated copies keep their name out of the glob: the exporter must read them to their end
    // from the handle it holds.
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    let mut written = 0;
    let mut writer = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    let rotations_series = format!(
        r#"quarry_file_rotations_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    for rotation in 0..5 {
        writer
            .write_all(lines("a", written, 200).as_bytes())
            .unwrap();
        written += 200;
        // The exporter follows this file before it is rotated (in production it lived for
        // hours; a file created and renamed away between two looks is never seen by anyone).
        exporter.wait_value(r#"events_total{kind="a"}"#, written as f64);
        fs::rename(&live, logs.join(format!("app.log.{rotation}"))).unwrap();
        let old_writer = writer;
        writer = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live)
            .unwrap();
        writer
            .write_all(lines("a", written, 10).as_bytes())
            .unwrap();
        written += 10;
        // Once the exporter has seen the new file, the application, slow to reopen, still
        // writes to the renamed one: those lines count too (rotate_wait).
        exporter.wait_value(&rotations_series, (rotation + 1) as f64);
        let mut old_writer = old_writer;
        old_writer
            .write_all(lines("a", written, 50).as_bytes())
            .unwrap();
        written += 50;
        exporter.wait_value(r#"events_total{kind="a"}"#, written as f64);
    }
    assert_eq!(
        exporter.value(r#"quarry_source_unmatched_lines_total{source="logs"}"#),
        Some(0.0)
    );
}

#[test]
fn rename_rotation_with_a_free_running_writer() {
    let (dir, _, live) = log_dir();
    // The glob also matches the rotated name, as with `access.log*` in production.
    let exporter = Exporter::start(dir.path(), &config(r#""logs/app.log*""#, ""));
    let total = 30_000;
    let writer_live = live.clone();
    let writer = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&writer_live)
            .unwrap();
        for i in 0..total {
            writeln!(f, "b {i}").unwrap();
            if i > 0 && i % 5_000 == 0 {
                fs::rename(&writer_live, writer_live.with_extension("log.1")).unwrap();
                writeln!(f, "b rotated-late").ok(); // not matching: `\d+` wants digits
                f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&writer_live)
                    .unwrap();
                // Rotations are minutes apart in production; give the exporter a moment.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    });
    writer.join().unwrap();
    exporter.wait_value(r#"events_total{kind="b"}"#, total as f64);
    exporter.wait_value(r#"quarry_source_unmatched_lines_total{source="logs"}"#, 5.0);
}

#[test]
fn copytruncate_is_read_again_from_the_start() {
    let (dir, logs, live) = log_dir();
    append(&live, lines("c", 0, 100));
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    exporter.wait_value(r#"events_total{kind="c"}"#, 100.0);
    // What logrotate's copytruncate does: copy, then truncate in place.
    fs::copy(&live, logs.join("app.log.1")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, lines("c", 100, 30));
    exporter.wait_value(r#"events_total{kind="c"}"#, 130.0);
    let series = format!(
        r#"quarry_file_truncations_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    assert_eq!(exporter.value(&series), Some(1.0));
}

#[test]
fn delete_and_recreate_loses_nothing_including_an_unterminated_last_line() {
    let (dir, _, live) = log_dir();
    append(&live, lines("d", 0, 100));
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    exporter.wait_value(r#"events_total{kind="d"}"#, 100.0);
    // A last line without its newline, then the file goes away.
    append(&live, "d 100");
    fs::remove_file(&live).unwrap();
    append(&live, lines("d", 101, 40));
    exporter.wait_value(r#"events_total{kind="d"}"#, 141.0);
}

#[test]
fn directories_created_after_start_are_found() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), &config(r#""late/**/*.log""#, ""));
    assert_eq!(
        exporter.value(r#"quarry_source_files{source="logs"}"#),
        Some(0.0)
    );
    let deep = dir.path().join("late/x/y");
    fs::create_dir_all(&deep).unwrap();
    append(&deep.join("one.log"), lines("e", 0, 7));
    exporter.wait_value(r#"events_total{kind="e"}"#, 7.0);
    fs::create_dir_all(dir.path().join("late/z")).unwrap();
    append(&dir.path().join("late/z/two.log"), lines("e", 7, 5));
    exporter.wait_value(r#"events_total{kind="e"}"#, 12.0);
    exporter.wait_value(r#"quarry_source_files{source="logs"}"#, 2.0);
}

#[test]
fn a_partial_line_waits_for_its_newline() {
    let (dir, _, live) = log_dir();
    append(&live, lines("f", 0, 3));
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    exporter.wait_value(r#"events_total{kind="f"}"#, 3.0);
    let bytes_series = format!(
        r#"quarry_file_bytes_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    let before = exporter.value(&bytes_series).unwrap();
    append(&live, "f 3");
    // The bytes were read (so the line was seen) but not counted while incomplete.
    exporter.wait_value(&bytes_series, before + 3.0);
    assert_eq!(exporter.value(r#"events_total{kind="f"}"#), Some(3.0));
    append(&live, "\n");
    exporter.wait_value(r#"events_total{kind="f"}"#, 4.0);
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn over_long_lines_are_counted_and_skipped_in_flat_memory() {
    let (dir, _, live) = log_dir();
    append(&live, lines("g", 0, 1));
    let exporter = Exporter::start(
        dir.path(),
        &config(r#""logs/*.log""#, "      max_line_length: 1000"),
    );
    exporter.wait_value(r#"events_total{kind="g"}"#, 1.0);
    let rss_before = rss_kib(exporter.pid());
    // 64 MiB without a newline, written in pieces so the exporter sees it grow.
    let chunk = vec![b'x'; 1 << 20];
    let bytes_series = format!(
        r#"quarry_file_bytes_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    for _ in 0..64 {
        append(&live, &chunk);
    }
    append(&live, "\ng 1\n");
    exporter.wait_value(r#"events_total{kind="g"}"#, 2.0);
    exporter.wait_at_least(&bytes_series, (64 << 20) as f64);
    let too_long = format!(
        r#"quarry_file_lines_too_long_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    assert_eq!(exporter.value(&too_long), Some(1.0));
    let grown_kib = rss_kib(exporter.pid()).saturating_sub(rss_before);
    assert!(
        grown_kib < 16 * 1024,
        "memory grew by {grown_kib} KiB while skipping a 64 MiB line"
    );
}

#[test]
fn invalid_utf8_is_repaired_and_counted() {
    let (dir, _, live) = log_dir();
    append(&live, b"caf\xe9 1\n\xff\xfe\xfd 2\nh 3\n");
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    exporter.wait_value(r#"events_total{kind="h"}"#, 1.0);
    assert_eq!(
        exporter.value("events_total{kind=\"caf\u{fffd}\"}"),
        Some(1.0)
    );
    assert_eq!(
        exporter.value("events_total{kind=\"\u{fffd}\u{fffd}\u{fffd}\"}"),
        Some(1.0)
    );
    let series = format!(
        r#"quarry_file_invalid_utf8_lines_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    assert_eq!(exporter.value(&series), Some(2.0));
}

#[test]
fn start_at_end_skips_what_was_there_and_follows_what_comes() {
    let (dir, logs, live) = log_dir();
    // Ends inside a line: its rest must not count as a line of its own.
    append(&live, format!("{}i 9", lines("i", 0, 50)));
    let text = config(r#""logs/*.log""#, "").replace("start_at: beginning", "start_at: end");
    let exporter = Exporter::start(dir.path(), &text);
    exporter.wait_value(r#"quarry_source_files{source="logs"}"#, 1.0);
    append(&live, format!("9\n{}", lines("i", 100, 5)));
    exporter.wait_value(r#"events_total{kind="i"}"#, 5.0);
    // A file that appears later is read from its beginning.
    append(&logs.join("new.log"), lines("i", 200, 3));
    exporter.wait_value(r#"events_total{kind="i"}"#, 8.0);
}

#[test]
fn polling_alone_still_follows_files() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, "      watch: false"));
    append(&logs.join("app.log"), lines("j", 0, 10));
    exporter.wait_value(r#"events_total{kind="j"}"#, 10.0);
    fs::rename(logs.join("app.log"), logs.join("app.old")).unwrap();
    append(&logs.join("app.log"), lines("j", 10, 4));
    exporter.wait_value(r#"events_total{kind="j"}"#, 14.0);
    // And it really was polling: no watcher was set up.
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("polling") && !page.contains("notified by inotify"),
        "{page}"
    );
}

/// `watch: names`: contents are read at the poll, names changes are told by inotify; a file
/// renamed away and a new one in its place are both read, and the landing page says how.
#[test]
fn notifications_of_names_with_contents_polled_still_follow_files() {
    let (dir, logs, live) = log_dir();
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, "      watch: names"));
    append(&live, lines("j", 0, 10));
    exporter.wait_value(r#"events_total{kind="j"}"#, 10.0);
    append(&live, lines("j", 10, 2));
    fs::rename(&live, logs.join("app.old")).unwrap();
    append(&live, lines("j", 12, 4));
    exporter.wait_value(r#"events_total{kind="j"}"#, 16.0);
    fs::create_dir(logs.join("sub")).unwrap();
    append(&logs.join("b.log"), lines("j", 16, 1));
    exporter.wait_value(r#"events_total{kind="j"}"#, 17.0);
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("polling contents, names notified by inotify"),
        "{page}"
    );
}

/// A file's `quarry_file_*` series go when no file at its path is read any more (deleted,
/// then let go after `rotate_wait`), and come back when a file is there again; the other
/// files' series stay throughout.
#[test]
fn a_files_self_metrics_go_with_the_file() {
    let (dir, logs, live) = log_dir();
    let other = logs.join("other.log");
    append(&live, lines("m", 0, 3));
    append(&other, lines("m", 3, 2));
    let exporter = Exporter::start(dir.path(), &config(r#""logs/*.log""#, ""));
    exporter.wait_value(r#"events_total{kind="m"}"#, 5.0);
    let series = |p: &std::path::Path| {
        format!(
            r#"quarry_file_lines_total{{path="{}",source="logs"}}"#,
            path_str(p)
        )
    };
    exporter.wait_value(&series(&live), 3.0);
    exporter.wait_value(&series(&other), 2.0);
    fs::remove_file(&live).unwrap();
    let start = std::time::Instant::now();
    while exporter.scrape().contains(&series(&live)) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the deleted file's series stayed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(exporter.scrape().contains(&series(&other)));
    append(&live, lines("m", 5, 4));
    exporter.wait_value(r#"events_total{kind="m"}"#, 9.0);
    exporter.wait_value(&series(&live), 4.0);
}

#[test]
fn a_rename_within_the_globs_is_followed_and_counted_as_a_rotation() {
    let (dir, logs, live) = log_dir();
    append(&live, lines("k", 0, 10));
    let exporter = Exporter::start(dir.path(), &config(r#""logs/app.log*""#, ""));
    exporter.wait_value(r#"events_total{kind="k"}"#, 10.0);
    let rotated = logs.join("app.log.1");
    fs::rename(&live, &rotated).unwrap();
    append(&live, lines("k", 10, 5));
    exporter.wait_value(r#"events_total{kind="k"}"#, 15.0);
    let rotations = format!(
        r#"quarry_file_rotations_total{{path="{}",source="logs"}}"#,
        path_str(&live)
    );
    exporter.wait_value(&rotations, 1.0);
    // The renamed file is still matched: it is followed under its new name, not re-read.
    append(&rotated, lines("k", 15, 3));
    exporter.wait_value(r#"events_total{kind="k"}"#, 18.0);
    // Self-metrics are per path: only the lines read under the new name.
    let rotated_lines = format!(
        r#"quarry_file_lines_total{{path="{}",source="logs"}}"#,
        path_str(&rotated)
    );
    exporter.wait_value(&rotated_lines, 3.0);
    assert_eq!(
        exporter.value(r#"quarry_source_files{source="logs"}"#),
        Some(2.0)
    );
}

/// With polling out of the picture (an hour), notifications alone find what a rename or a
/// directory moved into the globs brings, while the churn of names no glob reaches (a rotated
/// file compressed and deleted, again and again) wakes no rescan and costs no line: the
/// filter on name changes must never drop one that matters.
#[test]
fn names_moved_into_the_globs_are_found_by_notifications_alone() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    fs::create_dir_all(logs.join("a")).unwrap();
    let config = r#"version: 1
metrics:
  - {name: events_total, type: counter, help: Events by kind., labels: [kind]}
sources:
  - name: logs
    file:
      paths: ["logs/*/app.log"]
      start_at: beginning
      rotate_wait: 1s
      poll_interval: 1h
    rules:
      - name: event
        regex: '^(?P<kind>\S+) \d+$'
        update: [{metric: events_total, labels: {kind: $kind}}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    exporter.wait_value(r#"quarry_source_files{source="logs"}"#, 0.0);
    // A file written under a name no glob matches, then renamed to one.
    let staged = logs.join("a/app.log.tmp");
    append(&staged, lines("renamed", 0, 5));
    fs::rename(&staged, logs.join("a/app.log")).unwrap();
    exporter.wait_value(r#"events_total{kind="renamed"}"#, 5.0);
    // A directory filled outside the watched tree, then moved into it.
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    append(&outside.join("app.log"), lines("moved_dir", 0, 4));
    fs::rename(&outside, logs.join("b")).unwrap();
    exporter.wait_value(r#"events_total{kind="moved_dir"}"#, 4.0);
    // Names no glob reaches come and go beside a file being written: every line is read.
    let live = logs.join("a/app.log");
    for i in 0..200 {
        let gz = logs.join(format!("a/app.log.{}.gz", i % 3));
        fs::write(&gz, b"\x1f\x8b").unwrap();
        append(&live, lines("beside_churn", i, 1));
        fs::remove_file(&gz).unwrap();
    }
    exporter.wait_value(r#"events_total{kind="beside_churn"}"#, 200.0);
    // And a new directory created in place, then its file: found without a poll.
    fs::create_dir(logs.join("c")).unwrap();
    append(&logs.join("c/app.log"), lines("new_dir", 0, 3));
    exporter.wait_value(r#"events_total{kind="new_dir"}"#, 3.0);
    assert_eq!(
        exporter.value(r#"quarry_source_files{source="logs"}"#),
        Some(3.0)
    );
}

/// A file truncated and written past its old offset at once, in place, with no name changing:
/// read on the poll alone (`watch: names`, no wake per write) and matched by a glob (a literal
/// path is looked at by every scan; here the unchanged directory is left alone), only the
/// read's own checks (the bytes before the offset read again, the head after the read) can
/// tell it from growth. Twelve rounds of the file replaced by more bytes than were read, then
/// written on; every line counted exactly once, none from the middle of the new content. With
/// those checks taken out of `read_file`, it fails (lines missing).
#[test]
fn a_file_truncated_and_written_past_its_offset_between_polls_is_read_again_from_its_start() {
    let dir = tempdir();
    let live = dir.path().join("app.log");
    let pad = "x".repeat(60);
    let mut keys: Vec<String> = Vec::new();
    let text = |keys: &mut Vec<String>, n: usize| -> String {
        (0..n)
            .map(|_| {
                keys.push(keys.len().to_string());
                format!("line {} {pad}\n", keys.len() - 1)
            })
            .collect()
    };
    append(&live, text(&mut keys, 30));
    let exporter = Exporter::start(
        dir.path(),
        &format!(
            r#"version: 1
metrics:
  - {{name: lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}}
  - {{name: all_total, type: counter, help: Lines.}}
sources:
  - name: logs
    file: {{paths: ["{}/*.log"], start_at: beginning, watch: names, poll_interval: 200ms}}
    rules:
      - regex: '^line (?P<key>\d+) '
        update: [{{metric: lines_total, labels: {{key: $key}}}}, {{metric: all_total}}]
"#,
            path_str(dir.path())
        ),
    );
    exporter.wait_value("all_total", keys.len() as f64);
    for round in 0..12 {
        // Replaced in place by more bytes than were read, in one write after the truncate,
        // then written on.
        let size = fs::metadata(&live).unwrap().len() as usize;
        let mut replacement = String::new();
        while replacement.len() <= size + 7 * round {
            replacement.push_str(&text(&mut keys, 1));
        }
        let mut f = fs::OpenOptions::new().write(true).open(&live).unwrap();
        f.set_len(0).unwrap();
        f.write_all(replacement.as_bytes()).unwrap();
        drop(f);
        let appended = text(&mut keys, 5 + round);
        append(&live, appended);
        exporter.wait_value("all_total", keys.len() as f64);
    }
    exactly_once(&exporter, "lines_total", &keys);
}
