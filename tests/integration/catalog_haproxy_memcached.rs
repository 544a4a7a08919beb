//! The catalog's `haproxy`, `haproxy-socket` and `memcached` modules against real servers:
//! HAProxy 2.6 with two frontends, a backend and two servers after some traffic, read by
//! prometheus-haproxy-exporter 0.14 and by each module (the CSV page frozen and served byte for
//! byte to both; the runtime socket read live, which counts no traffic); memcached's `stats`
//! compared value by value with the module's series (no memcached_exporter binary here).
//! Also: the two HAProxy modules' files stay twins, and the dashboard has their panels.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, installed, start, Server};
use crate::sockets::memcached_stats;

/// Series of the dedicated exporter that are about itself, not HAProxy.
const EXPORTER_OWN: &[&str] = &[
    "go_",
    "process_",
    "promhttp_",
    "haproxy_exporter_",
    "quarry_",
];

/// A HAProxy with a stats page (and `/frozen`: the file `frozen`, which must exist), a `web`
/// frontend whose backend `app` has `s1` (health-checked, up) and `s2` (no check, pointing at
/// a closed port: connection errors, retries and 503s), and a stats socket. Returns it, the
/// stats port, the web port and the socket's path, once both ports take connections.
///
/// A port from `free_port` is free only when asked: another test's server may bind the web
/// port before HAProxy does, and HAProxy then exits, possibly after the stats port answered.
/// The web port refused the traffic once on a saturated machine, most likely so (HAProxy's
/// log was gone with the test's directory). HAProxy is started again on new ports then, its
/// log printed.
pub(crate) fn start_haproxy(dir: &Path) -> (Server, u16, u16, std::path::PathBuf) {
    for _ in 0..5 {
        let (stats, web, closed) = (free_port(), free_port(), free_port());
        let d = dir.display();
        let socket = dir.join("admin.sock");
        let _ = std::fs::remove_file(&socket);
        let cfg = format!(
            "global
  stats socket {d}/admin.sock mode 600 level user
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend stats
  bind 127.0.0.1:{stats}
  http-request return status 200 content-type text/plain file {d}/frozen if {{ path /frozen }}
  http-request return status 200 content-type text/plain string ok if {{ path /ok }}
  stats enable
  stats uri /stats
frontend web
  bind 127.0.0.1:{web}
  use_backend app
backend app
  retries 1
  server s1 127.0.0.1:{stats} check inter 500ms
  server s2 127.0.0.1:{closed}
"
        );
        std::fs::write(dir.join("frozen"), "").unwrap();
        std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
        let cfg = dir.join("haproxy.cfg");
        let mut server = start("haproxy", &["-f", cfg.to_str().unwrap()], stats, dir);
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", web)).is_ok() {
                return (server, stats, web, socket);
            }
            if matches!(server.0.try_wait(), Ok(Some(_))) || started.elapsed() > WAIT {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!(
            "haproxy did not take connections on {web}, started again on other ports: {}",
            std::fs::read_to_string(dir.join("haproxy.out")).unwrap_or_default()
        );
    }
    panic!("haproxy did not take connections on its ports in five starts");
}

/// Requests through the `web` frontend: answered by s1 (`/ok`) or failing on s2.
pub(crate) fn traffic(web: u16) {
    for _ in 0..6 {
        let _ = http_get(web, "/ok", &[]);
    }
}

/// The stats page's CSV export, its chunked transfer coding (HAProxy's, even to HTTP/1.0)
/// taken off.
fn csv_page(port: u16) -> String {
    let (status, headers, body) = http_get(port, "/stats;csv", &[]);
    assert_eq!(status, 200);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    if !chunked {
        return String::from_utf8(body).unwrap();
    }
    let (mut page, mut rest) = (Vec::new(), &body[..]);
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        page.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
    String::from_utf8(page).unwrap()
}

/// Server status texts of HAProxy 1.4 to 3.x (the `status` column, the 18th).
const SERVER_STATUSES: &[&str] = &[
    "UP",
    "UP 1/3",
    "UP 2/3",
    "UP 1/2",
    "DOWN",
    "DOWN 1/2",
    "NOLB",
    "MAINT",
    "MAINT(via)",
    "MAINT (via app/s1)",
    "DRAIN",
    "DRAIN (agent)",
    "no check",
    "UP (agent)",
    "MAINT(resolution)",
    "STOPPED",
];

