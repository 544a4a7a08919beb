//! `quarry_exporter migrate` on the example configs json_exporter and grok_exporter ship
//! (`tests/fixtures/migrate/`, sources in `SOURCES.md`): the result passes `check`, and run
//! on those projects' example inputs it gives what they document (json_exporter's README
//! output for `examples/data.json`) or what an independent count of the log gives (the exim
//! log of grok_exporter's example).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::upstream::{Reply, Upstream};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/migrate")
}

/// Runs `migrate` in `cwd`; (exit code, stdout, stderr).
fn migrate(cwd: &Path, from: &str, file: &str) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .current_dir(cwd)
        .args(["migrate", "--from", from, file])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn check(dir: &Path, config: &str) {
    let out = Command::new(binary())
        .current_dir(dir)
        .args(["check", &format!("--config.file={config}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check refused the migrated config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The samples of json_exporter's README ("Example Usage"), as json_exporter prints them for
/// `examples/data.json` (module `default`) and `examples/animal-data.json` (`animals`).
const README_DEFAULT: &str = r#"example_global_value{environment="beta",location="planet-mars"} 1234
example_timestamped_value_count{environment="beta"} 2
example_value_active{environment="beta",id="id-A"} 1
example_value_active{environment="beta",id="id-C"} 1
example_value_boolean{environment="beta",id="id-A"} 1
example_value_boolean{environment="beta",id="id-C"} 0
example_value_count{environment="beta",id="id-A"} 1
example_value_count{environment="beta",id="id-C"} 3
"#;

const README_ANIMALS: &str = r#"animal_population{name="deer",predator="false"} 456
animal_population{name="lion",predator="true"} 123
animal_population{name="pigeon",predator="false"} 789
"#;

/// `name{labels} value` lines that are not comments or self-metrics, by series.
fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("quarry_") && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn json_exporters_example_config_gives_its_readme_output() {
    let (code, yaml, stderr) = migrate(
        &fixtures(),
        "json_exporter",
        "json_exporter/examples/config.yml",
    );
    assert_eq!(code, Some(0), "{stderr}\n{yaml}");
    // What could not be converted is said.
    assert!(yaml.contains("epochTimestamp"), "{yaml}");
    assert!(yaml.contains("example_value_count_value"), "{yaml}");
    assert!(
        yaml.contains("(example_missing_key).allow_missing_key"),
        "{yaml}"
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("migrated.yaml"), &yaml).unwrap();
    check(dir.path(), "migrated.yaml");

    let server = Upstream::start();
    for file in ["data.json", "animal-data.json"] {
        let body =
            std::fs::read_to_string(fixtures().join("json_exporter/examples").join(file)).unwrap();
        server.route(
            &format!("/examples/{file}"),
            Reply::Ok("application/json", body),
        );
    }
    let exporter = Exporter::start_with(&dir.path().join("migrated.yaml"), &[]);
    for (module, file, readme) in [
        ("default", "data.json", README_DEFAULT),
        ("animals", "animal-data.json", README_ANIMALS),
    ] {
        let target = server.url("http", &format!("/examples/{file}"));
        let (status, _, body) =
            exporter.get(&format!("/probe?module={module}&target={target}"), &[]);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(value_in(&body, "quarry_probe_success"), Some(1.0), "{body}");
        // json_exporter's names, but for the `_count` ones (renamed: the note says so).
        let mut want = samples(&readme.replace("_count{", "_count_value{"));
        if module == "default" {
            // The one difference, which the migrated config's header notes: a metric without
            // labels is exported at 0 before any value (json_exporter leaves the missing
            // key's metric out).
            want.insert("example_missing_key".into(), 0.0);
        }
        assert_eq!(samples(&body), want, "{body}");
    }
}

/// An independent count of the exim example: for each line with `F=<sender> rejected RCPT
/// <recipient>: message`, both addresses plausible e-mail addresses, the message's leading
/// letters and spaces (grok_exporter's `EXIM_MESSAGE [a-zA-Z ]*`).
fn count_exim(log: &str) -> BTreeMap<String, u64> {
    let email = |s: &str| {
        let (user, host) = s.split_once('@').unwrap_or(("", ""));
        !user.is_empty()
            && host.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._%+-@".contains(c))
    };
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Some((before, after)) = line.split_once(" rejected RCPT <") else {
            continue;
        };
        let Some(sender) = before
            .rsplit_once(" F=<")
            .and_then(|(_, s)| s.strip_suffix('>'))
        else {
            continue;
        };
        let Some((recipient, message)) = after.split_once(">: ") else {
            continue;
        };
        if !email(sender) || !email(recipient) {
            continue;
        }
        let message: String = message
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == ' ')
            .collect();
        *counts.entry(message).or_default() += 1;
    }
    counts
}

#[test]
fn grok_exporters_example_config_counts_the_exim_log_as_an_independent_count() {
    // grok_exporter runs its example from its repository's root: the same layout.
    let dir = tempdir();
    copy_dir(&fixtures().join("grok_exporter"), dir.path());
    let (code, yaml, stderr) = migrate(dir.path(), "grok_exporter", "example/config.yml");
    assert_eq!(code, Some(0), "{stderr}\n{yaml}");
    assert!(
        yaml.contains("copied from the imports (not bundled here): EXIM_DATE, EXIM_REMOTE_HOST"),
        "{yaml}"
    );
    std::fs::write(dir.path().join("migrated.yaml"), &yaml).unwrap();
    check(dir.path(), "migrated.yaml");
    let out = Command::new(binary())
        .current_dir(dir.path())
        .args(["one-shot", "--config.file=migrated.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = samples(&String::from_utf8(out.stdout).unwrap());
    let log = std::fs::read_to_string(dir.path().join("example/exim-rejected-RCPT-examples.log"))
        .unwrap();
    let counted = count_exim(&log);
    let want: BTreeMap<String, f64> = counted
        .iter()
        .map(|(message, n)| {
            (
                format!(
                    r#"exim_rejected_rcpt_total{{error_message="{message}",logfile="exim-rejected-RCPT-examples.log"}}"#
                ),
                *n as f64,
            )
        })
        .collect();
    assert_eq!(got, want);
    // As MIGRATING.md documents for the hand-written config.
    assert_eq!(
        counted.values().collect::<Vec<_>>(),
        [&2000, &32, &166],
        "{counted:?}"
    );
}

#[test]
fn what_cannot_be_converted_is_said_and_a_config_check_refuses_fails_the_command() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("grok.yml"),
        r#"global: {config_version: 3}
input: {type: stdin}
metrics:
  - type: summary
    name: request_seconds
    help: Latency.
    match: 'took %{NUMBER:ms}ms from %{NOT_A_PATTERN:x}'
    value: '{{divide .ms 1000}}'
    quantiles: {0.5: 0.05, 0.9: 0.01}
    labels: {path: '{{gsub .x "/" "_"}}'}
"#,
    )
    .unwrap();
    let (code, yaml, stderr) = migrate(dir.path(), "grok_exporter", "grok.yml");
    assert_eq!(code, Some(1), "{yaml}");
    assert!(stderr.contains("does not pass check"), "{stderr}");
    for said in [
        "input.type stdin",
        "a summary becomes a histogram",
        "labels.path",
        "grok pattern NOT_A_PATTERN is neither bundled nor found",
        "NOT READY",
    ] {
        assert!(yaml.contains(said), "{said:?} not said in:\n{yaml}");
    }
    assert!(yaml.contains("observe: $ms, scale: 0.001"), "{yaml}");
}

/// Runs real mtail's one-shot on `program` and `log` (in `dir`): its samples, or `None` when
/// mtail is not installed (`scripts/test` installs it).
fn mtail_one_shot(dir: &Path, program: &str, log: &str) -> Option<BTreeMap<String, f64>> {
    let progs = dir.join("progs");
    std::fs::create_dir_all(&progs).unwrap();
    std::fs::copy(fixtures().join("mtail").join(program), progs.join(program)).unwrap();
    let out = Command::new("mtail")
        .current_dir(dir)
        .args([
            "--one_shot",
            "--one_shot_format=prometheus",
            "--progs",
            "progs",
            "--logs",
            log,
            "--logtostderr",
        ])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(samples(&String::from_utf8(out.stdout).unwrap()))
}

/// Migrates `program`, points it at `log`, checks it and one-shots it.
fn quarry_one_shot(dir: &Path, program: &str, log: &str) -> (String, BTreeMap<String, f64>) {
    let file = fixtures().join("mtail").join(program);
    let (code, yaml, stderr) = migrate(dir, "mtail", file.to_str().unwrap());
    assert_eq!(code, Some(0), "{stderr}\n{yaml}");
    let yaml = yaml.replace("/var/log/CHANGE-ME.log", log);
    std::fs::write(dir.join("migrated.yaml"), &yaml).unwrap();
    check(dir, "migrated.yaml");
    let out = Command::new(binary())
        .current_dir(dir)
        .args(["one-shot", "--config.file=migrated.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (yaml, samples(&String::from_utf8(out.stdout).unwrap()))
}

/// mtail's own `examples/apache_combined.mtail`, converted, counts the lines MIGRATING.md
/// shows as real mtail does (prog label included); what is not converted (`strptime`, the
/// `$response_size > 0` condition) is said.
#[test]
fn an_mtail_program_counts_as_mtail_does() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("access.log"),
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
10.1.2.3 - - [28/Nov/2026:10:00:00 +0000] "POST /api/orders HTTP/1.1" 201 512 "-" "curl/8.5"
10.1.2.3 - - [28/Nov/2026:10:00:01 +0000] "GET /api/orders HTTP/1.1" 200 1024 "-" "curl/8.5"
10.1.2.3 - - [28/Nov/2026:10:00:02 +0000] "HEAD / HTTP/1.1" 304 - "-" "curl/8.5"
10.1.2.4 - - [28/Nov/2026:10:00:03 +0000] "GET /missing HTTP/1.1" 404 196 "-" "Mozilla/5.0 (X11; Linux x86_64)"
"#,
    )
    .unwrap();
    let (yaml, quarry) = quarry_one_shot(dir.path(), "apache_combined.mtail", "access.log");
    for said in ["strptime", "`$response_size > 0` is dropped"] {
        assert!(yaml.contains(said), "{said:?} not said in:\n{yaml}");
    }
    assert_eq!(
        quarry[r#"apache_http_requests_total{http_version="HTTP/1.1",prog="apache_combined.mtail",request_method="HEAD",request_status="304"}"#],
        1.0
    );
    let Some(mtail) = mtail_one_shot(dir.path(), "apache_combined.mtail", "access.log") else {
        eprintln!("mtail is not installed: compared with the counts above only");
        return;
    };
    let mtail: BTreeMap<String, f64> = mtail
        .into_iter()
        .filter(|(k, _)| k.starts_with("apache_"))
        .collect();
    assert_eq!(quarry, mtail);
}

/// mtail's `examples/histogram.mtail`: the same sums and counts as mtail. (Its buckets are
/// not compared: mtail 3.0.0-rc50's one-shot leaves out the first bucket and counts others
/// by its own ranges; here `le` is Prometheus' cumulative bound, checked below.)
#[test]
fn an_mtail_histogram_has_mtails_sums_and_counts() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("web.log"),
        "GET /foo/bar.html latency=1s httpcode=200\nGET /foo/baz.html latency=0s httpcode=200\nGET /x latency=5s httpcode=500\n",
    )
    .unwrap();
    let (_, quarry) = quarry_one_shot(dir.path(), "histogram.mtail", "web.log");
    assert_eq!(
        quarry[r#"webserver_latency_by_code_bucket{code="200",prog="histogram.mtail",le="1"}"#],
        2.0
    );
    let Some(mtail) = mtail_one_shot(dir.path(), "histogram.mtail", "web.log") else {
        eprintln!("mtail is not installed: not compared");
        return;
    };
    let totals = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.iter()
            .filter(|(k, _)| {
                k.starts_with("webserver_") && (k.contains("_sum{") || k.contains("_count{"))
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(totals(&quarry).len(), 6);
    assert_eq!(totals(&quarry), totals(&mtail));
}

/// json_exporter's own end-to-end case (`test/config/good.yml` on `test/serve/good.json` must
/// answer `test/response/good.txt`), with `valuetype: counter` metrics: the same samples, the
/// counters named `…_total` (the header says so).
#[test]
fn json_exporters_own_end_to_end_case_gives_its_expected_response() {
    let root = fixtures().join("json_exporter/test");
    let (code, yaml, stderr) = migrate(&root, "json_exporter", "config/good.yml");
    assert_eq!(code, Some(0), "{stderr}\n{yaml}");
    let dir = tempdir();
    std::fs::write(dir.path().join("migrated.yaml"), &yaml).unwrap();
    check(dir.path(), "migrated.yaml");
    let server = Upstream::start();
    server.route(
        "/good.json",
        Reply::Ok(
            "application/json",
            std::fs::read_to_string(root.join("serve/good.json")).unwrap(),
        ),
    );
    let exporter = Exporter::start_with(&dir.path().join("migrated.yaml"), &[]);
    let target = server.url("http", "/good.json");
    let (status, _, body) = exporter.get(&format!("/probe?module=default&target={target}"), &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    let expected = std::fs::read_to_string(root.join("response/good.txt")).unwrap();
    let counters: Vec<&str> = expected
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    assert_eq!(counters.len(), 3);
    let mut want = samples(&expected);
    for name in counters {
        want = want
            .into_iter()
            .map(|(k, v)| {
                (
                    k.replacen(&format!("{name}{{"), &format!("{name}_total{{"), 1),
                    v,
                )
            })
            .collect();
        assert!(
            body.contains(&format!("# TYPE {name}_total counter")),
            "{body}"
        );
    }
    assert_eq!(samples(&body), want, "{body}");
}
