//! Fields of structured records (JSON lines, logfmt) and of a document's items: which is
//! level-like, status-like, method-like, duration-like, a name, a number. Decided by the
//! tables of [`super::shapes`] on each field's name and on the values the sample holds.

use std::collections::{BTreeMap, BTreeSet};

use super::shapes;

/// Between the members of a JSON path as [`Structured::keys`] holds it (a key may hold a
/// dot: `"log.level"`, as ECS writes it).
pub const SEP: char = '\u{1f}';

/// A key path as people read it.
pub fn shown(key: &str) -> String {
    key.replace(SEP, ".")
}

/// Distinct values kept per field.
const MAX_DISTINCT: usize = 64;

/// What the sample holds in one field.
#[derive(Debug, Default, Clone)]
pub struct FieldStats {
    /// Records (or items) that have it.
    pub present: usize,
    /// Those whose value is a number.
    pub numeric: usize,
    /// Those whose value is a number with a duration unit (`1.5ms`, `2s`).
    pub with_unit: usize,
    /// Those whose value is a level word.
    pub levels: usize,
    /// Those whose value is a boolean.
    pub booleans: usize,
    /// Those whose value is an RFC 3339 date-time.
    pub timestamps: usize,
    /// Distinct values, in the order first seen (at most [`MAX_DISTINCT`]; `more` past it).
    pub distinct: Vec<String>,
    pub more: bool,
}

impl FieldStats {
    fn add(&mut self, value: &str, is_number: bool, is_bool: bool) {
        self.present += 1;
        let v = value.trim();
        if is_number || (!v.is_empty() && crate::value::number(v).is_ok() && !v.contains(',')) {
            self.numeric += 1;
        } else if has_duration_unit(v) {
            self.with_unit += 1;
        }
        if shapes::is_level(v) {
            self.levels += 1;
        }
        if is_bool {
            self.booleans += 1;
        }
        if v.len() >= 19
            && v.as_bytes()[4] == b'-'
            && crate::value::convert(v, crate::config::Conversion::Timestamp).is_ok()
        {
            self.timestamps += 1;
        }
        if !self.distinct.iter().any(|d| d == v) {
            if self.distinct.len() < MAX_DISTINCT {
                self.distinct.push(v.to_owned());
            } else {
                self.more = true;
            }
        }
    }

    /// Distinct values, or `None` when there are more than we kept.
    pub fn few(&self, at_most: usize) -> Option<&[String]> {
        (!self.more && self.distinct.len() <= at_most).then_some(&self.distinct)
    }
}

/// `1.5ms`, `250µs`, `2s`, `1m30s`, `15d`: a number with a duration unit.
fn has_duration_unit(v: &str) -> bool {
    let starts_with_digit = v.chars().next().is_some_and(|c| c.is_ascii_digit());
    starts_with_digit
        && v.chars().any(|c| c.is_alphabetic())
        && v.len() < 24
        && crate::value::convert(v, crate::config::Conversion::Duration).is_ok()
}

/// Structured records' fields, and the ones picked for rules.
#[derive(Debug, Default)]
pub struct Structured {
    /// Records looked at.
    pub records: usize,
    /// Field keys (JSON: dotted member paths) in the order first seen.
    pub keys: Vec<String>,
    pub stats: BTreeMap<String, FieldStats>,
    pub level: Option<String>,
    pub status: Option<String>,
    pub method: Option<String>,
    /// Duration fields: key, factor to seconds, whether the name gives the unit, whether the
    /// values carry it (`as: duration`).
    pub durations: Vec<(String, f64, bool, bool)>,
}

impl Structured {
    fn add(&mut self, key: String, value: &str, is_number: bool, is_bool: bool) {
        if !self.stats.contains_key(&key) {
            self.keys.push(key.clone());
        }
        self.stats
            .entry(key)
            .or_default()
            .add(value, is_number, is_bool);
    }

    /// `in 97 of 100 records (info, warn, error)`.
    pub fn describe(&self, key: &str) -> String {
        let s = &self.stats[key];
        let values: Vec<&str> = s.distinct.iter().take(6).map(String::as_str).collect();
        format!(
            "{} of {} records ({}{})",
            s.present,
            self.records,
            values.join(", "),
            if s.distinct.len() > 6 || s.more {
                ", …"
            } else {
                ""
            }
        )
    }

    /// Whether a status field holds HTTP status codes.
    pub fn http_status(&self, key: &str) -> bool {
        let s = &self.stats[key];
        s.distinct
            .iter()
            .all(|v| v.len() == 3 && v.parse::<u16>().is_ok_and(|n| (100..600).contains(&n)))
    }

    /// Whether a field holds times (left out of "not used").
    pub fn is_timestamp(&self, key: &str) -> bool {
        let s = &self.stats[key];
        let k = shapes::squash(shapes::last_segment(key));
        s.timestamps * 2 >= s.present
            || matches!(
                k.as_str(),
                "ts" | "time" | "timestamp" | "t" | "date" | "datetime"
            )
    }

