//! grok_exporter's config (versions 2 and 3) as one `file` source whose rules are its
//! metrics: `match` → `grok:`, label templates (`{{.field}}`, `{{.logfile}}`,
//! `{{base .logfile}}`) → update labels (`$field`, `$__file__`, a `derive`), `value` →
//! `add`/`set`/`observe` (`{{multiply .v F}}` and `{{divide .v D}}` → `scale`), `retention` →
//! `expire_after`, `buckets` kept, summaries as histograms.
//!
//! Grok patterns: the config's own are kept; those it imports (`imports` of `grok_patterns`,
//! or version 2's `patterns_dir`) are read from their directory or files, and the ones the
//! metrics use that are not bundled here are copied into `grok_patterns` (the bundled ones
//! are adapted to the regex crate, so they are preferred). Not converted: inputs other than
//! files, `line_delimiter`, per-metric paths, `delete_match`, other template functions,
//! summaries' quantiles, the server section (flags here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{dq, text, unknown_keys, Metric, Migrated};

const METRIC_KEYS: &[&str] = &[
    "type",
    "name",
    "help",
    "match",
    "labels",
    "value",
    "cumulative",
    "buckets",
    "quantiles",
    "max_age",
    "retention",
];

/// Converts a grok_exporter config; `dirs` are where relative pattern paths are looked for.
pub(super) fn convert(config: &Value, dirs: &[PathBuf]) -> Result<Migrated, String> {
    let metrics = config
        .get("metrics")
        .and_then(Value::as_array)
        .ok_or("not a grok_exporter config: no `metrics` list")?;
    let mut out = Migrated::default();
    for key in unknown_keys(
        config,
        &[
            "global",
            "input",
            "imports",
            "grok",
            "grok_patterns",
            "metrics",
            "server",
        ],
    ) {
        out.not_converted.push(format!("top-level `{key}`"));
    }
    if let Some(r) = config
        .get("global")
        .and_then(|g| g.get("retention_check_interval"))
    {
        out.notes.push(format!(
            "global.retention_check_interval ({}): idle series are looked for every second here",
            text(r).unwrap_or_default()
        ));
    }

    // Patterns: the config's own, then what it imports.
    let mut own: BTreeMap<String, String> = BTreeMap::new();
    let additional = config.get("grok_patterns").or_else(|| {
        config
            .get("grok")
            .and_then(|g| g.get("additional_patterns"))
    });
    for p in additional.and_then(Value::as_array).into_iter().flatten() {
        if let Some((name, def)) = text(p).as_deref().and_then(|t| t.trim().split_once(' ')) {
            own.insert(name.to_owned(), def.trim().to_owned());
        }
    }
    let mut imported: BTreeMap<String, String> = BTreeMap::new();
    let mut import_dirs: Vec<String> = Vec::new();
    if let Some(d) = config
        .get("grok")
        .and_then(|g| g.get("patterns_dir"))
        .and_then(text)
    {
        import_dirs.push(d);
    }
    for (i, imp) in config
        .get("imports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match imp.get("type").and_then(Value::as_str) {
            Some("grok_patterns") => {
                if let Some(d) = imp.get("dir").and_then(text) {
                    import_dirs.push(d);
                }
                if let Some(f) = imp.get("file").and_then(text) {
                    match find(&f, dirs) {
                        Some(p) => read_patterns(&p, &mut imported),
                        None => out.not_converted.push(format!(
                            "imports[{i}]: pattern file {f} not found (looked in {})",
                            shown(dirs)
                        )),
                    }
                }
            }
            _ => out.not_converted.push(format!(
                "imports[{i}]: only grok pattern imports are read; put imported metrics in this file"
            )),
        }
    }
    for d in &import_dirs {
        match find(d, dirs).filter(|p| p.is_dir()) {
            Some(dir) => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                files.sort();
                for f in files {
                    read_patterns(&f, &mut imported);
                }
            }
            None => out.not_converted.push(format!(
                "grok patterns directory {d} not found (looked in {}): patterns the metrics use from it that are not bundled are missing",
                shown(dirs)
            )),
        }
    }

    // The source.
    let input = config.get("input").cloned().unwrap_or(Value::Null);
    let kind = input.get("type").and_then(Value::as_str).unwrap_or("file");
    let mut source = String::from("- name: grok_exporter\n  file:\n");
    if kind != "file" {
        out.not_converted.push(format!(
            "input.type {kind}: only files are read here (and HTTP pages, commands, status files); the rules below need a file source"
        ));
    }
    let mut paths: Vec<String> = input
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(text)
        .collect();
    if let Some(p) = input.get("path").and_then(text) {
        paths.insert(0, p);
    }
    if paths.is_empty() {
        out.not_converted
            .push("input: no path; set the file source's `paths`".into());
        paths.push("/var/log/CHANGE-ME.log".into());
    }
    let quoted: Vec<String> = paths.iter().map(|p| dq(p)).collect();
    source.push_str(&format!("    paths: [{}]\n", quoted.join(", ")));
    if paths.iter().any(|p| !p.starts_with('/')) {
        out.notes.push("relative paths are relative to this config file here, not to the working directory as in grok_exporter".into());
    }
    if input.get("readall").and_then(Value::as_bool) == Some(true) {
        source.push_str("    start_at: beginning   # readall: true\n");
    }
    if let Some(p) = input.get("poll_interval").and_then(text) {
        source.push_str(&format!("    poll_interval: {p}\n    watch: false\n"));
    }
    for key in unknown_keys(
        &input,
        &[
            "type",
            "path",
            "paths",
            "readall",
            "poll_interval",
            "fail_on_missing_logfile",
        ],
    ) {
        out.not_converted.push(format!("input.{key}"));
    }
    if input.get("fail_on_missing_logfile").is_some() {
        out.notes.push("input.fail_on_missing_logfile: a path that matches no file yet is waited for; `one-shot` exits 3 when a source matched no file".into());
    }
    if let Some(server) = config.get("server") {
        let port = server.get("port").and_then(text).unwrap_or("9144".into());
        let host = server.get("host").and_then(text).unwrap_or_default();
        out.notes.push(format!(
            "server: run with --web.listen-address={host}:{port} (the default here is :9847); TLS and auth go in --web.config.file"
        ));
    }

    // Rules.
    let mut used: BTreeSet<String> = BTreeSet::new();
    source.push_str("  rules:\n");
    let mut rules = 0;
    for (i, m) in metrics.iter().enumerate() {
        match metric_rule(&mut out, &format!("metrics[{i}]"), m, &mut used) {
            Ok(rule) => {
                rules += 1;
                for line in rule.lines() {
                    source.push_str(&format!("    {line}\n"));
                }
            }
            Err(why) => out.not_converted.push(why),
        }
    }
    if rules == 0 {
        source.push_str("    []\n");
    }
    out.sources.push(source);

    // The patterns the rules need: own ones, and imported ones not bundled, transitively.
    for name in own.keys() {
        used.extend(crate::grok::references(&own[name]));
    }
    out.grok_patterns = own.clone();
    let mut todo: Vec<String> = used.into_iter().collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || own.contains_key(&name) || crate::grok::is_bundled(&name) {
            continue;
        }
        match imported.get(&name) {
            Some(def) => {
                todo.extend(crate::grok::references(def));
                out.grok_patterns.insert(name, def.clone());
            }
            None => out.not_converted.push(format!(
                "grok pattern {name} is neither bundled nor found in the imports: add it to grok_patterns"
            )),
        }
    }
    let copied: Vec<&String> = out
        .grok_patterns
        .keys()
        .filter(|k| !own.contains_key(*k))
        .collect();
    if !copied.is_empty() {
        let names: Vec<&str> = copied.iter().map(|s| s.as_str()).collect();
        out.notes.push(format!(
            "grok patterns copied from the imports (not bundled here): {}",
            names.join(", ")
        ));
    }
    Ok(out)
}

