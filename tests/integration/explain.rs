//! `explain` golden cases: `tests/explain/<case>/exporter.yaml` with its inputs, and the exact
//! terminal (`expected.txt`) and JSON (`expected.json`) output, fetch times and the case's
//! directory normalized. A log, an HTML, a JSON and an XML source, with failing values,
//! fields that select nothing and records no rule matched. `UPDATE_GOLDEN=1` rewrites them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{binary, one_shot};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("exporter.yaml").exists())
        .collect();
    cases.sort();
    cases
}

fn explain(case: &Path, args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("explain")
        .arg(format!(
            "--config.file={}",
            case.join("exporter.yaml").display()
        ))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        case.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::fs::canonicalize(case).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(dir.to_str().unwrap(), "CASE_DIR")
}

/// `, 1.3 ms` → `, TIME ms`; `"milliseconds": 1.3` → `0`.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            if let Some((head, _)) = l.split_once("\"milliseconds\": ") {
                let comma = if l.trim_end().ends_with(',') { "," } else { "" };
                format!("{head}\"milliseconds\": 0{comma}\n")
            } else if l.starts_with("fetch: ") && l.ends_with(" ms") {
                let cut = l.rfind(", ").unwrap();
                format!("{}, TIME ms\n", &l[..cut])
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn explain_golden_cases_in_text_and_json() {
    let cases = cases();
    assert!(cases.len() >= 4);
    let mut failures = Vec::new();
    for case in cases {
        for (file, args) in [
            ("expected.txt", &[][..]),
            ("expected.json", &["--output=json"][..]),
        ] {
            let actual = normalize(&explain(&case, args));
            let expected_file = case.join(file);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&expected_file, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
            if actual != expected {
                failures.push(format!(
                    "{}:\n--- expected\n{expected}--- actual\n{actual}",
                    expected_file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--source` picks one source (an unknown one is an error naming those there are);
/// `--matches` bounds what is shown in full, the counts stay whole.
#[test]
fn explain_one_source_with_fewer_matches_shown() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain/log");
    let text = explain(&case, &["--source=app", "--matches=1"]);
    assert!(
        text.contains("rule request: 4 matches (showing 1)"),
        "{text}"
    );
    assert_eq!(text.matches("  #").count(), 1, "{text}");
    assert!(text.contains("no rule matched: 2 records"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&explain(&case, &["--output=json", "--matches=0"])).unwrap();
    assert_eq!(json[0]["trace"]["rules"][0]["matches"], 4);
    assert_eq!(json[0]["trace"]["rules"][0]["shown"], serde_json::json!([]));
    let out = Command::new(binary())
        .arg("explain")
        .arg(format!(
            "--config.file={}",
            case.join("exporter.yaml").display()
        ))
        .arg("--source=nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The log line quotes the message (logfmt), so its quotes are escaped.
    assert!(
        stderr.contains(r#"no source is named \"nope\"; the config has: app"#),
        "{stderr}"
    );
}

/// Before: log lines went to the terminal as they were, escape sequences included (a title
/// change, clear screen). The text output escapes control characters (tabs stay); the JSON
/// output keeps the exact text.
#[test]
fn explain_text_escapes_what_would_drive_a_terminal() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain/escapes");
    let text = explain(&case, &[]);
    let driving: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(driving.is_empty(), "{driving:?} in\n{text}");
    assert!(
        text.contains(r"#2 line: ERROR \u{1b}]0;pwned\u{7}title"),
        "{text}"
    );
    let json = explain(&case, &["--output=json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json[0]["trace"]["rules"][0]["shown"][1]["record"],
        "ERROR \u{1b}]0;pwned\u{7}title"
    );
}

/// Before: a FIFO or a device given as a file source's path said only "files: none matched".
/// Now each path that is not read says why.
#[test]
fn explain_says_why_a_fifo_or_a_device_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("app.pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir(dir.path().join("logs.d")).unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        r#"version: 1
metrics:
  - {name: lines_total, type: counter, help: Lines.}
sources:
  - name: app
    file: {paths: [app.pipe, /dev/null, "logs*"]}
    rules: [{regex: '.', update: [{metric: lines_total}]}]
"#,
    )
    .unwrap();
    let text = explain(dir.path(), &[]);
    for expected in [
        "files: none read\n",
        "note: /dev/null is not read: it is a character device, not a regular file\n",
        "note: CASE_DIR/app.pipe is not read: it is a FIFO, not a regular file\n",
        "note: CASE_DIR/logs.d is not read: it is a directory, not a regular file\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    // `one-shot` says it too (it said "its paths matched no file").
    let out = one_shot(&dir.path().join("exporter.yaml"));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("source \"app\": it read no file: ")
            && stderr.contains("app.pipe is not read: it is a FIFO, not a regular file"),
        "{stderr}"
    );
}

/// Issue 24: a traceback longer than what `explain` shows by default had its end (the
/// exception) never shown. By default it is cut and says so; `--full` shows it whole, as its
/// lines; `--failed` only the matches with a failed update (and only those updates);
/// `--where` only the matches whose fields pass. The counts stay whole.
#[test]
fn explain_shows_a_traceback_whole_only_failures_or_only_what_a_filter_selects() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain/traceback");
    let end = "     | KeyError: 'user'\n";

    let short = explain(&case, &[]);
    assert!(!short.contains(end), "{short}");
    assert!(
        short.contains("     (cut: 411 bytes in all, --full shows it whole)\n"),
        "{short}"
    );

    let full = explain(&case, &["--full"]);
    assert!(full.contains(end), "{full}");
    assert!(!full.contains("(cut: "), "{full}");
    assert!(
        full.contains("rule request: 4 matches (showing 4)\n"),
        "{full}"
    );

    let failed = explain(&case, &["--failed", "--full"]);
    assert!(
        failed.contains("rule request: 4 matches, 1 with a failed update (showing 1)\n"),
        "{failed}"
    );
    assert!(failed.contains(end), "{failed}");
    assert!(
        failed.contains(
            "     observe app_request_duration_seconds: FAILED value_not_a_number: n/a\n     (and 1 update that did not fail)\n"
        ),
        "{failed}"
    );
    assert!(!failed.contains("add app_records_total"), "{failed}");
    assert!(
        failed.contains("rule exception: 1 match, 0 with a failed update (showing 0)\n"),
        "{failed}"
    );

    let error = explain(&case, &["--where", "level=ERROR"]);
    assert!(
        error.contains("rule request: 4 matches, 1 where level=ERROR (showing 1)\n"),
        "{error}"
    );
    assert_eq!(error.matches("  #").count(), 1, "{error}");
    let not_info = explain(&case, &["--where=level!=INFO", "--where=logger~^bill"]);
    assert!(
        not_info.contains("rule request: 4 matches, 2 where level!=INFO and logger~^bill"),
        "{not_info}"
    );
    let exception = explain(&case, &["--full", "--where=exception=KeyError"]);
    assert!(
        exception.contains("rule exception: 1 match, 1 where exception=KeyError (showing 1)\n"),
        "{exception}"
    );
    assert!(exception.contains(end), "{exception}");

    // JSON: the record whole or cut (with its length), and the selection.
    let json: serde_json::Value =
        serde_json::from_str(&explain(&case, &["--output=json"])).unwrap();
    let shown = &json[0]["trace"]["rules"][0]["shown"][1];
    assert_eq!(shown["record_bytes"], 411);
    let json: serde_json::Value =
        serde_json::from_str(&explain(&case, &["--output=json", "--full", "--failed"])).unwrap();
    let trace = &json[0]["trace"];
    assert_eq!(trace["selected_by"], "with a failed update");
    assert_eq!(trace["rules"][0]["selected"], 1);
    let record = trace["rules"][0]["shown"][0]["record"].as_str().unwrap();
    assert!(record.ends_with("KeyError: 'user'"), "{record}");
    assert_eq!(record.len(), 411);
    assert_eq!(trace["rules"][0]["shown"][0]["updates_not_shown"], 1);

    // A field no rule has is an error with the closest name, not an empty answer.
    let out = Command::new(binary())
        .arg("explain")
        .arg(format!(
            "--config.file={}",
            case.join("exporter.yaml").display()
        ))
        .arg("--where=levle=ERROR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(r#"no rule has a field named \"levle\" (did you mean \"level\"?)"#),
        "{stderr}"
    );
}
