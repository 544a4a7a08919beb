//! Document samples (a status page, an API's answer, a command's output): JSON, HTML, XML.
//! Each is read as lists of items (a JSON array of objects or object of objects, an HTML
//! table's rows, repeated XML elements) whose fields are classified as for log records: a
//! name (the label), a status (a `state` metric), numbers (gauges; durations in seconds,
//! booleans as 0/1). Numbers outside lists become gauges too.

use std::collections::BTreeMap;

use super::draft::{dq, sanitize, Draft, MetricDraft, RuleDraft};
use super::shapes;

/// The kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Json,
    Html,
    Xml,
}

/// What kind of document `text` is, if it is one (and not a log): JSON that parses whole
/// (and is not one object per line), markup that parses.
pub fn kind(text: &str, from_url: bool) -> Option<DocKind> {
    let t = text.trim_start_matches('\u{feff}').trim();
    if t.starts_with('{') || t.starts_with('[') {
        if serde_json::from_str::<serde_json::Value>(t).is_err() {
            return None;
        }
        let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
        let every_line_an_object = lines.len() > 1
            && lines.iter().all(|l| {
                matches!(
                    serde_json::from_str::<serde_json::Value>(l),
                    Ok(serde_json::Value::Object(_))
                )
            });
        if every_line_an_object || (lines.len() == 1 && !from_url && t.starts_with('{')) {
            // JSON lines (one record, from a file, is a log of one line too).
            return None;
        }
        return Some(DocKind::Json);
    }
    // Markup opens with a tag, a declaration or a comment (`<28>` opens a syslog line).
    if t.starts_with('<')
        && t[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '!' || c == '?')
    {
        let head: String = t
            .chars()
            .take(2048)
            .collect::<String>()
            .to_ascii_lowercase();
        if head.contains("<html")
            || head.contains("<!doctype html")
            || head.contains("<table")
            || head.contains("<body")
        {
            return Some(DocKind::Html);
        }
        if sxd_document::parser::parse(t).is_ok() {
            return Some(DocKind::Xml);
        }
        return Some(DocKind::Html);
    }
    None
}

/// Field → expression, in order.
type Fields = Vec<(String, String)>;
/// Items: field → text.
type Rows = Vec<BTreeMap<String, String>>;

/// A list of items in a document.
struct ItemList {
    /// What it is called (metric names): `services`, `table`, `server`.
    name: String,
    /// The `for_each` expression.
    for_each: String,
    /// Field → its expression, in order.
    fields: Vec<(String, String)>,
    /// Items: field → text.
    rows: Vec<BTreeMap<String, String>>,
    /// A field that names an item (`@key` of an object of objects).
    key_field: Option<(String, String)>,
    /// Where it is, for what is said.
    place: String,
}