fn shown(dirs: &[PathBuf]) -> String {
    let d: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    d.join(" and ")
}

/// `path`, or the first of `dirs` joined with it that exists.
fn find(path: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    dirs.iter().map(|d| d.join(p)).find(|p| p.exists())
}

/// `NAME definition` lines of a pattern file; `#` comments and blank lines skipped.
fn read_patterns(path: &Path, into: &mut BTreeMap<String, String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, def)) = line.split_once(char::is_whitespace) {
            into.entry(name.to_owned())
                .or_insert_with(|| def.trim().to_owned());
        }
    }
}

/// A Go template of grok_exporter (`{{.field}}`, text around it) as a template here;
/// `derive_logfile` is set when it used `{{base .logfile}}`.
fn label_template(t: &str, derive_logfile: &mut bool) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        out.push_str(&super::literal(&rest[..open]));
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in {t:?}"))?;
        let action = after[..close].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            [".logfile"] => out.push_str("${__file__}"),
            ["base", ".logfile"] => {
                *derive_logfile = true;
                out.push_str("${logfile}");
            }
            [field] if field.starts_with('.') && is_name(&field[1..]) => {
                out.push_str(&format!("${{{}}}", &field[1..]))
            }
            _ => return Err(format!("the template action {{{{{action}}}}}")),
        }
        rest = &after[close + 2..];
    }
    out.push_str(&super::literal(rest));
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A value template: one field, optionally multiplied or divided by a constant. (field, scale)
fn value_template(t: &str) -> Result<(String, Option<f64>), String> {
    let t = t.trim();
    let inner = t
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .ok_or_else(|| format!("value {t:?} is not one template action"))?
        .trim_matches(|c: char| c == '-' || c.is_whitespace());
    let words: Vec<&str> = inner.split_whitespace().collect();
    let field = |w: &str| {
        w.strip_prefix('.')
            .filter(|f| is_name(f))
            .map(str::to_owned)
            .ok_or_else(|| format!("value {t:?}"))
    };
    match words.as_slice() {
        [f] => Ok((field(f)?, None)),
        ["multiply", f, n] => Ok((
            field(f)?,
            Some(n.parse().map_err(|_| format!("value {t:?}"))?),
        )),
        ["divide", f, n] => {
            let d: f64 = n.parse().map_err(|_| format!("value {t:?}"))?;
            if d == 0.0 {
                return Err(format!("value {t:?} divides by 0"));
            }
            Ok((field(f)?, Some(1.0 / d)))
        }
        _ => Err(format!(
            "value {t:?}: only {{{{.field}}}}, multiply and divide are converted"
        )),
    }
}

