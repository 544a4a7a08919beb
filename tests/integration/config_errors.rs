//! Bad configs and the exact messages they produce: `tests/config_errors/<case>.yaml` with
//! `<case>.expected` (stderr of `check`). `UPDATE_GOLDEN=1` rewrites the expected files.

use std::path::Path;
use std::process::Command;

use crate::common::binary;

#[test]
fn every_bad_config_gives_its_exact_messages_and_exit_code_1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_errors");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5);
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let out = Command::new(binary())
            .current_dir(&root)
            .args(["check", &format!("--config.file={name}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_file = case.with_extension("expected");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_file, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if out.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, want 1", out.status.code()));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_config_is_valid() {
    let out = Command::new(binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "exporter.yaml: OK (15 metrics, 6 sources, 1 probe module, 8 rules)\n"
    );
}

#[test]
fn serving_with_a_bad_config_exits_1_with_the_same_messages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_errors");
    let out = Command::new(binary())
        .current_dir(&root)
        .args([
            "--config.file=wrong_version.yaml",
            "--web.listen-address=127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected = std::fs::read_to_string(root.join("wrong_version.expected")).unwrap();
    assert_eq!(String::from_utf8(out.stderr).unwrap(), expected);
}

#[test]
fn a_missing_config_file_is_one_clear_error() {
    let dir = crate::common::tempdir();
    let out = Command::new(binary())
        .current_dir(dir.path())
        .args(["check", "--config.file=nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "nope.yaml:1:1: cannot read config file: No such file or directory (os error 2)\n1 error in nope.yaml\n"
    );
}
