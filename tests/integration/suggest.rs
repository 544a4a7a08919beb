//! `suggest` on real producers' output: nginx's and Apache's access logs (the servers
//! `real_servers.rs` starts), Python's `logging` with tracebacks and JSON records, Prometheus'
//! own log, util-linux `logger`'s syslog lines, Java's stack traces. For each, the suggested
//! config must pass `check` (its examples included), and `one-shot` on the same sample must
//! count what an independent count of the sample says (made here in Rust, or by the producer
//! itself). Producers that are not installed are skipped, except in CI.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::*;
use crate::real_servers::{free_port, installed, start, start_nginx};

/// Runs `suggest` on `sample`, checks the config it prints and runs `one-shot` on it; returns
/// the config and the samples `one-shot` printed.
fn suggest_and_count(sample: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(binary())
        .arg("suggest")
        .arg(sample)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "suggest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let config = sample.with_extension("suggested.yaml");
    std::fs::write(&config, &yaml).unwrap();
    for command in ["check", "one-shot"] {
        let out = Command::new(binary())
            .arg(command)
            .arg(format!("--config.file={}", config.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        if command == "one-shot" {
            return (yaml, String::from_utf8(out.stdout).unwrap());
        }
    }
    unreachable!()
}

/// The exporter's samples of `metric`: series → value (series with their labels as written).
fn samples_of(exposition: &str, metric: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `metric{a="x",b="y"}` for the labels given (in name order, as the exposition has them).
fn series(metric: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// Counts equal, series for series: the exporter's (non-zero) samples of `metric` and the
/// independent count.
fn assert_counts(exposition: &str, metric: &str, want: &BTreeMap<String, f64>, yaml: &str) {
    let got: BTreeMap<String, f64> = samples_of(exposition, metric)
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .collect();
    assert_eq!(&got, want, "{metric}\n{yaml}");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "waited too long for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A raw HTTP/1.0 request (any method), the response read to its end.
fn request(port: u16, method: &str, path: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Method and status of an NCSA access log line, read by splitting at its quotes.
fn method_and_status(line: &str) -> (String, String) {
    let parts: Vec<&str> = line.split('"').collect();
    let method = parts[1].split(' ').next().unwrap().to_owned();
    let status = parts[2].split_whitespace().next().unwrap().to_owned();
    (method, status)
}

fn count_requests(log: &str, metric: &str) -> BTreeMap<String, f64> {
    let mut want = BTreeMap::new();
    for line in log.lines() {
        let (method, status) = method_and_status(line);
        *want
            .entry(series(metric, &[("method", &method), ("status", &status)]))
            .or_insert(0.0) += 1.0;
    }
    want
}

#[test]
fn suggest_on_nginx_access_log_counts_as_the_log_says() {
    if !installed("nginx") {
        return;
    }
    let dir = tempdir();
    let (_nginx, port) = start_nginx(dir.path());
    let mut n = 0;
    for i in 0..12 {
        request(port, "GET", &format!("/page?n={i}"));
        request(port, if i % 3 == 0 { "HEAD" } else { "GET" }, "/missing");
        n += 2;
    }
    request(port, "POST", "/form");
    n += 1;
    let log = dir.path().join("access.log");
    wait_for("nginx's access log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            == n
    });
    let (yaml, metrics) = suggest_and_count(&log, &[]);
    assert!(yaml.contains("grok: '%{COMBINEDAPACHELOG}'"), "{yaml}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_counts(
        &metrics,
        "http_requests_total",
        &count_requests(&text, "http_requests_total"),
        &yaml,
    );
    let bytes: f64 = text
        .lines()
        .map(|l| {
            l.split('"')
                .nth(2)
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
        })
        .filter_map(|b| b.parse::<f64>().ok())
        .sum();
    let got: f64 = samples_of(&metrics, "http_response_bytes_total")
        .values()
        .sum();
    assert_eq!(got, bytes, "{yaml}");
}

/// Apache's `common` format writes `-` for an empty body (HEAD, 304): `none: skip`, no rule
/// errors on a healthy log.
#[test]
fn suggest_on_apache_common_log_with_empty_bodies() {
    if !installed("apache2") {
        return;
    }
    let dir = tempdir();
    let port = free_port();
    let d = dir.path().display();
    let modules = "/usr/lib/apache2/modules";
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/index.html"), "hello\n").unwrap();
    std::fs::write(
        dir.path().join("apache.conf"),
        format!(
            "ServerRoot {d}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/apache.pid
ErrorLog {d}/apache-error.log
DocumentRoot {d}/htdocs
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common
CustomLog {d}/access.log common
<Directory {d}/htdocs>
  Require all granted
</Directory>
"
        ),
    )
    .unwrap();
    let conf = dir.path().join("apache.conf");
    let _apache = start(
        "apache2",
        &["-f", conf.to_str().unwrap(), "-DFOREGROUND"],
        port,
        dir.path(),
    );
    let mut n = 0;
    for i in 0..10 {
        request(port, "GET", "/index.html");
        request(port, "HEAD", "/index.html");
        if i % 2 == 0 {
            request(port, "GET", "/nope");
            n += 1;
        }
        n += 2;
    }
    let log = dir.path().join("access.log");
    wait_for("Apache's access log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            >= n
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(" 200 -"), "{text}");
    let (yaml, metrics) = suggest_and_count(&log, &["--prefix=apache"]);
    assert!(yaml.contains("grok: '%{COMMONAPACHELOG}'"), "{yaml}");
    assert_counts(
        &metrics,
        "apache_requests_total",
        &count_requests(&text, "apache_requests_total"),
        &yaml,
    );
    let out = Command::new(binary())
        .arg("one-shot")
        .arg("--self-metrics")
        .arg(format!(
            "--config.file={}",
            log.with_extension("suggested.yaml").display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let errors: f64 = samples_of(&text, "quarry_rule_errors_total").values().sum();
    assert_eq!(errors, 0.0, "{text}");
}

/// Runs a Python program; returns its stdout.
fn python(program: &str, args: &[&str]) -> Option<String> {
    let mut child = match Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 is required in CI"
            );
            eprintln!("python3 not installed; skipping");
            return None;
        }
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    Some(out)
}

/// Python's `logging` with tracebacks (`logger.exception`, chained exceptions): records by
/// level and exceptions by type, as Python itself counted them.
#[test]
fn suggest_on_python_logging_with_tracebacks() {
    let dir = tempdir();
    let log = dir.path().join("worker.log");
    let program = r#"
import json, logging, sys
logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("worker")
levels, exceptions = {}, {}
def count(d, k): d[k] = d.get(k, 0) + 1
class QuotaExceeded(Exception): pass
for i in range(60):
    if i % 7 == 3:
        try:
            if i % 2: {}["order-%d" % i]
            else:
                try: int("x%d" % i)
                except ValueError as e: raise QuotaExceeded("quota for %d\nsecond line" % i) from e
        except Exception as e:
            log.exception("job %d failed", i); count(levels, "ERROR"); count(exceptions, type(e).__name__)
    elif i % 5 == 0: log.warning("job %d slow: ERROR budget low", i); count(levels, "WARNING")
    elif i % 11 == 0: log.debug("job %d details", i); count(levels, "DEBUG")
    else: log.info("job %d done", i); count(levels, "INFO")
print(json.dumps({"levels": levels, "exceptions": exceptions}))
"#;
    let Some(out) = python(program, &[log.to_str().unwrap()]) else {
        return;
    };
    let truth: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (yaml, metrics) = suggest_and_count(&log, &[]);
    assert!(yaml.contains("multiline: {start:"), "{yaml}");
    let want = |key: &str, metric: &str, label: &str| -> BTreeMap<String, f64> {
        truth[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (series(metric, &[(label, k)]), v.as_f64().unwrap()))
            .collect()
    };
    assert_counts(
        &metrics,
        "worker_log_records_total",
        &want("levels", "worker_log_records_total", "level"),
        &yaml,
    );
    // The exception raised last in a chain (`raise … from e`) is the one counted; Python
    // names a class of `__main__` without its module.
    let exceptions = want("exceptions", "worker_exceptions_total", "exception");
    assert_counts(&metrics, "worker_exceptions_total", &exceptions, &yaml);
}

/// JSON lines written by Python's `json`: records by level, requests by method and status,
/// a millisecond field as a histogram in seconds.
#[test]
fn suggest_on_json_lines_with_status_and_milliseconds() {
    let dir = tempdir();
    let log = dir.path().join("api.log");
    let program = r#"
import json, sys
levels, status, n, total = {}, {}, 0, 0
with open(sys.argv[1], "w") as f:
    for i in range(200):
        rec = {"time": "2026-11-28T10:00:%02dZ" % (i % 60), "level": ["info", "warn", "error"][i % 7 % 3], "msg": "request"}
        levels[rec["level"]] = levels.get(rec["level"], 0) + 1
        if i % 4:
            rec["http"] = {"method": ["GET", "POST"][i % 2], "status": [200, 404, 503][i % 3]}
            rec["duration_ms"] = i * 3
            k = "%s %s" % (rec["http"]["method"], rec["http"]["status"])
            status[k] = status.get(k, 0) + 1
            n += 1; total += i * 3
        f.write(json.dumps(rec) + "\n")
print(json.dumps({"levels": levels, "status": status, "n": n, "total_ms": total}))
"#;
    let Some(out) = python(program, &[log.to_str().unwrap()]) else {
        return;
    };
    let truth: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (yaml, metrics) = suggest_and_count(&log, &[]);
    let levels: BTreeMap<String, f64> = truth["levels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                series("api_log_records_total", &[("level", k)]),
                v.as_f64().unwrap(),
            )
        })
        .collect();
    assert_counts(&metrics, "api_log_records_total", &levels, &yaml);
    let status: BTreeMap<String, f64> = truth["status"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let (m, s) = k.split_once(' ').unwrap();
            (
                series("api_requests_total", &[("method", m), ("status", s)]),
                v.as_f64().unwrap(),
            )
        })
        .collect();
    assert_counts(&metrics, "api_requests_total", &status, &yaml);
    assert_eq!(
        value_in(&metrics, "api_duration_seconds_count"),
        truth["n"].as_f64(),
        "{yaml}"
    );
    let sum = value_in(&metrics, "api_duration_seconds_sum").unwrap();
    let want = truth["total_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (sum - want).abs() < 1e-9 * want.max(1.0),
        "{sum} != {want}\n{yaml}"
    );
}

/// Prometheus' own log (logfmt, go-kit), written by a real Prometheus started and stopped
/// here: records by level.
#[test]
fn suggest_on_prometheus_own_log() {
    if !Path::new("/usr/bin/prometheus").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is required in CI"
        );
        eprintln!("prometheus not installed; skipping");
        return;
    }
    let dir = tempdir();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global: {scrape_interval: 1s}\nscrape_configs: []\n",
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let mut child = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("Prometheus to be ready", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Server is ready to receive web requests.")
    });
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let (yaml, metrics) = suggest_and_count(&log, &[]);
    assert!(yaml.contains("logfmt:"), "{yaml}");
    let mut want = BTreeMap::new();
    for line in text.lines() {
        let level = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("level="))
            .unwrap();
        *want
            .entry(series("prometheus_log_records_total", &[("level", level)]))
            .or_insert(0.0) += 1.0;
    }
    assert_counts(&metrics, "prometheus_log_records_total", &want, &yaml);
}

