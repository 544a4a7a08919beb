//! Test harness: the real binary on port 0, real files, scrapes over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a condition may take before a test fails. Generous: CI machines are shared.
pub const WAIT: Duration = Duration::from_secs(30);

/// How long [`Exporter::start_wrapped`] waits for `/-/ready` at most before it hands over.
const READY_WAIT: Duration = Duration::from_secs(5);

/// The binary under test: this build's, or another one named by `QUARRY_TEST_BINARY` (to run
/// the same tests against an older build, and see which fail there).
pub fn binary() -> String {
    std::env::var("QUARRY_TEST_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_quarry_exporter").to_owned())
}

/// `name{labels} value` for every labelled series of `name` in an exposition: the label
/// text (`a="1",b="x"`) → value.
pub fn series(text: &str, name: &str) -> std::collections::BTreeMap<String, f64> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Runs `quarry_exporter one-shot` on `config` (every source read once, the samples
/// printed) and returns what it did.
pub fn one_shot(config: &Path) -> std::process::Output {
    std::process::Command::new(binary())
        .arg("one-shot")
        .arg(format!("--config.file={}", config.display()))
        .output()
        .expect("the binary runs")
}

/// A running exporter; killed when dropped.
pub struct Exporter {
    child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// What the exporter logged so far, a line each (for a failing assertion's message).
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Writes `config` to `dir/exporter.yaml` and starts the exporter on it.
    pub fn start(dir: &Path, config: &str) -> Exporter {
        let config_file = dir.join("exporter.yaml");
        std::fs::write(&config_file, config).unwrap();
        Exporter::start_with(&config_file, &[])
    }

    /// Starts the exporter on an existing config with extra flags.
    pub fn start_with(config_file: &Path, extra: &[&str]) -> Exporter {
        Exporter::start_wrapped(config_file, &[], extra)
    }

    /// Starts the exporter through `wrapper` (e.g. `prlimit --nofile=1024:1024 --`, `setpriv
    /// --reuid=65534 ...`), on an existing config with extra flags.
    pub fn start_wrapped(config_file: &Path, wrapper: &[&str], extra: &[&str]) -> Exporter {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let mut child = command
            .arg(format!("--config.file={}", config_file.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=debug")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quarry_exporter");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("msg=\"Listening on\"") {
                    let address = line.split(" address=").nth(1).unwrap();
                    let port = address
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse::<u16>()
                        .unwrap();
                    let _ = tx.send(port);
                }
                log2.lock().unwrap().push(line);
            }
        });
        let port = match rx.recv_timeout(WAIT) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not start; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let exporter = Exporter { child, port, log };
        // "Listening" comes before the sources' first scans: a line appended now to a file
        // followed from its end (the default `start_at`) could be taken for what was there
        // before. Wait (bounded) for `/-/ready`, which says every source has scanned; a test
        // of an exporter that never gets ready goes on after the bound.
        // Only a plain "503 not ready" is waited on: TLS, basic auth or an odd answer end the
        // wait at once (the test talks to such an exporter its own way).
        let start = Instant::now();
        while start.elapsed() < READY_WAIT && plain_status(port, "/-/ready") == Some(503) {
            std::thread::sleep(Duration::from_millis(10));
        }
        exporter
    }

    /// GETs `path`; returns status, headers (lower-cased names) and body.
    pub fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http_get(self.port, path, headers)
    }

    /// The body of `/metrics`.
    pub fn scrape(&self) -> String {
        let (status, _, body) = self.get("/metrics", &[]);
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// The value of one series, e.g. `events_total{kind="a"}`, if present.
    pub fn value(&self, series: &str) -> Option<f64> {
        value_in(&self.scrape(), series)
    }

    /// Polls `/metrics` until `series` equals `expected`; panics with the last scrape if not.
    pub fn wait_value(&self, series: &str, expected: f64) {
        let start = Instant::now();
        loop {
            let text = self.scrape();
            if value_in(&text, series) == Some(expected) {
                return;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "{series} never became {expected}; last value {:?}\n--- scrape ---\n{text}\n--- log ---\n{}",
                    value_in(&text, series),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `series` is at least `at_least`.
    pub fn wait_at_least(&self, series: &str, at_least: f64) {
        let start = Instant::now();
        while self.value(series).unwrap_or(f64::NAN) < at_least {
            if start.elapsed() > WAIT {
                panic!(
                    "{series} never reached {at_least}: {:?}",
                    self.value(series)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < WAIT,
                "exporter did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGHUP (reload) to the exporter.
pub fn sighup(exporter: &Exporter) {
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap()
        .success());
}

/// The status of a plain HTTP/1.0 GET, or None when the answer is not plain HTTP (a TLS
/// listener) or does not come within a second; never panics.
fn plain_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = [0u8; 64];
    let n = stream.read(&mut raw).ok()?;
    let line = std::str::from_utf8(&raw[..n]).ok()?;
    let rest = line.strip_prefix("HTTP/1.")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A minimal HTTP/1.0 GET over a real socket.
pub fn http_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

/// A `POST` with an empty body; returns the status and the body.
pub fn post(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("POST {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        raw.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

/// Whether any process on the machine has `needle` in its command line.
pub fn process_running(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}

/// The value of `series` in an exposition.
pub fn value_in(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

/// A temp directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Appends `text` to `path`, creating it.
pub fn append(path: &Path, text: impl AsRef<[u8]>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_ref()).unwrap();
}

/// `n` lines `kind i` starting at `from`.
pub fn lines(kind: &str, from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("{kind} {i}\n")).collect()
}

pub fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Runs `promtool check metrics` on an exposition; panics with its output when it complains.
pub fn assert_promtool_accepts(exposition: &str) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped `exporter.yaml` and its `examples/`, copied to a temp directory: tests read the
/// copy, so a user who follows the README's demo (appending to the example log) breaks none.
pub struct Shipped {
    pub dir: tempfile::TempDir,
}

impl Shipped {
    pub fn copy() -> Shipped {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempdir();
        std::fs::copy(root.join("exporter.yaml"), dir.path().join("exporter.yaml")).unwrap();
        copy_dir(&root.join("examples"), &dir.path().join("examples"));
        Shipped { dir }
    }

    /// The copied config file.
    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("exporter.yaml")
    }

    /// Lines in the copied example access log (each is one request the shipped rule matches).
    pub fn access_lines(&self) -> f64 {
        let text =
            std::fs::read_to_string(self.dir.path().join("examples/logs/access.log")).unwrap();
        text.lines().count() as f64
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Reads an HTTP request's head (up to the empty line) from `stream`, or what came before the
/// peer closed: what the small test servers need to route a request.
pub fn read_request_head(stream: &mut impl std::io::Read) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    request
}

/// `name{key="n"} v` for every key of `name` in an exposition.
pub fn keyed(text: &str, name: &str) -> std::collections::BTreeMap<String, f64> {
    series(text, name)
        .into_iter()
        .filter_map(|(labels, v)| {
            let key = labels.strip_prefix("key=\"")?.strip_suffix('"')?;
            Some((key.to_owned(), v))
        })
        .collect()
}

/// Waits until `name` has `n` keys, then checks that each of `keys` is exactly 1.
pub fn exactly_once(exporter: &Exporter, name: &str, keys: &[String]) {
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        let got = keyed(&text, name);
        let done = keys.iter().all(|k| got.contains_key(k));
        if done || start.elapsed() > WAIT {
            // A little longer: a double count may come late.
            std::thread::sleep(Duration::from_millis(300));
            let got = keyed(&exporter.scrape(), name);
            let wrong: Vec<String> = keys
                .iter()
                .filter(|k| got.get(*k) != Some(&1.0))
                .map(|k| format!("{k}={:?}", got.get(k)))
                .collect();
            assert!(
                wrong.is_empty(),
                "{} of {} keys not counted exactly once: {}\n--- log ---\n{}",
                wrong.len(),
                keys.len(),
                wrong
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                exporter.log_text()
            );
            let extra = got.len() - keys.iter().filter(|k| got.contains_key(*k)).count();
            assert_eq!(extra, 0, "keys counted that were never written: {got:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}
