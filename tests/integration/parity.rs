//! Parity of catalog modules with the dedicated exporters they replace: both read one real
//! server's page at the same moment, and every sample of the dedicated exporter (its own
//! process, Go runtime and build-info series aside) must be in the module's exposition with
//! the same name, type, help, labels and value.
//!
//! A status page that counts its own reads (nginx's stub_status, Apache's mod_status) can
//! never show two readers the same numbers live, so the tests take one real page from the
//! server after the traffic and serve that page, byte for byte, to both (from the server
//! itself where it can, see each test).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::common::*;
use crate::real_servers::free_port;

/// One metric family of an exposition: type, help and samples (series → value).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub samples: BTreeMap<String, f64>,
}

/// An exposition's families by name; samples are keyed by their series with labels sorted.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_owned()).or_default().help = help.to_owned();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.entry(name.to_owned()).or_default().kind = kind.to_owned();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
            labels.sort();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
                .unwrap_or(name);
            let key = if labels.is_empty() {
                name.to_owned()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            families
                .entry(family.to_owned())
                .or_default()
                .samples
                .insert(key, value.parse().unwrap());
        }
    }
    families
}

/// What a module reproduces of a dedicated exporter's exposition.
#[derive(Debug, Default)]
pub struct Parity {
    /// Samples reproduced exactly (name, labels, value; the family's type and help too).
    pub reproduced: Vec<String>,
    /// Samples not reproduced, each with why.
    pub missing: Vec<String>,
    /// Families the module adds.
    pub added: Vec<String>,
}

/// Compares `theirs` with `ours`, leaving out families whose name starts with one of
/// `ignored` (the dedicated exporter's own process, runtime and build series; our `quarry_*`).
pub fn compare(theirs: &str, ours: &str, ignored: &[&str]) -> Parity {
    let kept = |name: &str| !ignored.iter().any(|p| name.starts_with(p));
    let theirs = parse(theirs);
    let ours = parse(ours);
    let mut parity = Parity::default();
    for (name, family) in theirs.iter().filter(|(n, _)| kept(n)) {
        let mine = ours.get(name);
        for (series, value) in &family.samples {
            let problem = match mine {
                None => Some("family missing".to_owned()),
                Some(m) if m.kind != family.kind => {
                    Some(format!("type {} not {}", m.kind, family.kind))
                }
                Some(m) if m.help != family.help => {
                    Some(format!("help {:?} not {:?}", m.help, family.help))
                }
                Some(m) => match m.samples.get(series) {
                    None => Some("series missing".to_owned()),
                    Some(v) if v != value => Some(format!("value {v} not {value}")),
                    Some(_) => None,
                },
            };
            match problem {
                None => parity.reproduced.push(series.clone()),
                Some(why) => parity.missing.push(format!("{series}: {why}")),
            }
        }
    }
    parity.added = ours
        .keys()
        .filter(|n| kept(n) && !theirs.contains_key(*n))
        .cloned()
        .collect();
    parity
}

/// A dedicated exporter's process, killed when dropped.
pub struct Dedicated(Child, pub u16);

impl Drop for Dedicated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `/usr/bin/<program>` with `args` (`{port}` replaced by a free port) and waits until
/// it listens.
pub fn start_dedicated(program: &str, args: &[&str], dir: &Path) -> Dedicated {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("{program}.out"))).unwrap();
    let child = Command::new(Path::new("/usr/bin").join(program))
        .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let started = Dedicated(child, port);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "{program} did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    started
}

/// Whether the dedicated exporter is installed (required in CI, as the servers are).
pub fn dedicated_installed(program: &str) -> bool {
    let found = Path::new("/usr/bin").join(program).exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI (scripts/test installs it)"
        );
        eprintln!("{program} not installed; skipping");
    }
    found
}

/// The body of `path` on `port`, as text.
pub fn get_text(port: u16, path: &str) -> String {
    let (status, _, body) = http_get(port, path, &[]);
    assert_eq!(status, 200, "GET {path} on {port}");
    String::from_utf8(body).unwrap()
}

/// Asserts that every sample is reproduced; prints the table row the catalog's README gives.
pub fn assert_full_parity(module: &str, parity: &Parity) {
    eprintln!(
        "{module}: {}/{} series reproduced exactly; added: {}",
        parity.reproduced.len(),
        parity.reproduced.len() + parity.missing.len(),
        parity.added.join(", ")
    );
    assert!(
        parity.missing.is_empty(),
        "{module}: not reproduced:\n{}",
        parity.missing.join("\n")
    );
}
