//! `use:` — catalog modules composed into a config.
//!
//! A module file is an ordinary config (`metrics:`, `sources:`, `modules:`) with a `module:`
//! header naming its parameters. Each use reads the module (embedded in the binary, or a file
//! beside the config), substitutes `${param}` in its string values, loads and validates it on
//! its own (errors placed in the module's file, with the use site), then merges it: sources
//! renamed `<instance>/<source>`, the use's `labels:` added to its metrics and updates, and
//! metric names checked against the user's and other modules' (a clash names both places).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use super::error::ConfigError;
use super::load::{number_or_bool, parse_document, read_config};
use super::model::{
    Config, LabelValue, MetricConfig, MetricKind, ModuleHeader, SourceConfig, UseConfig, UsedModule,
};
use super::positions::{join_index, join_key, PositionIndex};
use super::validate::did_you_mean;

/// The config file a `use:` list stands in.
pub(super) struct UseSite<'a> {
    /// The config file as errors name it.
    pub file: &'a str,
    /// Its text (for the positions of its own metrics).
    pub index: &'a PositionIndex,
    /// Where module files named by path are looked for.
    pub base_dir: &'a Path,
    /// The YAML path of each of the config's own metric names (`metrics[3].name`).
    pub metric_paths: BTreeMap<String, String>,
}

/// What a secret parameter's value is replaced with wherever it would be shown.
const REDACTED: &str = "<secret>";

/// A module's text and the name its errors give the file.
struct ModuleText {
    file: String,
    text: String,
}

/// Where a metric family was declared, for clash messages.
struct Declared {
    /// The module file that declared it.
    module_file: String,
    /// `file:line:column` of the declaration.
    at: String,
    /// The labels of each use that shares it, with where each use stands.
    uses: Vec<(BTreeMap<String, String>, String)>,
}

/// Composes every entry of `uses` into `config`; returns the errors (none: composed).
pub(super) fn compose(config: &mut Config, uses: &Value, site: &UseSite) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let Value::Sequence(entries) = uses else {
        if !uses.is_null() {
            errors.push(here(
                site,
                "use".into(),
                "`use` must be a list of {module: NAME, with: {...}} entries".into(),
            ));
        }
        return errors;
    };
    let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
    let mut instances: BTreeMap<String, String> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = join_index("use", i);
        let spec: UseConfig = match serde_path_to_error::deserialize(entry.clone()) {
            Ok(spec) => spec,
            Err(e) => {
                let inner = e.path().to_string();
                let at = if inner == "." || inner.is_empty() {
                    path.clone()
                } else {
                    join_key(&path, &inner)
                };
                errors.push(here(site, at, strip_location(&e.into_inner().to_string())));
                continue;
            }
        };
        let used_at = place(site.file, site.index, &join_key(&path, "module"));
        let module = match resolve(&spec.module, site.base_dir) {
            Ok(m) => m,
            Err(message) => {
                errors.push(here(site, join_key(&path, "module"), message));
                continue;
            }
        };
        match load_module(&spec, &module, &path, &used_at, site) {
            Ok(used) => merge(
                config,
                used,
                &spec,
                &path,
                site,
                &mut declared,
                &mut instances,
                &mut errors,
            ),
            Err(mut found) => errors.append(&mut found),
        }
    }
    level_clashes(config, &declared, site, &mut errors);
    errors
}

/// A state metric `X` also exports `X_level`: when a module's metric and another (the user's
/// or another module's) meet that way, the exposition would hold two families of one name.
/// (Within the user's own metrics, validation already says so.)
fn level_clashes(
    config: &Config,
    declared: &BTreeMap<String, Declared>,
    site: &UseSite,
    errors: &mut Vec<ConfigError>,
) {
    let names: BTreeSet<&str> = config.metrics.iter().map(|m| m.name.as_str()).collect();
    let origin = |name: &str| match declared.get(name) {
        Some(d) => format!("a module's, at {}, used at {}", d.at, d.uses[0].1),
        None => format!("declared in {}", site.file),
    };
    for state in config
        .metrics
        .iter()
        .filter(|m| m.kind == MetricKind::State)
    {
        let level = format!("{}_level", state.name);
        if !names.contains(level.as_str())
            || (!declared.contains_key(&state.name) && !declared.contains_key(&level))
        {
            continue;
        }
        let path = site
            .metric_paths
            .get(&state.name)
            .or_else(|| site.metric_paths.get(&level))
            .cloned()
            .unwrap_or_else(|| "use".to_owned());
        errors.push(here(
            site,
            path,
            format!(
                "state metric {:?} ({}) exports its level as {level:?}, the name of another metric ({}): rename one of them",
                state.name,
                origin(&state.name),
                origin(&level)
            ),
        ));
    }
}