/// util-linux `logger` writes RFC 3164 and RFC 5424 lines (as it sends them): messages by
/// program.
#[test]
fn suggest_on_syslog_lines_from_logger() {
    if !Path::new("/usr/bin/logger").exists() {
        eprintln!("logger not installed; skipping");
        return;
    }
    for (rfc, file) in [("--rfc3164", "messages"), ("--rfc5424", "syslog5424")] {
        let dir = tempdir();
        let log = dir.path().join(file);
        let mut text = String::new();
        let mut want = BTreeMap::new();
        for i in 0..24 {
            let tag = ["sshd", "cron", "kernel"][i % 3];
            let out = Command::new("/usr/bin/logger")
                .args([
                    rfc,
                    "--no-act",
                    "--stderr",
                    "-n",
                    "127.0.0.1",
                    "-P",
                    "9",
                    "-d",
                    "-t",
                    tag,
                ])
                .arg(format!("message {i}: something happened"))
                .output()
                .unwrap();
            text.push_str(&String::from_utf8(out.stderr).unwrap());
            *want
                .entry(series("syslog_messages_total", &[("program", tag)]))
                .or_insert(0.0) += 1.0;
        }
        std::fs::write(&log, &text).unwrap();
        let (yaml, metrics) = suggest_and_count(&log, &["--prefix=syslog"]);
        assert!(yaml.contains("grok:"), "{yaml}");
        assert_counts(&metrics, "syslog_messages_total", &want, &yaml);
    }
}

