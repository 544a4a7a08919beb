//! Issue 22: every catalog module's dashboard row returns data from a real Prometheus. The
//! real servers the modules read (Debian's packages, on loopback, started by the catalog
//! tests' own starters) get a little traffic while one exporter `use:`s every module (a
//! second one the two that share metric names with another: `haproxy-socket`, whose twin is
//! `haproxy`, and `redis-probe`, served at `/probe`), a real Prometheus scrapes both, and
//! every target of every panel of each module's row of the generated dashboard
//! (`quarry_exporter dashboard`) must be valid PromQL that returns data. Only the targets in
//! [`NO_DATA`] may return nothing, each for the reason given there.

use std::any::Any;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::catalog::{start_apache, start_php_fpm};
use crate::catalog_bind::{ask, start_named};
use crate::catalog_haproxy_memcached::{memcached_installed, start_haproxy, start_memcached};
use crate::catalog_logs::{
    postfix_runnable, postgresql_installed, psql, send_mail, sshd_testable, start_postfix,
    start_postgresql, start_sshd, write_postfix_config,
};
use crate::catalog_redis::{redis_cli, start_redis, PASSWORD};
use crate::catalog_squid::{serve, start_squid, through_proxy};
use crate::catalog_varnish::start_varnish;
use crate::common::*;
use crate::prom::{prometheus_available, Prometheus};
use crate::real_servers::{installed, start_nginx};

/// Panel targets of a module's row that may return no data: (modules, the metrics their
/// queries read, why these servers give them no series, whether never). Everything else must
/// return data; and a target listed as never returning data must not (else the list is stale).
const NO_DATA: &[(&[&str], &[&str], &str, bool)] = &[
    (
        &["haproxy", "haproxy-socket"],
        &["haproxy_server_limit_sessions"],
        "a server's `slim` cell is empty without `maxconn` (the test's servers have none); an empty cell gives no series, as with the dedicated exporter",
        true,
    ),
    (
        &["memcached"],
        &["memcached_malloced_bytes"],
        "memcached 1.6 no longer writes `total_malloced` (1.4 and 1.5 do)",
        true,
    ),
    (
        &["redis", "redis-probe"],
        &[
            "redis_connected_slave_offset_bytes",
            "redis_connected_slave_lag_seconds",
            "redis_master_link_up",
            "redis_master_last_io_seconds_ago",
            "redis_master_sync_in_progress",
        ],
        "replication: the test's Redis is a primary without replicas, and INFO writes the replica and master fields only when there is one or it is one",
        true,
    ),
    (
        &["redis", "redis-probe"],
        &[
            "redis_aof_base_size_bytes",
            "redis_aof_buffer_length",
            "redis_aof_current_size_bytes",
            "redis_aof_delayed_fsync",
            "redis_aof_pending_bio_fsync",
            "redis_aof_pending_rewrite",
            "redis_aof_rewrite_buffer_length",
            "redis_client_biggest_input_buf",
            "redis_client_longest_output_list",
            "redis_cluster_messages_received_total",
            "redis_cluster_messages_sent_total",
            "redis_slave_priority",
        ],
        "fields Redis 7 does not write here: the AOF sizes and buffers (appendonly no, as in the parity test), Redis 5's client buffer fields, cluster messages (cluster mode off), slave_priority (a replica's)",
        true,
    ),
    (
        &["bind"],
        &["bind_resolver_cache_rrsets"],
        "the test's named is authoritative only (recursion no): its cache holds rrsets only once its own background priming of the root zone has stored some, which may not have happened (no network here)",
        false,
    ),
    (
        &["postfix"],
        &[
            "postfix_smtp_tls_connections_total",
            "postfix_smtpd_tls_connections_total",
            "opendkim_signatures_added_total",
            "postfix_lmtp_delivery_delay_seconds_bucket",
            "postfix_pipe_delivery_delay_seconds_bucket",
        ],
        "the test's Postfix has no TLS certificate, no opendkim milter and no lmtp or pipe transport, so it logs none of these",
        true,
    ),
];

