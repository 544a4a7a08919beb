//! The catalog's `redis` module against prometheus-redis-exporter 1.45 on one real Redis.
//!
//! Redis counts every command it answers (the readers' own `INFO`, `CONFIG GET`, `PING`), so
//! two readers never see the same numbers live. Both read through a small caching proxy
//! (`SnapshotProxy`): the first `INFO`, `CONFIG`, `SLOWLOG` or `LATENCY` command of each kind
//! goes to the real server, and every later one, from either reader, gets that same reply,
//! byte for byte. Other commands (`AUTH`, `CLIENT SETNAME`, `SELECT`, `PING`, `ECHO`) always
//! go through, so each connection keeps its own state.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, Server};

pub(crate) const PASSWORD: &str = "s3cret-redis";

/// Starts `redis-server` on a free loopback port with a password, without persistence, and
/// with every command in the slowlog (so `SLOWLOG GET 1` has an entry to compare).
pub(crate) fn start_redis(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("redis.out")).unwrap();
    let child = Command::new("/usr/bin/redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .args(["--requirepass", PASSWORD, "--slowlog-log-slower-than", "0"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "redis-server did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (server, port)
}

/// The length of the complete RESP reply at the start of `buf`, if it is all there.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let mut at = line_end + 2;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(at),
        b'$' => {
            let n: i64 = header.parse().ok()?;
            if n < 0 {
                return Some(at);
            }
            at += n as usize + 2;
            (buf.len() >= at).then_some(at)
        }
        b'*' => {
            let n: i64 = header.parse().ok()?;
            for _ in 0..n.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => panic!("not a RESP reply: {:?}", String::from_utf8_lossy(buf)),
    }
}

/// The first command in `buf` (a RESP array of bulk strings, or an inline line) as its
/// words, and its length in bytes, if it is all there.
fn command_len(buf: &[u8]) -> Option<(Vec<String>, usize)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    if buf.first() != Some(&b'*') {
        let line = String::from_utf8_lossy(&buf[..line_end]);
        return Some((
            line.split_whitespace().map(str::to_owned).collect(),
            line_end + 2,
        ));
    }
    let count: usize = std::str::from_utf8(&buf[1..line_end]).ok()?.parse().ok()?;
    let mut at = line_end + 2;
    let mut words = Vec::new();
    for _ in 0..count {
        let len = reply_len(&buf[at..])?;
        let bulk = &buf[at..at + len];
        let header_end = bulk.windows(2).position(|w| w == b"\r\n")? + 2;
        words.push(String::from_utf8_lossy(&bulk[header_end..len - 2]).into_owned());
        at += len;
    }
    Some((words, at))
}

/// The cache key of a status command, `None` for one that always goes to the server. Every
/// `INFO` is one key, so `INFO` and `INFO ALL` get the same snapshot.
fn snapshot_key(words: &[String]) -> Option<String> {
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    match upper.first().map(String::as_str) {
        Some("INFO") => Some("INFO".to_owned()),
        Some("CONFIG" | "SLOWLOG" | "LATENCY") => Some(upper.join(" ")),
        _ => None,
    }
}

/// A proxy to one Redis that answers status commands from a snapshot (see the file's header).
struct SnapshotProxy {
    port: u16,
}

impl SnapshotProxy {
    fn start(upstream: u16) -> SnapshotProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cache: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &cache);
                });
            }
        });
        SnapshotProxy { port }
    }
}

