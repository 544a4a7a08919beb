//! Reading `exporter.yaml`: the one place that calls serde_yaml.
//!
//! The text is parsed to a `serde_yaml::Value` first, so a syntax error is one error with its
//! position. Each metric and source is then deserialized on its own, so one bad entry does not
//! hide the errors of the others; serde_path_to_error names the YAML path inside the entry, and
//! the [`PositionIndex`] turns that path into a line and column.

use std::path::Path;

use serde_yaml::Value;

use super::error::{ConfigError, ConfigErrors};
use super::model::Config;
use super::positions::{join_index, join_key, Position, PositionIndex};
use super::validate::{validate, ValidationContext};

const TOP_LEVEL_KEYS: [&str; 7] = [
    "use",
    "version",
    "metrics",
    "sources",
    "modules",
    "grok_patterns",
    "status",
];

/// Reads and validates a config file. `Err` carries every error found, or a read error.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match read_text(path) {
        Ok(text) => load_str_in(&text, &name, &super::base_dir(path)),
        Err(error) => Err(ConfigErrors {
            file: name,
            errors: vec![error],
        }),
    }
}

/// Largest config file read (the largest config tried, 200,000 metrics, is 10 MB).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// The bytes of a config file (or of a file it names: a CA, a key, a body): a regular file (symlinks followed, as Kubernetes mounts
/// ConfigMaps) of at most [`MAX_CONFIG_BYTES`]. A FIFO is never opened in a way that waits for
/// a writer, and a device (`/dev/zero`) never read until memory runs out.
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::other(format!(
            "it is {what}, not a regular file"
        )));
    }
    let too_big = || {
        std::io::Error::other(format!(
            "it is more than {} MiB, larger than any config",
            MAX_CONFIG_BYTES >> 20
        ))
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A regular file never waits: blocking or not makes no difference to its reads.
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Reads a config file as UTF-8 text; an error names the first byte that is not UTF-8.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = read_regular_file(path).map_err(|e| ConfigError {
        path: String::new(),
        position: None,
        message: format!("cannot read config file: {e}"),
        file: None,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ConfigError {
            path: String::new(),
            position: Some(Position { line, column }),
            message: format!(
                "the file is not UTF-8 text (byte 0x{:02X} here); save it as UTF-8",
                bytes[at]
            ),
            file: None,
        }
    })
}

/// Said of a YAML error inside `{ }` or `[ ]`, where most come from a value that needed quotes.
const FLOW_HINT: &str = " (inside { } or [ ], a comma ends a value and `: `, brackets and braces \
                         cannot be in one: quote the value, as in help: \"Requests, by method.\")";

/// Whether `at` (1-based line and column) in `text` is inside a flow mapping or sequence
/// (`{ }`, `[ ]`). A rough scan, enough for a hint: see [`scan_flow`].
fn in_flow_collection(text: &str, at: Position) -> bool {
    scan_flow(text, Some(at), usize::MAX).0 > 0
}

/// How deep `{ }` and `[ ]` may nest. The YAML parser refuses more than 128 levels anyway, but
/// only after scanning ahead in time that grows with the square of the depth (a file of
/// 100,000 `[` took minutes): deeper text is refused before it is parsed.
const MAX_FLOW_DEPTH: usize = 256;

/// Where `text` first nests `{ }` / `[ ]` deeper than [`MAX_FLOW_DEPTH`], if it does.
fn too_deep(text: &str) -> Option<Position> {
    scan_flow(text, None, MAX_FLOW_DEPTH).1
}

