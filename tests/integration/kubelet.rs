//! Every pod's log on a node, as a DaemonSet reads it: a tree laid out and rotated the way the
//! kubelet and the container runtime do (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/
//! <restart>.log` in CRI format; `0.log` renamed to `0.log.<time>` and the runtime's log
//! reopened; older rotations gzipped; containers restarted as `1.log`; pods deleted with their
//! directory; new pods), the exporter running through it all and killed with `kill -9` once.
//! Every record carries a unique id counted in its own series, so a loss and a double count
//! cannot cancel out; the per-(namespace, pod, container, stream) counts are compared with
//! what the test wrote, series for series. The same node is run with Docker's json-file lines
//! too (`format: docker`: dockershim's `0.log` was a link to the container's `-json.log`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The DaemonSet's rules (deploy/kubernetes/daemonset/exporter.yaml) on a tree under ROOT,
/// with what the test needs beside them: `records_kept_total` (no expiry: the exact counts
/// per container and stream), `line_total` (one series per record id) and a short
/// `expire_after` on the pod series.
const CONFIG: &str = r#"version: 1
metrics:
  - {name: pod_log_records_total, type: counter, help: Records (expiring)., labels: [namespace, pod, container, stream], expire_after: 2s}
  - {name: records_kept_total, type: counter, help: Records., labels: [namespace, pod, container, stream]}
  - {name: line_total, type: counter, help: Records by id., labels: [id], max_series: 1000000}
  - {name: web_errors_total, type: counter, help: Errors of the web containers., labels: [namespace, pod]}
sources:
  - name: pods
    file:
      paths: ["ROOT/*/*/*.log"]
      format: FORMAT
      start_at: beginning
      rotate_wait: 1s
      poll_interval: 200ms
    rules:
      - name: records
        regex: '^L(?P<id>\d+) '
        derive: &pod
          - {from: $__file__, regex: '/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<container>[^/]+)/'}
        update:
          - {metric: pod_log_records_total, labels: {namespace: $namespace, pod: $pod, container: $container, stream: $__stream__}}
          - {metric: records_kept_total, labels: {namespace: $namespace, pod: $pod, container: $container, stream: $__stream__}}
          - {metric: line_total, labels: {id: $id}}
      - name: web_errors
        regex: ' error$'
        derive: *pod
        when: {container: '^web$'}
        update:
          - {metric: web_errors_total, labels: {namespace: $namespace, pod: $pod}}
"#;

/// (namespace, pod, container, stream)
type Group = (String, String, String, String);

/// How the container runtime writes a line.
#[derive(Clone, Copy, PartialEq)]
enum Runtime {
    /// CRI: `<time> <stream> <P|F> <text>`.
    Cri,
    /// Docker's json-file: `{"log":"<text>[\n]","stream":…,"time":…}`, the newline only on
    /// a record's last part; the text has a quote, a backslash and a tab to escape.
    Docker,
}

impl Runtime {
    fn format(self) -> &'static str {
        match self {
            Runtime::Cri => "cri",
            Runtime::Docker => "docker",
        }
    }

    /// One line of `stream`: a record's part, its last one when `last`.
    fn line(self, time: String, stream: &str, last: bool, text: &str) -> String {
        match self {
            Runtime::Cri => {
                let tag = if last { "F" } else { "P" };
                format!("{time} {stream} {tag} {text}\n")
            }
            Runtime::Docker => {
                let log = if last {
                    format!("{text}\n")
                } else {
                    text.to_owned()
                };
                format!(
                    "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n",
                    serde_json::to_string(&log).unwrap()
                )
            }
        }
    }
}

/// A small xorshift generator: the same schedule on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test wrote: every record id, the records per group, the web containers' errors.
#[derive(Default)]
struct Written {
    next_id: u64,
    ids: Vec<u64>,
    groups: BTreeMap<Group, u64>,
    /// Each id's container log (`<pod dir>/<container>/<restart>.log`, as named when written)
    /// and stream, for a failure to say where a record was.
    written_to: BTreeMap<u64, String>,
    web_errors: BTreeMap<(String, String), u64>,
    /// The runtime's clock, in nanoseconds (only its text matters).
    clock: u64,
}

impl Written {
    fn time(&mut self) -> String {
        self.clock += 1_000_003;
        let s = self.clock / 1_000_000_000;
        format!(
            "2026-12-05T17:{:02}:{:02}.{:09}Z",
            14 + s / 60 % 40,
            s % 60,
            self.clock % 1_000_000_000
        )
    }
}

