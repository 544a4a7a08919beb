//! Page sources against real HTTP servers on loopback (hyper, TLS with a certificate made in
//! the test) and real commands: every format, auth, SOAP, and each failure with its reason
//! while everything else is still served.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::upstream::{test_mtls, test_tls, Reply, Upstream};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(path),
    )
    .unwrap()
}

const METRICS: &str = r#"version: 1
metrics:
  - {name: lb_server_state, type: state, help: Server state., labels: [server], states: [up, degraded, maintenance, down]}
  - {name: service_latency_seconds, type: gauge, help: Latency., labels: [service]}
  - {name: queue_messages, type: gauge, help: Messages., labels: [queue]}
  - {name: component_ok, type: gauge, help: Component OK., labels: [component]}
  - {name: auth_value, type: gauge, help: Behind auth., labels: [how]}
"#;

fn html_rule() -> &'static str {
    r#"    rules:
      - html:
          for_each: "table.servers tr.server"
          fields: {server: "td:nth-child(1)", status: "td:nth-child(2)"}
        update:
          - {metric: lb_server_state, labels: {server: $server}, state: $status, map: {"UP": up, "UP *": degraded, "MAINT*": maintenance, "DOWN*": down}, default: degraded}
"#
}

fn json_rule() -> &'static str {
    r#"    rules:
      - json:
          for_each: "$.services.*"
          fields: {service: "@key", latency: "@.latency"}
        update:
          - {metric: service_latency_seconds, labels: {service: $service}, set: $latency, as: duration}
"#
}

fn soap_rule() -> &'static str {
    r#"    rules:
      - xml:
          namespaces: {soap: "http://schemas.xmlsoap.org/soap/envelope/", b: "urn:example:broker"}
          for_each: "/soap:Envelope/soap:Body/b:GetQueuesResponse/b:Queue"
          fields: {name: "b:Name", messages: "b:Messages"}
        update:
          - {metric: queue_messages, labels: {queue: $name}, set: $messages}
"#
}

fn auth_rule(how: &str) -> String {
    format!(
        r#"    rules:
      - json: {{fields: {{v: "$.value"}}}}
        update:
          - {{metric: auth_value, labels: {{how: {how}}}, set: $v}}
"#
    )
}

fn source(name: &str, http: &str, rules: &str) -> String {
    format!("  - name: {name}\n    http: {{{http}, interval: 200ms, timeout: 500ms}}\n{rules}")
}

