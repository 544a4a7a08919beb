//! `socket:` sources against real servers on loopback: Redis (`INFO`, `AUTH` with a password
//! file, a wrong password, TLS on `tls-port` with a generated CA), memcached (`stats`) and
//! HAProxy's runtime API on its Unix socket (`show info`, `show stat`), each from the example
//! configs of `examples/socket/` that CONFIG.md shows, with values compared to what the server
//! itself answers (`redis-cli`, memcached's `stats`, HAProxy's own `/metrics`). Then a line
//! server of the test's own for the framing edge cases (slow drip, never ending, closing
//! early, a huge reply, binary junk), and a hung conversation given up by reload and SIGTERM.
//! Servers are skipped where not installed, except in CI (`scripts/test` installs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::real_servers::{free_port, ClosedPort, Server};

/// `/usr/bin/<program>` exists (required in CI).
fn installed(program: &str) -> bool {
    let found = Path::new("/usr/bin").join(program).exists()
        || Path::new("/usr/sbin").join(program).exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI (scripts/test installs it)"
        );
        eprintln!("{program} not installed; skipping");
    }
    found
}

/// Starts `program` with `args` and waits until `ready` says it listens.
fn start(program: &str, args: &[&str], dir: &Path, ready: impl Fn() -> bool) -> Server {
    let log = std::fs::File::create(dir.join(format!("{program}.out"))).unwrap();
    let path = ["/usr/bin", "/usr/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap();
    let child = Command::new(path)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < WAIT,
            "{program} did not start: {}",
            std::fs::read_to_string(dir.join(format!("{program}.out"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn listens(port: u16) -> impl Fn() -> bool {
    move || TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// An example config of `examples/socket/`, with `replace` applied (the servers' real
/// addresses) and fetched every 300 ms instead of every 15 s.
fn example(name: &str, replace: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/socket/{name}.yaml"));
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{name}.yaml has no {from:?}");
        text = text.replace(from, to);
    }
    text.replace("      interval: 15s\n", "").replace(
        "      timeout: 5s\n",
        "      timeout: 5s\n      interval: 300ms\n",
    )
}

fn redis_cli(port: u16, password: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--no-auth-warning",
        ])
        .args(["-a", password])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `field:value` of a redis-cli INFO answer.
fn info_field(info: &str, field: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_owned()
}

const PASSWORD: &str = "c0rrect-h0rse";

fn start_redis(dir: &Path, extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        d,
    ];
    args.extend_from_slice(extra);
    let port_text = port.to_string();
    if !extra.contains(&"--tls-port") {
        args.extend_from_slice(&["--port", &port_text]);
        let server = start("redis-server", &args, dir, listens(port));
        return (server, port);
    }
    let args: Vec<&str> = args
        .into_iter()
        .map(|a| {
            if a == "TLS_PORT" {
                port_text.as_str()
            } else {
                a
            }
        })
        .collect();
    (start("redis-server", &args, dir, listens(port)), port)
}

#[test]
fn redis_info_with_auth_from_a_file() {
    if !installed("redis-server") || !installed("redis-cli") {
        return;
    }
    let dir = tempdir();
    let (_redis, port) = start_redis(dir.path(), &["--requirepass", PASSWORD]);
    for args in [["SET", "a", "1"], ["SET", "b", "2"]] {
        redis_cli(port, PASSWORD, &args);
    }
    redis_cli(port, PASSWORD, &["SET", "c", "3", "EX", "1000"]);
    std::fs::write(dir.path().join("redis.password"), format!("{PASSWORD}\n")).unwrap();
    let address = format!("127.0.0.1:{port}");
    let exporter = Exporter::start(
        dir.path(),
        &example("redis", &[("127.0.0.1:6379", &address)]),
    );
    exporter.wait_value(r#"quarry_source_up{source="redis"}"#, 1.0);
    // Redis' own answer: keys per database, and settings that do not move.
    let keyspace = redis_cli(port, PASSWORD, &["INFO", "keyspace"]);
    let db0 = info_field(&keyspace, "db0");
    let field = |name: &str| -> f64 {
        db0.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    exporter.wait_value(r#"redis_db_keys{db="db0"}"#, field("keys"));
    exporter.wait_value(r#"redis_db_keys_expiring{db="db0"}"#, field("expires"));
    assert_eq!((field("keys"), field("expires")), (3.0, 1.0));
    let clients = redis_cli(port, PASSWORD, &["INFO", "clients"]);
    exporter.wait_value(
        "redis_maxclients",
        info_field(&clients, "maxclients").parse().unwrap(),
    );
    // A running total that grows with every conversation (each sends AUTH and INFO).
    let commands = "redis_commands_processed_total";
    exporter.wait_at_least(commands, 6.0);
    let total: f64 = info_field(
        &redis_cli(port, PASSWORD, &["INFO", "stats"]),
        "total_commands_processed",
    )
    .parse()
    .unwrap();
    assert!(exporter.value(commands).unwrap() <= total);
    // The password is never shown: not in /metrics, the landing page, /status.json, the log.
    for path in ["/metrics", "/", "/status.json"] {
        let body = String::from_utf8(exporter.get(path, &[]).2).unwrap();
        assert!(!body.contains(PASSWORD), "{path} shows the password");
    }
    assert!(!exporter.log_text().contains(PASSWORD));
}

#[test]
fn redis_with_a_wrong_password_says_so_without_showing_it() {
    if !installed("redis-server") {
        return;
    }
    let dir = tempdir();
    let (_redis, port) = start_redis(dir.path(), &["--requirepass", PASSWORD]);
    let wrong = "n0t-the-passw0rd";
    std::fs::write(dir.path().join("redis.password"), wrong).unwrap();
    let address = format!("127.0.0.1:{port}");
    let exporter = Exporter::start(
        dir.path(),
        &example("redis", &[("127.0.0.1:6379", &address)]),
    );
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="unexpected_reply",source="redis"}"#,
        1.0,
    );
    assert_eq!(
        exporter.value(r#"quarry_source_up{source="redis"}"#),
        Some(0.0)
    );
    let status = String::from_utf8(exporter.get("/status.json", &[]).2).unwrap();
    let landing = String::from_utf8(exporter.get("/", &[]).2).unwrap();
    assert!(
        landing.contains(r"step 1 (AUTH ${password}\r\n): the reply does not match expect"),
        "{landing}"
    );
    assert!(landing.contains("-WRONGPASS"), "{landing}");
    let log = exporter.log_text();
    // `explain` runs the source once and shows what happened: the error, not the secret.
    let explained = Command::new(binary())
        .arg("explain")
        .arg(format!(
            "--config.file={}",
            dir.path().join("exporter.yaml").display()
        ))
        .output()
        .unwrap();
    let explained = format!(
        "{}{}",
        String::from_utf8_lossy(&explained.stdout),
        String::from_utf8_lossy(&explained.stderr)
    );
    assert!(explained.contains("-WRONGPASS"), "{explained}");
    for (what, text) in [
        ("status", &status),
        ("landing page", &landing),
        ("log", &log),
        ("explain", &explained),
    ] {
        assert!(!text.contains(wrong), "the {what} shows the password");
    }
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in `dir`: ca.pem, cert.pem,
/// key.pem.
fn write_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "quarry socket test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["redis.test".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn redis_over_tls_with_a_generated_ca() {
    if !installed("redis-server") || !installed("redis-cli") {
        return;
    }
    let dir = tempdir();
    write_certificates(dir.path());
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let (cert, key, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
    let (_redis, port) = start_redis(
        dir.path(),
        &[
            "--port",
            "0",
            "--tls-port",
            "TLS_PORT",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    );
    let config = format!(
        r#"version: 1
metrics:
  - {{name: redis_uptime_seconds, type: gauge, help: Seconds since Redis started.}}
  - {{name: redis_tcp_port, type: gauge, help: The port Redis says it listens on., labels: [source]}}
sources:
  - name: by_ip
    socket:
      address: 127.0.0.1:{port}
      tls: {{ca_file: ca.pem}}
      interval: 300ms
      steps:
        - {{send: "INFO server\r\n", until: {{length_header: {{pattern: '\$(\d+)\r\n', trailer: 2}}}}}}
    rules:
      - regex: '(?m)^tcp_port:(?P<n>\d+)\r$'
        update: [{{metric: redis_tcp_port, labels: {{source: $__source__}}, set: $n}}]
  - name: by_name
    socket:
      address: localhost:{port}
      tls: {{ca_file: ca.pem, server_name: redis.test}}
      interval: 300ms
      steps:
        - {{send: "INFO server\r\n", until: {{length_header: {{pattern: '\$(\d+)\r\n', trailer: 2}}}}}}
    rules:
      - regex: '(?m)^tcp_port:(?P<n>\d+)\r$'
        update: [{{metric: redis_tcp_port, labels: {{source: $__source__}}, set: $n}}]
  - name: untrusted
    socket:
      address: 127.0.0.1:{port}
      tls: {{}}
      interval: 300ms
      steps: [{{send: "INFO server\r\n", until: {{length_header: {{pattern: '\$(\d+)\r\n', trailer: 2}}}}}}]
    rules:
      - regex: '(?m)^uptime_in_seconds:(?P<n>\d+)\r$'
        update: [{{metric: redis_uptime_seconds, set: $n}}]
  - name: insecure
    socket:
      address: 127.0.0.1:{port}
      tls: {{insecure_skip_verify: true}}
      interval: 300ms
      steps: [{{send: "INFO server\r\n", until: {{length_header: {{pattern: '\$(\d+)\r\n', trailer: 2}}}}}}]
    rules:
      - regex: '(?m)^tcp_port:(?P<n>\d+)\r$'
        update: [{{metric: redis_tcp_port, labels: {{source: $__source__}}, set: $n}}]
  - name: plaintext
    socket:
      address: 127.0.0.1:{port}
      interval: 300ms
      timeout: 1s
      steps: [{{send: "INFO server\r\n", until: {{length_header: {{pattern: '\$(\d+)\r\n', trailer: 2}}}}}}]
    rules:
      - regex: '(?m)^uptime_in_seconds:(?P<n>\d+)\r$'
        update: [{{metric: redis_uptime_seconds, set: $n}}]
"#
    );
    let exporter = Exporter::start(dir.path(), &config);
    // What Redis says of itself over TLS: the TLS port (there is no plain one).
    exporter.wait_value(r#"redis_tcp_port{source="by_ip"}"#, port as f64);
    exporter.wait_value(r#"redis_tcp_port{source="by_name"}"#, port as f64);
    exporter.wait_value(r#"quarry_source_up{source="by_ip"}"#, 1.0);
    // insecure_skip_verify takes any certificate (the handshake is still checked).
    exporter.wait_value(r#"redis_tcp_port{source="insecure"}"#, port as f64);
    // A certificate no root vouches for is a TLS failure.
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="tls",source="untrusted"}"#,
        1.0,
    );
    // Plain text to a TLS port: Redis closes the connection on the garbage handshake.
    let plaintext = |reason: &str| {
        exporter
            .value(&format!(
                r#"quarry_source_errors_total{{reason="{reason}",source="plaintext"}}"#
            ))
            .unwrap_or(0.0)
    };
    let started = Instant::now();
    while plaintext("closed_early") + plaintext("timeout") + plaintext("read") < 1.0 {
        assert!(started.elapsed() < WAIT, "{}", exporter.scrape());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        exporter.value(r#"quarry_source_up{source="plaintext"}"#),
        Some(0.0)
    );
}

/// memcached's own `stats`, read here with a plain socket: name → value.
pub(crate) fn memcached_stats(port: u16) -> std::collections::HashMap<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"stats\r\n").unwrap();
    let mut stats = std::collections::HashMap::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if line.trim_end() == "END" {
            break;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (_, name, value) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        stats.insert(name.to_owned(), value.to_owned());
    }
    stats
}

#[test]
fn memcached_stats_over_tcp() {
    if !installed("memcached") {
        return;
    }
    let dir = tempdir();
    let port = free_port();
    let _memcached = start(
        "memcached",
        &[
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "48",
            "-u",
            "nobody",
        ],
        dir.path(),
        listens(port),
    );
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reply = [0u8; 64];
    for key in ["a", "b", "c"] {
        client
            .write_all(format!("set {key} 0 0 1\r\nx\r\n").as_bytes())
            .unwrap();
        let n = client.read(&mut reply).unwrap();
        assert_eq!(&reply[..n], b"STORED\r\n");
    }
    let address = format!("127.0.0.1:{port}");
    let exporter = Exporter::start(
        dir.path(),
        &example("memcached", &[("127.0.0.1:11211", &address)]),
    );
    exporter.wait_value(r#"quarry_source_up{source="memcached"}"#, 1.0);
    let stats = memcached_stats(port);
    let stat = |name: &str| stats[name].parse::<f64>().unwrap();
    exporter.wait_value("memcached_current_items", stat("curr_items"));
    exporter.wait_value("memcached_items_total", stat("total_items"));
    exporter.wait_value("memcached_limit_bytes", stat("limit_maxbytes"));
    exporter.wait_value(
        r#"memcached_commands_total{command="set"}"#,
        stat("cmd_set"),
    );
    assert_eq!(
        (stat("curr_items"), stat("limit_maxbytes")),
        (3.0, (48 << 20) as f64)
    );
}

#[test]
fn haproxy_runtime_api_on_its_unix_socket() {
    if !installed("haproxy") {
        return;
    }
    let dir = tempdir();
    let closed = ClosedPort::new();
    let (metrics_port, closed_port) = (free_port(), closed.port);
    let socket = dir.path().join("admin.sock");
    std::fs::write(
        dir.path().join("haproxy.cfg"),
        format!(
            "global
  maxconn 300
  stats socket {} mode 600 level user
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend own_metrics
  bind 127.0.0.1:{metrics_port}
  http-request use-service prometheus-exporter if {{ path /metrics }}
backend web
  server web1 127.0.0.1:{closed_port} disabled
  server web2 127.0.0.1:{closed_port} check inter 100ms fall 1
",
            socket.display()
        ),
    )
    .unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    let _haproxy = start(
        "haproxy",
        &["-f", cfg.to_str().unwrap()],
        dir.path(),
        listens(metrics_port),
    );
    let exporter = Exporter::start(
        dir.path(),
        &example(
            "haproxy",
            &[("/run/haproxy/admin.sock", socket.to_str().unwrap())],
        ),
    );
    exporter.wait_value(r#"quarry_source_up{source="haproxy"}"#, 1.0);
    // HAProxy's own /metrics says the same.
    let (_, _, own) = http_get(metrics_port, "/metrics", &[]);
    let own = String::from_utf8(own).unwrap();
    let own_value = |series: &str| value_in(&own, series).unwrap_or_else(|| panic!("{series}"));
    exporter.wait_value(
        "haproxy_max_connections",
        own_value("haproxy_process_max_connections"),
    );
    assert_eq!(own_value("haproxy_process_max_connections"), 300.0);
    exporter.wait_value("haproxy_threads", own_value("haproxy_process_nbthread"));
    assert_eq!(
        own_value(r#"haproxy_server_status{proxy="web",server="web1",state="MAINT"}"#),
        1.0
    );
    exporter.wait_value(
        r#"haproxy_server_state{proxy="web",server="web1",state="maintenance"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_server_state{proxy="web",server="web2",state="down"}"#,
        1.0,
    );
    exporter.wait_value(
        r#"haproxy_server_state{proxy="web",server="BACKEND",state="down"}"#,
        1.0,
    );
    let sessions = r#"haproxy_sessions_total{proxy="own_metrics",server="FRONTEND"}"#;
    exporter.wait_at_least(sessions, 1.0);
    let (_, _, own) = http_get(metrics_port, "/metrics", &[]);
    let frontend_total = value_in(
        &String::from_utf8(own).unwrap(),
        r#"haproxy_frontend_sessions_total{proxy="own_metrics"}"#,
    )
    .unwrap();
    // Our value was read before that scrape (which is a session itself).
    assert!(exporter.value(sessions).unwrap() <= frontend_total);
}

/// What the line server does with a connection, by the first line it reads.
fn serve_line(mut stream: TcpStream) {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let _ = match line.trim_end() {
        // A whole reply, one byte every 5 ms.
        "drip" => (|| {
            for b in b"value 7\r\nEND\r\n" {
                stream.write_all(&[*b])?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok::<_, std::io::Error>(())
        })(),
        // A start, then nothing, for ever (until the client goes).
        "never" => (|| {
            stream.write_all(b"value 1\r\n")?;
            let mut byte = [0u8; 1];
            while stream.read(&mut byte)? > 0 {}
            Ok(())
        })(),
        // Half a reply, then the connection closes.
        "early" => stream.write_all(b"value 3\r\nEN"),
        // 8 MiB of lines, then the end.
        "huge" => (|| {
            let chunk = "value 1234567890\r\n".repeat(4096);
            for _ in 0..(8 << 20) / chunk.len() {
                stream.write_all(chunk.as_bytes())?;
            }
            stream.write_all(b"END\r\n")
        })(),
        // Binary junk around the value.
        "junk" => {
            let mut reply: Vec<u8> = (0..=255u8).rev().collect();
            reply.extend_from_slice(b"\r\nvalue 42\r\n\xff\xfe\x00");
            reply.extend_from_slice(b"END\r\n");
            stream.write_all(&reply)
        }
        _ => stream.write_all(b"ERROR unknown command\r\n"),
    };
}

/// The line server: one thread per connection, on a free loopback port.
fn start_line_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve_line(stream));
        }
    });
    port
}

fn line_source(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"  - name: {name}
    socket:
      address: 127.0.0.1:{port}
      interval: 300ms
      timeout: 2s{extra}
      steps: [{{send: '{name}\n', until: {{terminator: 'END\r\n'}}}}]
    rules:
      - regex: '(?m)^value (?P<v>\d+)\r$'
        update: [{{metric: line_value, labels: {{source: $__source__}}, set: $v}}]
"#
    )
}

#[test]
fn framing_edge_cases_against_a_line_server() {
    let port = start_line_server();
    let refused = free_port();
    let mut config = String::from(
        "version: 1\nmetrics:\n  - {name: line_value, type: gauge, help: The value a line server sent., labels: [source]}\nsources:\n",
    );
    for (name, extra) in [
        ("drip", ""),
        ("never", ""),
        ("early", ""),
        ("huge", "\n      max_bytes: 1048576"),
        ("junk", ""),
    ] {
        config.push_str(&line_source(name, port, extra));
    }
    config.push_str(&line_source("refused", refused, ""));
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), &config);
    let errors = |source: &str, reason: &str| {
        format!(r#"quarry_source_errors_total{{reason="{reason}",source="{source}"}}"#)
    };
    // A reply that drips in byte by byte is whole when its terminator is.
    exporter.wait_value(r#"line_value{source="drip"}"#, 7.0);
    exporter.wait_value(r#"quarry_source_up{source="drip"}"#, 1.0);
    // Binary junk around the value does not stop the rules.
    exporter.wait_value(r#"line_value{source="junk"}"#, 42.0);
    exporter.wait_value(r#"quarry_source_up{source="junk"}"#, 1.0);
    // Each failure has its reason.
    exporter.wait_at_least(&errors("never", "timeout"), 1.0);
    exporter.wait_at_least(&errors("early", "closed_early"), 1.0);
    exporter.wait_at_least(&errors("huge", "too_large"), 1.0);
    exporter.wait_at_least(&errors("refused", "connect"), 1.0);
    let text = exporter.scrape();
    for source in ["never", "early", "huge", "refused"] {
        assert_eq!(
            value_in(&text, &format!(r#"quarry_source_up{{source="{source}"}}"#)),
            Some(0.0),
            "{source}"
        );
        // No value from a reply that never completed.
        assert_eq!(
            value_in(&text, &format!(r#"line_value{{source="{source}"}}"#)),
            None,
            "{source}"
        );
    }
    let landing = String::from_utf8(exporter.get("/", &[]).2)
        .unwrap()
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    for message in [
        r"step 1 (early\n): the connection was closed before the reply ended (11 bytes received)",
        r#"step 1 (never\n): no complete reply within the source's timeout of 2s (9 bytes received, starting "value 1")"#,
        "the conversation received more than its cap of 1048576 bytes (max_bytes)",
    ] {
        assert!(landing.contains(message), "{message}\n{landing}");
    }
}

#[test]
fn reload_and_shutdown_give_up_a_hung_conversation() {
    let port = start_line_server();
    let config = format!(
        "version: 1\nmetrics:\n  - {{name: line_value, type: gauge, help: The value a line server sent., labels: [source]}}\nsources:\n{}",
        line_source("never", port, "").replace("timeout: 2s", "timeout: 1h")
    );
    let dir = tempdir();
    let exporter = Exporter::start(dir.path(), &config);
    // The conversation has started (the server answered its first line) and hangs.
    exporter.wait_value(r#"quarry_source_up{source="never"}"#, 0.0);
    std::thread::sleep(Duration::from_millis(500));
    let reloads = "quarry_config_last_reload_success_timestamp_seconds";
    let before = exporter.value(reloads).unwrap();
    let started = Instant::now();
    sighup(&exporter);
    while exporter.value(reloads).unwrap() == before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the reload waited for the conversation"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        exporter.value("quarry_config_last_reload_successful"),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = exporter.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_socket_probe_module_watches_every_redis_of_a_fleet() {
    if !installed("redis-server") || !installed("redis-cli") {
        return;
    }
    let dir = tempdir();
    let (_first, first) = start_redis(dir.path(), &["--requirepass", PASSWORD]);
    let other_dir = tempdir();
    let (_second, second) = start_redis(other_dir.path(), &["--requirepass", PASSWORD]);
    redis_cli(first, PASSWORD, &["SET", "a", "1"]);
    for key in ["a", "b", "c", "d"] {
        redis_cli(second, PASSWORD, &["SET", key, "1"]);
    }
    std::fs::write(dir.path().join("redis.password"), PASSWORD).unwrap();
    let config = r#"version: 1
metrics:
  - {name: redis_db_keys, type: gauge, help: Keys per database (INFO keyspace)., labels: [db]}
sources: []
modules:
  - name: redis
    socket:
      address: $target
      secrets: {password: redis.password}
      timeout: 5s
      steps:
        - {send: 'AUTH ${password}\r\n', until: {terminator: '\r\n'}, expect: '^\+OK'}
        - {send: 'INFO keyspace\r\n', until: {length_header: {pattern: '\$(\d+)\r\n', trailer: 2}}}
    rules:
      - regex: '(?m)^(?P<db>db\d+):keys=(?P<keys>\d+),'
        update: [{metric: redis_db_keys, labels: {db: $db}, set: $keys}]
"#;
    let exporter = Exporter::start(dir.path(), config);
    let probe = |target: &str| {
        let (status, _, body) = exporter.get(&format!("/probe?module=redis&target={target}"), &[]);
        (status, String::from_utf8(body).unwrap())
    };
    for (port, keys) in [(first, 1.0), (second, 4.0)] {
        let (status, body) = probe(&format!("127.0.0.1:{port}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(value_in(&body, "quarry_probe_success"), Some(1.0), "{body}");
        // What that Redis says itself.
        let keyspace = redis_cli(port, PASSWORD, &["INFO", "keyspace"]);
        assert!(info_field(&keyspace, "db0").starts_with(&format!("keys={keys},")));
        assert_eq!(
            value_in(&body, r#"redis_db_keys{db="db0"}"#),
            Some(keys),
            "{body}"
        );
    }
    // A target where nothing listens fails the probe with its reason; the metrics of no
    // other target leak into it.
    let (status, body) = probe(&format!("127.0.0.1:{}", free_port()));
    assert_eq!(status, 200);
    assert_eq!(value_in(&body, "quarry_probe_success"), Some(0.0), "{body}");
    assert_eq!(
        value_in(&body, r#"quarry_probe_failure_reason{reason="connect"}"#),
        Some(1.0),
        "{body}"
    );
    assert!(!body.contains("redis_db_keys{"), "{body}");
    // A target that is not host:port is refused before anything is tried.
    let (status, body) = probe("just-a-host");
    assert_eq!(status, 400);
    assert!(body.contains("is not host:port"), "{body}");
    // The landing page names the module by its template, and shows no secret.
    let landing = String::from_utf8(exporter.get("/", &[]).2).unwrap();
    assert!(landing.contains("socket tcp://$target"), "{landing}");
    assert!(!landing.contains(PASSWORD));
}
