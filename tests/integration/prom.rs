//! A real Prometheus (Debian's package) for the tests: started on a loopback port to scrape
//! the exporter every second, queried through its HTTP API, killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::http_get;

/// Whether `promtool` and `prometheus` are installed; in CI they must be.
pub fn prometheus_available() -> bool {
    let ok = ["promtool", "prometheus"]
        .iter()
        .all(|p| Command::new(p).arg("--version").output().is_ok());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus and promtool are required in CI"
        );
        eprintln!("prometheus not installed; skipping");
    }
    ok
}

/// A running Prometheus server.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `127.0.0.1:<target>` every second (job `quarry`).
    pub fn start(dir: &Path, target: u16) -> Prometheus {
        Prometheus::start_with(
            dir,
            &format!(
                "  - job_name: quarry\n    static_configs: [{{targets: [\"127.0.0.1:{target}\"]}}]\n"
            ),
        )
    }

    /// Starts Prometheus in `dir` with these `scrape_configs` entries (YAML, indented as list
    /// items), scraping every second.
    pub fn start_with(dir: &Path, scrape_configs: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus { child, port, log }
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query now.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        self.query_at(promql, None)
    }

    /// An instant query evaluated at `time` (seconds since the epoch) when given.
    pub fn query_at(&self, promql: &str, time: Option<f64>) -> Result<Vec<Value>, String> {
        if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            return Err("Prometheus is not listening yet".into());
        }
        let mut path = format!("/api/v1/query?query={}", encode(promql));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        let (status, _, body) = http_get(self.port, &path, &[]);
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("HTTP {status}: {e}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The single value of an instant query's only series.
    pub fn scalar(&self, promql: &str, time: Option<f64>) -> f64 {
        let result = self.query_at(promql, time).unwrap();
        assert_eq!(result.len(), 1, "{promql}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// The raw samples `(timestamp, value)` of a range selector's only series.
    pub fn samples(&self, selector: &str) -> Vec<(f64, f64)> {
        let result = self.query(selector).unwrap();
        assert_eq!(result.len(), 1, "{selector}: {result:?}");
        result[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap(),
                    p[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// Polls until `promql` returns something (at most `limit`).
    pub fn wait_for(&self, promql: &str, limit: Duration) {
        let start = Instant::now();
        while !self.query(promql).map(|r| !r.is_empty()).unwrap_or(false) {
            assert!(
                start.elapsed() < limit,
                "{promql} stayed empty:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
