//! Rules that carry their own tests: `examples:` give an input (log lines, or a document) and
//! samples the rule must make of it, like Vector's unit tests or `promtool test rules`.
//!
//! Each example runs its rule alone, through the same compiled pipeline and extractors as the
//! running exporter, on metric families made for it; the samples listed must be produced with
//! their values (samples not listed are not checked). Failures are config errors placed at the
//! example, so `check`, start-up, reload and `one-shot` all refuse a config whose rules do not
//! do what their examples say.

use std::collections::{BTreeMap, HashMap};

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
    produce_counted(config, source, rule, example).map(|(samples, _)| samples)
}

/// [`produce`], and the series the example's families held at the end: its cost.
fn produce_counted(
    config: &Config,
    source: &SourceConfig,
    rule: &RuleConfig,
    example: &RuleExample,
) -> Result<(Vec<Sample>, usize), String> {
    let scratch = SelfMetrics::new();
    let updated: Vec<&str> = rule.update.iter().map(|u| u.metric.as_str()).collect();
    let metrics: Vec<MetricConfig> = config
        .metrics
        .iter()
        .filter(|m| updated.contains(&m.name.as_str()))
        .cloned()
        .collect();
    // Pre-declared series are made as the input reaches them: an example costs what it
    // touches, not every combination of a metric's `label_values`.
    let families = Families::build_lazily(&metrics, &scratch);
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
    // produced only if the input changed them. Both sides hold only what the input touched.
    let before: HashMap<String, f64> = samples_of(&families.declared_before(&scratch))
        .iter()
        .map(|s| (s.series(), s.value))
        .collect();
    let made = samples_of(&families)
        .into_iter()
        .filter(|s| before.get(&s.series()) != Some(&s.value))
        .collect();
    Ok((made, families.iter().map(|f| f.len()).sum()))
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

    /// An example on a metric that pre-declares 300 × 300 series costs what its input
    /// touches: only those series are made (it made and compared all 90,000, twice, per
    /// example: 97 s each in a release build). Pre-declared series still count as there: one
    /// the input leaves at its initial value is not "made", and the cap keeps room for them.
    #[test]
    fn examples_on_many_pre_declared_series_touch_only_what_their_input_reaches() {
        let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        let list = values.join(", ");
        let text = format!(
            r#"version: 1
metrics:
  - name: grid_total
    type: counter
    help: Requests by a and b.
    labels: [a, b]
    max_series: 90001
    label_values: {{a: [{list}], b: [{list}]}}
  - name: grid_state
    type: state
    help: State by a and b.
    labels: [a, b]
    states: [up, down]
    max_series: 90000
    label_values: {{a: [{list}], b: [{list}]}}
sources:
  - name: log
    file: {{paths: [app.log]}}
    rules:
      - regex: '^(?P<a>\S+) (?P<b>\S+) (?P<s>\S+)$'
        update:
          - {{metric: grid_total, labels: {{a: $a, b: $b}}}}
          - {{metric: grid_state, labels: {{a: $a, b: $b}}, state: $s}}
        examples:
          - input: "v1 v2 up\nx y down\nv3 v4 down"
            samples:
              - 'grid_total{{a="v1",b="v2"}} 1'
              - 'grid_total{{a="x",b="y"}} 1'
              - 'grid_state{{a="v1",b="v2",state="up"}} 1'
              - 'grid_state{{a="v3",b="v4",state="down"}} 1'
          - input: "v5 v6 up"
            samples: ['grid_state{{a="v5",b="v6",state="down"}} 1']
          - input: "v7 v8 up"
            samples: ['grid_state{{a="x",b="y",state="up"}} 1']
"#
        );
        let config = crate::config::load_str(&text, "grid.yaml").unwrap_or_else(|e| panic!("{e}"));
        let failures = check(&config);
        assert_eq!(
            failures,
            vec![
                (
                    "sources[0].rules[0].examples[1].samples[0]".to_owned(),
                    // Pre-declared at 0, still 0: not made by the input.
                    r#"the rule did not make grid_state{a="v5",b="v6",state="down"} from the input; it made grid_state{a="v5",b="v6",state="unknown"} 0; grid_state{a="v5",b="v6",state="up"} 1"#
                        .to_owned()
                ),
                (
                    "sources[0].rules[0].examples[2].samples[0]".to_owned(),
                    // `x y` is over grid_state's cap: 90,000 pre-declared.
                    r#"the rule did not make grid_state{a="x",b="y",state="up"} from the input; it made grid_state{a="v7",b="v8",state="unknown"} 0; grid_state{a="v7",b="v8",state="up"} 1"#
                        .to_owned()
                ),
            ]
        );
        // The families an example runs on hold what its input touched, not 2 × 90,000 series.
        let rule = &config.sources[0].rules[0];
        let example = &rule.examples[0];
        let (made, held) = produce_counted(&config, &config.sources[0], rule, example).unwrap();
        assert_eq!(held, 3 + 2);
        // grid_total: 3 series at 1; grid_state (x y dropped by its cap): per state set, the
        // state's line, `unknown` and the level changed, the other state's line did not.
        assert_eq!(made.len(), 3 + 2 * 3);
    }
}
