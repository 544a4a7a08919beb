//! The adversary's cases: checkpoints with offsets or identities that cannot be right, the
//! storage directory's leftovers, and config errors that must say where they are — each with
//! the real binary and real files, counts keyed per line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use quarry_exporter::checkpoint::{decode, encode, Snapshot};

use crate::common::*;

const CONFIG: &str = r#"version: 1
metrics:
  - {name: lines_total, type: counter, help: Lines by key., labels: [key], max_series: 100000}
sources:
  - name: app
    file: {paths: ["app*.log"], start_at: beginning, poll_interval: 100ms}
    rules:
      - regex: '^L(?P<key>\d+)$'
        update: [{metric: lines_total, labels: {key: $key}}]
"#;

fn write_lines(log: &Path, from: usize, to: usize) {
    let text: String = (from..to).map(|i| format!("L{i}\n")).collect();
    append(log, text);
}

fn keyed(text: &str) -> BTreeMap<String, f64> {
    series(text, "lines_total")
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches("key=\"")
                    .trim_end_matches('"')
                    .to_owned(),
                v,
            )
        })
        .collect()
}

fn start_stored(config: &Path, store: &Path) -> Exporter {
    Exporter::start_with(config, &[&format!("--storage.path={}", store.display())])
}

fn tamper(store: &Path, edit: impl FnOnce(&mut Snapshot)) {
    let path = store.join("quarry.checkpoint");
    let mut snapshot = decode(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut snapshot);
    std::fs::write(&path, encode(&snapshot)).unwrap();
}

/// A checkpoint whose checksum holds but whose file records cannot be right: an offset past
/// the end of a file unchanged since (it was read to 1000 bytes short of that), an offset
/// past the end of any file (a negative one written unsigned), the identity of another
/// followed file, the paths of two files swapped. Each line of both files is counted once:
/// an impossible offset refuses the checkpoint (counted, and the exporter starts afresh);
/// before, the file was taken for another one and read again from 0 on top of the counts
/// restored (every line 2).
#[test]
fn a_checkpoint_with_an_impossible_offset_or_identity_counts_nothing_twice() {
    type Edit = Box<dyn Fn(&mut Snapshot)>;
    // (name, edit, refused)
    let cases: Vec<(&str, Edit, bool)> = vec![
        (
            "offset past the end",
            Box::new(|s| {
                let r = s.sources[0]
                    .1
                    .files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.offset += 1000;
            }),
            true,
        ),
        (
            "offset u64::MAX",
            Box::new(|s| {
                let r = s.sources[0]
                    .1
                    .files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.offset = u64::MAX;
            }),
            true,
        ),
        (
            "identity of the other file",
            Box::new(|s| {
                let files = &mut s.sources[0].1.files;
                let other = files
                    .iter()
                    .find(|r| r.known.path.ends_with("app2.log"))
                    .unwrap()
                    .known
                    .id;
                let r = files
                    .iter_mut()
                    .find(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                r.known.id = other;
            }),
            false,
        ),
        (
            "paths swapped",
            Box::new(|s| {
                let files = &mut s.sources[0].1.files;
                let a = files
                    .iter()
                    .position(|r| r.known.path.ends_with("app.log"))
                    .unwrap();
                let b = files
                    .iter()
                    .position(|r| r.known.path.ends_with("app2.log"))
                    .unwrap();
                let pa = files[a].known.path.clone();
                files[a].known.path = files[b].known.path.clone();
                files[b].known.path = pa;
            }),
            false,
        ),
    ];
    let only = std::env::var("RT_CASE").ok();
    for (name, edit, refused) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("case: {name}");
        let dir = tempdir();
        let d = dir.path();
        let config = d.join("exporter.yaml");
        std::fs::write(&config, CONFIG).unwrap();
        let store = d.join("store");
        write_lines(&d.join("app.log"), 0, 100);
        write_lines(&d.join("app2.log"), 1000, 1050);
        let exporter = start_stored(&config, &store);
        exporter.wait_value(r#"lines_total{key="1049"}"#, 1.0);
        exporter.wait_value(r#"lines_total{key="99"}"#, 1.0);
        assert!(exporter.terminate().success());
        tamper(&store, edit);
        // app.log is left as it was (changed before the checkpoint was taken); app2.log grows.
        write_lines(&d.join("app2.log"), 1050, 1060);
        let exporter = start_stored(&config, &store);
        // Every line of both files once: 0..100 and 1000..1060.
        let start = Instant::now();
        loop {
            let got = keyed(&exporter.scrape());
            let done = (0..100)
                .chain(1000..1060)
                .all(|i| got.contains_key(&i.to_string()));
            if done || start.elapsed() > WAIT {
                let wrong: Vec<_> = (0..100)
                    .chain(1000..1060)
                    .map(|i| (i, got.get(&i.to_string()).copied()))
                    .filter(|(_, v)| *v != Some(1.0))
                    .take(10)
                    .collect();
                assert!(
                    wrong.is_empty() && got.len() == 160,
                    "{name}: not exactly once: {wrong:?} ({} keys)\n--- log ---\n{}",
                    got.len(),
                    exporter.log.lock().unwrap().join("\n")
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let refusals = exporter
            .value(r#"quarry_checkpoint_restore_errors_total{reason="refused"}"#)
            .unwrap();
        assert_eq!(refusals, if refused { 1.0 } else { 0.0 }, "{name}");
        if refused {
            let log = exporter.log.lock().unwrap().join("\n");
            assert!(
                log.contains("the checkpoint is refused") && log.contains("past"),
                "{name}: {log}"
            );
        }
    }
}
