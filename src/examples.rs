//! Rules that carry their own tests: `examples:` give an input (log lines, or a document) and
//! samples the rule must make of it, like Vector's unit tests or `promtool test rules`.
//!
//! Each example runs its rule alone, through the same compiled pipeline and extractors as the
//! running exporter, on metric families made for it; the samples listed must be produced with
//! their values (samples not listed are not checked). Failures are config errors placed at the
//! example, so `check`, start-up, reload and `one-shot` all refuse a config whose rules do not
//! do what their examples say.

use std::collections::BTreeMap;

use crate::config::{Config, MetricConfig, RuleConfig, RuleExample, SourceConfig};
use crate::extract::document::DocumentExtractors;
use crate::pipeline::{Pipeline, RecordContext};
use crate::registry::Families;
use crate::selfmetrics::SelfMetrics;

/// A sample as the text format writes it: metric name, labels by name, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    /// `name{a="1",b="2"}`, labels in name order.
    fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// Parses one sample line (`name{label="value",...} value`), unescaping label values.
fn parse_sample(text: &str) -> Result<Sample, String> {
    let text = text.trim();
    let bad = |why: &str| format!("{text:?} is not a sample (`name{{label=\"value\"}} 1`): {why}");
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(bad("no metric name"));
    }
    let mut rest = &text[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut key = String::new();
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(bad("unclosed `{`"));
            };
            match c {
                '}' if key.trim().is_empty() => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' | ' ' if key.is_empty() => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(bad("a label value is quoted"));
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(bad("unclosed label value")),
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c)) => value.push(c),
                                None => return Err(bad("unclosed label value")),
                            },
                            Some((_, c)) => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key).trim().to_owned(), value);
                }
                c => key.push(c),
            }
        }
    }
    let value_text = rest.trim();
    let value = match value_text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse::<f64>()
            .map_err(|_| bad(&format!("{v:?} is not a value")))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Runs every example of every rule of `config`; returns `(yaml path, message)` per failure.
pub fn check(config: &Config) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    for (list, sources) in [("sources", &config.sources), ("modules", &config.modules)] {
        for (i, source) in sources.iter().enumerate() {
            for (j, rule) in source.rules.iter().enumerate() {
                for (k, example) in rule.examples.iter().enumerate() {
                    let path = format!("{list}[{i}].rules[{j}].examples[{k}]");
                    for (sub, message) in run(config, source, rule, example) {
                        failures.push((format!("{path}{sub}"), message));
                    }
                }
            }
        }
    }
    failures
}

/// One example: `(path suffix, message)` per failure.
fn run(
    config: &Config,
    source: &SourceConfig,
    rule: &RuleConfig,
    example: &RuleExample,
) -> Vec<(String, String)> {
    let mut expected = Vec::new();
    let mut failures = Vec::new();
    for (m, text) in example.samples.iter().enumerate() {
        match parse_sample(text) {
            Ok(s) => expected.push((m, s)),
            Err(e) => failures.push((format!(".samples[{m}]"), e)),
        }
    }
    if example.samples.is_empty() {
        failures.push((
            ".samples".into(),
            "an example lists the samples its input must produce".into(),
        ));
    }
    let produced = match produce(config, source, rule, example) {
        Ok(p) => p,
        Err(e) => {
            failures.push((".input".into(), e));
            return failures;
        }
    };
    for (m, want) in expected {
        let series = want.series();
        let same_value = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        match produced.iter().find(|p| p.series() == series) {
            Some(p) if same_value(p.value, want.value) => {}
            Some(p) => failures.push((
                format!(".samples[{m}]"),
                format!(
                    "the rule made {series} {} from the input, not {}",
                    p.value, want.value
                ),
            )),
            None => {
                let same_name: Vec<String> = produced
                    .iter()
                    .filter(|p| p.name == want.name)
                    .take(8)
                    .map(|p| format!("{} {}", p.series(), p.value))
                    .collect();
                let made = if same_name.is_empty() {
                    let names: Vec<&str> = produced.iter().map(|p| p.name.as_str()).collect();
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        let mut names = names;
                        names.dedup();
                        format!("samples of {} only", names.join(", "))
                    }
                } else {
                    same_name.join("; ")
                };
                failures.push((
                    format!(".samples[{m}]"),
                    format!("the rule did not make {series} from the input; it made {made}"),
                ));
            }
        }
    }
    failures
}

/// The samples the rule alone makes of the example's input, on families made for it.
fn produce(
    config: &Config,
    source: &SourceConfig,
    rule: &RuleConfig,
    example: &RuleExample,
) -> Result<Vec<Sample>, String> {
    let scratch = SelfMetrics::new();
    let updated: Vec<&str> = rule.update.iter().map(|u| u.metric.as_str()).collect();
    let metrics: Vec<MetricConfig> = config
        .metrics
        .iter()
        .filter(|m| updated.contains(&m.name.as_str()))
        .cloned()
        .collect();
    let families = Families::build(&metrics, &scratch);
    let before: Vec<Sample> = samples_of(&families);
    let mut alone = source.clone();
    alone.rules = vec![rule.clone()];
    let mut pipeline =
        Pipeline::build(&alone, &families, &scratch).map_err(|e| format!("{e:#}"))?;
    if source.file.is_some() {
        let ctx = RecordContext {
            file: "example",
            ..Default::default()
        };
        let mut matched = false;
        for line in example.input.lines() {
            matched |= pipeline.process_line(line, &ctx);
        }
        if !matched {
            return Err("the rule's regex matches no line of the input".into());
        }
    } else {
        let extractors = DocumentExtractors::build(std::slice::from_ref(rule))?;
        let rows = extractors
            .extract(&example.input)
            .map_err(|e| format!("the input does not parse: {e}"))?;
        if rows.iter().all(Vec::is_empty) {
            return Err("the rule matches nothing in the input".into());
        }
        pipeline.process_rows(rows);
    }
    // Series that exist before any input (label-less metrics, pre-declared label values) are
    // produced only if the input changed them.
    Ok(samples_of(&families)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect())
}

fn samples_of(families: &Families) -> Vec<Sample> {
    let text = crate::exposition::concat(families.render(), |_| true);
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| parse_sample(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_escapes_and_special_values() {
        let s = parse_sample(r#"a_total{z="1",b="x\"y\\z\n"} 2.5"#).unwrap();
        assert_eq!(s.name, "a_total");
        assert_eq!(s.labels["b"], "x\"y\\z\n");
        assert_eq!(s.series(), r#"a_total{b="x\"y\\z\n",z="1"}"#);
        assert_eq!(parse_sample("up 1").unwrap().value, 1.0);
        assert!(parse_sample("x +Inf").unwrap().value.is_infinite());
        assert!(parse_sample("x NaN").unwrap().value.is_nan());
        assert!(parse_sample("x{a=1} 1").is_err());
        assert!(parse_sample("x{a=\"1\" 1").is_err());
        assert!(parse_sample("x one").is_err());
        assert!(parse_sample("{a=\"1\"} 1").is_err());
    }
}
