//! Checkpoints on arbitrary bytes, three ways:
//! - as a file: an error for anything that is not a checkpoint this exporter wrote, never a
//!   panic or an unbounded allocation; what decodes re-encodes to the same bytes (version 1
//!   files as version 2, which reads back the same);
//! - as a payload with a valid checksum (what an edited file whose checksum was made again
//!   looks like): decoding and checking it never panic;
//! - as series put into a checkpoint of four families of a fixed config: what the checks
//!   accept, once restored, renders an exposition Prometheus accepts — counters finite and not
//!   negative, buckets cumulative with `_count` the `+Inf` bucket, one state set per series,
//!   each series once, UTF-8 throughout.
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use quarry_exporter::checkpoint::codec::frame;
use quarry_exporter::checkpoint::{decode, encode, verify, Snapshot};
use quarry_exporter::config::load_str;
use quarry_exporter::registry::{Families, FamilySnapshot};
use quarry_exporter::selfmetrics::SelfMetrics;
use quarry_exporter::series::TableCopy;

const CONFIG: &str = r#"version: 1
metrics:
  - {name: c_total, type: counter, help: c, labels: [a, b], max_label_value_length: 8}
  - {name: g, type: gauge, help: g, labels: [a]}
  - {name: h_seconds, type: histogram, help: h, labels: [a], buckets: [0.1, 1]}
  - {name: s, type: state, help: s, labels: [a], states: [ok, bad]}
sources:
  - name: x
    file: {paths: [x.log]}
    rules:
      - regex: '(?P<a>.)(?P<b>.)'
        update:
          - {metric: c_total, labels: {a: $a, b: $b}}
          - {metric: g, labels: {a: $a}, set: 1}
          - {metric: h_seconds, labels: {a: $a}, observe: 1}
          - {metric: s, labels: {a: $a}, state: ok}
"#;

/// Reads the fuzzer's bytes as series: per family a count, then per series a key and values.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn f64(&mut self) -> f64 {
        // Small integers, halves and the odd values most of the time; any bits sometimes.
        match self.u8() % 8 {
            0 => f64::from_bits(u64::from_le_bytes(self.bytes(8).try_into().unwrap_or([0; 8]))),
            1 => -(self.u8() as f64),
            2 => f64::NAN,
            3 => f64::INFINITY,
            4 => self.u8() as f64 / 2.0,
            _ => self.u8() as f64,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = decode(data) {
        // What decodes re-encodes to the same bytes (an older version as the current one).
        let again = encode(&snapshot);
        if data.get(8..12) == again.get(8..12) {
            assert_eq!(again, data);
        } else {
            assert_eq!(encode(&decode(&again).expect("re-encoded")), again);
        }
    }
    let config = load_str(CONFIG, "fuzz.yaml").expect("the fuzz config loads");
    let families = Families::build(&config.metrics, &SelfMetrics::new());
    let all: Vec<_> = families.iter().cloned().collect();
    if let Ok(snapshot) = decode(&frame(data)) {
        let _ = verify::values(&snapshot, &all);
    }
    let mut input = Bytes(data);
    let mut snapshot = Snapshot::default();
    for name in ["c_total", "g", "h_seconds", "s"] {
        let family = families.get(name).expect("declared");
        let mut saved = FamilySnapshot::of(family);
        let mut series = TableCopy::new(saved.series.width());
        for _ in 0..input.u8() % 5 {
            let len = (input.u8() % 12) as usize;
            let key = input.bytes(len);
            let values: Vec<f64> = (0..series.width()).map(|_| input.f64()).collect();
            series.push(&key, &values);
        }
        saved.series = series;
        snapshot.families.push(saved);
    }
    let bytes = encode(&snapshot);
    let back = decode(&bytes).expect("what is encoded decodes");
    assert_eq!(encode(&back), bytes);
    if !verify::values(&back, &all).is_empty() {
        return;
    }
    for saved in &back.families {
        families.get(&saved.name).expect("declared").restore(&saved.series);
    }
    let mut text = Vec::new();
    for (_, chunk) in families.render() {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).expect("an exposition is UTF-8");
    let mut seen = HashSet::new();
    let mut bucket_before: Option<(String, f64)> = None;
    let mut ones: std::collections::HashMap<String, u32> = Default::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        assert!(seen.insert(series.to_owned()), "{series} twice:\n{text}");
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect("a number"),
        };
        let name = series.split('{').next().unwrap_or(series);
        if name == "c_total" || name.ends_with("_bucket") || name.ends_with("_count") {
            assert!(v.is_finite() && v >= 0.0, "{line}");
        }
        if name == "h_seconds_bucket" {
            let labels = series.split(",le=").next().unwrap_or("").to_owned();
            if let Some((before, b)) = &bucket_before {
                if *before == labels {
                    assert!(v >= *b, "buckets go down: {line}\n{text}");
                }
            }
            bucket_before = Some((labels, v));
        }
        if name == "s" {
            assert!(v == 0.0 || v == 1.0, "{line}");
            let labels: String = series
                .split(['{', ',', '}'])
                .filter(|p| !p.starts_with("state=\"") && !p.is_empty())
                .collect::<Vec<_>>()
                .join(",");
            *ones.entry(labels).or_default() += v as u32;
        }
    }
    for (labels, n) in ones {
        assert_eq!(n, 1, "state set {labels} with {n} states at 1:\n{text}");
    }
});
