//! JSON log records read in one pass, for rules whose fields are plain member paths
//! (`$.level`, `$.http.status`, `$['user id']`, `@.a` — what log rules almost always are).
//!
//! Building a `serde_json::Value` per record allocates a map per object and a string per
//! value, and the JSONPath engine then walks it per field. Here the paths of every such rule of
//! a source form one trie; a record is deserialized once against it: keys the trie does not
//! name are skipped without allocation (`IgnoredAny`), and the values it names are kept as spans
//! of the record's text (`RawValue`), turned into text only when a rule reads them. A record
//! this reader refuses (not JSON, or numbers only the lenient reader of page documents takes,
//! like `1e400` or `NaN`) goes the slow way, so the two agree.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::json::replace_lone_surrogates;

/// The member path of a field expression (`$.a.b`, `$['a b'].c`, `@.a`), or `None` when it
/// is anything else (wildcards, filters, indexes, `@key`, the root itself).
pub fn member_path(expr: &str) -> Option<Vec<String>> {
    let expr = expr.trim();
    let mut rest = expr.strip_prefix('$').or_else(|| expr.strip_prefix('@'))?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            keys.push(name.to_owned());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let quote = if rest.starts_with("['") { '\'' } else { '"' };
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains('\\') {
                return None;
            }
            keys.push(name.to_owned());
            rest = r[end + 1..].strip_prefix(']')?;
        } else {
            return None;
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// Member paths of a source's JSON rules, as a trie: each path ends in a slot.
#[derive(Debug, Default)]
pub struct PathTrie {
    children: Vec<(String, PathTrie)>,
    slot: Option<usize>,
    slots: usize,
}

impl PathTrie {
    /// The slot of `path` (shared by rules that read the same path).
    pub fn insert(&mut self, path: &[String]) -> usize {
        let mut node = &mut *self;
        for key in path {
            let i = match node.children.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    node.children.push((key.clone(), PathTrie::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i].1;
        }
        if let Some(s) = node.slot {
            return s;
        }
        let s = self.slots;
        self.slots += 1;
        // Walk again: the first walk's borrow ended where the slot count changed.
        let mut node = &mut *self;
        for key in path {
            let i = node
                .children
                .iter()
                .position(|(k, _)| k == key)
                .expect("inserted");
            node = &mut node.children[i].1;
        }
        node.slot = Some(s);
        s
    }

    /// Forgets the spans of this node and those under it.
    fn clear(&self, spans: &mut [Option<(usize, usize)>]) {
        if let Some(s) = self.slot {
            spans[s] = None;
        }
        for (_, child) in &self.children {
            child.clear(spans);
        }
    }

    /// Reads `text`, setting each slot to the span of its value (the last occurrence of a
    /// key, as a parsed document keeps); `false` when this reader refuses the text.
    pub fn read(&self, text: &str, spans: &mut Vec<Option<(usize, usize)>>) -> bool {
        spans.clear();
        spans.resize(self.slots, None);
        let mut de = serde_json::Deserializer::from_str(text);
        let walk = Walk {
            node: self,
            base: text.as_ptr() as usize,
            spans,
        };
        walk.deserialize(&mut de).is_ok() && de.end().is_ok()
    }
}

struct Walk<'t, 's> {
    node: &'t PathTrie,
    base: usize,
    spans: &'s mut Vec<Option<(usize, usize)>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some((_, child)) = self.node.children.iter().find(|(k, _)| *k == key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            // A key given twice: the last one wins, as in a parsed document.
            child.clear(self.spans);
            match child.slot {
                Some(slot) => {
                    let raw = map.next_value::<&'de RawValue>()?;
                    let start = raw.get().as_ptr() as usize - self.base;
                    self.spans[slot] = Some((start, start + raw.get().len()));
                    if !child.children.is_empty() {
                        // Both a value and a parent of others (`$.a` and `$.a.b`): read inside.
                        let mut de = serde_json::Deserializer::from_str(raw.get());
                        let inner = Walk {
                            node: child,
                            base: self.base,
                            spans: &mut *self.spans,
                        };
                        inner
                            .deserialize(&mut de)
                            .map_err(serde::de::Error::custom)?;
                    }
                }
                None => map.next_value_seed(Walk {
                    node: child,
                    base: self.base,
                    spans: &mut *self.spans,
                })?,
            }
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }
    fn visit_string<E>(self, _: String) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The text of a value as the JSONPath reader gives it: strings unescaped (a lone surrogate
/// escape as U+FFFD, see [`replace_lone_surrogates`]), numbers and booleans as JSON writes
/// them, `null` as nothing, objects and arrays as compact JSON.
pub fn value_text(raw: &str) -> Option<String> {
    let mut text = String::new();
    value_text_into(raw, &mut text).then_some(text)
}

/// [`value_text`] appended to `out` (a buffer reused from record to record); `false`, and
/// `out` unchanged, for `null` or a value that does not read.
pub fn value_text_into(raw: &str, out: &mut String) -> bool {
    let Some(first) = raw.as_bytes().first() else {
        return false;
    };
    let text = match first {
        // Without an escape, a string's text is what stands between its quotes (the reader
        // refused control characters): no second parse.
        b'"' if !raw.contains('\\') => {
            out.push_str(&raw[1..raw.len() - 1]);
            return true;
        }
        _ if is_plain_integer(raw) || matches!(first, b't' | b'f') => {
            out.push_str(raw);
            return true;
        }
        b'n' => None,
        b'"' => lossy::<String>(raw),
        b'{' | b'[' => lossy::<serde_json::Value>(raw).map(|v| v.to_string()),
        _ => serde_json::from_str::<serde_json::Number>(raw)
            .ok()
            .map(|n| n.to_string()),
    };
    text.map(|t| out.push_str(&t)).is_some()
}

/// Whether `raw` is an integer serde_json writes back as it is: digits, maybe after a minus,
/// no leading zero (nor `-0`, which it reads as a float), few enough to fit in 64 bits.
fn is_plain_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    matches!(digits.first(), Some(b'1'..=b'9'))
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
}

/// `raw` deserialized, a lone surrogate escape read as U+FFFD. The one-pass reader skips
/// values without checking their escapes (serde_json's `RawValue`), so a value it kept may
/// hold one: read as the document reader reads it, the two agree.
fn lossy<T: serde::de::DeserializeOwned>(raw: &str) -> Option<T> {
    serde_json::from_str(raw)
        .ok()
        .or_else(|| serde_json::from_str(&replace_lone_surrogates(raw)?).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::json::JsonExtractor;

    #[test]
    fn member_paths_are_recognised_and_others_are_not() {
        assert_eq!(member_path("$.a.b_1"), Some(vec!["a".into(), "b_1".into()]));
        assert_eq!(
            member_path("$['user id'].x"),
            Some(vec!["user id".into(), "x".into()])
        );
        assert_eq!(member_path("@.a"), Some(vec!["a".into()]));
        for other in [
            "$",
            "$.a[0]",
            "$.*",
            "$..a",
            "$.a[?@.b]",
            "@key",
            "$['a\\'b']",
            "$.1a",
        ] {
            assert_eq!(member_path(other), None, "{other}");
        }
    }

    /// The one-pass reader and the JSONPath reader give every field the same text.
    #[test]
    fn agrees_with_the_jsonpath_reader() {
        let fields = [
            "$.level",
            "$.http.status",
            "$.http.latency_ms",
            "$['user id']",
            "$.a",
            "$.a.b",
            "$.n",
            "$.t",
            "$.arr",
            "$.obj",
            "$.missing",
            "$.http.missing.deeper",
        ];
        let lines = [
            r#"{"level":"info","http":{"status":200,"latency_ms":12.50},"user id":"Zo\u00eb"}"#,
            r#"{"http":{"latency_ms":1e3,"status":"503"},"level":"warn","level":"dup"}"#,
            r#"{"a":{"b":1},"n":null,"t":true,"arr":[1, 2],"obj":{"x" : "y"}}"#,
            r#"{"a":"flat","http":[1,2],"level":{"nested":"obj"}}"#,
            r#"  {"level":"spaces" , "http" : { "status" : -0.0 } }  "#,
            r#"[1,2,3]"#,
            r#""just a string""#,
            r#"{"a":{"b":{"c":1}},"a":{"b":2}}"#,
            // Lone surrogates: U+FFFD in both readers (the one-pass reader skips values
            // without checking their escapes).
            r#"{"level":"a\ud800","http":{"status":"b\udc00x"},"user id":"\ud83d\ude00\ud800"}"#,
            r#"{"obj":{"x":"\udfff"},"arr":["\ud800\ud800"],"a":{"b":"\\ud800"}}"#,
            // Integers written back as they are, and those that are not.
            r#"{"n":-0,"t":0,"a":-7,"level":123456789012345678,"arr":-99999999999999999}"#,
            r#"{"n":18446744073709551616,"t":-9223372036854775809,"a":1234567890123456789}"#,
            r#"{"n":0.0,"t":10,"a":"-5","level":"","obj":" spaced é \u00e9 "}"#,
        ];
        let mut trie = PathTrie::default();
        let slots: Vec<usize> = fields
            .iter()
            .map(|f| trie.insert(&member_path(f).unwrap()))
            .collect();
        let slow = JsonExtractor::new(None, fields).unwrap();
        let mut spans = Vec::new();
        for line in lines {
            assert!(trie.read(line, &mut spans), "{line}");
            let fast: Vec<Option<String>> = slots
                .iter()
                .map(|s| spans[*s].and_then(|(a, b)| value_text(&line[a..b])))
                .collect();
            let doc = JsonExtractor::parse(line).unwrap();
            let mut rows = Vec::new();
            slow.extract(&doc, &mut rows);
            assert_eq!(fast, rows[0], "{line}");
        }
    }

    /// A lone surrogate in a key: the one-pass reader refuses the record (it compares keys
    /// as text) and the document reader reads the rest of it.
    #[test]
    fn a_lone_surrogate_in_a_key_goes_the_slow_way() {
        let mut trie = PathTrie::default();
        trie.insert(&["level".into()]);
        let mut spans = Vec::new();
        let line = r#"{"k\ud800":1,"level":"warn"}"#;
        assert!(!trie.read(line, &mut spans));
        let doc = JsonExtractor::parse(line).unwrap();
        assert_eq!(doc["level"], "warn");
        assert_eq!(doc["k\u{fffd}"], 1);
    }

    #[test]
    fn what_the_reader_refuses() {
        let mut trie = PathTrie::default();
        trie.insert(&["a".into()]);
        let mut spans = Vec::new();
        for bad in ["not json", "{\"a\":1", "{\"a\":1} x", "{\"a\":NaN}", ""] {
            assert!(!trie.read(bad, &mut spans), "{bad}");
        }
    }
}
