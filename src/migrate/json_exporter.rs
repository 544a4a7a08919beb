//! json_exporter's `modules` as probe modules: each module is fetched from the whole-URL
//! target (`url: "$target"`, json_exporter's `/probe?module=M&target=URL`), each metric is a
//! `json:` rule, with kubectl-style JSONPath (`{ .values[?(@.state == "ACTIVE")] }`) rewritten
//! as RFC 9535 (`$.values[?(@.state == "ACTIVE")]`).
//!
//! Mapping: `type: value` reads `path` from the document, its labels too (`$.…`);
//! `type: object` makes `path` the `for_each` and reads labels and `values` relative to each
//! node (`@.…`), one metric per value named `<name>_<key>`, as json_exporter names them.
//! `valuetype: counter` is a counter (named `…_total` here) fed with `total:`; `gauge` and
//! `untyped` (the default) are gauges. Values read with `as: number_or_bool` (json_exporter
//! reads `true`/`false` as 1/0); `allow_missing_key` is `none: skip`. Not converted: CEL
//! metrics, `epochTimestamp` (samples carry no timestamps here), templated bodies, inline
//! secrets, and HTTP client settings without an equivalent.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{dq, literal, text, unknown_keys, Metric, Migrated};

/// The module-level keys read.
const MODULE_KEYS: &[&str] = &[
    "metrics",
    "headers",
    "http_client_config",
    "valid_status_codes",
    "body",
];

/// The metric keys read.
const METRIC_KEYS: &[&str] = &[
    "name",
    "path",
    "help",
    "type",
    "labels",
    "values",
    "valuetype",
    "allow_missing_key",
    "engine",
    "epochTimestamp",
];

/// Converts a json_exporter config.
pub(super) fn convert(config: &Value) -> Result<Migrated, String> {
    let mut out = Migrated::default();
    // Before 0.5, a config was one module: `metrics` (and `headers`) at the top.
    let wrapped;
    let config = if config.get("modules").is_none() && config.get("metrics").is_some() {
        out.notes.push(
            "a config from before json_exporter 0.5 (no `modules`): its metrics are the module `default`".into(),
        );
        wrapped = serde_json::json!({"modules": {"default": config}});
        &wrapped
    } else {
        config
    };
    let modules = config
        .get("modules")
        .and_then(Value::as_object)
        .ok_or("not a json_exporter config: no `modules` mapping and no `metrics` list")?;
    for key in unknown_keys(config, &["modules"]) {
        out.not_converted.push(format!("top-level `{key}`"));
    }
    out.notes.push(
        "each module is a probe module with `url: \"$target\"`: Prometheus' relabeling stays as for json_exporter (`__param_target`, `__param_module`); point `__address__` at this exporter (port 9847, not 7979) and scrape /probe".into(),
    );
    out.notes.push("values are read as json_exporter reads them: numbers, and true/false as 1/0 (`as: number_or_bool`)".into());
    for (name, module) in modules {
        let block = module_block(&mut out, name, module);
        out.modules.push(block);
    }
    Ok(out)
}

fn module_block(out: &mut Migrated, name: &str, module: &Value) -> String {
    let at = format!("modules.{name}");
    for key in unknown_keys(module, MODULE_KEYS) {
        out.not_converted.push(format!("{at}.{key}"));
    }
    let mut http: Vec<String> = vec!["url: \"$target\"".into()];
    if let Some(h) = module.get("headers").and_then(Value::as_object) {
        let headers: Vec<String> = h
            .iter()
            .filter_map(|(k, v)| Some(format!("{}: {}", dq(k), dq(&literal(&text(v)?)))))
            .collect();
        http.push(format!("headers: {{{}}}", headers.join(", ")));
    }
    if let Some(codes) = module.get("valid_status_codes").and_then(Value::as_array) {
        let codes: Vec<String> = codes.iter().filter_map(text).collect();
        http.push(format!("accept_status: [{}]", codes.join(", ")));
    }
    if let Some(body) = module.get("body") {
        if body.get("templatize").and_then(Value::as_bool) == Some(true) {
            out.not_converted.push(format!(
                "{at}.body: a Go template (`templatize: true`); send a fixed body or leave it out"
            ));
        } else if let Some(content) = body.get("content").and_then(Value::as_str) {
            // json_exporter POSTs when it has a body.
            http.push("method: POST".into());
            http.push(format!("body: {}", dq(content)));
        }
    }
    if let Some(client) = module.get("http_client_config") {
        http.extend(http_client(
            out,
            &format!("{at}.http_client_config"),
            client,
        ));
    }
    let mut rules = Vec::new();
    for (i, m) in module
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match metric_rule(out, &format!("{at}.metrics[{i}]"), m) {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(why) => out.not_converted.push(why),
        }
    }
    let mut b = format!("- name: {}\n  http:\n", super::sanitize(name));
    for line in http {
        b.push_str(&format!("    {line}\n"));
    }
    b.push_str("  rules:\n");
    if rules.is_empty() {
        b.push_str("    []\n");
    }
    for r in rules {
        for line in r.lines() {
            b.push_str(&format!("    {line}\n"));
        }
    }
    b
}

