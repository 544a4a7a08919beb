//! `json:` — JSONPath (RFC 9535, the serde_json_path crate) over a JSON document.
//!
//! `for_each` selects the nodes to iterate (default: the document once). In `fields`, a query
//! starting with `@` is evaluated against the current node, one starting with `$` against the
//! whole document, and `@key` is the current node's key (or array index) in its parent, so
//! map keys can become label values.

use serde_json::Value;
use serde_json_path::{JsonPath, PathElement};

use super::{ExtractError, Row};

enum Field {
    Document(JsonPath),
    Current(JsonPath),
    Key,
}

/// A compiled `json:` rule.
pub struct JsonExtractor {
    for_each: Option<JsonPath>,
    fields: Vec<Field>,
}

/// `JsonPath::parse`, made total: `serde_json_path` panics on a query that ends inside an
/// escape of a quoted name (`$.k["\u`), so quoted names are checked first (each closed, each
/// escape whole), and any other panic of the parser is caught and said as an error.
fn parse_query(expr: &str) -> Result<JsonPath, String> {
    if let Some(problem) = unfinished_quote(expr) {
        return Err(problem);
    }
    match std::panic::catch_unwind(|| JsonPath::parse(expr)) {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(_) => Err("the JSONPath parser failed on it".into()),
    }
}

/// What is unfinished in the quoted names of `expr`: a quote not closed, or an escape cut
/// short (`\u` needs four hex digits).
fn unfinished_quote(expr: &str) -> Option<String> {
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let quote = c;
        loop {
            match chars.next() {
                None => return Some(format!("the name quoted with {quote} is not closed")),
                Some(q) if q == quote => break,
                Some('\\') => match chars.next() {
                    None => return Some("an escape (\\) ends the query".into()),
                    Some('u') => {
                        for _ in 0..4 {
                            if !chars.next().is_some_and(|h| h.is_ascii_hexdigit()) {
                                return Some("\\u needs four hex digits".into());
                            }
                        }
                    }
                    Some(_) => {}
                },
                Some(_) => {}
            }
        }
    }
    None
}

/// Parses a JSONPath query, after checking it against [`super::limits`].
pub fn path(expr: &str) -> Result<JsonPath, String> {
    super::limits::check_jsonpath(expr).map_err(|e| format!("JSONPath: {e}"))?;
    parse_query(expr).map_err(|e| {
        let mut message = invalid(expr, &e);
        match rooted(expr, '$') {
            Some(fixed) if expr.starts_with('$') => {
                message.push_str(&format!(" (did you mean {fixed:?}?)"));
            }
            Some(fixed) => message.push_str(&format!(
                " (a JSONPath starts with `$`, the document: did you mean {fixed:?}?)"
            )),
            None => {}
        }
        message
    })
}

/// `expr` made a valid query from `root` (`$` or `@`), when it lacks one and that is all it
/// lacks: `items.*` → `$.items.*`, `.items` → `$.items`, `$items` → `$.items`.
fn rooted(expr: &str, root: char) -> Option<String> {
    let fixed = if expr.starts_with(['.', '[']) {
        format!("{root}{expr}")
    } else if let Some(rest) = expr.strip_prefix(root) {
        format!("{root}.{rest}")
    } else if expr.starts_with(['$', '@']) {
        return None;
    } else {
        format!("{root}.{expr}")
    };
    let parse = format!("${}", &fixed[1..]);
    (super::limits::check_jsonpath(&parse).is_ok() && parse_query(&parse).is_ok()).then_some(fixed)
}

/// The message for a query that does not parse, with the bracket form when dotted keys hold
/// characters a dotted name cannot (`$.accepted conn` → `$['accepted conn']`).
fn invalid(expr: &str, error: &str) -> String {
    let mut message = format!("invalid JSONPath {expr:?}: {error}");
    if let Some(bracketed) = bracket_form(expr) {
        message.push_str(&format!(
            " (keys with spaces or other characters need bracket notation: {bracketed:?})"
        ));
    }
    message
}