/// Drafts rules for a document sample.
pub fn draft(
    text: &str,
    kind: DocKind,
    stem: Option<&str>,
    forced_prefix: Option<&str>,
    source: Vec<String>,
) -> Draft {
    let mut d = Draft {
        source,
        ..Draft::default()
    };
    let p = match forced_prefix {
        Some(p) => sanitize(p),
        None => stem
            .map(sanitize)
            .filter(|s| s != "x" && !s.starts_with("quarry"))
            .unwrap_or_else(|| "status".to_owned()),
    };
    d.source_name = p.clone();
    let (lists, numbers) = match kind {
        DocKind::Json => {
            match serde_json::from_str::<serde_json::Value>(text.trim_start_matches('\u{feff}')) {
                Ok(v) => {
                    d.recognised
                        .push("a JSON document (it parses whole)".into());
                    json_lists(&v)
                }
                Err(e) => {
                    d.not_understood
                        .push(format!("the JSON does not parse: {e}"));
                    (Vec::new(), Vec::new())
                }
            }
        }
        DocKind::Html => {
            d.recognised.push("an HTML page".into());
            (html_tables(text), Vec::new())
        }
        DocKind::Xml => {
            d.recognised.push("an XML document (it parses)".into());
            (xml_lists(text), Vec::new())
        }
    };
    let reader = match kind {
        DocKind::Json => "json",
        DocKind::Html => "html",
        DocKind::Xml => "xml",
    };
    let mut used_names = Vec::new();
    for list in lists.iter().take(4) {
        item_rules(&mut d, &p, list, reader, &mut used_names);
    }
    if !numbers.is_empty() {
        let fields: Vec<(String, String)> = numbers
            .iter()
            .take(20)
            .map(|(path, expr)| (sanitize(path), expr.clone()))
            .collect();
        let mut updates = Vec::new();
        for (field, _) in &fields {
            let name = format!("{p}_{field}");
            if used_names.contains(&name) {
                continue;
            }
            used_names.push(name.clone());
            d.metric(MetricDraft {
                name: name.clone(),
                kind: "gauge",
                help: format!("The document's `{field}`."),
                ..Default::default()
            });
            updates.push(format!("{{metric: {name}, set: ${field}}}"));
        }
        if !updates.is_empty() {
            let list: Vec<String> = fields
                .iter()
                .map(|(f, e)| format!("{f}: {}", dq(e)))
                .collect();
            d.recognised
                .push(format!("{} numbers outside lists: gauges", fields.len()));
            d.rules.push(RuleDraft {
                name: "numbers".into(),
                comment: "numbers of the document outside lists".into(),
                extractor: vec!["json:".into(), format!("  fields: {{{}}}", list.join(", "))],
                updates,
                ..Default::default()
            });
        }
    }
    if d.rules.is_empty() {
        d.not_understood.push(
            "no list of items with names and values, and no numbers: nothing to measure was found"
                .into(),
        );
    }
    d
}

