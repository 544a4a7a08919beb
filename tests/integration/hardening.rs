//! Hostile upstreams, documents, configs and environments: no wrong series, no crash, no hang.
//! Each test guards one way the exporter failed before (see its comment).

use std::process::{Command, Stdio};

use crate::common::*;
use crate::upstream::{Reply, Upstream};

fn source_errors(exporter: &Exporter, source: &str, reason: &str) -> f64 {
    exporter
        .value(&format!(
            r#"quarry_source_errors_total{{reason="{reason}",source="{source}"}}"#
        ))
        .unwrap_or(0.0)
}

/// Before: a `status_file` that is a FIFO blocked its task forever, a command with a long
/// timeout held SIGTERM for its whole timeout, and `POST /-/reload` waited for both.
#[test]
fn stuck_page_sources_never_block_reload_or_shutdown() {
    let dir = tempdir();
    let fifo = dir.path().join("status.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let hang = Upstream::start();
    hang.route("/slow", Reply::Hang);
    // A duration unique to this run, to find its process (and no leftover of another run).
    let marker = format!("3601.{}", std::process::id());
    let config = format!(
        r#"version: 1
metrics:
  - {{name: value, type: gauge, help: A value.}}
sources:
  - name: fifo
    status_file: {{path: status.fifo, interval: 1s}}
    rules: [{{regex: '(?P<v>\d+)', update: [{{metric: value, set: $v}}]}}]
  - name: slow_command
    command: {{argv: [sleep, "{marker}"], timeout: 120s, interval: 1s}}
    rules: [{{regex: '(?P<v>\d+)', update: [{{metric: value, set: $v}}]}}]
  - name: slow_http
    http: {{url: "http://127.0.0.1:{}/slow", timeout: 120s, interval: 1s}}
    rules: [{{regex: '(?P<v>\d+)', update: [{{metric: value, set: $v}}]}}]
"#,
        hang.port
    );
    let sleeping = format!("sleep {marker}");
    std::fs::write(dir.path().join("exporter.yaml"), &config).unwrap();
    let exporter = Exporter::start_with(
        &dir.path().join("exporter.yaml"),
        &["--web.enable-lifecycle"],
    );
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="read",source="fifo"}"#,
        1.0,
    );
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("is not a regular file (a FIFO)"), "{page}");
    // The command is running (its fetch in flight) when the reload comes.
    let start = std::time::Instant::now();
    while !process_running(&sleeping) {
        assert!(start.elapsed() < WAIT, "the command never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, body) = post(exporter.port, "/-/reload");
    assert_eq!((status, body.as_str()), (200, "Reloaded.\n"));
    // The reload abandoned the old fetch: its command is gone with it.
    let start = std::time::Instant::now();
    while process_running(&sleeping) && start.elapsed() < WAIT {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(exporter
        .scrape()
        .contains("quarry_source_up{source=\"fifo\"} 0"));
    let status = exporter.terminate();
    assert!(status.success(), "{status:?}");
    // SIGKILL is delivered asynchronously: give the kernel a moment to finish it off.
    let start = std::time::Instant::now();
    while process_running(&sleeping) {
        assert!(start.elapsed() < WAIT, "a command outlived the exporter");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Before: 100,000 nested elements took minutes in html5ever (quadratic), deep XML recursed;
/// a slow parse or query held the page task (and with it reload and shutdown).
#[test]
fn documents_too_deep_or_too_slow_to_parse_are_abandoned() {
    let dir = tempdir();
    let deep_html = format!("<html><body>{}x</body></html>", "<div>".repeat(100_000));
    let deep_xml = format!("{}x{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let deep_json = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    // Neither deep nor big (200 KB, read in well under a millisecond), but its query is
    // quadratic: far longer than the 300 ms this source allows.
    let slow_xml = format!("<r>{}</r>", "<a>1</a>".repeat(20_000));
    std::fs::write(dir.path().join("slow.xml"), slow_xml).unwrap();
    let up = Upstream::start();
    up.route("/deep.html", Reply::Ok("text/html", deep_html));
    up.route("/deep.xml", Reply::Ok("text/xml", deep_xml));
    up.route("/deep.json", Reply::Ok("application/json", deep_json));
    let port = up.port;
    let config = format!(
        r#"version: 1
metrics:
  - {{name: value, type: gauge, help: A value.}}
sources:
  - name: deep_html
    http: {{url: "http://127.0.0.1:{port}/deep.html", interval: 1s}}
    rules: [{{html: {{fields: {{v: div}}}}, update: [{{metric: value, set: $v}}]}}]
  - name: deep_xml
    http: {{url: "http://127.0.0.1:{port}/deep.xml", interval: 1s}}
    rules: [{{xml: {{fields: {{v: "string(/a)"}}}}, update: [{{metric: value, set: $v}}]}}]
  - name: deep_json
    http: {{url: "http://127.0.0.1:{port}/deep.json", interval: 1s}}
    rules: [{{json: {{fields: {{v: "$[0]"}}}}, update: [{{metric: value, set: $v}}]}}]
  - name: slow_xml
    status_file: {{path: slow.xml, interval: 1s, timeout: 300ms}}
    rules: [{{xml: {{for_each: "//a[count(preceding::a) > 19998]", fields: {{v: "."}}}}, update: [{{metric: value, set: $v}}]}}]
"#
    );
    let exporter = Exporter::start(dir.path(), &config);
    for source in ["deep_html", "deep_xml", "deep_json"] {
        exporter.wait_at_least(
            &format!(r#"quarry_source_errors_total{{reason="parse",source="{source}"}}"#),
            1.0,
        );
    }
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="timeout",source="slow_xml"}"#,
        1.0,
    );
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("elements nest deeper than 512 levels"),
        "{page}"
    );
    assert!(
        page.contains("parsing the document took longer than 300ms"),
        "{page}"
    );
    assert_eq!(source_errors(&exporter, "deep_html", "timeout"), 0.0);
    assert!(exporter.terminate().success());
}

/// Before: JSONPath, XPath and CSS nested 20,000 deep aborted `check` with a stack overflow
/// (exit 134); an XPath of 1,200 nested parens passed `check` and aborted the server at its
/// first fetch; a huge regex took a gigabyte to reject.
#[test]
fn deep_expressions_and_huge_regexes_are_positioned_config_errors() {
    let dir = tempdir();
    let nested = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let config = [
        "version: 1".to_owned(),
        "metrics: [{name: x, type: gauge, help: X.}]".to_owned(),
        "sources:".to_owned(),
        "  - name: api".to_owned(),
        "    status_file: {path: s.json}".to_owned(),
        format!(
            "    rules: [{{json: {{fields: {{v: \"$[?{}]\"}}}}, update: [{{metric: x, set: $v}}]}}]",
            nested("(", "@.a", ")", 20_000)
        ),
        "  - name: soap".to_owned(),
        "    status_file: {path: s.xml}".to_owned(),
        format!(
            "    rules: [{{xml: {{for_each: \"{}\", fields: {{v: \"{}1\"}}}}, update: [{{metric: x, set: $v}}]}}]",
            nested("(", "/a", ")", 1_200),
            "-".repeat(3_000)
        ),
        "  - name: page".to_owned(),
        "    status_file: {path: s.html}".to_owned(),
        format!(
            "    rules: [{{html: {{for_each: \"tr{}\", fields: {{v: \"{}\"}}}}, update: [{{metric: x, set: $v}}]}}]",
            nested(":not(", "td", ")", 20_000),
            nested(":not(", "td", ")", 600)
        ),
        "  - name: log".to_owned(),
        "    file: {paths: [app.log]}".to_owned(),
        format!(
            "    rules: [{{regex: '{}', update: [{{metric: x, set: \"1\"}}]}}]",
            "a".repeat(100_000)
        ),
    ]
    .join("\n");
    std::fs::write(dir.path().join("deep.yaml"), config).unwrap();
    let out = Command::new(binary())
        .current_dir(dir.path())
        .args(["check", "--config.file=deep.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "deep.yaml:6:33: sources[0].rules[0].json.fields.v: JSONPath: expression is 40007 bytes long; the limit is 4096
deep.yaml:9:30: sources[1].rules[0].xml.for_each: XPath: expression nests 1200 levels deep (brackets and unary operators); the limit is 64
deep.yaml:9:2448: sources[1].rules[0].xml.fields.v: XPath: expression nests 3000 levels deep (brackets and unary operators); the limit is 64
deep.yaml:12:31: sources[2].rules[0].html.for_each: CSS selector: expression is 120004 bytes long; the limit is 4096
deep.yaml:12:120051: sources[2].rules[0].html.fields.v: CSS selector: expression nests 600 levels deep (brackets and unary operators); the limit is 64
deep.yaml:15:21: sources[3].rules[0].regex: regex is 100000 bytes long; the limit is 65536
6 errors in deep.yaml
"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Before: a command writing 200 KB to stderr deadlocked (stderr was read only to 64 KiB) and
/// its valid stdout was lost as `timeout`; 1 GB on stdout was reported as `timeout` after the
/// whole timeout instead of `too_large` at once; a daemon started with `setsid -f` survived.
#[test]
fn commands_drain_stderr_fail_fast_at_the_cap_and_leave_nothing_behind() {
    let dir = tempdir();
    let config = r#"version: 1
metrics:
  - {name: value, type: gauge, help: A value., labels: [source]}
sources:
  - name: noisy
    command:
      argv: [sh, -c, 'head -c 200000 /dev/zero | tr "\0" x >&2; echo "value 42"']
      interval: 1s
    rules: [{regex: 'value (?P<v>\d+)', update: [{metric: value, labels: {source: noisy}, set: $v}]}]
  - name: flood
    command: {argv: [yes], timeout: 120s, interval: 1s, max_output_bytes: 1000000}
    rules: [{regex: '(?P<v>\d+)', update: [{metric: value, labels: {source: flood}, set: $v}]}]
  - name: daemon
    command:
      argv: [sh, -c, 'setsid -f sleep 3602.$PPID </dev/null >/dev/null 2>&1; echo "value 7"']
      interval: 1h
    rules: [{regex: 'value (?P<v>\d+)', update: [{metric: value, labels: {source: daemon}, set: $v}]}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    exporter.wait_value(r#"value{source="noisy"}"#, 42.0);
    exporter.wait_value(r#"quarry_source_up{source="noisy"}"#, 1.0);
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="too_large",source="flood"}"#,
        1.0,
    );
    assert_eq!(source_errors(&exporter, "flood", "timeout"), 0.0);
    exporter.wait_value(r#"value{source="daemon"}"#, 7.0);
    let start = std::time::Instant::now();
    // `$PPID` in the command is the exporter's pid: this run's daemon, nobody else's.
    let daemon = format!("sleep 3602.{}", exporter.pid());
    while process_running(&daemon) {
        assert!(
            start.elapsed() < WAIT,
            "the daemon a command detached outlived its fetch"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // No zombie children pile up either.
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let mut f = rest.split(' ');
            f.next() == Some("Z") && f.next() == Some(exporter.pid().to_string().as_str())
        })
        .count();
    assert_eq!(zombies, 0);
    assert!(exporter.terminate().success());
}

/// Before: a command that exited at once could be reaped by the sweep of another command's
/// finished fetch before its own fetch registered it (tokio's wait then failed: "No child
/// processes", reason `read`), or killed by it (`exit_code`, signal 9): about 1 fetch in 100
/// failed with a few command sources on short intervals. Every fetch must succeed.
#[test]
fn concurrent_commands_never_take_each_others_exit_status() {
    let dir = tempdir();
    let mut config = String::from(
        "version: 1\nmetrics:\n  - {name: ticks_total, type: counter, help: Fetches., labels: [source]}\nsources:\n",
    );
    let names = ["a", "b", "c", "d"];
    for name in names {
        config.push_str(&format!(
            "  - name: {name}\n    command: {{argv: [sh, -c, 'echo tick'], interval: 5ms}}\n    rules: [{{regex: tick, update: [{{metric: ticks_total, labels: {{source: {name}}}}}]}}]\n"
        ));
    }
    let exporter = Exporter::start(dir.path(), &config);
    for name in names {
        exporter.wait_at_least(&format!(r#"ticks_total{{source="{name}"}}"#), 300.0);
    }
    let text = exporter.scrape();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("quarry_source_errors_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(exporter.terminate().success());
}

/// Before: with stderr on a full disk the exporter panicked (exit 101) at its next log line.
#[test]
fn a_full_disk_under_stderr_never_stops_the_exporter() {
    let dir = tempdir();
    std::fs::write(dir.path().join("app.log"), "").unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        "version: 1\nmetrics: [{name: lines_total, type: counter, help: Lines.}]\nsources:\n  - name: app\n    file: {paths: [app.log]}\n    rules: [{regex: '.', update: [{metric: lines_total}]}]\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary())
        .arg(format!(
            "--config.file={}",
            dir.path().join("exporter.yaml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=debug")
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let metrics = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            if text.contains("quarry_log_messages_dropped_total") {
                break text;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the exporter died");
        assert!(start.elapsed() < WAIT, "the exporter never served");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let dropped = value_in(&metrics, "quarry_log_messages_dropped_total").unwrap();
    assert!(dropped >= 1.0, "{metrics}");
    // A reload logs a few lines more: still alive afterwards.
    assert!(Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    append(&dir.path().join("app.log"), "one\ntwo\n");
    let start = std::time::Instant::now();
    loop {
        let (_, _, body) = http_get(port, "/metrics", &[]);
        if value_in(&String::from_utf8(body).unwrap(), "lines_total") == Some(2.0) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the exporter died");
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Before: a secret in a URL's query (`?api_key=…`) was shown on the landing page and in logs,
/// and sent as `Referer` to redirect targets.
#[test]
fn secrets_in_query_strings_are_never_shown_or_sent_on() {
    let up = Upstream::start();
    up.route("/start", Reply::Redirect("/target"));
    up.route(
        "/target",
        Reply::Ok("application/json", r#"{"v": 1}"#.into()),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let config = format!(
        r#"version: 1
metrics:
  - {{name: value, type: gauge, help: A value., labels: [source]}}
sources:
  - name: redirected
    http: {{url: "http://127.0.0.1:{port}/start?api_key=SECRET-4711&user=me", interval: 1s}}
    rules: [{{json: {{fields: {{v: "$.v"}}}}, update: [{{metric: value, labels: {{source: redirected}}, set: $v}}]}}]
  - name: missing
    http: {{url: "http://127.0.0.1:{port}/missing?token=SECRET-0815", interval: 1s}}
    rules: [{{json: {{fields: {{v: "$.v"}}}}, update: [{{metric: value, labels: {{source: missing}}, set: $v}}]}}]
  - name: refused
    http: {{url: "http://127.0.0.1:{closed}/x?token=SECRET-0909", interval: 1s}}
    rules: [{{json: {{fields: {{v: "$.v"}}}}, update: [{{metric: value, labels: {{source: refused}}, set: $v}}]}}]
"#,
        port = up.port
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"value{source="redirected"}"#, 1.0);
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="http_status",source="missing"}"#,
        1.0,
    );
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="connect",source="refused"}"#,
        1.0,
    );
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("api_key=***&amp;user=***"), "{page}");
    assert!(!page.contains("SECRET-"), "{page}");
    let log = exporter.log_text();
    assert!(log.contains("token=***"), "{log}");
    assert!(!log.contains("SECRET-"), "{log}");
    let seen = up.seen.lock().unwrap().clone();
    let target = seen
        .iter()
        .find(|(p, _)| p == "/target")
        .expect("the redirect was followed");
    assert!(
        target.1.iter().all(|(k, _)| k != "referer"),
        "Referer sent to the redirect target: {:?}",
        target.1
    );
}

/// Before: a FIFO matched by a file source's glob was only a landing-page note that said "a
/// directory, FIFO, socket or device"; nothing was logged or counted. Now the note, a warning
/// (once) and `quarry_source_paths_not_read{reason}` say which, and the other files are read.
#[test]
fn a_fifo_matched_by_a_glob_says_why_it_is_not_read() {
    let dir = tempdir();
    let fifo = dir.path().join("b.log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::write(dir.path().join("a.log"), "one\ntwo\n").unwrap();
    let exporter = Exporter::start(
        dir.path(),
        r#"version: 1
metrics:
  - {name: lines_total, type: counter, help: Lines.}
sources:
  - name: app
    file: {paths: ["*.log"], start_at: beginning, poll_interval: 100ms}
    rules: [{regex: '.', update: [{metric: lines_total}]}]
"#,
    );
    exporter.wait_value("lines_total", 2.0);
    exporter.wait_value(
        r#"quarry_source_paths_not_read{reason="fifo",source="app"}"#,
        1.0,
    );
    let why = format!(
        "{} is not read: it is a FIFO, not a regular file",
        fifo.display()
    );
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(&why), "{page}");
    // Said once, however many scans see it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = exporter.log_text();
    assert_eq!(log.matches(&why).count(), 1, "{log}");
    std::fs::remove_file(&fifo).unwrap();
    exporter.wait_value(
        r#"quarry_source_paths_not_read{reason="fifo",source="app"}"#,
        0.0,
    );
}
