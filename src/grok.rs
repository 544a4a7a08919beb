//! Grok expressions compiled to regex-crate syntax.
//!
//! A grok expression is a regex in which `%{NAME}`, `%{NAME:field}` and `%{NAME:field:type}`
//! stand for named patterns: the bundled library (logstash-patterns-core's base, httpd,
//! linux-syslog and java patterns, adapted to the regex crate: see the header of
//! `src/grok/patterns.grok`) and the user's own, which take precedence over bundled ones of the
//! same name everywhere, also inside bundled definitions (one dictionary, as in logstash).
//! [`compile`] expands references recursively: `%{NAME:field}` becomes `(?P<field>…)` and
//! `%{NAME}` `(?:…)`; the rest of the text is kept, except that Oniguruma spellings the regex
//! crate lacks are translated: `(?<n>…)` → `(?P<n>…)`, atomic `(?>…)` → `(?:…)`, possessive
//! `++` `*+` `?+` → greedy; look-around is an error (the regex crate has none).
//!
//! Semantics chosen: as in logstash and grok_exporter, the named captures of nested patterns are
//! kept, so `%{COMBINEDAPACHELOG}` yields clientip, ident, auth, timestamp, verb, request,
//! httpversion, rawrequest, response, bytes, referrer and agent. The regex crate rejects
//! duplicate group names, so the first occurrence of a name (in text order) captures and later
//! ones become non-capturing groups. Field names with dots or brackets (`http.version`,
//! `[http][version]`) become underscores (`http_version`); a `:int`/`:float` type is accepted
//! and ignored (values are converted later); other types are errors. The bundled definitions
//! use no look-around, so `%{IPV4}` is bounded by `\b` where Oniguruma used `(?<![0-9])` and
//! `(?![0-9])`: `1234.5.6.7` and `a1.2.3.4` contain no IPV4 here, only the latter does there.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

/// The bundled pattern library: `NAME definition` lines, `#` comments.
const PATTERNS: &str = include_str!("grok/patterns.grok");

/// Longest expansion accepted, in bytes, so that a hostile pattern set cannot exhaust memory.
pub const MAX_EXPANSION: usize = 1 << 20;

/// Deepest nesting of pattern references accepted (the regex parser's nest limit is 250 groups).
pub const MAX_DEPTH: usize = 48;

/// An error in a grok expression: byte offset into the expression it was found at, and a message
/// a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrokError {
    /// Byte offset into the expression (of the `%{` that caused the error, for references).
    pub offset: usize,
    /// What is wrong, and what to do about it.
    pub message: String,
}

impl GrokError {
    /// The 1-based column of the error in `expression`, counted in characters.
    pub fn column(&self, expression: &str) -> usize {
        expression
            .get(..self.offset)
            .map_or(self.offset, |s| s.chars().count())
            + 1
    }

    /// `at column {column}: {message}`, the column counted in characters of `expression` (the
    /// text the error was found in), as a config error says it.
    pub fn in_expression(&self, expression: &str) -> String {
        format!("at column {}: {}", self.column(expression), self.message)
    }
}

impl fmt::Display for GrokError {
    /// `at column {offset + 1}: {message}`; the offset is in bytes, which is the character column
    /// for ASCII expressions (use [`GrokError::column`] with the expression otherwise).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.offset + 1, self.message)
    }
}

impl std::error::Error for GrokError {}

/// Expands `%{NAME}`, `%{NAME:field}` and `%{NAME:field:type}` in `expression` (the rest is regex
/// syntax, kept as is but for the translations in the module documentation) using `user`
/// patterns (which take precedence over, and may refer to, the bundled ones and each other) and
/// returns the regex-crate pattern: `%{NAME:field}` becomes `(?P<field>...)`, `%{NAME}` a
/// non-capturing group `(?:...)`. The result parses as a regex (it is checked).
pub fn compile(expression: &str, user: &BTreeMap<String, String>) -> Result<String, GrokError> {
    Ok(run(expression, user, None)?.out)
}

/// The field names a compiled expression captures, in order: the named groups of
/// [`compile`]'s output (the tests check the two agree; the config reads the regex's names).
#[cfg(test)]
fn fields(expression: &str, user: &BTreeMap<String, String>) -> Result<Vec<String>, GrokError> {
    Ok(run(expression, user, None)?.fields)
}

/// Names of the bundled patterns, sorted.
#[cfg(test)]
fn bundled_names() -> Vec<&'static str> {
    bundled().keys().copied().collect()
}

/// Whether `name` is a bundled pattern.
pub fn is_bundled(name: &str) -> bool {
    bundled().contains_key(name)
}

/// The names of the patterns `expression` refers to (`%{NAME}`, `%{NAME:field}`), in order,
/// each once; not those their definitions refer to.
pub fn references(expression: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("%{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = rest[..end].split(':').next().unwrap_or("").to_owned();
        if is_pattern_name(&name) && !names.contains(&name) {
            names.push(name);
        }
        rest = &rest[end + 1..];
    }
    names
}