/// Rules for one list: a state metric for its status-like field, gauges for its numbers.
fn item_rules(d: &mut Draft, p: &str, list: &ItemList, reader: &str, used: &mut Vec<String>) {
    let n = list.rows.len();
    let stats = |f: &str| -> Vec<&str> {
        list.rows
            .iter()
            .filter_map(|r| r.get(f).map(String::as_str))
            .collect()
    };
    let is_number = |v: &str| crate::value::number(v.trim()).is_ok();
    let squash = |f: &str| shapes::squash(f);
    // The name: the item's key, else a name-like field with a value per item, else the
    // first text field with unique values.
    let unique_text = |f: &str| {
        let v = stats(f);
        let mut u = v.clone();
        u.sort();
        u.dedup();
        v.len() == n && u.len() == n && v.iter().all(|x| !x.trim().is_empty() && !is_number(x))
    };
    let name_field = list
        .key_field
        .as_ref()
        .map(|(f, _)| f.clone())
        .or_else(|| {
            list.fields
                .iter()
                .map(|(f, _)| f)
                .find(|f| shapes::NAME_KEYS.contains(&squash(f).as_str()) && unique_text(f))
                .cloned()
        })
        .or_else(|| {
            list.fields
                .iter()
                .map(|(f, _)| f)
                .find(|f| unique_text(f))
                .cloned()
        });
    let label = name_field.as_deref().map(|f| {
        let s = sanitize(f);
        if s == "key"
            || s == "x"
            || s.starts_with("x_")
            || (s == "name" && list.key_field.is_some())
        {
            singular(&sanitize(&list.name))
        } else {
            s
        }
    });
    let base = format!("{p}_{}", singular(&sanitize(&list.name)));
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut updates = Vec::new();
    if let (Some(f), Some(l)) = (&name_field, &label) {
        let expr = list
            .key_field
            .as_ref()
            .filter(|(k, _)| k == f)
            .map(|(_, e)| e.clone())
            .or_else(|| {
                list.fields
                    .iter()
                    .find(|(k, _)| k == f)
                    .map(|(_, e)| e.clone())
            })
            .unwrap_or_default();
        fields.push((l.clone(), expr));
    }
    let labels: Vec<String> = label.iter().cloned().collect();
    let label_map = label
        .as_ref()
        .map(|l| format!(", labels: {{{l}: ${l}}}"))
        .unwrap_or_default();
    let mut recognised = Vec::new();
    let mut state_done = false;
    for (f, expr) in &list.fields {
        if Some(f) == name_field.as_ref() {
            continue;
        }
        let values = stats(f);
        if values.len() * 2 < n || values.is_empty() {
            continue;
        }
        let field = {
            let s = sanitize(f);
            if label.as_deref() == Some(s.as_str()) {
                format!("{s}_value")
            } else {
                s
            }
        };
        let mut distinct: Vec<&str> = Vec::new();
        for v in &values {
            if !distinct.contains(v) {
                distinct.push(v);
            }
        }
        let numeric = values.iter().all(|v| is_number(v));
        let boolean = values.iter().all(|v| matches!(v.trim(), "true" | "false"));
        let statusy = !numeric
            && !boolean
            && distinct.len() <= 8
            && (shapes::STATUS_KEYS.contains(&squash(f).as_str())
                || distinct.iter().any(|v| {
                    let v = v.trim().to_ascii_lowercase();
                    shapes::GOOD_STATES.contains(&v.as_str())
                        || shapes::BAD_STATES.contains(&v.as_str())
                }));
        if statusy && !state_done {
            state_done = true;
            let name = format!("{base}_state");
            let states = order_states(&distinct);
            if states.is_empty() {
                continue;
            }
            d.metric(MetricDraft {
                name: name.clone(),
                kind: "state",
                help: format!("The `{f}` of each item of {}, best first.", list.place),
                labels: labels.clone(),
                states: states.clone(),
            });
            used.push(name.clone());
            updates.push(format!("{{metric: {name}{label_map}, state: ${field}}}"));
            fields.push((field.clone(), expr.clone()));
            recognised.push(format!(
                "`{f}` is a status ({}): a state metric",
                states.join(", ")
            ));
            if distinct
                .iter()
                .any(|v| v.trim() == crate::config::UNKNOWN_STATE)
            {
                d.not_understood.push(format!("`{f}` says `unknown`, which is the state every state metric has for what it cannot see; it is left out of `states` (map it to a state of yours)"));
            }
        } else if numeric || boolean {
            let (name, extra) = match shapes::duration_unit(f) {
                Some((factor, _)) if numeric => (
                    shapes::duration_metric(&base, f),
                    if factor != 1.0 {
                        format!(", scale: {factor}")
                    } else {
                        String::new()
                    },
                ),
                _ if boolean => (format!("{base}_{field}"), ", as: bool".to_owned()),
                _ => (format!("{base}_{field}"), String::new()),
            };
            if used.contains(&name) {
                continue;
            }
            used.push(name.clone());
            d.metric(MetricDraft {
                name: name.clone(),
                kind: "gauge",
                help: format!("The `{f}` of each item of {}.", list.place),
                labels: labels.clone(),
                ..Default::default()
            });
            updates.push(format!(
                "{{metric: {name}{label_map}, set: ${field}{extra}, none: skip}}"
            ));
            fields.push((field.clone(), expr.clone()));
            recognised.push(format!("`{f}` is a number: a gauge"));
        }
        if updates.len() >= 12 {
            break;
        }
    }
    if updates.is_empty() {
        return;
    }
    d.recognised.push(format!(
        "{n} items in {}{}; {}",
        list.place,
        name_field
            .as_ref()
            .map(|f| format!(", named by `{f}`"))
            .unwrap_or_default(),
        recognised.join("; ")
    ));
    let field_list: Vec<String> = fields
        .iter()
        .map(|(f, e)| format!("{f}: {}", dq(e)))
        .collect();
    let mut extractor = vec![format!("{reader}:")];
    extractor.push(format!("  for_each: {}", dq(&list.for_each)));
    extractor.push(format!("  fields: {{{}}}", field_list.join(", ")));
    let rule_name = sanitize(&list.name);
    let rule_name = if d.rules.iter().any(|r| r.name == rule_name) {
        format!("{rule_name}_{}", d.rules.len())
    } else {
        rule_name
    };
    d.rules.push(RuleDraft {
        name: rule_name,
        comment: format!("one match per item of {}", list.place),
        extractor,
        updates,
        ..Default::default()
    });
}

