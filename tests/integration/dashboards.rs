//! The bundled dashboards and alerts: lint, kept in step with the generator, and proven end
//! to end: a real Prometheus (Debian's package) scrapes the real exporter running the shipped
//! `exporter.yaml`, and every target of every panel of every dashboard must be valid PromQL
//! that returns data.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::prom::{prometheus_available, Prometheus};
use crate::upstream::{Reply, Upstream};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bundled() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// How the bundled status board is generated from the shipped config.
const STATUS_BOARD: &[&str] = &[
    "--uid=quarry-status-board",
    "--title=quarry_exporter / Status board",
];

fn generate(args: &[&str]) -> Value {
    let out = Command::new(binary())
        .current_dir(root())
        .arg("dashboard")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bundled_dashboards_are_the_generators_output() {
    let pairs = [
        ("quarry-exporter-health.json", generate(&["--health"])),
        ("quarry-status-board.json", generate(STATUS_BOARD)),
    ];
    for (file, generated) in pairs {
        let path = root().join("dashboards").join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&generated).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            on_disk == generated,
            "{file} is stale: regenerate with UPDATE_GOLDEN=1 cargo test"
        );
    }
}

#[test]
fn dashboards_follow_the_conventions() {
    let boards = bundled();
    assert!(boards.len() >= 2);
    let mut uids = HashSet::new();
    for (file, d) in &boards {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            uid.starts_with("quarry-") && uids.insert(uid.to_owned()),
            "{file}: uid {uid:?}"
        );
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 36,
            "{file}: schemaVersion"
        );
        assert!(!d["tags"].as_array().unwrap().is_empty(), "{file}: tags");
        let vars: Vec<&Value> = d["templating"]["list"].as_array().unwrap().iter().collect();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).copied();
        let datasource =
            var("datasource").unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(datasource["type"], "datasource", "{file}");
        assert_eq!(datasource["query"], "prometheus", "{file}");
        assert!(
            var("job").is_some() && var("instance").is_some(),
            "{file}: job and instance variables"
        );
        let mut ids = HashSet::new();
        let mut boxes: Vec<(u64, u64, u64, u64, String)> = Vec::new();
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: duplicate panel id in {title}"
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24, "{file}: {title} is wider than the grid");
            for (bx, by, bw, bh, other) in &boxes {
                let overlap = x < bx + bw && *bx < x + w && y < by + bh && *by < y + h;
                assert!(!overlap, "{file}: {title} overlaps {other}");
            }
            boxes.push((x, y, w, h, title.clone()));
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: {title} datasource"
            );
            assert!(
                p["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty()),
                "{file}: {title} has no unit"
            );
            assert!(
                p["description"].as_str().is_some_and(|s| s.len() > 10),
                "{file}: {title} has no description"
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no target");
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{file}: {title} target datasource"
                );
                let expr = t["expr"].as_str().unwrap();
                let probed =
                    expr.contains("job=\"$probe_job\"") && expr.contains("instance=~\"$target\"");
                assert!(
                    (expr.contains("job=\"$job\"") && expr.contains("instance=~\"$instance\""))
                        || (probed && var("probe_job").is_some() && var("target").is_some()),
                    "{file}: {title}: {expr}"
                );
                if expr.contains("rate(") {
                    assert!(
                        expr.contains("[$__rate_interval]"),
                        "{file}: {title}: rates use $__rate_interval: {expr}"
                    );
                }
            }
        }
    }
}

fn promtool_available() -> bool {
    let ok = Command::new("promtool").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required in CI"
        );
        eprintln!("promtool not installed; skipping");
    }
    ok
}