/// Scans `text` (up to `until`, 1-based, if given) for flow collections: the depth of `{ }`
/// and `[ ]` there, and where it first went past `max`. A rough scan: quoted text and
/// comments are skipped, and a bracket opens a collection only where a value starts (so
/// `\d{3}` in a plain regex does not).
fn scan_flow(text: &str, until: Option<Position>, max: usize) -> (usize, Option<Position>) {
    let mut depth = 0usize;
    let lines = until.map_or(usize::MAX, |at| at.line);
    for (n, line) in text.lines().enumerate().take(lines) {
        let last = n + 1 == lines;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (i, c) in line.chars().enumerate() {
            if last && until.is_some_and(|at| i + 1 >= at.column) {
                break;
            }
            match quote {
                Some('"') if c == '"' && prev != '\\' => quote = None,
                Some('\'') if c == '\'' => quote = None,
                Some(_) => {}
                None => {
                    // After `[` or `{` only inside a collection: `a[[b` is one plain value.
                    let value_start = prev.is_whitespace()
                        || matches!(prev, ':' | ',' | '-')
                        || (depth > 0 && matches!(prev, '[' | '{'));
                    match c {
                        '"' | '\'' if value_start => quote = Some(c),
                        '#' if prev.is_whitespace() => break,
                        '{' | '[' if value_start || depth > 0 => {
                            depth += 1;
                            if depth > max {
                                let at = Position {
                                    line: n + 1,
                                    column: i + 1,
                                };
                                return (depth, Some(at));
                            }
                        }
                        '}' | ']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            prev = c;
        }
    }
    (depth, None)
}

/// An unknown field whose name holds a space is mostly the rest of a value cut at a comma
/// inside `{ }` (`help: Requests, by method.` makes a key `by method.`): say so.
fn with_cut_value_hint(message: String) -> String {
    let name = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match name {
        Some(name) if name.contains(' ') => format!(
            "{message} (if it is the rest of a value cut at a comma inside {{ }}, quote that \
             value, as in help: \"Requests, by method.\")"
        ),
        _ => message,
    }
}

/// Where the second YAML document of `text` starts (`---` at the start of a line after some
/// content), if there is one.
fn second_document(text: &str) -> Option<Position> {
    let mut content_seen = false;
    for (i, line) in text.lines().enumerate() {
        let starts_document =
            line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if starts_document && content_seen {
            return Some(Position {
                line: i + 1,
                column: 1,
            });
        }
        let trimmed = line.trim_start();
        let comment_or_blank = trimmed.is_empty() || trimmed.starts_with('#');
        if !(comment_or_blank || starts_document || line.starts_with('%')) {
            content_seen = true;
        }
        if line == "..." {
            content_seen = true;
        }
    }
    None
}

/// Parses and validates config text; `file` names it in error messages. Module files a
/// `use:` names by path are read relative to the current directory (see [`load_file`]).
pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    load_str_in(text, file, Path::new("."))
}

/// Parses and validates config text, composing the modules its `use:` names (module files
/// relative to `base_dir`).
fn load_str_in(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        file: file.to_owned(),
        errors,
    };
    // A byte-order mark is not content (editors on Windows write one); columns are counted
    // after it, as editors show them.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut root = parse_document(text).map_err(|e| fail(vec![e]))?;
    let uses = match &mut root {
        Value::Mapping(map) => map.remove("use"),
        _ => None,
    };
    let index = PositionIndex::build(text);
    let metric_paths = own_metric_paths(&root);
    let (mut config, mut errors) = read_config(root, &index, false);
    if let Some(uses) = uses {
        let site = super::compose::UseSite {
            file,
            index: &index,
            base_dir,
            metric_paths,
        };
        errors.extend(super::compose::compose(&mut config, &uses, &site));
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        // The config file's errors first, in file order; then each module file's.
        errors.sort_by(|a, b| {
            let place = |e: &ConfigError| (e.file.clone(), e.position.map(|p| (p.line, p.column)));
            place(a).cmp(&place(b))
        });
        Err(fail(errors))
    }
}

/// The YAML path of each metric name the config declares (`metrics[3].name`), for clashes
/// with modules' metrics.
fn own_metric_paths(root: &Value) -> std::collections::BTreeMap<String, String> {
    let Some(Value::Sequence(metrics)) = root.get("metrics") else {
        return Default::default();
    };
    metrics
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let name = m.get("name")?.as_str()?;
            Some((name.to_owned(), join_key(&join_index("metrics", i), "name")))
        })
        .collect()
}

/// A parameter's value as YAML reads it, when it is a number or a boolean (so `${port}`
/// alone can stand where a number is expected).
pub(super) fn number_or_bool(text: &str) -> Option<Value> {
    if too_deep(text).is_some() {
        return None;
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(scalar @ (Value::Number(_) | Value::Bool(_))) => Some(scalar),
        _ => None,
    }
}

