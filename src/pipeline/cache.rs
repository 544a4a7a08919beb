//! A rule's memo of where its updates' series sit, by the label values that decide them: a
//! match whose label fields hold the same texts as an earlier match's reaches the same series,
//! so its updates skip building their keys and looking them up in their families' tables.
//!
//! What decides an update's series is its label templates (fixed when the rule is built), the
//! family's `max_label_value_length` (fixed too) and the texts of the fields the templates read
//! (captures, unquoted or not, derived fields, `$__file__`, the source's name, a container
//! line's stream or time). The memo is keyed on exactly those texts, each followed by
//! [`KEY_SEPARATOR`] (never in UTF-8, so two different lists of texts never share a key).
//!
//! What it remembers per update is a [`SeriesAt`], which the family honours only while none
//! of its series was removed since (expiry, an item gone from its document), and how many
//! label values building the key cut (counted again on each use, as building it would). A
//! series the family refused (its `max_series` reached) is not remembered: the next match asks
//! the cap again. Bounded: at most [`ENTRIES`] keys of [`KEY_BYTES`] in all, forgotten all at
//! once when full; and a rule whose label values rarely repeat (a request id in a label)
//! stops asking for a while, so that it pays little for a memo that does not help.
//!
//! Only records' matches use it; a document's updates go by their keys (they also keep the
//! keys they set, to retire the absent ones).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{FieldRef, Fields};
use crate::registry::{SeriesAt, KEY_SEPARATOR};

/// Keys remembered per rule at most; the next new one empties the memo.
const ENTRIES: usize = 512;

/// Bytes of keys remembered per rule at most (label fields read raw, before their values are
/// cut to the family's length): the next key that would pass it empties the memo.
const KEY_BYTES: usize = 64 * 1024;

/// A key longer than this (very long label texts) is not remembered: it goes by the update's
/// own key, as without a memo.
const LONGEST_KEY: usize = 1024;

/// Lookups per window over which the share of misses is judged (fewer in unit tests, so that
/// a test of some thousands of records goes through several pauses).
const WINDOW: u32 = if cfg!(test) { 512 } else { 4096 };

/// Matches that go without the memo after a window in which most lookups missed.
const PAUSE: u32 = if cfg!(test) { 700 } else { 65_536 };

/// One update's memo of one key: where its series was and how many label values its key cut.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Remembered {
    pub(super) at: Option<SeriesAt>,
    pub(super) cut: u32,
}

/// The memo of one rule (see the module's documentation).
pub(super) struct SeriesCache {
    /// The fields the updates' labels read, each once, in a fixed order.
    fields: Vec<FieldRef>,
    /// Updates of the rule: [`Remembered`] per key.
    updates: usize,
    /// Seeded per memo, as the families' tables are.
    hasher: foldhash::fast::RandomState,
    /// Entry numbers by the hash of their key.
    index: HashTable<u32>,
    /// The entries' keys back to back, and each entry's span in it.
    keys: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// `updates` per entry.
    remembered: Vec<Remembered>,
    /// The key of the match at hand.
    key: Vec<u8>,
    lookups: u32,
    misses: u32,
    /// Matches left to go without the memo.
    paused: u32,
    /// Lookups that found their key, over the memo's life (tests).
    #[cfg(test)]
    hits: u64,
    /// Times the memo paused (tests).
    #[cfg(test)]
    pauses: u64,
}

