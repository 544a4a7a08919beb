//! The catalog's `varnish` module against a real Varnish 7.1 (`varnishd -F` on loopback, a
//! tiny backend thread behind it): after some traffic (misses, hits, a 404), paused,
//! prometheus-varnish-exporter 1.6 and the module each run `varnishstat -j` on the same
//! instance, and every sample of the exporter (its own `go_*`, `process_*`, `promhttp_*`
//! aside) must be in the module's `/metrics` with the same name, type, help and labels, and
//! the same value, except the few counters Varnish moves by itself while idle (uptimes, the
//! CLI's and worker pool's lock operations, shared-memory log writes), which must be within a
//! small tolerance. Then varnishd stops, and the module says `varnish_up 0`.

use std::io::Write;
use std::net::TcpListener;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, installed, start, Server};

/// Series of the dedicated exporter that are about itself, not Varnish.
const EXPORTER_OWN: &[&str] = &["go_", "process_", "promhttp_", "quarry_"];

/// Counters an idle varnishd moves by itself (its CLI pings, worker pool housekeeping, the
/// shared-memory log), with how far apart two reads a moment apart may be.
const MOVING: &[(&str, f64)] = &[
    ("varnish_main_uptime", 5.0),
    ("varnish_mgt_uptime", 5.0),
    ("varnish_lock_operations{target=\"cli\"}", 50.0),
    ("varnish_lock_operations{target=\"mempool\"}", 500.0),
    ("varnish_lock_operations{target=\"wq\"}", 100.0),
    ("varnish_main_shm_records", 100.0),
    ("varnish_main_shm_writes", 100.0),
];

/// A backend that answers every request with a small cacheable page (a 404 for `/missing`).
fn start_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request_head(&mut stream);
            let status = if request.starts_with(b"GET /missing") {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 5\r\nCache-Control: max-age=300\r\nConnection: close\r\n\r\nhello"
                )
                .as_bytes(),
            );
        }
    });
    port
}

/// The value of `series` in `text`, when the line names it exactly.
fn sample(text: &str, series: &str) -> Option<f64> {
    parse(text)
        .values()
        .find_map(|family| family.samples.get(series).copied())
}

/// `varnishd -F` on a free loopback port (`-s malloc,16m`, its working directory
/// `dir/instance`) in front of [`start_backend`]'s backend. Returns it, its port and the
/// instance directory (varnishstat's `-n`).
pub(crate) fn start_varnish(dir: &std::path::Path) -> (Server, u16, String) {
    let backend = start_backend();
    let port = free_port();
    let instance = dir.join("instance");
    let instance_text = path_str(&instance);
    let listen = format!("127.0.0.1:{port}");
    let backend_address = format!("127.0.0.1:{backend}");
    let varnishd = start(
        "varnishd",
        &[
            "-F",
            "-a",
            &listen,
            "-b",
            &backend_address,
            "-n",
            &instance_text,
            "-s",
            "malloc,16m",
        ],
        port,
        dir,
    );
    (varnishd, port, instance_text)
}

#[test]
fn varnish_module_matches_prometheus_varnish_exporter() {
    if !installed("varnishd") || !dedicated_installed("prometheus-varnish-exporter") {
        return;
    }
    let dir = tempdir();
    let (varnishd, port, instance_text) = start_varnish(dir.path());
    // Traffic: a miss then hits on one page, and a 404 (another miss).
    for path in ["/", "/", "/", "/missing", "/"] {
        let (status, _, _) = http_get(port, path, &[]);
        assert!(status == 200 || status == 404, "GET {path}: {status}");
    }

    let config = format!(
        "version: 1\nuse:\n  - {{module: varnish, with: {{instance: \"{instance_text}\", interval: 1s, timeout: 3s}}}}\n"
    );
    let ours = Exporter::start(dir.path(), &config);
    ours.wait_value("varnish_main_cache_hit", 3.0);
    ours.wait_value("varnish_up", 1.0);
    ours.wait_value(
        "varnish_version{major=\"7\",minor=\"1\",patch=\"1\",revision=\"7cee1c581bead20e88d101ab3d72afb29f14d87a\",version=\"7.1.1\"}",
        1.0,
    );
    let dedicated = start_dedicated(
        "prometheus-varnish-exporter",
        &[
            "-n",
            &instance_text,
            "-web.listen-address",
            "127.0.0.1:{port}",
        ],
        dir.path(),
    );
    // The exporter reads varnishd -V when it starts: wait for its first full answer.
    let mut theirs = String::new();
    for _ in 0..100 {
        theirs = get_text(dedicated.1, "/metrics");
        if theirs.contains("varnish_main_cache_hit ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mine = ours.scrape();

    let parity = compare(&theirs, &mine, EXPORTER_OWN);
    let total = parity.reproduced.len() + parity.missing.len();
    assert!(
        total > 300,
        "the exporter gave only {total} series:\n{theirs}"
    );
    let mut unexplained = Vec::new();
    for problem in &parity.missing {
        let series = problem.split(": ").next().unwrap();
        match MOVING.iter().find(|(name, _)| *name == series) {
            Some((_, tolerance)) => {
                let (a, b) = (sample(&theirs, series), sample(&mine, series));
                let (Some(a), Some(b)) = (a, b) else {
                    unexplained.push(problem.clone());
                    continue;
                };
                assert!((a - b).abs() <= *tolerance, "{series}: {a} and {b}");
            }
            None => unexplained.push(problem.clone()),
        }
    }
    eprintln!(
        "varnish: {}/{total} series reproduced exactly, {} within a tolerance (moving by themselves); added: {}",
        parity.reproduced.len(),
        parity.missing.len() - unexplained.len(),
        parity.added.join(", ")
    );
    assert!(
        unexplained.is_empty(),
        "varnish: not reproduced:\n{}",
        unexplained.join("\n")
    );
    // The traffic is there, and the labelled families too.
    assert_eq!(sample(&mine, "varnish_main_cache_hit"), Some(3.0));
    assert_eq!(sample(&mine, "varnish_main_cache_miss"), Some(2.0));
    assert_eq!(
        sample(
            &mine,
            "varnish_backend_req{backend=\"default\",server=\"unknown\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&mine, "varnish_sma_g_alloc{type=\"transient\"}"),
        Some(0.0)
    );
    assert!(mine.contains("varnish_version{major=\"7\""), "{mine}");

    // varnishd goes away: the module says so.
    drop(varnishd);
    ours.wait_value("varnish_up", 0.0);
}