/// Checks user-defined patterns on their own: names are letters, digits and underscores, and
/// definitions expand (without cycles) to valid regexes. `Err((pattern name, error))` for the
/// first bad one, the error's offset being into that pattern's definition (0 for a bad name).
pub fn check_user_patterns(user: &BTreeMap<String, String>) -> Result<(), (String, GrokError)> {
    for (name, definition) in user {
        if !is_pattern_name(name) {
            let message = format!(
                "bad grok pattern name {name:?}: use letters, digits and underscores (like MY_PATTERN)"
            );
            return Err((name.clone(), GrokError { offset: 0, message }));
        }
        run(definition, user, Some(name)).map_err(|e| (name.clone(), e))?;
    }
    Ok(())
}

/// The bundled patterns by name, parsed once.
fn bundled() -> &'static BTreeMap<&'static str, &'static str> {
    static BUNDLED: OnceLock<BTreeMap<&'static str, &'static str>> = OnceLock::new();
    BUNDLED.get_or_init(|| {
        PATTERNS
            .lines()
            .map(str::trim_end)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once(' '))
            .collect()
    })
}

/// The bundled patterns, sorted by name: each name and its definition as written
/// (`quarry_exporter grok` lists them).
pub fn bundled_patterns() -> impl Iterator<Item = (&'static str, &'static str)> {
    bundled().iter().map(|(n, d)| (*n, *d))
}

/// One bundled pattern, as `quarry_exporter grok NAME` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternInfo {
    pub name: &'static str,
    /// The definition as written (`%{HTTPD_COMMONLOG} %{QS:referrer} %{QS:agent}`).
    pub definition: &'static str,
    /// The fields `%{NAME}` captures, in order (the named captures of nested patterns).
    pub fields: Vec<String>,
    /// `%{NAME}` fully expanded: the regex-crate pattern a rule runs.
    pub regex: String,
}

/// The bundled pattern `name` (exact, or in other case) with its expansion; an unknown name is
/// an error naming the closest one.
pub fn describe(name: &str) -> Result<PatternInfo, String> {
    let (name, definition) = bundled()
        .get_key_value(name)
        .or_else(|| bundled().iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(n, d)| (*n, *d))
        .ok_or_else(|| {
            let none = BTreeMap::new();
            match unknown(name, &none).split_once("; define it") {
                Some((head, _)) => format!("{head}; `quarry_exporter grok` lists them all"),
                None => unknown(name, &none),
            }
        })?;
    let none = BTreeMap::new();
    let reference = format!("%{{{name}}}");
    let expansion = run(&reference, &none, None).map_err(|e| e.message)?;
    Ok(PatternInfo {
        name,
        definition,
        fields: expansion.fields,
        regex: expansion.out,
    })
}

fn is_pattern_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Expands `text` (the expression, or the definition of `within` when checking user patterns)
/// and checks that the result parses as a regex.
fn run<'a>(
    text: &'a str,
    user: &'a BTreeMap<String, String>,
    within: Option<&'a str>,
) -> Result<Expansion<'a>, GrokError> {
    let mut x = Expansion {
        user,
        out: String::new(),
        used: HashSet::new(),
        fields: Vec::new(),
        stack: within.into_iter().collect(),
        base: usize::from(within.is_some()),
        pieces: Vec::new(),
    };
    x.expand(text)?;
    if let Err(e) = regex_syntax::Parser::new().parse(&x.out) {
        let (at, kind) = match &e {
            regex_syntax::Error::Parse(e) => (e.span().start.offset, e.kind().to_string()),
            regex_syntax::Error::Translate(e) => (e.span().start.offset, e.kind().to_string()),
            e => (0, e.to_string()),
        };
        // The last piece of top-level text at or before the error.
        let i = x.pieces.partition_point(|p| p.out <= at).saturating_sub(1);
        let (offset, message) = match x.pieces.get(i) {
            Some(Piece {
                out,
                at: from,
                name: Some(""),
            }) => (from + (at - out), None),
            Some(Piece { at: from, name, .. }) => (*from, *name),
            None => (0, None),
        };
        let message = match message {
            Some(name) => format!("invalid regex in the expansion of %{{{name}}}: {kind}"),
            None => format!("invalid regex: {kind}"),
        };
        return Err(GrokError {
            offset: offset.min(text.len()),
            message,
        });
    }
    Ok(x)
}

/// A stretch of the output, from offset `out`, made from the top-level text at `at`: copied
/// verbatim (`name` `Some("")`), the expansion of pattern `name`, or translated syntax (`None`).
struct Piece<'a> {
    out: usize,
    at: usize,
    name: Option<&'a str>,
}

