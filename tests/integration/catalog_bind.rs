//! The catalog's `bind` module against a real BIND 9.18 (`named -g` on loopback, one small
//! authoritative zone, a few queries sent over UDP) and prometheus-bind-exporter 0.6: the
//! statistics channel's XML v3 pages are taken once and served, byte for byte, to both
//! exporters (named's resolver keeps priming the root in the background, so the live pages
//! never hold still; two cache rrsets are spliced in), and every sample of the exporter but
//! the resolver's RTT histogram must be in the module's `/metrics`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, installed, start, Server};

/// The pages prometheus-bind-exporter 0.6 reads with its default groups (status: the version
/// probe of `--bind.stats-version=auto`).
const PAGES: &[&str] = &[
    "/xml/v3/status",
    "/xml/v3/server",
    "/xml/v3/zones",
    "/xml/v3/tasks",
];

/// A DNS query for `name` and `qtype` (1 = A, 28 = AAAA), class IN, no recursion wanted.
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet
}

/// Sends one query to named on `port` and returns the answer's RCODE (retrying while named
/// is still loading).
pub(crate) fn ask(port: u16, id: u16, name: &str, qtype: u16) -> u8 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answer = [0u8; 512];
    for _ in 0..20 {
        socket
            .send_to(&dns_query(id, name, qtype), ("127.0.0.1", port))
            .unwrap();
        if let Ok(n) = socket.recv(&mut answer) {
            assert!(n >= 12 && answer[..2] == id.to_be_bytes());
            return answer[3] & 0x0f;
        }
    }
    panic!("named did not answer {name} on {port}");
}

/// Serves `pages` (path → body) as XML on a free port until dropped; while `down` is set,
/// every request gets 503.
struct FrozenPages {
    port: u16,
    down: Arc<AtomicBool>,
}

impl FrozenPages {
    fn serve(pages: BTreeMap<String, String>) -> FrozenPages {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let is_down = down.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let request = read_request_head(&mut stream);
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match pages.get(path) {
                    _ if is_down.load(Ordering::SeqCst) => ("503 Service Unavailable", ""),
                    Some(body) => ("200 OK", body.as_str()),
                    None => ("404 Not Found", ""),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FrozenPages { port, down }
    }
}

/// named.conf and a zone in `dir`: DNS on `dns_port`, the statistics channel on `stats_port`,
/// no recursion, no control channel.
fn write_named_config(dir: &Path, dns_port: u16, stats_port: u16) -> std::path::PathBuf {
    let d = dir.display();
    std::fs::write(
        dir.join("example.test.zone"),
        "$TTL 300\n@ IN SOA ns.example.test. admin.example.test. 2026120501 3600 600 86400 300\n@ IN NS ns.example.test.\nns IN A 127.0.0.1\nwww IN A 127.0.0.2\n",
    )
    .unwrap();
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {dns_port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; }};
statistics-channels {{ inet 127.0.0.1 port {stats_port} allow {{ 127.0.0.1; }}; }};
controls {{ }};
zone \"example.test\" {{ type primary; file \"{d}/example.test.zone\"; }};
"
        ),
    )
    .unwrap();
    conf
}

/// Waits (up to `WAIT`) until `done` says so.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The 16 samples of `bind_resolver_query_duration_seconds` (two views × six buckets, sum and
/// count): a histogram the exporter builds from the QryRTT* counters, with a NaN sum; the
/// config language does not set a histogram's buckets from counts.
fn is_rtt_histogram(missing: &str) -> bool {
    missing.starts_with("bind_resolver_query_duration_seconds_")
}

/// `named -g` with [`write_named_config`]'s config in `dir`; returns it, its DNS port and its
/// statistics channel's port once its zone is loaded.
pub(crate) fn start_named(dir: &Path) -> (Server, u16, u16) {
    let (dns_port, stats_port) = (free_port(), free_port());
    let conf = write_named_config(dir, dns_port, stats_port);
    let named = start("named", &["-g", "-c", &path_str(&conf)], stats_port, dir);
    // The statistics channel listens before the zone is loaded: wait for named's "running".
    wait_until("named running", || {
        std::fs::read_to_string(dir.join("named.out"))
            .unwrap_or_default()
            .contains(" running\n")
    });
    (named, dns_port, stats_port)
}

