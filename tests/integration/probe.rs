//! `/probe?module=M&target=T` against real HTTP upstreams on port 0: many targets at once,
//! one that never answers (it fails alone, within Prometheus' scrape timeout), the slot bound,
//! hanging targets that cannot take the others' slots, a target leading back to `/probe`, the
//! budget of document bytes, bad and ambiguous requests, secrets kept off the landing page,
//! statelessness, reload, and a real Prometheus scraping through the standard
//! `__param_target` relabeling.

use std::io::{Read, Write};
use std::net::TcpListener;
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
/// with `no_slot` (saying why; not `timeout`, which is the target's) instead of running a
/// third fetch.
#[test]
fn probes_beyond_the_slot_bound_wait_and_fail_with_no_slot() {
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
            body.contains("reason no_slot: all 2 probe slots were in use"),
            "{body}"
        );
        assert!(
            body.contains("quarry_probe_failure_reason{reason=\"no_slot\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("quarry_probe_failure_reason{reason=\"timeout\"} 0"),
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

/// Polls `/metrics` until `series` is `want`.
fn wait_for(exporter: &Exporter, series: &str, want: f64) {
    exporter.wait_value(series, want);
}

/// Issue 20, item 15. 72 probes held on three hanging targets, over the 64 slots of
/// `--probe.max-concurrent=64` (the default was 64 when the issue was found): each hanging
/// target holds its 4 slots (`--probe.max-per-target`) and its other probes wait on it alone,
/// so a healthy target probed meanwhile succeeds every time (before: every slot was held and
/// it failed with `timeout`, as if it hung itself).
#[test]
fn hanging_targets_cannot_take_the_slots_of_the_others() {
    let dir = tempdir();
    let config_file = dir.path().join("exporter.yaml");
    std::fs::write(&config_file, CONFIG).unwrap();
    let exporter = Exporter::start_with(&config_file, &["--probe.max-concurrent=64"]);
    let hanging: Vec<Upstream> = (0..3)
        .map(|_| {
            let u = Upstream::start();
            u.route("/status.json", Reply::Hang);
            u
        })
        .collect();
    let ports: Vec<u16> = hanging.iter().map(|u| u.port).collect();
    let healthy = json_target(11);
    let held = 72;
    std::thread::scope(|scope| {
        let mut answers = Vec::new();
        for i in 0..held {
            let (exporter, port) = (&exporter, ports[i % 3]);
            answers.push(scope.spawn(move || {
                let q = format!("module=app_status&target=127.0.0.1:{port}&debug=true");
                probe(exporter, &q, Some("30")).1
            }));
        }
        wait_for(&exporter, "quarry_probes_in_flight", held as f64);
        let fetching = || -> usize { hanging.iter().map(|u| u.seen.lock().unwrap().len()).sum() };
        let deadline = Instant::now() + WAIT;
        while fetching() < 12 {
            assert!(
                Instant::now() < deadline,
                "the hanging targets were not fetched"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut succeeded = 0;
        for _ in 0..20 {
            let q = format!("module=app_status&target=127.0.0.1:{}", healthy.port);
            let (status, body, _) = probe(&exporter, &q, Some("5"));
            assert_eq!(status, 200);
            if value_in(&body, "quarry_probe_success") == Some(1.0) {
                succeeded += 1;
            }
        }
        assert_eq!(succeeded, 20, "the healthy target failed while others hung");
        // Still held while the healthy target was probed: the test measured what it claims.
        assert_eq!(exporter.value("quarry_probes_in_flight"), Some(held as f64));
        // Each hanging target holds 4 slots; the rest of its probes wait for one of its own.
        assert_eq!(exporter.value("quarry_probe_slots_in_use"), Some(12.0));
        assert_eq!(exporter.value("quarry_probe_slots"), Some(64.0));
        for (u, port) in hanging.iter().zip(&ports) {
            let seen = u.seen.lock().unwrap().len();
            assert_eq!(seen, 4, "127.0.0.1:{port} was fetched {seen} times at once");
        }
        // The hanging targets go away: their probes end (the waiting ones get their slots in
        // turn and fail at once), each with the target's own reason, none with `timeout`.
        drop(hanging);
        for a in answers {
            let body = a.join().unwrap();
            assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0), "{body}");
        }
    });
    wait_for(&exporter, "quarry_probe_slots_in_use", 0.0);
    wait_for(&exporter, "quarry_probes_in_flight", 0.0);
}

/// Targets that accept connections and never answer, each on its own port (so each is a
/// target of its own); held until dropped.
struct SilentTargets {
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentTargets {
    fn start(n: usize) -> SilentTargets {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect();
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                for l in &listeners {
                    while let Ok((conn, _)) = l.accept() {
                        held.push(conn);
                        accepted2.fetch_add(1, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        SilentTargets {
            ports,
            stop,
            accepted,
        }
    }
}

impl Drop for SilentTargets {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Issue 20, item 15, the other shape: 70 distinct targets hang at once (a partition), one
/// probe each, as Prometheus sends them. With the default `--probe.max-concurrent` (1,024: a
/// slot costs what a waiting probe costs, documents have their own budget) a healthy target
/// probed meanwhile succeeds every time (with 64 slots, the old default, it failed).
#[test]
fn many_distinct_hanging_targets_leave_slots_for_the_others() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let silent = SilentTargets::start(70);
    let healthy = json_target(12);
    std::thread::scope(|scope| {
        for &port in &silent.ports {
            let exporter = &exporter;
            scope.spawn(move || {
                let q = format!("module=app_status&target=127.0.0.1:{port}");
                probe(exporter, &q, Some("30"))
            });
        }
        // All 70 in flight, and at least 64 (as many as there were slots before) fetching.
        wait_for(&exporter, "quarry_probes_in_flight", 70.0);
        let accepted = || silent.accepted.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + WAIT;
        while accepted() < 64 {
            assert!(
                Instant::now() < deadline,
                "the hanging targets were not fetched"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut succeeded = 0;
        for _ in 0..20 {
            let q = format!("module=app_status&target=127.0.0.1:{}", healthy.port);
            let (_, body, _) = probe(&exporter, &q, Some("5"));
            if value_in(&body, "quarry_probe_success") == Some(1.0) {
                succeeded += 1;
            }
        }
        assert_eq!(
            succeeded, 20,
            "the healthy target failed while 70 others hung"
        );
        while accepted() < 70 {
            assert!(
                Instant::now() < deadline,
                "not every hanging target was fetched"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(exporter.value("quarry_probe_slots_in_use"), Some(70.0));
        assert_eq!(exporter.value("quarry_probe_slots"), Some(1024.0));
        drop(silent);
    });
}

/// Issue 20, item 15: a probe that never got a slot of its target fails with `no_slot`,
/// naming `--probe.max-per-target`, while the target's 4 slots are held; the target is not
/// fetched a fifth time at once.
#[test]
fn a_probe_without_a_slot_of_its_target_says_no_slot() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let hanging = Upstream::start();
    hanging.route("/status.json", Reply::Hang);
    let q = format!("module=app_status&target=127.0.0.1:{}", hanging.port);
    std::thread::scope(|scope| {
        let held: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| probe(&exporter, &q, Some("30")).1))
            .collect();
        let deadline = Instant::now() + WAIT;
        while hanging.seen.lock().unwrap().len() < 4 {
            assert!(
                Instant::now() < deadline,
                "the hanging target was not fetched"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, body, _) = probe(&exporter, &format!("{q}&debug=true"), Some("2"));
        assert_eq!(status, 200);
        assert!(
            body.contains("reason no_slot: 4 probe(s) of this target were in flight"),
            "{body}"
        );
        assert!(body.contains("(--probe.max-per-target)"), "{body}");
        assert_eq!(
            hanging.seen.lock().unwrap().len(),
            4,
            "a fifth fetch of the target ran"
        );
        drop(hanging);
        for h in held {
            let body = h.join().unwrap();
            assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0), "{body}");
        }
    });
    let metrics = exporter.scrape();
    assert_eq!(
        value_in(
            &metrics,
            "quarry_probe_errors_total{module=\"app_status\",reason=\"no_slot\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// Issue 20, item 15: a target that redirects to the exporter's own `/probe` (for itself) is a
/// loop. The probe that came back carries the exporter's own mark and is refused (508), so
/// the target is fetched once and the outer probe fails at once with `http_status`, instead
/// of each round holding another slot until all were taken. An exporter probed through
/// another one's probe (a different mark) is not a loop.
#[test]
fn a_target_leading_back_to_probe_is_refused_as_a_loop() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let looping = Upstream::start();
    let back: &'static str = Box::leak(
        format!(
            "http://127.0.0.1:{}/probe?module=app_status&target=127.0.0.1:{}",
            exporter.port, looping.port
        )
        .into_boxed_str(),
    );
    looping.route("/status.json", Reply::Redirect(back));
    let q = format!(
        "module=app_status&target=127.0.0.1:{}&debug=true",
        looping.port
    );
    let (status, body, _) = probe(&exporter, &q, Some("10"));
    assert_eq!(status, 200);
    assert!(
        body.contains("reason http_status: HTTP 508 Loop Detected"),
        "{body}"
    );
    assert_eq!(looping.seen.lock().unwrap().len(), 1, "the loop went round");
    let metrics = exporter.scrape();
    assert_eq!(
        value_in(&metrics, "quarry_probes_total{module=\"app_status\"}"),
        Some(1.0),
        "the refused request is not a probe: {metrics}"
    );
    assert_eq!(value_in(&metrics, "quarry_probe_slots_in_use"), Some(0.0));

    // Another exporter's mark passes, and this one's is added after it.
    let fine = json_target(3);
    let q = format!("/probe?module=app_status&target=127.0.0.1:{}", fine.port);
    let (status, _, body) = exporter.get(&q, &[("X-Quarry-Probe-Via", "qelsewhere")]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(value_in(&body, "app_requests"), Some(3.0), "{body}");
    let seen = fine.seen.lock().unwrap();
    let via = seen[0]
        .1
        .iter()
        .find(|(k, _)| k == "x-quarry-probe-via")
        .unwrap();
    assert!(via.1.starts_with("qelsewhere, q"), "{via:?}");
}

/// Issue 20, item 18: a repeated `target` or `module` is refused, never resolved one way or
/// the other (a proxy that allow-lists the first would be bypassed by a last that wins).
#[test]
fn a_repeated_target_or_module_is_refused() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let allowed = json_target(1);
    let other = json_target(2);
    for (query, name) in [
        (
            format!(
                "module=app_status&target=127.0.0.1:{}&target=127.0.0.1:{}",
                allowed.port, other.port
            ),
            "target",
        ),
        (
            format!(
                "target=127.0.0.1:{}&module=app_status&module=app_status",
                allowed.port
            ),
            "module",
        ),
        // A name spelled with escapes is the same name.
        (
            format!(
                "module=app_status&target=127.0.0.1:{}&targ%65t=127.0.0.1:{}",
                allowed.port, other.port
            ),
            "target",
        ),
    ] {
        let (status, body, _) = probe(&exporter, &query, None);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body.contains(&format!(
                "the `{name}` parameter is given 2 times; give it once"
            )),
            "{query}: {body}"
        );
    }
    assert_eq!(allowed.seen.lock().unwrap().len(), 0);
    assert_eq!(other.seen.lock().unwrap().len(), 0);
}

/// Issue 20, item 19: a failed probe's target reaches the landing page (and the debug answer)
/// with its password and query values redacted, as source URLs are.
#[test]
fn the_landing_page_shows_failed_targets_without_their_secrets() {
    let dir = tempdir();
    let config = CONFIG.replace("http://$target/status.json", "$target");
    let exporter = Exporter::start(dir.path(), &config);
    let failing = Upstream::start();
    failing.route("/x", Reply::Status(503));
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (port, reason) in [(failing.port, "http_status"), (closed, "connect")] {
        let target = format!("http://user:pa55word@127.0.0.1:{port}/x?k=s3cret&flag");
        let q = format!("target={}&debug=true", urlencode(&target));
        let (status, body, _) = probe(&exporter, &q, Some("5"));
        assert_eq!(status, 200);
        assert!(body.contains(&format!("reason {reason}")), "{body}");
        let (_, _, page) = exporter.get("/", &[]);
        let page = String::from_utf8(page).unwrap();
        for shown in [&page, &body] {
            assert!(
                !shown.contains("pa55word") && !shown.contains("s3cret"),
                "a secret is shown:\n{shown}"
            );
        }
        let redacted = format!("http://user:***@127.0.0.1:{port}/x?k=***&amp;flag: {reason}: ");
        assert!(page.contains(&redacted), "{redacted} not in\n{page}");
        assert!(
            body.contains(&format!(
                "Target:   http://user:***@127.0.0.1:{port}/x?k=***&flag\n"
            )),
            "{body}"
        );
    }
    let log = exporter.log_text();
    assert!(
        !log.contains("pa55word") && !log.contains("s3cret"),
        "{log}"
    );
}

/// Percent-encodes a query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A target that sends the headers of a `length`-byte body and the first bytes of it, then
/// nothing more until dropped: a body that holds its room in the budget.
struct StalledBody {
    port: u16,
    stop: std::sync::mpsc::Sender<()>,
}

impl StalledBody {
    fn start(length: usize) -> StalledBody {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"requests\": "
            );
            let _ = conn.flush();
            let _ = stopped.recv();
        });
        StalledBody { port, stop }
    }
}

impl Drop for StalledBody {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// Issue 20, item 16: bodies take their bytes from `--probe.max-body-bytes-in-flight` as they
/// arrive. While a stalled 800 kB body holds its room in a 1 MiB budget, a 400 kB document
/// waits for room and fails with `no_slot` (saying why), a small one fits and succeeds; once
/// the stalled body goes, the large one succeeds and the budget is all free again.
#[test]
fn documents_in_flight_share_a_byte_budget() {
    let dir = tempdir();
    let config_file = dir.path().join("exporter.yaml");
    std::fs::write(&config_file, CONFIG).unwrap();
    let exporter = Exporter::start_with(&config_file, &["--probe.max-body-bytes-in-flight=1MiB"]);
    assert_eq!(
        exporter.value("quarry_probe_body_budget_bytes"),
        Some(1048576.0)
    );
    let padding = "x".repeat(400_000);
    let large = Upstream::start();
    large.route(
        "/status.json",
        Reply::Ok(
            "application/json",
            format!("{{\"requests\": 4, \"padding\": \"{padding}\", \"workers\": {{}}}}"),
        ),
    );
    let small = json_target(5);
    let stalled = StalledBody::start(800_000);
    let stalled_query = format!("module=app_status&target=127.0.0.1:{}", stalled.port);
    std::thread::scope(|scope| {
        let held = scope.spawn(|| probe(&exporter, &stalled_query, Some("30")).1);
        wait_for(&exporter, "quarry_probe_body_bytes_in_flight", 800_000.0);
        let q = format!(
            "module=app_status&target=127.0.0.1:{}&debug=true",
            large.port
        );
        let (_, body, _) = probe(&exporter, &q, Some("2"));
        assert!(body.contains("reason no_slot: no room for"), "{body}");
        assert!(body.contains("--probe.max-body-bytes-in-flight"), "{body}");
        let q = format!("module=app_status&target=127.0.0.1:{}", small.port);
        let (_, body, _) = probe(&exporter, &q, Some("5"));
        assert_eq!(value_in(&body, "app_requests"), Some(5.0), "{body}");
        drop(stalled);
        let body = held.join().unwrap();
        assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0), "{body}");
    });
    wait_for(&exporter, "quarry_probe_body_bytes_in_flight", 0.0);
    let q = format!("module=app_status&target=127.0.0.1:{}", large.port);
    let (_, body, _) = probe(&exporter, &q, Some("5"));
    assert_eq!(value_in(&body, "app_requests"), Some(4.0), "{body}");
    // A document larger than the whole budget can never fit: too large, at once.
    let huge = Upstream::start();
    huge.route(
        "/status.json",
        Reply::Ok(
            "application/json",
            format!("{{\"p\": \"{}\"}}", "y".repeat(1_100_000)),
        ),
    );
    let q = format!(
        "module=app_status&target=127.0.0.1:{}&debug=true",
        huge.port
    );
    let (_, body, _) = probe(&exporter, &q, Some("5"));
    assert!(body.contains("reason too_large: a document of 1100009 bytes is larger than --probe.max-body-bytes-in-flight"), "{body}");
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// Issue 20, item 16: memory comes back. Twelve probes at once of a 4 MB JSON document
/// (items, as a large status page is): the bodies wait for room in the budget, the large
/// documents are parsed one at a time, and once they are answered the exporter's resident
/// memory is back within 32 MiB of where it started (glibc is asked to return what its arenas
/// keep). Before, each round left 100 MiB and more resident.
#[test]
fn memory_of_large_documents_is_given_back() {
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), CONFIG);
    let items: Vec<String> = (0..60_000)
        .map(|i| {
            format!(
                "{{\"name\": \"item-{i:07}\", \"state\": \"OK\", \"latency_ms\": {}}}",
                i % 1000
            )
        })
        .collect();
    let doc = format!(
        "{{\"requests\": 60000, \"items\": [{}], \"workers\": {{}}}}",
        items.join(", ")
    );
    assert!(doc.len() > 3_500_000, "{}", doc.len());
    let large = Upstream::start();
    large.route("/status.json", Reply::Ok("application/json", doc));
    let idle = status_kib(exporter.pid(), "VmRSS");
    let q = format!("module=app_status&target=127.0.0.1:{}", large.port);
    for _ in 0..2 {
        std::thread::scope(|scope| {
            let answers: Vec<_> = (0..12)
                .map(|_| scope.spawn(|| probe(&exporter, &q, Some("120")).1))
                .collect();
            for a in answers {
                let body = a.join().unwrap();
                assert_eq!(value_in(&body, "app_requests"), Some(60000.0), "{body}");
            }
        });
    }
    // Every document was released before its answer was sent; the trim that follows runs on
    // the blocking pool: give it its turn (no time is asserted: the condition is polled until
    // it holds or WAIT runs out).
    let deadline = Instant::now() + WAIT;
    let mut after = status_kib(exporter.pid(), "VmRSS");
    while after > idle + (32 << 10) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = status_kib(exporter.pid(), "VmRSS");
    }
    let peak = status_kib(exporter.pid(), "VmHWM");
    eprintln!("resident: {idle} KiB before, peak {peak} KiB, {after} KiB after");
    assert!(
        after <= idle + (32 << 10),
        "resident {idle} KiB before, {after} KiB after (peak {peak} KiB)"
    );
}

