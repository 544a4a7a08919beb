//! The catalog: `quarry_exporter catalog`, `check` on a config that `use:`s modules, secrets
//! kept out of sight, and each module against its real server and its dedicated exporter
//! (see `parity.rs`).

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::parity::*;
use crate::real_servers::{free_port, installed, start, start_nginx, Server};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn catalog_lists_shows_and_prints_modules() {
    let (ok, list, _) = run(&["catalog"]);
    assert!(ok);
    assert!(
        list.lines().any(|l| l.starts_with("nginx ")
            && l.contains("[drop-in for prometheus-nginx-exporter 0.11")),
        "{list}"
    );
    let (ok, shown, _) = run(&["catalog", "nginx"]);
    assert!(ok);
    assert!(shown.contains("\nparams:\n"), "{shown}");
    assert!(shown.contains("  url: the stub_status page"), "{shown}");
    assert!(
        shown.contains("  nginx_connections_accepted (counter): Accepted client connections\n"),
        "{shown}"
    );
    let (ok, yaml, _) = run(&["catalog", "nginx", "--yaml"]);
    assert!(ok);
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/nginx.yaml"))
            .unwrap();
    assert_eq!(yaml.trim_end(), shipped.trim_end());
    let (ok, _, err) = run(&["catalog", "ngnix"]);
    assert!(!ok);
    assert!(
        err.contains("no catalog module \\\"ngnix\\\" (did you mean \\\"nginx\\\"?)"),
        "{err}"
    );
}

#[test]
fn every_shipped_module_file_is_embedded() {
    let (_, list, _) = run(&["catalog"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            assert!(
                list.lines().any(|l| l.starts_with(&format!("{name} "))),
                "catalog/{name}.yaml is not in src/catalog.rs MODULES"
            );
        }
    }
}

#[test]
fn check_accepts_a_config_that_uses_modules_and_places_module_errors() {
    let dir = tempdir();
    let config = dir.path().join("exporter.yaml");
    std::fs::write(
        &config,
        "version: 1\nuse:\n  - {module: nginx, name: front, labels: {instance: front}, with: {url: 'http://127.0.0.1:1/s'}}\n  - {module: nginx, name: back, labels: {instance: back}, with: {url: 'http://127.0.0.1:2/s'}}\n",
    )
    .unwrap();
    let (ok, out, err) = run(&["--config.file", config.to_str().unwrap(), "check"]);
    assert!(ok, "{err}");
    assert!(out.contains(": OK (10 metrics, 4 sources, using front (catalog/nginx.yaml), back (catalog/nginx.yaml), 8 rules)"), "{out}");
    // A module file next to the config, named by path, with an error inside.
    let module =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/nginx.yaml"))
            .unwrap()
            .replace("{metric: nginx_up, set:", "{metric: nginx_upp, set:");
    std::fs::write(dir.path().join("my-nginx.yaml"), module).unwrap();
    std::fs::write(&config, "version: 1\nuse:\n  - module: my-nginx.yaml\n").unwrap();
    let (ok, _, err) = run(&["--config.file", config.to_str().unwrap(), "check"]);
    assert!(!ok);
    assert!(err.contains("my-nginx.yaml:67:22: sources[0].rules[0].update[1].metric: unknown metric \"nginx_upp\" (did you mean \"nginx_up\"?)"), "{err}");
    assert!(err.contains("(in the module used at "), "{err}");
}

/// A module whose secret parameter goes into a request header and a query value: the value is
/// sent, and shown nowhere — not by `check`, `explain`, the landing page, `/metrics` or logs.
#[test]
fn a_secret_parameter_is_never_shown() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("kv.yaml"),
        "version: 1
module:
  name: kv
  description: a page behind a token
  params:
    url: {description: the page}
    token: {description: the bearer token, secret: true}
metrics:
  - {name: kv_keys, type: gauge, help: Keys.}
sources:
  - name: page
    http: {url: '${url}?token=${token}', headers: {Authorization: 'Bearer ${token}'}, interval: 200ms}
    rules:
      - regex: 'keys=(?P<n>\\d+)'
        update: [{metric: kv_keys, set: $n}]