/// `services` → `service`.
fn singular(s: &str) -> String {
    if s.len() > 3 && s.ends_with("ies") {
        format!("{}y", &s[..s.len() - 3])
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") {
        s[..s.len() - 1].to_owned()
    } else {
        s.to_owned()
    }
}

/// States best first: good words, then the others as seen, then bad words.
fn order_states(seen: &[&str]) -> Vec<String> {
    let rank = |v: &str| {
        let l = v.trim().to_ascii_lowercase();
        if shapes::GOOD_STATES.contains(&l.as_str()) {
            0
        } else if shapes::BAD_STATES.contains(&l.as_str()) {
            2
        } else {
            1
        }
    };
    let mut states: Vec<&str> = seen
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != crate::config::UNKNOWN_STATE)
        .collect();
    states.sort_by_key(|s| rank(s));
    states.dedup();
    states.into_iter().map(str::to_owned).collect()
}

/// JSON: lists of objects (arrays, objects of objects) and numbers outside them.
fn json_lists(v: &serde_json::Value) -> (Vec<ItemList>, Vec<(String, String)>) {
    let mut lists = Vec::new();
    let mut numbers = Vec::new();
    json_walk(v, "$", "document", 0, &mut lists, &mut numbers);
    lists.sort_by_key(|l: &ItemList| std::cmp::Reverse(l.rows.len()));
    (lists, numbers)
}

fn member(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!(
            "{path}['{}']",
            key.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }
}

fn json_walk(
    v: &serde_json::Value,
    path: &str,
    name: &str,
    depth: usize,
    lists: &mut Vec<ItemList>,
    numbers: &mut Vec<(String, String)>,
) {
    use serde_json::Value;
    if depth > 5 {
        return;
    }
    let item_rows = |items: Vec<&serde_json::Map<String, Value>>| -> (Fields, Rows) {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut rows = Vec::new();
        for o in items {
            let mut row = BTreeMap::new();
            for (k, v) in o {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                if !fields.iter().any(|(f, _)| f == k) {
                    fields.push((k.clone(), member("@", k)));
                }
                row.insert(k.clone(), text);
            }
            rows.push(row);
        }
        (fields, rows)
    };
    match v {
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
            let (fields, rows) = item_rows(a.iter().filter_map(Value::as_object).collect());
            lists.push(ItemList {
                name: name.to_owned(),
                for_each: format!("{path}[*]"),
                fields,
                rows,
                key_field: None,
                place: format!("`{path}`"),
            });
        }
        Value::Object(o)
            if o.len() >= 2
                && o.values().all(|x| {
                    x.as_object()
                        .is_some_and(|m| m.values().any(|y| !y.is_object() && !y.is_array()))
                }) =>
        {
            let (fields, rows) = item_rows(o.values().filter_map(Value::as_object).collect());
            let mut rows = rows;
            for (row, k) in rows.iter_mut().zip(o.keys()) {
                row.insert("@key".into(), k.clone());
            }
            lists.push(ItemList {
                name: name.to_owned(),
                for_each: format!("{path}.*"),
                fields,
                rows,
                key_field: Some(("@key".into(), "@key".into())),
                place: format!("`{path}`"),
            });
        }
        Value::Object(o) => {
            for (k, x) in o {
                let p = member(path, k);
                match x {
                    Value::Number(_) => numbers.push((k.clone(), p)),
                    _ => json_walk(x, &p, k, depth + 1, lists, numbers),
                }
            }
        }
        _ => {}
    }
}

