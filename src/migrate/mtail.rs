//! What can be converted of an mtail program: metric declarations (`counter`, `gauge`,
//! `timer`, `histogram … buckets`, `by`, `as`), `const` regex fragments, and blocks whose
//! condition is a regex (fragments joined with `+`) with the actions mtail programs use most:
//! `x++`, `x--`, `x += V`, `x -= V`, `x = V`, with `[$field]` or `["text"]` keys. Each block
//! becomes a rule of one `file` source named after the program; every metric gets mtail's
//! `prog` label (`$__source__`).
//!
//! Not converted, and said: `hidden` and `text` metrics, `def`/decorators, `else`/`otherwise`,
//! blocks nested in a block under a regex (their actions are not converted), conditions other
//! than a regex (their actions are applied on every match of the block around them, which the
//! note says), functions (`strptime`, `settime`, `timestamp`, `getfilename`, …), `del`,
//! positional captures (`$1`). mtail names no log files (its `--logs` flag does): the source's
//! `paths` must be set.

use std::collections::BTreeMap;

use super::{dq, sq, Metric, Migrated};

/// A token of an mtail program.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Regex(String),
    Word(String),
    Str(String),
    Capture(String),
    Punct(&'static str),
    Newline,
}

/// Splits a program into tokens; `#` comments are dropped, `/…/` is always a regex (mtail's
/// division is not converted anyway).
fn tokens(program: &str) -> Result<Vec<(usize, Tok)>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = program.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                out.push((line, Tok::Newline));
                line += 1;
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            c if c.is_whitespace() => i += 1,
            '/' => {
                let mut re = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '/' {
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'/') {
                        re.push('/');
                        i += 2;
                        continue;
                    }
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        re.push(chars[i]);
                        re.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    if chars[i] == '\n' {
                        return Err(format!("line {line}: unterminated regex"));
                    }
                    re.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push((line, Tok::Regex(re)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push((line, Tok::Str(s)));
            }
            '$' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((line, Tok::Capture(chars[start..i].iter().collect())));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '@' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '@'))
                {
                    i += 1;
                }
                out.push((line, Tok::Word(chars[start..i].iter().collect())));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let p = [
                    "++", "--", "+=", "-=", "*=", "/=", "==", "!=", "<=", ">=", "&&", "||", "=~",
                    "!~",
                ]
                .into_iter()
                .find(|p| *p == two);
                match p {
                    Some(p) => {
                        out.push((line, Tok::Punct(p)));
                        i += 2;
                    }
                    None => {
                        let p = [
                            "{", "}", "[", "]", "(", ")", "+", "-", "*", "=", ",", "<", ">", "!",
                            ":", ";", "%", "^",
                        ]
                        .into_iter()
                        .find(|p| p.starts_with(c))
                        .ok_or_else(|| format!("line {line}: unexpected {c:?}"))?;
                        out.push((line, Tok::Punct(p)));
                        i += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A declared metric: its name here and its kind.
struct Declared {
    name: String,
    kind: &'static str,
    labels: Vec<String>,
}

/// Converts an mtail program named `program` (its file name: the source's name and the
/// `prog` label).
pub(super) fn convert(text: &str, program: &str) -> Result<Migrated, String> {
    let toks = tokens(text)?;
    let mut out = Migrated::default();
    let mut metrics: BTreeMap<String, Declared> = BTreeMap::new();
    let mut consts: BTreeMap<String, String> = BTreeMap::new();
    let mut rules: Vec<String> = Vec::new();
    // Statements: split at newlines outside brackets; blocks are handled by their braces.
    let mut i = 0;
    while i < toks.len() {
        let (line, tok) = &toks[i];
        match tok {
            Tok::Newline => i += 1,
            Tok::Word(w)
                if matches!(
                    w.as_str(),
                    "counter" | "gauge" | "timer" | "histogram" | "text" | "hidden"
                ) =>
            {
                let end = line_end(&toks, i);
                declare(&mut out, &mut metrics, *line, &toks[i..end]);
                i = end;
            }
            Tok::Word(w) if w == "const" => {
                let end = line_end(&toks, i);
                match &toks[i + 1..end] {
                    [(_, Tok::Word(name)), rest @ ..] => match join(rest, &consts) {
                        Ok(re) => {
                            consts.insert(name.clone(), re);
                        }
                        Err(why) => out
                            .not_converted
                            .push(format!("line {line}: const {name}: {why}")),
                    },
                    _ => out
                        .not_converted
                        .push(format!("line {line}: a const that is not a regex")),
                }
                i = end;
            }
            _ => {
                // A block: its condition up to `{`, its body up to the matching `}`.
                let Some(open) = toks[i..]
                    .iter()
                    .position(|(_, t)| *t == Tok::Punct("{"))
                    .map(|p| p + i)
                else {
                    out.not_converted
                        .push(format!("line {line}: a statement outside any block"));
                    i = line_end(&toks, i);
                    continue;
                };
                let close = matching(&toks, open);
                let cond: Vec<Tok> = toks[i..open]
                    .iter()
                    .map(|(_, t)| t.clone())
                    .filter(|t| *t != Tok::Newline)
                    .collect();
                let body = &toks[open + 1..close.min(toks.len())];
                match cond.first() {
                    Some(Tok::Word(w)) if w == "def" || w.starts_with('@') => out.not_converted.push(format!(
                        "line {line}: `{w}` (decorators): put the shared regex in grok_patterns and join it into each rule"
                    )),
                    Some(Tok::Word(w)) if w == "else" || w == "otherwise" => out.not_converted.push(format!(
                        "line {line}: `{w}`: every rule is tried on every line here"
                    )),
                    _ => match join(&toks[i..open], &consts) {
                        Ok(re) => {
                            let rule = block(&mut out, &metrics, *line, &re, body, rules.len());
                            if let Some(r) = rule {
                                rules.push(r);
                            }
                        }
                        Err(why) => out.not_converted.push(format!(
                            "line {line}: a block whose condition is not a regex ({why}) is not converted"
                        )),
                    },
                }
                i = close + 1;
            }
        }
    }
    for d in metrics.values() {
        let mut labels = d.labels.clone();
        labels.push("prog".into());
        out.metric(Metric {
            name: d.name.clone(),
            kind: d.kind,
            help: format!("{} (from mtail program {program}).", d.name),
            labels,
            buckets: None,
            expire_after: None,
        });
    }
    out.notes.push(format!(
        "every metric has mtail's `prog` label, {program:?} (the source's name, `$__source__`)"
    ));
    out.notes.push(
        "mtail reads the logs its --logs flag names: set the source's `paths` (it is a placeholder)".into(),
    );
    let mut source = format!(
        "- name: {}\n  file:\n    paths: [\"/var/log/CHANGE-ME.log\"]   # mtail's --logs\n  rules:\n",
        dq(program)
    );
    if rules.is_empty() {
        source.push_str("    []\n");
    }
    for r in rules {
        for l in r.lines() {
            source.push_str(&format!("    {l}\n"));
        }
    }
    out.sources.push(source);
    Ok(out)
}

/// The index after the statement starting at `i` (its newline, outside brackets).
fn line_end(toks: &[(usize, Tok)], i: usize) -> usize {
    toks[i..]
        .iter()
        .position(|(_, t)| *t == Tok::Newline)
        .map_or(toks.len(), |p| p + i)
}

/// The index of the `}` matching the `{` at `open`.
fn matching(toks: &[(usize, Tok)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (_, t)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct("{") => depth += 1,
            Tok::Punct("}") => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// A condition made only of regexes and consts joined by `+`, as one regex.
fn join(cond: &[(usize, Tok)], consts: &BTreeMap<String, String>) -> Result<String, String> {
    let mut re = String::new();
    let mut want_operand = true;
    for (_, t) in cond {
        match (t, want_operand) {
            (Tok::Newline, _) => continue,
            (Tok::Regex(r), true) => re.push_str(r),
            (Tok::Word(w), true) if consts.contains_key(w) => re.push_str(&consts[w]),
            (Tok::Punct("+"), false) => {}
            (other, _) => return Err(shown(other)),
        }
        want_operand = !want_operand;
    }
    if re.is_empty() && want_operand {
        return Err("nothing".into());
    }
    Ok(re)
}

fn shown(t: &Tok) -> String {
    match t {
        Tok::Regex(r) => format!("/{r}/"),
        Tok::Word(w) => w.clone(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Capture(c) => format!("${c}"),
        Tok::Punct(p) => (*p).to_owned(),
        Tok::Newline => "a new line".into(),
    }
}

/// A declaration: `[hidden] KIND NAME [by a, b] [as "name"] [buckets n, …]`.
fn declare(
    out: &mut Migrated,
    metrics: &mut BTreeMap<String, Declared>,
    line: usize,
    toks: &[(usize, Tok)],
) {
    let words: Vec<&Tok> = toks.iter().map(|(_, t)| t).collect();
    let [Tok::Word(kind), Tok::Word(name), rest @ ..] = words.as_slice() else {
        out.not_converted
            .push(format!("line {line}: a declaration not understood"));
        return;
    };
    if kind == "hidden" || kind == "text" {
        out.not_converted.push(format!(
            "line {line}: `{kind}` metrics (state kept between lines, strings) have no equivalent"
        ));
        return;
    }
    let mut labels = Vec::new();
    let mut exported = name.clone();
    let mut buckets: Vec<f64> = Vec::new();
    let mut section = "";
    for t in rest {
        match t {
            Tok::Word(w) if w == "by" || w == "as" || w == "buckets" => section = w,
            Tok::Word(w) if section == "by" => labels.push(w.clone()),
            Tok::Str(s) if section == "as" => exported = s.clone(),
            Tok::Word(w) if section == "buckets" => {
                if let Ok(n) = w.parse() {
                    buckets.push(n)
                }
            }
            Tok::Punct("-") if section == "buckets" => {}
            _ => {}
        }
    }
    let (kind, mut renamed) = match kind.as_str() {
        "counter" => ("counter", exported.clone()),
        "histogram" => ("histogram", exported.clone()),
        _ => ("gauge", exported.clone()),
    };
    if kind == "counter" && !renamed.ends_with("_total") {
        renamed.push_str("_total");
        out.notes.push(format!(
            "line {line}: counters are named `…_total` here: {exported} is {renamed}"
        ));
    }
    let renamed = super::acceptable_name(out, &format!("line {line}"), renamed);
    if kind == "histogram" && !buckets.is_empty() {
        out.metric(Metric {
            name: renamed.clone(),
            kind,
            help: format!("{renamed} (from mtail)."),
            labels: labels.iter().cloned().chain(["prog".to_owned()]).collect(),
            buckets: Some(buckets),
            expire_after: None,
        });
    }
    metrics.insert(
        name.clone(),
        Declared {
            name: renamed,
            kind,
            labels,
        },
    );
}

/// A block under a regex as a rule (YAML, unindented), or `None` when nothing of it converts.
fn block(
    out: &mut Migrated,
    metrics: &BTreeMap<String, Declared>,
    line: usize,
    regex: &str,
    body: &[(usize, Tok)],
    index: usize,
) -> Option<String> {
    let mut updates = Vec::new();
    // Statements of the body, nested blocks' bodies flattened with a note.
    let mut statements: Vec<(usize, Vec<Tok>)> = Vec::new();
    let mut current: Vec<Tok> = Vec::new();
    let mut at = line;
    let mut j = 0;
    while j < body.len() {
        let (l, t) = &body[j];
        match t {
            Tok::Newline => {
                if !current.is_empty() {
                    statements.push((at, std::mem::take(&mut current)));
                }
            }
            Tok::Punct("{") => {
                let cond: Vec<String> = current.iter().map(shown).collect();
                let nested_regex = current.iter().any(|t| matches!(t, Tok::Regex(_)));
                current.clear();
                let close = matching(body, j);
                if nested_regex {
                    out.not_converted.push(format!(
                        "line {l}: a regex block nested in another (`{}`): write it as a rule of its own with the regexes joined, or as `when:` on a field",
                        cond.join(" ")
                    ));
                    j = close + 1;
                    continue;
                }
                out.not_converted.push(format!(
                    "line {l}: the condition `{}` is dropped: the updates in its block apply on every match of the rule",
                    cond.join(" ")
                ));
                j += 1;
                continue;
            }
            Tok::Punct("}") => {
                if !current.is_empty() {
                    statements.push((at, std::mem::take(&mut current)));
                }
            }
            t => {
                if current.is_empty() {
                    at = *l;
                }
                current.push(t.clone());
            }
        }
        j += 1;
    }
    if !current.is_empty() {
        statements.push((at, current));
    }
    for (l, s) in statements {
        match action(metrics, &s) {
            Ok(u) => updates.push(u),
            Err(why) => out.not_converted.push(format!(
                "line {l}: `{}`: {why}",
                s.iter().map(shown).collect::<Vec<_>>().join(" ")
            )),
        }
    }
    if updates.is_empty() {
        return None;
    }
    let mut r = format!(
        "- name: line_{line}_{index}\n  regex: {}\n  update:\n",
        sq(regex)
    );
    for u in updates {
        r.push_str(&format!("    - {u}\n"));
    }
    Some(r)
}

/// One action as an update.
fn action(metrics: &BTreeMap<String, Declared>, s: &[Tok]) -> Result<String, String> {
    let Some(Tok::Word(name)) = s.first() else {
        return Err("not converted".into());
    };
    let Some(m) = metrics.get(name) else {
        return Err(if s.get(1) == Some(&Tok::Punct("(")) {
            format!("the function {name}() has no equivalent")
        } else {
            "not a declared metric (or not converted)".into()
        });
    };
    let mut keys = Vec::new();
    let mut k = 1;
    while s.get(k) == Some(&Tok::Punct("[")) {
        let key = match s.get(k + 1) {
            Some(Tok::Capture(c)) if c.chars().all(|c| c.is_ascii_digit()) => {
                return Err("positional captures ($1) are not fields here: name the group".into())
            }
            Some(Tok::Capture(c)) => format!("${{{c}}}"),
            Some(Tok::Str(t)) => super::literal(t),
            _ => return Err("a key that is not a field or a string".into()),
        };
        if s.get(k + 2) != Some(&Tok::Punct("]")) {
            return Err("a key that is not a field or a string".into());
        }
        keys.push(key);
        k += 3;
    }
    if keys.len() != m.labels.len() {
        return Err(format!("{} keys for {} labels", keys.len(), m.labels.len()));
    }
    let value = |t: Option<&Tok>| -> Result<String, String> {
        match t {
            Some(Tok::Capture(c)) if !c.chars().all(|c| c.is_ascii_digit()) => Ok(format!("${c}")),
            Some(Tok::Word(w)) if w.parse::<f64>().is_ok() => Ok(w.clone()),
            _ => Err("a value that is not a field or a number".into()),
        }
    };
    let rest = &s[k..];
    let op = match (m.kind, rest) {
        ("counter", [Tok::Punct("++")]) => String::new(),
        ("gauge", [Tok::Punct("++")]) => ", inc: 1".into(),
        ("gauge", [Tok::Punct("--")]) => ", dec: 1".into(),
        ("counter" | "gauge", [Tok::Punct("+="), v]) => format!(", add: {}", value(Some(v))?),
        ("gauge", [Tok::Punct("-="), v]) => format!(", dec: {}", value(Some(v))?),
        ("gauge", [Tok::Punct("="), v]) => format!(", set: {}", value(Some(v))?),
        ("histogram", [Tok::Punct("="), v]) => format!(", observe: {}", value(Some(v))?),
        _ => return Err(format!("not an operation a {} takes here", m.kind)),
    };
    let mut labels: Vec<String> = m
        .labels
        .iter()
        .zip(&keys)
        .map(|(l, k)| format!("{l}: {}", dq(k)))
        .collect();
    labels.push("prog: $__source__".into());
    Ok(format!(
        "{{metric: {}, labels: {{{}}}{op}}}",
        m.name,
        labels.join(", ")
    ))
}