/// The rows of a generated board: each row's title and its panels' `(panel title, expr)`
/// (the panels after a row, up to the next, belong to it).
fn rows(board: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let mut rows: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for p in board["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap().to_owned();
        if p["type"] == "row" {
            rows.push((title, Vec::new()));
            continue;
        }
        let row = &mut rows.last_mut().expect("a panel before any row").1;
        for t in p["targets"].as_array().unwrap() {
            row.push((title.clone(), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    rows
}

/// `quarry_exporter --config.file CONFIG dashboard`, parsed.
fn dashboard(config: &Path) -> Value {
    let out = Command::new(binary())
        .arg("--config.file")
        .arg(config)
        .arg("dashboard")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the modules read: the `use:` entries of each exporter, the servers (kept until the
/// end), the traffic to make while Prometheus scrapes, and the targets to probe.
#[derive(Default)]
struct Fleet {
    /// `use:` entries (YAML list items) of the first exporter and of the second.
    uses: [Vec<String>; 2],
    /// Each module checked and the exporter (0 or 1) that uses it.
    modules: Vec<(&'static str, usize)>,
    /// Servers and the like, dropped (stopped) at the end.
    keep: Vec<Box<dyn Any>>,
    /// Traffic, made again and again while Prometheus scrapes.
    traffic: Vec<Box<dyn Fn()>>,
    /// Targets Prometheus probes through the second exporter: (`module` parameter, target).
    probes: Vec<(String, String)>,
}

impl Fleet {
    fn add(&mut self, module: &'static str, exporter: usize, with: String) {
        self.uses[exporter].push(format!("  - {{module: {module}, with: {{{with}}}}}\n"));
        self.modules.push((module, exporter));
    }
}

/// Two SMTP conversations Postfix logs as a NOQUEUE reject (relaying to a domain it does not
/// serve: 554) and as a connection lost after EHLO (the client hangs up).
fn smtp_reject_and_lose(port: u16) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // One reply: its last line has a space after the code.
    let mut reply = || {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    };
    assert!(reply().starts_with("220"));
    for command in ["EHLO client.quarry.test", "MAIL FROM:<sender@quarry.test>"] {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        assert!(reply().starts_with("250"));
    }
    writer
        .write_all(b"RCPT TO:<someone@elsewhere.test>\r\n")
        .unwrap();
    let rejected = reply();
    assert!(rejected.starts_with("554"), "{rejected}");
    writer.write_all(b"QUIT\r\n").unwrap();
    let _ = reply();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer.write_all(b"EHLO client.quarry.test\r\n").unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.len() < 4 || line.as_bytes()[3] == b' ' {
            break;
        }
    }
}

/// A directory of its own under `dir` for one server.
fn sub(dir: &Path, name: &str) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d
}

/// Starts every server whose programs are installed (the others are skipped, saying so, as
/// their own tests are), with its module's `use:` entry and its traffic.
fn fleet(dir: &Path) -> Fleet {
    let mut f = Fleet::default();
    const EVERY: &str = "interval: 1s";
    if installed("nginx") {
        let d = sub(dir, "nginx");
        let (server, port) = start_nginx(&d);
        f.keep.push(Box::new(server));
        let log = path_str(&d.join("access.log"));
        f.add(
            "nginx",
            0,
            format!("url: 'http://127.0.0.1:{port}/stub_status', access_log: '{log}', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            http_get(port, "/", &[]);
            http_get(port, "/missing", &[]);
        }));
    }
    if installed("apache2") {
        let d = sub(dir, "apache");
        let (server, port) = start_apache(&d, true);
        f.keep.push(Box::new(server));
        f.add(
            "apache",
            0,
            format!("url: 'http://127.0.0.1:{port}/server-status?auto', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            http_get(port, "/page", &[]);
        }));
    }
    if installed("php-fpm8.2") && installed("nginx") {
        let d = sub(dir, "php-fpm");
        let (fpm, nginx, port) = start_php_fpm(&d);
        f.keep.push(Box::new(fpm));
        f.keep.push(Box::new(nginx));
        f.add(
            "php-fpm",
            0,
            format!("url: 'http://127.0.0.1:{port}/status?json', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            http_get(port, "/status", &[]);
        }));
    }
    if installed("haproxy") {
        let d = sub(dir, "haproxy");
        let (server, stats, web, socket) = start_haproxy(&d);
        f.keep.push(Box::new(server));
        f.add(
            "haproxy",
            0,
            format!("url: 'http://127.0.0.1:{stats}/stats;csv', {EVERY}"),
        );
        f.add(
            "haproxy-socket",
            1,
            format!("path: '{}', {EVERY}", path_str(&socket)),
        );
        f.traffic.push(Box::new(move || {
            crate::catalog_haproxy_memcached::traffic(web)
        }));
    }
    if memcached_installed() {
        let (server, port) = start_memcached();
        f.keep.push(Box::new(server));
        f.add(
            "memcached",
            0,
            format!("address: '127.0.0.1:{port}', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            use std::io::{Read, Write};
            let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut reply = [0u8; 256];
            for command in ["set a 0 0 1\r\nx\r\n", "get a\r\n", "get zz\r\n"] {
                client.write_all(command.as_bytes()).unwrap();
                let _ = client.read(&mut reply).unwrap();
            }
        }));
    }
    if Path::new("/usr/bin/redis-server").exists() {
        let d = sub(dir, "redis");
        let (server, port) = start_redis(&d);
        f.keep.push(Box::new(server));
        let password = d.join("password");
        std::fs::write(&password, PASSWORD).unwrap();
        let password = path_str(&password);
        f.add(
            "redis",
            0,
            format!("address: '127.0.0.1:{port}', password_file: '{password}', {EVERY}"),
        );
        f.add("redis-probe", 1, format!("password_file: '{password}'"));
        f.probes
            .push(("redis-probe/redis".into(), format!("127.0.0.1:{port}")));
        redis_cli(port, 1, &["SET", "c", "3", "EX", "500"]);
        f.traffic.push(Box::new(move || {
            redis_cli(port, 0, &["SET", "a", "1"]);
            redis_cli(port, 0, &["GET", "a"]);
            redis_cli(port, 0, &["GET", "nothing"]);
            redis_cli(port, 0, &["SET", "s", "text"]);
            redis_cli(port, 0, &["INCR", "s"]); // an error: ERR value is not an integer
        }));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is required in CI"
        );
        eprintln!("redis-server not installed; skipping");
    }
    if installed("squid") {
        let d = sub(dir, "squid");
        let (server, proxy) = start_squid(&d);
        f.keep.push(Box::new(server));
        let origin = serve(Default::default(), |path| match path {
            "/a" => (200, "hello\n".repeat(300)),
            _ => (404, "not here\n".to_owned()),
        });
        f.add(
            "squid",
            0,
            format!("host: 127.0.0.1, port: '{proxy}', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            through_proxy(proxy, &format!("http://127.0.0.1:{origin}/a"));
            through_proxy(proxy, &format!("http://127.0.0.1:{origin}/b"));
        }));
    }
    if installed("varnishd") {
        let d = sub(dir, "varnish");
        let (server, port, instance) = start_varnish(&d);
        f.keep.push(Box::new(server));
        f.add(
            "varnish",
            0,
            format!("instance: '{instance}', interval: 1s, timeout: 3s"),
        );
        f.traffic.push(Box::new(move || {
            http_get(port, "/", &[]);
            http_get(port, "/missing", &[]);
        }));
    }
    if installed("named") {
        let d = sub(dir, "bind");
        let (server, dns, stats) = start_named(&d);
        f.keep.push(Box::new(server));
        f.add(
            "bind",
            0,
            format!("url: 'http://127.0.0.1:{stats}', {EVERY}"),
        );
        f.traffic.push(Box::new(move || {
            ask(dns, 1, "www.example.test", 1);
            ask(dns, 2, "nx.example.test", 1);
            ask(dns, 3, "example.org", 1);
        }));
    }
    if let Some(bin) = postgresql_installed() {
        let d = sub(dir, "postgresql");
        let log = d.join("postgresql.log");
        let server = start_postgresql(&bin, &d, &log);
        let port = server.port;
        f.keep.push(Box::new(server));
        f.add("postgresql", 0, format!("log: '{}'", path_str(&log)));
        f.traffic.push(Box::new(move || {
            psql(port, "postgres", "select 1");
            psql(port, "postgres", "select * from no_such_table");
            psql(port, "postgres", "select pg_sleep(0.15)");
        }));
    }
    if sshd_testable() {
        let d = sub(dir, "openssh");
        let log = d.join("auth.log");
        let sshd = start_sshd(&d, &log);
        f.add("openssh", 0, format!("log: '{}'", path_str(&log)));
        // A round of attempts takes seconds (sshd delays failed ones): one is enough.
        let done = std::cell::Cell::new(false);
        f.traffic.push(Box::new(move || {
            if !done.replace(true) {
                sshd.attempts();
            }
        }));
    }
    if postfix_runnable() {
        let d = sub(dir, "postfix");
        let (port, log) = write_postfix_config(&d);
        let postfix = start_postfix(&d, port, &log);
        f.keep.push(Box::new(postfix));
        let showq = path_str(&d.join("spool/public/showq"));
        f.add(
            "postfix",
            0,
            format!("log: '{}', showq_path: '{showq}', {EVERY}", path_str(&log)),
        );
        let sent = std::cell::Cell::new(0);
        f.traffic.push(Box::new(move || {
            if sent.get() < 2 {
                send_mail(port, "root@quarry.test");
                send_mail(port, "someone@deferred.test");
                smtp_reject_and_lose(port);
                sent.set(sent.get() + 1);
            }
        }));
    }
    f
}

