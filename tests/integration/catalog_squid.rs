//! The catalog's `squid` module against a real Squid (5.7, started on loopback with a
//! temporary config, memory cache only) that proxied some requests to a small origin server:
//! its cache manager pages `counters` and `service_times` are taken after the traffic, frozen
//! and served byte for byte to prometheus-squid-exporter 1.10 and to the module (every read of
//! a cache manager page counts itself as a client request), and every sample is compared.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, installed, start, Server};

/// Series of the dedicated exporter that are about itself, not Squid.
const EXPORTER_OWN: &[&str] = &["go_", "process_", "promhttp_", "squid_exporter_", "quarry_"];

/// A Squid proxy on a free loopback port whose cache manager answers localhost.
pub(crate) fn start_squid(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let conf = format!(
        "http_port 127.0.0.1:{port}
pid_filename none
cache_log /dev/null
access_log none
cache_store_log none
pinger_enable off
http_access allow localhost manager
http_access deny manager
http_access allow localhost
http_access deny all
"
    );
    std::fs::write(dir.join("squid.conf"), conf).unwrap();
    let conf = dir.join("squid.conf");
    let server = start("squid", &["-N", "-f", conf.to_str().unwrap()], port, dir);
    (server, port)
}

/// Serves `respond(path)` (status and body) on a free loopback port, one HTTP/1.0 request per
/// connection, until `stop` is set; then closes each connection without an answer.
pub(crate) fn serve(
    stop: Arc<AtomicBool>,
    respond: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request_head(&mut stream);
            if stop.load(Ordering::SeqCst) {
                continue;
            }
            let request = String::from_utf8_lossy(&request);
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = respond(&path);
            let _ = write!(
                stream,
                "HTTP/1.0 {status} X\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A request for `url` through the proxy on `proxy`; returns the status.
pub(crate) fn through_proxy(proxy: u16, url: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {url} HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `service_times` with a distinct, non-zero 5-minute value on every percentile line (local
/// requests take no measurable time, so the real page has only zeros); the 60-minute column
/// and everything else as Squid wrote it.
fn with_distinct_service_times(page: &str) -> String {
    let mut n = 0;
    page.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !line.contains('%') || fields.len() < 3 {
                return format!("{line}\n");
            }
            n += 1;
            let hour = fields[fields.len() - 1];
            let head = line.trim_end().strip_suffix(hour).unwrap().trim_end();
            let head = head.strip_suffix(fields[fields.len() - 2]).unwrap();
            format!("{head}{:.5}  {hour}\n", n as f64 * 0.00391)
        })
        .collect()
}

#[test]
fn squid_module_is_a_drop_in_for_prometheus_squid_exporter() {
    if !installed("squid") || !dedicated_installed("prometheus-squid-exporter") {
        return;
    }
    let dir = tempdir();
    let (_squid, proxy) = start_squid(dir.path());
    let origin = serve(Arc::new(AtomicBool::new(false)), |path| match path {
        "/a" => (200, "hello\n".repeat(300)),
        _ => (404, "not here\n".to_owned()),
    });
    // Traffic: a page five times, a missing page three times.
    for _ in 0..5 {
        assert_eq!(
            through_proxy(proxy, &format!("http://127.0.0.1:{origin}/a")),
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            through_proxy(proxy, &format!("http://127.0.0.1:{origin}/missing")),
            404
        );
    }
    let counters = get_text(proxy, "/squid-internal-mgr/counters");
    let service_times =
        with_distinct_service_times(&get_text(proxy, "/squid-internal-mgr/service_times"));
    assert!(counters.contains("\nclient_http.hits = "), "{counters}");
    let stop = Arc::new(AtomicBool::new(false));
    // The module asks for `/squid-internal-mgr/counters`, the exporter for
    // `cache_object://localhost/counters` (the old cache manager URL, which Squid still takes).
    let frozen = serve(stop.clone(), move |path| match path.rsplit('/').next() {
        Some("counters") => (200, counters.clone()),
        Some("service_times") => (200, service_times.clone()),
        _ => (404, String::new()),
    });

    let config = format!(
        "version: 1\nuse:\n  - {{module: squid, with: {{host: 127.0.0.1, port: '{frozen}', interval: 200ms}}}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"squid_up{host="127.0.0.1"}"#, 1.0);
    exporter.wait_at_least("squid_client_http_requests_total", 8.0);
    exporter.wait_at_least("squid_DNS_Lookups_95", 0.001);
    let dedicated = start_dedicated(
        "prometheus-squid-exporter",
        &[
            "-squid-hostname",
            "127.0.0.1",
            "-squid-port",
            &frozen.to_string(),
            "-listen",
            "127.0.0.1:{port}",
        ],
        dir.path(),
    );
    let theirs = get_text(dedicated.1, "/metrics");
    let parity = compare(&theirs, &exporter.scrape(), EXPORTER_OWN);
    assert_full_parity("squid", &parity);
    assert_eq!(parity.reproduced.len(), 121, "{parity:?}");
    assert_eq!(parity.added, Vec::<String>::new());
    // The traffic is there (the 8 proxied requests; the page read counts after it), and a non-zero
    // percentile taken from the frozen page.
    assert_eq!(
        value_in(&theirs, "squid_client_http_requests_total"),
        Some(8.0)
    );
    assert!(value_in(&theirs, "squid_server_http_requests_total").unwrap() >= 2.0);
    assert!(value_in(&theirs, "squid_Cache_Hits_50").unwrap() > 0.0);

    // Squid cannot be read: both say squid_up 0.
    stop.store(true, Ordering::SeqCst);
    exporter.wait_value(r#"squid_up{host="127.0.0.1"}"#, 0.0);
    assert_eq!(
        value_in(
            &get_text(dedicated.1, "/metrics"),
            r#"squid_up{host="127.0.0.1"}"#
        ),
        Some(0.0)
    );
}

/// Squid down from the start: `squid_up` with its `host` label says 0 at once, as the
/// exporter's does, and both pages' sources say why.
#[test]
fn squid_up_is_0_when_squid_is_down_from_the_start() {
    let dir = tempdir();
    let port = free_port();
    let config = format!(
        "version: 1\nuse:\n  - {{module: squid, with: {{host: 127.0.0.1, port: '{port}', interval: 200ms}}}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"squid_up{host="127.0.0.1"}"#, 0.0);
    exporter.wait_value(r#"quarry_source_up{source="squid/service_times"}"#, 0.0);
    // Unlike the exporter, which then shows only `squid_up`, the module's unlabelled counters
    // are there at 0 (the engine shows declared unlabelled counters; the README says so).
    assert_eq!(
        exporter.value("squid_client_http_requests_total"),
        Some(0.0)
    );
}
