//! `/probe?module=M&target=T` against real HTTP upstreams on port 0: many targets at once,
//! one that never answers (it fails alone, within Prometheus' scrape timeout), the slot bound,
//! bad requests, statelessness, reload, and a real Prometheus scraping through the standard
//! `__param_target` relabeling.

use std::time::{Duration, Instant};

use crate::common::{sighup, tempdir, value_in, Exporter, WAIT};
use crate::prom::{prometheus_available, Prometheus};
use crate::upstream::{Reply, Upstream};

const CONFIG: &str = r#"version: 1
metrics:
  - {name: app_requests, type: gauge, help: Requests the app has served., labels: []}
  - {name: app_worker_state, type: state, help: State of each worker., labels: [worker], states: [idle, busy, dead]}
modules:
  - name: app_status
    http:
      url: "http://$target/status.json"
      headers: {X-Probed-Target: "probe of $target"}
      timeout: 20s
    rules:
      - name: totals
        json: {fields: {requests: "$.requests"}}
        update: [{metric: app_requests, set: $requests}]
      - name: workers
        json: {for_each: "$.workers.*", fields: {worker: "@key", state: "@"}}
        update: [{metric: app_worker_state, labels: {worker: $worker}, state: $state}]
"#;

fn document(requests: u64, workers: &[(&str, &str)]) -> String {
    let workers: Vec<String> = workers
        .iter()
        .map(|(w, s)| format!("\"{w}\": \"{s}\""))
        .collect();
    format!(
        "{{\"requests\": {requests}, \"workers\": {{{}}}}}",
        workers.join(", ")
    )
}

fn json_target(requests: u64) -> Upstream {
    let u = Upstream::start();
    u.route(
        "/status.json",
        Reply::Ok(
            "application/json",
            document(requests, &[("w1", "idle"), ("w2", "busy")]),
        ),
    );
    u
}

fn probe(
    exporter: &Exporter,
    query: &str,
    scrape_timeout: Option<&str>,
) -> (u16, String, Duration) {
    let started = Instant::now();
    let headers: Vec<(&str, &str)> = scrape_timeout
        .map(|t| vec![("X-Prometheus-Scrape-Timeout-Seconds", t)])
        .unwrap_or_default();
    let (status, _, body) = exporter.get(&format!("/probe?{query}"), &headers);
    (status, String::from_utf8(body).unwrap(), started.elapsed())
}

