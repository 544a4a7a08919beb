//! Rules that carry their own tests: `examples:` give an input (log lines, or a document) and
//! samples the rule must make of it, like Vector's unit tests or `promtool test rules`.
//!
//! On a file source the input is file content: its lines go through the source's record stage
//! (`format`, `multiline`) with the same [`Assembler`] a followed file has, so an example can
//! hold raw CRI lines with their `P`/`F` parts or a whole stack trace, and `$__stream__` and
//! `$__time__` read what the running exporter would give.
//!
//! Each example runs its rule alone, through the same compiled pipeline and extractors as the
//! running exporter, on metric families made for it; the samples listed must be produced with
//! their values (samples not listed are not checked). Failures are config errors placed at the
//! example, so `check`, start-up, reload and `one-shot` all refuse a config whose rules do not
//! do what their examples say.

use std::collections::{BTreeMap, HashMap};

use crate::config::{
    Config, FileFormat, FileSourceConfig, MetricConfig, RuleConfig, RuleExample, SourceConfig,
    SourceKind, DEFAULT_MAX_LINE_LENGTH,
};
use crate::extract::document::DocumentExtractors;
use crate::pipeline::{Pipeline, RecordContext};
use crate::registry::Families;
use crate::selfmetrics::{RecordErrorReason, SelfMetrics};
use crate::source::records::{Assembled, Assembler, Framing};

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