#[test]
fn every_catalog_modules_dashboard_row_returns_data_from_a_real_prometheus() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let dir = tempdir();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fleet = fleet(dir.path());
    // An exporter per non-empty list of uses, each scraped as its own job.
    let jobs = ["quarry", "quarry_b"];
    let mut configs = Vec::new();
    let mut exporters = Vec::new();
    let mut scrape_configs = String::new();
    for (i, uses) in fleet.uses.iter().enumerate() {
        let config = dir.path().join(format!("exporter-{i}.yaml"));
        if !uses.is_empty() {
            std::fs::write(&config, format!("version: 1\nuse:\n{}", uses.concat())).unwrap();
            let exporter = Exporter::start_with(&config, &[]);
            scrape_configs.push_str(&format!(
                "  - job_name: {}\n    static_configs: [{{targets: [\"127.0.0.1:{}\"]}}]\n",
                jobs[i], exporter.port
            ));
            exporters.push(Some(exporter));
        } else {
            exporters.push(None);
        }
        configs.push(config);
    }
    for (module, target) in &fleet.probes {
        let port = exporters[1].as_ref().unwrap().port;
        scrape_configs.push_str(&format!(
            r#"  - job_name: probe
    metrics_path: /probe
    params: {{module: ["{module}"]}}
    static_configs: [{{targets: ["{target}"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "127.0.0.1:{port}"}}
"#
        ));
    }
    let prom_dir = sub(dir.path(), "prometheus");
    let prometheus = Prometheus::start_with(&prom_dir, &scrape_configs);
    let boards: Vec<Option<Value>> = configs
        .iter()
        .zip(&exporters)
        .map(|(c, e)| e.as_ref().map(|_| dashboard(c)))
        .collect();

    // Each module's row and its targets, Grafana's variables filled in (every instance and
    // target, this exporter's job).
    let mut checks: Vec<(&str, String, String)> = Vec::new();
    for (module, exporter) in &fleet.modules {
        let all = rows(boards[*exporter].as_ref().unwrap());
        let row = all
            .iter()
            .find(|(title, _)| title == module)
            .unwrap_or_else(|| {
                panic!(
                    "no row {module}: {:?}",
                    all.iter().map(|r| &r.0).collect::<Vec<_>>()
                )
            });
        assert!(!row.1.is_empty(), "{module}: an empty row");
        for (panel, expr) in &row.1 {
            let expr = expr
                .replace("$__rate_interval", "20s")
                .replace("$probe_job", "probe")
                .replace("$job", jobs[*exporter])
                .replace("$instance", ".*")
                .replace("$target", ".*");
            checks.push((module, panel.clone(), expr));
        }
    }
    let allowed = |module: &str, expr: &str| {
        NO_DATA.iter().any(|(modules, metrics, _, _)| {
            modules.contains(&module) && metrics.iter().any(|m| expr.contains(&format!("{m}{{")))
        })
    };

    // Traffic while Prometheus scrapes, until it has a dozen scrapes of each exporter and
    // every target that must return data does (or the deadline passes: then the report).
    let scraped = |job: &str| {
        prometheus
            .query(&format!(r#"count_over_time(up{{job="{job}"}}[1m]) >= 12"#))
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    };
    let deadline = Duration::from_secs(150);
    let begun = Instant::now();
    let (failures, empty) = loop {
        for traffic in &fleet.traffic {
            traffic();
        }
        let all_scraped = exporters
            .iter()
            .zip(jobs)
            .all(|(e, job)| e.is_none() || scraped(job));
        if !all_scraped {
            assert!(
                begun.elapsed() < deadline,
                "Prometheus did not scrape: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let mut failures = Vec::new();
        let mut empty = Vec::new();
        for (module, panel, expr) in &checks {
            match prometheus.query(expr) {
                Ok(r) if r.is_empty() => empty.push((*module, panel.clone(), expr.clone())),
                Ok(_) => {}
                Err(e) => failures.push(format!("{module} / {panel}: {e}: {expr}")),
            }
        }
        let unexplained = empty.iter().any(|(m, _, e)| !allowed(m, e));
        if failures.is_empty() && !unexplained || begun.elapsed() > deadline {
            break (failures, empty);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (explained, unexplained): (Vec<_>, Vec<_>) =
        empty.iter().partition(|(m, _, e)| allowed(m, e));
    for (module, exporter) in &fleet.modules {
        let of = checks.iter().filter(|c| c.0 == *module).count();
        let none = empty.iter().filter(|c| c.0 == *module).count();
        eprintln!(
            "{module} (exporter {exporter}): {} of {of} targets return data",
            of - none
        );
    }
    for (module, panel, expr) in &explained {
        let (_, _, why, _) = NO_DATA
            .iter()
            .find(|(modules, metrics, _, _)| {
                modules.contains(module) && metrics.iter().any(|m| expr.contains(&format!("{m}{{")))
            })
            .unwrap();
        eprintln!("no data, allowed: {module} / {panel}: {why}");
    }
    eprintln!(
        "{} modules, {} targets, in {:.0?}",
        fleet.modules.len(),
        checks.len(),
        started.elapsed()
    );
    let unexplained: Vec<String> = unexplained
        .iter()
        .map(|(m, p, e)| format!("{m} / {p}: no data: {e}"))
        .collect();
    assert!(
        failures.is_empty() && unexplained.is_empty(),
        "{} targets failed, {} returned no data:\n{}\n{}",
        failures.len(),
        unexplained.len(),
        failures.join("\n"),
        unexplained.join("\n")
    );
    // The list stays honest: each entry's targets (of the modules checked) exist, and those
    // that never return data did return nothing.
    for (modules, metrics, why, never) in NO_DATA {
        for module in modules
            .iter()
            .filter(|m| fleet.modules.iter().any(|f| f.0 == **m))
        {
            for metric in *metrics {
                let reads = |e: &String| e.contains(&format!("{metric}{{"));
                assert!(
                    checks.iter().any(|(m, _, e)| m == module && reads(e)),
                    "NO_DATA: no target of {module} reads {metric}"
                );
                assert!(
                    !never || empty.iter().any(|(m, _, e)| m == module && reads(e)),
                    "NO_DATA: {module}'s {metric} returned data: take it off the list ({why})"
                );
            }
        }
    }
    drop(exporters);
    drop(fleet);
}