/// `page` with a copy of server `s1`'s row per status text (servers `st0`, `st1`, ...), so that
/// both exporters read every status a server can have.
fn with_every_server_status(page: &str) -> String {
    let s1 = page.lines().find(|l| l.starts_with("app,s1,")).unwrap();
    let mut page = page.to_owned();
    for (i, status) in SERVER_STATUSES.iter().enumerate() {
        let mut cells: Vec<&str> = s1.split(',').collect();
        let name = format!("st{i}");
        cells[1] = &name;
        cells[17] = status;
        page.push_str(&cells.join(","));
        page.push('\n');
    }
    page
}

#[test]
fn haproxy_module_is_a_drop_in_for_prometheus_haproxy_exporter() {
    if !installed("haproxy") || !dedicated_installed("prometheus-haproxy-exporter") {
        return;
    }
    let dir = tempdir();
    let (_live, stats, web, _) = start_haproxy(dir.path());
    traffic(web);
    // Freeze one CSV page, then serve it from a second HAProxy (it reads `frozen` at start).
    let page = with_every_server_status(&csv_page(stats));
    assert!(page.lines().count() >= 20, "{page}");
    let frozen_dir = tempdir();
    let (_frozen, frozen_port, _, _) = start_haproxy(frozen_dir.path());
    drop(_frozen);
    std::fs::write(frozen_dir.path().join("frozen"), &page).unwrap();
    let cfg = frozen_dir.path().join("haproxy.cfg");
    let _frozen = start(
        "haproxy",
        &["-f", cfg.to_str().unwrap()],
        frozen_port,
        frozen_dir.path(),
    );
    assert_eq!(get_text(frozen_port, "/frozen"), page);

    let uri = format!("--haproxy.scrape-uri=http://127.0.0.1:{frozen_port}/frozen");
    let dedicated = start_dedicated(
        "prometheus-haproxy-exporter",
        &[&uri, "--web.listen-address=127.0.0.1:{port}"],
        dir.path(),
    );
    let exporter = Exporter::start(
        dir.path(),
        &format!(
            "version: 1\nuse:\n  - {{module: haproxy, with: {{url: \"http://127.0.0.1:{frozen_port}/frozen\", interval: 1s}}}}\n"
        ),
    );
    exporter.wait_value("haproxy_up", 1.0);
    let theirs = get_text(dedicated.1, "/metrics");
    let parity = compare(&theirs, &exporter.scrape(), EXPORTER_OWN);
    assert!(parity.reproduced.len() > 130, "{theirs}\n{parity:?}");
    assert_full_parity("haproxy", &parity);
    // The server's series of each state: s1 up, s2 (no check) up as the exporter says.
    assert_eq!(
        exporter.value(r#"haproxy_server_up{backend="app",server="s1"}"#),
        Some(1.0)
    );

    // A page that is not the CSV (HAProxy's own `/ok`): haproxy_up 0 here, where the exporter
    // counts a CSV parse failure and says haproxy_up 1.
    let other = tempdir();
    let not_csv = Exporter::start(
        other.path(),
        &format!(
            "version: 1\nuse:\n  - {{module: haproxy, with: {{url: \"http://127.0.0.1:{frozen_port}/ok\"}}}}\n"
        ),
    );
    not_csv.wait_value("haproxy_up", 0.0);

    // The page goes away: both say haproxy_up 0.
    drop(_frozen);
    exporter.wait_value("haproxy_up", 0.0);
    assert_eq!(
        value_in(&get_text(dedicated.1, "/metrics"), "haproxy_up"),
        Some(0.0)
    );
}

#[test]
fn haproxy_socket_module_is_a_drop_in_on_the_runtime_api() {
    if !installed("haproxy") || !dedicated_installed("prometheus-haproxy-exporter") {
        return;
    }
    let dir = tempdir();
    let (_haproxy, _, web, socket) = start_haproxy(dir.path());
    traffic(web);
    let uri = format!("--haproxy.scrape-uri=unix:{}", socket.display());
    let dedicated = start_dedicated(
        "prometheus-haproxy-exporter",
        &[&uri, "--web.listen-address=127.0.0.1:{port}"],
        dir.path(),
    );
    let exporter = Exporter::start(
        dir.path(),
        &format!(
            "version: 1\nuse:\n  - {{module: haproxy-socket, with: {{path: \"{}\", interval: 1s}}}}\n",
            socket.display()
        ),
    );
    exporter.wait_value("haproxy_up", 1.0);
    // Socket reads count no traffic, but rates decay and health checks run: read both until
    // one pair agrees (a second apart at most).
    let start = Instant::now();
    let parity = loop {
        let theirs = get_text(dedicated.1, "/metrics");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let parity = compare(&theirs, &exporter.scrape(), EXPORTER_OWN);
        if parity.missing.is_empty() || start.elapsed() > WAIT {
            break parity;
        }
    };
    assert!(parity.reproduced.len() > 130, "{parity:?}");
    assert_full_parity("haproxy-socket", &parity);
}

#[test]
fn haproxy_twins_share_metrics_and_rules() {
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    let http = std::fs::read_to_string(catalog.join("haproxy.yaml")).unwrap();
    let socket = std::fs::read_to_string(catalog.join("haproxy-socket.yaml")).unwrap();
    let block = |text: &str, from: &str, to: &str| {
        let start = text.find(from).unwrap();
        text[start..start + text[start..].find(to).unwrap()].to_owned()
    };
    let rules = http[http.find("    rules:\n").unwrap()..].trim_end();
    let socket_rules = socket[socket.find("    rules:\n").unwrap()..].to_owned();
    // The socket twin adds only show info's version rule and metric.
    let without_version = socket_rules.replacen(
        &block(
            &socket_rules,
            "      - name: version\n",
            "      - name: frontend\n",
        ),
        "",
        1,
    );
    assert_eq!(without_version.trim_end(), rules);
    let metrics = block(&http, "metrics:\n", "\nsources:");
    let socket_metrics = block(&socket, "metrics:\n", "\nsources:");
    let version = block(
        &socket_metrics,
        "  - name: haproxy_version_info\n",
        "  - name: haproxy_frontend_",
    );
    assert_eq!(socket_metrics.replacen(&version, "", 1), metrics);
}

/// Whether memcached is installed (required in CI); says so when not.
pub(crate) fn memcached_installed() -> bool {
    let found = Path::new("/usr/bin/memcached").exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "memcached is required in CI"
        );
        eprintln!("memcached not installed; skipping");
    }
    found
}