/// `$.a.b c` as `$.a['b c']`, when the query is only dotted keys and one of them is not a
/// plain name; `None` otherwise.
fn bracket_form(expr: &str) -> Option<String> {
    let root = expr.chars().next().filter(|c| *c == '$' || *c == '@')?;
    let rest = expr[1..].strip_prefix('.')?;
    if rest.contains(['[', ']', '*', '?', '(', ')']) || rest.contains("..") {
        return None;
    }
    let plain = |k: &str| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let mut out = root.to_string();
    let mut changed = false;
    for key in rest.split('.') {
        if key.is_empty() {
            return None;
        }
        if plain(key) {
            out.push('.');
            out.push_str(key);
        } else {
            changed = true;
            out.push_str("['");
            out.push_str(&key.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push_str("']");
        }
    }
    changed.then_some(out)
}

/// Compiles one field expression; the error explains what was expected.
fn field(expr: &str) -> Result<Field, String> {
    let expr = expr.trim();
    if expr == "@key" {
        return Ok(Field::Key);
    }
    if let Some(rest) = expr.strip_prefix('@') {
        super::limits::check_jsonpath(expr).map_err(|e| format!("JSONPath: {e}"))?;
        return parse_query(&format!("${rest}"))
            .map(Field::Current)
            .map_err(|e| {
                let mut message = invalid(expr, &e);
                if let Some(fixed) = rooted(expr, '@') {
                    message.push_str(&format!(" (did you mean {fixed:?}?)"));
                }
                message
            });
    }
    if expr.starts_with('$') {
        return path(expr).map(Field::Document);
    }
    let mut message = format!(
        "a JSON field starts with `@` (the current node), `$` (the document) or is `@key`, not {expr:?}"
    );
    if let (Some(current), Some(document)) = (rooted(expr, '@'), rooted(expr, '$')) {
        message.push_str(&format!(
            " (did you mean {current:?}, or {document:?} for the whole document?)"
        ));
    }
    Err(message)
}

impl JsonExtractor {
    /// Compiles `for_each` and the field expressions (in field order).
    pub fn new<'a>(
        for_each: Option<&str>,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<JsonExtractor, String> {
        let for_each = for_each.map(path).transpose()?;
        let fields = fields.into_iter().map(field).collect::<Result<_, _>>()?;
        Ok(JsonExtractor { for_each, fields })
    }

    /// Checks a field expression (for config validation).
    pub fn check_field(expr: &str) -> Result<(), String> {
        field(expr).map(|_| ())
    }

    /// Parses `text` as JSON. Numbers JSON cannot hold in a double (`1e400`) and the bare
    /// `NaN`, `Infinity` and `-Infinity` many encoders write (Python's `json.dumps`) do not
    /// fail the document: they are read as strings, so only the values that use them fail
    /// to convert (each with its reason) and the rest of the document is read.
    ///
    /// A lone UTF-16 surrogate escape (`"\ud800"`, which serde_json refuses) is read as
    /// U+FFFD, as invalid UTF-8 in a line is: the text around it is kept and two records that
    /// differ elsewhere stay apart.
    pub fn parse(text: &str) -> Result<Value, ExtractError> {
        match serde_json::from_str(text) {
            Ok(v) => Ok(v),
            Err(e) => {
                let quoted = quote_odd_numbers(text);
                let repaired = replace_lone_surrogates(quoted.as_deref().unwrap_or(text));
                match repaired.or(quoted) {
                    Some(fixed) => serde_json::from_str(&fixed),
                    None => Err(e),
                }
                .map_err(|e| ExtractError::Parse(format!("invalid JSON: {e}")))
            }
        }
    }

    /// One row per selected node.
    pub fn extract(&self, doc: &Value, rows: &mut Vec<Row>) {
        let mut emit = |key: Option<String>, node: &Value| {
            let row = self
                .fields
                .iter()
                .map(|f| match f {
                    Field::Key => key.clone(),
                    Field::Current(p) => p.query(node).first().and_then(text_of),
                    Field::Document(p) => p.query(doc).first().and_then(text_of),
                })
                .collect();
            rows.push(row);
        };
        match &self.for_each {
            None => emit(None, doc),
            Some(path) => {
                for located in path.query_located(doc) {
                    let key = located.location().last().map(|e| match e {
                        PathElement::Name(n) => (*n).to_owned(),
                        PathElement::Index(i) => i.to_string(),
                    });
                    emit(key, located.node());
                }
            }
        }
    }
}

/// `text` with every out-of-range number and bare `NaN`/`Infinity`/`-Infinity` token (outside
/// strings) turned into a string; `None` when there is none.
fn quote_odd_numbers(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' | b'N' | b'I' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
                let token = &text[start..i];
                let odd = match token {
                    "NaN" | "Infinity" | "-Infinity" => true,
                    t if t.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
                        t.parse::<f64>().is_ok_and(|v| v.is_infinite())
                    }
                    _ => false,
                };
                if odd {
                    out.push_str(&text[copied..start]);
                    out.push('"');
                    out.push_str(token);
                    out.push('"');
                    copied = i;
                    changed = true;
                }
            }
            _ => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied.min(text.len())..]);
    Some(out)
}