/// The place and value of the first character YAML does not allow in a file (C0 and C1
/// controls but tab, line feed, carriage return and U+0085; surrogates cannot occur in a
/// `str`; U+FFFE and U+FFFF; a byte order mark only at the start).
fn first_control_character(text: &str) -> Option<(Position, char)> {
    for (i, line) in text.split('\n').enumerate() {
        for (column, c) in line.chars().enumerate() {
            let allowed = matches!(c, '\t' | '\r' | '\u{85}')
                || ('\u{20}'..='\u{7e}').contains(&c)
                || ('\u{a0}'..='\u{fffd}').contains(&c) && c != '\u{feff}'
                || c >= '\u{10000}'
                || (c == '\u{feff}' && i == 0 && column == 0);
            if !allowed {
                let position = Position {
                    line: i + 1,
                    column: column + 1,
                };
                return Some((position, c));
            }
        }
    }
    None
}

/// The place of the first alias (`*name` where a value starts), if any.
fn first_alias(text: &str) -> Option<Position> {
    for (i, line) in text.lines().enumerate() {
        let mut prev = ' ';
        for (column, c) in line.chars().enumerate() {
            if c == '#' && (prev == ' ' || prev == '\t') {
                break;
            }
            if c == '*' && matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':' | '-') {
                return Some(Position {
                    line: i + 1,
                    column: column + 1,
                });
            }
            prev = c;
        }
    }
    None
}

/// Parses YAML text to a value with merge keys applied; the error, placed, if it does not.
pub(super) fn parse_document(text: &str) -> Result<Value, ConfigError> {
    let error = |position, message| ConfigError {
        path: String::new(),
        position,
        message,
        file: None,
    };
    if let Some(at) = too_deep(text) {
        return Err(error(
            Some(at),
            format!(
                "invalid YAML: `{{ }}` and `[ ]` nest deeper than {MAX_FLOW_DEPTH} levels here; \
                 a config needs a few"
            ),
        ));
    }
    // The parser says "at position N" (a byte offset) of such a character, not its line.
    if let Some((position, c)) = first_control_character(text) {
        return Err(error(
            Some(position),
            format!(
                "invalid YAML: a control character (U+{:04X}) is not allowed; YAML \
                     takes tabs, line breaks and printable characters (in a double-quoted \
                     string, write it escaped: \"{}\")",
                c as u32,
                if (c as u32) <= 0xff {
                    format!("\\x{:02X}", c as u32)
                } else {
                    format!("\\u{:04X}", c as u32)
                }
            ),
        ));
    }
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            if let (None, Some(position)) = (e.location(), second_document(text)) {
                return Err(error(Some(position), "a config file holds one YAML document; a second one starts here (remove this `---` and what follows, or merge them)".into()));
            }
            // The parser gives this one no place: the first alias is where to look.
            if e.location().is_none() && e.to_string().contains("repetition limit exceeded") {
                return Err(error(
                    first_alias(text),
                    "invalid YAML: its aliases expand to too many nodes (an alias `*name` \
                     repeats all its anchor `&name` holds, and aliases of aliases multiply); \
                     write the values out, or nest aliases less"
                        .into(),
                ));
            }
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            let hint = match position {
                Some(p) if in_flow_collection(text, p) => FLOW_HINT,
                _ => "",
            };
            return Err(error(
                position,
                format!("invalid YAML: {}{hint}", strip_location(&e.to_string())),
            ));
        }
    };
    if let Err(e) = root.apply_merge() {
        return Err(error(None, format!("invalid YAML merge key: {e}")));
    }
    Ok(root)
}

