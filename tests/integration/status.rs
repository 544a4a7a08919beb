//! The status board over real HTTP: `/status`, `/status.json`, badges; a JSON health page
//! whose items change, go, and whose source fails; TLS and basic auth; the history across a
//! restart with `--storage.path`. (The page in a real browser: `browser.rs`.)

use std::path::Path;
use std::time::Instant;

use crate::common::*;
use crate::upstream::{Reply, Upstream};

/// The exporter's config for a JSON health page at `url`: items `{name, site, status}`.
pub fn health_config(url: &str, extra: &str) -> String {
    format!(
        r#"version: 1
metrics:
  - {{name: component_state, type: state, help: Health of each component., labels: [site, name], states: [ok, degraded, down]}}
  - {{name: items, type: gauge, help: Items in the health document.}}
sources:
  - name: health
    http: {{url: "{url}", interval: 200ms, timeout: 2s}}
    rules:
      - name: items
        json: {{for_each: "$.items[*]", fields: {{name: "@.name", site: "@.site", status: "@.status"}}}}
        update:
          - {{metric: component_state, labels: {{site: $site, name: $name}}, state: $status}}
      - name: count
        json: {{fields: {{n: "$.count"}}}}
        update: [{{metric: items, set: $n}}]
status:
  title: Test board
  group_by: site
  refresh: 1s
{extra}"#
    )
}