/// One client connection: its own connection to the server, commands answered in order.
fn serve(
    mut client: TcpStream,
    upstream: u16,
    cache: &Mutex<HashMap<String, Vec<u8>>>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut pending = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some((words, len)) = command_len(&pending) {
            let command: Vec<u8> = pending.drain(..len).collect();
            let key = snapshot_key(&words);
            let cached = key
                .as_ref()
                .and_then(|k| cache.lock().unwrap().get(k).cloned());
            let reply = match cached {
                Some(reply) => reply,
                None => {
                    server.write_all(&command)?;
                    let mut reply = Vec::new();
                    let len = loop {
                        if let Some(len) = reply_len(&reply).filter(|_| !reply.is_empty()) {
                            break len;
                        }
                        let n = server.read(&mut chunk)?;
                        if n == 0 {
                            return Ok(());
                        }
                        reply.extend_from_slice(&chunk[..n]);
                    };
                    assert_eq!(len, reply.len(), "one reply per command");
                    if let Some(key) = key {
                        cache.lock().unwrap().entry(key).or_insert(reply.clone());
                    }
                    reply
                }
            };
            client.write_all(&reply)?;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// `redis-cli` on the real server, for the test's traffic.
pub(crate) fn redis_cli(port: u16, db: u8, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "-n", &db.to_string()])
        .env("REDISCLI_AUTH", PASSWORD)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn proxy_parses_commands_and_replies_of_both_forms() {
    assert_eq!(
        command_len(b"INFO ALL\r\nPING\r\n"),
        Some((vec!["INFO".to_owned(), "ALL".to_owned()], 10))
    );
    assert_eq!(
        command_len(b"*2\r\n$6\r\nCONFIG\r\n$3\r\nGET"),
        None,
        "incomplete"
    );
    let (words, len) = command_len(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$1\r\n*\r\n").unwrap();
    assert_eq!((words.join(" "), len), ("CONFIG GET *".to_owned(), 32));
    assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n:5\r\n+PONG\r\n"), Some(15));
    assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n"), None);
    assert_eq!(reply_len(b"$-1\r\n"), Some(5));
    assert_eq!(
        snapshot_key(&["info".into()]),
        snapshot_key(&["INFO".into(), "ALL".into()])
    );
    assert_eq!(snapshot_key(&["AUTH".into(), "x".into()]), None);
}

/// The redis module against prometheus-redis-exporter 1.45 on one Redis 7 with keys in two
/// databases, some commands (hits, misses, an error) and a slowlog, both reading the same
/// snapshot; then Redis goes away and both say `redis_up 0`.
#[test]
fn redis_module_is_a_drop_in_for_prometheus_redis_exporter() {
    if !Path::new("/usr/bin/redis-server").exists()
        || !dedicated_installed("prometheus-redis-exporter")
    {
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let dir = tempdir();
    let (redis, redis_port) = start_redis(dir.path());
    redis_cli(redis_port, 0, &["SET", "a", "1"]);
    redis_cli(redis_port, 0, &["SET", "b", "2", "EX", "1000"]);
    redis_cli(redis_port, 0, &["SET", "s", "text"]);
    redis_cli(redis_port, 1, &["SET", "c", "3"]);
    redis_cli(redis_port, 1, &["SET", "d", "4", "EX", "500"]);
    redis_cli(redis_port, 0, &["GET", "a"]);
    redis_cli(redis_port, 0, &["GET", "missing"]);
    redis_cli(redis_port, 0, &["INCR", "s"]); // an error: ERR value is not an integer
    let proxy = SnapshotProxy::start(redis_port);
    let address = format!("127.0.0.1:{}", proxy.port);
    let dedicated = start_dedicated(
        "prometheus-redis-exporter",
        &[
            &format!("--redis.addr=redis://{address}"),
            &format!("--redis.password={PASSWORD}"),
            "--web.listen-address=127.0.0.1:{port}",
        ],
        dir.path(),
    );
    std::fs::write(dir.path().join("redis.password"), format!("{PASSWORD}\n")).unwrap();
    let config = format!(
        "version: 1\nuse:\n  - module: redis\n    with: {{address: '{address}', password_file: redis.password, interval: 200ms}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("redis_up", 1.0);
    let theirs = get_text(dedicated.1, "/metrics");
    let ours = exporter.scrape();
    assert_eq!(value_in(&theirs, "redis_up"), Some(1.0), "{theirs}");
    let ignored = [
        "go_",
        "process_",
        "promhttp_",
        "quarry_",
        // The exporter's own: its scrapes, errors and key-group timing.
        "redis_exporter_",
        "redis_target_scrape_request_errors_total",
        "redis_last_key_groups_scrape_duration_milliseconds",
    ];
    let parity = compare(&theirs, &ours, &ignored);
    let total = parity.reproduced.len() + parity.missing.len();
    eprintln!(
        "redis: {}/{total} series reproduced exactly; added: {}",
        parity.reproduced.len(),
        parity.added.join(", ")
    );
    eprintln!("not reproduced:\n{}", parity.missing.join("\n"));
    // Not reproduced: redis_start_time_seconds is the exporter's clock minus uptime_in_seconds
    // (arithmetic rules do not do); redis_latency_percentiles_usec is a summary (quantiles of
    // INFO latencystats, a type the exporter does not have).
    let unexplained: Vec<&String> = parity
        .missing
        .iter()
        .filter(|m| {
            !m.starts_with("redis_start_time_seconds: family missing")
                && !m.starts_with("redis_latency_percentiles_usec")
        })
        .collect();
    assert!(unexplained.is_empty(), "not reproduced:\n{unexplained:#?}");
    assert!(
        parity.reproduced.len() >= 150,
        "too few series compared: {parity:?}"
    );
    for series in [
        r#"redis_db_keys{db="db1"}"#,
        r#"redis_db_keys_expiring{db="db1"}"#,
        r#"redis_errors_total{err="ERR"}"#,
        r#"redis_commands_total{cmd="incr"}"#,
        "redis_slowlog_last_id",
        "redis_config_maxclients",
        "redis_instance_info",
    ] {
        assert!(
            parity.reproduced.iter().any(|r| r.starts_with(series)),
            "{series} not compared: {parity:?}"
        );
    }
    assert!(parity.added.is_empty(), "{parity:?}");
    assert_eq!(value_in(&ours, r#"redis_db_keys{db="db1"}"#), Some(2.0));
    // The fleet form: redis-probe at /probe, on the same snapshot, gives the same series.
    let prober_dir = tempdir();
    std::fs::copy(
        dir.path().join("redis.password"),
        prober_dir.path().join("redis.password"),
    )
    .unwrap();
    let prober = Exporter::start(
        prober_dir.path(),
        "version: 1\nuse:\n  - {module: redis-probe, with: {password_file: redis.password}}\n",
    );
    let (status, _, probed) = prober.get(
        &format!("/probe?module=redis-probe/redis&target={address}"),
        &[],
    );
    let probed = String::from_utf8(probed).unwrap();
    assert_eq!(status, 200, "{probed}");
    assert_eq!(
        value_in(&probed, "quarry_probe_success"),
        Some(1.0),
        "{probed}"
    );
    let probe_parity = compare(&theirs, &probed, &ignored);
    assert_eq!(
        probe_parity.reproduced, parity.reproduced,
        "{probe_parity:?}"
    );
    // Redis is gone: both say redis_up 0.
    drop(redis);
    exporter.wait_value("redis_up", 0.0);
    assert_eq!(
        value_in(&get_text(dedicated.1, "/metrics"), "redis_up"),
        Some(0.0)
    );
}

/// A wrong password fails the conversation (redis_up 0, reason unexpected_reply) and the
/// password is shown nowhere.
#[test]
fn redis_module_with_a_wrong_password_is_down_and_says_why() {
    if !Path::new("/usr/bin/redis-server").exists() {
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let dir = tempdir();
    let (_redis, port) = start_redis(dir.path());
    std::fs::write(dir.path().join("pw"), "wrong-one\n").unwrap();
    let config = format!(
        "version: 1\nuse:\n  - module: redis\n    with: {{address: '127.0.0.1:{port}', password_file: pw, interval: 200ms}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_at_least(
        r#"quarry_source_errors_total{reason="unexpected_reply",source="redis/redis"}"#,
        1.0,
    );
    let text = exporter.scrape();
    assert_eq!(value_in(&text, "redis_up"), Some(0.0), "{text}");
    let (_, _, page) = exporter.get("/", &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(!page.contains("wrong-one") && !text.contains("wrong-one"));
}

/// A database emptied goes back to 0, as with the exporter (INFO no longer lists it).
#[test]
fn redis_module_shows_an_emptied_database_at_0() {
    if !Path::new("/usr/bin/redis-server").exists() {
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let dir = tempdir();
    let (_redis, port) = start_redis(dir.path());
    std::fs::write(dir.path().join("pw"), PASSWORD).unwrap();
    redis_cli(port, 3, &["SET", "k", "v"]);
    let config = format!(
        "version: 1\nuse:\n  - module: redis\n    with: {{address: '127.0.0.1:{port}', password_file: pw, interval: 100ms}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"redis_db_keys{db="db3"}"#, 1.0);
    redis_cli(port, 3, &["FLUSHDB"]);
    exporter.wait_value(r#"redis_db_keys{db="db3"}"#, 0.0);
    assert_eq!(exporter.value("redis_up"), Some(1.0));
}

/// redis-probe is the redis module as a probe module: the same metrics, conversation and
/// rules (only the address, `$target`, and the schedule, Prometheus', differ).
#[test]
fn redis_probe_module_keeps_the_redis_modules_rules() {
    let read = |name: &str| -> serde_yaml::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("catalog/{name}.yaml"));
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (module, probe) = (read("redis"), read("redis-probe"));
    assert_eq!(module["metrics"], probe["metrics"]);
    let (source, prober) = (&module["sources"][0], &probe["modules"][0]);
    assert_eq!(source["rules"], prober["rules"]);
    assert_eq!(source["socket"]["steps"], prober["socket"]["steps"]);
    assert_eq!(source["socket"]["secrets"], prober["socket"]["secrets"]);
    assert_eq!(prober["socket"]["address"], "$target");
}
