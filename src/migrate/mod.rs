//! `quarry_exporter migrate --from json_exporter|grok_exporter|mtail FILE`: another exporter's
//! config (or what maps directly of an mtail program) turned into an `exporter.yaml` that
//! passes `check`, with what could not be converted said in comments at its top.
//!
//! Each converter reads the other program's YAML (through [`crate::config::read_foreign_yaml`],
//! so serde_yaml stays in one file; mtail's programs through their own tokenizer) into a
//! [`Migrated`]: metrics, grok patterns, sources and
//! modules as YAML blocks, and notes. [`migrate`] renders it and loads the result as `check`
//! would: a config that would not load is never printed as if it were fine (its errors are
//! added as comments, and the command fails).

mod grok_exporter;
mod json_exporter;
mod mtail;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::suggest::draft::comment_wrapped;
pub(crate) use crate::suggest::draft::{dq, sanitize, sq};

/// The programs whose configs `migrate` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// prometheus-community/json_exporter: `modules` of JSONPath metrics, probed with
    /// `/probe?module=M&target=URL`.
    JsonExporter,
    /// fstab/grok_exporter (config versions 2 and 3): one input, grok metrics.
    GrokExporter,
    /// google/mtail: a program (what can be converted of it).
    Mtail,
}

impl From {
    /// The program's name as `--from` takes it.
    pub fn name(self) -> &'static str {
        match self {
            From::JsonExporter => "json_exporter",
            From::GrokExporter => "grok_exporter",
            From::Mtail => "mtail",
        }
    }

    /// From `--from`'s text.
    pub fn parse(text: &str) -> Option<From> {
        match text {
            "json_exporter" => Some(From::JsonExporter),
            "grok_exporter" => Some(From::GrokExporter),
            "mtail" => Some(From::Mtail),
            _ => None,
        }
    }
}

/// A metric to declare.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metric {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub help: String,
    pub labels: Vec<String>,
    pub buckets: Option<Vec<f64>>,
    pub expire_after: Option<String>,
}

/// A converted config before it is text.
#[derive(Debug, Default)]
pub(crate) struct Migrated {
    pub metrics: Vec<Metric>,
    pub grok_patterns: BTreeMap<String, String>,
    /// Entries of `sources:`, each a YAML block starting with `- name:` (unindented).
    pub sources: Vec<String>,
    /// Entries of `modules:`, likewise.
    pub modules: Vec<String>,
    /// What was converted and how, for the header.
    pub notes: Vec<String>,
    /// What was not converted, for the header.
    pub not_converted: Vec<String>,
}

impl Migrated {
    /// Declares `m`, unless a metric of that name is declared: then the first declaration
    /// stays, and a different one is noted as not converted.
    pub fn metric(&mut self, m: Metric) -> bool {
        match self.metrics.iter().find(|x| x.name == m.name) {
            None => {
                self.metrics.push(m);
                true
            }
            Some(x) if x.kind == m.kind && x.labels == m.labels => true,
            Some(_) => {
                self.not_converted.push(format!(
                    "metric {:?} is declared again with another type or other labels; the first declaration is kept, and the later metric left out",
                    m.name
                ));
                false
            }
        }
    }

    fn render(&self, from: From, file: &str) -> String {
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# Migrated from {} {} {file} by `quarry_exporter migrate`.",
            from.name(),
            if from == From::Mtail {
                "program"
            } else {
                "config"
            }
        );
        y.push_str("# Check it (`quarry_exporter check`), then compare it with the old exporter on the same input.\n");
        if !self.notes.is_empty() {
            y.push_str("#\n# Converted:\n");
            for n in &self.notes {
                comment_wrapped(&mut y, n);
            }
        }
        y.push_str("#\n# Not converted:\n");
        if self.not_converted.is_empty() {
            comment_wrapped(&mut y, "nothing: every setting read has an equivalent here");
        }
        for n in &self.not_converted {
            comment_wrapped(&mut y, n);
        }
        y.push_str("version: 1\n");
        if !self.grok_patterns.is_empty() {
            y.push_str("grok_patterns:\n");
            for (name, definition) in &self.grok_patterns {
                let _ = writeln!(y, "  {name}: {}", dq(definition));
            }
        }
        y.push_str("metrics:\n");
        if self.metrics.is_empty() {
            y.push_str("  []\n");
        }
        for m in &self.metrics {
            let _ = writeln!(y, "  - name: {}", m.name);
            let _ = writeln!(y, "    type: {}", m.kind);
            let _ = writeln!(y, "    help: {}", dq(&m.help));
            if !m.labels.is_empty() {
                let _ = writeln!(y, "    labels: [{}]", m.labels.join(", "));
            }
            if let Some(b) = &m.buckets {
                let b: Vec<String> = b.iter().map(|v| v.to_string()).collect();
                let _ = writeln!(y, "    buckets: [{}]", b.join(", "));
            }
            if let Some(e) = &m.expire_after {
                let _ = writeln!(y, "    expire_after: {e}");
            }
        }
        for (key, blocks) in [("sources", &self.sources), ("modules", &self.modules)] {
            if blocks.is_empty() {
                continue;
            }
            let _ = writeln!(y, "{key}:");
            for b in blocks {
                for line in b.lines() {
                    let _ = writeln!(y, "  {line}");
                }
            }
        }
        // Lines of blocks that were empty got two trailing spaces.
        y.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
    }
}