",
    )
    .unwrap();
    let config = format!(
        "version: 1\nuse:\n  - {{module: kv.yaml, with: {{url: 'http://127.0.0.1:{}/keys/', token: s3cr3t-t0ken}}}}\n",
        free_port()
    );
    let file = dir.path().join("exporter.yaml");
    std::fs::write(&file, &config).unwrap();
    let (ok, out, err) = run(&["--config.file", file.to_str().unwrap(), "check"]);
    assert!(ok, "{err}");
    let (_, explained, explain_err) = run(&["--config.file", file.to_str().unwrap(), "explain"]);
    let exporter = Exporter::start_with(&file, &[]);
    exporter.wait_value(r#"quarry_source_up{source="kv/page"}"#, 0.0);
    let (_, _, landing) = exporter.get("/", &[]);
    let landing = String::from_utf8(landing).unwrap();
    assert!(landing.contains("kv/page"), "{landing}");
    let scraped = exporter.scrape();
    let log = exporter.log_text();
    // In a URL's path a secret is still hidden from explain's report (fetch errors in logs
    // name the path, so modules keep secrets out of it: CONFIG.md, use).
    let module = std::fs::read_to_string(dir.path().join("kv.yaml")).unwrap();
    std::fs::write(
        dir.path().join("kv.yaml"),
        module.replace("${url}?token=${token}", "${url}${token}"),
    )
    .unwrap();
    let (_, in_path, _) = run(&["--config.file", file.to_str().unwrap(), "explain"]);
    assert!(
        in_path.contains("reads: GET http://127.0.0.1:"),
        "{in_path}"
    );
    assert!(in_path.contains("/keys/<secret>"), "{in_path}");
    for (what, text) in [
        ("check", &out),
        ("explain", &explained),
        ("explain's stderr", &explain_err),
        ("landing page", &landing),
        ("/metrics", &scraped),
        ("log", &log),
    ] {
        assert!(!text.contains("s3cr3t"), "{what} shows the secret:\n{text}");
    }
}