/// Reads, substitutes, loads and validates one use's module.
fn load_module(
    spec: &UseConfig,
    module: &ModuleText,
    path: &str,
    used_at: &str,
    site: &UseSite,
) -> Result<UsedModule, Vec<ConfigError>> {
    let in_module =
        |position_path: String, index: Option<&PositionIndex>, message: String| ConfigError {
            position: index.and_then(|ix| ix.find(&position_path)),
            path: position_path,
            message: format!("{message} (in the module used at {used_at})"),
            file: Some(module.file.clone()),
        };
    let mut root = parse_document(&module.text).map_err(|e| {
        vec![ConfigError {
            file: Some(module.file.clone()),
            message: format!("{} (in the module used at {used_at})", e.message),
            ..e
        }]
    })?;
    let index = PositionIndex::build(&module.text);
    let Value::Mapping(map) = &mut root else {
        return Err(vec![in_module(
            String::new(),
            None,
            "a module file is a mapping with `module:`, `metrics:` and `sources:`".into(),
        )]);
    };
    if map.contains_key("use") {
        return Err(vec![in_module(
            "use".into(),
            Some(&index),
            "a module cannot `use:` other modules".into(),
        )]);
    }
    let header: ModuleHeader = match map.remove("module") {
        None => {
            return Err(vec![in_module(
                String::new(),
                Some(&index),
                "a module file starts with a `module:` header (name, description, params)".into(),
            )]);
        }
        Some(value) => serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = e.path().to_string();
            let at = if inner == "." {
                "module".into()
            } else {
                join_key("module", &inner)
            };
            vec![in_module(
                at,
                Some(&index),
                strip_location(&e.into_inner().to_string()),
            )]
        })?,
    };
    let mut errors = Vec::new();
    let param_list = || header.params.keys().cloned().collect::<Vec<_>>().join(", ");
    for name in spec.with.keys() {
        if !header.params.contains_key(name) {
            errors.push(here(
                site,
                join_key(&join_key(path, "with"), name),
                format!(
                    "module {:?} has no parameter {name:?}{} (its parameters: {}; {})",
                    header.name,
                    did_you_mean(name, header.params.keys().map(String::as_str)),
                    param_list(),
                    place(&module.file, &index, "module.params"),
                ),
            ));
        }
    }
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut secrets: Vec<String> = Vec::new();
    for (name, param) in &header.params {
        let value = spec.with.get(name).or(param.default.as_ref());
        match value {
            Some(LabelValue(v)) => {
                if param.secret && !v.is_empty() {
                    secrets.push(v.clone());
                }
                values.insert(name.clone(), v.clone());
            }
            None => errors.push(here(
                site,
                path.to_owned(),
                format!(
                    "module {:?} needs parameter {name:?} ({}): add it under `with:` (declared at {})",
                    header.name,
                    param.description,
                    place(&module.file, &index, &format!("module.params.{name}")),
                ),
            )),
        }
    }
    let mut unknown = Vec::new();
    // A whole-value `${p}` whose value is a number or a boolean becomes that scalar (for
    // `max_series: ${cap}`); where the field wants text (a numeric token in a header), it is
    // read again as text.
    let unsubstituted = root.clone();
    let mut converted = BTreeSet::new();
    substitute(
        &mut root,
        String::new(),
        &values,
        &BTreeSet::new(),
        &mut converted,
        &mut unknown,
    );
    // A declared parameter without a value was reported above; a socket's own `secrets:` are
    // referenced as `${name}` too, and stay for the socket to fill in when it sends (their
    // values then never enter the config, and messages redact them).
    let socket_secrets = socket_secret_names(&root);
    unknown.retain(|(_, name)| {
        !header.params.contains_key(name) && !socket_secrets.contains(name.as_str())
    });
    for (at, name) in unknown {
        errors.push(here(
            site,
            join_key(path, "module"),
            format!(
                "`${{{name}}}` at {} is not a parameter of module {:?} (its parameters: {})",
                place(&module.file, &index, &at),
                header.name,
                param_list()
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (mut module_config, mut found) = read_config(root, &index, header.parity.is_some());
    let as_text: BTreeSet<String> = found
        .iter()
        .filter(|e| converted.contains(&e.path))
        .map(|e| e.path.clone())
        .collect();
    if !as_text.is_empty() {
        let mut root = unsubstituted;
        let (mut none, mut unknown) = (BTreeSet::new(), Vec::new());
        substitute(
            &mut root,
            String::new(),
            &values,
            &as_text,
            &mut none,
            &mut unknown,
        );
        (module_config, found) = read_config(root, &index, header.parity.is_some());
    }
    if !found.is_empty() {
        return Err(found
            .into_iter()
            .map(|e| ConfigError {
                file: Some(module.file.clone()),
                message: redact(
                    &format!("{} (in the module used at {used_at})", e.message),
                    &secrets,
                ),
                ..e
            })
            .collect());
    }
    // Each `dashboard.values` entry is a glob that names some of the module's metrics.
    let dashboard_errors: Vec<ConfigError> = header
        .dashboard
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, pattern)| {
            let at = format!("module.dashboard.values[{i}]");
            let problem = match glob::Pattern::new(pattern) {
                Err(e) => format!("{pattern:?} is not a glob pattern: {e}"),
                Ok(p) if !module_config.metrics.iter().any(|m| p.matches(&m.name)) => {
                    format!("{pattern:?} names none of the module's metrics")
                }
                Ok(_) => return None,
            };
            Some(in_module(at, Some(&index), problem))
        })
        .collect();
    if !dashboard_errors.is_empty() {
        return Err(dashboard_errors);
    }
    Ok(UsedModule {
        instance: spec.name.clone().unwrap_or_else(|| header.name.clone()),
        file: module.file.clone(),
        text: module.text.clone(),
        used_at: used_at.to_owned(),
        header,
        secrets,
        config: Box::new(module_config),
    })
}

/// What `quarry_exporter catalog NAME` shows of a module: its header and its metrics.
#[derive(Debug, Clone)]
pub struct ModuleDescription {
    /// The `module:` header.
    pub header: ModuleHeader,
    /// The metrics it declares, as written.
    pub metrics: Vec<MetricConfig>,
}

/// Reads a module file's header and metrics (without loading its sources); `file` names it in
/// the error.
pub fn describe_module(text: &str, file: &str) -> Result<ModuleDescription, String> {
    let root = parse_document(text).map_err(|e| format!("{file}: {}", e.message))?;
    let header = root
        .get("module")
        .cloned()
        .ok_or_else(|| format!("{file}: no `module:` header"))
        .and_then(|h| {
            serde_path_to_error::deserialize::<_, ModuleHeader>(h)
                .map_err(|e| format!("{file}: module.{}: {}", e.path(), e.inner()))
        })?;
    let metrics = match root.get("metrics") {
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|m| {
                serde_path_to_error::deserialize::<_, MetricConfig>(m.clone())
                    .map_err(|e| format!("{file}: metrics: {}", e.inner()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    Ok(ModuleDescription { header, metrics })
}

/// Merges one loaded use into `config`.
#[allow(clippy::too_many_arguments)]
fn merge(
    config: &mut Config,
    used: UsedModule,
    spec: &UseConfig,
    path: &str,
    site: &UseSite,
    declared: &mut BTreeMap<String, Declared>,
    instances: &mut BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    let before = errors.len();
    if let Some(first) = instances.insert(used.instance.clone(), used.used_at.clone()) {
        errors.push(here(
            site,
            join_key(path, "name"),
            format!(
                "instance name {:?} is already used at {first}: give this use another `name:`",
                used.instance
            ),
        ));
    }
    let module_index = PositionIndex::build(&used.text);
    let own_labels: BTreeSet<&str> = used
        .config
        .metrics
        .iter()
        .flat_map(|m| m.labels.iter().map(String::as_str))
        .collect();
    for (name, value) in &spec.labels {
        let at = join_key(&join_key(path, "labels"), name);
        if !is_label_name(name) {
            errors.push(here(
                site,
                at,
                format!(
                    "{name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                ),
            ));
        } else if own_labels.contains(name.as_str()) {
            errors.push(here(site, at, format!("label {name:?} is already a label of the module's metrics: choose another name")));
        } else if value.contains('$') {
            errors.push(here(
                site,
                at,
                "a use's label value is constant text: it cannot hold `$`".into(),
            ));
        }
    }
    let mut metrics: Vec<MetricConfig> = Vec::new();
    // Metrics another module declares: (name, where here, where there, its use site).
    let mut clashes: Vec<(String, String, String, String)> = Vec::new();
    for (j, metric) in used.config.metrics.iter().enumerate() {
        let at = place(&used.file, &module_index, &format!("metrics[{j}].name"));
        if let Some(user_path) = site.metric_paths.get(&metric.name) {
            errors.push(here(
                site,
                user_path.clone(),
                format!(
                    "metric {:?} is also declared by module {:?} at {at} (used at {}): rename this one or leave it to the module",
                    metric.name, used.header.name, used.used_at
                ),
            ));
            continue;
        }
        match declared.get_mut(&metric.name) {
            Some(first) if first.module_file != used.file => clashes.push((
                metric.name.clone(),
                at,
                first.at.clone(),
                first.uses[0].1.clone(),
            )),
            Some(first) => {
                let keys = |l: &BTreeMap<String, String>| l.keys().cloned().collect::<Vec<_>>();
                if let Some((_, other)) = first.uses.iter().find(|(l, _)| *l == spec.labels) {
                    errors.push(here(
                        site,
                        path.to_owned(),
                        format!(
                            "module {:?} is also used at {other} with the same labels: their series would be one; give each use `labels:` that tell them apart (e.g. labels: {{instance: {}}})",
                            used.header.name, used.instance
                        ),
                    ));
                    break;
                } else if keys(&first.uses[0].0) != keys(&spec.labels) {
                    errors.push(here(
                        site,
                        join_key(path, "labels"),
                        format!(
                            "the uses of module {:?} share its metrics, so they need the same label names (the use at {} has {:?})",
                            used.header.name, first.uses[0].1, keys(&first.uses[0].0)
                        ),
                    ));
                    break;
                }
                first.uses.push((spec.labels.clone(), used.used_at.clone()));
                if let Some(shared) = config.metrics.iter_mut().find(|m| m.name == metric.name) {
                    add_label_values(shared, &spec.labels);
                }
            }
            None => {
                declared.insert(
                    metric.name.clone(),
                    Declared {
                        module_file: used.file.clone(),
                        at,
                        uses: vec![(spec.labels.clone(), used.used_at.clone())],
                    },
                );
                let mut metric = metric.clone();
                metric.labels.extend(spec.labels.keys().cloned());
                add_label_values(&mut metric, &spec.labels);
                metrics.push(metric);
            }
        }
    }
    if let Some((name, at, there, other_use)) = clashes.first() {
        let more = match clashes.len() {
            1 => String::new(),
            n => format!(" (and {} more of its metrics)", n - 1),
        };
        errors.push(here(
            site,
            join_key(path, "module"),
            format!(
                "metric {name:?} of module {:?} ({at}) is also declared by another module at {there} (used at {other_use}){more}: two modules cannot declare one metric",
                used.header.name
            ),
        ));
    }
    let rename = |list: &[SourceConfig]| -> Vec<SourceConfig> {
        list.iter()
            .map(|source| {
                let mut source = source.clone();
                source.name = format!("{}/{}", used.instance, source.name);
                for rule in &mut source.rules {
                    // Checked on the module as written (see `Config::uses`): the labels this
                    // use adds are not in the examples' samples.
                    rule.examples.clear();
                    for update in &mut rule.update {
                        for (name, value) in &spec.labels {
                            update
                                .labels
                                .insert(name.clone(), LabelValue(value.clone()));
                        }
                    }
                }
                source
            })
            .collect()
    };
    let sources = rename(&used.config.sources);
    let probes = rename(&used.config.modules);
    for source in &sources {
        if config.sources.iter().any(|s| s.name == source.name) {
            errors.push(here(
                site,
                path.to_owned(),
                format!("source name {:?} is already used by the config: rename that source or give this use another `name:`", source.name),
            ));
        }
    }
    if errors.len() > before {
        return;
    }
    config.metrics.extend(metrics);
    config.sources.extend(sources);
    config.modules.extend(probes);
    config.uses.push(used);
}

/// Adds a use's constant labels to a metric's pre-declared label values, when it has some
/// (each use's value is then one of them).
fn add_label_values(metric: &mut MetricConfig, labels: &BTreeMap<String, String>) {
    if let Some(known) = &mut metric.label_values {
        for (name, value) in labels {
            let values = known.entry(name.clone()).or_default();
            if !values.iter().any(|v| v.0 == *value) {
                values.push(LabelValue(value.clone()));
            }
        }
    }
}

/// The module a use names: a file when the name looks like a path, else a catalog module.
fn resolve(module: &str, base_dir: &Path) -> Result<ModuleText, String> {
    if module.contains('/') || module.ends_with(".yaml") || module.ends_with(".yml") {
        let file = super::resolve_path(base_dir, module);
        return super::load::read_text(&file)
            .map(|text| ModuleText {
                file: module.to_owned(),
                text,
            })
            .map_err(|e| {
                format!(
                    "module file {module:?}: {}",
                    e.message.replace("config file", "module file")
                )
            });
    }
    match crate::catalog::find(module) {
        Some(entry) => Ok(ModuleText {
            file: entry.file(),
            text: entry.text.to_owned(),
        }),
        None => Err(format!(
            "no catalog module {module:?}{} (`quarry_exporter catalog` lists them; a module file is named by a path ending in .yaml)",
            did_you_mean(module, crate::catalog::MODULES.iter().map(|m| m.name))
        )),
    }
}

/// Replaces `${param}` in every string under `value` (a whole-string `${param}` whose value is
/// a number or a boolean becomes that scalar, its path noted in `converted`, except at the
/// paths of `as_text`); references to names that are not parameters are collected with their
/// YAML paths.
fn substitute(
    value: &mut Value,
    path: String,
    params: &BTreeMap<String, String>,
    as_text: &BTreeSet<String>,
    converted: &mut BTreeSet<String>,
    unknown: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(text) => {
            if let Some(name) = whole_reference(text) {
                if let Some(v) = params.get(name) {
                    *value = match number_or_bool(v) {
                        Some(scalar) if !as_text.contains(&path) => {
                            converted.insert(path);
                            scalar
                        }
                        _ => Value::String(v.clone()),
                    };
                    return;
                }
            }
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                // `$${name}` is `${name}` itself, for what the source reads at run time (a
                // socket's `secrets:`), not a parameter.
                if let Some(before) = rest[..start].strip_suffix('$') {
                    out.push_str(before);
                    out.push_str("${");
                    rest = after;
                    continue;
                }
                out.push_str(&rest[..start]);
                match after.find('}') {
                    Some(end)
                        if after[..end]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        let name = &after[..end];
                        match params.get(name) {
                            Some(v) => out.push_str(v),
                            None => {
                                unknown.push((path.clone(), name.to_owned()));
                                out.push_str(&rest[start..start + 2 + end + 1]);
                            }
                        }
                        rest = &after[end + 1..];
                    }
                    _ => {
                        out.push_str("${");
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            *text = out;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(
                    item,
                    join_index(&path, i),
                    params,
                    as_text,
                    converted,
                    unknown,
                );
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                substitute(
                    item,
                    join_key(&path, key),
                    params,
                    as_text,
                    converted,
                    unknown,
                );
            }
        }
        Value::Tagged(tagged) => {
            substitute(&mut tagged.value, path, params, as_text, converted, unknown)
        }
        _ => {}
    }
}

/// The names of every `socket:` source's `secrets:` under `value` (sources and probe
/// modules alike).
fn socket_secret_names(value: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Mapping(map) => {
                if let Some(Value::Mapping(secrets)) =
                    map.get("socket").and_then(|socket| socket.get("secrets"))
                {
                    names.extend(secrets.keys().filter_map(Value::as_str).map(str::to_owned));
                }
                stack.extend(map.values());
            }
            Value::Sequence(items) => stack.extend(items),
            Value::Tagged(tagged) => stack.push(&tagged.value),
            _ => {}
        }
    }
    names
}

/// `name` when `text` is exactly `${name}`.
fn whole_reference(text: &str) -> Option<&str> {
    text.strip_prefix("${")?
        .strip_suffix('}')
        .filter(|n| !n.contains(['$', '{', '}']))
}

/// Replaces every secret value in `text`.
fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |t, s| t.replace(s.as_str(), REDACTED))
}

/// A Prometheus label name that is not reserved.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// `file:line:column` of the node at `path` (or of its nearest placed ancestor).
fn place(file: &str, index: &PositionIndex, path: &str) -> String {
    match index.find(path) {
        Some(p) => format!("{file}:{}:{}", p.line, p.column),
        None => format!("{file}:1:1"),
    }
}

/// An error in the config file itself, at `path`.
fn here(site: &UseSite, path: String, message: String) -> ConfigError {
    ConfigError {
        position: site.index.find(&path),
        path,
        message,
        file: None,
    }
}

/// serde_yaml appends " at line L column C"; the position is given separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    /// A module file written to a temporary directory; the config names it by absolute path.
    fn module_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    const REDIS_LIKE: &str = "version: 1
module:
  name: kv
  description: a key-value server's status file
  params:
    path: {description: the status file}
    token: {description: a password, secret: true, default: ''}
metrics:
  - {name: kv_keys, type: gauge, help: Keys.}
sources:
  - name: status
    status_file: {path: '${path}', interval: 1s}
    rules:
      - regex: 'keys=(?P<n>\\d+)'
        update: [{metric: kv_keys, set: $n}]
";

    #[test]
    fn a_use_with_params_adds_the_modules_metrics_and_renamed_sources() {
        let config = load_str(
            "version: 1\nuse:\n  - {module: nginx, with: {url: 'http://10.0.0.1/stub', interval: 30s}}\n",
            "u.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["nginx/stub_status", "nginx/access_log"]);
        let http = config.sources[0].http.as_ref().unwrap();
        assert_eq!(http.url, "http://10.0.0.1/stub");
        assert_eq!(http.interval, Some(std::time::Duration::from_secs(30)));
        assert!(config.metrics.iter().any(|m| m.name == "nginx_up"));
        assert_eq!(config.uses.len(), 1);
        assert_eq!(config.uses[0].used_at, "u.yaml:3:14");
        // Examples are checked on the module as written, not on the merged copy.
        assert!(config.sources[0]
            .rules
            .iter()
            .all(|r| r.examples.is_empty()));
        assert!(!config.uses[0].config.sources[0].rules[0]
            .examples
            .is_empty());
    }

    #[test]
    fn two_uses_of_one_module_share_its_families_told_apart_by_labels() {
        let config = load_str(
            "version: 1
use:
  - {module: nginx, name: front, labels: {instance: front}, with: {url: 'http://a/s'}}
  - {module: nginx, name: back, labels: {instance: back}, with: {url: 'http://b/s'}}
",
            "u.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let up: Vec<_> = config
            .metrics
            .iter()
            .filter(|m| m.name == "nginx_up")
            .collect();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].labels, ["instance"]);
        let back = config
            .sources
            .iter()
            .find(|s| s.name == "back/stub_status")
            .unwrap();
        let update = &back.rules[0].update[0];
        assert_eq!(update.labels["instance"].0, "back");
    }

    #[test]
    fn two_uses_without_labels_are_an_error_that_says_to_add_them() {
        let errors = load_str(
            "version: 1
use:
  - {module: nginx, name: front, with: {url: 'http://a/s'}}
  - {module: nginx, name: back, with: {url: 'http://b/s'}}
",
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(errors.starts_with("u.yaml:4:5: use[1]: module \"nginx\" is also used at u.yaml:3:14 with the same labels"), "{errors}");
        assert!(errors.contains("give each use `labels:`"), "{errors}");
        assert_eq!(errors.lines().count(), 1, "{errors}");
    }

    #[test]
    fn a_metric_of_a_module_and_of_the_config_is_an_error_naming_both_places() {
        let errors = load_str(
            "version: 1
metrics:
  - {name: nginx_up, type: gauge, help: Mine.}
use:
  - module: nginx
",
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            errors,
            "u.yaml:3:12: metrics[0].name: metric \"nginx_up\" is also declared by module \"nginx\" at catalog/nginx.yaml:42:12 (used at u.yaml:5:13): rename this one or leave it to the module"
        );
    }

    #[test]
    fn a_metric_of_two_modules_is_an_error_naming_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let copy = module_file(
            &dir,
            "mine.yaml",
            &crate::catalog::find("nginx")
                .unwrap()
                .text
                .replace("name: nginx\n", "name: mine\n"),
        );
        let errors = load_str(
            &format!("version: 1\nuse:\n  - module: nginx\n  - module: {copy}\n"),
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(errors.lines().count(), 1, "{errors}");
        let first = errors.lines().next().unwrap();
        assert!(
            first.starts_with(&format!(
                "u.yaml:4:13: use[1].module: metric \"nginx_connections_accepted\" of module \"mine\" ({copy}:"
            )),
            "{errors}"
        );
        assert!(
            first.ends_with("is also declared by another module at catalog/nginx.yaml:35:12 (used at u.yaml:3:13) (and 9 more of its metrics): two modules cannot declare one metric"),
            "{errors}"
        );
    }

    #[test]
    fn an_error_inside_a_module_names_the_module_file_and_the_use_site() {
        let dir = tempfile::tempdir().unwrap();
        let broken = module_file(&dir, "kv.yaml", &REDIS_LIKE.replace("set: $n", "set: $m"));
        let errors = load_str(
            &format!("version: 1\nuse:\n  - {{module: {broken}, with: {{path: /tmp/kv}}}}\n"),
            "u.yaml",
        )
        .unwrap_err();
        let shown = errors.to_string();
        assert!(
            shown.starts_with(&format!("{broken}:15:41: sources[0].rules[0].update[0].set: unknown field `$m` (did you mean `$n`?)")),
            "{shown}"
        );
        assert!(
            shown.ends_with("(in the module used at u.yaml:3:14)"),
            "{shown}"
        );
    }

    /// Issue 22: a module's `dashboard.values` are globs naming some of its metrics; one that
    /// is not a glob, or names none, is an error at its place in the module file.
    #[test]
    fn dashboard_values_must_name_some_of_the_modules_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let with = |values: &str| {
            let text = REDIS_LIKE.replace(
                "  params:\n",
                &format!("  dashboard: {{values: {values}}}\n  params:\n"),
            );
            let file = module_file(&dir, "kv.yaml", &text);
            (
                file.clone(),
                load_str(
                    &format!("version: 1\nuse:\n  - {{module: {file}, with: {{path: /tmp/kv}}}}\n"),
                    "u.yaml",
                ),
            )
        };
        let (_, ok) = with("[kv_*]");
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert!(ok.uses[0].header.dashboard.shows_value("kv_keys"));
        assert!(!ok.uses[0].header.dashboard.shows_value("other"));
        for (values, problem) in [
            (
                "[kv_keys, nothing_*]",
                "values[1]: \"nothing_*\" names none of the module's metrics",
            ),
            ("['kv_[']", "values[0]: \"kv_[\" is not a glob pattern"),
        ] {
            let (file, result) = with(values);
            let shown = result.unwrap_err().to_string();
            assert!(shown.starts_with(&format!("{file}:5:")), "{shown}");
            assert!(
                shown.contains(&format!("module.dashboard.{problem}")),
                "{shown}"
            );
        }
    }

    #[test]
    fn unknown_and_missing_params_and_unknown_modules_are_errors_at_the_use() {
        let dir = tempfile::tempdir().unwrap();
        let kv = module_file(
            &dir,
            "kv.yaml",
            &REDIS_LIKE.replace("'${path}'", "'${path}/${dir}'"),
        );
        let errors = load_str(
            &format!("version: 1\nuse:\n  - {{module: {kv}, with: {{pth: /x}}}}\n  - {{module: redis-like}}\n  - {{module: ngnix}}\n"),
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 5, "{errors}");
        assert!(!errors.contains("${path}"), "{errors}");
        assert!(lines[0].starts_with("u.yaml:3:5: use[0]: module \"kv\" needs parameter \"path\" (the status file): add it under `with:` (declared at "), "{errors}");
        assert!(lines[1].contains("use[0].module: `${dir}` at ") && lines[1].contains("kv.yaml:12:25 is not a parameter of module \"kv\" (its parameters: path, token)"), "{errors}");
        assert!(
            lines[2].contains(
                "use[0].with.pth: module \"kv\" has no parameter \"pth\" (did you mean \"path\"?)"
            ),
            "{errors}"
        );
        assert!(
            lines[3].starts_with("u.yaml:4:14: use[1].module: no catalog module \"redis-like\""),
            "{errors}"
        );
        assert!(
            lines[4].starts_with(
                "u.yaml:5:14: use[2].module: no catalog module \"ngnix\" (did you mean \"nginx\"?)"
            ),
            "{errors}"
        );
    }

    #[test]
    fn a_secret_value_is_never_shown_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let kv = module_file(
            &dir,
            "kv.yaml",
            &REDIS_LIKE.replace(
                "regex: 'keys=(?P<n>\\d+)'",
                "regex: 'keys=(?P<n>\\d+)${token}('",
            ),
        );
        let errors = load_str(
            &format!(
                "version: 1\nuse:\n  - {{module: {kv}, with: {{path: /x, token: hunter2}}}}\n"
            ),
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(errors.contains("regex"), "{errors}");
        assert!(!errors.contains("hunter2"), "{errors}");
        assert!(errors.contains("<secret>"), "{errors}");
    }

    #[test]
    fn a_doubled_dollar_keeps_a_reference_for_the_source_to_read_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let kv = module_file(
            &dir,
            "kv.yaml",
            &REDIS_LIKE.replace("'${path}'", "'${path}/$${password}/$$x'"),
        );
        let config = load_str(
            &format!("version: 1\nuse:\n  - {{module: {kv}, with: {{path: /x}}}}\n"),
            "u.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let status = config.sources[0].status_file.as_ref().unwrap();
        assert_eq!(status.path, "/x/${password}/$$x");
    }

    #[test]
    fn only_a_drop_in_module_may_name_a_gauge_with_total() {
        let dir = tempfile::tempdir().unwrap();
        let plain = REDIS_LIKE.replace("kv_keys", "kv_keys_total");
        let kv = module_file(&dir, "kv.yaml", &plain);
        let errors = load_str(
            &format!("version: 1\nuse:\n  - {{module: {kv}, with: {{path: /x}}}}\n"),
            "u.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(errors.contains("only counters end in `_total`"), "{errors}");
        let drop_in = plain.replace("  params:", "  parity: kv_exporter 1.0\n  params:");
        let kv = module_file(&dir, "kv2.yaml", &drop_in);
        load_str(
            &format!("version: 1\nuse:\n  - {{module: {kv}, with: {{path: /x}}}}\n"),
            "u.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_whole_value_parameter_keeps_its_number_type() {
        let dir = tempfile::tempdir().unwrap();
        let kv = module_file(
            &dir,
            "kv.yaml",
            &REDIS_LIKE
                .replace(
                    "    token:",
                    "    cap: {description: most series, default: 10}\n    token:",
                )
                .replace("help: Keys.}", "help: Keys., max_series: '${cap}'}"),
        );
        let config = load_str(
            &format!("version: 1\nuse:\n  - {{module: {kv}, with: {{path: /x, cap: 7}}}}\n"),
            "u.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.metrics[0].max_series, Some(7));
    }

    #[test]
    fn every_catalog_module_loads_with_its_defaults() {
        for module in crate::catalog::MODULES {
            let required: Vec<String> = crate::config::describe_module(module.text, &module.file())
                .unwrap()
                .header
                .params
                .iter()
                .filter(|(_, p)| p.default.is_none())
                .map(|(n, _)| format!("{n}: x"))
                .collect();
            let text = format!(
                "version: 1\nuse:\n  - {{module: {}, with: {{{}}}}}\n",
                module.name,
                required.join(", ")
            );
            load_str(&text, "u.yaml").unwrap_or_else(|e| panic!("{}: {e}", module.name));
        }
    }
}