fn up(name: &str) -> String {
    format!(r#"quarry_source_up{{source="{name}"}}"#)
}

fn errors(name: &str, reason: &str) -> String {
    format!(r#"quarry_source_errors_total{{reason="{reason}",source="{name}"}}"#)
}

#[test]
fn every_format_auth_soap_and_every_failure_with_its_reason() {
    let server = Upstream::start();
    server.route(
        "/status.html",
        Reply::Ok("text/html", fixture("html_status_table/stats.html")),
    );
    server.route(
        "/health",
        Reply::Ok("application/json", fixture("json_api/health.json")),
    );
    server.route(
        "/soap",
        Reply::Soap(
            "urn:example:broker/GetQueues",
            fixture("soap_response/response.xml"),
        ),
    );
    server.route("/hang", Reply::Hang);
    server.route("/error", Reply::Status(500));
    server.route("/big", Reply::Ok("text/html", "x".repeat(100_000)));
    server.route(
        "/malformed",
        Reply::Ok("application/json", "{\"services\": {".into()),
    );
    server.route(
        "/empty",
        Reply::Ok(
            "text/html",
            "<html><body>maintenance page</body></html>".into(),
        ),
    );
    server.route(
        "/basic",
        Reply::BasicAuth("monitor", "s3cret", r#"{"value": 7}"#.into()),
    );
    server.route(
        "/bearer",
        Reply::Bearer("tok-123", r#"{"value": 9}"#.into()),
    );
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let dir = tempdir();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("wrong-password"), "guess\n").unwrap();
    std::fs::write(dir.path().join("token"), "tok-123").unwrap();
    std::fs::write(dir.path().join("envelope.xml"), r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetQueues xmlns="urn:example:broker"/></soap:Body></soap:Envelope>"#).unwrap();
    let u = |p: &str| server.url("http", p);
    let soap_http = format!(
        r#"url: "{}", method: POST, headers: {{SOAPAction: "urn:example:broker/GetQueues", Content-Type: "text/xml; charset=utf-8"}}, body_file: envelope.xml"#,
        u("/soap")
    );
    let config = [
        METRICS.to_owned(),
        "sources:\n".into(),
        source(
            "html",
            &format!(r#"url: "{}""#, u("/status.html")),
            html_rule(),
        ),
        source("json", &format!(r#"url: "{}""#, u("/health")), json_rule()),
        source("soap", &soap_http, soap_rule()),
        source(
            "soap_without_action",
            &format!(
                r#"url: "{}", method: POST, body_file: envelope.xml"#,
                u("/soap")
            ),
            soap_rule(),
        ),
        source("hang", &format!(r#"url: "{}""#, u("/hang")), json_rule()),
        source("error", &format!(r#"url: "{}""#, u("/error")), json_rule()),
        source(
            "refused",
            &format!(r#"url: "http://127.0.0.1:{closed_port}/x""#),
            json_rule(),
        ),
        source(
            "dns",
            r#"url: "http://no-such-host.invalid/x""#,
            json_rule(),
        ),
        source(
            "big",
            &format!(r#"url: "{}", max_body_bytes: 1000"#, u("/big")),
            html_rule(),
        ),
        source(
            "malformed",
            &format!(r#"url: "{}""#, u("/malformed")),
            json_rule(),
        ),
        source(
            "no_match",
            &format!(r#"url: "{}""#, u("/empty")),
            html_rule(),
        ),
        source(
            "basic",
            &format!(
                r#"url: "{}", basic_auth: {{username: monitor, password_file: password}}"#,
                u("/basic")
            ),
            &auth_rule("basic"),
        ),
        source(
            "basic_wrong",
            &format!(
                r#"url: "{}", basic_auth: {{username: monitor, password_file: wrong-password}}"#,
                u("/basic")
            ),
            &auth_rule("basic_wrong"),
        ),
        source(
            "bearer",
            &format!(r#"url: "{}", bearer_token_file: token"#, u("/bearer")),
            &auth_rule("bearer"),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);

    // What works, works.
    exporter.wait_value(r#"lb_server_state{server="web3",state="maintenance"}"#, 1.0);
    exporter.wait_value(r#"lb_server_state_level{server="web4"}"#, 3.0);
    exporter.wait_value(r#"service_latency_seconds{service="search"}"#, 1.5);
    exporter.wait_value(r#"queue_messages{queue="orders"}"#, 1532.0);
    exporter.wait_value(r#"auth_value{how="basic"}"#, 7.0);
    exporter.wait_value(r#"auth_value{how="bearer"}"#, 9.0);
    for name in ["html", "json", "soap", "basic", "bearer"] {
        exporter.wait_value(&up(name), 1.0);
    }
    // Each failure says why, and the scrape as a whole is served.
    for (name, reason) in [
        ("soap_without_action", "http_status"),
        ("hang", "timeout"),
        ("error", "http_status"),
        ("refused", "connect"),
        ("dns", "dns"),
        ("big", "too_large"),
        ("malformed", "parse"),
        ("no_match", "no_match"),
        ("basic_wrong", "http_status"),
    ] {
        exporter.wait_at_least(&errors(name, reason), 1.0);
        assert_eq!(exporter.value(&up(name)), Some(0.0), "{name}");
    }
    assert_eq!(exporter.value(r#"auth_value{how="basic_wrong"}"#), None);
    // A slow upstream never delays /metrics: scrapes go on while `hang` waits for its timeout.
    let start = Instant::now();
    for _ in 0..5 {
        exporter.scrape();
    }
    assert!(start.elapsed() < WAIT);
    // The landing page shows each page source's last fetch.
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("HTTP 200") && page.contains("timeout: "),
        "{page}"
    );
}

#[test]
fn a_soap_fault_is_its_own_reason() {
    let server = Upstream::start();
    // A service that answers 200 with a Fault (some do), accepted by status code.
    server.route("/fault", Reply::Ok("text/xml", r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Backend unavailable</faultstring></soap:Fault></soap:Body></soap:Envelope>"#.into()));
    let dir = tempdir();
    let config = format!(
        "{METRICS}sources:\n{}",
        source(
            "soap",
            &format!(r#"url: "{}""#, server.url("http", "/fault")),
            soap_rule()
        )
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_at_least(&errors("soap", "soap_fault"), 1.0);
    assert_eq!(exporter.value(&up("soap")), Some(0.0));
    let (_, _, page) = exporter.get("/", &[]);
    assert!(String::from_utf8(page)
        .unwrap()
        .contains("Backend unavailable"));
}

#[test]
fn a_failed_fetch_keeps_the_last_values_and_sets_up_to_0() {
    let server = Upstream::start();
    server.route(
        "/health",
        Reply::Ok("application/json", fixture("json_api/health.json")),
    );
    let dir = tempdir();
    let config = format!(
        "{METRICS}sources:\n{}",
        source(
            "json",
            &format!(r#"url: "{}""#, server.url("http", "/health")),
            json_rule()
        )
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"service_latency_seconds{service="api"}"#, 0.012);
    exporter.wait_value(&up("json"), 1.0);
    let success = exporter
        .value(r#"quarry_source_last_success_timestamp_seconds{source="json"}"#)
        .unwrap();
    assert!(success > 1.7e9, "{success}");
    server.route("/health", Reply::Status(503));
    exporter.wait_at_least(&errors("json", "http_status"), 1.0);
    exporter.wait_value(&up("json"), 0.0);
    // Documented policy: the series keep their last values; `up` and the last success time
    // tell how old they are.
    assert_eq!(
        exporter.value(r#"service_latency_seconds{service="api"}"#),
        Some(0.012)
    );
    // Recovery.
    server.route(
        "/health",
        Reply::Ok(
            "application/json",
            fixture("json_api/health.json").replace("12ms", "20ms"),
        ),
    );
    exporter.wait_value(r#"service_latency_seconds{service="api"}"#, 0.02);
    exporter.wait_value(&up("json"), 1.0);
}

#[test]
fn tls_with_a_test_ca_and_a_failed_handshake_without_it() {
    let (ca_pem, tls) = test_tls();
    let server = Upstream::start_with(Some(tls));
    server.route(
        "/health",
        Reply::Ok("application/json", fixture("json_api/health.json")),
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let url = server.url("https", "/health");
    let config = [
        METRICS.to_owned(),
        "sources:\n".into(),
        source(
            "trusted",
            &format!(r#"url: "{url}", tls: {{ca_file: ca.pem}}"#),
            json_rule(),
        ),
        source("untrusted", &format!(r#"url: "{url}""#), json_rule()),
        source(
            "skip_verify",
            &format!(r#"url: "{url}", tls: {{insecure_skip_verify: true}}"#),
            json_rule(),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"service_latency_seconds{service="api"}"#, 0.012);
    exporter.wait_value(&up("trusted"), 1.0);
    exporter.wait_value(&up("skip_verify"), 1.0);
    exporter.wait_at_least(&errors("untrusted", "tls"), 1.0);
    assert_eq!(exporter.value(&up("untrusted")), Some(0.0));
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose: it runs nothing and holds nothing but its entry.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_hung_command_and_its_child_are_killed_at_the_timeout() {
    let dir = tempdir();
    let script = dir.path().join("hang.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsleep 600 &\necho $! > \"$1/child.pid\"\necho $$ > \"$1/parent.pid\"\nsleep 600\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "{METRICS}sources:\n  - name: hang\n    command: {{argv: [./hang.sh, \"{}\"], timeout: 500ms, interval: 1h}}\n{}",
        dir.path().display(),
        json_rule()
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_at_least(&errors("hang", "timeout"), 1.0);
    let pid = |f: &str| {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let (parent, child) = (pid("parent.pid"), pid("child.pid"));
    let start = Instant::now();
    while alive(parent) || alive(child) {
        assert!(
            start.elapsed() < WAIT,
            "parent alive: {}, child alive: {}",
            alive(parent),
            alive(child)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_command_that_fails_says_so() {
    let dir = tempdir();
    let config = format!(
        "{METRICS}sources:\n  - name: fails\n    command: {{argv: [sh, -c, \"echo broken >&2; exit 3\"], interval: 200ms}}\n{}  - name: missing\n    command: {{argv: [/no/such/program], interval: 200ms}}\n{}",
        json_rule(),
        json_rule()
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_at_least(&errors("fails", "exit_code"), 1.0);
    exporter.wait_at_least(&errors("missing", "spawn"), 1.0);
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("exit status: 3: broken"), "{page}");
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let (ca_pem, tls, (client_cert, client_key)) = test_mtls();
    let server = Upstream::start_with(Some(tls));
    server.route(
        "/health",
        Reply::Ok("application/json", fixture("json_api/health.json")),
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), client_cert).unwrap();
    std::fs::write(dir.path().join("client-key.pem"), client_key).unwrap();
    let url = server.url("https", "/health");
    let config = [
        METRICS.to_owned(),
        "sources:\n".into(),
        source("with_cert", &format!(r#"url: "{url}", tls: {{ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}}"#), json_rule()),
        source("without_cert", &format!(r#"url: "{url}", tls: {{ca_file: ca.pem}}"#), json_rule()),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(&up("with_cert"), 1.0);
    exporter.wait_value(r#"service_latency_seconds{service="api"}"#, 0.012);
    exporter.wait_at_least(&errors("without_cert", "tls"), 1.0);
    assert_eq!(exporter.value(&up("without_cert")), Some(0.0));
}

#[test]
fn malformed_xml_and_html_that_lost_its_table() {
    let server = Upstream::start();
    server.route(
        "/broken.xml",
        Reply::Ok("text/xml", "<Envelope><Body><Queue>".into()),
    );
    server.route(
        "/login.html",
        Reply::Ok(
            "text/html",
            "<html><body><form><input name=user></form>".into(),
        ),
    );
    let dir = tempdir();
    let config = [
        METRICS.to_owned(),
        "sources:\n".into(),
        source(
            "xml",
            &format!(r#"url: "{}""#, server.url("http", "/broken.xml")),
            soap_rule(),
        ),
        // Browsers' parser never fails on HTML: a page without the rows is `no_match`.
        source(
            "html",
            &format!(r#"url: "{}""#, server.url("http", "/login.html")),
            html_rule(),
        ),
    ]
    .concat();
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_at_least(&errors("xml", "parse"), 1.0);
    exporter.wait_at_least(&errors("html", "no_match"), 1.0);
    assert_eq!(exporter.value(&up("xml")), Some(0.0));
    assert_eq!(exporter.value(&up("html")), Some(0.0));
}

#[test]
fn secret_files_are_read_on_every_fetch_and_redirects_are_followed() {
    let server = Upstream::start();
    server.route("/bearer", Reply::Bearer("first", r#"{"value": 1}"#.into()));
    server.route("/old", Reply::Redirect("/bearer"));
    let dir = tempdir();
    std::fs::write(dir.path().join("token"), "first\n").unwrap();
    let config = format!(
        "{METRICS}sources:\n{}",
        source(
            "bearer",
            &format!(
                r#"url: "{}", bearer_token_file: token"#,
                server.url("http", "/old")
            ),
            &auth_rule("bearer")
        )
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"auth_value{how="bearer"}"#, 1.0);
    // The upstream's token is rotated, then the secret file: no restart, no reload.
    server.route("/bearer", Reply::Bearer("second", r#"{"value": 2}"#.into()));
    exporter.wait_at_least(&errors("bearer", "http_status"), 1.0);
    std::fs::write(dir.path().join("token"), "second\n").unwrap();
    exporter.wait_value(r#"auth_value{how="bearer"}"#, 2.0);
    exporter.wait_value(&up("bearer"), 1.0);
}

/// `on_failure`: an `*_up` series made at 0 because the page failed from the start is the
/// update's own, so a page that is then read but has no line for it retires it (it does not
/// stay at 0 while the source is up); a page with the line sets 1, and a failure 0 again.
/// (A constant label, as a catalog use's `labels:` gives: an unlabelled series is pre-declared
/// and was already right.)
#[test]
fn an_up_series_made_by_a_failure_does_not_stay_after_recovery() {
    let dir = tempdir();
    let page = dir.path().join("status.txt");
    let exporter = Exporter::start(
        dir.path(),
        r#"version: 1
metrics:
  - {name: thing_up, type: gauge, help: Could the page be read., labels: [site]}
  - {name: thing_queue, type: gauge, help: Queue length.}
sources:
  - name: thing
    status_file: {path: status.txt, interval: 200ms}
    rules:
      - regex: '(?m)^ready$'
        update: [{metric: thing_up, labels: {site: a}, set: "1", on_failure: 0}]
      - regex: '(?m)^queue (?P<n>\d+)$'
        update: [{metric: thing_queue, set: $n}]
"#,
    );
    exporter.wait_value(r#"thing_up{site="a"}"#, 0.0);
    std::fs::write(&page, "queue 7\n").unwrap();
    exporter.wait_value("thing_queue", 7.0);
    let start = Instant::now();
    while exporter.value(r#"thing_up{site="a"}"#).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "thing_up stayed while the page was read without its line:\n{}",
            exporter.scrape()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&page, "ready\nqueue 8\n").unwrap();
    exporter.wait_value(r#"thing_up{site="a"}"#, 1.0);
    std::fs::remove_file(&page).unwrap();
    exporter.wait_value(r#"thing_up{site="a"}"#, 0.0);
}

/// `logfmt:` on a page source reads each line of the document that is logfmt and has one of
/// its keys as a row (a text protocol's `key=value` lines); other lines are skipped.
#[test]
fn a_page_is_read_line_by_line_with_logfmt() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("status.txt"),
        "# pool status\nname=web active=3 idle=\"7\"\nnot logfmt at all ===\nname=api active=0\nversion=1.2\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        r#"version: 1
metrics:
  - {name: pool_active, type: gauge, help: Active workers., labels: [pool]}
  - {name: pool_idle, type: gauge, help: Idle workers., labels: [pool]}
sources:
  - name: pools
    status_file: {path: status.txt}
    rules:
      - logfmt: {fields: {pool: name, active: active, idle: idle}}
        update:
          - {metric: pool_active, labels: {pool: $pool}, set: $active}
          - {metric: pool_idle, labels: {pool: $pool}, set: $idle, none: skip}
"#,
    )
    .unwrap();
    let out = one_shot(&dir.path().join("exporter.yaml"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        value_in(&text, r#"pool_active{pool="web"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_in(&text, r#"pool_idle{pool="web"}"#),
        Some(7.0),
        "{text}"
    );
    assert_eq!(
        value_in(&text, r#"pool_active{pool="api"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value_in(&text, r#"pool_idle{pool="api"}"#), None, "{text}");
}