/// Twenty targets and one that never answers, probed all at once: each answers with its own
/// document's values; the hanging one fails with `timeout` before Prometheus' scrape timeout
/// (minus the offset), and finishes last: it delayed nobody.
#[test]
fn many_targets_at_once_and_a_hanging_one_fails_alone_within_the_scrape_timeout() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let targets: Vec<Upstream> = (0..20).map(|i| json_target(1000 + i)).collect();
    let hanging = Upstream::start();
    hanging.route("/status.json", Reply::Hang);

    let scrape_timeout = 4.0;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for (i, t) in targets.iter().enumerate() {
            let (exporter, done) = (&exporter, done_tx.clone());
            scope.spawn(move || {
                let q = format!("module=app_status&target=127.0.0.1:{}", t.port);
                let (status, body, took) = probe(exporter, &q, Some("4"));
                done.send((Some(i), status, body, took)).unwrap();
            });
        }
        let (exporter, done) = (&exporter, done_tx.clone());
        let port = hanging.port;
        scope.spawn(move || {
            let q = format!("module=app_status&target=127.0.0.1:{port}");
            let (status, body, took) = probe(exporter, &q, Some("4"));
            done.send((None, status, body, took)).unwrap();
        });
    });
    drop(done_tx);
    let finished: Vec<_> = done_rx.iter().collect();
    assert_eq!(finished.len(), 21);
    // The hanging target's probe is the last to finish.
    let (last, status, body, took) = finished.last().unwrap();
    assert!(
        last.is_none(),
        "the hanging probe was not the last to finish"
    );
    assert_eq!(*status, 200);
    assert_eq!(value_in(body, "quarry_probe_success"), Some(0.0), "{body}");
    assert_eq!(
        value_in(body, "quarry_probe_failure_reason{reason=\"timeout\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(
        !body.contains("app_requests"),
        "a failed probe shows no module metrics: {body}"
    );
    // Its budget is the scrape timeout minus the 0.5 s offset: it answers before Prometheus
    // would give up, and not before its budget ran out.
    assert!(
        took.as_secs_f64() < scrape_timeout,
        "the hanging probe took {took:?}, past the scrape timeout"
    );
    assert!(
        took.as_secs_f64() >= scrape_timeout - 0.5 - 0.05,
        "{took:?}"
    );
    for (i, status, body, _) in &finished[..20] {
        let i = i.unwrap() as f64;
        assert_eq!(*status, 200);
        assert_eq!(value_in(body, "quarry_probe_success"), Some(1.0), "{body}");
        assert_eq!(value_in(body, "app_requests"), Some(1000.0 + i), "{body}");
        assert_eq!(
            value_in(body, "app_worker_state{state=\"busy\",worker=\"w2\"}"),
            Some(1.0),
            "{body}"
        );
        crate::common::assert_promtool_accepts(body);
    }
    // Each upstream saw its own target in the templated header.
    for t in &targets {
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let header = seen[0].1.iter().find(|(k, _)| k == "x-probed-target");
        assert_eq!(
            header.map(|(_, v)| v.clone()),
            Some(format!("probe of 127.0.0.1:{}", t.port))
        );
    }
    let metrics = exporter.scrape();
    assert_eq!(
        value_in(&metrics, "quarry_probes_total{module=\"app_status\"}"),
        Some(21.0)
    );
    assert_eq!(
        value_in(
            &metrics,
            "quarry_probe_errors_total{module=\"app_status\",reason=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(value_in(&metrics, "quarry_probes_in_flight"), Some(0.0));
    // Module metrics are served by /probe only.
    assert!(!metrics.contains("app_requests"), "{metrics}");
}

/// With `--probe.max-concurrent=2` and two probes hanging, a third waits for a slot and fails
/// with `timeout` (saying why) instead of running a third fetch.
#[test]
fn probes_beyond_the_slot_bound_wait_and_time_out_rather_than_pile_up() {
    let dir = tempdir();
    let config_file = dir.path().join("exporter.yaml");
    std::fs::write(&config_file, CONFIG).unwrap();
    let exporter = Exporter::start_with(&config_file, &["--probe.max-concurrent=2"]);
    let hanging = Upstream::start();
    hanging.route("/status.json", Reply::Hang);
    let fine = json_target(7);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let exporter = &exporter;
            let port = hanging.port;
            scope.spawn(move || {
                let q = format!("module=app_status&target=127.0.0.1:{port}");
                let (_, body, _) = probe(exporter, &q, Some("6"));
                assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0));
            });
        }
        // Both hanging probes hold their slots before the third starts.
        let deadline = Instant::now() + WAIT;
        while hanging.seen.lock().unwrap().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the hanging probes never fetched"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let q = format!(
            "module=app_status&target=127.0.0.1:{}&debug=true",
            fine.port
        );
        let (status, body, _) = probe(&exporter, &q, Some("2"));
        assert_eq!(status, 200);
        assert!(
            body.contains("reason timeout: no probe slot was free"),
            "{body}"
        );
        assert_eq!(
            fine.seen.lock().unwrap().len(),
            0,
            "no third fetch ran while both slots were taken"
        );
    });
    // Once the slots are free again, the same target is probed.
    let q = format!("module=app_status&target=127.0.0.1:{}", fine.port);
    let (_, body, _) = probe(&exporter, &q, Some("5"));
    assert_eq!(value_in(&body, "app_requests"), Some(7.0), "{body}");
}

/// A probe keeps nothing: a worker gone from the document is gone from the next probe, and a
/// failing target shows no stale values. Requests that name no valid module or target are
/// answered 400 with what to fix.
#[test]
fn probes_are_stateless_and_bad_requests_say_what_is_wrong() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let target = json_target(5);
    let q = format!("module=app_status&target=127.0.0.1:{}", target.port);
    let (_, body, _) = probe(&exporter, &q, None);
    assert_eq!(value_in(&body, "app_requests"), Some(5.0), "{body}");
    assert!(body.contains("worker=\"w1\""), "{body}");
    target.route(
        "/status.json",
        Reply::Ok("application/json", document(9, &[("w2", "dead")])),
    );
    let (_, body, _) = probe(&exporter, &q, None);
    assert_eq!(value_in(&body, "app_requests"), Some(9.0), "{body}");
    assert!(!body.contains("worker=\"w1\""), "{body}");
    assert_eq!(
        value_in(&body, "app_worker_state{state=\"dead\",worker=\"w2\"}"),
        Some(1.0)
    );
    target.route("/status.json", Reply::Status(503));
    let (_, body, _) = probe(&exporter, &q, None);
    assert_eq!(
        value_in(&body, "quarry_probe_failure_reason{reason=\"http_status\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(!body.contains("app_requests"), "{body}");
    // The landing page lists the module, its counts and the last failure.
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8(page).unwrap();
    for want in [
        "<h2>Probe modules</h2>",
        "<td>app_status</td><td><code>GET http://$target/status.json</code></td><td class=\"num\">3</td><td class=\"num\">1</td>",
        &format!("127.0.0.1:{}: http_status: HTTP 503", target.port),
    ] {
        assert!(page.contains(want), "{want} not in\n{page}");
    }

    // The only module is the default; a module that does not exist is named with the known.
    let only = format!("target=127.0.0.1:{}", target.port);
    let (status, body, _) = probe(&exporter, &only, None);
    assert_eq!(status, 200, "{body}");
    for (query, want) in [
        (
            "module=app_status".to_owned(),
            "the `target` parameter is missing",
        ),
        (
            "module=nope&target=127.0.0.1:1".to_owned(),
            "unknown module \"nope\"; this config declares: app_status",
        ),
        (
            "module=app_status&target=a%0Ab".to_owned(),
            "the target holds control characters",
        ),
        (
            "module=app_status&target=".to_owned(),
            "the `target` parameter is missing",
        ),
    ] {
        let (status, body, _) = probe(&exporter, &query, None);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(want), "{query}: {body}");
    }
}