/// Deserializes and validates a parsed config (without its `use:`); `index` places the
/// errors. The config is complete only when the errors are none.
/// `drop_in`: a module copying a dedicated exporter's names (see [`ValidationContext`]).
pub(super) fn read_config(
    root: Value,
    index: &PositionIndex,
    drop_in: bool,
) -> (Config, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut push = |path: String, message: String| {
        errors.push(ConfigError {
            position: index.find(&path),
            path,
            message: with_cut_value_hint(message),
            file: None,
        })
    };

    let mut config = Config::default();
    let Value::Mapping(map) = root else {
        push(
            String::new(),
            "the config must be a mapping with version, metrics and sources".into(),
        );
        return (config, errors);
    };
    for key in map.keys() {
        let name = key.as_str().unwrap_or("<non-text key>");
        if !TOP_LEVEL_KEYS.contains(&name) {
            push(
                name.to_owned(),
                format!("unknown field `{name}`, expected one of `version`, `metrics`, `sources`, `modules`, `use`, `grok_patterns`, `status`"),
            );
        }
    }
    match map.get("version") {
        None => push(
            String::new(),
            "missing field `version` (write `version: 1`)".into(),
        ),
        Some(v) if v.as_u64() == Some(1) => config.version = 1,
        Some(v) => push(
            "version".into(),
            format!(
                "unsupported version {}: this exporter reads version 1",
                render_scalar(v)
            ),
        ),
    }
    if let Some(v) = map.get("grok_patterns") {
        match serde_yaml::from_value::<std::collections::BTreeMap<String, String>>(v.clone()) {
            Ok(p) => config.grok_patterns = p,
            Err(e) => push(
                "grok_patterns".into(),
                format!("grok_patterns is a mapping of pattern name to definition text: {e}"),
            ),
        }
    }
    if let Some(v) = map.get("status").filter(|v| !v.is_null()) {
        // As with list entries: a bad key is reported and taken out, and the rest read again,
        // so every error of the section is found in one run.
        let mut value = v.clone();
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, super::model::StatusConfig>(value.clone()) {
                Ok(s) => {
                    config.status = s;
                    break;
                }
                Err(e) => {
                    let segments: Vec<PathStep> =
                        e.path().iter().filter_map(PathStep::of).collect();
                    let inner = e.path().to_string();
                    let path = if inner == "." || inner.is_empty() {
                        "status".to_owned()
                    } else if inner.starts_with('[') {
                        format!("status{inner}")
                    } else {
                        join_key("status", &inner)
                    };
                    push(path, strip_location(&e.into_inner().to_string()));
                    if remove_step(&mut value, &segments).is_none() {
                        break;
                    }
                }
            }
        }
    }
    let metrics = deserialize_list(&map, "metrics", &mut push);
    let sources = deserialize_list(&map, "sources", &mut push);
    let modules = deserialize_list(&map, "modules", &mut push);
    config.metrics = metrics.items.into_iter().map(|(_, m)| m).collect();
    config.sources = sources.items.into_iter().map(|(_, s)| s).collect();
    config.modules = modules.items.into_iter().map(|(_, s)| s).collect();
    let context = ValidationContext {
        metric_indexes: metrics.indexes,
        source_indexes: sources.indexes,
        module_indexes: modules.indexes,
        broken_metrics: metrics.broken_names,
        drop_in,
    };
    let repaired: Vec<String> = [&metrics.repaired, &sources.repaired, &modules.repaired]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for problem in validate(&config, &context) {
        // A key taken out to read the rest of its entry is not missing a second time.
        if repaired.contains(&problem.path) {
            continue;
        }
        push(problem.path, problem.message);
    }
    if errors.is_empty() {
        let grok = std::mem::take(&mut config.grok_patterns);
        for rule in config
            .sources
            .iter_mut()
            .chain(config.modules.iter_mut())
            .flat_map(|s| s.rules.iter_mut())
        {
            if let Some(expression) = &rule.grok {
                // Validated above: it expands.
                rule.grok_expanded = crate::grok::compile(expression, &grok).ok();
            }
        }
        config.grok_patterns = grok;
    }
    (config, errors)
}

/// The entries of a list that deserialized, and what is known of those that did not.
struct Entries<T> {
    items: Vec<(usize, T)>,
    /// The position in the file of each deserialized entry, in order.
    indexes: Vec<usize>,
    /// `name:` of the entries that failed, so references to them are not reported again.
    broken_names: Vec<String>,
    /// Paths of the mappings (or lists) a key was taken out of to read the rest of an entry:
    /// what validation finds missing there is a consequence, not another error.
    repaired: Vec<String>,
}

/// Reads a `--web.config.file` (exporter-toolkit format); errors carry positions like the main
/// config's.
pub fn load_web_config(path: &Path) -> Result<super::model::WebConfigFile, ConfigErrors> {
    let file = path.display().to_string();
    let single = |position, path: String, message: String| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            path,
            position,
            message,
            file: None,
        }],
    };
    let text = read_text(path).map_err(|mut e| {
        e.message = e.message.replace("config file", "web config file");
        ConfigErrors {
            file: file.clone(),
            errors: vec![e],
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim().is_empty() {
        return Ok(Default::default());
    }
    let index = PositionIndex::build(text);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let p = e.path().to_string();
        let p = if p == "." { String::new() } else { p };
        let position = e
            .inner()
            .location()
            .map(|l| Position {
                line: l.line(),
                column: l.column(),
            })
            .or_else(|| index.find(&p));
        // serde_yaml prefixes the parent path, which the message already carries.
        let message = strip_location(&e.into_inner().to_string());
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if p.starts_with(prefix) => rest.to_owned(),
            _ => message,
        };
        single(position, p, message)
    })
}