/// HTML: each table with data rows; cells by position, named by the header row.
fn html_tables(text: &str) -> Vec<ItemList> {
    let doc = scraper::Html::parse_document(text);
    let sel = |s: &str| scraper::Selector::parse(s).expect("selector");
    let tables: Vec<scraper::ElementRef> = doc.select(&sel("table")).collect();
    let mut lists = Vec::new();
    let class_count = |c: &str| {
        doc.select(&sel("table"))
            .filter(|t| t.value().classes().any(|x| x == c))
            .count()
    };
    for (i, table) in tables.iter().enumerate().take(8) {
        let selector = if let Some(id) = table.value().id().filter(|id| {
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }) {
            format!("table#{id}")
        } else if let Some(c) = table.value().classes().find(|c| {
            c.chars()
                .all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_')
                && class_count(c) == 1
        }) {
            format!("table.{c}")
        } else if tables.len() == 1 {
            "table".to_owned()
        } else {
            // Not nested, same parent: nth-of-type is the table's place among its siblings.
            let same_parent = tables
                .iter()
                .filter(|t| t.parent().map(|p| p.id()) == table.parent().map(|p| p.id()))
                .count();
            if same_parent != tables.len() {
                continue;
            }
            format!("table:nth-of-type({})", i + 1)
        };
        let rows: Vec<scraper::ElementRef> = table
            .select(&sel("tr"))
            .filter(|r| {
                r.ancestors()
                    .filter_map(scraper::ElementRef::wrap)
                    .find(|a| a.value().name() == "table")
                    .map(|t| t.id())
                    == Some(table.id())
            })
            .collect();
        let cell_texts = |r: &scraper::ElementRef| -> Vec<(bool, String)> {
            r.children()
                .filter_map(scraper::ElementRef::wrap)
                .filter(|c| matches!(c.value().name(), "td" | "th"))
                .map(|c| {
                    let t: String = c.text().collect::<Vec<_>>().join(" ");
                    (
                        c.value().name() == "th",
                        t.split_whitespace().collect::<Vec<_>>().join(" "),
                    )
                })
                .collect()
        };
        let header: Vec<String> = rows
            .iter()
            .map(&cell_texts)
            .find(|c| !c.is_empty() && c.iter().all(|(th, _)| *th))
            .map(|c| c.into_iter().map(|(_, t)| t).collect())
            .unwrap_or_default();
        let data: Vec<Vec<String>> = rows
            .iter()
            .map(&cell_texts)
            .filter(|c| c.iter().any(|(th, _)| !th))
            .map(|c| c.into_iter().map(|(_, t)| t).collect())
            .collect();
        if data.is_empty() {
            continue;
        }
        let width = data.iter().map(Vec::len).max().unwrap_or(0);
        let mut fields = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for j in 0..width {
            let mut name = header
                .get(j)
                .map(|h| sanitize(h))
                .filter(|h| h != "x")
                .unwrap_or_else(|| format!("column_{}", j + 1));
            if names.contains(&name) {
                name = format!("{name}_{}", j + 1);
            }
            names.push(name.clone());
            fields.push((name, format!(":scope > :nth-child({})", j + 1)));
        }
        let rows = data
            .into_iter()
            .filter(|r| r.len() == width)
            .map(|r| names.iter().cloned().zip(r).collect())
            .collect();
        lists.push(ItemList {
            name: table.value().id().map(sanitize).unwrap_or_else(|| {
                if tables.len() == 1 {
                    "row".to_owned()
                } else {
                    format!("table{}", i + 1)
                }
            }),
            for_each: format!("{selector} tr:has(> td)"),
            fields,
            rows,
            key_field: None,
            place: format!("the table `{selector}`"),
        });
    }
    lists
}