/// The state of one expansion.
struct Expansion<'a> {
    user: &'a BTreeMap<String, String>,
    out: String,
    /// Group names given out so far (a later occurrence of one does not capture).
    used: HashSet<String>,
    fields: Vec<String>,
    /// The patterns being expanded, outermost first.
    stack: Vec<&'a str>,
    /// The length of `stack` while expanding the top-level text.
    base: usize,
    /// Top-level pieces of `out`, in order, for mapping regex errors back to the expression.
    pieces: Vec<Piece<'a>>,
}

impl<'a> Expansion<'a> {
    /// Appends `text` (expanded), translating Oniguruma-only syntax on the way.
    fn expand(&mut self, text: &'a str) -> Result<(), GrokError> {
        let b = text.as_bytes();
        let (mut i, mut run, mut class) = (0, 0, 0usize);
        while i < b.len() {
            if b[i..].starts_with(b"%{") {
                self.verbatim(text, run, i);
                i = self.reference(text, i)?;
                run = i;
                continue;
            }
            match b[i] {
                b'\\' => i += text[i + 1..].chars().next().map_or(0, char::len_utf8),
                b'[' => {
                    class += 1;
                    // A `]` first in a class (after an optional `^`) is a literal.
                    if class == 1 {
                        i += usize::from(b.get(i + 1) == Some(&b'^'));
                        i += usize::from(b.get(i + 1) == Some(&b']'));
                    }
                }
                b']' if class > 0 => class -= 1,
                b'(' if class == 0 && b[i..].starts_with(b"(?") => {
                    if let Some((replacement, len)) = self.group(text, i)? {
                        self.verbatim(text, run, i);
                        self.emit(i, None, &replacement);
                        i += len;
                        run = i;
                        continue;
                    }
                }
                // Possessive quantifiers: drop the `+`.
                b'+' | b'*' | b'?' if class == 0 && b.get(i + 1) == Some(&b'+') => {
                    self.verbatim(text, run, i + 1);
                    i += 2;
                    run = i;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        self.verbatim(text, run, b.len());
        Ok(())
    }

    /// Translates the group opener at `text[i..]` (which starts with `(?`): `Some` replacement
    /// and the length it replaces, `None` to keep it.
    fn group(&mut self, text: &str, i: usize) -> Result<Option<(String, usize)>, GrokError> {
        let rest = &text[i + 2..];
        if rest.starts_with('>') {
            return Ok(Some(("(?:".into(), 3)));
        }
        if ["=", "!", "<=", "<!"].iter().any(|p| rest.starts_with(p)) {
            let message =
                "look-around ((?=, (?!, (?<=, (?<!) is not supported by the regex crate; \
                           remove it (\\b can stand in for a guard against letters or digits)";
            return Err(self.error(text, i, message.into()));
        }
        let name_at = if rest.starts_with('<') {
            1
        } else if rest.starts_with("P<") {
            2
        } else {
            0
        };
        let Some(len) = rest[name_at..].find('>').filter(|_| name_at > 0) else {
            return Ok(None);
        };
        let name = &rest[name_at..name_at + len];
        if field_name(name).as_deref() != Some(name) {
            return Ok(None); // the regex parser says what is wrong with it
        }
        let replaced = 2 + name_at + len + 1;
        Ok(Some(match self.take(name) {
            true => (format!("(?P<{name}>"), replaced),
            false => ("(?:".into(), replaced),
        }))
    }

    /// Expands the reference starting with `%{` at `text[i..]`; returns the offset after it.
    fn reference(&mut self, text: &'a str, i: usize) -> Result<usize, GrokError> {
        let Some(len) = text[i + 2..].find('}') else {
            let message = "unterminated %{: expected } after the pattern name".to_string();
            return Err(self.error(text, i, message));
        };
        let inner = &text[i + 2..i + 2 + len];
        let mut parts = inner.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let fail = |x: &Self, message: String| Err(x.error(text, i, message));
        if name.is_empty() {
            return fail(self, format!("empty grok pattern name in %{{{inner}}}"));
        }
        if name.contains('=') {
            let message = "inline pattern definitions (%{NAME=regex}) are not supported; \
                           define the pattern under grok_patterns";
            return fail(self, message.into());
        }
        if !is_pattern_name(name) {
            return fail(
                self,
                format!("bad grok pattern name {name:?}: use letters, digits and underscores"),
            );
        }
        let field = match parts.next() {
            None => None,
            Some(raw) => match field_name(raw) {
                Some(field) => Some(field),
                None => {
                    let message = format!(
                        "bad field name {raw:?} in %{{{inner}}}: use letters, digits and underscores, \
                         not starting with a digit"
                    );
                    return fail(self, message);
                }
            },
        };
        if let Some(kind) = parts.next().filter(|t| !matches!(*t, "int" | "float")) {
            return fail(
                self,
                format!("unknown type {kind:?} in %{{{inner}}}: use int or float"),
            );
        }
        let Some(definition) = self.definition(name) else {
            return fail(self, unknown(name, self.user));
        };
        if let Some(start) = self.stack.iter().position(|n| *n == name) {
            let cycle = self.stack[start..].join(" -> ");
            let message = format!("recursive grok pattern: {cycle} -> {name}");
            return Err(GrokError { offset: i, message });
        }
        if self.stack.len() >= MAX_DEPTH {
            let message = format!(
                "grok patterns nest more than {MAX_DEPTH} deep: {} -> ... -> {name}",
                self.stack[0]
            );
            return Err(GrokError { offset: i, message });
        }
        let opener = match field {
            Some(field) if self.take(&field) => format!("(?P<{field}>"),
            _ => "(?:".into(),
        };
        self.emit(i, Some(name), &opener);
        self.stack.push(name);
        let expanded = self.expand(definition);
        self.stack.pop();
        // An error inside the definition is reported at this reference (its message says where).
        expanded.map_err(|e| GrokError {
            offset: i,
            message: e.message,
        })?;
        self.out.push(')');
        if self.out.len() > MAX_EXPANSION {
            let message = format!(
                "the expression expands to more than {MAX_EXPANSION} bytes of regex; \
                 do the grok patterns refer to each other too many times?"
            );
            return Err(GrokError { offset: i, message });
        }
        Ok(i + 2 + len + 1)
    }

    /// Claims group `name`: true (and recorded as a field) if it is the first of that name.
    fn take(&mut self, name: &str) -> bool {
        let first = self.used.insert(name.to_string());
        if first {
            self.fields.push(name.to_string());
        }
        first
    }

    /// The definition of pattern `name`: the user's, else the bundled one.
    fn definition(&self, name: &str) -> Option<&'a str> {
        let user = self.user.get(name).map(String::as_str);
        user.or_else(|| bundled().get(name).copied())
    }

    /// Copies `text[from..to]` to the output.
    fn verbatim(&mut self, text: &str, from: usize, to: usize) {
        if from < to {
            self.emit(from, Some(""), &text[from..to]);
        }
    }

    /// Appends `s`, made from the text at `at` (see [`Piece`]).
    fn emit(&mut self, at: usize, name: Option<&'a str>, s: &str) {
        if self.stack.len() == self.base {
            self.pieces.push(Piece {
                out: self.out.len(),
                at,
                name,
            });
        }
        self.out.push_str(s);
    }

    /// An error at `text[offset..]`; inside a pattern's definition, the message says which.
    fn error(&self, text: &str, offset: usize, message: String) -> GrokError {
        let message = match self.stack.split_last() {
            Some((name, via)) if self.stack.len() > self.base => {
                let column = text[..offset].chars().count() + 1;
                let via = match via {
                    [] => String::new(),
                    via => format!(" (via {})", via.join(" -> ")),
                };
                format!("in grok pattern {name}{via} at column {column}: {message}")
            }
            _ => message,
        };
        GrokError { offset, message }
    }
}

/// The regex group name for grok field `raw`: dots and brackets become underscores
/// (`[http][version]` and `http.version` give `http_version`); `None` if not a valid name.
fn field_name(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw
        .split(['.', '[', ']'])
        .filter(|p| !p.is_empty())
        .collect();
    let name = parts.join("_");
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// The message for an unknown pattern, with the closest known name if one is close.
fn unknown(name: &str, user: &BTreeMap<String, String>) -> String {
    let upper = name.to_ascii_uppercase();
    let names = bundled()
        .keys()
        .copied()
        .chain(user.keys().map(String::as_str));
    let best = names
        .map(|n| (edit_distance(&upper, &n.to_ascii_uppercase()), n))
        .min()
        .filter(|(d, _)| *d <= (name.len() / 3).max(2));
    match best {
        Some((_, n)) => format!("unknown grok pattern {name}; did you mean {n}?"),
        None => format!("unknown grok pattern {name}; define it under grok_patterns"),
    }
}

/// Levenshtein distance between `a` and `b`, by bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.bytes().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn user(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The named captures of the first match of `expression` in `line` (None if no match).
    fn grok(
        expression: &str,
        user: &BTreeMap<String, String>,
        line: &str,
    ) -> Option<BTreeMap<String, String>> {
        let regex = regex::Regex::new(&compile(expression, user).unwrap()).unwrap();
        let caps = regex.captures(line)?;
        let named = regex.capture_names().flatten();
        Some(
            named
                .filter_map(|n| Some((n.to_string(), caps.name(n)?.as_str().to_string())))
                .collect(),
        )
    }

    /// The text `%{pattern}` matches in `line` when anchored at both ends (None if it does not).
    fn whole(pattern: &str, line: &str) -> Option<String> {
        let expression = format!("^(?P<all>%{{{pattern}}})$");
        grok(&expression, &none(), line).map(|c| c["all"].clone())
    }

    fn err(expression: &str, user: &BTreeMap<String, String>) -> GrokError {
        compile(expression, user).unwrap_err()
    }

    #[test]
    fn every_bundled_pattern_compiles_and_fields_are_its_named_groups() {
        let names = bundled_names();
        let lines = PATTERNS
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        assert_eq!(
            lines.count(),
            names.len(),
            "a bundled name is defined twice"
        );
        assert!(names.len() >= 100 && names.windows(2).all(|w| w[0] < w[1]));
        for name in names {
            let expression = format!("%{{{name}}}");
            let compiled = compile(&expression, &none()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let regex = regex::Regex::new(&compiled).unwrap_or_else(|e| panic!("{name}: {e}"));
            let named: Vec<&str> = regex.capture_names().flatten().collect();
            assert_eq!(named, fields(&expression, &none()).unwrap(), "{name}");
            // Only grok fields capture: no unnamed groups in the bundled definitions.
            assert_eq!(regex.captures_len(), named.len() + 1, "{name}");
        }
    }

    #[test]
    fn big_log_formats_compile_within_default_limits() {
        for name in [
            "COMBINEDAPACHELOG",
            "SYSLOGLINE",
            "HTTPD_ERRORLOG",
            "SYSLOG5424LINE",
        ] {
            let compiled = compile(&format!("^%{{{name}}}$"), &none()).unwrap();
            assert!(compiled.len() < 8 << 10, "{name}: {} bytes", compiled.len());
            // A tenth of the default size_limit (10 MiB) is plenty.
            regex::RegexBuilder::new(&compiled)
                .size_limit(1 << 20)
                .build()
                .unwrap();
        }
    }

    #[test]
    fn combined_apache_log() {
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
        let c = grok("%{COMBINEDAPACHELOG}", &none(), line).unwrap();
        let expected = [
            ("clientip", "127.0.0.1"),
            ("ident", "-"),
            ("auth", "frank"),
            ("timestamp", "10/Oct/2000:13:55:36 -0700"),
            ("verb", "GET"),
            ("request", "/apache_pb.gif"),
            ("httpversion", "1.0"),
            ("response", "200"),
            ("bytes", "2326"),
            ("referrer", "\"http://www.example.com/start.html\""),
            ("agent", "\"Mozilla/4.08 [en] (Win98; I ;Nav)\""),
        ];
        assert_eq!(
            c,
            expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        let f = fields("%{COMBINEDAPACHELOG}", &none()).unwrap();
        let order = "clientip ident auth timestamp verb request httpversion rawrequest response bytes referrer agent";
        assert_eq!(f.join(" "), order);
    }

    #[test]
    fn common_apache_log_with_no_bytes() {
        let line = r#"2001:db8::7 - - [28/Nov/2024:10:37:12 +0100] "POST /api/v1/items?id=3 HTTP/1.1" 304 -"#;
        let c = grok("^%{COMMONAPACHELOG}$", &none(), line).unwrap();
        assert_eq!(
            (c["clientip"].as_str(), c["auth"].as_str()),
            ("2001:db8::7", "-")
        );
        assert_eq!(
            (c["request"].as_str(), c["response"].as_str()),
            ("/api/v1/items?id=3", "304")
        );
        assert!(!c.contains_key("bytes"));
        let raw = grok(
            "%{COMMONAPACHELOG}",
            &none(),
            r#"10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "\x16\x03" 400 0"#,
        );
        assert_eq!(raw.unwrap()["rawrequest"], r"\x16\x03");
    }

    #[test]
    fn syslog_line() {
        let line = "Nov 28 10:37:12 web01 sshd[4242]: Accepted publickey for deploy from 10.1.2.3 port 51234 ssh2";
        let c = grok("^%{SYSLOGLINE}$", &none(), line).unwrap();
        assert_eq!(c["timestamp"], "Nov 28 10:37:12");
        assert_eq!(
            (
                c["logsource"].as_str(),
                c["program"].as_str(),
                c["pid"].as_str()
            ),
            ("web01", "sshd", "4242")
        );
        assert_eq!(
            c["message"],
            "Accepted publickey for deploy from 10.1.2.3 port 51234 ssh2"
        );
        let iso = grok(
            "^%{SYSLOGLINE}$",
            &none(),
            "2024-11-28T10:37:12.5+01:00 db-2 cron: tick",
        )
        .unwrap();
        assert_eq!(
            (iso["timestamp8601"].as_str(), iso["logsource"].as_str()),
            ("2024-11-28T10:37:12.5+01:00", "db-2")
        );
        assert!(!iso.contains_key("pid"));
    }

    #[test]
    fn syslog_pam_session_and_cron() {
        let line = "Nov 28 10:37:12 web01 sshd[99]: pam_unix(sshd:session): session opened for user deploy by (uid=0)";
        let c = grok("%{SYSLOGPAMSESSION}", &none(), line).unwrap();
        let message = "pam_unix(sshd:session): session opened for user deploy by (uid=0)";
        assert_eq!(
            (c["message"].as_str(), c["pam_module"].as_str()),
            (message, "pam_unix")
        );
        assert_eq!(
            (c["username"].as_str(), c["pam_by"].as_str()),
            ("deploy", "(uid=0)")
        );
        let line = "Nov  3 04:05:01 web01 CRON[7]: (root) CMD (run-parts /etc/cron.hourly)";
        let c = grok("%{CRONLOG}", &none(), line).unwrap();
        assert_eq!((c["user"].as_str(), c["action"].as_str()), ("root", "CMD"));
        assert_eq!(c["message"], "run-parts /etc/cron.hourly");
    }

    #[test]
    fn httpd_error_logs_of_both_versions() {
        let v20 = "[Mon Dec 23 11:11:11 2024] [error] [client 10.0.0.9] File does not exist: /var/www/favicon.ico";
        let c = grok("^%{HTTPD_ERRORLOG}$", &none(), v20).unwrap();
        assert_eq!(
            (c["loglevel"].as_str(), c["clientip"].as_str()),
            ("error", "10.0.0.9")
        );
        assert_eq!(c["message"], "File does not exist: /var/www/favicon.ico");
        let v24 = "[Mon Dec 23 11:11:11.123456 2024] [core:error] [pid 1234:tid 5678] [client 10.0.0.9:5566] AH00128: File does not exist: /x";
        let c = grok("^%{HTTPD_ERRORLOG}$", &none(), v24).unwrap();
        assert_eq!(
            (
                c["module"].as_str(),
                c["pid"].as_str(),
                c["clientport"].as_str()
            ),
            ("core", "1234", "5566")
        );
        assert_eq!(
            (c["errorcode"].as_str(), c["message"].as_str()),
            ("AH00128", "File does not exist: /x")
        );
    }

    #[test]
    fn base_patterns_match_whole_values() {
        let cases = [
            ("HTTPDATE", "10/Oct/2000:13:55:36 -0700"),
            ("IP", "192.168.1.255"),
            ("IP", "2001:db8:85a3::8a2e:370:7334"),
            ("IP", "::1"),
            ("IP", "::ffff:10.0.0.1"),
            ("IPV6", "fe80::1%eth0"),
            ("NUMBER", "-12.5"),
            ("NUMBER", ".5"),
            ("NUMBER", "+7"),
            ("INT", "-42"),
            ("WORD", "hello_2"),
            ("NOTSPACE", "a/b?c=d"),
            ("GREEDYDATA", "anything at all"),
            ("QUOTEDSTRING", r#""say \"hi\"""#),
            ("QUOTEDSTRING", "'it''"),
            ("QUOTEDSTRING", "``"),
            ("TIMESTAMP_ISO8601", "2024-11-28T10:37:12.123Z"),
            ("TIMESTAMP_ISO8601", "2024-11-28 10:37:12+0100"),
            ("LOGLEVEL", "WARNING"),
            ("LOGLEVEL", "Info"),
            ("UUID", "123e4567-e89b-12d3-a456-426614174000"),
            (
                "URI",
                "https://user:pw@example.com:8443/a/b.html?x=1&y=%20#frag",
            ),
            ("MAC", "00:1a:2b:3c:4d:5e"),
            ("PATH", "/var/log/nginx/access.log"),
            (
                "JAVASTACKTRACEPART",
                "    at com.example.Foo.bar(Foo.java:42)",
            ),
        ];
        for (pattern, value) in cases {
            let want = if value == "'it''" {
                None
            } else {
                Some(value.to_string())
            };
            assert_eq!(whole(pattern, value), want, "%{{{pattern}}} on {value:?}");
        }
        for (pattern, value) in [
            ("NUMBER", "1.2.3"),
            ("INT", "4.5"),
            ("WORD", "a b"),
            ("IP", "256.1.1.1"),
            ("UUID", "123"),
        ] {
            assert_eq!(whole(pattern, value), None, "%{{{pattern}}} on {value:?}");
        }
        // The last octet is 255, not 25 (the \b stands in for Oniguruma's (?![0-9])).
        assert_eq!(
            grok("%{IPV4:ip}", &none(), "from 10.0.0.255").unwrap()["ip"],
            "10.0.0.255"
        );
    }

    #[test]
    fn ipv4_is_bounded_by_word_boundaries_not_look_around() {
        assert_eq!(grok("%{IPV4:ip}", &none(), "x 1234.5.6.7 y"), None);
        assert_eq!(
            grok("%{IPV4:ip}", &none(), "(1.2.3.4)").unwrap()["ip"],
            "1.2.3.4"
        );
        // Oniguruma finds 1.2.3.4 here; the word boundary does not.
        assert_eq!(grok("%{IPV4:ip}", &none(), "a1.2.3.4"), None);
    }

    #[test]
    fn user_patterns_refer_to_bundled_ones_and_each_other() {
        let u = user(&[
            ("DURATION", r"%{NUMBER:ms}ms"),
            (
                "REQLINE",
                r"%{WORD:verb} %{URIPATHPARAM:path} took %{DURATION}",
            ),
            ("WORD", r"[a-z]+"),
        ]);
        let c = grok(
            "^%{REQLINE} from %{IP:client}$",
            &u,
            "get /x?y=1 took 12.5ms from 10.0.0.1",
        )
        .unwrap();
        assert_eq!(
            (c["verb"].as_str(), c["path"].as_str(), c["ms"].as_str()),
            ("get", "/x?y=1", "12.5")
        );
        assert_eq!(c["client"], "10.0.0.1");
        // The user's WORD replaces the bundled one, also inside bundled definitions.
        assert!(grok("^%{REQLINE}$", &u, "GET /x took 1ms").is_none());
        assert_eq!(fields("%{REQLINE}", &u).unwrap(), ["verb", "path", "ms"]);
        assert_eq!(check_user_patterns(&u), Ok(()));
    }

    #[test]
    fn recursion_is_an_error_naming_the_cycle() {
        let u = user(&[
            ("A", "x%{B}"),
            ("B", "%{C}|y"),
            ("C", "%{A}"),
            ("SELF", "%{SELF}"),
        ]);
        let e = err("abc %{A}", &u);
        assert_eq!(e.offset, 4);
        assert_eq!(e.message, "recursive grok pattern: A -> B -> C -> A");
        let (name, e) = check_user_patterns(&u).unwrap_err();
        assert_eq!(
            (name.as_str(), e.offset, e.message.as_str()),
            ("A", 1, "recursive grok pattern: A -> B -> C -> A")
        );
        assert_eq!(
            err("%{SELF}", &u).message,
            "recursive grok pattern: SELF -> SELF"
        );
    }

    #[test]
    fn a_bundled_pattern_is_described_with_its_fields_and_expansion() {
        let qs = describe("QS").unwrap();
        assert_eq!(qs.definition, "%{QUOTEDSTRING}");
        assert!(qs.regex.starts_with("(?:"), "{}", qs.regex);
        assert!(regex::Regex::new(&qs.regex).is_ok());
        let combined = describe("combinedapachelog").unwrap();
        assert_eq!(combined.name, "COMBINEDAPACHELOG");
        assert_eq!(
            combined.fields.first().map(String::as_str),
            Some("clientip")
        );
        assert!(combined.fields.iter().any(|f| f == "agent"));
        assert_eq!(
            describe("COMBINEDAPACHE").unwrap_err(),
            "unknown grok pattern COMBINEDAPACHE; did you mean COMBINEDAPACHELOG?"
        );
        assert!(describe("ZZZZZZZZZZZZ")
            .unwrap_err()
            .ends_with("`quarry_exporter grok` lists them all"));
        assert_eq!(bundled_patterns().count(), bundled_names().len());
    }

    #[test]
    fn unknown_pattern_suggests_the_closest_name() {
        let e = err("^%{COMBINEDAPACHE}$", &none());
        assert_eq!(e.offset, 1);
        assert_eq!(
            e.message,
            "unknown grok pattern COMBINEDAPACHE; did you mean COMBINEDAPACHELOG?"
        );
        assert_eq!(
            e.to_string(),
            "at column 2: unknown grok pattern COMBINEDAPACHE; did you mean COMBINEDAPACHELOG?"
        );
        let u = user(&[
            ("MY_LINE", "%{TIMESTAMP_ISO8601} %{MYFIELD}"),
            ("MY_FIELD", "[a-z]+"),
        ]);
        let e = err("é %{MY_LINE}", &u);
        assert_eq!((e.offset, e.column("é %{MY_LINE}")), (3, 3));
        let want = "in grok pattern MY_LINE at column 22: unknown grok pattern MYFIELD; did you mean MY_FIELD?";
        assert_eq!(e.message, want);
        let u = user(&[("OUTER", "a %{INNER}"), ("INNER", "%{WORD} %{ip}")]);
        let want = "in grok pattern INNER (via OUTER) at column 9: unknown grok pattern ip; did you mean IP?";
        assert_eq!(err("%{OUTER}", &u).message, want);
        let (name, e) = check_user_patterns(&u).unwrap_err();
        assert_eq!((name.as_str(), e.offset), ("INNER", 8));
        assert_eq!(e.message, "unknown grok pattern ip; did you mean IP?");
        assert_eq!(
            err("%{zzzzzzzzzz}", &none()).message,
            "unknown grok pattern zzzzzzzzzz; define it under grok_patterns"
        );
    }

    #[test]
    fn field_names_with_dots_or_brackets_become_underscores() {
        let c = grok(
            "%{NUMBER:[http][version]} %{WORD:http.verb} %{INT:code:int} %{NUMBER:t:float}",
            &none(),
            "1.1 GET 200 0.5",
        );
        let c = c.unwrap();
        assert_eq!(
            (c["http_version"].as_str(), c["http_verb"].as_str()),
            ("1.1", "GET")
        );
        assert_eq!((c["code"].as_str(), c["t"].as_str()), ("200", "0.5"));
    }

    #[test]
    fn malformed_references_are_errors_at_their_offset() {
        let cases = [
            ("ab %{WORD", 3, "unterminated %{: expected } after the pattern name"),
            ("x%{}", 1, "empty grok pattern name in %{}"),
            ("%{:f}", 0, "empty grok pattern name in %{:f}"),
            ("  %{WORD:9x}", 2, "bad field name \"9x\" in %{WORD:9x}: use letters, digits and underscores, not starting with a digit"),
            ("%{WORD:a-b}", 0, "bad field name \"a-b\" in %{WORD:a-b}: use letters, digits and underscores, not starting with a digit"),
            ("%{INT:n:long}", 0, "unknown type \"long\" in %{INT:n:long}: use int or float"),
            ("%{INT:n:int:x}", 0, "unknown type \"int:x\" in %{INT:n:int:x}: use int or float"),
            ("%{IN T}", 0, "bad grok pattern name \"IN T\": use letters, digits and underscores"),
            ("%{X=a+}", 0, "inline pattern definitions (%{NAME=regex}) are not supported; define the pattern under grok_patterns"),
        ];
        for (expression, offset, message) in cases {
            assert_eq!(
                err(expression, &none()),
                GrokError {
                    offset,
                    message: message.into()
                },
                "{expression}"
            );
        }
    }

    #[test]
    fn repeated_names_capture_first_only() {
        let expression = "%{WORD:a} (?<a>x) %{SYSLOGPROG} %{INT:pid} (?P<b>y)";
        let compiled = compile(expression, &none()).unwrap();
        assert!(compiled.contains("(?:x)") && compiled.contains("(?P<b>y)"));
        assert_eq!(
            fields(expression, &none()).unwrap(),
            ["a", "program", "pid", "b"]
        );
        let c = grok(expression, &none(), "w x cron[7] 8 y").unwrap();
        assert_eq!((c["pid"].as_str(), c["program"].as_str()), ("7", "cron"));
    }

    #[test]
    fn oniguruma_syntax_is_translated_or_refused() {
        assert_eq!(
            compile(r"(?>a|b)c++d*+e?+[++]\++", &none()).unwrap(),
            r"(?:a|b)c+d*e?[++]\++"
        );
        assert_eq!(compile("(?<n>a)", &none()).unwrap(), "(?P<n>a)");
        for (expression, offset) in [
            ("a(?=b)", 1),
            ("[(?=]x(?!b)", 6),
            ("(?<=a)", 0),
            ("%{X}", 0),
        ] {
            let u = user(&[("X", "(?<!a)")]);
            let e = err(expression, &u);
            assert_eq!(e.offset, offset, "{expression}");
            assert!(
                e.message.contains("look-around"),
                "{expression}: {}",
                e.message
            );
        }
    }

    #[test]
    fn invalid_regex_is_reported_where_it_is() {
        let e = err("%{WORD} (a", &none());
        assert_eq!(
            (e.offset, e.message.as_str()),
            (8, "invalid regex: unclosed group")
        );
        let u = user(&[("BAD", "[z-a]")]);
        let e = err("x %{BAD}", &u);
        assert_eq!(e.offset, 2);
        assert!(
            e.message
                .starts_with("invalid regex in the expansion of %{BAD}: "),
            "{}",
            e.message
        );
        let (name, e) = check_user_patterns(&u).unwrap_err();
        assert_eq!((name.as_str(), e.offset), ("BAD", 1));
        let e = err("a(?<1x>b)", &none());
        assert_eq!(
            (e.offset, e.message.as_str()),
            (4, "invalid regex: invalid capture group character")
        );
        let e = err("(?P<ok>a)(?<ok>", &none());
        assert_eq!(
            (e.offset, e.message.as_str()),
            (9, "invalid regex: unclosed group")
        );
        let e = check_user_patterns(&user(&[("my-pattern", "a")])).unwrap_err();
        assert_eq!(e.0, "my-pattern");
    }

    #[test]
    fn expansion_and_depth_are_bounded() {
        let mut u = BTreeMap::new();
        for i in 0..30 {
            u.insert(format!("P{i}"), format!("%{{P{}}}%{{P{}}}", i + 1, i + 1));
        }
        u.insert("P30".into(), "x".into());
        let e = err("%{P0}", &u);
        assert!(
            e.message.contains("expands to more than 1048576 bytes"),
            "{}",
            e.message
        );
        let chain: BTreeMap<String, String> = (0..100)
            .map(|i| (format!("C{i}"), format!("%{{C{}}}", i + 1)))
            .collect();
        let e = err("%{C0}", &chain);
        assert!(
            e.message
                .starts_with("grok patterns nest more than 48 deep: C0 -> ... -> C48"),
            "{}",
            e.message
        );
    }
}
