//! The exporter on real servers' logs and status pages, as they really render: nginx (its
//! access log in the default `combined` format and `stub_status`), HAProxy (the HTML stats
//! page and its CSV) and Apache (`mod_status`), from Debian's packages, on loopback.
//! Skipped where a server is not installed, except in CI, where `scripts/test` installs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A server process, killed when dropped.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    /// SIGTERM first, so a server stops its own workers (Apache's outlive a SIGKILLed parent),
    /// then SIGKILL if it does not exit within a few seconds.
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child this test started.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn installed(program: &str) -> bool {
    let found = Path::new("/usr/sbin").join(program).exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI (scripts/test installs it)"
        );
        eprintln!("{program} not installed; skipping");
    }
    found
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that refuses connections for as long as this lives: a socket bound to it
/// that never listens. A port from [`free_port`] is only free when asked, and another test's
/// server may take it before it is used as a closed one.
pub(crate) struct ClosedPort {
    /// Held (closed when dropped): the port stays this socket's.
    _fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub(crate) fn new() -> ClosedPort {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: socket(2) with constant arguments; the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_in is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_in of `len` bytes.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        // SAFETY: as above.
        let mut got: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut got_len = len;
        // SAFETY: `got` has room for a sockaddr_in; `got_len` says so.
        let named = unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                std::ptr::addr_of_mut!(got).cast::<libc::sockaddr>(),
                &mut got_len,
            )
        };
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        ClosedPort {
            _fd: fd,
            port: u16::from_be(got.sin_port),
        }
    }
}