    /// Picks the level, status, method and duration fields.
    fn pick(mut self) -> Structured {
        let n = self.records.max(1);
        let named = |key: &str, table: &[&str]| {
            table.contains(&shapes::squash(shapes::last_segment(key)).as_str())
        };
        // A level: by name with mostly level words, else any field of level words only.
        self.level = self
            .keys
            .iter()
            .find(|k| {
                let s = &self.stats[*k];
                named(k, shapes::LEVEL_KEYS) && s.levels * 10 >= s.present * 9 && s.present * 2 >= n
            })
            .or_else(|| {
                self.keys.iter().find(|k| {
                    let s = &self.stats[*k];
                    s.levels == s.present && s.present * 2 >= n && s.few(10).is_some()
                })
            })
            .cloned();
        let level = self.level.clone();
        // A status: by name, few distinct values.
        self.status = self
            .keys
            .iter()
            .filter(|k| Some(*k) != level.as_ref())
            .find(|k| named(k, shapes::STATUS_KEYS) && self.stats[*k].few(20).is_some())
            .cloned();
        self.method = self
            .keys
            .iter()
            .find(|k| {
                let s = &self.stats[*k];
                named(k, shapes::METHOD_KEYS)
                    && s.few(12).is_some_and(|v| {
                        v.iter()
                            .all(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_uppercase()))
                    })
            })
            .cloned();
        let mut durations = Vec::new();
        for k in &self.keys {
            let Some((factor, named_unit)) = shapes::duration_unit(k) else {
                continue;
            };
            let s = &self.stats[k];
            if s.present == 0 {
                continue;
            }
            if s.numeric * 10 >= s.present * 9 {
                durations.push((k.clone(), factor, named_unit, false));
            } else if (s.with_unit + s.numeric) * 10 >= s.present * 9 && s.with_unit > 0 {
                durations.push((k.clone(), 1.0, false, true));
            }
        }
        durations.truncate(3);
        self.durations = durations;
        self
    }
}

/// Reads JSON records (one object per record) into field statistics: nested objects as
/// dotted paths (3 levels), arrays left out.
pub fn json_records<'a>(records: impl Iterator<Item = &'a str>) -> Structured {
    let mut s = Structured::default();
    for r in records.take(2000) {
        let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(r) else {
            continue;
        };
        s.records += 1;
        walk(&mut s, "", &serde_json::Value::Object(o), 0);
    }
    s.pick()
}

fn walk(s: &mut Structured, path: &str, v: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    match v {
        Value::Object(o) if depth < 3 => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}{SEP}{k}")
                };
                walk(s, &p, v, depth + 1);
            }
        }
        Value::String(t) => s.add(path.to_owned(), t, false, false),
        Value::Number(n) => s.add(path.to_owned(), &n.to_string(), true, false),
        Value::Bool(b) => s.add(path.to_owned(), &b.to_string(), false, true),
        _ => {}
    }
}

/// Reads logfmt records into field statistics.
pub fn logfmt_records<'a>(records: impl Iterator<Item = &'a str>) -> Structured {
    let mut s = Structured::default();
    let mut pairs = Vec::new();
    for r in records.take(2000) {
        if !crate::extract::logfmt::parse(r, &mut pairs) {
            continue;
        }
        s.records += 1;
        let mut seen = BTreeSet::new();
        for p in &pairs {
            let key = p.key(r);
            if !seen.insert(key) {
                continue;
            }
            let value = crate::extract::logfmt::value(r, &pairs, key).unwrap_or_default();
            s.add(key.to_owned(), &value, false, false);
        }
    }
    s.pick()
}

/// The JSONPath of a dotted member path, bracketed where a key is not a plain name.
pub fn json_path(key: &str) -> String {
    let mut p = String::from("$");
    for seg in key.split(SEP) {
        let plain = seg
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            p.push('.');
            p.push_str(seg);
        } else {
            p.push_str(&format!(
                "['{}']",
                seg.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_pick_level_status_method_and_durations() {
        let lines = [
            r#"{"time":"2026-11-28T10:00:00Z","level":"info","http":{"method":"GET","status":200},"latency_ms":12.5,"msg":"done"}"#,
            r#"{"time":"2026-11-28T10:00:01Z","level":"error","http":{"method":"POST","status":500},"latency_ms":3,"msg":"failed"}"#,
            r#"{"time":"2026-11-28T10:00:02Z","level":"info","msg":"tick"}"#,
        ];
        let s = json_records(lines.iter().copied());
        assert_eq!(s.level.as_deref(), Some("level"));
        assert_eq!(s.status.as_deref(), Some("http\u{1f}status"));
        assert_eq!(s.method.as_deref(), Some("http\u{1f}method"));
        assert_eq!(
            s.durations,
            vec![("latency_ms".to_owned(), 0.001, true, false)]
        );
        assert!(s.http_status("http\u{1f}status"));
        assert!(s.is_timestamp("time"));
    }

    #[test]
    fn logfmt_durations_with_units_are_read_as_durations() {
        let lines = [
            r#"ts=2026-11-28T10:00:00Z caller=head.go:1 level=info component=tsdb msg="done" duration=1.5ms"#,
            r#"ts=2026-11-28T10:00:01Z caller=head.go:2 level=warn component=tsdb msg="slow" duration=2.1s"#,
        ];
        let s = logfmt_records(lines.iter().copied());
        assert_eq!(s.level.as_deref(), Some("level"));
        assert_eq!(s.durations, vec![("duration".to_owned(), 1.0, false, true)]);
    }

    #[test]
    fn json_paths_bracket_odd_keys() {
        assert_eq!(json_path("http\u{1f}status"), "$.http.status");
        assert_eq!(json_path("log.level"), "$['log.level']");
        assert_eq!(json_path("a-b\u{1f}c d"), "$['a-b']['c d']");
    }
}
