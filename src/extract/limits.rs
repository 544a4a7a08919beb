//! Bounds on what a config expression or a fetched document may ask of the parsers.
//!
//! The JSONPath, XPath and CSS parsers recurse once per nesting level (a paren, a bracket, a
//! `:not(`, a unary minus), so a deep enough expression overflows any stack: ~3,800 parens
//! aborted `check` on an 8 MiB stack. Expressions are therefore checked for length and nesting
//! before any parser sees them, with a message that says which limit was hit. Documents get
//! the same treatment: html5ever's tree builder is quadratic in nesting depth (100,000 nested
//! elements took minutes), so markup nested deeper than browsers build (Blink stops at 512
//! levels) is refused before parsing.

/// Longest expression (JSONPath, XPath, CSS selector) accepted, in bytes.
pub const MAX_EXPRESSION_LENGTH: usize = 4096;
/// Deepest nesting of brackets and unary operators accepted in an expression.
pub const MAX_EXPRESSION_DEPTH: usize = 64;
/// Longest regex accepted, in bytes of pattern text. (The regex crate bounds the compiled
/// program at 10 MiB, but parsing a 10 MB pattern to find that out took 1 GB and 7 s.)
pub const MAX_REGEX_LENGTH: usize = 64 << 10;
/// Deepest element nesting accepted in an XML or HTML document (Blink's parser limit).
pub const MAX_MARKUP_DEPTH: usize = 512;

/// Compiles a regex after checking its length; the error is one line a user can act on.
pub fn regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_REGEX_LENGTH {
        return Err(format!(
            "regex is {} bytes long; the limit is {MAX_REGEX_LENGTH}",
            pattern.len()
        ));
    }
    regex::Regex::new(pattern).map_err(|e| match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("regex compiles to more than {limit} bytes; simplify its repetitions")
        }
        e => format!("invalid regex: {e}"),
    })
}

/// Deepest nesting accepted in a JSONPath: serde_json_path's parser takes time exponential in
/// the nesting of filters (24 nested `[?` took 45 s, found by fuzzing), so its limit is lower.
pub const MAX_JSONPATH_DEPTH: usize = 10;

/// Checks a JSONPath: the general limits, and [`MAX_JSONPATH_DEPTH`].
pub fn check_jsonpath(expr: &str) -> Result<(), String> {
    check_expression(expr)?;
    let depth = expression_depth(expr);
    if depth > MAX_JSONPATH_DEPTH {
        return Err(format!(
            "expression nests {depth} levels deep (brackets and unary operators); a JSONPath may nest {MAX_JSONPATH_DEPTH}"
        ));
    }
    Ok(())
}

/// Checks an expression's length and nesting before it is parsed.
pub fn check_expression(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPRESSION_LENGTH {
        return Err(format!(
            "expression is {} bytes long; the limit is {MAX_EXPRESSION_LENGTH}",
            expr.len()
        ));
    }
    let depth = expression_depth(expr);
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(format!(
            "expression nests {depth} levels deep (brackets and unary operators); the limit is {MAX_EXPRESSION_DEPTH}"
        ));
    }
    Ok(())
}

/// The deepest nesting of `(`, `[`, `{` outside quotes, where a run of prefix operators
/// (`-`, `!`, `+` after an operator or an opening bracket) counts one level each.
pub fn expression_depth(expr: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    // Unary operators in a row, at the current bracket depth.
    let mut unary = 0usize;
    // Whether the previous significant character ends an operand (so `-` is binary).
    let mut after_operand = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
                after_operand = true;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                unary = 0;
            }
            '(' | '[' | '{' => {
                depth += 1;
                unary = 0;
                after_operand = false;
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                unary = 0;
                after_operand = true;
            }
            '-' | '!' | '+' if !after_operand => {
                unary += 1;
            }
            c if c.is_whitespace() => continue,
            c => {
                unary = 0;
                after_operand = c.is_alphanumeric() || matches!(c, '_' | '*' | '.' | '@' | '$');
            }
        }
        deepest = deepest.max(depth + unary);
    }
    deepest
}