/// Deserializes each element of the sequence under `key` on its own; errors go to `push`.
fn deserialize_list<T: serde::de::DeserializeOwned>(
    map: &serde_yaml::Mapping,
    key: &str,
    push: &mut impl FnMut(String, String),
) -> Entries<T> {
    let mut out = Entries {
        items: Vec::new(),
        indexes: Vec::new(),
        broken_names: Vec::new(),
        repaired: Vec::new(),
    };
    let items = match map.get(key) {
        None | Some(Value::Null) => return out,
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            push(key.to_owned(), format!("`{key}` must be a list"));
            return out;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = join_index(key, i);
        // An entry with a bad key is read again without it, so the rest of the entry (its
        // rules, references, operations) is checked in the same run; each error is reported
        // once, and an entry that cannot be repaired this way (a missing field) is broken.
        let mut value = item.clone();
        let mut removed: Vec<(String, String)> = Vec::new();
        let mut read = None;
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => {
                    read = Some(v);
                    break;
                }
                Err(e) => {
                    let segments: Vec<PathStep> =
                        e.path().iter().filter_map(PathStep::of).collect();
                    let inner = e.path().to_string();
                    let path = if inner == "." || inner == "?" || inner.is_empty() {
                        item_path.clone()
                    } else if inner.starts_with('[') {
                        format!("{item_path}{inner}")
                    } else {
                        join_key(&item_path, &inner)
                    };
                    let message = strip_location(&e.into_inner().to_string());
                    // Taking out a key (a misspelt or mistyped one) can leave a required one
                    // missing beside it: the fix of the first error is the fix of this one.
                    let consequence = message.starts_with("missing field")
                        && removed.iter().any(|(parent, _)| *parent == path);
                    if !consequence {
                        push(path.clone(), message);
                    }
                    match remove_step(&mut value, &segments) {
                        Some(key) if !consequence => {
                            let parent = path
                                .rfind(['.', '['])
                                .map_or(item_path.clone(), |cut| path[..cut].to_owned());
                            removed.push((parent, key));
                        }
                        _ => break,
                    }
                }
            }
        }
        match read {
            Some(v) => {
                out.items.push((i, v));
                out.indexes.push(i);
                out.repaired
                    .extend(removed.into_iter().map(|(parent, _)| parent));
            }
            None => {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    out.broken_names.push(name.to_owned());
                }
            }
        }
    }
    out
}

/// One step of the path serde_path_to_error reports.
enum PathStep {
    Key(String),
    Index(usize),
}

impl PathStep {
    fn of(segment: &serde_path_to_error::Segment) -> Option<PathStep> {
        match segment {
            serde_path_to_error::Segment::Map { key } => Some(PathStep::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(PathStep::Index(*index)),
            _ => None,
        }
    }
}

/// Takes the node at `steps` out of `value`; returns its key (or index) as text, or `None`
/// when there is nothing to take (the error is about the entry itself, e.g. a missing field).
fn remove_step(value: &mut Value, steps: &[PathStep]) -> Option<String> {
    let (last, parents) = steps.split_last()?;
    let mut node = value;
    for step in parents {
        node = match (step, node) {
            (PathStep::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str())?,
            (PathStep::Index(i), Value::Sequence(s)) => s.get_mut(*i)?,
            _ => return None,
        };
    }
    match (last, node) {
        (PathStep::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).map(|_| k.clone()),
        (PathStep::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            Some(i.to_string())
        }
        _ => None,
    }
}

fn render_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "(not a number)".into(),
    }
}

/// Another program's YAML config (for `migrate`: json_exporter's, grok_exporter's) as a JSON
/// value, or the YAML error with its position.
pub fn read_foreign_yaml(text: &str) -> Result<serde_json::Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = too_deep(text) {
        return Err(format!(
            "`{{ }}` and `[ ]` nest deeper than {MAX_FLOW_DEPTH} levels at line {} column {}",
            at.line, at.column
        ));
    }
    serde_yaml::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
}