impl SeriesCache {
    /// The memo of a rule whose updates read these label fields (repeats allowed); `None`
    /// for a rule without updates.
    pub(super) fn new(
        label_fields: impl IntoIterator<Item = FieldRef>,
        updates: usize,
    ) -> Option<Self> {
        if updates == 0 {
            return None;
        }
        let mut fields: Vec<FieldRef> = Vec::new();
        for f in label_fields {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        Some(SeriesCache {
            fields,
            updates,
            hasher: foldhash::fast::RandomState::default(),
            index: HashTable::new(),
            keys: Vec::new(),
            spans: Vec::new(),
            remembered: Vec::new(),
            key: Vec::new(),
            lookups: 0,
            misses: 0,
            paused: 0,
            #[cfg(test)]
            hits: 0,
            #[cfg(test)]
            pauses: 0,
        })
    }

    /// The entry for this match's label texts, made empty when new; `None` while the memo
    /// pauses (the updates then go by their keys).
    #[inline(always)]
    pub(super) fn entry(&mut self, fields: &Fields) -> Option<usize> {
        if self.paused > 0 {
            self.paused -= 1;
            return None;
        }
        self.key.clear();
        for f in &self.fields {
            // An absent field is empty text in a key, as `Update::build_key` reads it.
            self.key
                .extend_from_slice(fields.get(*f).unwrap_or("").as_bytes());
            self.key.push(KEY_SEPARATOR);
        }
        if self.key.len() > LONGEST_KEY {
            return None;
        }
        let hash = self.hasher.hash_one(self.key.as_slice());
        let (keys, spans) = (&self.keys, &self.spans);
        let found = self
            .index
            .find(hash, |&e| {
                span(keys, spans[e as usize]) == self.key.as_slice()
            })
            .copied();
        self.lookups += 1;
        let entry = match found {
            Some(e) => {
                #[cfg(test)]
                {
                    self.hits += 1;
                }
                e as usize
            }
            None => {
                self.misses += 1;
                self.insert(hash)
            }
        };
        if self.lookups >= WINDOW {
            if self.misses * 2 > self.lookups {
                // Mostly new texts: the memo costs more than it saves. Forget and pause.
                self.clear();
                self.paused = PAUSE;
                #[cfg(test)]
                {
                    self.pauses += 1;
                }
                self.lookups = 0;
                self.misses = 0;
                return None;
            }
            self.lookups = 0;
            self.misses = 0;
        }
        Some(entry)
    }

    /// What update `update` remembers of entry `entry`.
    pub(super) fn remembered(&mut self, entry: usize, update: usize) -> &mut Remembered {
        &mut self.remembered[entry * self.updates + update]
    }

    /// Adds the key at hand as a new, empty entry (emptying a full memo first).
    fn insert(&mut self, hash: u64) -> usize {
        if self.spans.len() >= ENTRIES || self.keys.len() + self.key.len() > KEY_BYTES {
            self.clear();
        }
        let entry = self.spans.len();
        self.spans.push((self.keys.len(), self.key.len()));
        self.keys.extend_from_slice(&self.key);
        self.remembered
            .extend(std::iter::repeat_n(Remembered::default(), self.updates));
        let (keys, spans, hasher) = (&self.keys, &self.spans, &self.hasher);
        self.index.insert_unique(hash, entry as u32, |&e| {
            hasher.hash_one(span(keys, spans[e as usize]))
        });
        entry
    }

    fn clear(&mut self) {
        self.index.clear();
        self.keys.clear();
        self.spans.clear();
        self.remembered.clear();
    }

    /// Keys remembered now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }
}

fn span(keys: &[u8], (start, len): (usize, usize)) -> &[u8] {
    &keys[start..start + len]
}

#[cfg(test)]
mod tests {
    //! The memo against the pipeline without it: the same records through two pipelines of
    //! the same config, each with its own families and self-metrics, one with the memo and one
    //! without; after every record, every sample of both (and the counts of cut label values,
    //! dropped series and failed updates) must be the same. Series are removed between records
    //! (as an expiry or a document's absent item removes them), families fill up to their
    //! `max_series`, label values are cut to one series from different texts, labels are
    //! built from constants, `$__file__`, `$__source__`, derived and unquoted fields, and the
    //! label texts go from few (the memo hits) to all new (it forgets and pauses) and back.

    use super::super::{Pipeline, RecordContext};
    use crate::config::load_str;
    use crate::registry::Families;
    use crate::selfmetrics::SelfMetrics;
    use crate::test_rng::Rng;

    const CONFIG: &str = r#"version: 1
metrics:
  - {name: req_total, type: counter, help: Requests., labels: [method, status], max_series: 9, max_label_value_length: 4}
  - {name: bytes_total, type: counter, help: Bytes., labels: [method, status], max_label_value_length: 4}
  - {name: dur_seconds, type: histogram, help: Durations., labels: [method], buckets: [0.01, 0.1, 1]}
  - {name: last_line, type: gauge, help: Last line per file and kind., labels: [file, kind, src]}
  - {name: top_total, type: counter, help: By top path segment and agent., labels: [top, agent], max_series: 12, max_label_value_length: 6}
  - {name: state, type: gauge, help: Mapped state., labels: [method]}
  - {name: ids_total, type: counter, help: By request id., labels: [id], max_series: 100000, expire_after: 1h}
sources:
  - name: web
    file: {paths: [access.log]}
    rules:
      - name: access
        regex: '^(?P<method>[A-Z]*) (?P<path>\S+) (?P<status>\d{3}) (?P<bytes>\S+) (?P<secs>\S+) (?P<n>\d+) (?P<ua>"(?:[^"\\]|\\.)*"|-) (?P<st>\w+) id=(?P<id>\S*)$'
        unquote: [ua]
        derive:
          - {from: $path, regex: '^/(?P<top>[a-z]*)'}
        update:
          - {metric: req_total, labels: {method: $method, status: $status}}
          - {metric: bytes_total, labels: {method: $method, status: $status}, add: $bytes}
          - {metric: dur_seconds, labels: {method: $method}, observe: $secs, none: skip}
          - {metric: last_line, labels: {file: $__file__, kind: 'k-${method}-x', src: $__source__}, set: $n}
          - {metric: top_total, labels: {top: $top, agent: $ua}}
          - {metric: state, labels: {method: $method}, set: $st, map: {ok: "1", bad: "0"}}
          - {metric: ids_total, labels: {id: $id}}
      - name: constant
        regex: ' 5\d\d '
        update:
          - {metric: req_total, labels: {method: FIVE, status: xx}}
"#;

