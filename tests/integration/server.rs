//! The HTTP surface: exact Content-Type, gzip, endpoints, methods, landing page, SIGTERM,
//! and `promtool check metrics` on the real output.

use std::io::Read;
use std::process::Command;

use crate::common::*;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn metrics_have_the_exact_content_type_and_gzip_when_asked() {
    let shipped = Shipped::copy();
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    exporter.wait_value(
        r#"quarry_rule_matches_total{rule="request",source="web_access"}"#,
        shipped.access_lines(),
    );
    let (status, headers, plain) = exporter.get("/metrics", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(header(&headers, "content-encoding"), None);
    let (status, headers, zipped) =
        exporter.get("/metrics", &[("Accept-Encoding", "gzip, deflate")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    let text = String::from_utf8(plain).unwrap();
    // Two scrapes differ only in process_* readings; the extracted metrics are the same.
    let stable = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("web_") || l.starts_with("app_"))
            .map(String::from)
            .collect()
    };
    assert_eq!(stable(&text), stable(&unzipped));
    assert!(text.contains("quarry_build_info{"));
    assert!(text.contains(r#"web_requests_total{method="GET",status="200"}"#));
    assert!(text.contains("process_resident_memory_bytes"));
}

#[test]
fn health_readiness_landing_page_and_errors() {
    let shipped = Shipped::copy();
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    let (s, _, body) = exporter.get("/-/healthy", &[]);
    assert_eq!(
        (s, String::from_utf8(body).unwrap().as_str()),
        (200, "Healthy.\n")
    );
    // Ready once every source has done its first scan.
    let start = std::time::Instant::now();
    while exporter.get("/-/ready", &[]).0 != 200 {
        assert!(start.elapsed() < WAIT, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The page shows the latest snapshot of each source; wait for the one after the first read.
    let want = format!(
        "<td>request</td><td class=\"num\">{}</td>",
        shipped.access_lines()
    );
    let page = loop {
        let (s, headers, body) = exporter.get("/", &[]);
        assert_eq!(s, 200);
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let page = String::from_utf8(body).unwrap();
        if page.contains(&want) {
            break page;
        }
        assert!(
            start.elapsed() < WAIT,
            "landing page never showed {want}:\n{page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        page.contains("web_access") && page.contains("examples/logs/access.log"),
        "{page}"
    );
    assert!(page.contains("following"), "{page}");
    let (s, _, _) = exporter.get("/nope", &[]);
    assert_eq!(s, 404);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    use std::io::Write;
    stream
        .write_all(b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.0 405"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("allow: get, head"),
        "{raw}"
    );
}

#[test]
fn a_custom_telemetry_path_and_two_listen_addresses() {
    let shipped = Shipped::copy();
    let exporter = Exporter::start_with(
        &shipped.config(),
        &[
            "--web.telemetry-path=/custom",
            "--web.listen-address=127.0.0.1:0",
        ],
    );
    assert_eq!(exporter.get("/custom", &[]).0, 200);
    assert_eq!(exporter.get("/metrics", &[]).0, 404);
    let log = exporter.log_text();
    assert_eq!(
        log.matches("msg=\"Listening on\" address=").count(),
        2,
        "{log}"
    );
}

#[test]
fn sigterm_exits_cleanly() {
    let shipped = Shipped::copy();
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    exporter.wait_value(r#"quarry_source_files{source="app"}"#, 1.0);
    let log = exporter.log.clone();
    let status = exporter.terminate();
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        log.lock().unwrap().join("\n")
    );
}

#[test]
fn a_port_in_use_is_a_clear_startup_error() {
    let shipped = Shipped::copy();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(binary())
        .arg(format!("--config.file={}", shipped.config().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

/// `promtool check metrics` (Debian's `prometheus` package) on what the exporter serves.
/// Skipped when promtool is missing outside CI; CI installs it, so there it must run.
#[test]
fn promtool_accepts_the_exposition() {
    let shipped = Shipped::copy();
    let promtool = Command::new("promtool").arg("--version").output();
    if promtool.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required in CI"
        );
        eprintln!("promtool not installed; skipping");
        return;
    }
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    exporter.wait_value(
        r#"quarry_rule_matches_total{rule="request",source="web_access"}"#,
        shipped.access_lines(),
    );
    assert_promtool_accepts(&exporter.scrape());
}

#[test]
fn the_series_cap_keeps_memory_bounded_under_unbounded_label_values() {
    let dir = tempdir();
    let config = r#"version: 1
metrics:
  - {name: by_user_total, type: counter, help: Events by user., labels: [user], max_series: 100}
sources:
  - name: logs
    file: {paths: ["u.log"], start_at: beginning}
    rules:
      - regex: 'user=(?P<user>\S+)'
        update: [{metric: by_user_total, labels: {user: $user}}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    let text: String = (0..50_000).map(|i| format!("user=u{i}\n")).collect();
    append(&dir.path().join("u.log"), text);
    exporter.wait_value(
        r#"quarry_series_dropped_total{metric="by_user_total"}"#,
        49_900.0,
    );
    assert_eq!(
        exporter.value(r#"quarry_series{metric="by_user_total"}"#),
        Some(100.0)
    );
    let scrape = exporter.scrape();
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("by_user_total{"))
            .count(),
        100
    );
}

#[test]
fn a_slow_client_cannot_hold_a_connection() {
    let shipped = Shipped::copy();
    use std::io::Write;
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // Headers that never finish: the server closes after its header read timeout (10 s).
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let closed = stream.read_to_end(&mut buf).is_ok();
    assert!(
        closed && start.elapsed() < WAIT,
        "the connection was held open: {:?}",
        start.elapsed()
    );
    // And the exporter still serves.
    assert_eq!(exporter.get("/-/healthy", &[]).0, 200);
}

/// `--version` as Prometheus components print it: version, branch and revision on the first
/// line, then build user, build date, rustc version and platform; no config is read.
#[test]
fn version_prints_build_facts_like_prometheus_components() {
    let out = Command::new(binary())
        .args(["--version", "--config.file=/nonexistent.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let pattern = regex::Regex::new(
        r"^quarry_exporter, version (\d+\.\d+\.\d+) \(branch: (\S+), revision: ([0-9a-f]{12}|unknown)\)
  build user:       \S+
  build date:       \d{8}-\d{2}:\d{2}:\d{2}
  rustc version:    (\d+\.\d+\.\d+\S*)
  platform:         linux/(amd64|arm64)( \(\w+\))?
$",
    )
    .unwrap();
    let caps = pattern
        .captures(&text)
        .unwrap_or_else(|| panic!("unexpected --version output:\n{text}"));
    assert_eq!(&caps[1], env!("CARGO_PKG_VERSION"));
    // Built from this checkout: the revision is its HEAD.
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        if head.status.success() {
            assert_eq!(&caps[3], String::from_utf8_lossy(&head.stdout).trim());
        }
    }
    // The same facts as quarry_build_info.
    let short = Command::new(binary()).arg("-V").output().unwrap();
    assert_eq!(String::from_utf8(short.stdout).unwrap(), text);
    let rustc = Command::new("rustc").arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&rustc.stdout).contains(&caps[4]));
}

/// `--log.format=json`: every stderr line is a JSON object with `ts`, `level` and `msg`, fields
/// as keys (numbers as numbers); the default, logfmt, is what the harness reads everywhere.
#[test]
fn log_format_json_writes_one_object_per_line() {
    use std::io::BufRead;
    let shipped = Shipped::copy();
    let mut child = Command::new(binary())
        .arg(format!("--config.file={}", shipped.config().display()))
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--log.format=json",
            "--log.level=debug",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
        assert!(
            matches!(
                v["level"].as_str(),
                Some("debug" | "info" | "warn" | "error")
            ),
            "{line}"
        );
        assert!(v["msg"].is_string(), "{line}");
        let done = v["msg"] == "quarry_exporter started";
        seen.push(v);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let listening = seen
        .iter()
        .find(|v| v["msg"] == "Listening on")
        .expect("a Listening on line");
    assert!(listening["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let limits = seen.iter().find(|v| v["msg"] == "open files").unwrap();
    assert!(limits["open_file_limit"].is_u64(), "{limits}");
}

/// What failed is visible: the landing page shows, per rule and reason, the text of the last
/// failure (escaped, bounded) and the latest lines no rule matched; `--log.level debug` logs
/// every failed update with its source, rule, metric, reason and text.
#[test]
fn failing_texts_and_unmatched_lines_are_shown_and_logged() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(
        d.join("s.json"),
        r#"{"c": {"a": {"status": "OK", "latency": "5ms"}, "b": {"status": "MAINT until 12", "latency": "0Current active connections:0"}}}"#,
    )
    .unwrap();
    let long = "x".repeat(1000);
    let mut log =
        String::from("level=info bytes=12\nlevel=warn bytes=twelve\nlevel=error bytes=-3\n");
    for i in 0..7 {
        log.push_str(&format!("unmatched <b>{i}</b>\n"));
    }
    log.push_str(&format!("{long}\n"));
    std::fs::write(d.join("app.log"), log).unwrap();
    let exporter = Exporter::start(
        d,
        r#"version: 1
metrics:
  - {name: comp_state, type: state, help: x, labels: [c], states: [up, down]}
  - {name: comp_latency, type: gauge, help: x, labels: [c]}
  - {name: lines_total, type: counter, help: x, labels: [level]}
  - {name: bytes_total, type: counter, help: x}
sources:
  - name: status
    status_file: {path: s.json}
    rules:
      - name: comp
        json: {for_each: "$.c.*", fields: {c: "@key", s: "@.status", l: "@.latency"}}
        update:
          - {metric: comp_state, labels: {c: $c}, state: $s, map: {"OK": up, "DOWN*": down}}
          - {metric: comp_latency, labels: {c: $c}, set: $l, as: duration}
  - name: log
    file: {paths: [app.log], start_at: beginning}
    rules:
      - name: level
        regex: 'level=(?P<level>\w+) bytes=(?P<b>\S+)'
        update:
          - {metric: lines_total, labels: {level: $level}}
          - {metric: bytes_total, add: $b}
"#,
    );
    exporter.wait_value(r#"quarry_source_unmatched_lines_total{source="log"}"#, 8.0);
    exporter.wait_value(r#"quarry_source_up{source="status"}"#, 1.0);
    let cut = format!("<code>{}…</code>", "x".repeat(240));
    let wants = [
        "<code>value_not_a_number</code> <code class=\"err\">0Current active connections:0</code>",
        "<code>unmapped_value</code> <code class=\"err\">MAINT until 12</code>",
        "<code>value_not_a_number</code> <code class=\"err\">twelve</code>",
        "<code>negative_counter_increment</code> <code class=\"err\">-3</code>",
        "<code>unmatched &lt;b&gt;6&lt;/b&gt;</code>",
        cut.as_str(),
    ];
    let deadline = std::time::Instant::now() + WAIT;
    let page = loop {
        let (_, _, body) = exporter.get("/", &[]);
        let page = String::from_utf8(body).unwrap();
        if wants.iter().all(|w| page.contains(w)) {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {:?} in\n{page}",
            wants.iter().find(|w| !page.contains(*w))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The five latest unmatched lines, not the older ones.
    assert!(!page.contains("unmatched &lt;b&gt;2&lt;/b&gt;"), "{page}");
    assert!(page.contains("unmatched &lt;b&gt;3&lt;/b&gt;"), "{page}");
    let log = exporter.log_text();
    for want in [
        "msg=\"update failed\" source=log rule=level metric=bytes_total reason=value_not_a_number text=twelve",
        "msg=\"update failed\" source=status rule=comp metric=comp_state reason=unmapped_value text=\"MAINT until 12\"",
    ] {
        assert!(log.contains(want), "{want} not in\n{log}");
    }
}

/// CPU time of `pid` in clock ticks (utime + stime of /proc/PID/stat, fields 14 and 15,
/// counted after the command name's closing parenthesis).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `process_cpu_seconds_total` has the kernel's precision (one clock tick, 0.01 s), as the Go
/// client's: it lies between two reads of /proc/PID/stat made around the scrape. (The
/// prometheus crate's collector counted whole seconds: 0 until the first full second.)
#[test]
fn process_cpu_seconds_have_tick_precision() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let exporter = Exporter::start(
        dir.path(),
        r#"version: 1
metrics:
  - {name: events_total, type: counter, help: Events., labels: [kind]}
sources:
  - name: logs
    file: {paths: [app.log], poll_interval: 100ms}
    rules:
      - name: event
        regex: '^(?P<kind>\w+) (?P<n>\d+)$'
        update: [{metric: events_total, labels: {kind: $kind}}]
"#,
    );
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let pid = exporter.pid();
    // Work until the exporter's CPU time is not a whole number of seconds (where whole seconds
    // and ticks would agree).
    let mut read = 0;
    let before = loop {
        let before = cpu_ticks(pid);
        if before > 0 && !before.is_multiple_of(hz as u64) {
            break before;
        }
        append(&log, lines("a", read, 20_000));
        read += 20_000;
        exporter.wait_value(r#"events_total{kind="a"}"#, read as f64);
    };
    let exported = exporter.value("process_cpu_seconds_total").unwrap();
    let after = cpu_ticks(pid);
    // Rounded: 0.07 × 100 is 7.000000000000001 in floating point.
    let ticks = (exported * hz).round();
    assert!(
        before as f64 <= ticks && ticks <= after as f64,
        "process_cpu_seconds_total {exported} is not between /proc's {} and {} s",
        before as f64 / hz,
        after as f64 / hz
    );
}