/// One container as its runtime writes it: `<restart>.log` held open in append mode, a CRI
/// line per write, a long line split into `P` parts and a final `F` one per stream.
struct Container {
    namespace: String,
    pod: String,
    name: String,
    dir: PathBuf,
    restart: u32,
    file: File,
    /// Per stream (0 stdout, 1 stderr): a record begun with `P` parts, its id and the text
    /// still to come.
    partial: [Option<(u64, String)>; 2],
    /// Rotations so far (the `<time>` of `0.log.<time>`).
    rotations: u32,
    runtime: Runtime,
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

impl Container {
    fn new(pod_dir: &Path, namespace: &str, pod: &str, name: &str, runtime: Runtime) -> Container {
        let dir = pod_dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Container {
            namespace: namespace.into(),
            pod: pod.into(),
            name: name.into(),
            file: open_log(&dir.join("0.log")),
            dir,
            restart: 0,
            partial: [None, None],
            rotations: 0,
            runtime,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.restart))
    }

    /// Writes `n` lines, stdout and stderr interleaved: a record in one line, or begun in
    /// parts (CRI's `P`; Docker's without a newline), finished later, other lines between.
    fn write(&mut self, n: usize, rng: &mut Rng, w: &mut Written) {
        let mut buf = String::new();
        for _ in 0..n {
            let s = rng.below(2) as usize;
            let stream = STREAMS[s];
            if let Some((id, rest)) = self.partial[s].take() {
                if rng.below(3) == 0 {
                    // Another part, still not the last.
                    let (part, rest) = rest.split_at(rest.len() / 2);
                    buf.push_str(&self.runtime.line(w.time(), stream, false, part));
                    self.partial[s] = Some((id, rest.to_owned()));
                } else {
                    buf.push_str(&self.runtime.line(w.time(), stream, true, &rest));
                    self.counted(id, s, w);
                }
                continue;
            }
            let id = w.next_id;
            w.next_id += 1;
            let pad = "x".repeat(rng.below(60) as usize);
            let error = if id.is_multiple_of(5) { " error" } else { "" };
            let escaped = if self.runtime == Runtime::Docker {
                "\"q\" \\ \t "
            } else {
                ""
            };
            let text = format!("L{id} {} {escaped}{pad}{error}", self.name);
            if rng.below(5) == 0 {
                let cut = 1 + rng.below(text.len() as u64 - 2) as usize;
                let (head, rest) = text.split_at(cut);
                buf.push_str(&self.runtime.line(w.time(), stream, false, head));
                self.partial[s] = Some((id, rest.to_owned()));
            } else {
                buf.push_str(&self.runtime.line(w.time(), stream, true, &text));
                self.counted(id, s, w);
            }
        }
        self.file.write_all(buf.as_bytes()).unwrap();
    }

    /// A record complete: counted in its group (and, on a `web` container, every fifth one, which
    /// ends in " error", in the web errors).
    fn counted(&self, id: u64, s: usize, w: &mut Written) {
        w.ids.push(id);
        w.written_to
            .insert(id, format!("{} {}", self.log().display(), STREAMS[s]));
        *w.groups
            .entry((
                self.namespace.clone(),
                self.pod.clone(),
                self.name.clone(),
                STREAMS[s].into(),
            ))
            .or_default() += 1;
        if self.name == "web" && id.is_multiple_of(5) {
            *w.web_errors
                .entry((self.namespace.clone(), self.pod.clone()))
                .or_default() += 1;
        }
    }

    /// Ends the records begun in parts (as a runtime does before a rotation or a stop).
    fn finish(&mut self, w: &mut Written) {
        let mut buf = String::new();
        for (s, stream) in STREAMS.iter().enumerate() {
            if let Some((id, rest)) = self.partial[s].take() {
                buf.push_str(&self.runtime.line(w.time(), stream, true, &rest));
                self.counted(id, s, w);
            }
        }
        self.file.write_all(buf.as_bytes()).unwrap();
    }