#[test]
fn bind_module_is_a_drop_in_for_prometheus_bind_exporter() {
    if !installed("named") || !dedicated_installed("prometheus-bind-exporter") {
        return;
    }
    let dir = tempdir();
    let (_named, dns_port, stats_port) = start_named(dir.path());
    // A little traffic: an answer, a name that does not exist, a name with no AAAA (nxrrset),
    // a zone named does not serve (REFUSED).
    assert_eq!(ask(dns_port, 1, "www.example.test", 1), 0);
    assert_eq!(ask(dns_port, 2, "nx.example.test", 1), 3);
    assert_eq!(ask(dns_port, 3, "www.example.test", 28), 0);
    assert_eq!(ask(dns_port, 4, "example.org", 1), 5);
    // named counts a response after sending it: wait until the four are counted.
    wait_until("four responses counted", || {
        let server = get_text(stats_port, "/xml/v3/server");
        server.contains(r#"<counter name="Response">4</counter>"#)
            && server.contains(r#"<counter name="REFUSED">1</counter>"#)
    });
    let pages: BTreeMap<String, String> = PAGES
        .iter()
        .map(|p| ((*p).to_owned(), get_text(stats_port, p)))
        .collect();
    // This authoritative-only named caches nothing (`<cache name="_default"/>`): two rrsets
    // are spliced in, in the shape BIND writes a recursive server's cache, so that the
    // exporter's bind_resolver_cache_rrsets is compared too.
    let mut pages = pages;
    let server = pages.get_mut("/xml/v3/server").unwrap();
    assert!(server.contains(r#"<cache name="_default"/>"#), "{server}");
    *server = server.replace(
        r#"<cache name="_default"/>"#,
        r#"<cache name="_default"><rrset><name>A</name><counter>3</counter></rrset><rrset><name>!NXDOMAIN</name><counter>1</counter></rrset></cache>"#,
    );
    let frozen = FrozenPages::serve(pages);
    let url = format!("http://127.0.0.1:{}", frozen.port);
    let config = format!(
        "version: 1\nuse:\n  - module: bind\n    with: {{url: '{url}', interval: 200ms}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("bind_up", 1.0);
    exporter.wait_value(
        r#"bind_zone_serial{view="_default",zone_name="example.test"}"#,
        2026120501.0,
    );
    exporter.wait_value("bind_tasks_running", 0.0);
    let dedicated = start_dedicated(
        "prometheus-bind-exporter",
        &[
            &format!("--bind.stats-url={url}/"),
            "--web.listen-address=127.0.0.1:{port}",
        ],
        dir.path(),
    );
    let theirs = get_text(dedicated.1, "/metrics");
    let ours = exporter.scrape();
    let parity = compare(
        &theirs,
        &ours,
        &["go_", "process_", "promhttp_", "bind_exporter_", "quarry_"],
    );
    let total = parity.reproduced.len() + parity.missing.len();
    eprintln!(
        "bind: {}/{total} series reproduced exactly; added: {:?}",
        parity.reproduced.len(),
        parity.added
    );
    let (histogram, other): (Vec<_>, Vec<_>) =
        parity.missing.iter().partition(|m| is_rtt_histogram(m));
    assert!(other.is_empty(), "not reproduced: {other:#?}");
    assert_eq!(histogram.len(), 16, "{histogram:#?}");
    // 96 without bind_resolver_queries_total, whose {type,view} series appear once named's
    // resolver has primed the root in the background (NS and DNSKEY: 98).
    assert!(parity.reproduced.len() >= 96, "{parity:#?}");
    assert!(parity.added.is_empty(), "{:?}", parity.added);
    // The traffic shows in the values both agree on.
    for (series, value) in [
        (r#"bind_response_rcodes_total{rcode="NXDOMAIN"}"#, 1.0),
        (r#"bind_response_rcodes_total{rcode="REFUSED"}"#, 1.0),
        (r#"bind_responses_total{result="Nxrrset"}"#, 1.0),
        (r#"bind_incoming_queries_total{type="AAAA"}"#, 1.0),
        (r#"bind_incoming_requests_total{opcode="QUERY"}"#, 4.0),
        (
            r#"bind_resolver_cache_rrsets{type="!NXDOMAIN",view="_default"}"#,
            1.0,
        ),
    ] {
        assert_eq!(exporter.value(series), Some(value), "{series}");
        assert_eq!(value_in(&theirs, series), Some(value), "{series}");
    }
    // The statistics channel fails: both say bind_up 0.
    frozen.down.store(true, Ordering::SeqCst);
    exporter.wait_value("bind_up", 0.0);
    assert_eq!(
        value_in(&get_text(dedicated.1, "/metrics"), "bind_up"),
        Some(0.0)
    );
}