#[test]
fn shipped_prometheus_config_and_alert_tests_pass_promtool() {
    if !promtool_available() {
        return;
    }
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "config", "probe.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .current_dir(root().join("prometheus"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_panel_shows_data_from_a_real_prometheus() {
    if !prometheus_available() {
        return;
    }
    // The shipped config and examples, in a copy the test can append to.
    let shipped = Shipped::copy();
    let dir = &shipped.dir;
    let exporter = Exporter::start_with(&shipped.config(), &[]);
    // A target for the shipped probe module: the example health document over real HTTP.
    let target = Upstream::start();
    target.route(
        "/components.json",
        Reply::Ok(
            "application/json",
            std::fs::read_to_string(root().join("examples/status/components.json")).unwrap(),
        ),
    );
    let prometheus = Prometheus::start_with(
        dir.path(),
        &format!(
            r#"  - job_name: quarry
    static_configs: [{{targets: ["127.0.0.1:{exporter}"]}}]
  - job_name: probe
    metrics_path: /probe
    params: {{module: [health_json]}}
    static_configs: [{{targets: ["127.0.0.1:{target}"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "127.0.0.1:{exporter}"}}
"#,
            exporter = exporter.port,
            target = target.port
        ),
    );
    // Live traffic while Prometheus scrapes, so rates and quantiles have something to show.
    let access = dir.path().join("examples/logs/access.log");
    let app = dir.path().join("examples/logs/app.log");
    let start = Instant::now();
    let mut i = 0;
    loop {
        let ready = prometheus
            .query(r#"count_over_time(up{job="quarry"}[1m]) >= 12"#)
            .map(|r| !r.is_empty())
            .unwrap_or(false);
        if ready && start.elapsed() > Duration::from_secs(12) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus did not scrape: {}",
            prometheus.log()
        );
        for method in ["GET", "POST"] {
            append(&access, format!("10.0.0.{i} - - [26/Nov/2026:10:00:00 +0000] \"{method} /api HTTP/1.1\" 200 {} \"-\" \"test\" 0.0{}\n", 100 + i, 1 + i % 9));
        }
        append(
            &app,
            format!(
                "2026-11-26T10:00:00Z INFO worker: queue_depth={} workers=4\n",
                i % 7
            ),
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    // What Prometheus scraped passes promtool's lint.
    assert_promtool_accepts(&exporter.scrape());
    let mut boards = bundled();
    boards.push((
        "generated (quarry_exporter dashboard)".into(),
        generate(STATUS_BOARD),
    ));
    let Queried {
        checked,
        failures,
        fallbacks,
    } = query_every_target(&prometheus, &boards);
    assert!(checked > 50, "only {checked} targets");
    assert!(
        failures.is_empty(),
        "{} of {checked} targets failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The shipped config has every kind of source, a module and a JSON-lines source: every
    // query finds real series (error counters exported at 0), none needs its fallback.
    assert!(fallbacks.is_empty(), "{fallbacks:?}");
    // The shipped config reads JSON lines: its board has the unreadable-records panel.
    assert!(titles(&generate(STATUS_BOARD)).contains(&"Unreadable records by reason".to_owned()));
}

/// What [`query_every_target`] found.
struct Queried {
    /// Queries run.
    checked: usize,
    /// Queries that failed or returned no data.
    failures: Vec<String>,
    /// Queries that returned only their "nothing of the kind" fallback (a series labelled
    /// `(no page sources)`, `(none)`, ...), as `<board> / <title>`: none of them on a board made
    /// for the config (it has only panels the config can feed), nor on any board on a config
    /// that has every kind (the exporter exports its error counters at 0, so no fallback is
    /// needed where something of the kind exists).
    fallbacks: Vec<String>,
}

/// Runs every target of every panel of `boards` as an instant query (Grafana's variables
/// substituted: all instances and targets). Prints, per board, how many returned data.
fn query_every_target(prometheus: &Prometheus, boards: &[(String, Value)]) -> Queried {
    let mut failures = Vec::new();
    let mut fallbacks = Vec::new();
    let mut checked = 0;
    for (file, d) in boards {
        let (mut ran, mut with_data) = (0, 0);
        for p in panels(d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "20s")
                    .replace("$probe_job", "probe")
                    .replace("$job", "quarry")
                    .replace("$instance", ".*")
                    .replace("$target", ".*");
                checked += 1;
                ran += 1;
                match prometheus.query(&expr) {
                    Ok(r) if r.is_empty() => {
                        failures.push(format!("{file} / {}: no data: {expr}", p["title"]))
                    }
                    Ok(r) => {
                        with_data += 1;
                        let fallback = r.iter().any(|series| {
                            series["metric"].as_object().unwrap().values().any(|v| {
                                v.as_str()
                                    .is_some_and(|v| v.starts_with("(no ") || v == "(none)")
                            })
                        });
                        if fallback {
                            fallbacks.push(format!("{file} / {}", p["title"]));
                        }
                    }
                    Err(e) => failures.push(format!("{file} / {}: {e}: {expr}", p["title"])),
                }
            }
        }
        eprintln!("{file}: {with_data} of {ran} queries return data");
    }
    eprintln!("fallbacks: {fallbacks:?}");
    Queried {
        checked,
        failures,
        fallbacks,
    }
}

/// Every panel's title.
fn titles(d: &Value) -> Vec<String> {
    panels(d)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Waits until Prometheus has scraped the exporter (job `quarry`) a dozen times in the last
/// minute and at least `at_least` has passed, so rates and increases have samples.
fn wait_for_scrapes(prometheus: &Prometheus, at_least: Duration) {
    let start = Instant::now();
    loop {
        let ready = prometheus
            .query(r#"count_over_time(up{job="quarry"}[1m]) >= 12"#)
            .map(|r| !r.is_empty())
            .unwrap_or(false);
        if ready && start.elapsed() > at_least {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus did not scrape: {}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The config of `issue_24_*`'s probe-only test: the shipped `health_json` module, no sources.
const PROBE_ONLY: &str = r#"version: 1
metrics:
  - {name: service_component_state, type: state, help: State of each component of a probed service., labels: [component], states: [up, degraded, maintenance, down]}
  - {name: service_component_response_seconds, type: gauge, help: Response time each component reports., labels: [component]}
modules:
  - name: health_json
    http: {url: "http://$target/components.json", timeout: 2s}
    rules:
      - name: component
        json:
          for_each: "$.components.*"
          fields: {component: "@key", status: "@.status", response: "@.response_time"}
        update:
          - {metric: service_component_state, labels: {component: $component}, state: $status,
             map: {"OK": up, "DEGRADED*": degraded, "MAINTENANCE*": maintenance, "DOWN*": down}}
          - {metric: service_component_response_seconds, labels: {component: $component}, set: $response, as: duration}
"#;

/// Issue 24, items 7 and 9: on a probe-only config, the generated board has no panel the
/// config cannot feed (no page-source, file, rule or record panels), and every query of it and
/// of the bundled health board returns data; a target whose probe fails keeps its component
/// lanes, as `unknown`, and one never seen gets one `unknown` lane; lanes and legends are per
/// target and component.
#[test]
fn issue_24_dashboards_fit_a_probe_only_config_and_failed_probes_stay_unknown() {
    if !prometheus_available() {
        return;
    }
    let dir = tempdir();
    let config = dir.path().join("probes.yaml");
    std::fs::write(&config, PROBE_ONLY).unwrap();
    let exporter = Exporter::start_with(&config, &[]);
    let document = std::fs::read_to_string(root().join("examples/status/components.json")).unwrap();
    let healthy = Upstream::start();
    healthy.route(
        "/components.json",
        Reply::Ok("application/json", document.clone()),
    );
    // Healthy at first, then failing: its components were seen.
    let flaky = Upstream::start();
    flaky.route("/components.json", Reply::Ok("application/json", document));
    // Never answers: a closed port, its components never seen.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prometheus = Prometheus::start_with(
        dir.path(),
        &format!(
            r#"  - job_name: quarry
    static_configs: [{{targets: ["127.0.0.1:{exporter}"]}}]
  - job_name: probe
    metrics_path: /probe
    params: {{module: [health_json]}}
    static_configs: [{{targets: ["127.0.0.1:{healthy}", "127.0.0.1:{flaky}", "127.0.0.1:{dead}"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "127.0.0.1:{exporter}"}}
"#,
            exporter = exporter.port,
            healthy = healthy.port,
            flaky = flaky.port,
        ),
    );
    wait_for_scrapes(&prometheus, Duration::from_secs(6));
    flaky.route("/components.json", Reply::Status(500));
    let flaky_failing = format!(
        r#"quarry_probe_success{{instance="127.0.0.1:{}"}} == 0"#,
        flaky.port
    );
    let start = Instant::now();
    while prometheus
        .query(&flaky_failing)
        .map(|r| r.is_empty())
        .unwrap_or(true)
    {
        assert!(start.elapsed() < WAIT, "the flaky target never failed");
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));

    let board = generate(&[&format!("--config.file={}", config.display())]);
    let names = titles(&board);
    for absent in [
        "Page sources down",
        "Source up",
        "Lines read per second",
        "Matches per second",
        "Unmatched records",
        "Unreadable records by reason",
    ] {
        assert!(
            !names.contains(&absent.to_owned()),
            "{absent} on a probe-only board: {names:?}"
        );
    }
    for present in [
        "Targets failing",
        "Probe slots",
        "Service component state over time",
        "Memory",
    ] {
        assert!(
            names.contains(&present.to_owned()),
            "{present} missing: {names:?}"
        );
    }
    let mut boards: Vec<(String, Value)> = bundled()
        .into_iter()
        .filter(|(f, _)| f == "quarry-exporter-health.json")
        .collect();
    boards.push(("generated for probes.yaml".into(), board.clone()));
    let Queried {
        checked,
        failures,
        fallbacks,
    } = query_every_target(&prometheus, &boards);
    assert!(
        failures.is_empty(),
        "{} of {checked} targets failed on a probe-only config:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The board made for it has only panels the config feeds: no fallback answers there.
    let generated: Vec<&String> = fallbacks
        .iter()
        .filter(|f| f.starts_with("generated"))
        .collect();
    assert!(generated.is_empty(), "{generated:?}");

    // The state timeline: a lane per target and component; the flaky target's five
    // components and the dead target's one lane are unknown (level 4), the healthy target's
    // have their states.
    let panel = |title: &str| {
        panels(&board)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title}"))
            .clone()
    };
    let timeline = panel("Service component state over time");
    let target = &timeline["targets"][0];
    assert_eq!(target["legendFormat"], "{{instance}} {{component}}");
    let expr = target["expr"]
        .as_str()
        .unwrap()
        .replace("$probe_job", "probe")
        .replace("$target", ".*");
    let lanes: Vec<(String, String, f64)> = prometheus
        .query(&expr)
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap().to_owned(),
                s["metric"]["component"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let of = |port: u16| {
        let mut l: Vec<(String, f64)> = lanes
            .iter()
            .filter(|(i, _, _)| *i == format!("127.0.0.1:{port}"))
            .map(|(_, c, v)| (c.clone(), *v))
            .collect();
        l.sort_by(|a, b| a.0.cmp(&b.0));
        l
    };
    let states = |v: &[(&str, f64)]| {
        v.iter()
            .map(|(c, l)| (c.to_string(), *l))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(healthy.port),
        states(&[
            ("checkout-api", 0.0),
            ("email", 3.0),
            ("inventory", 0.0),
            ("payments", 1.0),
            ("search", 2.0)
        ]),
        "{lanes:?}"
    );
    assert_eq!(
        of(flaky.port),
        states(&[
            ("checkout-api", 4.0),
            ("email", 4.0),
            ("inventory", 4.0),
            ("payments", 4.0),
            ("search", 4.0)
        ]),
        "{lanes:?}"
    );
    assert_eq!(of(dead), states(&[("(not seen)", 4.0)]), "{lanes:?}");
    assert_eq!(lanes.len(), 11, "{lanes:?}");
    let worst = panel("Worst service component state");
    let expr = worst["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .replace("$probe_job", "probe")
        .replace("$target", ".*");
    assert_eq!(prometheus.scalar(&expr, None), 4.0, "{expr}");
    // The response gauge: labelled by target and component.
    let response = panel("Service component response");
    assert_eq!(
        response["targets"][0]["legendFormat"],
        "{{instance}} {{component}}"
    );
}

/// Issue 24, item 7: a config whose file sources read plain lines (no `format`, `multiline`,
/// `json:` or `logfmt:`) and that has no page source or probe module: its board has no
/// unreadable-records, page-source or probe panel, and every query of it and of the bundled
/// health board returns data when nothing went wrong.
#[test]
fn issue_24_dashboards_fit_a_config_without_records_pages_or_probes() {
    if !prometheus_available() {
        return;
    }
    let dir = tempdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = dir.path().join("lines.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nmetrics:\n  - {{name: app_messages_total, type: counter, help: Messages by level., labels: [level], label_values: {{level: [INFO, ERROR]}}}}\nsources:\n  - name: app\n    file: {{paths: [{}], start_at: beginning}}\n    rules:\n      - name: level\n        regex: '^(?P<level>[A-Z]+) '\n        update:\n          - {{metric: app_messages_total, labels: {{level: $level}}}}\n",
            path_str(&log)
        ),
    )
    .unwrap();
    let exporter = Exporter::start_with(&config, &[]);
    let prometheus = Prometheus::start(dir.path(), exporter.port);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        append(&log, "INFO started\n");
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_for_scrapes(&prometheus, Duration::from_secs(12));

    let board = generate(&[&format!("--config.file={}", config.display())]);
    let names = titles(&board);
    for absent in [
        "Unreadable records by reason",
        "Page sources down",
        "Source failures by reason",
        "Probe slots",
        "Targets failing",
    ] {
        assert!(
            !names.contains(&absent.to_owned()),
            "{absent} on a file-only board: {names:?}"
        );
    }
    for present in [
        "App messages per second",
        "Lines read per second",
        "Failed updates by reason",
        "Unmatched records",
    ] {
        assert!(
            names.contains(&present.to_owned()),
            "{present} missing: {names:?}"
        );
    }
    let mut boards: Vec<(String, Value)> = bundled()
        .into_iter()
        .filter(|(f, _)| f == "quarry-exporter-health.json")
        .collect();
    boards.push(("generated for lines.yaml".into(), board));
    let Queried {
        checked,
        failures,
        fallbacks,
    } = query_every_target(&prometheus, &boards);
    assert!(
        failures.is_empty(),
        "{} of {checked} targets failed on a file-only config:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let generated: Vec<&String> = fallbacks
        .iter()
        .filter(|f| f.starts_with("generated"))
        .collect();
    assert!(generated.is_empty(), "{generated:?}");
}

/// A board generated for another config never takes a bundled board's uid (an import would
/// overwrite it), is named after its config, reads percentiles as p50/p90/p99 and titles its
/// panels for people; the health board needs no config at all.
#[test]
fn generated_boards_have_their_own_uid_human_titles_and_percentile_legends() {
    let dir = tempdir();
    let config = dir.path().join("payments.yaml");
    std::fs::write(
        &config,
        "version: 1\nmetrics:\n  - {name: payment_latency_seconds, type: histogram, help: Latency., labels: [provider]}\n  - {name: payments_total, type: counter, help: Payments.}\nsources:\n  - name: log\n    file: {paths: [x.log]}\n    rules:\n      - regex: 'provider=(?P<p>\\w+) took=(?P<t>[\\d.]+)'\n        update:\n          - {metric: payment_latency_seconds, labels: {provider: $p}, observe: $t}\n          - {metric: payments_total}\n",
    )
    .unwrap();
    let board = generate(&[&format!("--config.file={}", config.display())]);
    let uid = board["uid"].as_str().unwrap();
    assert!(uid.starts_with("quarry-payments-"), "{uid}");
    assert!(uid.len() <= 40, "Grafana uids hold 40 characters: {uid}");
    for (_, bundled) in bundled() {
        assert_ne!(bundled["uid"].as_str().unwrap(), uid);
    }
    assert_eq!(board["title"], "quarry_exporter / payments.yaml");
    // The same config file gives the same uid: regenerating updates the board.
    let again = generate(&[&format!("--config.file={}", config.display())]);
    assert_eq!(again["uid"], board["uid"]);
    let titles: Vec<&str> = panels(&board)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert!(titles.contains(&"Payment latency quantiles"), "{titles:?}");
    assert!(titles.contains(&"Payments per second"), "{titles:?}");
    let quantiles = panels(&board)
        .into_iter()
        .find(|p| p["title"] == "Payment latency quantiles")
        .unwrap();
    let legends: Vec<&str> = quantiles["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["legendFormat"].as_str().unwrap())
        .collect();
    assert_eq!(
        legends,
        ["p50 {{provider}}", "p90 {{provider}}", "p99 {{provider}}"]
    );
    assert_eq!(quantiles["fieldConfig"]["defaults"]["unit"], "s");
    // --health reads no config.
    let health = generate(&["--health", "--config.file=/nonexistent/exporter.yaml"]);
    assert_eq!(health["uid"], "quarry-exporter-health");
}