    fn pipeline(config: &crate::config::Config, cached: bool) -> (Pipeline, Families, SelfMetrics) {
        let self_metrics = SelfMetrics::new();
        let families = Families::build(&config.metrics, &self_metrics);
        let mut p = Pipeline::build(&config.sources[0], &families, &self_metrics).unwrap();
        if !cached {
            for r in &mut p.rules {
                r.cache = None;
            }
        } else {
            assert!(p.rules.iter().all(|r| r.cache.is_some()));
        }
        (p, families, self_metrics)
    }

    /// Everything both must agree on: every family's exposition and the self-metrics.
    fn state(families: &Families, self_metrics: &SelfMetrics) -> String {
        let mut chunks = families.render();
        chunks.sort_by(|a, b| a.0.cmp(&b.0));
        let mut text: String = chunks
            .into_iter()
            .map(|(_, t)| String::from_utf8(t).unwrap())
            .collect();
        let mut self_chunks = Vec::new();
        self_metrics.render(&mut self_chunks);
        let self_text: String = self_chunks
            .into_iter()
            .map(|(_, t)| String::from_utf8(t).unwrap())
            .collect();
        // The two pipelines' own counters; a family's series count is in the families' text.
        let mut lines: Vec<&str> = self_text.lines().collect();
        lines.sort_unstable();
        for line in lines {
            if line.starts_with("quarry_series_dropped_total")
                || line.starts_with("quarry_label_values_truncated_total")
                || line.starts_with("quarry_rule_errors_total")
                || line.starts_with("quarry_rule_matches_total")
            {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn the_memo_changes_nothing_whatever_the_records_and_removals() {
        let config = load_str(CONFIG, "exporter.yaml").unwrap();
        let (mut a, fa, sa) = pipeline(&config, true);
        let (mut b, fb, sb) = pipeline(&config, false);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        // Methods cut to 4 bytes: DELETE and DELEGATE are one series, as GET and GET.
        let methods = [
            "GET", "POST", "DELETE", "DELEGATE", "PUT", "", "GETX", "OPTIONS",
        ];
        let statuses = ["200", "201", "404", "500", "503"];
        let bytes = ["0", "512", "1024", "x", "-5", "7.5", "1e3"];
        let secs = ["0.042", "-", "0.5", "2", "nan", "0.001"];
        let paths = ["/api/x", "/", "/static/a.js", "/abcdefghij", "/Z", "/api"];
        let agents = [
            r#""curl/8""#,
            r#""say \"hi\"""#,
            "-",
            r#""Mozilla/5.0 long""#,
            r#""""#,
        ];
        let files = ["/var/log/a.log", "/var/log/b.log", "/var/log/ü.log"];
        let removable = [
            "req_total",
            "bytes_total",
            "dur_seconds",
            "last_line",
            "top_total",
            "state",
            "ids_total",
        ];
        let mut removed = 0usize;
        // Phases: few label texts (the memo hits), all new ids (it fills, forgets, pauses),
        // few again.
        // The label texts of a record: few of them, as in a log (the memo hits); the file
        // and the path (the derived field) vary apart from the others.
        let tuples: Vec<(&str, &str, &str, &str)> = (0..20)
            .map(|_| {
                (
                    rng.pick(&methods),
                    rng.pick(&statuses),
                    rng.pick(&agents),
                    rng.pick(&["a", "b", ""]),
                )
            })
            .collect();
        for (phase, lines) in [(0, 2000), (1, 5000), (2, 2000u32)] {
            for n in 0..lines {
                // Some tuples far more often than others.
                let t = (rng.next() % 20).min(rng.next() % 20) as usize;
                let (method, status, agent, id) = tuples[t];
                let (path, file) = (rng.pick(&paths), rng.pick(&files));
                let id = match phase {
                    1 => format!("{phase}-{n}"),
                    _ => id.to_owned(),
                };
                let line = format!(
                    "{method} {path} {status} {} {} {n} {agent} {} id={id}",
                    rng.pick(&bytes),
                    rng.pick(&secs),
                    rng.pick(&["ok", "bad", "unknown"]),
                );
                let ctx = RecordContext {
                    file,
                    ..Default::default()
                };
                let (ma, mb) = (a.process_line(&line, &ctx), b.process_line(&line, &ctx));
                assert_eq!(ma, mb, "{line}");
                // Between records: a series removed now and then, in both, as expiry would.
                if rng.next().is_multiple_of(7) {
                    let name = rng.pick(&removable);
                    let (family_a, family_b) = (fa.get(name).unwrap(), fb.get(name).unwrap());
                    let mut keys = family_b.keys();
                    keys.sort();
                    if !keys.is_empty() {
                        let key = &keys[(rng.next() % keys.len() as u64) as usize];
                        family_a.remove(key);
                        family_b.remove(key);
                        removed += 1;
                    }
                }
                // Every record compared while series are few; among the all-new ids (one
                // series per record: a loss or a double count stays visible) every 97th.
                if phase != 1 || n.is_multiple_of(97) || n + 1 == lines {
                    assert_eq!(
                        state(&fa, &sa),
                        state(&fb, &sb),
                        "phase {phase}, after {line:?}"
                    );
                }
            }
            let cache = a.rules[0].cache.as_ref().unwrap();
            assert!(cache.len() <= super::ENTRIES);
            assert!(cache.keys.len() <= super::KEY_BYTES);
        }
        let cache = a.rules[0].cache.as_ref().unwrap();
        let (hits, pauses) = (cache.hits, cache.pauses);
        assert!(removed > 1000, "{removed}");
        assert!(pauses >= 2, "all-new label texts pause the memo: {pauses}");
        assert!(hits > 1000, "the memo was used: {hits} hits");
        // The families filled up, and cut values were counted.
        assert!(state(&fa, &sa).contains("quarry_series_dropped_total{metric=\"req_total\"}"));
        let truncated = sa
            .label_values_truncated
            .with_label_values(&["req_total"])
            .get();
        assert!(truncated > 100, "{truncated}");
    }

    /// Expiry (the family's own sweep, on its own clock) between records, in both: a series
    /// made again after it expired starts at its first update, not at the value the memo's
    /// place held.
    #[test]
    fn expired_series_are_made_again_not_served_from_the_memo() {
        let config = CONFIG.replace("expire_after: 1h", "expire_after: 100ms");
        let config = load_str(&config, "exporter.yaml").unwrap();
        let (mut a, fa, sa) = pipeline(&config, true);
        let (mut b, fb, sb) = pipeline(&config, false);
        let ctx = RecordContext {
            file: "/var/log/a.log",
            ..Default::default()
        };
        for round in 0..3 {
            for n in 0..20 {
                let line = format!("GET /api 200 5 0.1 {n} - ok id=i{}", n % 3);
                a.process_line(&line, &ctx);
                b.process_line(&line, &ctx);
            }
            assert_eq!(state(&fa, &sa), state(&fb, &sb), "round {round}");
            assert!(state(&fa, &sa).contains("ids_total{id=\"i0\"} 7\n"));
            // Idle for longer than `expire_after` and the sweep's rounding (0.2 s), measured
            // on the monotonic clock the families read: every series of the family goes.
            std::thread::sleep(std::time::Duration::from_millis(350));
            for family in [fa.get("ids_total").unwrap(), fb.get("ids_total").unwrap()] {
                assert_eq!(family.expire(), 3, "round {round}");
                assert_eq!(family.len(), 0);
            }
            let line = "GET /api 200 5 0.1 99 - ok id=i0";
            a.process_line(line, &ctx);
            b.process_line(line, &ctx);
            assert_eq!(
                state(&fa, &sa),
                state(&fb, &sb),
                "round {round}, after expiry"
            );
            assert!(state(&fa, &sa).contains("ids_total{id=\"i0\"} 1\n"));
            std::thread::sleep(std::time::Duration::from_millis(350));
            for family in [fa.get("ids_total").unwrap(), fb.get("ids_total").unwrap()] {
                assert_eq!(family.expire(), 1);
            }
        }
    }
}