#[test]
fn nginx_module_is_a_drop_in_for_prometheus_nginx_exporter() {
    if !installed("nginx") || !dedicated_installed("prometheus-nginx-exporter") {
        return;
    }
    let dir = tempdir();
    let (_nginx, port) = start_nginx(dir.path());
    let frozen = dir.path().join("frozen");
    std::fs::write(&frozen, get_text(port, "/stub_status")).unwrap();
    let frozen_url = format!("http://127.0.0.1:{port}/frozen");
    let config = format!(
        "version: 1\nuse:\n  - module: nginx\n    with: {{url: '{frozen_url}', interval: 200ms, access_log: '{}'}}\n",
        dir.path().join("access.log").display()
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("nginx_up", 1.0);
    // Traffic, then still: 20 pages, 3 missing ones, one POST; then one stub_status page is
    // taken and frozen, and both exporters read it.
    for i in 0..20 {
        http_get(port, &format!("/page/{i}?q=1"), &[]);
    }
    for _ in 0..3 {
        http_get(port, "/missing", &[]);
    }
    post(port, "/form");
    let live = get_text(port, "/stub_status");
    let requests: f64 = live
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let tmp = dir.path().join("frozen.new");
    std::fs::write(&tmp, &live).unwrap();
    std::fs::rename(&tmp, &frozen).unwrap();
    exporter.wait_value("nginx_http_requests_total", requests);
    exporter.wait_value(
        r#"nginx_access_requests_total{method="GET",status="404"}"#,
        3.0,
    );
    let dedicated = start_dedicated(
        "prometheus-nginx-exporter",
        &[
            "-nginx.scrape-uri",
            &frozen_url,
            "-web.listen-address",
            "127.0.0.1:{port}",
        ],
        dir.path(),
    );
    let theirs = get_text(dedicated.1, "/metrics");
    let ours = exporter.scrape();
    let parity = compare(
        &theirs,
        &ours,
        &["go_", "process_", "promhttp_", "nginxexporter_", "quarry_"],
    );
    assert_full_parity("nginx", &parity);
    assert_eq!(parity.reproduced.len(), 8, "{parity:?}");
    assert_eq!(
        parity.added,
        [
            "nginx_access_requests_total",
            "nginx_access_response_bytes_total"
        ]
    );
    // The extras count the access log: the 404s exactly, the POST too.
    assert_eq!(
        exporter.value(r#"nginx_access_requests_total{method="POST",status="200"}"#),
        Some(1.0)
    );
    // nginx cannot be read: both say nginx_up 0.
    std::fs::remove_file(&frozen).unwrap();
    exporter.wait_value("nginx_up", 0.0);
    assert_eq!(
        value_in(&get_text(dedicated.1, "/metrics"), "nginx_up"),
        Some(0.0)
    );
    // No `promtool check metrics` here: it lints the dedicated exporter's counter names
    // (no `_total`), which a drop-in keeps.
}

/// Each module's alerts pass their `promtool test rules` tests, and every drop-in module has
/// alerts.
#[test]
fn catalog_alerts_pass_their_promtool_tests() {
    let (_, list, _) = run(&["catalog"]);
    let alerts = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/alerts");
    for line in list.lines().filter(|l| l.contains("[drop-in for ")) {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            alerts.join(format!("{name}_test.yml")).exists(),
            "module {name} has no alert tests"
        );
    }
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required in CI"
        );
        return;
    }
    for entry in std::fs::read_dir(&alerts).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with("_test.yml") {
            let out = Command::new("promtool")
                .current_dir(&alerts)
                .args(["test", "rules", &name])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "promtool test rules {name}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The dashboard generator gives a used module's metrics their panels: the module's row.
#[test]
fn the_dashboard_generator_makes_a_panel_per_module_metric() {
    let dir = tempdir();
    let file = dir.path().join("exporter.yaml");
    for module in ["nginx", "apache", "php-fpm"] {
        std::fs::write(&file, format!("version: 1\nuse:\n  - module: {module}\n")).unwrap();
        let (ok, board, err) = run(&["--config.file", file.to_str().unwrap(), "dashboard"]);
        assert!(ok, "{err}");
        let (_, shown, _) = run(&["catalog", module]);
        let metrics: Vec<&str> = shown
            .split("\nmetrics:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert!(metrics.len() >= 5, "{shown}");
        for metric in metrics {
            assert!(
                board.contains(&format!("{metric}{{job=")),
                "no panel reads {metric}"
            );
        }
    }
}

/// Apache with mod_status at `/server-status` (ExtendedStatus as given) and files from `dir`
/// (the frozen page) at `/`.
pub(crate) fn start_apache(dir: &Path, extended: bool) -> (Server, u16) {
    let port = free_port();
    let d = dir.display();
    let modules = "/usr/lib/apache2/modules";
    let extended = if extended { "On" } else { "Off" };
    std::fs::write(
        dir.join("apache.conf"),
        format!(
            "ServerRoot {d}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/apache.pid
ErrorLog {d}/apache-error.log
DocumentRoot {d}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule status_module {modules}/mod_status.so
User www-data
Group www-data
ExtendedStatus {extended}
<Location \"/server-status\">
  SetHandler server-status
</Location>
"
        ),
    )
    .unwrap();
    let conf = dir.join("apache.conf");
    let server = start(
        "apache2",
        &["-f", conf.to_str().unwrap(), "-DFOREGROUND"],
        port,
        dir,
    );
    (server, port)
}

/// The apache module against prometheus-apache-exporter 0.12 on one real mod_status page,
/// with ExtendedStatus on (the default: 34 series) and off.
#[test]
fn apache_module_is_a_drop_in_for_prometheus_apache_exporter() {
    if !installed("apache2") || !dedicated_installed("prometheus-apache-exporter") {
        return;
    }
    for (extended, total) in [(true, 34), (false, 28)] {
        let dir = tempdir();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let (apache, port) = start_apache(dir.path(), extended);
        for i in 0..30 {
            http_get(port, &format!("/page{i}"), &[]);
        }
        let page = get_text(port, "/server-status?auto");
        assert!(page.contains("Scoreboard: "), "{page}");
        assert_eq!(page.contains("Total Accesses: "), extended, "{page}");
        let frozen = dir.path().join("frozen");
        std::fs::write(&frozen, &page).unwrap();
        std::fs::set_permissions(&frozen, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let frozen_url = format!("http://127.0.0.1:{port}/frozen");
        assert_eq!(get_text(port, "/frozen"), page);
        let dedicated = start_dedicated(
            "prometheus-apache-exporter",
            &[
                "--scrape_uri",
                &frozen_url,
                "--telemetry.address",
                "127.0.0.1:{port}",
            ],
            dir.path(),
        );
        let config = format!("version: 1\nuse:\n  - module: apache\n    with: {{url: '{frozen_url}', interval: 200ms}}\n");
        let exporter = Exporter::start(dir.path(), &config);
        exporter.wait_value("apache_up", 1.0);
        let theirs = get_text(dedicated.1, "/metrics");
        let ours = exporter.scrape();
        let parity = compare(
            &theirs,
            &ours,
            &[
                "go_",
                "process_",
                "promhttp_",
                "apache_exporter_",
                "quarry_",
            ],
        );
        eprintln!(
            "apache, ExtendedStatus {extended}: {}/{} series reproduced exactly",
            parity.reproduced.len(),
            parity.reproduced.len() + parity.missing.len()
        );
        assert_eq!(
            parity.reproduced.len() + parity.missing.len(),
            total,
            "{parity:?}"
        );
        // apache_version is a number the dedicated exporter computes from the version text
        // (2.4.71 → 2.04071); rules do no arithmetic (apache_info has the text).
        assert_eq!(parity.missing.len(), 1, "{parity:?}");
        assert!(
            parity.missing[0].starts_with("apache_version: family missing"),
            "{parity:?}"
        );
        assert!(parity.added.is_empty(), "{parity:?}");
        // Apache is gone: both say apache_up 0. (A page that is not a status page, such as a
        // 404, is up 1 to the dedicated exporter and a failure to the module.)
        drop(apache);
        exporter.wait_value("apache_up", 0.0);
        assert_eq!(
            value_in(&get_text(dedicated.1, "/metrics"), "apache_up"),
            Some(0.0)
        );
    }
}

/// The schema editors read accepts `use:` entries and refuses an unknown key in one.
#[test]
fn the_schema_accepts_use_entries() {
    let (ok, schema, _) = run(&["schema"]);
    assert!(ok);
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let good = serde_json::json!({"version": 1, "use": [
        {"module": "nginx", "with": {"url": "http://127.0.0.1/stub_status", "interval": "5s"}},
        {"module": "apache", "name": "front", "labels": {"server": "front"}, "with": {"url": "http://a/server-status?auto"}}
    ]});
    assert!(validator.is_valid(&good));
    let bad = serde_json::json!({"version": 1, "use": [{"module": "nginx", "params": {}}]});
    assert!(!validator.is_valid(&bad));
}

/// PHP-FPM (a static pool of two, status page `/status`, as www-data when root) behind an
/// nginx that passes `/status` to it and serves the file `frozen` of `dir` at `/frozen`.
/// Returns both and nginx's port.
pub(crate) fn start_php_fpm(dir: &Path) -> (Server, Server, u16) {
    let d = dir.display();
    let fpm_port = free_port();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    std::fs::write(
        dir.join("fpm.conf"),
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n[www]\n{}listen = 127.0.0.1:{fpm_port}\npm = static\npm.max_children = 2\npm.status_path = /status\n",
            if as_root { "user = www-data\ngroup = www-data\n" } else { "" }
        ),
    )
    .unwrap();
    let fpm_conf = dir.join("fpm.conf");
    let mut fpm_args = vec!["-y", fpm_conf.to_str().unwrap(), "-F"];
    if as_root {
        fpm_args.push("-R");
    }
    let fpm = start("php-fpm8.2", &fpm_args, fpm_port, dir);
    let port = free_port();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    location = /status {{
      fastcgi_param SCRIPT_NAME /status; fastcgi_param SCRIPT_FILENAME /status;
      fastcgi_param QUERY_STRING $query_string; fastcgi_param REQUEST_METHOD GET;
      fastcgi_pass 127.0.0.1:{fpm_port};
    }}
    location = /frozen {{ default_type application/json; alias {d}/frozen; }}
  }}
}}
"
        ),
    )
    .unwrap();
    let nginx_conf = dir.join("nginx.conf");
    let nginx = start(
        "nginx",
        &["-c", nginx_conf.to_str().unwrap(), "-p", &d.to_string()],
        port,
        dir,
    );
    (fpm, nginx, port)
}