/// A health document.
pub fn health_doc(items: &[(&str, &str, &str)]) -> String {
    let list: Vec<String> = items
        .iter()
        .map(|(site, name, status)| {
            format!(r#"{{"site":"{site}","name":"{name}","status":"{status}"}}"#)
        })
        .collect();
    format!(
        r#"{{"count":{},"items":[{}]}}"#,
        items.len(),
        list.join(",")
    )
}

fn json(exporter: &Exporter) -> serde_json::Value {
    let (status, headers, body) = exporter.get("/status.json", &[]);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/json"));
    serde_json::from_slice(&body).unwrap()
}

/// Every component of a board: (id, state, tone).
pub fn components(board: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for g in board["groups"].as_array().unwrap() {
        for m in g["metrics"].as_array().unwrap() {
            for c in m["components"].as_array().unwrap() {
                out.push((
                    c["id"].as_str().unwrap().to_owned(),
                    c["state"].as_str().unwrap().to_owned(),
                    c["tone"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

fn wait_board(
    exporter: &Exporter,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let board = json(exporter);
        if ok(&board) {
            return board;
        }
        assert!(
            start.elapsed() < WAIT,
            "the board never showed {what}:\n{board:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn state_of(board: &serde_json::Value, id: &str) -> Option<String> {
    components(board)
        .into_iter()
        .find(|c| c.0 == id)
        .map(|c| c.1)
}

const API: &str = r#"component_state{name="api",site="us"}"#;
const DB: &str = r#"component_state{name="db",site="eu"}"#;
const CACHE: &str = r#"component_state{name="cache",site="eu"}"#;

#[test]
fn status_board_follows_a_json_health_page() {
    let upstream = Upstream::start();
    let doc = |items: &[(&str, &str, &str)]| Reply::Ok("application/json", health_doc(items));
    upstream.route(
        "/health",
        doc(&[
            ("eu", "db", "ok"),
            ("eu", "cache", "degraded"),
            ("us", "api", "down"),
        ]),
    );
    let dir = tempdir();
    let exporter = Exporter::start(
        dir.path(),
        &health_config(
            &upstream.url("http", "/health"),
            "  links:\n    - {title: Runbook, url: \"https://runbooks.example/$name?state=$state\"}\n  headlines:\n    - {metric: items, title: Items}\n",
        ),
    );
    // `since` comes from the history, sampled every second: a board read in the first second
    // after the components appear may not have it yet (CI saw `null` once), so wait for both.
    let board = wait_board(
        &exporter,
        "three components, the first with its since",
        |b| {
            components(b).len() == 3
                && b["groups"][0]["metrics"][0]["components"][0]["since"].is_u64()
        },
    );
    assert_eq!(board["version"], 1);
    assert_eq!(board["title"], "Test board");
    assert_eq!(board["overall"]["state"], "down");
    assert_eq!(board["overall"]["tone"], "critical");
    // Worst first: the us site (down) before eu (degraded); in eu, cache before db.
    let order: Vec<String> = components(&board).into_iter().map(|c| c.0).collect();
    assert_eq!(order, [API, CACHE, DB]);
    let summary: Vec<(String, u64)> = board["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("down".into(), 1), ("degraded".into(), 1), ("ok".into(), 1)]
    );
    let api = &board["groups"][0]["metrics"][0]["components"][0];
    assert_eq!(api["links"][0]["url"], "/#source-health");
    assert_eq!(
        api["links"][1]["url"],
        "https://runbooks.example/api?state=down"
    );
    assert_eq!(
        api["badge"],
        "/status/badge.svg?metric=component_state&site=us&name=api"
    );
    assert!(api["since"].as_u64().is_some(), "{api}");

    // The page: every tile as a list item with its state in text; a strict policy; nothing
    // from another origin.
    let (status, headers, body) = exporter.get("/status", &[]);
    assert_eq!(status, 200);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(header("cache-control"), "no-store");
    let page = String::from_utf8(body).unwrap();
    eprintln!("/status with 3 components: {} bytes", page.len());
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"1\"></noscript>"));
    assert!(page.contains("<span class=\"st\">down</span>"), "{page}");
    assert_no_external_requests(&page);
    // Compressed when the client accepts it.
    let (_, headers, zipped) = exporter.get("/status", &[("Accept-Encoding", "gzip")]);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip"));
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    eprintln!("gzipped: {} bytes", zipped.len());
    assert!(unzipped.contains("<main id=\"board\">"), "{unzipped}");
    // The landing page links to the board, and each tile's source link lands on its section.
    let (_, _, landing) = exporter.get("/", &[]);
    let landing = String::from_utf8(landing).unwrap();
    assert!(
        landing.contains("<a href=\"status\">Status board</a>"),
        "{landing}"
    );
    assert!(landing.contains("<h3 id=\"source-health\">"), "{landing}");

    // Badges: per component, group and overall, the worst state's name as text.
    let badge = |q: &str| {
        let (s, headers, body) = exporter.get(&format!("/status/badge.svg{q}"), &[]);
        assert!(headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("image/svg+xml")));
        (s, String::from_utf8(body).unwrap())
    };
    let (s, svg) = badge("");
    assert_eq!(s, 200);
    assert!(svg.contains("<title>Test board: down</title>"), "{svg}");
    assert!(badge("?site=eu").1.contains("<title>eu: degraded</title>"));
    assert!(badge("?metric=component_state&name=db")
        .1
        .contains("<title>db: ok</title>"));
    assert_eq!(badge("?site=mars").0, 404);

    // Items change state; one goes from the document and leaves the board. (History keeps
    // whole seconds: a second passes first, so the first states have a length.)
    let first = api["since"].as_u64().unwrap();
    while unix_now() < first + 2 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    upstream.route("/health", doc(&[("eu", "db", "down"), ("us", "api", "ok")]));
    let board = wait_board(&exporter, "db down, api ok, cache gone", |b| {
        state_of(b, DB).as_deref() == Some("down")
            && state_of(b, API).as_deref() == Some("ok")
            && state_of(b, CACHE).is_none()
    });
    let api = components(&board).into_iter().find(|c| c.0 == API).unwrap();
    assert_eq!(api.2, "ok");
    // The history has both states of api (once a second of `ok` has passed).
    wait_board(&exporter, "api's timeline: down, then ok", |b| {
        timeline_states(b, API) == ["down", "ok"]
    });

    // The source fails: its components turn unknown, and the reason is on the board.
    upstream.route("/health", Reply::Status(503));
    let board = wait_board(&exporter, "unknown components", |b| {
        components(b)
            .iter()
            .all(|c| c.1 == "unknown" && c.2 == "unknown")
    });
    let source = &board["groups"][0]["metrics"][0]["sources"][0];
    assert_eq!(source["up"], false);
    assert!(
        source["error"]
            .as_str()
            .unwrap()
            .starts_with("http_status: "),
        "{source}"
    );
    let (_, _, page) = exporter.get("/status", &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("<div class=\"err\">source health: http_status: "),
        "{page}"
    );

    // HEAD and methods, as the other endpoints.
    let (s, _) = post(exporter.port, "/status");
    assert_eq!(s, 405);
}

/// The states along a component's timeline.
fn timeline_states(board: &serde_json::Value, id: &str) -> Vec<String> {
    board["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["metrics"].as_array().unwrap().iter())
        .flat_map(|m| m["components"].as_array().unwrap().iter())
        .find(|c| c["id"] == id)
        .map(|c| {
            c["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["state"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The page requests nothing from another origin: no `src`, no stylesheet or script link,
/// and every `href` on this origin except the configured links' anchors.
pub fn assert_no_external_requests(page: &str) {
    for needle in [
        "src=",
        "<link rel=\"stylesheet",
        "@import",
        "url(",
        "href=\"//",
    ] {
        assert!(!page.contains(needle), "{needle} in the page");
    }
    // Text may name a URL (an error's message); a tag may only as a link's target.
    for tag in page.split('<').skip(1).filter_map(|t| t.split('>').next()) {
        if tag.contains("://") {
            assert!(
                tag.starts_with("a href=\"http") || tag.starts_with("svg xmlns="),
                "an external URL outside a link: <{tag}>"
            );
        }
    }
}

/// Behind the web config's TLS and basic auth, as every endpoint; the configured
/// Content-Security-Policy does not replace the page's own (its `frame-ancestors` joins it).
#[test]
fn status_board_behind_tls_and_basic_auth() {
    let dir = tempdir();
    let upstream = Upstream::start();
    upstream.route(
        "/health",
        Reply::Ok("application/json", health_doc(&[("eu", "db", "ok")])),
    );
    std::fs::write(
        dir.path().join("exporter.yaml"),
        health_config(&upstream.url("http", "/health"), ""),
    )
    .unwrap();
    let (ca, key, cert) = pki();
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    // `prometheus` / `change-me`, as in examples/web-config.yml.
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config: {cert_file: tls.crt, key_file: tls.key}\n\
         http_server_config:\n  headers:\n    Content-Security-Policy: \"default-src 'self'; frame-ancestors 'self'\"\n\
         basic_auth_users:\n  prometheus: $2y$10$8FsV9X3l4EWOyiZvF7752OJ/XWkBtkcOCs7VecR4r8AAjwiG9f.Im\n",
    )
    .unwrap();
    let exporter = Exporter::start_with(
        &dir.path().join("exporter.yaml"),
        &[&format!(
            "--web.config.file={}",
            dir.path().join("web.yml").display()
        )],
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for path in ["/status", "/status.json", "/status/badge.svg"] {
            let url = format!("https://127.0.0.1:{}{path}", exporter.port);
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path}");
            let r = client
                .get(&url)
                .basic_auth("prometheus", Some("change-me"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            if path == "/status" {
                let policies: Vec<_> = r
                    .headers()
                    .get_all("content-security-policy")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect();
                assert_eq!(policies.len(), 1, "{policies:?}");
                assert!(
                    policies[0].starts_with("default-src 'none'; script-src 'sha256-")
                        && policies[0].ends_with("; frame-ancestors 'self'"),
                    "{policies:?}"
                );
            }
        }
    });
}

/// A CA's certificate, and a key and certificate for 127.0.0.1 signed by it (PEM).
fn pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), key.serialize_pem(), cert.pem())
}

/// With `--storage.path`, the history goes on after a restart: the time in a state counts
/// from before it, and the file is written atomically beside the checkpoint.
#[test]
fn status_history_survives_a_restart() {
    let dir = tempdir();
    let store = dir.path().join("store");
    let upstream = Upstream::start();
    upstream.route(
        "/health",
        Reply::Ok("application/json", health_doc(&[("eu", "db", "degraded")])),
    );
    let config = dir.path().join("exporter.yaml");
    std::fs::write(&config, health_config(&upstream.url("http", "/health"), "")).unwrap();
    let flags = [format!("--storage.path={}", store.display())];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let exporter = Exporter::start_with(&config, &flags);
    // `since` comes from the history, sampled every second: wait for it too.
    let has_since = |b: &serde_json::Value| {
        state_of(b, DB).is_some() && b["groups"][0]["metrics"][0]["components"][0]["since"].is_u64()
    };
    let board = wait_board(&exporter, "db with its since", has_since);
    let since = |b: &serde_json::Value| -> u64 {
        b["groups"][0]["metrics"][0]["components"][0]["since"]
            .as_u64()
            .unwrap()
    };
    let first = since(&board);
    assert!(exporter.terminate().success());
    let saved = store.join("status-history.json");
    assert!(Path::new(&saved).is_file());
    // Down for two seconds at least: a new `since` would differ, and the gap shows.
    let stopped = unix_now();
    let restart = Instant::now();
    while unix_now() < stopped + 2 {
        assert!(restart.elapsed() < WAIT);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let exporter = Exporter::start_with(&config, &flags);
    let board = wait_board(&exporter, "db again with its since", has_since);
    assert_eq!(since(&board), first, "{board:#}");
    // The gap while the exporter was down is in the timeline, not counted as degraded.
    let timeline = &board["groups"][0]["metrics"][0]["components"][0]["timeline"];
    let gaps = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"].is_null())
        .count();
    assert!(gaps >= 1, "{timeline}");
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A reload replaces what the board shows (here its title and metrics), and the history of a
/// metric kept by the reload goes on.
#[test]
fn status_board_follows_a_reload() {
    let upstream = Upstream::start();
    upstream.route(
        "/health",
        Reply::Ok("application/json", health_doc(&[("eu", "db", "down")])),
    );
    let dir = tempdir();
    let config = health_config(&upstream.url("http", "/health"), "");
    let exporter = Exporter::start(dir.path(), &config);
    // `since` comes from the history, sampled every second: wait for it too.
    let board = wait_board(&exporter, "db with its since", |b| {
        state_of(b, DB).is_some() && b["groups"][0]["metrics"][0]["components"][0]["since"].is_u64()
    });
    let since = board["groups"][0]["metrics"][0]["components"][0]["since"].clone();
    std::fs::write(
        dir.path().join("exporter.yaml"),
        config.replace("title: Test board", "title: Renamed"),
    )
    .unwrap();
    sighup(&exporter);
    let board = wait_board(&exporter, "the new title", |b| b["title"] == "Renamed");
    assert_eq!(
        board["groups"][0]["metrics"][0]["components"][0]["since"],
        since
    );
    // A metric taken off the board leaves it.
    std::fs::write(
        dir.path().join("exporter.yaml"),
        config.replace("  group_by: site\n", "  group_by: site\n  metrics: []\n"),
    )
    .unwrap();
    sighup(&exporter);
    wait_board(&exporter, "no components", |b| components(b).is_empty());
    let (_, _, svg) = exporter.get("/status/badge.svg", &[]);
    assert!(String::from_utf8(svg).unwrap().contains(">none</text>"));
}