/// serde_yaml appends " at line L column C" to messages; the position is printed separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_aliases_are_placed() {
        let at = |line, column| Position { line, column };
        assert_eq!(
            first_control_character("a: 1\nb: \"x\u{1b}\"\n"),
            Some((at(2, 6), '\u{1b}'))
        );
        assert_eq!(first_control_character("\u{feff}a: \"\tb\"\r\n"), None);
        assert_eq!(
            first_control_character("a: \u{feff}\n"),
            Some((at(1, 4), '\u{feff}'))
        );
        assert_eq!(
            first_control_character("a: \u{ffff}"),
            Some((at(1, 4), '\u{ffff}'))
        );
        assert_eq!(
            first_alias("a: &x [1]\n# *x\nb: 2*3 # *x\nc: [*x]\n"),
            Some(at(4, 5))
        );
        assert_eq!(first_alias("a: 1\n"), None);
    }

    #[test]
    fn anchors_and_merge_keys_are_applied() {
        let text = r#"
version: 1
metrics:
  - {name: a_total, type: counter, help: A.}
sources:
  - name: one
    file: &defaults {paths: [a.log], start_at: beginning}
    rules: [{regex: 'x', update: [{metric: a_total}]}]
  - name: two
    file:
      <<: *defaults
      paths: [b.log]
"#;
        let config = load_str(text, "t.yaml").unwrap();
        let two = config.sources[1].file.as_ref().unwrap();
        assert_eq!(two.paths, ["b.log"]);
        assert_eq!(two.start_at, crate::config::StartAt::Beginning);
    }

    /// `watch:` takes true, false or names; anything else is refused where it stands, with
    /// the three choices.
    #[test]
    fn watch_is_true_false_or_names() {
        use crate::config::WatchMode;
        let text = |watch: &str| {
            format!(
                "version: 1\nmetrics:\n  - {{name: a_total, type: counter, help: A.}}\nsources:\n  - name: one\n    file: {{paths: [a.log]{watch}}}\n    rules: [{{regex: 'x', update: [{{metric: a_total}}]}}]\n"
            )
        };
        for (watch, mode) in [
            ("", None),
            (", watch: true", Some(WatchMode::All)),
            (", watch: names", Some(WatchMode::Names)),
            (", watch: false", Some(WatchMode::Off)),
            (", watch: 'false'", Some(WatchMode::Off)),
        ] {
            let config = load_str(&text(watch), "t.yaml").unwrap();
            assert_eq!(
                config.sources[0].file.as_ref().unwrap().watch,
                mode,
                "{watch}"
            );
        }
        let shown = load_str(&text(", watch: name"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("t.yaml:6:")
                && shown.contains(r#"invalid watch "name""#)
                && shown.contains("names (files created, renamed or removed"),
            "{shown}"
        );
    }

    /// Hostile nesting is refused before the parser's quadratic scan-ahead, with where it
    /// went too deep; nesting a config could use still parses (or fails as YAML would).
    #[test]
    fn flow_collections_nested_too_deep_are_refused_at_once() {
        let deep = format!(
            "version: 1\nmetrics: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let shown = load_str(&deep, "t.yaml").unwrap_err().to_string();
        assert!(
            shown.starts_with("t.yaml:2:266: invalid YAML: `{ }` and `[ ]` nest deeper than 256"),
            "{shown}"
        );
        // Brackets in quotes, comments and plain regexes do not count.
        let many = "x".repeat(300);
        let quoted = format!(
            "version: 1\n# {}\nmetrics: []\nsources: []\nx: '{}' # {}\ny: a\\d{{3}}{}\n",
            "[".repeat(300),
            "[".repeat(300),
            "{".repeat(300),
            many.replace('x', "[")
        );
        let shown = load_str(&quoted, "t.yaml").unwrap_err().to_string();
        assert!(!shown.contains("nest deeper"), "{shown}");
        // 100 levels: under the limit, refused by the parser's own (128) only past it.
        let fine = format!("version: 1\nx: {}{}\n", "[".repeat(100), "]".repeat(100));
        let shown = load_str(&fine, "t.yaml").unwrap_err().to_string();
        assert!(
            !shown.contains("nest deeper") && !shown.contains("recursion"),
            "{shown}"
        );
    }

    #[test]
    fn errors_in_several_entries_are_all_reported_in_file_order() {
        let text = "version: 1\nmetrics:\n  - {name: a_total, type: countr, help: A.}\n  - {name: b, type: gauge}\n";
        let errors = load_str(text, "t.yaml").unwrap_err();
        let shown = errors.to_string();
        assert_eq!(
            shown,
            "t.yaml:3:27: metrics[0].type: unknown variant `countr`, expected one of `counter`, `gauge`, `histogram`, `state`\n\
             t.yaml:4:5: metrics[1]: missing field `help`"
        );
    }
}