/// Issue 24, item 9: a failed probe keeps nothing, so it cannot know the target's components,
/// but it answers the series its state metrics pre-declare (`label_values`) as `unknown`
/// (grey on the dashboards) instead of nothing; no other metric of the module, no stale
/// value. A successful probe answers its document, the pre-declared series it lacks unknown.
#[test]
fn issue_24_a_failed_probe_answers_pre_declared_states_as_unknown() {
    let dir = tempdir();
    let config = CONFIG.replace(
        "states: [idle, busy, dead]}",
        "states: [idle, busy, dead], label_values: {worker: [w1, w2, w3]}}",
    );
    assert_ne!(config, CONFIG);
    let exporter = Exporter::start(dir.path(), &config);
    let failing = Upstream::start();
    failing.route("/status.json", Reply::Status(500));
    let (status, body, _) = probe(
        &exporter,
        &format!("module=app_status&target=127.0.0.1:{}", failing.port),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0), "{body}");
    for w in ["w1", "w2", "w3"] {
        let unknown = format!("app_worker_state{{state=\"unknown\",worker=\"{w}\"}}");
        assert_eq!(value_in(&body, &unknown), Some(1.0), "{body}");
        let idle = format!("app_worker_state{{state=\"idle\",worker=\"{w}\"}}");
        assert_eq!(value_in(&body, &idle), Some(0.0), "{body}");
        let level = format!("app_worker_state_level{{worker=\"{w}\"}}");
        assert_eq!(value_in(&body, &level), Some(3.0), "{body}");
    }
    assert!(
        !body.contains("app_requests"),
        "a failed probe shows no stale or made-up value: {body}"
    );
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok()
    {
        crate::common::assert_promtool_accepts(&body);
    }
    let healthy = json_target(7);
    let (_, body, _) = probe(
        &exporter,
        &format!("module=app_status&target=127.0.0.1:{}", healthy.port),
        None,
    );
    assert_eq!(value_in(&body, "quarry_probe_success"), Some(1.0), "{body}");
    assert_eq!(
        value_in(&body, "app_worker_state_level{worker=\"w2\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value_in(&body, "app_worker_state_level{worker=\"w3\"}"),
        Some(3.0),
        "{body}"
    );
    // Without label_values a failed probe answers no series of the module (the dashboards
    // show its last hour's components as unknown instead).
    let plain = tempdir();
    let exporter = Exporter::start(plain.path(), CONFIG);
    let (_, body, _) = probe(
        &exporter,
        &format!("module=app_status&target=127.0.0.1:{}", failing.port),
        None,
    );
    assert!(!body.contains("app_worker_state"), "{body}");
}

/// Issue 24, item 8: json_exporter users write the port, or more of the host name, after
/// `$target`; the target is then a host. Such a module passes `check` and probes.
#[test]
fn a_template_with_the_port_after_target_probes_the_host_given() {
    let dir = tempdir();
    let target = json_target(77);
    let config = CONFIG.replace(
        "http://$target/status.json",
        &format!("http://$target:{}/status.json", target.port),
    );
    let exporter = Exporter::start(dir.path(), &config);
    let (status, body, _) = probe(&exporter, "module=app_status&target=127.0.0.1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(value_in(&body, "app_requests"), Some(77.0), "{body}");
    // A target that brings its own port makes an invalid URL: refused with the URL it made.
    let (status, body, _) = probe(&exporter, "module=app_status&target=127.0.0.1:9", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("which is not a URL"), "{body}");
}