/// Whether `text`'s elements nest deeper than [`MAX_MARKUP_DEPTH`], estimated in one pass
/// without building a tree. Comments, CDATA, processing instructions and the raw text of
/// `<script>`/`<style>` are skipped; self-closing and void elements do not nest. In HTML
/// (`html` true) elements whose end tag may be left out (`p`, `li`, `td`, …) are not counted,
/// so a legacy page full of unclosed cells is not mistaken for a deep one.
pub fn markup_too_deep(text: &str, html: bool) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'<', &bytes[i..]) {
        i += at + 1;
        let rest = &bytes[i..];
        if rest.starts_with(b"!--") {
            i = skip_past(bytes, i, b"-->");
        } else if rest.starts_with(b"![CDATA[") {
            i = skip_past(bytes, i, b"]]>");
        } else if rest.first().is_some_and(|b| *b == b'!' || *b == b'?') {
            i = skip_past(bytes, i, b">");
        } else if rest.first() == Some(&b'/') {
            if !(html && omittable(tag_name(&rest[1..]))) {
                depth = depth.saturating_sub(1);
            }
            i = skip_past(bytes, i, b">");
        } else if rest.first().is_some_and(u8::is_ascii_alphabetic) {
            let name = tag_name(rest);
            let end = skip_tag(bytes, i);
            let self_closing = end >= 2 && bytes[end - 2] == b'/';
            i = end;
            if html && (void(name) || omittable(name)) || self_closing {
                continue;
            }
            if html && raw_text(name) {
                i = skip_raw_text(bytes, i, name);
                continue;
            }
            depth += 1;
            if depth > MAX_MARKUP_DEPTH {
                return true;
            }
        }
    }
    false
}

fn tag_name(rest: &[u8]) -> &[u8] {
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.')))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The index after the `>` that ends the tag starting at `from`, skipping quoted values.
fn skip_tag(bytes: &[u8], mut i: usize) -> usize {
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return i,
            None => {}
        }
    }
    i
}

fn skip_past(bytes: &[u8], from: usize, end: &[u8]) -> usize {
    memchr::memmem::find(&bytes[from..], end).map_or(bytes.len(), |at| from + at + end.len())
}

fn skip_raw_text(bytes: &[u8], from: usize, name: &[u8]) -> usize {
    let mut i = from;
    while let Some(at) = memchr::memmem::find(&bytes[i..], b"</") {
        i += at + 2;
        if tag_name(&bytes[i..]).eq_ignore_ascii_case(name) {
            return skip_past(bytes, i, b">");
        }
    }
    bytes.len()
}

fn is_one_of(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fn void(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr", "param", "keygen",
        ],
    )
}

fn omittable(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody",
            "tfoot", "colgroup", "rt", "rp", "caption", "html", "head", "body",
        ],
    )
}

fn raw_text(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            "script",
            "style",
            "textarea",
            "title",
            "xmp",
            "iframe",
            "noembed",
            "noframes",
            "plaintext",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_depth_counts_brackets_and_unary_runs() {
        assert_eq!(expression_depth("$.a[?(@.b > 1)]"), 2);
        assert_eq!(expression_depth("count(//x) - 1"), 1);
        assert_eq!(expression_depth("----1"), 4);
        assert_eq!(expression_depth("'((((('"), 0);
        assert_eq!(expression_depth("tr:not(:not(:not(td)))"), 3);
        let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
        assert!(check_expression(&deep)
            .unwrap_err()
            .contains("nests 2000 levels"));
        assert!(check_expression(&"-".repeat(100)).is_err());
        assert!(check_expression(&"a".repeat(5000))
            .unwrap_err()
            .contains("5000 bytes"));
        assert!(check_expression("//component[@name='db']/state").is_ok());
        let filters = format!("$.a{} > 1{}", "[?@.a".repeat(12), "]".repeat(12));
        assert!(check_jsonpath(&filters)
            .unwrap_err()
            .contains("may nest 10"));
        assert!(check_jsonpath("$.services[?@.status == 'UP'].name").is_ok());
    }

    #[test]
    fn markup_depth_is_estimated_without_parsing() {
        let deep = format!("{}x{}", "<div>".repeat(600), "</div>".repeat(600));
        assert!(markup_too_deep(&deep, true));
        assert!(markup_too_deep(&deep, false));
        let flat = format!("<table>{}</table>", "<tr><td>1<td>2".repeat(10_000));
        assert!(!markup_too_deep(&flat, true));
        let siblings = "<div>x</div>".repeat(10_000);
        assert!(!markup_too_deep(&siblings, true));
        let voids = format!("<p>{}", "<br><img src='a>b'><input/>".repeat(1000));
        assert!(!markup_too_deep(&voids, true));
        let script = format!("<script>{}</script>", "<div>".repeat(1000));
        assert!(!markup_too_deep(&script, true));
        let xml = format!(
            "<?xml version='1.0'?><!-- <a><a> -->{}",
            "<a/>".repeat(1000)
        );
        assert!(!markup_too_deep(&xml, false));
    }
}
