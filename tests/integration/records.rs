//! Log records at scale, recounted independently: 100,000 records per format (JSON lines,
//! logfmt, CRI with long lines split into partial lines, multi-line Java traces) generated
//! from a seed with hostile variety (key order, escapes, non-ASCII, lines that are not the
//! format), read by `one-shot`, and compared sample by sample with the counts a Python script
//! (`tests/recount/recount.py`, written from the formats' specifications) makes of the same
//! files. Counts are keyed per label value, so a record lost and one counted twice cannot
//! cancel out unless both fall in one label value — the per-format error counters catch the
//! rest. (Multi-line records under rotation are covered by the rotation simulation,
//! `source::sim`.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::common::binary;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const RECORDS: usize = 100_000;
const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

fn generate(dir: &std::path::Path) {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut json = String::new();
    let mut logfmt = String::new();
    let mut cri = String::new();
    let mut java = String::new();
    for i in 0..RECORDS {
        let level = LEVELS[r.below(4) as usize];
        match r.below(20) {
            0 => json.push_str("not json {\n"),
            1 => writeln!(
                json,
                r#"{{"msg":"nested","ctx":{{"level":"fake"}},"level":"{level}","n":{i}}}"#
            )
            .unwrap(),
            2 => writeln!(
                json,
                r#"{{"msg":"Zo\u00eb \"quoted\" 東京","level":"{level}"}}"#
            )
            .unwrap(),
            // Lone surrogates, read as U+FFFD: in a value the one-pass reader keeps, and in
            // a key (the document reader then reads the record).
            3 => writeln!(json, r#"{{"level":"{level}\ud800"}}"#).unwrap(),
            4 => writeln!(
                json,
                r#"{{"x\udc00":1,"level":"{level}\udfff\ud83d\ude00"}}"#
            )
            .unwrap(),
            _ => writeln!(
                json,
                r#"{{"level":"{level}","msg":"request {i}","ms":{}}}"#,
                r.below(900)
            )
            .unwrap(),
        }
        match r.below(20) {
            0 => writeln!(logfmt, r#"level={level} msg="never closed"#).unwrap(),
            1 => writeln!(
                logfmt,
                r#"msg="a = \"b\" level=fake" level={level} user="Zoë""#
            )
            .unwrap(),
            // Escapes as go-logfmt and Go's strconv.Quote write them, a surrogate pair, a
            // lone surrogate and a backslash that is no escape.
            2 => writeln!(logfmt, r#"level="{level}\u001b[0m\x1b\ud83d\ude00""#).unwrap(),
            3 => writeln!(logfmt, r#"level="{level}\ud800 \U0001F600 \q\\""#).unwrap(),
            _ => writeln!(logfmt, "ts=2026-11-28T10:00:00Z level={level} msg=ok i={i}").unwrap(),
        }
        let stream = if r.below(3) == 0 { "stderr" } else { "stdout" };
        let status = [200, 404, 500][r.below(3) as usize];
        let path = format!("/p/{}", "x".repeat(r.below(60) as usize));
        let line = format!("GET {path} {status}");
        // Split into 1 to 3 parts at random byte positions (ASCII), as a runtime does.
        let parts = 1 + r.below(3) as usize;
        let mut cuts: Vec<usize> = (1..parts)
            .map(|_| 1 + r.below(line.len() as u64 - 1) as usize)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut from = 0;
        for (k, cut) in cuts.iter().chain(std::iter::once(&line.len())).enumerate() {
            let tag = if *cut == line.len() { "F" } else { "P" };
            writeln!(
                cri,
                "2026-11-28T10:00:00.{k:09}Z {stream} {tag} {}",
                &line[from..*cut]
            )
            .unwrap();
            from = *cut;
        }
        match r.below(4) {
            0 => {
                let class = [
                    "java.lang.IllegalStateException",
                    "java.io.IOException",
                    "java.lang.OutOfMemoryError",
                ][r.below(3) as usize];
                writeln!(java, "2026-11-28 10:00:00,{i:03} ERROR failed {i}\n{class}: boom\n\tat a.B.c(B.java:{i})\n\tat a.B.d(B.java:1)").unwrap();
            }
            _ => writeln!(java, "2026-11-28 10:00:00,{i:03} INFO ok {i}").unwrap(),
        }
    }
    std::fs::write(dir.join("app.jsonl"), json).unwrap();
    std::fs::write(dir.join("svc.log"), logfmt).unwrap();
    std::fs::create_dir_all(dir.join("pods")).unwrap();
    std::fs::write(dir.join("pods/0.log"), cri).unwrap();
    std::fs::write(dir.join("java.log"), java).unwrap();
}

const CONFIG: &str = r#"
version: 1
metrics:
  - {name: json_records_total, type: counter, help: JSON records by level., labels: [level]}
  - {name: logfmt_records_total, type: counter, help: logfmt records by level., labels: [level]}
  - {name: cri_requests_total, type: counter, help: CRI requests., labels: [status, stream]}
  - {name: multiline_records_total, type: counter, help: Multi-line records.}
  - {name: multiline_exceptions_total, type: counter, help: Exceptions by class., labels: [exception]}
sources:
  - name: json
    file: {paths: [app.jsonl]}
    rules:
      - json: {fields: {level: "$.level"}}
        update: [{metric: json_records_total, labels: {level: $level}}]
  - name: logfmt
    file: {paths: [svc.log]}
    rules:
      - logfmt: {fields: {level: level}}
        update: [{metric: logfmt_records_total, labels: {level: $level}}]
  - name: cri
    file: {paths: [pods/0.log], format: cri, max_line_length: 1000}
    rules:
      - regex: '^GET \S+ (?P<status>\d{3})$'
        update: [{metric: cri_requests_total, labels: {status: $status, stream: $__stream__}}]
  - name: java
    file: {paths: [java.log], multiline: {start: '^\d{4}-\d\d-\d\d '}}
    rules:
      - regex: '^'
        update: [{metric: multiline_records_total}]
      - regex: '\n(?P<exception>[\w.]+(?:Exception|Error)):'
        update: [{metric: multiline_exceptions_total, labels: {exception: $exception}}]
"#;

fn samples(text: &str, prefixes: &[&str]) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(_, v)| *v != "0")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn every_format_counts_what_an_independent_recount_counts() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    std::fs::write(dir.path().join("exporter.yaml"), CONFIG).unwrap();
    let out = Command::new(binary())
        .args(["one-shot", "--self-metrics", "--config.file"])
        .arg(dir.path().join("exporter.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exposition = String::from_utf8(out.stdout).unwrap();
    let recount = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/recount/recount.py"
        ))
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        recount.status.success(),
        "{}",
        String::from_utf8_lossy(&recount.stderr)
    );
    let expected = samples(&String::from_utf8(recount.stdout).unwrap(), &[""]);
    let actual = samples(&exposition, &["json_", "logfmt_", "cri_", "multiline_"]);
    assert_eq!(actual, expected);
    // Every record is accounted for: counted, or refused with its reason.
    let errors = samples(&exposition, &["quarry_source_record_errors_total"]);
    let refused = |reason: &str, source: &str| -> u64 {
        errors
            .get(&format!(
                "quarry_source_record_errors_total{{reason=\"{reason}\",source=\"{source}\"}}"
            ))
            .map_or(0, |v| v.parse().unwrap())
    };
    let total = |prefix: &str| -> u64 {
        actual
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        total("json_records_total") + refused("not_json", "json"),
        RECORDS as u64
    );
    assert_eq!(
        total("logfmt_records_total") + refused("not_logfmt", "logfmt"),
        RECORDS as u64
    );
    assert_eq!(total("cri_requests_total"), RECORDS as u64);
    assert_eq!(total("multiline_records_total"), RECORDS as u64);
    assert_eq!(
        refused("not_cri", "cri") + refused("record_too_long", "cri"),
        0
    );
}

fn framing_config(file_options: &str, stream_rule: bool) -> String {
    let stream = if stream_rule {
        "      - regex: '^'\n        update: [{metric: streams_total, labels: {stream: $__stream__}}]\n"
    } else {
        ""
    };
    format!(
        r#"version: 1
metrics:
  - {{name: records_total, type: counter, help: Records by first word., labels: [word]}}
  - {{name: streams_total, type: counter, help: Records by stream., labels: [stream]}}
sources:
  - name: app
    file: {{paths: [app.log], start_at: beginning, {file_options}}}
    rules:
      - regex: '^\s*(?P<word>\S+)'
        update: [{{metric: records_total, labels: {{word: $word}}}}]
{stream}"#
    )
}

/// A reload that changes `multiline` or `format` applies to the files already followed: what
/// the old framing held (not counted yet) is read again with the new one, nothing twice.
#[test]
fn a_reload_that_changes_the_framing_reads_what_was_held_with_the_new_one() {
    use crate::common::{append, sighup, tempdir, Exporter};
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let write = |text: &str| append(&log, text);
    let reload = |exporter: &Exporter, config: String| {
        let reloads = "quarry_config_last_reload_success_timestamp_seconds";
        let before = exporter.value(reloads).unwrap();
        std::fs::write(dir.path().join("exporter.yaml"), config).unwrap();
        sighup(exporter);
        exporter.wait_at_least(reloads, before + 1e-6);
        assert_eq!(
            exporter.value("quarry_config_last_reload_successful"),
            Some(1.0)
        );
    };
    // Multiline, a record held for an hour: S1 is complete (S2 started), S2 is held.
    write("S1 a\n cont\nS2 b\n cont2\n");
    let exporter = Exporter::start(
        dir.path(),
        &framing_config("multiline: {start: '^S', flush_after: 1h}", false),
    );
    exporter.wait_value(r#"records_total{word="S1"}"#, 1.0);
    assert_eq!(exporter.value(r#"records_total{word="S2"}"#), None);
    // Now plain lines: the held S2 record is read again as its two lines; S1's are not.
    reload(&exporter, framing_config("watch: true", false));
    exporter.wait_value(r#"records_total{word="cont2"}"#, 1.0);
    assert_eq!(exporter.value(r#"records_total{word="S2"}"#), Some(1.0));
    assert_eq!(exporter.value(r#"records_total{word="S1"}"#), Some(1.0));
    assert_eq!(exporter.value(r#"records_total{word="cont"}"#), None);
    // Then CRI: a container line is unwrapped, with its stream.
    reload(&exporter, framing_config("format: cri", true));
    write("2026-11-28T10:00:00Z stderr F boom now\n");
    exporter.wait_value(r#"streams_total{stream="stderr"}"#, 1.0);
    exporter.wait_value(r#"records_total{word="boom"}"#, 1.0);
    assert_eq!(exporter.value(r#"records_total{word="S2"}"#), Some(1.0));
    assert_eq!(
        exporter.value(r#"records_total{word="2026-11-28T10:00:00Z"}"#),
        None
    );
}

/// Multi-line records on real files under real rotations: a writer appends two-line records
/// (`L<n> …` and `  +<n>`), sometimes a record in two writes with a pause between, while the
/// log is renamed away and recreated, and the exporter (copies matched, `start` joining) is
/// killed with SIGKILL and restarted from its checkpoint once. Every record is counted once,
/// whole: its first line and its continuation carry the same number.
#[test]
fn multiline_records_once_and_whole_through_rotations_and_a_kill() {
    use crate::common::{tempdir, Exporter};
    use std::io::Write;
    let dir = tempdir();
    let d = dir.path();
    let store = d.join("store");
    let config = r#"version: 1
metrics:
  - {name: records_total, type: counter, help: Records by their two numbers., labels: [key, cont], max_series: 100000}
sources:
  - name: app
    file: {paths: ["app.log*"], start_at: beginning, rotate_wait: 1s, poll_interval: 100ms, multiline: {start: '^L', flush_after: 300ms}}
    rules:
      - regex: '^L(?P<key>\d+) x*\n  \+(?P<cont>\d+)$'
        update: [{metric: records_total, labels: {key: $key, cont: $cont}}]
"#;
    std::fs::write(d.join("exporter.yaml"), config).unwrap();
    let start = |extra: &[&str]| {
        let mut args = vec!["--storage.path", store.to_str().unwrap()];
        args.extend_from_slice(extra);
        Exporter::start_with(&d.join("exporter.yaml"), &args)
    };
    let mut exporter = start(&[]);
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("app.log"))
            .unwrap()
    };
    let mut file = open();
    let mut next = 0u64;
    for round in 0..12u64 {
        for i in 0..40u64 {
            let record = format!(
                "L{next} {}\n  +{next}\n",
                "x".repeat(((next * 7) % 50) as usize)
            );
            if i % 13 == 5 {
                // The record in two writes, a pause shorter than flush_after between.
                let cut = record.len() / 2 + (next as usize % 5);
                file.write_all(&record.as_bytes()[..cut]).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                file.write_all(&record.as_bytes()[cut..]).unwrap();
            } else {
                file.write_all(record.as_bytes()).unwrap();
            }
            next += 1;
        }
        // Rotation: rename away (the copies are matched), the writer goes on briefly, then
        // reopens a new app.log.
        let _ = std::fs::remove_file(d.join(format!("app.log.{}", 3)));
        for i in (1..3).rev() {
            let _ = std::fs::rename(
                d.join(format!("app.log.{i}")),
                d.join(format!("app.log.{}", i + 1)),
            );
        }
        std::fs::rename(d.join("app.log"), d.join("app.log.1")).unwrap();
        let record = format!("L{next} x\n  +{next}\n");
        file.write_all(record.as_bytes()).unwrap();
        next += 1;
        file = open();
        std::thread::sleep(Duration::from_millis(150));
        if round == 6 {
            // kill -9 mid-stream: restart from the last checkpoint.
            exporter.wait_at_least("quarry_checkpoint_writes_total", 1.0);
            let pid = exporter.pid();
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            drop(exporter);
            exporter = start(&[]);
        }
    }
    let series = |text: &str| -> Vec<(u64, u64, f64)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("records_total{cont=\""))
            .filter_map(|l| {
                let (cont, rest) = l.split_once("\",key=\"")?;
                let (key, value) = rest.split_once("\"} ")?;
                Some((
                    key.parse().ok()?,
                    cont.parse().ok()?,
                    value.trim().parse().ok()?,
                ))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = series(&exporter.scrape());
    while got.iter().map(|s| s.2).sum::<f64>() < next as f64 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        got = series(&exporter.scrape());
    }
    std::thread::sleep(Duration::from_millis(800));
    got = series(&exporter.scrape());
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, c, v)| k != c || *v != 1.0)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "records counted wrong (key, cont, count): {wrong:?}"
    );
    let keys: std::collections::BTreeSet<u64> = got.iter().map(|s| s.0).collect();
    let missing: Vec<u64> = (0..next).filter(|k| !keys.contains(k)).take(10).collect();
    assert!(
        missing.is_empty(),
        "records never counted: {missing:?} of {next}"
    );
    assert_eq!(keys.len() as u64, next);
}

/// A container line cut by a kubelet rotation: its first parts (`P`) end the rotated
/// `0.log.<time>`, its end (`F`) starts the new `0.log`. Before, the two halves were two
/// records (the line counted twice, neither half whole); now the new file's assembler takes
/// over what the rotated one held, and every line is one record, whole, with stderr lines
/// interleaved and some lines cut inside one file too.
#[test]
fn a_container_line_cut_by_a_kubelet_rotation_is_one_record() {
    use crate::common::{tempdir, Exporter};
    use std::io::Write;
    let dir = tempdir();
    let d = dir.path();
    let config = r#"version: 1
metrics:
  - {name: records_total, type: counter, help: Records by the numbers at both ends., labels: [key, cont, stream], max_series: 100000}
sources:
  - name: pod
    file: {paths: ["*.log"], format: cri, start_at: beginning, rotate_wait: 1s, poll_interval: 100ms}
    rules:
      - regex: '^(?P<key>\d+)a x* (?P<cont>\d+)b$'
        update: [{metric: records_total, labels: {key: $key, cont: $cont, stream: $__stream__}}]
"#;
    std::fs::write(d.join("exporter.yaml"), config).unwrap();
    let exporter = Exporter::start_with(&d.join("exporter.yaml"), &[]);
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("0.log"))
            .unwrap()
    };
    let line = |stream: &str, tag: &str, text: &str| {
        format!("2026-12-05T17:15:00.000000000Z {stream} {tag} {text}\n")
    };
    let mut file = open();
    let mut next = 0u64;
    let mut expected = Vec::new();
    for round in 0..10u64 {
        for i in 0..20u64 {
            let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
            let x = "x".repeat(((next * 7) % 30) as usize);
            if i % 7 == 3 {
                // Cut inside the file, another stream's line between the parts.
                file.write_all(line(stream, "P", &format!("{next}a {x}")).as_bytes())
                    .unwrap();
                let other = if stream == "stdout" {
                    "stderr"
                } else {
                    "stdout"
                };
                file.write_all(
                    line(other, "F", &format!("{}a  {}b", next + 1, next + 1)).as_bytes(),
                )
                .unwrap();
                expected.push((next + 1, other));
                file.write_all(line(stream, "F", &format!(" {next}b")).as_bytes())
                    .unwrap();
                expected.push((next, stream));
                next += 2;
            } else {
                file.write_all(line(stream, "F", &format!("{next}a {x} {next}b")).as_bytes())
                    .unwrap();
                expected.push((next, stream));
                next += 1;
            }
        }
        // The kubelet rotates while a stdout line is half written (and, every other round,
        // a stderr line too): rename, then the runtime reopens 0.log and writes the ends.
        let cut = if round % 2 == 0 {
            vec!["stdout", "stderr"]
        } else {
            vec!["stdout"]
        };
        for (k, stream) in cut.iter().enumerate() {
            file.write_all(line(stream, "P", &format!("{}a x", next + k as u64)).as_bytes())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(if round % 3 == 0 { 300 } else { 0 }));
        std::fs::rename(
            d.join("0.log"),
            d.join(format!("0.log.20261205-1715{round:02}")),
        )
        .unwrap();
        file = open();
        for (k, stream) in cut.iter().enumerate().rev() {
            let n = next + k as u64;
            file.write_all(line(stream, "F", &format!(" {n}b")).as_bytes())
                .unwrap();
            expected.push((n, stream));
        }
        next += cut.len() as u64;
        std::thread::sleep(Duration::from_millis(150));
    }
    let records = |text: &str| crate::common::series(text, "records_total");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got = records(&exporter.scrape());
    while got.values().sum::<f64>() < expected.len() as f64 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        got = records(&exporter.scrape());
    }
    // Past every rotate_wait: the rotated files are closed, what they held was not counted
    // again.
    std::thread::sleep(Duration::from_millis(1500));
    let text = exporter.scrape();
    got = records(&text);
    let want: BTreeMap<String, f64> = expected
        .iter()
        .map(|(n, s)| (format!("cont=\"{n}\",key=\"{n}\",stream=\"{s}\""), 1.0))
        .collect();
    let unmatched = text
        .lines()
        .find(|l| l.starts_with("quarry_source_unmatched_lines_total"))
        .unwrap_or("");
    assert_eq!(got, want, "{unmatched}");
}

/// The same cut, with the rotation while the exporter is down: killed (-9) while the rotated
/// file's first parts were held, restarted after the kubelet renamed it and the runtime wrote
/// the line's end to the new `0.log`. The renamed file is found again by its inode, read from
/// the checkpoint, and the new file at its old path takes over its parts: one record, whole.
#[test]
fn a_container_line_cut_by_a_rotation_while_down_is_one_record() {
    use crate::common::{tempdir, Exporter};
    let dir = tempdir();
    let d = dir.path();
    let store = d.join("store");
    let config = r#"version: 1
metrics:
  - {name: records_total, type: counter, help: Records by the numbers at both ends., labels: [key, cont]}
sources:
  - name: pod
    file: {paths: ["*.log"], format: cri, start_at: beginning, rotate_wait: 1s, poll_interval: 100ms}
    rules:
      - regex: '^(?P<key>\d+)a x* (?P<cont>\d+)b$'
        update: [{metric: records_total, labels: {key: $key, cont: $cont}}]
"#;
    std::fs::write(d.join("exporter.yaml"), config).unwrap();
    let line =
        |tag: &str, text: &str| format!("2026-12-05T17:15:00.000000000Z stdout {tag} {text}\n");
    std::fs::write(
        d.join("0.log"),
        format!("{}{}", line("F", "1a x 1b"), line("P", "2a xx")),
    )
    .unwrap();
    let start = || {
        Exporter::start_with(
            &d.join("exporter.yaml"),
            &["--storage.path", store.to_str().unwrap()],
        )
    };
    let exporter = start();
    exporter.wait_value(r#"records_total{cont="1",key="1"}"#, 1.0);
    exporter.wait_at_least("quarry_checkpoint_writes_total", 1.0);
    // A scrape a second after the last change has the checkpoint written with what was read
    // (the held part is not committed: it is read again after the restart).
    std::thread::sleep(Duration::from_millis(1200));
    exporter.scrape();
    let pid = exporter.pid();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    drop(exporter);
    std::fs::rename(d.join("0.log"), d.join("0.log.20261205-171500")).unwrap();
    std::fs::write(
        d.join("0.log"),
        format!("{}{}", line("F", " 2b"), line("F", "3a x 3b")),
    )
    .unwrap();
    let exporter = start();
    exporter.wait_value(r#"records_total{cont="3",key="3"}"#, 1.0);
    // Past rotate_wait: the rotated file is closed; nothing it held is counted again.
    std::thread::sleep(Duration::from_millis(1500));
    let text = exporter.scrape();
    let got: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("records_total{"))
        .collect();
    assert_eq!(
        got,
        [
            r#"records_total{cont="1",key="1"} 1"#,
            r#"records_total{cont="2",key="2"} 1"#,
            r#"records_total{cont="3",key="3"} 1"#,
        ],
        "{text}"
    );
    let unmatched =
        crate::common::value_in(&text, "quarry_source_unmatched_lines_total{source=\"pod\"}");
    assert_eq!(unmatched, Some(0.0), "{text}");
}