/// memcached on a free loopback port (TCP only, as nobody); returns it and its port once it
/// listens.
pub(crate) fn start_memcached() -> (Server, u16) {
    let port = free_port();
    let memcached = Server(
        Command::new("/usr/bin/memcached")
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-u",
                "nobody",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "memcached did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (memcached, port)
}

#[test]
fn memcached_module_gives_memcached_own_stats() {
    if !memcached_installed() {
        return;
    }
    let dir = tempdir();
    let (_memcached, port) = start_memcached();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reply = [0u8; 256];
    for command in [
        "set a 0 0 1\r\nx\r\n",
        "set b 0 0 1\r\ny\r\n",
        "get a\r\n",
        "get zz\r\n",
        "delete b\r\n",
        "delete zz\r\n",
        "incr zz 1\r\n",
        "touch a 100\r\n",
    ] {
        client.write_all(command.as_bytes()).unwrap();
        let _ = client.read(&mut reply).unwrap();
    }
    drop(client);
    // Read once (a long interval), then ask memcached itself: traffic paused, both the same
    // moment but for the module's own conversation and ours.
    let exporter = Exporter::start(
        dir.path(),
        &format!(
            "version: 1\nuse:\n  - {{module: memcached, with: {{address: \"127.0.0.1:{port}\", interval: 1h}}}}\n"
        ),
    );
    exporter.wait_value("memcached_up", 1.0);
    let ours = exporter.scrape();
    let stats = memcached_stats(port);
    let stat = |name: &str| stats[name].parse::<f64>().unwrap();
    let exact = [
        ("memcached_current_items", "curr_items"),
        ("memcached_items_total", "total_items"),
        ("memcached_current_bytes", "bytes"),
        ("memcached_limit_bytes", "limit_maxbytes"),
        ("memcached_max_connections", "max_connections"),
        ("memcached_items_evicted_total", "evictions"),
        ("memcached_items_reclaimed_total", "reclaimed"),
        ("memcached_item_too_large_total", "store_too_large"),
        ("memcached_item_no_memory_total", "store_no_memory"),
        ("memcached_direct_reclaims_total", "direct_reclaims"),
        ("memcached_lru_crawler_starts_total", "lru_crawler_starts"),
        ("memcached_lru_crawler_reclaimed_total", "crawler_reclaimed"),
        (
            "memcached_lru_crawler_items_checked_total",
            "crawler_items_checked",
        ),
        ("memcached_lru_crawler_moves_to_cold_total", "moves_to_cold"),
        ("memcached_lru_crawler_moves_to_warm_total", "moves_to_warm"),
        (
            "memcached_lru_crawler_moves_within_lru_total",
            "moves_within_lru",
        ),
        (
            "memcached_connections_rejected_total",
            "rejected_connections",
        ),
        ("memcached_connections_yielded_total", "conn_yields"),
        (
            "memcached_connections_listener_disabled_total",
            "listen_disabled_num",
        ),
        // Our own reader is a connection too, as the module's was when it read.
        ("memcached_current_connections", "curr_connections"),
        (
            r#"memcached_commands_total{command="get",status="hit"}"#,
            "get_hits",
        ),
        (
            r#"memcached_commands_total{command="get",status="miss"}"#,
            "get_misses",
        ),
        (
            r#"memcached_commands_total{command="set",status="hit"}"#,
            "cmd_set",
        ),
        (
            r#"memcached_commands_total{command="delete",status="hit"}"#,
            "delete_hits",
        ),
        (
            r#"memcached_commands_total{command="delete",status="miss"}"#,
            "delete_misses",
        ),
        (
            r#"memcached_commands_total{command="incr",status="miss"}"#,
            "incr_misses",
        ),
        (
            r#"memcached_commands_total{command="decr",status="hit"}"#,
            "decr_hits",
        ),
        (
            r#"memcached_commands_total{command="cas",status="hit"}"#,
            "cas_hits",
        ),
        (
            r#"memcached_commands_total{command="cas",status="miss"}"#,
            "cas_misses",
        ),
        (
            r#"memcached_commands_total{command="incr",status="hit"}"#,
            "incr_hits",
        ),
        (
            r#"memcached_commands_total{command="decr",status="miss"}"#,
            "decr_misses",
        ),
        (
            r#"memcached_commands_total{command="cas",status="badval"}"#,
            "cas_badval",
        ),
        (
            r#"memcached_commands_total{command="touch",status="hit"}"#,
            "touch_hits",
        ),
        (
            r#"memcached_commands_total{command="touch",status="miss"}"#,
            "touch_misses",
        ),
        (
            r#"memcached_commands_total{command="flush",status="hit"}"#,
            "cmd_flush",
        ),
    ];
    assert_eq!(exact.len(), 35);
    for (series, name) in exact {
        assert_eq!(
            value_in(&ours, series),
            Some(stat(name)),
            "{series} ({name})"
        );
    }
    assert_eq!(
        value_in(
            &ours,
            r#"memcached_commands_total{command="get",status="hit"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value_in(
            &ours,
            r#"memcached_commands_total{command="touch",status="hit"}"#
        ),
        Some(1.0)
    );
    // Our reader's connection and its `stats\r\n` (7 bytes) came after the module's read.
    assert_eq!(
        value_in(&ours, "memcached_connections_total"),
        Some(stat("total_connections") - 1.0)
    );
    assert_eq!(
        value_in(&ours, "memcached_read_bytes_total"),
        Some(stat("bytes_read") - 7.0)
    );
    let uptime = value_in(&ours, "memcached_uptime_seconds").unwrap();
    assert!((stat("uptime") - uptime).abs() <= 2.0, "{uptime}");
    let time = value_in(&ours, "memcached_time_seconds").unwrap();
    assert!((stat("time") - time).abs() <= 2.0, "{time}");
    assert!(
        value_in(&ours, "memcached_process_user_cpu_seconds_total").unwrap() <= stat("rusage_user")
    );
    let version = format!(r#"memcached_version{{version="{}"}}"#, stats["version"]);
    assert_eq!(value_in(&ours, &version), Some(1.0));
}

/// The dashboard generator gives each of these modules' metrics a panel (the module's row).
#[test]
fn the_dashboard_has_a_panel_per_haproxy_and_memcached_metric() {
    let dir = tempdir();
    let file = dir.path().join("exporter.yaml");
    for module in ["haproxy", "haproxy-socket", "memcached"] {
        std::fs::write(&file, format!("version: 1\nuse:\n  - module: {module}\n")).unwrap();
        let out = Command::new(binary())
            .args(["--config.file", file.to_str().unwrap(), "dashboard"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let board = String::from_utf8(out.stdout).unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("catalog/{module}.yaml")),
        )
        .unwrap();
        let metrics: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  - name: "))
            .filter(|name| name.starts_with("haproxy_") || name.starts_with("memcached_"))
            .collect();
        assert!(metrics.len() >= 20, "{module}: {metrics:?}");
        for metric in metrics {
            assert!(
                board.contains(&format!("{metric}{{job=")),
                "{module}: no panel reads {metric}"
            );
        }
    }
}
