//! Series that tell the truth over time: an item gone from a document goes from `/metrics`
//! (after a successful fetch only), a source that cannot be seen turns its states `unknown`,
//! an upstream running total is a counter whose resets a real Prometheus reads right, log-fed
//! series expire when idle, and pre-declared label values exist from the start.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::prom::{prometheus_available, Prometheus};
use crate::upstream::{Reply, Upstream};

/// The lines of `text` for the metrics named in `names` (sample lines only), in order.
fn family(text: &str, names: &[&str]) -> String {
    text.lines()
        .filter(|l| {
            names.iter().any(|n| {
                l.strip_prefix(n)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Polls `/metrics` until the samples of `names` are exactly `expected`; returns when.
fn wait_family(exporter: &Exporter, names: &[&str], expected: &str) -> Instant {
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        let got = family(&text, names);
        if got == expected {
            return Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{names:?} never became\n{expected}--- last ---\n{got}--- scrape ---\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn services(items: &[(&str, &str, &str)]) -> String {
    let body: Vec<String> = items
        .iter()
        .map(|(name, status, latency)| {
            format!(r#""{name}": {{"status": "{status}", "latency": "{latency}"}}"#)
        })
        .collect();
    format!(r#"{{"services": {{{}}}}}"#, body.join(", "))
}

/// The expected state lines of one service (states in alphabetical order, `unknown` among
/// them) and its level.
fn state_lines(service: &str, current: &str) -> (String, String) {
    let mut out = String::new();
    for s in ["critical", "passing", "unknown", "warning"] {
        let v = u8::from(s == current);
        out.push_str(&format!(
            "service_state{{service=\"{service}\",state=\"{s}\"}} {v}\n"
        ));
    }
    let level = ["passing", "warning", "critical", "unknown"]
        .iter()
        .position(|s| *s == current)
        .unwrap();
    (
        out,
        format!("service_state_level{{service=\"{service}\"}} {level}\n"),
    )
}

fn states(items: &[(&str, &str)]) -> String {
    let (mut lines, mut levels) = (String::new(), String::new());
    for (service, current) in items {
        let (l, v) = state_lines(service, current);
        lines.push_str(&l);
        levels.push_str(&v);
    }
    lines + &levels
}

#[test]
fn gone_items_go_after_a_successful_fetch_and_states_say_unknown_while_the_source_fails() {
    let server = Upstream::start();
    let json = |items: &[(&str, &str, &str)]| Reply::Ok("application/json", services(items));
    server.route(
        "/health",
        json(&[
            ("api", "passing", "5ms"),
            ("db", "warning", "20ms"),
            ("mail", "critical", "1s"),
        ]),
    );
    let dir = tempdir();
    let config = format!(
        r#"version: 1
metrics:
  - {{name: service_state, type: state, help: State., labels: [service], states: [passing, warning, critical]}}
  - {{name: service_latency_seconds, type: gauge, help: Latency., labels: [service]}}
  - {{name: service_seen_latency_seconds, type: gauge, help: Latency (kept when absent)., labels: [service]}}
sources:
  - name: health
    http: {{url: "{}", interval: 100ms, timeout: 1s}}
    rules:
      - json:
          for_each: "$.services.*"
          fields: {{service: "@key", status: "@.status", latency: "@.latency"}}
        update:
          - {{metric: service_state, labels: {{service: $service}}, state: $status}}
          - {{metric: service_latency_seconds, labels: {{service: $service}}, set: $latency, as: duration}}
      - json:
          for_each: "$.services.*"
          fields: {{service: "@key", latency: "@.latency"}}
        keep_absent: true
        update:
          - {{metric: service_seen_latency_seconds, labels: {{service: $service}}, set: $latency, as: duration}}
"#,
        server.url("http", "/health")
    );
    let exporter = Exporter::start(dir.path(), &config);
    let names = ["service_state", "service_state_level"];
    let latency = ["service_latency_seconds"];
    let kept = ["service_seen_latency_seconds"];
    let all_latencies = "service_latency_seconds{service=\"api\"} 0.005\nservice_latency_seconds{service=\"db\"} 0.02\nservice_latency_seconds{service=\"mail\"} 1\n";
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "passing"), ("db", "warning"), ("mail", "critical")]),
    );
    wait_family(&exporter, &latency, all_latencies);

    // The source fails (HTTP 503): nothing is removed, every state says unknown, the gauges
    // keep their last readings (their age is in quarry_source_last_success_timestamp_seconds).
    server.route("/health", Reply::Status(503));
    exporter.wait_value(r#"quarry_source_up{source="health"}"#, 0.0);
    let unknown = states(&[("api", "unknown"), ("db", "unknown"), ("mail", "unknown")]);
    wait_family(&exporter, &names, &unknown);
    assert_eq!(family(&exporter.scrape(), &latency), all_latencies);

    // A broken document without `db`: still a failure, still nothing removed.
    server.route(
        "/health",
        Reply::Ok(
            "application/json",
            r#"{"services": {"api": {"status": "passing", "latency": "5ms"}"#.into(),
        ),
    );
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="parse",source="health"}"#,
        2.0,
    );
    assert_eq!(family(&exporter.scrape(), &names), unknown);
    assert_eq!(family(&exporter.scrape(), &latency), all_latencies);

    // A document that matches nothing is a failure too (up 0): nothing removed.
    server.route("/health", json(&[]));
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="no_match",source="health"}"#,
        2.0,
    );
    assert_eq!(family(&exporter.scrape(), &names), unknown);

    // A successful document without `db`: db's series go, the others are known again; the
    // rule with keep_absent keeps db's last latency.
    server.route(
        "/health",
        json(&[("api", "passing", "6ms"), ("mail", "warning", "2s")]),
    );
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "passing"), ("mail", "warning")]),
    );
    wait_family(
        &exporter,
        &latency,
        "service_latency_seconds{service=\"api\"} 0.006\nservice_latency_seconds{service=\"mail\"} 2\n",
    );
    wait_family(
        &exporter,
        &kept,
        "service_seen_latency_seconds{service=\"api\"} 0.006\nservice_seen_latency_seconds{service=\"db\"} 0.02\nservice_seen_latency_seconds{service=\"mail\"} 2\n",
    );
    assert_eq!(
        exporter.value(r#"quarry_source_up{source="health"}"#),
        Some(1.0)
    );

    // db comes back.
    server.route(
        "/health",
        json(&[
            ("api", "passing", "6ms"),
            ("db", "passing", "3ms"),
            ("mail", "warning", "2s"),
        ]),
    );
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "passing"), ("db", "passing"), ("mail", "warning")]),
    );
    // db is listed but its state and latency cannot be read: it stays, its state unknown, its
    // latency the last one read; the errors are counted.
    server.route(
        "/health",
        json(&[
            ("api", "passing", "6ms"),
            ("db", "bogus", "n/a"),
            ("mail", "warning", "2s"),
        ]),
    );
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "passing"), ("db", "unknown"), ("mail", "warning")]),
    );
    let text = exporter.scrape();
    assert_eq!(
        family(&text, &latency),
        "service_latency_seconds{service=\"api\"} 0.006\nservice_latency_seconds{service=\"db\"} 0.003\nservice_latency_seconds{service=\"mail\"} 2\n"
    );
    assert!(
        value_in(
            &text,
            r#"quarry_rule_errors_total{reason="unknown_state",rule="0",source="health"}"#
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert_eq!(
        exporter.value(r#"quarry_source_up{source="health"}"#),
        Some(1.0)
    );
    assert_promtool_accepts(&exporter.scrape());
}

#[test]
fn an_upstream_running_total_is_a_counter_whose_reset_prometheus_reads_right() {
    if !prometheus_available() {
        return;
    }
    let server = Upstream::start();
    let total = |n: u64| Reply::Ok("application/json", format!(r#"{{"accepts": {n}}}"#));
    server.route("/status", total(1000));
    let dir = tempdir();
    let config = format!(
        r#"version: 1
metrics:
  - {{name: upstream_accepts_total, type: counter, help: Connections accepted upstream.}}
sources:
  - name: upstream
    http: {{url: "{}", interval: 100ms, timeout: 1s}}
    rules:
      - json: {{fields: {{n: "$.accepts"}}}}
        update: [{{metric: upstream_accepts_total, total: $n}}]
"#,
        server.url("http", "/status")
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("upstream_accepts_total", 1000.0);
    let text = exporter.scrape();
    assert!(
        text.contains("# TYPE upstream_accepts_total counter\n"),
        "{text}"
    );
    let prometheus = Prometheus::start(dir.path(), exporter.port);
    // Each phase holds until Prometheus has scraped it at least twice. The upstream restarts
    // (1500 → 200) in the middle: the exporter passes the drop on as a counter reset.
    let limit = Duration::from_secs(60);
    let mut seen = 0;
    for value in [1000u64, 1500, 200, 700] {
        server.route("/status", total(value));
        exporter.wait_value("upstream_accepts_total", value as f64);
        prometheus.wait_for(
            &format!("count_over_time((upstream_accepts_total == {value})[1h:1s]) >= 1"),
            limit,
        );
        let start = Instant::now();
        loop {
            let n = prometheus.samples("upstream_accepts_total[1h]").len();
            if n >= seen + 2
                && prometheus
                    .samples("upstream_accepts_total[1h]")
                    .last()
                    .unwrap()
                    .1
                    == value as f64
            {
                seen = n;
                break;
            }
            assert!(start.elapsed() < limit, "{}", prometheus.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let samples = prometheus.samples("upstream_accepts_total[1h]");
    let (first, last) = (samples[0], *samples.last().unwrap());
    assert_eq!((first.1, last.1), (1000.0, 700.0), "{samples:?}");
    // Every value the upstream reported, in order, and nothing else.
    let mut distinct: Vec<f64> = samples.iter().map(|s| s.1).collect();
    distinct.dedup();
    assert_eq!(distinct, [1000.0, 1500.0, 200.0, 700.0]);
    // increase() over exactly the sampled span (plus 1 ms, so both range semantics hold
    // the first sample): 500 before the reset, 200 since the restart, 500 after.
    let span_ms = ((last.0 - first.0) * 1000.0).round() as u64 + 1;
    let increase = prometheus.scalar(
        &format!("increase(upstream_accepts_total[{span_ms}ms])"),
        Some(last.0),
    );
    assert!(
        (increase - 1200.0).abs() < 1200.0 * 1e-3,
        "increase {increase}, samples {samples:?}"
    );
    let resets = prometheus.scalar(
        &format!("resets(upstream_accepts_total[{span_ms}ms])"),
        Some(last.0),
    );
    assert_eq!(resets, 1.0);
}

#[test]
fn pre_declared_values_exist_from_the_start_and_idle_log_series_expire() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = r#"version: 1
metrics:
  - name: http_requests_total
    type: counter
    help: Requests by status.
    labels: [status]
    label_values: {status: ["200", "404", "500"]}
    expire_after: 1s
  - name: queue_depth
    type: gauge
    help: Queue depth as last logged.
    labels: [queue]
    expire_after: 2s
  - name: worker_state
    type: state
    help: Worker state.
    labels: [worker]
    states: [idle, busy]
    label_values: {worker: [w1, w2]}
sources:
  - name: app
    file: {paths: [app.log]}
    rules:
      - regex: 'status=(?P<status>\d+)'
        update: [{metric: http_requests_total, labels: {status: $status}}]
      - regex: 'queue=(?P<queue>\w+) depth=(?P<depth>\d+)'
        update: [{metric: queue_depth, labels: {queue: $queue}, set: $depth}]
      - regex: 'worker=(?P<worker>\w+) state=(?P<state>\w+)'
        update: [{metric: worker_state, labels: {worker: $worker}, state: $state}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    let requests = ["http_requests_total"];
    let queues = ["queue_depth"];
    let workers = ["worker_state", "worker_state_level"];
    // Before any line: the declared values at 0, the workers unknown, no queue series.
    let text = exporter.scrape();
    assert_eq!(
        family(&text, &requests),
        "http_requests_total{status=\"200\"} 0\nhttp_requests_total{status=\"404\"} 0\nhttp_requests_total{status=\"500\"} 0\n"
    );
    // `state` sorts before `worker`: the lines go by state, then worker.
    let unknown_workers = "worker_state{state=\"busy\",worker=\"w1\"} 0\nworker_state{state=\"busy\",worker=\"w2\"} 0\nworker_state{state=\"idle\",worker=\"w1\"} 0\nworker_state{state=\"idle\",worker=\"w2\"} 0\nworker_state{state=\"unknown\",worker=\"w1\"} 1\nworker_state{state=\"unknown\",worker=\"w2\"} 1\nworker_state_level{worker=\"w1\"} 2\nworker_state_level{worker=\"w2\"} 2\n";
    assert_eq!(family(&text, &workers), unknown_workers);
    assert!(!text.contains("\nqueue_depth"), "{text}");

    let before = Instant::now();
    append(
        &log,
        "status=503\nstatus=200\nqueue=q1 depth=5\nqueue=q2 depth=7\nworker=w1 state=busy\n",
    );
    wait_family(
        &exporter,
        &requests,
        "http_requests_total{status=\"200\"} 1\nhttp_requests_total{status=\"404\"} 0\nhttp_requests_total{status=\"500\"} 0\nhttp_requests_total{status=\"503\"} 1\n",
    );
    wait_family(
        &exporter,
        &queues,
        "queue_depth{queue=\"q1\"} 5\nqueue_depth{queue=\"q2\"} 7\n",
    );
    wait_family(
        &exporter,
        &workers,
        "worker_state{state=\"busy\",worker=\"w1\"} 1\nworker_state{state=\"busy\",worker=\"w2\"} 0\nworker_state{state=\"idle\",worker=\"w1\"} 0\nworker_state{state=\"idle\",worker=\"w2\"} 0\nworker_state{state=\"unknown\",worker=\"w1\"} 0\nworker_state{state=\"unknown\",worker=\"w2\"} 1\nworker_state_level{worker=\"w1\"} 1\nworker_state_level{worker=\"w2\"} 2\n",
    );

    // The 503 series goes after a second idle; the declared ones stay (at their counts).
    let gone = wait_family(
        &exporter,
        &requests,
        "http_requests_total{status=\"200\"} 1\nhttp_requests_total{status=\"404\"} 0\nhttp_requests_total{status=\"500\"} 0\n",
    );
    assert!(
        gone - before >= Duration::from_secs(1),
        "{:?}",
        gone - before
    );

    // q2 keeps being logged, q1 not: q1 goes after 2 s idle, q2 stays.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut depth = 8;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                append(&log, format!("queue=q2 depth={depth}\n"));
                depth += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            depth - 1
        })
    };
    let start = Instant::now();
    loop {
        let got = family(&exporter.scrape(), &queues);
        if !got.contains("q1") {
            assert!(got.starts_with("queue_depth{queue=\"q2\"} "), "{got}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{got}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        before.elapsed() >= Duration::from_secs(2),
        "{:?}",
        before.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap();
    wait_family(
        &exporter,
        &queues,
        &format!("queue_depth{{queue=\"q2\"}} {last}\n"),
    );

    // An expired counter that comes back starts again from 0 (Prometheus reads a reset).
    append(&log, "status=503\n");
    exporter.wait_value(r#"http_requests_total{status="503"}"#, 1.0);
    assert_promtool_accepts(&exporter.scrape());
}

#[test]
fn an_item_gone_across_a_reload_still_goes() {
    let server = Upstream::start();
    let json = |items: &[(&str, &str, &str)]| Reply::Ok("application/json", services(items));
    server.route(
        "/health",
        json(&[("api", "passing", "5ms"), ("db", "warning", "20ms")]),
    );
    let dir = tempdir();
    let config = |interval: &str| {
        format!(
            r#"version: 1
metrics:
  - {{name: service_state, type: state, help: State., labels: [service], states: [passing, warning, critical]}}
sources:
  - name: health
    http: {{url: "{}", interval: {interval}, timeout: 1s}}
    rules:
      - json:
          for_each: "$.services.*"
          fields: {{service: "@key", status: "@.status"}}
        update:
          - {{metric: service_state, labels: {{service: $service}}, state: $status}}
"#,
            server.url("http", "/health")
        )
    };
    let exporter = Exporter::start(dir.path(), &config("100ms"));
    let names = ["service_state", "service_state_level"];
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "passing"), ("db", "warning")]),
    );
    // The source fails, the config is reloaded (the metric is kept, the pipeline is new),
    // then a document without db arrives: db goes, as it would have without the reload.
    server.route("/health", Reply::Status(503));
    wait_family(
        &exporter,
        &names,
        &states(&[("api", "unknown"), ("db", "unknown")]),
    );
    let reloads = "quarry_config_last_reload_success_timestamp_seconds";
    let first = exporter.value(reloads).unwrap();
    std::fs::write(dir.path().join("exporter.yaml"), config("150ms")).unwrap();
    sighup(&exporter);
    exporter.wait_at_least(reloads, first + 1e-6);
    let errors = r#"quarry_source_errors_total{reason="http_status",source="health"}"#;
    let failed = exporter.value(errors).unwrap();
    exporter.wait_at_least(errors, failed + 1.0); // the new pipeline has failed once too
    assert_eq!(
        family(&exporter.scrape(), &names),
        states(&[("api", "unknown"), ("db", "unknown")])
    );
    server.route("/health", json(&[("api", "critical", "5ms")]));
    wait_family(&exporter, &names, &states(&[("api", "critical")]));
}

/// A rule remembers where the series of recent label values sat (issue 25): after `a`
/// expires, `c` is made in the slot `a` left, and the next `a` lines must make `a` again,
/// not count into `c`. Counts differ per series (3, 1, 2), so a line counted into the wrong
/// series cannot pass for a right one.
#[test]
fn a_series_made_again_after_expiry_is_not_the_one_that_took_its_place() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = r#"version: 1
metrics:
  - {name: events_total, type: counter, help: Events by kind., labels: [kind], expire_after: 5s}
sources:
  - name: app
    file: {paths: [app.log], start_at: beginning}
    rules:
      - regex: 'kind=(?P<kind>\w+)'
        update: [{metric: events_total, labels: {kind: $kind}}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    append(&log, "kind=a\nkind=a\nkind=a\n");
    exporter.wait_value(r#"events_total{kind="a"}"#, 3.0);
    let start = Instant::now();
    while exporter.value(r#"events_total{kind="a"}"#).is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "a never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    append(&log, "kind=c\nkind=a\nkind=a\n");
    // `a` at 2, and in the same scrape `c` at 1 (`c` was counted just before `a`, so it is
    // still there whenever `a` is, but for a sweep falling between their touches' tenths
    // of a second, five seconds after them: this scrape comes far sooner).
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        if value_in(&text, r#"events_total{kind="a"}"#) == Some(2.0) {
            assert_eq!(
                series(&text, "events_total"),
                [
                    ("kind=\"a\"".to_owned(), 2.0),
                    ("kind=\"c\"".to_owned(), 1.0)
                ]
                .into(),
                "{text}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