    /// The kubelet's rotation: the uncompressed rotated files gzipped (`.tmp`, renamed to
    /// `.gz`, the original removed), the oldest beyond what it keeps removed, the live log
    /// renamed to `<restart>.log.<time>`, lines the runtime writes before it reopens (to the
    /// renamed file), then the runtime's reopen: a new `<restart>.log`.
    fn rotate(&mut self, rng: &mut Rng, w: &mut Written) {
        self.finish(w);
        let live = self.log();
        let prefix = format!("{}.log.", self.restart);
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&prefix)
            })
            .collect();
        rotated.sort();
        for old in rotated.iter().filter(|p| p.extension().unwrap() != "gz") {
            gzip(old);
        }
        // Keep the three newest compressed ones.
        let gz: Vec<PathBuf> = rotated
            .iter()
            .map(|p| {
                if p.extension().unwrap() == "gz" {
                    p.clone()
                } else {
                    PathBuf::from(format!("{}.gz", p.display()))
                }
            })
            .collect();
        for old in gz.iter().take(gz.len().saturating_sub(3)) {
            std::fs::remove_file(old).unwrap();
        }
        self.rotations += 1;
        let m = 14 + self.rotations;
        let renamed = PathBuf::from(format!(
            "{}.20261205-{:02}{:02}00",
            live.display(),
            17 + m / 60,
            m % 60
        ));
        std::fs::rename(&live, &renamed).unwrap();
        // Between the rename and the reopen the runtime still writes to the renamed file.
        self.write(3, rng, w);
        self.finish(w);
        self.file = open_log(&live);
    }

    /// The container restarted: its next log is `<restart + 1>.log`; the previous one stays
    /// (the kubelet keeps it for `kubectl logs --previous`).
    fn restart(&mut self, w: &mut Written) {
        self.finish(w);
        self.restart += 1;
        self.file = open_log(&self.log());
    }

    /// The files of the restarts before the current one removed (the kubelet's container
    /// garbage collection).
    fn remove_previous(&mut self) {
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.starts_with(&format!("{}.log", self.restart)) {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// `gzip` as the kubelet's compressLog does it: into `<file>.tmp`, renamed to `<file>.gz`,
/// then the uncompressed file removed.
fn gzip(file: &Path) {
    let tmp = PathBuf::from(format!("{}.tmp", file.display()));
    let out = File::create(&tmp).unwrap();
    let status = Command::new("gzip")
        .arg("-c")
        .arg(file)
        .stdout(Stdio::from(out))
        .status()
        .expect("gzip runs");
    assert!(status.success());
    std::fs::rename(&tmp, format!("{}.gz", file.display())).unwrap();
    std::fs::remove_file(file).unwrap();
}

/// A pod: its directory and containers.
struct Pod {
    dir: PathBuf,
    containers: Vec<Container>,
}

fn pod(
    root: &Path,
    (namespace, name, uid): (&str, &str, &str),
    containers: &[&str],
    runtime: Runtime,
) -> Pod {
    let dir = root.join(format!("{namespace}_{name}_{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    Pod {
        containers: containers
            .iter()
            .map(|c| Container::new(&dir, namespace, name, c, runtime))
            .collect(),
        dir,
    }
}

fn group_labels((namespace, pod, container, stream): &Group) -> String {
    format!(r#"container="{container}",namespace="{namespace}",pod="{pod}",stream="{stream}""#)
}

/// Waits until every id written is counted, then checks: each id exactly once, no other id,
/// `records_kept_total` equal to what was written for every group (and no other series), and
/// `web_errors_total` likewise.
fn check_exact(exporter: &Exporter, w: &Written) {
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        if series(&text, "line_total").len() >= w.ids.len() || start.elapsed() > WAIT * 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Settle a little: a double count may come late.
    std::thread::sleep(Duration::from_millis(500));
    let text = exporter.scrape();
    let lines = series(&text, "line_total");
    let mut problems = Vec::new();
    let written: BTreeSet<u64> = w.ids.iter().copied().collect();
    assert_eq!(written.len(), w.ids.len(), "ids are unique");
    for id in &w.ids {
        match lines.get(&format!(r#"id="{id}""#)) {
            Some(v) if *v == 1.0 => {}
            v => problems.push(format!("L{id}: {v:?}")),
        }
    }
    for labels in lines.keys() {
        let id: u64 = labels
            .trim_start_matches("id=\"")
            .trim_end_matches('"')
            .parse()
            .unwrap();
        if !written.contains(&id) {
            problems.push(format!("L{id} counted but not written whole"));
        }
    }
    let kept = series(&text, "records_kept_total");
    let expected: BTreeMap<String, f64> = w
        .groups
        .iter()
        .map(|(g, n)| (group_labels(g), *n as f64))
        .collect();
    if kept != expected {
        for (labels, n) in &expected {
            if kept.get(labels) != Some(n) {
                problems.push(format!(
                    "records_kept_total{{{labels}}}: {:?}, expected {n}",
                    kept.get(labels)
                ));
            }
        }
        for labels in kept.keys().filter(|l| !expected.contains_key(*l)) {
            problems.push(format!("records_kept_total{{{labels}}} not expected"));
        }
    }
    let errors = series(&text, "web_errors_total");
    let expected_errors: BTreeMap<String, f64> = w
        .web_errors
        .iter()
        .map(|((ns, pod), n)| (format!(r#"namespace="{ns}",pod="{pod}""#), *n as f64))
        .collect();
    if errors != expected_errors {
        problems.push(format!(
            "web_errors_total {errors:?}, expected {expected_errors:?}"
        ));
    }
    for reason in ["not_cri", "not_docker_json", "record_too_long"] {
        let series =
            format!(r#"quarry_source_record_errors_total{{reason="{reason}",source="pods"}}"#);
        if let Some(v) = value_in(&text, &series) {
            if v != 0.0 {
                problems.push(format!("{series} {v}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems ({} ids written): {}\n--- log ---\n{}",
        problems.len(),
        w.ids.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        exporter.log_text()
    );
}

/// Waits until every id written is counted; on a timeout, says which are not, where they
/// were written, and in which files under `root` they are now.
fn wait_counted(exporter: &Exporter, w: &Written, root: &Path) {
    let ids = &w.ids;
    let start = Instant::now();
    loop {
        let counted = series(&exporter.scrape(), "line_total");
        if counted.len() >= ids.len() {
            return;
        }
        if start.elapsed() > WAIT * 2 {
            let missing: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !counted.contains_key(&format!(r#"id="{id}""#)))
                .collect();
            let wheres: Vec<String> = missing
                .iter()
                .take(5)
                .map(|id| {
                    format!(
                        "L{id} written to {}, now in {:?}",
                        w.written_to[id],
                        files_holding(root, &format!("L{id} "))
                    )
                })
                .collect();
            panic!(
                "{} of {} records never counted: {:?}…\n{}\n--- log ---\n{}",
                missing.len(),
                ids.len(),
                &missing[..missing.len().min(20)],
                wheres.join("\n"),
                exporter.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files under `dir` whose text holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_holding(&path, needle));
        } else {
            let text = if path.extension().is_some_and(|e| e == "gz") {
                Command::new("gzip")
                    .arg("-dc")
                    .arg(&path)
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default()
            } else {
                std::fs::read(&path).unwrap_or_default()
            };
            if String::from_utf8_lossy(&text).contains(needle) {
                out.push(path);
            }
        }
    }
    out
}

/// The files under `dir` the exporter holds open.
fn held_under(pid: u32, dir: &Path) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let dir = dir.to_str().unwrap().to_owned();
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with(&dir))
        .collect()
}

fn start_stored(config: &Path, store: &Path) -> Exporter {
    Exporter::start_with(
        config,
        &[
            &format!("--storage.path={}", store.display()),
            "--storage.interval=1s",
        ],
    )
}

fn kill9(exporter: Exporter) {
    Command::new("kill")
        .args(["-9", &exporter.pid().to_string()])
        .status()
        .unwrap();
    drop(exporter);
}

fn write_all(pods: &mut BTreeMap<String, Pod>, n: usize, rng: &mut Rng, w: &mut Written) {
    for p in pods.values_mut() {
        for c in &mut p.containers {
            c.write(n, rng, w);
        }
    }
}

/// The kubelet's life of a node with the exporter reading it (checkpoints on): writes,
/// rotations (rename, reopen, gzip of the older ones), restarts (`1.log`, the old log kept,
/// then removed), pods deleted and created, a `kill -9` mid-run (a rotation, a restart and a
/// new pod while it is down). Every record counted exactly once, series for series; a deleted
/// pod's series expire and its files are not held open; the gzipped files are never read.
#[test]
fn kubelet_rotation_restarts_and_pod_churn_count_every_record_once() {
    node_life(Runtime::Cri);
}

/// The same node written in Docker's json-file lines (a record's parts without their
/// newline, stdout's and stderr's interleaved, escapes in the text), read with `format:
/// docker`: every record exactly once across the rotations, restarts, churn and `kill -9`.
#[test]
fn docker_json_file_lines_through_rotation_restarts_and_churn_count_every_record_once() {
    node_life(Runtime::Docker);
}

/// The same node read by polling alone (`watch: false`), as the DaemonSet example suggests on
/// a busy node: the polls list again only the directories whose times moved, and every
/// directory at every tenth poll; new pods, rotations, restarts and deleted pods are found all
/// the same, every record exactly once.
#[test]
fn a_node_read_by_polling_alone_counts_every_record_once() {
    node_life_with(Runtime::Cri, "      watch: false\n");
}

/// The same node with notifications of names only (`watch: names`), the DaemonSet example's
/// choice: no event per write, contents read at each poll, and a poll lists only the
/// directories a notification named (every directory at every sixtieth); new pods, rotations,
/// restarts and deleted pods are found all the same, every record exactly once.
#[test]
fn a_node_read_with_notifications_of_names_counts_every_record_once() {
    node_life_with(Runtime::Cri, "      watch: names\n");
}

fn node_life(runtime: Runtime) {
    node_life_with(runtime, "");
}

/// [`node_life`] with `file_options` (YAML lines of the file source's keys) added.
fn node_life_with(runtime: Runtime, file_options: &str) {
    let dir = tempdir();
    let d = dir.path();
    let root = d.join("var/log/pods");
    std::fs::create_dir_all(&root).unwrap();
    let config = d.join("exporter.yaml");
    let text = CONFIG
        .replace("ROOT", root.to_str().unwrap())
        .replace("FORMAT", runtime.format())
        .replace(
            "      poll_interval: 200ms\n",
            &format!("      poll_interval: 200ms\n{file_options}"),
        );
    assert!(text.contains(&format!("200ms\n{file_options}")));
    let polling = file_options.contains("watch: false") || file_options.contains("watch: names");
    std::fs::write(&config, text).unwrap();
    let store = d.join("state");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut w = Written::default();
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let uid = |i: u32| format!("0f3c{i:04}-7e1a-4c1e-9a55-2d5e0c6b{i:04}");
    pods.insert(
        "shop/web-1".into(),
        pod(
            &root,
            ("shop", "web-1", &uid(1)),
            &["web", "envoy"],
            runtime,
        ),
    );
    pods.insert(
        "shop/web-2".into(),
        pod(
            &root,
            ("shop", "web-2", &uid(2)),
            &["web", "envoy"],
            runtime,
        ),
    );
    pods.insert(
        "kube-system/coredns-5d78c9869d-8xk2p".into(),
        pod(
            &root,
            ("kube-system", "coredns-5d78c9869d-8xk2p", &uid(3)),
            &["coredns"],
            runtime,
        ),
    );
    let mut exporter = start_stored(&config, &store);
    let mut deleted: Vec<(String, String, PathBuf)> = Vec::new();
    let mut next_uid = 10;
    for round in 0..14u32 {
        for _ in 0..4 {
            write_all(&mut pods, 15, &mut rng, &mut w);
            std::thread::sleep(Duration::from_millis(30));
        }
        if polling && round % 7 <= 3 {
            // Polling alone finds a file only if it lives through a poll (as any poller): the
            // files this round removes (rotated ones gzipped, a restarted container's old
            // logs, a deleted pod's) may have been created since the last poll, where the
            // kubelet keeps them for minutes at least. Every record written so far counted:
            // every file that holds one was found (and is held open: what is written to it
            // before it goes is read through its descriptor), however busy the machine.
            wait_counted(&exporter, &w, &root);
        }
        match round % 7 {
            0 | 3 => {
                // Rotations: every container of one pod, and one container of another.
                let keys: Vec<String> = pods.keys().cloned().collect();
                let k = &keys[round as usize % keys.len()];
                for c in &mut pods.get_mut(k).unwrap().containers {
                    c.rotate(&mut rng, &mut w);
                }
                let k = &keys[(round as usize + 1) % keys.len()];
                pods.get_mut(k).unwrap().containers[0].rotate(&mut rng, &mut w);
            }
            1 => {
                // The containers restarted before have their old logs removed; then a
                // container restarts.
                for p in pods.values_mut() {
                    for c in p.containers.iter_mut().filter(|c| c.restart > 0) {
                        c.remove_previous();
                    }
                }
                let keys: Vec<String> = pods.keys().cloned().collect();
                let k = &keys[round as usize % keys.len()];
                let c = &mut pods.get_mut(k).unwrap().containers[0];
                c.write(5, &mut rng, &mut w);
                c.restart(&mut w);
                c.write(5, &mut rng, &mut w);
            }
            2 => {
                // A new pod, and then a pod deleted with its whole directory.
                let name = format!("api-{round}");
                pods.insert(
                    format!("shop/{name}"),
                    pod(
                        &root,
                        ("shop", &name, &uid(next_uid)),
                        &["web", "migrate"],
                        runtime,
                    ),
                );
                next_uid += 1;
                let victim = pods
                    .keys()
                    .find(|k| k.starts_with("shop/") && **k != format!("shop/{name}"))
                    .cloned()
                    .unwrap();
                let mut p = pods.remove(&victim).unwrap();
                for c in &mut p.containers {
                    c.write(4, &mut rng, &mut w);
                    c.finish(&mut w);
                }
                drop(p.containers);
                std::fs::remove_dir_all(&p.dir).unwrap();
                let (ns, name) = victim.split_once('/').unwrap();
                deleted.push((ns.into(), name.into(), p.dir));
            }
            4 => {
                // kill -9 mid-run (records begun in parts held, lines not read yet), then
                // while it is down: more lines, a rotation of a container never rotated, a
                // restart, a new pod. The deleted pods' files are read first: what a deleted
                // file held that was not read before the kill is gone with its descriptor.
                wait_counted(&exporter, &w, &root);
                write_all(&mut pods, 10, &mut rng, &mut w);
                kill9(exporter);
                write_all(&mut pods, 10, &mut rng, &mut w);
                let never = pods
                    .values_mut()
                    .flat_map(|p| p.containers.iter_mut())
                    .find(|c| c.rotations == 0 && c.restart == 0);
                if let Some(c) = never {
                    c.rotate(&mut rng, &mut w);
                }
                let c = pods
                    .values_mut()
                    .flat_map(|p| p.containers.iter_mut())
                    .last()
                    .unwrap();
                c.restart(&mut w);
                let name = format!("worker-{round}");
                pods.insert(
                    format!("batch/{name}"),
                    pod(
                        &root,
                        ("batch", &name, &uid(next_uid)),
                        &["worker"],
                        runtime,
                    ),
                );
                next_uid += 1;
                write_all(&mut pods, 10, &mut rng, &mut w);
                exporter = start_stored(&config, &store);
            }
            _ => {}
        }
    }
    for p in pods.values_mut() {
        for c in &mut p.containers {
            c.finish(&mut w);
        }
    }
    check_exact(&exporter, &w);
    // A deleted pod's series expire (the live ones may too, idle for 2 s: only the deleted
    // ones must), and none of its files is held open.
    let start = Instant::now();
    loop {
        let text = exporter.scrape();
        let pod_series = series(&text, "pod_log_records_total");
        let left: Vec<&String> = pod_series
            .keys()
            .filter(|l| {
                deleted
                    .iter()
                    .any(|(ns, pod, _)| l.contains(&format!(r#"namespace="{ns}",pod="{pod}""#)))
            })
            .collect();
        let held: Vec<String> = deleted
            .iter()
            .flat_map(|(_, _, dir)| held_under(exporter.pid(), dir))
            .collect();
        if left.is_empty() && held.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "deleted pods' series never expired or files still held: {left:?} {held:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!deleted.is_empty());
    // The kept counts are unchanged by the expiry, and the live pods' series come back with
    // their next record.
    check_exact(&exporter, &w);
    let live = pods.values_mut().next().unwrap();
    let labels = {
        let c = &mut live.containers[0];
        let before = w.groups.clone();
        c.write(1, &mut rng, &mut w);
        c.finish(&mut w);
        w.groups
            .iter()
            .find(|(g, n)| before.get(*g) != Some(*n))
            .map(|(g, _)| group_labels(g))
            .unwrap()
    };
    exporter.wait_at_least(&format!("pod_log_records_total{{{labels}}}"), 1.0);
    check_exact(&exporter, &w);
}

/// The DaemonSet's own config (deploy/kubernetes/daemonset/exporter.yaml) passes `check`, and
/// `one-shot` of it on a node's tree gives the pod labels from the path: records per stream,
/// errors per container, and nginx requests from the containers named nginx only (an `app`
/// container's line in the same format is not one); rotated and gzipped files are not read.
#[test]
fn the_daemonset_config_labels_records_by_pod_and_counts_nginx_containers_only() {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/daemonset/exporter.yaml");
    let dir = tempdir();
    let d = dir.path();
    let root = d.join("var/log/pods");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains("\"/var/log/pods/*/*/*.log\""));
    let config = d.join("exporter.yaml");
    std::fs::write(
        &config,
        text.replace("\"/var/log/pods/", &format!("\"{}/", root.display())),
    )
    .unwrap();
    let check = Command::new(binary())
        .arg("check")
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let pod_dir = root.join("shop_web-7d9f_5b0c4f1e-1f7a-4b8e-9c1d-3e2f6a7b8c9d");
    let nginx = pod_dir.join("nginx");
    let app = pod_dir.join("app");
    std::fs::create_dir_all(&nginx).unwrap();
    std::fs::create_dir_all(&app).unwrap();
    let request = |status: u16| {
        format!(
            r#"10.1.2.3 - - [05/Dec/2026:17:15:00 +0000] "GET /cart HTTP/1.1" {status} 612 "-" "curl/8.5.0""#
        )
    };
    let mut live = String::new();
    for (i, status) in [200, 200, 304, 404, 502].iter().enumerate() {
        live.push_str(&format!(
            "2026-12-05T17:15:0{i}.000000001Z stdout F {}\n",
            request(*status)
        ));
    }
    // A request line split by the runtime into two parts, and an error on stderr between them.
    let long = request(503);
    live.push_str(&format!(
        "2026-12-05T17:15:06.1Z stdout P {}\n2026-12-05T17:15:06.2Z stderr F [error] 7#7: upstream timed out\n2026-12-05T17:15:06.3Z stdout F {}\n",
        &long[..20],
        &long[20..]
    ));
    append(&nginx.join("0.log"), &live);
    // The rotated file and an older gzipped one: not matched, not read.
    append(
        &nginx.join("0.log.20261205-171400"),
        format!("2026-12-05T17:14:00Z stdout F {}\n", request(500)),
    );
    std::fs::write(nginx.join("0.log.20261205-171300.gz"), b"\x1f\x8b\x08\x00").unwrap();
    append(
        &app.join("1.log"),
        format!(
            "2026-12-05T17:15:00Z stdout F {}\n2026-12-05T17:15:01Z stderr F ERROR payment failed\n2026-12-05T17:15:02Z stdout F ok\n",
            request(500)
        ),
    );
    let out = Command::new(binary())
        .arg("one-shot")
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let pod = r#"namespace="shop",pod="web-7d9f""#;
    let expect = [
        (
            format!(r#"pod_log_records_total{{container="nginx",{pod},stream="stdout"}}"#),
            6.0,
        ),
        (
            format!(r#"pod_log_records_total{{container="nginx",{pod},stream="stderr"}}"#),
            1.0,
        ),
        (
            format!(r#"pod_log_records_total{{container="app",{pod},stream="stdout"}}"#),
            2.0,
        ),
        (
            format!(r#"pod_log_records_total{{container="app",{pod},stream="stderr"}}"#),
            1.0,
        ),
        (
            format!(r#"pod_log_errors_total{{container="nginx",{pod}}}"#),
            1.0,
        ),
        (
            format!(r#"pod_log_errors_total{{container="app",{pod}}}"#),
            1.0,
        ),
        (
            format!(r#"nginx_http_requests_total{{{pod},status="2xx"}}"#),
            2.0,
        ),
        (
            format!(r#"nginx_http_requests_total{{{pod},status="3xx"}}"#),
            1.0,
        ),
        (
            format!(r#"nginx_http_requests_total{{{pod},status="4xx"}}"#),
            1.0,
        ),
        (
            format!(r#"nginx_http_requests_total{{{pod},status="5xx"}}"#),
            2.0,
        ),
    ];
    for (series, value) in &expect {
        assert_eq!(value_in(&text, series), Some(*value), "{series}\n{text}");
    }
    let families = [
        "pod_log_records_total{",
        "pod_log_errors_total{",
        "nginx_http_requests_total{",
    ];
    let all = text
        .lines()
        .filter(|l| families.iter().any(|f| l.starts_with(f)))
        .count();
    assert_eq!(all, expect.len(), "{text}");
}
