//! Grok from the user's side: `quarry_exporter grok` lists the bundled patterns and shows one
//! with its fields and expansion (an unknown name says the closest), without a config.

use std::process::Command;

use crate::common::{binary, one_shot};

fn grok(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .arg("grok")
        .args(args)
        // No config is read: a missing one is no error.
        .arg("--config.file=/nonexistent/exporter.yaml")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Issue 24: the bundled patterns could not be listed from the binary.
#[test]
fn grok_lists_the_bundled_patterns_and_shows_one_expanded() {
    let (code, list, stderr) = grok(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(names.len() >= 100, "{list}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let qs = list.lines().find(|l| l.starts_with("QS ")).unwrap();
    assert!(qs.ends_with("  %{QUOTEDSTRING}"), "{qs}");

    let (code, one, stderr) = grok(&["COMBINEDAPACHELOG"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        one.starts_with(
            "name: COMBINEDAPACHELOG\ndefinition: %{HTTPD_COMBINEDLOG}\n\
             fields: clientip, ident, auth, timestamp, verb, request, httpversion, rawrequest, \
             response, bytes, referrer, agent\nregex: (?:"
        ),
        "{one}"
    );
    let (_, qs, _) = grok(&["qs"]);
    assert!(
        qs.contains("fields: (none: write %{QS:field} to capture it)\n"),
        "{qs}"
    );

    let (code, out, stderr) = grok(&["COMBINEDAPACHE"]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty(), "{out}");
    assert!(
        stderr.contains("unknown grok pattern COMBINEDAPACHE; did you mean COMBINEDAPACHELOG?"),
        "{stderr}"
    );
}

/// Issue 24: grok's `QS` fields kept their quotes (`agent="\"curl/8\""`). `unquote:` reads
/// them without, `\"` unescaped; text not quoted (`-`) is kept. On Apache's combined format,
/// whose `%{User-Agent}i` escapes `"` as `\"`.
#[test]
fn unquote_reads_quoted_grok_fields_without_their_quotes() {
    let dir = crate::common::tempdir();
    std::fs::write(
        dir.path().join("access.log"),
        concat!(
            r#"10.0.0.1 - - [05/Dec/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.5.0""#,
            "\n",
            r#"10.0.0.2 - - [05/Dec/2026:11:00:01 +0000] "GET /a HTTP/1.1" 200 64 "https://example.com/?q=\"x\"" "Mozilla/5.0 \"quoted\" \\ (X11)""#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        r#"version: 1
metrics:
  - {name: http_requests_total, type: counter, help: "Requests by agent and referrer.", labels: [agent, referrer]}
sources:
  - name: access
    file: {paths: [access.log], start_at: beginning}
    rules:
      - grok: '%{COMBINEDAPACHELOG}'
        unquote: [agent, referrer]
        update:
          - {metric: http_requests_total, labels: {agent: $agent, referrer: $referrer}}
        examples:
          - input: '1.2.3.4 - - [05/Dec/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
            samples: ['http_requests_total{agent="curl/8",referrer="-"} 1']
"#,
    )
    .unwrap();
    let out = one_shot(&dir.path().join("exporter.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        r#"http_requests_total{agent="curl/8.5.0",referrer="-"} 1"#,
        r#"http_requests_total{agent="Mozilla/5.0 \"quoted\" \\ (X11)",referrer="https://example.com/?q=\"x\""} 1"#,
    ] {
        assert!(text.contains(expected), "{expected}\nnot in\n{text}");
    }
}