/// A module whose URL is the target itself (json_exporter's model) accepts only http(s)
/// targets; a reload replaces the modules.
#[test]
fn target_as_the_whole_url_and_modules_follow_a_reload() {
    let dir = tempdir();
    let config = CONFIG.replace("http://$target/status.json", "$target");
    let exporter = Exporter::start(dir.path(), &config);
    let target = json_target(42);
    let url = format!("http://127.0.0.1:{}/status.json", target.port);
    let (_, body, _) = probe(&exporter, &format!("target={url}"), None);
    assert_eq!(value_in(&body, "app_requests"), Some(42.0), "{body}");
    let (status, body, _) = probe(&exporter, "target=file:///etc/passwd", None);
    assert_eq!(status, 400);
    assert!(body.contains("only http and https are probed"), "{body}");

    std::fs::write(
        dir.path().join("exporter.yaml"),
        config.replace("name: app_status", "name: renamed"),
    )
    .unwrap();
    sighup(&exporter);
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _, _) = probe(&exporter, &format!("module=renamed&target={url}"), None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the reload never took effect");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, _) = probe(&exporter, &format!("module=app_status&target={url}"), None);
    assert_eq!(status, 400);
    let metrics = exporter.scrape();
    assert!(
        !metrics.contains("module=\"app_status\""),
        "the removed module's self-metrics stay: {metrics}"
    );
}

/// Debian's Prometheus with the standard multi-target config (targets in static_configs,
/// relabeled into `__param_target` and `instance`, `__address__` pointed at the exporter) and
/// a 1 s scrape timeout: every target has its own series, the hanging one reports failure
/// while its scrape itself succeeds (the probe honoured X-Prometheus-Scrape-Timeout-Seconds).
#[test]
fn prometheus_probes_targets_through_param_target_relabeling() {
    if !prometheus_available() {
        return;
    }
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let targets: Vec<Upstream> = (0..3).map(|i| json_target(100 * (i + 1))).collect();
    let hanging = Upstream::start();
    hanging.route("/status.json", Reply::Hang);
    let mut addresses: Vec<String> = targets
        .iter()
        .map(|t| format!("127.0.0.1:{}", t.port))
        .collect();
    addresses.push(format!("127.0.0.1:{}", hanging.port));
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let prometheus = Prometheus::start_with(
        dir.path(),
        &format!(
            r#"  - job_name: app_status
    scrape_timeout: 1s
    metrics_path: /probe
    params: {{module: [app_status]}}
    static_configs: [{{targets: [{}]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "127.0.0.1:{}"}}
"#,
            list.join(", "),
            exporter.port
        ),
    );
    prometheus.wait_for("count(up{job=\"app_status\"}) == 4", WAIT);
    prometheus.wait_for("count(quarry_probe_success) == 4", WAIT);
    for (i, a) in addresses[..3].iter().enumerate() {
        let at = |m: &str| prometheus.scalar(&format!("{m}{{instance=\"{a}\"}}"), None);
        assert_eq!(at("quarry_probe_success"), 1.0);
        assert_eq!(at("app_requests"), 100.0 * (i as f64 + 1.0));
        assert_eq!(at("up"), 1.0);
    }
    let slow = &addresses[3];
    let at = |m: &str| prometheus.scalar(&format!("{m}{{instance=\"{slow}\"}}"), None);
    assert_eq!(at("quarry_probe_success"), 0.0);
    assert_eq!(
        prometheus.scalar(
            &format!("quarry_probe_failure_reason{{instance=\"{slow}\",reason=\"timeout\"}}"),
            None
        ),
        1.0
    );
    // The scrape of the hanging target succeeded: the probe answered within 1 s - 0.5 s.
    assert_eq!(at("up"), 1.0, "{}", prometheus.log());
    assert!(at("quarry_probe_duration_seconds") < 1.0);
}
