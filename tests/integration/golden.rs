//! Golden cases: `tests/golden/<case>/{exporter.yaml, inputs…, expected.prom}`, run through
//! `one-shot`. Optional `args` holds extra flags. Absolute paths of the case directory in the
//! output are written as `CASE_DIR`, and the values of the two clock-dependent self-metrics
//! (fetch duration, last success time) as `TIME`. `UPDATE_GOLDEN=1` rewrites the expected files (review the
//! diff before committing it).

use std::path::Path;
use std::process::Command;

use crate::common::binary;

fn run_case(dir: &Path) -> Result<(), String> {
    let args = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
    let out = Command::new(binary())
        .arg("one-shot")
        .arg(format!(
            "--config.file={}",
            dir.join("exporter.yaml").display()
        ))
        .args(args.split_whitespace())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let case_dir = std::fs::canonicalize(dir).unwrap();
    let actual: String = String::from_utf8(out.stdout)
        .unwrap()
        .replace(case_dir.to_str().unwrap(), "CASE_DIR")
        .lines()
        .map(|l| {
            let timed = l.starts_with("quarry_source_duration_seconds{")
                || l.starts_with("quarry_source_last_success_timestamp_seconds{");
            match l.rsplit_once(' ') {
                Some((series, _)) if timed => format!("{series} TIME\n"),
                _ => format!("{l}\n"),
            }
        })
        .collect();
    let expected_file = dir.join("expected.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_file, &actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_file)
        .map_err(|e| format!("{}: {e}", expected_file.display()))?;
    if actual != expected {
        let diff: Vec<String> = diff_lines(&expected, &actual);
        return Err(format!(
            "output differs from {}:\n{}",
            expected_file.display(),
            diff.join("\n")
        ));
    }
    Ok(())
}

/// Lines only in one side, marked `-` (expected) and `+` (actual), in order of appearance.
fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out: Vec<String> = e
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        a.iter()
            .filter(|l| !e.contains(l))
            .map(|l| format!("+ {l}")),
    );
    if out.is_empty() {
        out.push("(same lines, different order or blank lines)".into());
    }
    out
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("exporter.yaml").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "golden cases missing under {}",
        root.display()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run_case(c)
                .err()
                .map(|e| format!("{}: {e}", c.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
