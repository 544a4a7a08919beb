//! A suggested config before it is text: metrics, one source, its rules, and what was
//! recognised and not understood; written as YAML by [`Draft::render`] (every scalar quoted
//! so that no sample text can change the YAML's structure).

use std::fmt::Write as _;

/// One metric to declare.
#[derive(Debug, Clone, Default)]
pub struct MetricDraft {
    pub name: String,
    /// `counter`, `gauge`, `histogram` or `state`.
    pub kind: &'static str,
    pub help: String,
    pub labels: Vec<String>,
    pub states: Vec<String>,
}

/// One rule: its extractor as YAML lines (indented under the rule), `when`, updates (flow
/// mappings), and examples (input, samples).
#[derive(Debug, Clone, Default)]
pub struct RuleDraft {
    pub name: String,
    /// Why the rule is there, written as a comment above it.
    pub comment: String,
    pub extractor: Vec<String>,
    pub when: Vec<(String, String)>,
    pub updates: Vec<String>,
    pub examples: Vec<(String, Vec<String>)>,
}

/// A whole suggestion.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub metrics: Vec<MetricDraft>,
    pub source_name: String,
    /// The source's kind and settings as YAML lines, indented under `- name:`.
    pub source: Vec<String>,
    /// Whether the source is a file source (examples are file content).
    pub file_source: bool,
    pub rules: Vec<RuleDraft>,
    /// What was recognised, and why.
    pub recognised: Vec<String>,
    /// What was not understood (lines or fields left out).
    pub not_understood: Vec<String>,
}

/// YAML single-quoted text: nothing is an escape, `'` is doubled. For regexes.
pub fn sq(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// YAML double-quoted text, escaped as JSON (which YAML reads): for any sample text.
pub fn dq(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// A metric or label name from any text: lowercase, `[a-z0-9_]`, not starting with a digit or
/// `__`, never empty.
pub fn sanitize(text: &str) -> String {
    let mut out = String::new();
    let mut last_sep = true;
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            // camelCase → camel_case
            if c.is_ascii_uppercase() && prev_lower && !last_sep {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            last_sep = false;
        } else if !last_sep {
            out.push('_');
            last_sep = true;
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_owned();
    match out.chars().next() {
        None => "x".to_owned(),
        Some(c) if c.is_ascii_digit() => format!("x_{out}"),
        _ => out,
    }
}

impl Draft {
    /// The metric named `name`, declared once (a second declaration adds labels it lacked).
    pub fn metric(&mut self, m: MetricDraft) {
        if !self.metrics.iter().any(|x| x.name == m.name) {
            self.metrics.push(m);
        }
    }

    /// The config as YAML; examples only when `with_examples`.
    pub fn render(&self, with_examples: bool, header: &str) -> String {
        let mut y = String::new();
        for line in header.lines() {
            let _ = writeln!(y, "{}", format!("# {line}").trim_end());
        }
        if !self.recognised.is_empty() {
            y.push_str("#\n# Recognised:\n");
            for r in &self.recognised {
                comment_wrapped(&mut y, r);
            }
        }
        if !self.not_understood.is_empty() {
            y.push_str("#\n# Not understood (left out; add rules for them):\n");
            for r in &self.not_understood {
                comment_wrapped(&mut y, r);
            }
        }
        y.push_str("version: 1\nmetrics:\n");
        for m in &self.metrics {
            let _ = write!(
                y,
                "  - {{name: {}, type: {}, help: {}",
                m.name,
                m.kind,
                dq(&m.help)
            );
            if !m.labels.is_empty() {
                let _ = write!(y, ", labels: [{}]", m.labels.join(", "));
            }
            if !m.states.is_empty() {
                let states: Vec<String> = m.states.iter().map(|s| dq(s)).collect();
                let _ = write!(y, ", states: [{}]", states.join(", "));
            }
            y.push_str("}\n");
        }
        let _ = writeln!(y, "sources:\n  - name: {}", self.source_name);
        for l in &self.source {
            let _ = writeln!(y, "    {l}");
        }
        y.push_str("    rules:\n");
        for r in &self.rules {
            for c in r.comment.lines() {
                let _ = writeln!(y, "      # {c}");
            }
            let _ = writeln!(y, "      - name: {}", r.name);
            for l in &r.extractor {
                let _ = writeln!(y, "        {l}");
            }
            if !r.when.is_empty() {
                let w: Vec<String> = r
                    .when
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", sq(v)))
                    .collect();
                let _ = writeln!(y, "        when: {{{}}}", w.join(", "));
            }
            y.push_str("        update:\n");
            for u in &r.updates {
                let _ = writeln!(y, "          - {u}");
            }
            if with_examples && !r.examples.is_empty() {
                y.push_str("        examples:\n");
                for (input, samples) in &r.examples {
                    let _ = writeln!(y, "          - input: {}", dq(input));
                    y.push_str("            samples:\n");
                    for s in samples {
                        let _ = writeln!(y, "              - {}", sq(s));
                    }
                }
            }
        }
        y
    }
}

/// A comment list item (`#   - text`), wrapped at about 96 columns.
pub(crate) fn comment_wrapped(y: &mut String, text: &str) {
    let mut line = String::from("#   - ");
    for word in text.split(' ') {
        if line.len() + word.len() > 98 && line.len() > 6 {
            y.push_str(line.trim_end());
            y.push('\n');
            line = String::from("#     ");
        }
        line.push_str(word);
        line.push(' ');
    }
    y.push_str(line.trim_end());
    y.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prometheus_names() {
        assert_eq!(sanitize("latencyMs"), "latency_ms");
        assert_eq!(sanitize("http.status"), "http_status");
        assert_eq!(sanitize("access.log"), "access_log");
        assert_eq!(sanitize("9lives"), "x_9lives");
        assert_eq!(sanitize("--"), "x");
        assert_eq!(sanitize("Service Name"), "service_name");
    }

    #[test]
    fn quoting_keeps_any_text_a_scalar() {
        assert_eq!(sq("it's"), "'it''s'");
        assert_eq!(dq("a\n\"b\"\t"), r#""a\n\"b\"\t""#);
    }
}