/// The samples `rule` (of `source`, in `config`) alone makes of `input`, as `/metrics`
/// writes them (`name{label="value"} value`, labels in name order), or why it makes none;
/// what an example of that input would check. `suggest` writes its examples with it.
pub fn samples_made(
    config: &Config,
    source: &SourceConfig,
    rule: &RuleConfig,
    input: &str,
) -> Result<Vec<String>, String> {
    let example = RuleExample {
        input: input.to_owned(),
        samples: Vec::new(),
    };
    produce(config, source, rule, &example).map(|samples| {
        samples
            .into_iter()
            .map(|s| format!("{} {}", s.series(), s.value))
            // Only samples an example can state: their text reads back as themselves (a
            // label value with a tab or an escape does not).
            .filter(|text| {
                parse_sample(text).is_ok_and(|p| format!("{} {}", p.series(), p.value) == *text)
            })
            .collect()
    })
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
    match source.kind().map_err(|e| e.to_string())? {
        SourceKind::File(file) => {
            let records = records_of(file, &example.input)?;
            let mut matched = false;
            for r in &records {
                let ctx = RecordContext {
                    file: "example",
                    generation: None,
                    stream: r.stream.as_deref(),
                    time: r.time.as_deref(),
                };
                matched |= pipeline.process_line(&r.text, &ctx);
            }
            if !matched {
                return Err(no_record_matched(file, &records));
            }
        }
        SourceKind::Http(_)
        | SourceKind::Command(_)
        | SourceKind::StatusFile(_)
        | SourceKind::Socket(_) => {
            let extractors = DocumentExtractors::build(std::slice::from_ref(rule))?;
            let rows = extractors
                .extract(&example.input)
                .map_err(|e| format!("the input does not parse: {e}"))?;
            if rows.iter().all(Vec::is_empty) {
                return Err("the rule matches nothing in the input".into());
            }
            pipeline.process_rows(rows);
        }
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

/// A record of an example's input, as the file source's record stage makes it.
#[derive(Debug, Clone, PartialEq)]
struct ExampleRecord {
    text: String,
    stream: Option<String>,
    time: Option<String>,
}

/// The records a file source makes of `input` as file content: its lines (without `\n` and a
/// `\r` before it), through the same [`Assembler`] as a followed file when the source has
/// `format` or `multiline` (container lines unwrapped, partial lines merged per stream,
/// multi-line records joined), then the file's end (what is held is emitted). A line that is
/// not in the source's container format is an error, not a skip: an example written as
/// unwrapped text would otherwise test nothing.
fn records_of(file: &FileSourceConfig, input: &str) -> Result<Vec<ExampleRecord>, String> {
    let max_line_length = file.max_line_length.unwrap_or(DEFAULT_MAX_LINE_LENGTH);
    let lines = input_lines(input);
    let Some(framing) = Framing::from_config(file, max_line_length) else {
        return Ok(lines
            .iter()
            .map(|(_, line)| ExampleRecord {
                text: (*line).to_owned(),
                stream: None,
                time: None,
            })
            .collect());
    };
    let format = framing.format();
    let mut assembler = Assembler::new(framing);
    let mut records = Vec::new();
    let mut bad: Option<(usize, RecordErrorReason)> = None;
    let line_no = std::cell::Cell::new(0);
    let mut emit = |a: Assembled| match a {
        Assembled::Record { text, stream, time } => records.push(ExampleRecord {
            text: text.to_owned(),
            stream: stream.map(str::to_owned),
            time: time.map(str::to_owned),
        }),
        Assembled::Error(
            reason @ (RecordErrorReason::NotCri | RecordErrorReason::NotDockerJson),
        ) => {
            bad.get_or_insert((line_no.get(), reason));
        }
        // Cut records and extra streams are what the source does too: examples may show it.
        Assembled::Error(_) => {}
    };
    for (i, (from, line)) in lines.iter().enumerate() {
        line_no.set(i + 1);
        assembler.push(line, *from, &mut emit);
    }
    assembler.finish(&mut emit);
    if let Some((n, _)) = bad {
        let (name, shape) = match format {
            FileFormat::Docker => ("docker", r#"{"log":"text\n","stream":"stdout","time":"…"}"#),
            _ => ("cri", "<time> <stream> <P|F> <text>"),
        };
        return Err(format!(
            "line {n} of the input is not in the source's `format: {name}` ({shape}): an \
             example's input is the file's content, lines as the runtime writes them"
        ));
    }
    Ok(records)
}

/// The input's lines with the offset each starts at, as the line splitter cuts a file: at
/// `\n`, without a `\r` before it; a last line without `\n` is a line.
fn input_lines(input: &str) -> Vec<(u64, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    for piece in input.split_inclusive('\n') {
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push((from as u64, line));
        from += piece.len();
    }
    out
}

/// Why no record matched, with what the records were when the record stage made them
/// (a multi-line record or a merged line is rarely what the author pictured).
fn no_record_matched(file: &FileSourceConfig, records: &[ExampleRecord]) -> String {
    let framed = file.format != FileFormat::Plain || file.multiline.is_some();
    if !framed {
        return "the rule's regex matches no line of the input".into();
    }
    let mut how = Vec::new();
    if file.format != FileFormat::Plain {
        how.push(match file.format {
            FileFormat::Docker => "`format: docker`",
            _ => "`format: cri`",
        });
    }
    if file.multiline.is_some() {
        how.push("`multiline`");
    }
    let first = records.first().map_or(String::new(), |r| {
        let mut text: String = r.text.chars().take(120).collect();
        if text.len() < r.text.len() {
            text.push('…');
        }
        format!("; the first is {text:?}")
    });
    format!(
        "the rule matches none of the {} record{} the source's {} made of the input{first}",
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        how.join(" and ")
    )
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

    fn failures_of(yaml: &str) -> Vec<(String, String)> {
        let config =
            crate::config::load_str(yaml, "records.yaml").unwrap_or_else(|e| panic!("{e}"));
        check(&config)
    }

    /// CRI lines as the runtime writes them: `P` parts merged up to the `F` per stream (the
    /// stderr line between them is its own record), `$__stream__` and `$__time__` those of
    /// the merged line's first part. Before records, each raw line was one record: the
    /// example could not be written.
    #[test]
    fn examples_on_cri_sources_read_raw_lines_with_partials_merged() {
        let yaml = r#"version: 1
metrics:
  - {name: app_records_total, type: counter, help: Records., labels: [stream, level, time]}
sources:
  - name: pods
    file: {paths: [pods.log], format: cri}
    rules:
      - regex: '^level=(?P<level>\w+) msg="[^"]*"$'
        update:
          - {metric: app_records_total, labels: {stream: $__stream__, level: $level, time: $__time__}}
        examples:
          - input: |
              2026-11-28T10:00:00.000000001Z stdout P level=info msg="a long
              2026-11-28T10:00:00.000000002Z stderr F level=error msg="boom"
              2026-11-28T10:00:00.000000003Z stdout P  line split
              2026-11-28T10:00:00.000000004Z stdout F  in three"
            samples:
              - 'app_records_total{stream="stdout",level="info",time="2026-11-28T10:00:00.000000001Z"} 1'
              - 'app_records_total{stream="stderr",level="error",time="2026-11-28T10:00:00.000000002Z"} 1'
"#;
        assert_eq!(failures_of(yaml), vec![]);
    }

    /// Docker's json-file: a `log` without its `\n` is a partial line, merged with the next
    /// ones of its stream.
    #[test]
    fn examples_on_docker_sources_read_json_file_lines() {
        let yaml = r#"version: 1
metrics:
  - {name: app_requests_total, type: counter, help: Requests., labels: [stream, status]}
sources:
  - name: containers
    file: {paths: [c-json.log], format: docker}
    rules:
      - json: {fields: {status: "$.status"}}
        update:
          - {metric: app_requests_total, labels: {stream: $__stream__, status: $status}}
        examples:
          - input: |
              {"log":"{\"status\":","stream":"stdout","time":"2026-11-28T10:00:00Z"}
              {"log":"201}\n","stream":"stdout","time":"2026-11-28T10:00:01Z"}
              {"log":"{\"status\":500}\n","stream":"stderr","time":"2026-11-28T10:00:02Z"}
            samples:
              - 'app_requests_total{stream="stdout",status="201"} 1'
              - 'app_requests_total{stream="stderr",status="500"} 1'
"#;
        assert_eq!(failures_of(yaml), vec![]);
    }

    /// A whole Python traceback is one record under `multiline`: the exception of the record
    /// is counted once, with the level of the line that logged it.
    #[test]
    fn examples_on_multiline_sources_read_whole_tracebacks() {
        let yaml = r#"version: 1
metrics:
  - {name: app_exceptions_total, type: counter, help: Exceptions., labels: [level, exception]}
sources:
  - name: app
    file:
      paths: [app.log]
      multiline: {start: '^\d{4}-\d\d-\d\d '}
    rules:
      - regex: '(?s)^\S+ \S+ (?P<level>[A-Z]+) .*\nTraceback \(most recent call last\):\n.*\n(?P<exception>[A-Za-z_][\w.]*)(?::[^\n]*)?$'
        update:
          - {metric: app_exceptions_total, labels: {level: $level, exception: $exception}}
        examples:
          - input: |
              2026-11-28 10:00:00,001 ERROR app: lookup failed
              Traceback (most recent call last):
                File "app.py", line 3, in <module>
                  d["x"]
              KeyError: 'x'
              2026-11-28 10:00:00,002 INFO app: fine
              2026-11-28 10:00:00,003 ERROR app: lookup failed again
              Traceback (most recent call last):
                File "app.py", line 5, in <module>
                  d["x"]
              KeyError: 'x'
            samples: ['app_exceptions_total{level="ERROR",exception="KeyError"} 2']
"#;
        assert_eq!(failures_of(yaml), vec![]);
    }

    /// Unwrapped text on a CRI source says what is wrong with it; a rule that matches no
    /// record says what the records were.
    #[test]
    fn examples_on_record_sources_say_why_nothing_matched() {
        let yaml = r#"version: 1
metrics:
  - {name: app_errors_total, type: counter, help: Errors.}
sources:
  - name: pods
    file: {paths: [pods.log], format: cri}
    rules:
      - regex: '^ERROR'
        update: [{metric: app_errors_total}]
        examples:
          - input: "ERROR one"
            samples: ['app_errors_total 1']
          - input: "2026-11-28T10:00:00Z stdout P ERR\n2026-11-28T10:00:01Z stdout F OR two"
            samples: ['app_errors_total 1']
          - input: "2026-11-28T10:00:00Z stdout F WARN three"
            samples: ['app_errors_total 1']
"#;
        assert_eq!(
            failures_of(yaml),
            vec![
                (
                    "sources[0].rules[0].examples[0].input".to_owned(),
                    "line 1 of the input is not in the source's `format: cri` (<time> <stream> <P|F> <text>): an example's input is the file's content, lines as the runtime writes them".to_owned()
                ),
                (
                    "sources[0].rules[0].examples[2].input".to_owned(),
                    r#"the rule matches none of the 1 record the source's `format: cri` made of the input; the first is "WARN three""#.to_owned()
                ),
            ]
        );
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
