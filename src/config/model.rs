//! The configuration model: serde types that mirror `exporter.yaml` one to one.
//!
//! These types only describe what the user wrote. They carry no compiled state; the
//! [`crate::pipeline`] build step turns a validated [`Config`] into regexes, templates and
//! metric handles. Every struct denies unknown fields so a typo is an error with a position,
//! and every source or extractor kind is a keyed sub-object (`file:`) rather than a `type:`
//! tag, which keeps serde_yaml's error positions exact.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole `exporter.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Format version of the file; only `1` exists.
    pub version: u32,
    /// Every metric the rules may update, each declared once.
    pub metrics: Vec<MetricConfig>,
    /// Where records come from, each with its rules.
    pub sources: Vec<SourceConfig>,
}

/// One metric declaration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Prometheus metric name (counters end in `_total`).
    pub name: String,
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: String,
    /// Label names, in the order they are exported.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Histogram bucket upper bounds (histograms only; default: Prometheus' default buckets).
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    /// Most label sets this metric may hold; new ones beyond it are dropped and counted.
    #[serde(default)]
    pub max_series: Option<usize>,
}

/// The closed set of metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only goes up; `inc` or `add`.
    Counter,
    /// Goes up and down; `set`, `inc`, `dec`, `add`.
    Gauge,
    /// Observations counted into buckets; `observe`.
    Histogram,
}

impl MetricKind {
    /// The name used in the config and in the exposition's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One source: a name, exactly one kind sub-object, and its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; the `source` label of self-metrics.
    pub name: String,
    /// Tail files matched by globs.
    #[serde(default)]
    pub file: Option<FileSourceConfig>,
    /// Rules tried on every record of this source.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Where a file source starts reading files that exist when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Only lines written after start (like `tail -F`).
    #[default]
    End,
    /// Everything already in the files, then what follows.
    Beginning,
}

/// `file:` — tail every file that matches one of the globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns (`*`, `?`, `[..]`, `**`); relative ones are relative to the config file.
    pub paths: Vec<String>,
    /// Globs of paths to leave out (e.g. `*.gz` next to `access.log*`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files that exist at start-up. Files that appear later are always read
    /// from their beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest line in bytes; longer lines are counted and skipped.
    #[serde(default)]
    pub max_line_length: Option<usize>,
    /// How often globs are re-expanded and files checked when no notification arrives.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub poll_interval: Option<Duration>,
    /// How long a rotated-away or deleted file is still read after its last new data.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub rotate_wait: Option<Duration>,
    /// Use inotify notifications (default true); false polls only.
    #[serde(default)]
    pub watch: Option<bool>,
}

/// One rule: an extractor and the updates each match makes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name for the `rule` label of self-metrics; defaults to the rule's index.
    #[serde(default)]
    pub name: Option<String>,
    /// A regex with named captures, tried against each line.
    pub regex: String,
    /// The metric changes each match makes.
    #[serde(default)]
    pub update: Vec<UpdateConfig>,
}

/// One metric change made for each match of a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The declared metric to change.
    pub metric: String,
    /// Label values: constants or templates with `$capture` / `${capture}`.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// Counter or gauge: add this (default 1 for a counter with no operation).
    #[serde(default)]
    pub inc: Option<ValueSpec>,
    /// Counter or gauge: add this.
    #[serde(default)]
    pub add: Option<ValueSpec>,
    /// Gauge: subtract this.
    #[serde(default)]
    pub dec: Option<ValueSpec>,
    /// Gauge: set to this.
    #[serde(default)]
    pub set: Option<ValueSpec>,
    /// Histogram: observe this.
    #[serde(default)]
    pub observe: Option<ValueSpec>,
}

/// A label value as written: any scalar, kept as text (`200` and `"200"` are the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValue(pub String);

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText(
            "a label value (text, or a template like \"$name\")",
        ))
        .map(LabelValue)
    }
}

/// The value of an update as written: a number, or text naming a capture (`$secs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSpec {
    /// A constant.
    Number(f64),
    /// A template; validation requires exactly one `$field` reference.
    Text(String),
}

impl<'de> Deserialize<'de> for ValueSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ValueSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a field reference like \"$bytes\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<ValueSpec, E> {
                Ok(ValueSpec::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Accepts any YAML scalar and returns it as text.
struct ScalarText(&'static str);

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = d.deserialize_any(ScalarText("a duration like 250ms, 15s, 2m or 1h"))?;
    parse_duration(&text).map(Some).map_err(de::Error::custom)
}

/// Parses a Prometheus-style duration: one or more `<integer><unit>` with units
/// `ms`, `s`, `m`, `h`, `d`, `w` (e.g. `1m30s`). A bare `0` is zero.
///
/// ```
/// use std::time::Duration;
/// use quarry_exporter::config::parse_duration;
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("90").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. 250ms, 15s, 2m, 1h30m");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let millis = number.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }
}