pub(crate) fn start(program: &str, args: &[&str], port: u16, dir: &Path) -> Server {
    let log = std::fs::File::create(dir.join(format!("{program}.out"))).unwrap();
    let child = Command::new(Path::new("/usr/sbin").join(program))
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < WAIT,
            "{program} did not listen on {port}: {}",
            std::fs::read_to_string(dir.join(format!("{program}.out"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// nginx with stub_status at `/stub_status`, `/missing` a 404, and at `/frozen` the file
/// `frozen` of `dir` (a status page taken earlier, served by nginx itself; 404 until written).
pub(crate) fn start_nginx(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    location = /stub_status {{ stub_status; }}
    location = /frozen {{ default_type text/plain; alias {d}/frozen; }}
    location = /missing {{ return 404; }}
    location / {{ return 200 \"ok\\n\"; }}
  }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let conf_path = dir.join("nginx.conf");
    let server = start(
        "nginx",
        &["-c", conf_path.to_str().unwrap(), "-p", &d.to_string()],
        port,
        dir,
    );
    (server, port)
}

#[test]
fn nginx_access_log_and_stub_status() {
    if !installed("nginx") {
        return;
    }
    let dir = tempdir();
    let (_nginx, port) = start_nginx(dir.path());
    let config = format!(
        r#"version: 1
metrics:
  - {{name: nginx_requests_total, type: counter, help: Requests in the access log., labels: [path, status]}}
  - {{name: nginx_response_bytes_total, type: counter, help: Body bytes sent., labels: [path]}}
  - {{name: nginx_connections, type: gauge, help: Connections by state., labels: [state]}}
  - {{name: nginx_connections_accepted_total, type: counter, help: Connections accepted (stub_status running total).}}
  - {{name: nginx_connections_handled_total, type: counter, help: Connections handled (stub_status running total).}}
  - {{name: nginx_http_requests_total, type: counter, help: Requests (stub_status running total).}}
sources:
  - name: access
    file: {{paths: [access.log], start_at: beginning}}
    rules:
      - name: combined
        regex: '^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>[^ ?"]*)\S* [^"]*" (?P<status>\d{{3}}) (?P<bytes>\d+) "[^"]*" "[^"]*"$'
        update:
          - {{metric: nginx_requests_total, labels: {{path: $path, status: $status}}}}
          - {{metric: nginx_response_bytes_total, labels: {{path: $path}}, add: $bytes}}
  - name: stub_status
    http: {{url: "http://127.0.0.1:{port}/stub_status", interval: 200ms, timeout: 2s}}
    rules:
      - name: states
        regex: '(?P<state>Reading|Writing|Waiting): (?P<n>\d+)'
        update: [{{metric: nginx_connections, labels: {{state: $state}}, set: $n}}]
      - name: totals
        regex: '(?m)^\s*(?P<accepts>\d+)\s+(?P<handled>\d+)\s+(?P<requests>\d+)\s*$'
        update:
          - {{metric: nginx_connections_accepted_total, total: $accepts}}
          - {{metric: nginx_connections_handled_total, total: $handled}}
          - {{metric: nginx_http_requests_total, total: $requests}}
"#
    );
    let exporter = Exporter::start(dir.path(), &config);
    for i in 0..30 {
        let (status, _, _) = http_get(
            port,
            &format!("/page?n={i}"),
            &[("User-Agent", "Mozilla/5.0 (X11; \"quoted\")")],
        );
        assert_eq!(status, 200);
    }
    for _ in 0..7 {
        assert_eq!(http_get(port, "/missing", &[]).0, 404);
    }
    exporter.wait_value(r#"nginx_requests_total{path="/page",status="200"}"#, 30.0);
    exporter.wait_value(r#"nginx_requests_total{path="/missing",status="404"}"#, 7.0);
    exporter.wait_value(r#"nginx_response_bytes_total{path="/page"}"#, 90.0); // "ok\n" each
    exporter.wait_value(r#"quarry_source_up{source="stub_status"}"#, 1.0);
    exporter.wait_at_least("nginx_http_requests_total", 37.0);
    exporter.wait_at_least(r#"nginx_connections{state="Writing"}"#, 1.0);
    // stub_status's running totals are counters, typed as such, and they only grow.
    let text = exporter.scrape();
    for name in [
        "nginx_connections_accepted_total",
        "nginx_connections_handled_total",
        "nginx_http_requests_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} counter\n")), "{text}");
    }
    let accepted = value_in(&text, "nginx_connections_accepted_total").unwrap();
    let handled = value_in(&text, "nginx_connections_handled_total").unwrap();
    let requests = value_in(&text, "nginx_http_requests_total").unwrap();
    assert!(
        accepted >= 1.0 && handled <= accepted && requests >= 37.0,
        "{text}"
    );
    exporter.wait_at_least("nginx_http_requests_total", requests + 2.0); // the fetches' own
    assert_promtool_accepts(&exporter.scrape());
    // Every line of nginx's log matched: the regex fits the real format, quotes and all.
    assert_eq!(
        exporter.value(r#"quarry_source_unmatched_lines_total{source="access"}"#),
        Some(0.0)
    );
}

#[test]
fn haproxy_stats_page_and_csv() {
    if !installed("haproxy") || !installed("nginx") {
        return;
    }
    let dir = tempdir();
    let (_nginx, web_port) = start_nginx(dir.path());
    let closed = ClosedPort::new();
    let (stats_port, closed_port) = (free_port(), closed.port);
    std::fs::write(
        dir.path().join("haproxy.cfg"),
        format!(
            "global
  maxconn 100
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend stats
  bind 127.0.0.1:{stats_port}
  stats enable
  stats uri /stats
backend web
  server web1 127.0.0.1:{web_port} check inter 100ms
  server web2 127.0.0.1:{closed_port} check inter 100ms fall 1
  server web3 127.0.0.1:{web_port} disabled
"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    let _haproxy = start(
        "haproxy",
        &["-f", cfg.to_str().unwrap()],
        stats_port,
        dir.path(),
    );
    let config = format!(
        r#"version: 1
metrics:
  - {{name: haproxy_server_state, type: state, help: Server state from the HTML stats page., labels: [server], states: [up, degraded, maintenance, down]}}
  - {{name: haproxy_csv_server_state, type: state, help: Server state from the CSV export., labels: [proxy, server], states: [up, degraded, maintenance, down]}}
  - {{name: haproxy_sessions_total, type: counter, help: Sessions (CSV stot running total)., labels: [proxy, server]}}
  - {{name: haproxy_bytes_out_total, type: counter, help: Bytes sent (CSV bout running total)., labels: [proxy, server]}}
sources:
  - name: stats_html
    http: {{url: "http://127.0.0.1:{stats_port}/stats", interval: 200ms}}
    rules:
      - name: server_rows
        html:
          # HAProxy's page nests tooltip tables inside cells: `:scope >` keeps to the row's own cells.
          for_each: "tr.active_up, tr.active_down, tr.maintain, tr[class*=going], tr[class*=nolb], tr[class*=drain]"
          fields: {{server: ":scope > td:first-child a @name", status: ":scope > td:nth-child(23)"}}
        update:
          - {{metric: haproxy_server_state, labels: {{server: $server}}, state: $status,
             map: {{"* UP": up, "* DOWN": down, "* MAINT*": maintenance, "* UP *": degraded, "* DOWN *": degraded, "* NOLB*": degraded, "* DRAIN*": degraded}}}}
  - name: stats_csv
    http: {{url: "http://127.0.0.1:{stats_port}/stats;csv", interval: 200ms}}
    rules:
      - name: servers
        regex: '(?m)^(?P<proxy>[^#,\n][^,\n]*),(?P<server>[^,\n]+),(?:[^,\n]*,){{15}}(?P<status>[^,\n]*),'
        update:
          - {{metric: haproxy_csv_server_state, labels: {{proxy: $proxy, server: $server}}, state: $status,
             map: {{UP: up, OPEN: up, DOWN: down, MAINT: maintenance, "UP *": degraded, "DOWN *": degraded, NOLB: degraded, DRAIN: degraded, "no check": up}}}}
      - name: totals
        # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,...
        regex: '(?m)^(?P<proxy>[^#,\n][^,\n]*),(?P<server>[^,\n]+),(?:[^,\n]*,){{5}}(?P<stot>\d+),\d*,(?P<bout>\d+),'
        update:
          - {{metric: haproxy_sessions_total, labels: {{proxy: $proxy, server: $server}}, total: $stot}}
          - {{metric: haproxy_bytes_out_total, labels: {{proxy: $proxy, server: $server}}, total: $bout}}
"#
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"haproxy_server_state{server="web/web1",state="up"}"#, 1.0);
    exporter.wait_value(
        r#"haproxy_server_state{server="web/web2",state="down"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_server_state{server="web/web3",state="maintenance"}"#,
        1.0,
    );
    exporter.wait_value(r#"haproxy_server_state_level{server="web/web2"}"#, 3.0);
    exporter.wait_value(
        r#"haproxy_csv_server_state{proxy="web",server="web1",state="up"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_csv_server_state{proxy="web",server="web2",state="down"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_csv_server_state{proxy="web",server="web3",state="maintenance"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_csv_server_state{proxy="web",server="BACKEND",state="up"}"#,
        1.0,
    );
    assert_eq!(
        exporter.value(
            r#"quarry_rule_errors_total{reason="unmapped_value",rule="servers",source="stats_csv"}"#
        ),
        Some(0.0)
    );
    // The stats frontend's own session and byte totals, as counters that grow with the fetches.
    let sessions = r#"haproxy_sessions_total{proxy="stats",server="FRONTEND"}"#;
    let bytes = r#"haproxy_bytes_out_total{proxy="stats",server="FRONTEND"}"#;
    exporter.wait_at_least(sessions, 1.0);
    let (s1, b1) = (
        exporter.value(sessions).unwrap(),
        exporter.value(bytes).unwrap(),
    );
    // The exporter keeps its connection: five more sessions come from five new connections.
    for _ in 0..5 {
        assert_eq!(http_get(stats_port, "/stats;csv", &[]).0, 200);
    }
    exporter.wait_at_least(sessions, s1 + 5.0);
    exporter.wait_at_least(bytes, b1 + 1000.0);
    let text = exporter.scrape();
    assert!(
        text.contains("# TYPE haproxy_sessions_total counter\n"),
        "{text}"
    );
    assert_promtool_accepts(&text);
}

#[test]
fn apache_mod_status() {
    if !installed("apache2") {
        return;
    }
    let dir = tempdir();
    let port = free_port();
    let d = dir.path().display();
    let modules = "/usr/lib/apache2/modules";
    std::fs::write(
        dir.path().join("apache.conf"),
        format!(
            "ServerRoot {d}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/apache.pid
ErrorLog {d}/apache-error.log
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule status_module {modules}/mod_status.so
User www-data
Group www-data
ExtendedStatus On
<Location \"/server-status\">
  SetHandler server-status
</Location>
"
        ),
    )
    .unwrap();
    let conf = dir.path().join("apache.conf");
    let _apache = start(
        "apache2",
        &["-f", conf.to_str().unwrap(), "-DFOREGROUND"],
        port,
        dir.path(),
    );
    let config = format!(
        r#"version: 1
metrics:
  - {{name: apache_workers, type: gauge, help: Workers by state., labels: [state]}}
  - {{name: apache_accesses_total, type: counter, help: Accesses (mod_status running total).}}
  - {{name: apache_uptime_seconds, type: gauge, help: Server uptime.}}
sources:
  - name: server_status
    http: {{url: "http://127.0.0.1:{port}/server-status?auto", interval: 200ms}}
    rules:
      - name: workers
        regex: '(?m)^(?P<state>Busy|Idle)Workers: (?P<n>\d+)$'
        update: [{{metric: apache_workers, labels: {{state: $state}}, set: $n}}]
      - name: accesses
        regex: '(?m)^Total Accesses: (?P<n>\d+)$'
        update: [{{metric: apache_accesses_total, total: $n}}]
  - name: server_status_html
    http: {{url: "http://127.0.0.1:{port}/server-status", interval: 200ms}}
    rules:
      - name: uptime_text
        regex: 'Server uptime:\s+(?P<up>[^<]+)</dt>'
        update: [{{metric: apache_uptime_seconds, set: $up, as: duration}}]
"#
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"quarry_source_up{source="server_status"}"#, 1.0);
    exporter.wait_value(r#"quarry_source_up{source="server_status_html"}"#, 1.0);
    exporter.wait_at_least(r#"apache_workers{state="Busy"}"#, 1.0); // the status request itself
    exporter.wait_at_least(r#"apache_workers{state="Idle"}"#, 1.0);
    exporter.wait_at_least("apache_accesses_total", 3.0);
    let accesses = exporter.value("apache_accesses_total").unwrap();
    exporter.wait_at_least("apache_accesses_total", accesses + 3.0); // the fetches' own
    assert!(exporter
        .scrape()
        .contains("# TYPE apache_accesses_total counter\n"));
    exporter.wait_at_least("apache_uptime_seconds", 1.0);
    assert_eq!(
        exporter.value(r#"quarry_rule_errors_total{reason="value_not_a_number",rule="uptime_text",source="server_status_html"}"#),
        Some(0.0)
    );
}
