//! The closed sets of source kinds and rule extractors, as enums borrowed from the config.
//!
//! The YAML keeps one optional keyed sub-object per kind (`file:`, `http:`; `regex:`,
//! `json:`), which keeps serde_yaml's error positions exact. This module is the one place
//! that reads those fields: [`SourceConfig::kind`] and [`RuleConfig::extractor`] turn them
//! into a [`SourceKind`] or an [`Extractor`], and every other module dispatches with an
//! exhaustive `match` on those, so a new kind is one variant the compiler walks you through.
//! Each kind's YAML key is here too ([`SourceKind::key`], [`SourceKind::KEYS`]), for
//! messages, explain and the status page, instead of hand-kept lists of names.
//!
//! "Exactly one kind" is checked once: validation turns a [`KindError`] (none, or several)
//! into config errors with positions; code that runs on a loaded config receives the same
//! `Result` and passes the error on with `?` (it cannot happen there), never a fallback.

use std::fmt;

use super::model::{
    CommandSourceConfig, FileSourceConfig, HtmlRuleConfig, HttpSourceConfig, JsonRuleConfig,
    LogfmtRuleConfig, RuleConfig, SocketSourceConfig, SourceConfig, StatusFileSourceConfig,
    XmlRuleConfig,
};

/// A source's kind, borrowed from its [`SourceConfig`].
#[derive(Debug, Clone, Copy)]
pub enum SourceKind<'a> {
    /// `file:` — log files tailed line by line.
    File(&'a FileSourceConfig),
    /// `http:` — a page fetched on an interval.
    Http(&'a HttpSourceConfig),
    /// `command:` — a program's stdout on an interval.
    Command(&'a CommandSourceConfig),
    /// `status_file:` — a whole file read on an interval.
    StatusFile(&'a StatusFileSourceConfig),
    /// `socket:` — a conversation with a TCP or Unix socket on an interval.
    Socket(&'a SocketSourceConfig),
}

impl SourceKind<'_> {
    /// Every kind's YAML key, in the order messages list them.
    pub const KEYS: [&'static str; 5] = ["file", "http", "command", "status_file", "socket"];

    /// The key of this kind in `exporter.yaml` (`file`, `http`, …).
    pub fn key(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::Http(_) => "http",
            SourceKind::Command(_) => "command",
            SourceKind::StatusFile(_) => "status_file",
            SourceKind::Socket(_) => "socket",
        }
    }

    /// Whether the source reads log records line by line (a file source) rather than whole
    /// documents (a page source).
    pub fn reads_lines(&self) -> bool {
        match self {
            SourceKind::File(_) => true,
            SourceKind::Http(_)
            | SourceKind::Command(_)
            | SourceKind::StatusFile(_)
            | SourceKind::Socket(_) => false,
        }
    }
}

/// A rule's extractor, borrowed from its [`RuleConfig`].
#[derive(Debug, Clone, Copy)]
pub enum Extractor<'a> {
    /// `regex:` — named captures.
    Regex(&'a str),
    /// `grok:` — an expression the loader expands to a regex (`expanded`; `None` when the
    /// expansion failed, which validation reports).
    Grok {
        /// The grok expression as written.
        expression: &'a str,
        /// The regex it expands to.
        expanded: Option<&'a str>,
    },
    /// `json:` — JSONPath over a record or a document.
    Json(&'a JsonRuleConfig),
    /// `logfmt:` — `key=value` pairs of a record.
    Logfmt(&'a LogfmtRuleConfig),
    /// `xml:` — XPath over a document.
    Xml(&'a XmlRuleConfig),
    /// `html:` — CSS selectors over a page.
    Html(&'a HtmlRuleConfig),
}

impl Extractor<'_> {
    /// Every extractor's YAML key, in the order messages list them.
    pub const KEYS: [&'static str; 6] = ["regex", "grok", "json", "logfmt", "xml", "html"];

    /// The key of this extractor in `exporter.yaml` (`regex`, `json`, …).
    pub fn key(&self) -> &'static str {
        match self {
            Extractor::Regex(_) => "regex",
            Extractor::Grok { .. } => "grok",
            Extractor::Json(_) => "json",
            Extractor::Logfmt(_) => "logfmt",
            Extractor::Xml(_) => "xml",
            Extractor::Html(_) => "html",
        }
    }
}

/// Why a config entry has no single kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindError {
    /// No kind key at all; `what` is `source` or `rule`.
    Missing {
        /// `a source needs a kind` or `a rule needs an extractor`.
        what: &'static str,
        /// The keys it could have had.
        keys: &'static [&'static str],
    },
    /// Several kind keys (in [`SourceKind::KEYS`] / [`Extractor::KEYS`] order).
    Several {
        /// `a source has one kind` or `a rule has one extractor`.
        what: &'static str,
        /// The keys present.
        present: Vec<&'static str>,
    },
}

impl fmt::Display for KindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindError::Missing { what, keys } => {
                let keys: Vec<String> = keys.iter().map(|k| format!("`{k}:`")).collect();
                write!(f, "{what}: one of {}", keys.join(", "))
            }
            KindError::Several { what, present } => {
                write!(f, "{what}; this one has {}", present.join(" and "))
            }
        }
    }
}

impl std::error::Error for KindError {}

/// The one kind of `present`, or why there is not exactly one.
fn exactly_one<K>(
    present: Vec<K>,
    key: fn(&K) -> &'static str,
    missing: KindError,
    several: &'static str,
) -> Result<K, KindError> {
    let mut present = present;
    match present.len() {
        0 => Err(missing),
        1 => Ok(present.remove(0)),
        _ => Err(KindError::Several {
            what: several,
            present: present.iter().map(key).collect(),
        }),
    }
}

impl SourceConfig {
    /// Every kind sub-object this source has, in [`SourceKind::KEYS`] order (validation
    /// reports each one a probe module cannot have).
    pub fn kinds_present(&self) -> Vec<SourceKind<'_>> {
        // Destructured whole: a new field must be placed here (a kind, or not).
        let SourceConfig {
            name: _,
            file,
            http,
            command,
            status_file,
            socket,
            rules: _,
        } = self;
        [
            file.as_ref().map(SourceKind::File),
            http.as_ref().map(SourceKind::Http),
            command.as_ref().map(SourceKind::Command),
            status_file.as_ref().map(SourceKind::StatusFile),
            socket.as_ref().map(SourceKind::Socket),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// This source's one kind; an error when it has none or several (validation reports it,
    /// so on a loaded config it is always `Ok`).
    pub fn kind(&self) -> Result<SourceKind<'_>, KindError> {
        exactly_one(
            self.kinds_present(),
            SourceKind::key,
            KindError::Missing {
                what: "a source needs a kind",
                keys: &SourceKind::KEYS,
            },
            "a source has one kind",
        )
    }

    /// Whether this source reads log lines (a valid `file:` source).
    pub fn reads_lines(&self) -> bool {
        self.kind().is_ok_and(|k| k.reads_lines())
    }
}

impl RuleConfig {
    /// Every extractor this rule has, in [`Extractor::KEYS`] order.
    pub fn extractors_present(&self) -> Vec<Extractor<'_>> {
        // Destructured whole: a new field must be placed here (an extractor, or not).
        let RuleConfig {
            name: _,
            regex,
            json,
            xml,
            html,
            logfmt,
            grok,
            derive: _,
            when: _,
            unquote: _,
            grok_expanded,
            update: _,
            keep_absent: _,
            examples: _,
        } = self;
        [
            regex.as_deref().map(Extractor::Regex),
            grok.as_deref().map(|expression| Extractor::Grok {
                expression,
                expanded: grok_expanded.as_deref(),
            }),
            json.as_ref().map(Extractor::Json),
            logfmt.as_ref().map(Extractor::Logfmt),
            xml.as_ref().map(Extractor::Xml),
            html.as_ref().map(Extractor::Html),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// This rule's one extractor; an error when it has none or several (validation reports
    /// it, so on a loaded config it is always `Ok`).
    pub fn extractor(&self) -> Result<Extractor<'_>, KindError> {
        exactly_one(
            self.extractors_present(),
            Extractor::key,
            KindError::Missing {
                what: "a rule needs an extractor",
                keys: &Extractor::KEYS,
            },
            "a rule has one extractor",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(value: serde_json::Value) -> SourceConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn source_kind_keys_are_the_yaml_keys_in_order() {
        let all = source(json!({
            "name": "all",
            "file": {"paths": ["a.log"]},
            "http": {"url": "http://x/"},
            "command": {"argv": ["true"]},
            "status_file": {"path": "s.txt"},
            "socket": {"address": "127.0.0.1:6379", "steps": [{"send": "PING\r\n"}]},
        }));
        let keys: Vec<&str> = all.kinds_present().iter().map(|k| k.key()).collect();
        assert_eq!(keys, SourceKind::KEYS);
        assert_eq!(
            all.kind().unwrap_err().to_string(),
            "a source has one kind; this one has file and http and command and status_file and socket"
        );
        assert_eq!(
            source(json!({"name": "none"}))
                .kind()
                .unwrap_err()
                .to_string(),
            "a source needs a kind: one of `file:`, `http:`, `command:`, `status_file:`, `socket:`"
        );
    }

    #[test]
    fn extractor_keys_are_the_yaml_keys_in_order() {
        let rule: RuleConfig = serde_json::from_value(json!({
            "regex": "(?P<a>.)",
            "grok": "%{NUMBER:n}",
            "json": {"fields": {"a": "$.a"}},
            "logfmt": {"fields": {"a": "a"}},
            "xml": {"fields": {"a": "a"}},
            "html": {"fields": {"a": "a"}},
        }))
        .unwrap();
        let keys: Vec<&str> = rule.extractors_present().iter().map(|k| k.key()).collect();
        assert_eq!(keys, Extractor::KEYS);
        let none: RuleConfig = serde_json::from_value(json!({"name": "x"})).unwrap();
        assert_eq!(
            none.extractor().unwrap_err().to_string(),
            "a rule needs an extractor: one of `regex:`, `grok:`, `json:`, `logfmt:`, `xml:`, `html:`"
        );
    }

    #[test]
    fn one_kind_is_that_kind() {
        let status = source(json!({"name": "s", "status_file": {"path": "s.txt"}}));
        assert!(matches!(status.kind(), Ok(SourceKind::StatusFile(f)) if f.path == "s.txt"));
        assert!(!status.reads_lines());
        assert!(source(json!({"name": "f", "file": {"paths": ["a"]}})).reads_lines());
    }
}