/// Prometheus' HTTP client config (json_exporter's `http_client_config`) as `http:` keys.
pub(super) fn http_client(out: &mut Migrated, at: &str, c: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let skip = |out: &mut Migrated, key: &str, why: &str| {
        out.not_converted.push(format!("{at}.{key}: {why}"));
    };
    let secret_inline = "secrets come from files here: put it in a file and give the `_file` key";
    for (key, v) in c.as_object().into_iter().flatten() {
        match key.as_str() {
            "basic_auth" => match (
                v.get("username").and_then(text),
                v.get("password_file").and_then(text),
            ) {
                (Some(user), Some(file)) => lines.push(format!(
                    "basic_auth: {{username: {}, password_file: {}}}",
                    dq(&user),
                    dq(&file)
                )),
                _ => skip(out, "basic_auth", secret_inline),
            },
            "bearer_token_file" => {
                if let Some(f) = text(v) {
                    lines.push(format!("bearer_token_file: {}", dq(&f)));
                }
            }
            "authorization" => {
                let kind = v.get("type").and_then(text).unwrap_or("Bearer".into());
                match v.get("credentials_file").and_then(text) {
                    Some(f) if kind.eq_ignore_ascii_case("bearer") => {
                        lines.push(format!("bearer_token_file: {}", dq(&f)))
                    }
                    Some(_) => skip(
                        out,
                        "authorization",
                        "only the Bearer type has an equivalent (`bearer_token_file`)",
                    ),
                    None => skip(out, "authorization", secret_inline),
                }
            }
            "bearer_token" => skip(out, key, secret_inline),
            "tls_config" => {
                let mut tls = Vec::new();
                for (k, tv) in v.as_object().into_iter().flatten() {
                    match (k.as_str(), text(tv)) {
                        (
                            "ca_file"
                            | "cert_file"
                            | "key_file"
                            | "server_name"
                            | "insecure_skip_verify",
                            Some(t),
                        ) => tls.push(format!(
                            "{k}: {}",
                            if k == "insecure_skip_verify" {
                                t
                            } else {
                                dq(&t)
                            }
                        )),
                        _ => skip(out, &format!("tls_config.{k}"), "no equivalent"),
                    }
                }
                if !tls.is_empty() {
                    lines.push(format!("tls: {{{}}}", tls.join(", ")));
                }
            }
            "proxy_url" => {
                if let Some(p) = text(v) {
                    lines.push(format!("proxy_url: {}", dq(&p)));
                }
            }
            "follow_redirects" => {
                if let Some(f) = text(v) {
                    lines.push(format!("follow_redirects: {f}"));
                }
            }
            "oauth2" => {
                let get = |k: &str| v.get(k).and_then(text);
                match (get("client_id"), get("client_secret_file"), get("token_url")) {
                    (Some(id), Some(secret), Some(url)) => {
                        let mut o = vec![
                            format!("client_id: {}", dq(&id)),
                            format!("client_secret_file: {}", dq(&secret)),
                            format!("token_url: {}", dq(&url)),
                        ];
                        if let Some(scopes) = v.get("scopes").and_then(Value::as_array) {
                            let s: Vec<String> =
                                scopes.iter().filter_map(text).map(|s| dq(&s)).collect();
                            o.push(format!("scopes: [{}]", s.join(", ")));
                        }
                        if let Some(p) = v.get("endpoint_params").and_then(Value::as_object) {
                            let p: Vec<String> = p
                                .iter()
                                .filter_map(|(k, v)| Some(format!("{}: {}", dq(k), dq(&text(v)?))))
                                .collect();
                            o.push(format!("endpoint_params: {{{}}}", p.join(", ")));
                        }
                        lines.push(format!("oauth2: {{{}}}", o.join(", ")));
                    }
                    _ => skip(
                        out,
                        "oauth2",
                        "needs client_id, client_secret_file and token_url here (secrets come from files)",
                    ),
                }
            }
            "http_headers" => {
                let mut headers = Vec::new();
                for (name, h) in v.as_object().into_iter().flatten() {
                    let list = |k: &str| -> Vec<String> {
                        h.get(k)
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(text)
                            .map(|s| dq(&s))
                            .collect()
                    };
                    if !list("secrets").is_empty() {
                        skip(out, &format!("http_headers.{name}.secrets"), secret_inline);
                    }
                    let (values, files) = (list("values"), list("files"));
                    if values.is_empty() && files.is_empty() {
                        continue;
                    }
                    headers.push(format!(
                        "{}: {{values: [{}], files: [{}]}}",
                        dq(name),
                        values.join(", "),
                        files.join(", ")
                    ));
                }
                if !headers.is_empty() {
                    lines.push(format!("http_headers: {{{}}}", headers.join(", ")));
                }
            }
            "enable_http2" => {}
            _ => skip(out, key, "no equivalent"),
        }
    }
    lines
}