/// XML: elements that repeat under one parent, with their attributes and text-only children.
fn xml_lists(text: &str) -> Vec<ItemList> {
    let Ok(package) = sxd_document::parser::parse(text) else {
        return Vec::new();
    };
    let doc = package.as_document();
    let mut lists: Vec<ItemList> = Vec::new();
    let mut stack: Vec<sxd_document::dom::Element> = doc
        .root()
        .children()
        .into_iter()
        .filter_map(|c| c.element())
        .collect();
    let mut seen: Vec<String> = Vec::new();
    while let Some(e) = stack.pop() {
        let children: Vec<sxd_document::dom::Element> = e
            .children()
            .into_iter()
            .filter_map(|c| c.element())
            .collect();
        let mut by_name: BTreeMap<String, Vec<sxd_document::dom::Element>> = BTreeMap::new();
        for c in &children {
            by_name
                .entry(c.name().local_part().to_owned())
                .or_default()
                .push(*c);
        }
        for (name, items) in by_name {
            let has_data = items.iter().any(|i| {
                !i.attributes().is_empty() || i.children().iter().any(|c| c.element().is_some())
            });
            if items.len() >= 2 && has_data && !seen.contains(&name) {
                seen.push(name.clone());
                let mut fields: Vec<(String, String)> = Vec::new();
                let mut rows = Vec::new();
                for item in &items {
                    let mut row = BTreeMap::new();
                    for a in item.attributes() {
                        let local = a.name().local_part().to_owned();
                        let f = sanitize(&local);
                        if !fields.iter().any(|(x, _)| *x == f) {
                            fields.push((f.clone(), format!("@{local}")));
                        }
                        row.insert(f, a.value().to_owned());
                    }
                    for c in item.children().into_iter().filter_map(|c| c.element()) {
                        if c.children().iter().any(|x| x.element().is_some()) {
                            continue;
                        }
                        let local = c.name().local_part().to_owned();
                        let f = sanitize(&local);
                        let text: String = c
                            .children()
                            .iter()
                            .filter_map(|x| x.text().map(|t| t.text().to_owned()))
                            .collect();
                        if !fields.iter().any(|(x, _)| *x == f) {
                            fields.push((f.clone(), format!("*[local-name()='{local}']")));
                        }
                        row.insert(f, text.trim().to_owned());
                    }
                    rows.push(row);
                }
                lists.push(ItemList {
                    name: name.clone(),
                    for_each: format!("//*[local-name()='{name}']"),
                    fields,
                    rows,
                    key_field: None,
                    place: format!("the `{name}` elements"),
                });
            }
        }
        stack.extend(children);
    }
    lists.sort_by_key(|l| std::cmp::Reverse(l.rows.len()));
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_from_logs() {
        assert_eq!(kind(r#"{"a": 1}"#, true), Some(DocKind::Json));
        assert_eq!(kind(r#"{"a": 1}"#, false), None);
        assert_eq!(kind("{\"a\": 1}\n{\"a\": 2}\n", false), None);
        assert_eq!(kind("{\n  \"a\": 1\n}\n", false), Some(DocKind::Json));
        assert_eq!(kind("[{\"a\": 1}]", false), Some(DocKind::Json));
        assert_eq!(
            kind("<html><table></table></html>", false),
            Some(DocKind::Html)
        );
        assert_eq!(
            kind("<?xml version=\"1.0\"?><a><b/></a>", false),
            Some(DocKind::Xml)
        );
        assert_eq!(kind("2026-11-28 INFO x", false), None);
        assert_eq!(kind("<28>Dec  5 09:32:43 vm app: x", false), None);
    }

    #[test]
    fn states_are_ordered_best_first() {
        assert_eq!(
            order_states(&["down", "degraded", "up", "unknown"]),
            vec!["up", "degraded", "down"]
        );
    }
}
