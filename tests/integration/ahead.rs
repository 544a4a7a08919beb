//! `one-shot --threads 2`: the rules' matchers on a second thread, a batch of records ahead of
//! the thread that reads and applies them. The output must be what one thread prints, byte for
//! byte (counts, a histogram's sum to its last digit, a gauge set from the last line), and
//! every line counted once, keyed by line so that a loss and a double count cannot cancel out.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::common::{binary, keyed, value_in};

/// Lines of the plain log: several batches (a batch is sent at 1,024 records).
const PLAIN_LINES: usize = 30_000;
/// Where the plain log has one record longer than a batch's bytes (matched on the reading
/// thread, after every record before it).
const LONG_AT: usize = 12_345;

/// 18 rules in the mixed source: with 16 or more, a rule set decides which matchers run.
const MIXED_RULES: usize = 18;

fn config() -> String {
    let mut mixed_rules = String::new();
    for r in 0..MIXED_RULES {
        writeln!(
            mixed_rules,
            "      - regex: 'rule{r:02} (?P<key>k\\d+)'\n        update: [{{metric: ahead_mixed_total, labels: {{key: $key, rule: \"{r}\"}}}}]"
        )
        .unwrap();
    }
    format!(
        r#"version: 1
metrics:
  - {{name: ahead_lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}}
  - {{name: ahead_last_seq, type: gauge, help: The last line's sequence number.}}
  - {{name: ahead_duration_seconds, type: histogram, help: Durations., buckets: [0.001, 0.01, 0.1, 1]}}
  - {{name: ahead_bytes_total, type: counter, help: "Bytes, dashes skipped.", labels: [kind]}}
  - {{name: ahead_cri_total, type: counter, help: "CRI records by key, stream and file.", labels: [key, stream, file], max_series: 100000}}
  - {{name: ahead_mixed_total, type: counter, help: Mixed lines by key and rule., labels: [key, rule], max_series: 100000}}
  - {{name: ahead_json_total, type: counter, help: JSON records by key., labels: [key], max_series: 100000}}
sources:
  - name: plain
    file: {{paths: [plain.log], max_line_length: 1048576}}
    rules:
      - regex: '^seq=(?P<seq>\d+) key=(?P<key>k\d+) dur=(?P<dur>[\d.]+) bytes=(?P<bytes>\d+|-)'
        update:
          - {{metric: ahead_lines_total, labels: {{key: $key}}}}
          - {{metric: ahead_last_seq, set: $seq}}
          - {{metric: ahead_duration_seconds, observe: $dur}}
          - {{metric: ahead_bytes_total, labels: {{kind: plain}}, add: $bytes}}
  - name: cri
    file: {{paths: ["pods/*.log"], format: cri}}
    rules:
      - regex: '^key=(?P<key>k\d+) part=a+b*$'
        # From the path: a record's file must come through the batch with it (the batch
        # writes a run's path once, by the number the tailer gives each path).
        derive: [{{from: $__file__, regex: '/pods/(?P<file>\d+)\.log$'}}]
        update: [{{metric: ahead_cri_total, labels: {{key: $key, stream: $__stream__, file: $file}}}}]
  - name: mixed
    file: {{paths: [mixed.log]}}
    rules:
{mixed_rules}  - name: json
    file: {{paths: [app.jsonl]}}
    rules:
      - json: {{fields: {{key: "$.key"}}}}
        update: [{{metric: ahead_json_total, labels: {{key: $key}}}}]
"#
    )
}

/// Writes the four logs; returns the keys each must count once.
fn generate(dir: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    // Plain: a fraction per line (a histogram's sum depends on the order of its additions),
    // a dash now and then, one very long line.
    let mut plain = String::new();
    let mut plain_keys = Vec::new();
    for n in 1..=PLAIN_LINES {
        let key = format!("k{n}");
        let bytes = if n % 97 == 0 {
            "-".to_owned()
        } else {
            (n * 7 % 5000).to_string()
        };
        write!(
            plain,
            "seq={n} key={key} dur=0.{:04} bytes={bytes}",
            n * 7919 % 10_000
        )
        .unwrap();
        if n == LONG_AT {
            plain.push(' ');
            plain.push_str(&"x".repeat(300 * 1024));
        }
        plain.push('\n');
        plain_keys.push(key);
    }
    std::fs::write(dir.join("plain.log"), plain).unwrap();

    // CRI: two files, stdout and stderr interleaved, records split into partial lines.
    std::fs::create_dir_all(dir.join("pods")).unwrap();
    let mut cri_keys = Vec::new();
    for file in 0..2 {
        let mut text = String::new();
        for n in 0..4_000 {
            let key = format!("k{file}{n:05}");
            let stream = if n % 3 == 0 { "stderr" } else { "stdout" };
            let time = format!("2026-12-06T10:00:{:02}.{n:09}Z", n % 60);
            if n % 5 == 0 {
                // Split in three parts.
                writeln!(text, "{time} {stream} P key={key} part=aa").unwrap();
                writeln!(text, "{time} {stream} P aaa").unwrap();
                writeln!(text, "{time} {stream} F bbb").unwrap();
            } else {
                writeln!(text, "{time} {stream} F key={key} part=ab").unwrap();
            }
            cri_keys.push(format!("{key}/{stream}/{file}"));
        }
        std::fs::write(dir.join(format!("pods/{file}.log")), text).unwrap();
    }

    // Mixed: each line for one of the rules, some for none.
    let mut mixed = String::new();
    let mut mixed_keys = Vec::new();
    for n in 0..20_000 {
        let r = n % (MIXED_RULES + 3);
        if r < MIXED_RULES {
            writeln!(mixed, "2026-12-06 rule{r:02} k{n} something happened").unwrap();
            mixed_keys.push(format!("k{n}/{r}"));
        } else {
            writeln!(mixed, "2026-12-06 no rule for this one, line {n}").unwrap();
        }
    }
    std::fs::write(dir.join("mixed.log"), mixed).unwrap();

    let mut json = String::new();
    for n in 0..5_000 {
        writeln!(json, r#"{{"key":"j{n}","level":"info"}}"#).unwrap();
    }
    std::fs::write(dir.join("app.jsonl"), json).unwrap();
    (plain_keys, cri_keys, mixed_keys)
}

fn one_shot(dir: &Path, threads: &str) -> (String, String) {
    one_shot_with_faults(dir, threads, "")
}

/// `one-shot` with faults injected (`QUARRY_TEST_FAULTS`, debug builds).
fn one_shot_with_faults(dir: &Path, threads: &str, faults: &str) -> (String, String) {
    let out = Command::new(binary())
        .env("QUARRY_TEST_FAULTS", faults)
        .args([
            "one-shot",
            "--log.level=debug",
            "--threads",
            threads,
            "--config.file",
        ])
        .arg(dir.join("exporter.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "--threads {threads}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The keys of `name` whose count is not exactly 1, and the counted keys not expected.
fn not_once(text: &str, name: &str, expected: &[String], key_of: impl Fn(&str) -> Option<String>) {
    let got: std::collections::BTreeMap<String, f64> = crate::common::series(text, name)
        .into_iter()
        .filter_map(|(labels, v)| Some((key_of(&labels)?, v)))
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter(|k| got.get(*k) != Some(&1.0))
        .map(|k| format!("{k}={:?}", got.get(k)))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "{name}: not counted exactly once: {wrong:?}"
    );
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: keys counted that were not written"
    );
}

/// A series' key: the values of `names` in its label text, joined by `/`.
fn joined<'n>(names: &'n [&'n str]) -> impl Fn(&str) -> Option<String> + 'n {
    move |labels| {
        let values: Option<Vec<&str>> = names.iter().map(|n| label(labels, n)).collect();
        Some(values?.join("/"))
    }
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        pair.strip_prefix(name)?
            .strip_prefix("=\"")?
            .strip_suffix('"')
    })
}

#[test]
fn one_shot_on_two_threads_prints_what_one_thread_prints_with_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let (plain_keys, cri_keys, mixed_keys) = generate(dir.path());
    std::fs::write(dir.path().join("exporter.yaml"), config()).unwrap();

    let (one, one_log) = one_shot(dir.path(), "1");
    let (two, two_log) = one_shot(dir.path(), "2");

    // The second thread was used where every rule is a line rule, and only there.
    let ahead = |log: &str, source: &str| {
        log.lines().any(|l| {
            l.contains("matched on a second thread") && l.contains(&format!("source={source}"))
        })
    };
    for source in ["plain", "cri", "mixed"] {
        assert!(
            ahead(&two_log, source),
            "--threads 2 did not match {source} ahead:\n{two_log}"
        );
        assert!(
            !ahead(&one_log, source),
            "--threads 1 matched {source} ahead:\n{one_log}"
        );
    }
    assert!(
        !ahead(&two_log, "json"),
        "a JSON source matched ahead:\n{two_log}"
    );

    // Every line once, keyed by line, in the two-thread output.
    not_once(&two, "ahead_lines_total", &plain_keys, joined(&["key"]));
    not_once(
        &two,
        "ahead_cri_total",
        &cri_keys,
        joined(&["key", "stream", "file"]),
    );
    not_once(
        &two,
        "ahead_mixed_total",
        &mixed_keys,
        joined(&["key", "rule"]),
    );
    assert_eq!(keyed(&two, "ahead_json_total").len(), 5_000);

    // Ordered where order matters: the gauge holds the last line's number.
    assert_eq!(value_in(&two, "ahead_last_seq"), Some(PLAIN_LINES as f64));
    assert_eq!(
        value_in(&two, "ahead_duration_seconds_count"),
        Some(PLAIN_LINES as f64)
    );

    // And byte for byte what one thread prints (the histogram's sum included).
    if one != two {
        let diff: Vec<String> = one
            .lines()
            .zip(two.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("one: {a}\ntwo: {b}"))
            .collect();
        panic!(
            "--threads 1 and 2 differ ({} and {} lines):\n{}",
            one.lines().count(),
            two.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn a_record_the_matchers_panic_on_is_skipped_alike_on_one_thread_and_two() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    let mut keys = Vec::new();
    for n in 0..5_000 {
        // The first poisoned record is in the first batch, which the matching thread takes.
        let poison = if n % 1_000 == 500 { " POISON" } else { "" };
        writeln!(log, "seq={n} key=k{n} dur=0.1 bytes=1{poison}").unwrap();
        if poison.is_empty() {
            keys.push(format!("k{n}"));
        }
    }
    std::fs::write(dir.path().join("plain.log"), log).unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        r#"version: 1
metrics:
  - {name: ahead_lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}
sources:
  - name: plain
    file: {paths: [plain.log]}
    rules:
      - regex: '^seq=\d+ key=(?P<key>k\d+) '
        update: [{metric: ahead_lines_total, labels: {key: $key}}]
"#,
    )
    .unwrap();
    let fault = "panic_on_record:POISON";
    let (one, one_log) = one_shot_with_faults(dir.path(), "1", fault);
    let (two, two_log) = one_shot_with_faults(dir.path(), "2", fault);
    for (threads, log) in [("1", &one_log), ("2", &two_log)] {
        let skipped = log
            .lines()
            .filter(|l| {
                l.contains(
                    "a record made the pipeline panic (injected fault: panic_on_record:POISON)",
                )
            })
            .count();
        assert_eq!(skipped, 5, "--threads {threads}:\n{log}");
    }
    // On two threads the matchers met it first, on the matching thread.
    assert!(
        two_log
            .lines()
            .any(|l| l.starts_with("thread 'quarry-match'") && l.contains(" panicked at ")),
        "no panic on the matching thread:\n{two_log}"
    );
    not_once(&two, "ahead_lines_total", &keys, joined(&["key"]));
    assert_eq!(one, two);
}

#[test]
fn threads_beyond_two_or_zero_are_refused_with_the_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        "version: 1\nmetrics: []\nsources: []\n",
    )
    .unwrap();
    for bad in ["0", "3", "two"] {
        let out = Command::new(binary())
            .args(["one-shot", "--threads", bad, "--config.file"])
            .arg(dir.path().join("exporter.yaml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--threads {bad}: {stderr}");
        assert!(stderr.contains("--threads"), "--threads {bad}: {stderr}");
    }
}