/// `text` with every `\uXXXX` escape of a lone UTF-16 surrogate (a high one not followed by a
/// low one, or a low one alone) turned into `\ufffd`; `None` when there is none. JSON allows
/// such escapes syntactically but they name no character, so serde_json refuses the text;
/// writers that emit them (JavaScript's `JSON.stringify` of a cut string, Python's `json.dumps`
/// of a surrogate-escaped name) mean "some character that was not valid here", which is what
/// U+FFFD says everywhere else in the exporter. Escaped backslashes (`\\ud800`) are skipped.
pub fn replace_lone_surrogates(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + found;
        let Some(unit) = hex_escape(b, at) else {
            // Another escape (`\\`, `\"`, `\n`, ...): skip the escaped byte with it.
            i = (at + 2).min(b.len());
            continue;
        };
        let lone = match unit {
            0xD800..=0xDBFF => {
                if hex_escape(b, at + 6).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u)) {
                    i = at + 12;
                    continue;
                }
                true
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        i = at + 6;
        if lone {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..at]);
            out.push_str("\\ufffd");
            copied = at + 6;
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// `text` deserialized as `T`, a lone surrogate escape read as U+FFFD (see
/// [`replace_lone_surrogates`]). The repaired text, when one was needed, is kept in `repaired`,
/// so that `T` may borrow from it as it would from `text`.
pub fn from_str_lossy<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
    repaired: &'a mut Option<String>,
) -> serde_json::Result<T> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) => match replace_lone_surrogates(text) {
            Some(fixed) => serde_json::from_str(repaired.insert(fixed)),
            None => Err(e),
        },
    }
}

/// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
fn hex_escape(b: &[u8], at: usize) -> Option<u16> {
    let e = b.get(at..at + 6)?;
    if e[0] != b'\\' || e[1] != b'u' || !e[2..].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // Four ASCII hex digits: valid UTF-8, and a number below 0x10000.
    u16::from_str_radix(std::str::from_utf8(&e[2..]).ok()?, 16).ok()
}