/// The php-fpm module against PHP-FPM's own `?openmetrics` page. The module reads `?json`, a
/// second page: the two are taken one after the other, so the second counts the first among
/// its accepted connections (one more), and its `start since` may have ticked once; the
/// `phpfpm_up` help of PHP-FPM names the pool and its process manager, which a module's fixed
/// help cannot. Those three are accounted for, and every other sample must match exactly.
#[test]
fn php_fpm_module_matches_php_fpm_openmetrics() {
    if !installed("php-fpm8.2") || !installed("nginx") {
        return;
    }
    let dir = tempdir();
    let (_fpm, _nginx, port) = start_php_fpm(dir.path());
    for _ in 0..5 {
        get_text(port, "/status");
    }
    // The JSON page, then the OpenMetrics one, taken while nothing else moved: a JSON page
    // after it that differs only by the two requests' `accepted conn` (and `start since`)
    // proves it. On a busy machine a worker can still be marked active from the request
    // before (`active processes`, `max active processes` then differ): taken again.
    let steady = |a: &serde_json::Value, b: &serde_json::Value| {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        a.len() == b.len()
            && a.iter().all(|(k, v)| match k.as_str() {
                "start since" => true,
                "accepted conn" => b[k].as_f64() == v.as_f64().map(|n| n + 2.0),
                _ => b.get(k) == Some(v),
            })
    };
    let (json, openmetrics, page) = (0..20)
        .find_map(|_| {
            let json = get_text(port, "/status?json");
            let openmetrics = get_text(port, "/status?openmetrics");
            let page: serde_json::Value = serde_json::from_str(&json).unwrap();
            let after: serde_json::Value =
                serde_json::from_str(&get_text(port, "/status?json")).unwrap();
            steady(&page, &after).then_some((json, openmetrics, page))
        })
        .expect("php-fpm's pages held still across three requests in one of 20 tries");
    std::fs::write(dir.path().join("frozen"), &json).unwrap();
    let frozen_url = format!("http://127.0.0.1:{port}/frozen");
    let config = format!("version: 1\nuse:\n  - module: php-fpm\n    with: {{url: '{frozen_url}', interval: 200ms}}\n");
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("phpfpm_up", 1.0);
    let ours = exporter.scrape();
    // The three differences the two pages make, as explained above.
    let accepted = page["accepted conn"].as_f64().unwrap();
    let since = page["start since"].as_f64().unwrap();
    let theirs_since = value_in(&openmetrics, "phpfpm_start_since").unwrap();
    assert!((theirs_since - since).abs() <= 1.0, "{openmetrics}");
    assert_eq!(
        value_in(&openmetrics, "phpfpm_accepted_connections"),
        Some(accepted + 1.0),
        "{openmetrics}"
    );
    let ours_help = ours
        .lines()
        .find(|l| l.starts_with("# HELP phpfpm_up "))
        .unwrap();
    let theirs: String = openmetrics
        .lines()
        .map(|l| {
            if l.starts_with("# HELP phpfpm_up ") {
                ours_help.to_owned()
            } else if l.starts_with("phpfpm_accepted_connections ") {
                format!("phpfpm_accepted_connections {accepted}")
            } else if l.starts_with("phpfpm_start_since ") {
                format!("phpfpm_start_since {since}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parity = compare(&theirs, &ours, &["process_", "quarry_"]);
    assert_full_parity("php-fpm", &parity);
    assert_eq!(parity.reproduced.len(), 12, "{parity:?}");
}

/// A server down from the start: the module's `*_up` says 0 at once, as the dedicated
/// exporter's does, rather than being absent, also with a use's labels.
#[test]
fn up_is_0_when_the_server_is_down_from_the_start() {
    let dir = tempdir();
    let port = free_port();
    let config = format!(
        "version: 1\nuse:\n  - {{module: nginx, labels: {{site: a}}, with: {{url: 'http://127.0.0.1:{port}/stub_status', interval: 200ms}}}}\n  - {{module: apache, with: {{url: 'http://127.0.0.1:{port}/server-status?auto', interval: 200ms}}}}\n"
    );
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value(r#"nginx_up{site="a"}"#, 0.0);
    exporter.wait_value("apache_up", 0.0);
    // Series whose labels need a document are not made up.
    assert_eq!(
        exporter.value(r#"nginx_connections_active{site="a"}"#),
        None
    );
}

/// A module with a socket source whose `send:` names the socket's own `secrets:` (`${pw}`):
/// that reference is the socket's, not a module parameter, so it is left for the socket, which
/// reads the file (a parameter names it) when it sends; the value never enters the config.
#[test]
fn a_modules_socket_secret_is_read_from_its_file_when_sent() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempdir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut auth = String::new();
            if reader.read_line(&mut auth).is_err() {
                continue;
            }
            let _ = seen_tx.send(auth.clone());
            let _ = writer.write_all(b"+OK\r\n");
            let mut info = String::new();
            let _ = reader.read_line(&mut info);
            let _ = writer.write_all(b"keys:5\r\n");
        }
    });
    std::fs::write(dir.path().join("pw.txt"), "s3cret-value\n").unwrap();
    std::fs::write(
        dir.path().join("kv.yaml"),
        r#"version: 1
module:
  name: kv
  description: a key-value server with a password
  params:
    address: {description: host:port}
    password_file: {description: the password's file}
metrics:
  - {name: kv_keys, type: gauge, help: Keys.}
sources:
  - name: info
    socket:
      address: ${address}
      secrets: {pw: "${password_file}"}
      interval: 200ms
      steps:
        - {send: 'AUTH ${pw}\r\n', until: {terminator: "\r\n"}, expect: '^\+OK'}
        - {send: 'INFO\r\n', until: {terminator: "\r\n"}}
    rules:
      - regex: 'keys:(?P<n>\d+)'
        update: [{metric: kv_keys, set: $n}]
"#,
    )
    .unwrap();
    let config = format!(
        "version: 1\nuse:\n  - {{module: kv.yaml, with: {{address: '127.0.0.1:{port}', password_file: pw.txt}}}}\n"
    );
    std::fs::write(dir.path().join("exporter.yaml"), &config).unwrap();
    let (ok, _, err) = run(&[
        "--config.file",
        dir.path().join("exporter.yaml").to_str().unwrap(),
        "check",
    ]);
    assert!(ok, "{err}");
    let exporter = Exporter::start(dir.path(), &config);
    exporter.wait_value("kv_keys", 5.0);
    let auth = seen_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(auth, "AUTH s3cret-value\r\n");
    assert!(!exporter.scrape().contains("s3cret"));
}

/// A whole-value `${param}` with a numeric value is a number where the field takes one
/// (`max_series: ${cap}`) and text where the field takes text (`X-Key: '${token}'`): a numeric
/// token in a header was turned into an integer and refused.
#[test]
fn a_numeric_parameter_is_text_where_the_field_takes_text() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("m.yaml"),
        r#"version: 1
module:
  name: m
  description: a page behind a numeric API key
  params:
    token: {description: the key}
    cap: {description: most series}
metrics:
  - name: m_v
    type: gauge
    help: V.
    labels: [k]
    max_series: ${cap}
sources:
  - name: page
    http:
      url: "http://127.0.0.1:9/x"
      headers:
        X-Key: '${token}'
    rules:
      - regex: 'v=(?P<n>\d+)'
        update: [{metric: m_v, labels: {k: a}, set: $n}]
"#,
    )
    .unwrap();
    let config = dir.path().join("exporter.yaml");
    std::fs::write(
        &config,
        "version: 1\nuse:\n  - {module: m.yaml, with: {token: \"12345\", cap: \"10\"}}\n",
    )
    .unwrap();
    let (ok, out, err) = run(&["--config.file", config.to_str().unwrap(), "check"]);
    assert!(ok, "{err}");
    assert!(out.contains(": OK (1 metrics"), "{out}");
}