/// A metric as a rule (YAML, unindented), its metric declared; the grok patterns its match
/// uses are added to `used`.
fn metric_rule(
    out: &mut Migrated,
    at: &str,
    m: &Value,
    used: &mut BTreeSet<String>,
) -> Result<String, String> {
    let get = |k: &str| m.get(k).and_then(text);
    let name = get("name").ok_or_else(|| format!("{at}: a metric without a name"))?;
    let at = format!("{at} ({name})");
    let kind = get("type").unwrap_or_default();
    let grok = get("match").ok_or_else(|| format!("{at}: no `match`"))?;
    for key in unknown_keys(m, METRIC_KEYS) {
        out.not_converted.push(format!("{at}.{key}"));
    }
    let (decl_kind, mut metric) = match kind.as_str() {
        "counter" => ("counter", name.clone()),
        "gauge" => ("gauge", name.clone()),
        "histogram" => ("histogram", name.clone()),
        "summary" => {
            out.not_converted.push(format!(
                "{at}: a summary becomes a histogram (there are no summaries here; histogram_quantile() gives quantiles over any window); `quantiles` and `max_age` are dropped"
            ));
            ("histogram", name.clone())
        }
        other => return Err(format!("{at}: metric type {other:?}")),
    };
    if decl_kind == "counter" && !metric.ends_with("_total") {
        metric.push_str("_total");
        out.notes.push(format!(
            "{at}: counters are named `…_total` here: {name} is {metric}"
        ));
    }
    let metric = super::acceptable_name(out, &at, metric);
    let mut derive_logfile = false;
    let mut labels: Vec<(String, String)> = Vec::new();
    for (label, v) in m
        .get("labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let t = text(v).unwrap_or_default();
        match label_template(&t, &mut derive_logfile) {
            Ok(value) => labels.push((label.clone(), value)),
            Err(why) => out.not_converted.push(format!(
                "{at}.labels.{label}: {why} has no equivalent; the label is left out"
            )),
        }
    }
    let mut op = String::new();
    if let Some(v) = get("value") {
        let (field, scale) = value_template(&v).map_err(|e| format!("{at}: {e}"))?;
        let verb = match decl_kind {
            "counter" => "add",
            "gauge" if m.get("cumulative").and_then(Value::as_bool) == Some(true) => "add",
            "gauge" => "set",
            _ => "observe",
        };
        op = format!(", {verb}: ${field}");
        if let Some(s) = scale {
            op.push_str(&format!(", scale: {s}"));
        }
    } else if decl_kind != "counter" {
        return Err(format!("{at}: a {kind} needs a `value`"));
    }
    let buckets = m.get("buckets").and_then(Value::as_array).map(|b| {
        b.iter()
            .filter_map(|v| v.as_f64().or_else(|| text(v)?.parse().ok()))
            .collect()
    });
    let declared = out.metric(Metric {
        name: metric.clone(),
        kind: decl_kind,
        help: get("help")
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| name.clone()),
        labels: labels.iter().map(|(l, _)| l.clone()).collect(),
        buckets,
        expire_after: get("retention"),
    });
    if !declared {
        return Err(format!("{at}: left out"));
    }
    used.extend(crate::grok::references(&grok));
    let mut r = format!(
        "- name: {}\n  grok: {}\n",
        super::sanitize(&name),
        super::sq(&grok)
    );
    if derive_logfile {
        r.push_str("  derive:\n    - {from: $__file__, regex: '(?P<logfile>[^/]+)$'}   # {{base .logfile}}\n");
    }
    r.push_str("  update:\n");
    let mut u = format!("    - {{metric: {metric}");
    if !labels.is_empty() {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}: {}", dq(v)))
            .collect();
        u.push_str(&format!(", labels: {{{}}}", l.join(", ")));
    }
    u.push_str(&op);
    u.push_str("}\n");
    r.push_str(&u);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_become_templates() {
        let mut d = false;
        assert_eq!(
            label_template("{{.message}}", &mut d).unwrap(),
            "${message}"
        );
        assert_eq!(label_template("x-{{ .a }}$", &mut d).unwrap(), "x-${a}$$");
        assert!(!d);
        assert_eq!(
            label_template("{{base .logfile}}", &mut d).unwrap(),
            "${logfile}"
        );
        assert!(d);
        assert_eq!(
            label_template("{{.logfile}}", &mut d).unwrap(),
            "${__file__}"
        );
        assert!(label_template("{{gsub .a \"x\" \"y\"}}", &mut d).is_err());
        assert_eq!(value_template("{{.val}}").unwrap(), ("val".into(), None));
        assert_eq!(
            value_template("{{divide .ms 1000}}").unwrap(),
            ("ms".into(), Some(0.001))
        );
        assert_eq!(
            value_template("{{multiply .s 2}}").unwrap(),
            ("s".into(), Some(2.0))
        );
    }
}