/// The text of a JSON value: strings as they are, numbers and booleans as written, `null` as
/// nothing, objects and arrays as JSON.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "cluster": "eu-1",
      "services": {
        "api": {"status": "UP", "latency_ms": 12.5, "instances": [{"id": "a", "ok": true}, {"id": "b", "ok": false}]},
        "db": {"status": "DEGRADED", "latency_ms": 80, "instances": []}
      }
    }"#;

    /// `serde_json_path` panics on a query cut inside an escape (found by fuzzing, reachable
    /// from a config): an error with what is unfinished, never a panic; whole escapes parse.
    #[test]
    fn a_query_cut_inside_an_escape_is_an_error_not_a_panic() {
        for (expr, said) in [
            (r#"$.k["\u"#, "four hex digits"),
            (r#"$.k["\ud8"#, "four hex digits"),
            (r#"$.k["\"#, "ends the query"),
            (r#"$.k["abc"#, "not closed"),
            (r#"$.k['abc"#, "not closed"),
            (r#"$.k["\u\n$dc00"]"#, "four hex digits"),
        ] {
            let e = path(expr).err().unwrap_or_else(|| panic!("{expr} parsed"));
            assert!(e.contains(said), "{expr}: {e}");
            assert!(field(&expr.replacen('$', "@", 1)).is_err(), "{expr}");
        }
        for fine in [
            r#"$["\u00e9t\u00e9"]"#,
            r#"$['it\'s']"#,
            r#"$["it's"]"#,
            r#"$["\uD83D\uDE00"]"#,
            r#"$[?@.name == 'a"b']"#,
        ] {
            assert!(path(fine).is_ok(), "{fine}: {:?}", path(fine).err());
        }
    }

    #[test]
    fn keys_that_are_not_names_get_the_bracket_form_in_the_error() {
        let e = path("$.accepted conn").err().unwrap();
        assert!(
            e.contains("bracket notation: \"$['accepted conn']\""),
            "{e}"
        );
        let e = field("@.pool.start since").err().unwrap();
        assert!(e.contains("\"@.pool['start since']\""), "{e}");
        // The suggested form parses and reads the key.
        let doc: serde_json::Value = serde_json::from_str(r#"{"accepted conn": 7}"#).unwrap();
        let found = path("$['accepted conn']").unwrap().query(&doc).all();
        assert_eq!(found, vec![&serde_json::json!(7)]);
        // Nothing to suggest for other mistakes.
        assert!(!path("$.a[").err().unwrap().contains("bracket"));
    }

    #[test]
    fn map_keys_current_and_document_fields() {
        let x = JsonExtractor::new(
            Some("$.services.*"),
            ["@key", "@.status", "@.latency_ms", "$.cluster", "@.missing"],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&JsonExtractor::parse(DOC).unwrap(), &mut rows);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows,
            vec![
                vec![s("api"), s("UP"), s("12.5"), s("eu-1"), None],
                vec![s("db"), s("DEGRADED"), s("80"), s("eu-1"), None],
            ]
        );
    }

    #[test]
    fn arrays_nested_and_whole_document() {
        let x = JsonExtractor::new(
            Some("$.services.api.instances[*]"),
            ["@.id", "@.ok", "@key"],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&JsonExtractor::parse(DOC).unwrap(), &mut rows);
        assert_eq!(
            rows[1],
            vec![Some("b".into()), Some("false".into()), Some("1".into())]
        );
        let whole = JsonExtractor::new(None, ["$.cluster"]).unwrap();
        let mut rows = Vec::new();
        whole.extract(&JsonExtractor::parse(DOC).unwrap(), &mut rows);
        assert_eq!(rows, vec![vec![Some("eu-1".into())]]);
    }

    /// One odd number does not fail the document: it is read as text (and fails to convert
    /// on its own); everything else is read.
    #[test]
    fn out_of_range_numbers_and_nan_fail_alone() {
        let doc = r#"{"a": 1e400, "b": NaN, "c": -Infinity, "d": 2.5, "s": "NaN \" 1e400", "e": [Infinity, -1e-400]}"#;
        let v = JsonExtractor::parse(doc).unwrap();
        let x = JsonExtractor::new(
            None,
            ["$.a", "$.b", "$.c", "$.d", "$.s", "$.e[0]", "$.e[1]"],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&v, &mut rows);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows[0],
            vec![
                s("1e400"),
                s("NaN"),
                s("-Infinity"),
                s("2.5"),
                s("NaN \" 1e400"),
                s("Infinity"),
                s("-0.0")
            ]
        );
        assert!(matches!(
            JsonExtractor::parse("{\"a\": Nope}"),
            Err(ExtractError::Parse(_))
        ));
    }

    /// A lone surrogate escape is U+FFFD, not a refused document (nor, in the one-pass
    /// reader, a value that vanishes): records differing elsewhere stay apart.
    #[test]
    fn lone_surrogates_are_replacement_characters() {
        let doc = r#"{"a": "a\ud800", "b": "b\udc00x", "c": "c\ud83d\ude00", "d": "d\\ud800",
                      "e": ["\ud800\ud800", "\ud800\n"], "f": "\udbff\udfff", "k\udfff": 1}"#;
        let v = JsonExtractor::parse(doc).unwrap();
        let x = JsonExtractor::new(
            None,
            [
                "$.a",
                "$.b",
                "$.c",
                "$.d",
                "$.e[0]",
                "$.e[1]",
                "$.f",
                "$['k\u{fffd}']",
            ],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&v, &mut rows);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows[0],
            vec![
                s("a\u{fffd}"),
                s("b\u{fffd}x"),
                s("c😀"),
                s("d\\ud800"),
                s("\u{fffd}\u{fffd}"),
                s("\u{fffd}\n"),
                s("\u{10ffff}"),
                s("1")
            ]
        );
        assert_eq!(
            replace_lone_surrogates(r#"{"a": "\ud83d\ude00 \\ud800"}"#),
            None
        );
        assert_eq!(
            replace_lone_surrogates(r#""\\\ud800x\uDC00\uD800""#).as_deref(),
            Some(r#""\\\ufffdx\ufffd\ufffd""#)
        );
        for cut in [r"\", r"\u", r"\ud8", r"\ud800\", r"\ud800\udc"] {
            let _ = replace_lone_surrogates(cut);
        }
    }

    /// Found by fuzzing (fuzz/corpus/json/slow-nested-filters): nested filters took time
    /// exponential in their depth in serde_json_path's parser; they are refused first.
    #[test]
    fn deeply_nested_filters_are_refused_before_parsing() {
        let input = include_str!("../../fuzz/corpus/json/slow-nested-filters");
        let mut lines = input.splitn(3, '\n');
        let (for_each, field) = (lines.next().unwrap(), lines.next().unwrap());
        assert_eq!(for_each, "");
        let e = JsonExtractor::new(None, [field]).err().unwrap();
        assert!(e.contains("may nest 10"), "{e}");
    }

    /// Issue 24: a query without its root did not suggest the `$.` form.
    #[test]
    fn a_query_without_its_root_suggests_it() {
        let e = JsonExtractor::new(Some("items.*"), ["@.a"]).err().unwrap();
        assert!(e.ends_with("did you mean \"$.items.*\"?)"), "{e}");
        let e = JsonExtractor::new(Some(".items"), ["@.a"]).err().unwrap();
        assert!(e.ends_with("did you mean \"$.items\"?)"), "{e}");
        let e = JsonExtractor::new(Some("$items"), ["@.a"]).err().unwrap();
        assert!(e.ends_with("did you mean \"$.items\"?)"), "{e}");
        // Nothing to suggest when the root is not what is wrong.
        let e = JsonExtractor::new(Some("$.items["), ["@.a"]).err().unwrap();
        assert!(!e.contains("did you mean"), "{e}");
        let e = JsonExtractor::check_field("status").unwrap_err();
        assert!(
            e.ends_with("(did you mean \"@.status\", or \"$.status\" for the whole document?)"),
            "{e}"
        );
        let e = JsonExtractor::check_field("@status").unwrap_err();
        assert!(e.ends_with("(did you mean \"@.status\"?)"), "{e}");
    }

    #[test]
    fn errors_explain_themselves() {
        assert!(JsonExtractor::new(Some("$.[["), ["@.a"]).is_err());
        assert!(JsonExtractor::check_field("status")
            .unwrap_err()
            .contains("starts with `@`"));
        assert!(matches!(
            JsonExtractor::parse("{oops"),
            Err(ExtractError::Parse(_))
        ));
    }
}