/// A kubectl-style JSONPath template (`{ .a.b }`, `planet-{.location}`) as pieces: literal
/// text and RFC 9535 queries from `root` (`$` or `@`).
fn template(text: &str, root: char) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
        pieces.push(Piece::Query(query(&after[..close], root)?));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Query(String),
}

/// One kubectl JSONPath expression (inside `{}`) as an RFC 9535 query from `root`.
fn query(expr: &str, root: char) -> Result<String, String> {
    let e = expr.trim();
    if e.starts_with("range") || e.starts_with("end") || e.starts_with('"') {
        return Err(format!(
            "{{{expr}}}: kubectl's `range`/`end` and literals have no equivalent"
        ));
    }
    let body = e
        .strip_prefix('$')
        .or_else(|| e.strip_prefix('@'))
        .unwrap_or(e);
    let body = body.replace(".[", "[");
    if !(body.is_empty() || body.starts_with('.') || body.starts_with('[')) {
        return Err(format!("{{{expr}}} is not a JSONPath"));
    }
    Ok(format!("{root}{body}"))
}

/// A metric of a module as a rule (YAML, unindented), declaring its metrics; `None` when it
/// was left out with a note.
fn metric_rule(out: &mut Migrated, at: &str, m: &Value) -> Result<Option<String>, String> {
    let name = m
        .get("name")
        .and_then(text)
        .ok_or_else(|| format!("{at}: a metric without a name"))?;
    let at = format!("{at} ({name})");
    for key in unknown_keys(m, METRIC_KEYS) {
        out.not_converted.push(format!("{at}.{key}"));
    }
    if m.get("engine").and_then(Value::as_str) == Some("cel") {
        return Err(format!(
            "{at}: a CEL metric (`engine: cel`); write its JSONPath equivalent as a `json:` rule"
        ));
    }
    if m.get("epochTimestamp").is_some() {
        out.not_converted.push(format!(
            "{at}.epochTimestamp: samples carry no timestamps here (Prometheus uses the scrape's); the value is converted"
        ));
    }
    let help = m
        .get("help")
        .and_then(text)
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| name.clone());
    let object = m.get("type").and_then(Value::as_str) == Some("object");
    let mut counter = m.get("valuetype").and_then(Value::as_str) == Some("counter");
    if !counter && name.ends_with("_total") {
        counter = true;
        out.notes.push(format!(
            "{at}: named `…_total` without `valuetype: counter`: a counter fed with `total:` here (gauges are not named `…_total`)"
        ));
    }
    let missing_ok = m.get("allow_missing_key").and_then(Value::as_bool) == Some(true);
    let path = m
        .get("path")
        .and_then(text)
        .ok_or_else(|| format!("{at}: no `path`"))?;
    let root = if object { '@' } else { '$' };

    // Fields: each label's queries, then each value's.
    let mut fields: Vec<(String, String)> = Vec::new();
    let field = |fields: &mut Vec<(String, String)>, base: &str, q: String| -> String {
        let mut name = base.to_owned();
        let mut n = 1;
        while fields.iter().any(|(f, _)| *f == name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        fields.push((name.clone(), q));
        name
    };
    let mut labels: Vec<(String, String)> = Vec::new();
    for (label, v) in m
        .get("labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let t = text(v).unwrap_or_default();
        let mut value = String::new();
        for p in template(&t, root).map_err(|e| format!("{at}.labels.{label}: {e}"))? {
            match p {
                Piece::Text(t) => value.push_str(&literal(&t)),
                Piece::Query(q) => {
                    let f = field(&mut fields, &super::sanitize(label), q);
                    value.push_str(&format!("${{{f}}}"));
                }
            }
        }
        labels.push((label.clone(), value));
    }
    // (metric name, value: a field or a constant)
    let mut values: Vec<(String, Result<String, String>)> = Vec::new();
    let suffix = |n: String| {
        if counter && !n.ends_with("_total") {
            format!("{n}_total")
        } else {
            n
        }
    };
    if object {
        for (key, v) in m
            .get("values")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let t = text(v).unwrap_or_default();
            let metric = suffix(format!("{name}_{key}"));
            if t.contains('{') {
                let pieces = template(&t, '@').map_err(|e| format!("{at}.values.{key}: {e}"))?;
                let [Piece::Query(q)] = pieces.as_slice() else {
                    return Err(format!(
                        "{at}.values.{key}: a value is one JSONPath here, not text around one"
                    ));
                };
                let f = field(
                    &mut fields,
                    &format!("value_{}", super::sanitize(key)),
                    q.clone(),
                );
                values.push((metric, Ok(f)));
            } else {
                values.push((metric, Err(t)));
            }
        }
    } else {
        let pieces = template(&path, '$').map_err(|e| format!("{at}.path: {e}"))?;
        let [Piece::Query(q)] = pieces.as_slice() else {
            return Err(format!("{at}.path: one JSONPath expected"));
        };
        let f = field(&mut fields, "value", q.clone());
        values.push((suffix(name.clone()), Ok(f)));
    }
    if counter {
        out.notes.push(format!(
            "{at}: `valuetype: counter` is a counter fed with `total:` (the upstream's running total); counters are named `…_total` here"
        ));
    }
    for (metric, _) in values.iter_mut() {
        *metric = super::acceptable_name(out, &at, std::mem::take(metric));
    }
    let label_names: Vec<String> = labels.iter().map(|(l, _)| l.clone()).collect();
    if missing_ok && label_names.is_empty() {
        out.not_converted.push(format!(
            "{at}.allow_missing_key: {name}: without labels, a metric is exported at 0 before its first value here, so a missing key reads 0 where json_exporter leaves the metric out"
        ));
    }
    let mut updates = Vec::new();
    for (metric, value) in &values {
        let declared = out.metric(Metric {
            name: metric.clone(),
            kind: if counter { "counter" } else { "gauge" },
            help: help.clone(),
            labels: label_names.clone(),
            ..Metric::default()
        });
        if !declared {
            continue;
        }
        let op = if counter { "total" } else { "set" };
        let mut u = format!("{{metric: {metric}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}: {}", dq(v)))
                .collect();
            u.push_str(&format!(", labels: {{{}}}", l.join(", ")));
        }
        match value {
            Ok(f) => {
                u.push_str(&format!(", {op}: ${f}, as: number_or_bool"));
                if missing_ok {
                    u.push_str(", none: skip");
                }
            }
            Err(constant) => match constant.trim().parse::<f64>() {
                Ok(n) => u.push_str(&format!(", {op}: {n}")),
                Err(_) => {
                    out.not_converted.push(format!(
                        "{at}: value {constant:?} is neither a number nor a JSONPath"
                    ));
                    continue;
                }
            },
        }
        u.push('}');
        updates.push(u);
    }
    if updates.is_empty() {
        return Ok(None);
    }
    let mut r = format!("- name: {}\n  json:\n", super::sanitize(&name));
    if object {
        let pieces = template(&path, '$').map_err(|e| format!("{at}.path: {e}"))?;
        let [Piece::Query(q)] = pieces.as_slice() else {
            return Err(format!("{at}.path: one JSONPath expected"));
        };
        r.push_str(&format!("    for_each: {}\n", dq(q)));
    }
    let fields: BTreeMap<&str, &str> = fields
        .iter()
        .map(|(f, q)| (f.as_str(), q.as_str()))
        .collect();
    let f: Vec<String> = fields
        .iter()
        .map(|(f, q)| format!("{f}: {}", dq(q)))
        .collect();
    r.push_str(&format!("    fields: {{{}}}\n", f.join(", ")));
    r.push_str("  update:\n");
    for u in updates {
        r.push_str(&format!("    - {u}\n"));
    }
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_jsonpath_becomes_rfc_9535() {
        assert_eq!(query(" .counter ", '$').unwrap(), "$.counter");
        assert_eq!(query("[*]", '$').unwrap(), "$[*]");
        assert_eq!(
            query(r#".values[?(@.state == "ACTIVE")]"#, '$').unwrap(),
            r#"$.values[?(@.state == "ACTIVE")]"#
        );
        assert_eq!(query(".id", '@').unwrap(), "@.id");
        assert_eq!(query("$.a.['b c']", '$').unwrap(), "$.a['b c']");
        assert!(query("range .items[*]", '$').is_err());
        let old = serde_json::json!({"metrics": [{"name": "a", "path": "{.a}"}]});
        let out = convert(&old).unwrap();
        assert!(
            out.modules[0].starts_with("- name: default\n"),
            "{:?}",
            out.modules
        );
        assert_eq!(
            template("planet-{.location}", '$').unwrap(),
            vec![
                Piece::Text("planet-".into()),
                Piece::Query("$.location".into())
            ]
        );
    }
}