/// `name` as this exporter accepts it: a name ending in `_bucket`, `_sum` or `_count` (kept
/// for histogram series here, whatever the metric's type) gets `_value` after it, a name in
/// the `quarry_` or `process_` namespace (the exporter's own) `x_` before it; a note says so.
pub(crate) fn acceptable_name(out: &mut Migrated, at: &str, name: String) -> String {
    let mut fixed = name.clone();
    if ["_bucket", "_sum", "_count"]
        .iter()
        .any(|s| fixed.ends_with(s))
    {
        fixed.push_str("_value");
    }
    if fixed.starts_with("quarry_") || fixed.starts_with("process_") {
        fixed.insert_str(0, "x_");
    }
    if fixed != name {
        out.notes.push(format!(
            "{at}: {name} is named {fixed} here (names ending in _bucket, _sum or _count are kept for histograms, quarry_ and process_ for the exporter's own metrics): change queries and dashboards that use it"
        ));
    }
    fixed
}

/// `text` as literal template text: `$` doubled.
pub(crate) fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// The result of a migration: the config's text, and whether it loads as `check` loads it.
pub struct Outcome {
    /// The config, with comments.
    pub yaml: String,
    /// The errors `check` would report (empty when it passes).
    pub errors: Vec<String>,
}

/// Converts the config in `text` (read from `file`, relative paths in it resolved from
/// `cwd`, where the other exporter would have run, then from the file's directory).
pub fn migrate(from: From, text: &str, file: &Path, cwd: &Path) -> Result<Outcome, String> {
    let dirs = [
        cwd.to_path_buf(),
        file.parent().unwrap_or(Path::new(".")).to_path_buf(),
    ];
    let migrated = match from {
        From::JsonExporter => json_exporter::convert(&crate::config::read_foreign_yaml(text)?)?,
        From::GrokExporter => {
            grok_exporter::convert(&crate::config::read_foreign_yaml(text)?, &dirs)?
        }
        From::Mtail => {
            let program = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "mtail".into());
            mtail::convert(text, &program)?
        }
    };
    let mut yaml = migrated.render(from, &file.display().to_string());
    let errors: Vec<String> = match crate::config::load_str(&yaml, "migrated.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    };
    if !errors.is_empty() {
        let mut head =
            String::from("# NOT READY: `check` refuses this config as it is; fix these first:\n");
        for e in &errors {
            comment_wrapped(&mut head, e);
        }
        yaml = head + &yaml;
    }
    Ok(Outcome { yaml, errors })
}

/// A YAML scalar of the other config as text (numbers and booleans as written).
pub(crate) fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The keys of a mapping that are not in `known`, for "not converted" notes.
pub(crate) fn unknown_keys(v: &serde_json::Value, known: &[&str]) -> Vec<String> {
    v.as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// json_exporter's `http_client_config` (Prometheus' HTTP client config) carries over
    /// under the same names; inline secrets are said, not converted.
    #[test]
    fn http_client_config_carries_over_and_inline_secrets_are_said() {
        let text = r#"
modules:
  api:
    http_client_config:
      basic_auth: {username: u, password_file: /run/p}
      tls_config: {ca_file: ca.pem, server_name: api.internal, insecure_skip_verify: false}
      proxy_url: "http://proxy:3128"
      follow_redirects: false
      http_headers: {X-Key: {files: [/run/key], secrets: [abc]}}
      bearer_token: inline
      enable_http2: true
    valid_status_codes: [200, 203]
    metrics:
      - {name: up_total, path: '{.up}', valuetype: counter, help: Ups.}
  oauth:
    http_client_config:
      oauth2: {client_id: me, client_secret_file: /run/s, token_url: "https://auth/token", scopes: [a, b]}
      authorization: {type: Bearer, credentials_file: /run/t}
    metrics:
      - {name: v, path: '{.v}'}
"#;
        let out = migrate(
            From::JsonExporter,
            text,
            Path::new("config.yml"),
            Path::new("."),
        )
        .unwrap();
        let y = &out.yaml;
        for want in [
            r#"basic_auth: {username: "u", password_file: "/run/p"}"#,
            r#"tls: {ca_file: "ca.pem", insecure_skip_verify: false, server_name: "api.internal"}"#,
            r#"proxy_url: "http://proxy:3128""#,
            "follow_redirects: false",
            r#"http_headers: {"X-Key": {values: [], files: ["/run/key"]}}"#,
            "accept_status: [200, 203]",
            r#"oauth2: {client_id: "me", client_secret_file: "/run/s", token_url: "https://auth/token", scopes: ["a", "b"]}"#,
            "{metric: up_total, total: $value, as: number_or_bool}",
            "modules.api.http_client_config.bearer_token: secrets come from files here",
            "modules.api.http_client_config.http_headers.X-Key.secrets",
        ] {
            assert!(y.contains(want), "{want:?} not in:\n{y}");
        }
        // Basic auth and a bearer token file together are refused by `check`, and said.
        assert_eq!(
            out.errors,
            ["modules[1].http.oauth2: give one of basic_auth, bearer_token_file and oauth2, not several"],
            "{y}"
        );
    }
}
