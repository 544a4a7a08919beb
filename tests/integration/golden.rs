//! Golden cases: `tests/golden/<case>/{exporter.yaml, inputs…, expected.prom}`, run through
//! `one-shot`. Optional `args` holds extra flags. Absolute paths of the case directory in the
//! output are written as `CASE_DIR`, and the values of the two clock-dependent self-metrics
//! (fetch duration, last success time) as `TIME`. A case with a `served/` directory runs against
//! a real HTTP server on loopback that serves each file there at `/<name>` (a file with a
//! `<name>.soapaction` companion as a SOAP service that wants that action); `SERVER` in its
//! config is that server's address. `UPDATE_GOLDEN=1` rewrites the expected files (review the
//! diff before committing it).

use std::path::Path;
use std::process::Command;

use crate::common::{binary, one_shot};
use crate::upstream::{Reply, Upstream};

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("xml") => "text/xml; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// Serves `served/` and copies the case, with `SERVER` replaced, into a temp dir.
fn serve_case(case: &Path) -> (Upstream, tempfile::TempDir) {
    let server = Upstream::start();
    let served = case.join("served");
    for entry in std::fs::read_dir(&served).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".soapaction") {
            continue;
        }
        let body = std::fs::read_to_string(served.join(&name)).unwrap();
        let reply = match std::fs::read_to_string(served.join(format!("{name}.soapaction"))) {
            Ok(action) => Reply::Soap(Box::leak(action.trim().to_owned().into_boxed_str()), body),
            Err(_) => Reply::Ok(content_type(&name), body),
        };
        server.route(&format!("/{name}"), reply);
    }
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(case).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace("SERVER", &format!("127.0.0.1:{}", server.port));
            std::fs::write(copy.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    (server, copy)
}

fn run_case(case: &Path) -> Result<(), String> {
    let served = case.join("served").is_dir().then(|| serve_case(case));
    let dir = served.as_ref().map_or(case, |(_, copy)| copy.path());
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
    let expected_file = case.join("expected.prom");
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

/// `one-shot` prints what it could read and says which sources failed: exit 0 when all
/// worked, 3 when a page source failed or a file source matched no file (stderr names each
/// and why), 1 for a config error.
#[test]
fn one_shot_exit_codes_say_whether_every_source_worked() {
    let dir = crate::common::tempdir();
    let d = dir.path();
    std::fs::write(d.join("app.log"), "level=error\nlevel=info\nlevel=error\n").unwrap();
    std::fs::write(d.join("status.json"), "{\"queue\": 7}").unwrap();
    let config = |status_path: &str, log_glob: &str| {
        format!(
            "version: 1\nmetrics:\n  - {{name: log_lines_total, type: counter, help: Lines., labels: [level]}}\n  - {{name: queue_depth, type: gauge, help: Queue.}}\nsources:\n  - name: log\n    file: {{paths: [\"{log_glob}\"], start_at: beginning}}\n    rules:\n      - regex: 'level=(?P<level>\\w+)'\n        update: [{{metric: log_lines_total, labels: {{level: $level}}}}]\n  - name: status\n    status_file: {{path: {status_path}}}\n    rules:\n      - json: {{fields: {{q: \"$.queue\"}}}}\n        update: [{{metric: queue_depth, set: $q}}]\n"
        )
    };
    let run = |text: String| {
        std::fs::write(d.join("exporter.yaml"), text).unwrap();
        one_shot(&d.join("exporter.yaml"))
    };
    let ok = run(config("status.json", "*.log"));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert!(stdout.contains("queue_depth 7\n"), "{stdout}");

    let failed = run(config("missing.json", "nothing-*.txt"));
    assert_eq!(failed.status.code(), Some(3));
    let stderr = String::from_utf8(failed.stderr).unwrap();
    assert!(stderr.contains("source \"status\": read:"), "{stderr}");
    assert!(
        stderr.contains("source \"log\": its paths matched no file"),
        "{stderr}"
    );
    assert!(stderr.contains("2 sources failed"), "{stderr}");

    // One failing source of two: the other's metrics are still printed.
    let partial = run(config("missing.json", "*.log"));
    assert_eq!(partial.status.code(), Some(3));
    let stdout = String::from_utf8(partial.stdout).unwrap();
    assert!(
        stdout.contains("log_lines_total{level=\"error\"} 2\n"),
        "{stdout}"
    );

    let broken = run("version: 1\nmetrics: 5\n".into());
    assert_eq!(broken.status.code(), Some(1));
}

/// `one-shot` fetches its page sources all at once, as the exporter does when it runs: a
/// command that waits for a file another command makes gets it (fetched one after the other,
/// the first would give up after 10 s with nothing to print, and its source would fail).
#[test]
fn one_shot_fetches_page_sources_at_once() {
    let dir = crate::common::tempdir();
    let d = dir.path();
    let ready = d.join("ready");
    let config = format!(
        r#"version: 1
metrics:
  - {{name: got, type: gauge, help: A value by source., labels: [who]}}
sources:
  - name: waits
    command:
      argv: [sh, -c, 'i=0; while [ ! -e {ready} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat {ready}']
      timeout: 20s
    rules:
      - regex: '(?P<v>\d+)'
        update: [{{metric: got, labels: {{who: waits}}, set: $v}}]
  - name: makes
    command:
      argv: [sh, -c, 'echo 7 > {ready}.tmp && mv {ready}.tmp {ready} && echo 5']
      timeout: 20s
    rules:
      - regex: '(?P<v>\d+)'
        update: [{{metric: got, labels: {{who: makes}}, set: $v}}]
"#,
        ready = ready.display()
    );
    std::fs::write(d.join("exporter.yaml"), config).unwrap();
    let out = one_shot(&d.join("exporter.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("got{who=\"waits\"} 7\n"), "{stdout}");
    assert!(stdout.contains("got{who=\"makes\"} 5\n"), "{stdout}");
}