/// Java's own stack traces (java.util.logging's two-line records, `Caused by:` chains):
/// exceptions by class and root cause, as the program counted them.
#[test]
fn suggest_on_java_logging_with_caused_by() {
    if !Path::new("/usr/bin/java").exists() {
        assert!(std::env::var_os("CI").is_none(), "java is required in CI");
        eprintln!("java not installed; skipping");
        return;
    }
    let dir = tempdir();
    let source = dir.path().join("Main.java");
    std::fs::write(
        &source,
        r#"
import java.util.logging.*;
import java.util.*;
public class Main {
    public static void main(String[] args) throws Exception {
        Logger log = Logger.getLogger("shop");
        FileHandler h = new FileHandler(args[0]);
        h.setFormatter(new SimpleFormatter());
        log.setUseParentHandlers(false);
        log.addHandler(h);
        Map<String, Integer> counts = new TreeMap<>();
        for (int i = 0; i < 40; i++) {
            if (i % 6 == 2) {
                try {
                    try { Objects.requireNonNull(null, "order " + i); }
                    catch (NullPointerException e) {
                        if (i % 4 == 0) throw new IllegalStateException("order " + i + " failed", e);
                        throw new java.io.UncheckedIOException(new java.io.IOException("disk", e));
                    }
                } catch (RuntimeException e) {
                    log.log(Level.SEVERE, "request " + i + " failed", e);
                    Throwable root = e; while (root.getCause() != null) root = root.getCause();
                    counts.merge(e.getClass().getName() + " " + root.getClass().getName(), 1, Integer::sum);
                }
            } else {
                log.info("request " + i + " done");
            }
        }
        h.close();
        for (Map.Entry<String, Integer> c : counts.entrySet()) System.out.println(c.getKey() + " " + c.getValue());
    }
}
"#,
    )
    .unwrap();
    let log = dir.path().join("shop.log");
    let out = Command::new("/usr/bin/java")
        .arg(&source)
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        want.insert(
            series(
                "shop_exceptions_total",
                &[("exception", parts[0]), ("cause", parts[1])],
            ),
            parts[2].parse::<f64>().unwrap(),
        );
    }
    let (yaml, metrics) = suggest_and_count(&log, &[]);
    assert!(yaml.contains("Caused by"), "{yaml}");
    assert_counts(&metrics, "shop_exceptions_total", &want, &yaml);
    let severe = value_in(&metrics, r#"shop_log_records_total{level="SEVERE"}"#);
    assert_eq!(severe, Some(want.values().sum::<f64>()), "{yaml}");
}
